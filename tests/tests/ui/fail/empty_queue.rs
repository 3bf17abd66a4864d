use redisq::fifo;

#[fifo(queue = "")]
pub fn send_email(_to: String) {}

fn main() {}

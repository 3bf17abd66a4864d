use redisq::fifo;

#[fifo(queue = "emails", name = "")]
pub fn send_email(_to: String) {}

fn main() {}

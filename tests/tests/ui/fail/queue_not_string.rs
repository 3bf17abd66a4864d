use redisq::fifo;

#[fifo(queue = emails)]
pub fn send_email(_to: String) {}

fn main() {}

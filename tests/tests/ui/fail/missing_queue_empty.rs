use redisq::fifo;

#[fifo]
pub fn send_email(_to: String) {}

fn main() {}

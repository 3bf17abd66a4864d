use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(_: String) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(_to: &mut Vec<String>) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "emails", retries = -1)]
pub fn send_email(_to: String) {}

fn main() {}

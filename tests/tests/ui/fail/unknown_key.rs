use redisq::fifo;

#[fifo(queue = "emails", retries = 3)]
pub fn send_email(_to: String) {}

fn main() {}

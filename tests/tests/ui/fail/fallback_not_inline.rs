use redisq::fifo;

#[fifo(queue = "emails", fallback = "queue")]
pub fn send_email(_to: String) {}

fn main() {}

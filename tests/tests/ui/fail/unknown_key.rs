use redisq::fifo;

#[fifo(queue = "emails", priority = "high")]
pub fn send_email(_to: String) {}

fn main() {}

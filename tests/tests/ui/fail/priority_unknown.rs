use redisq::fifo;

#[fifo(queue = "emails", priority = "urgent")]
pub fn send_email(_to: String) {}

fn main() {}

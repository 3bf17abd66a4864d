use redisq::fifo;

#[fifo(queue = "emails", colour = "red")]
pub fn send_email(_to: String) {}

fn main() {}

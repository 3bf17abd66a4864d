use redisq::fifo;

#[fifo(queue = "emails", workers = 0)]
pub fn send_email(_to: String) {}

fn main() {}

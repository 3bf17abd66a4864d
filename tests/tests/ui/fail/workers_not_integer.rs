use redisq::fifo;

#[fifo(queue = "emails", workers = "2")]
pub fn send_email(_to: String) {}

fn main() {}

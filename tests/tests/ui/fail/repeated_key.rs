use redisq::fifo;

#[fifo(queue = "emails", queue = "mails")]
pub fn send_email(_to: String) {}

fn main() {}

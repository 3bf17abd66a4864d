use redisq::fifo;

#[fifo(name = "mail::send", workers = 2)]
pub fn send_email(_to: String) {}

fn main() {}

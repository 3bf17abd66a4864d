use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(ref _to: String) {}

fn main() {}

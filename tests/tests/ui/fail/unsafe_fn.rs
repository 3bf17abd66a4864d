use redisq::fifo;

#[fifo(queue = "emails")]
pub unsafe fn send_email(_to: String) {}

fn main() {}

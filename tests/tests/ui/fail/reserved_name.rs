use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(__redisq_args: String) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "emails")]
pub async fn send_email(_to: String) {}

fn main() {}

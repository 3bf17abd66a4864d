use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(_to: Vec<&'static str>) {}

fn main() {}

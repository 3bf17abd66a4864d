use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email<T: serde::de::DeserializeOwned>(_to: T) {}

fn main() {}

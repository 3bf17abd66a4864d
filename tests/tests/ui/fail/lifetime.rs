use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email<'a>(_to: std::borrow::Cow<'a, str>) {}

fn main() {}

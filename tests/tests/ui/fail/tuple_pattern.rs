use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email((_to, _subject): (String, String)) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "emails")]
pub fn send_email(to: String) -> impl std::fmt::Display { to }

fn main() {}

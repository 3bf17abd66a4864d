use redisq::fifo;

#[fifo(queue = "emails")]
pub const fn send_email(to: u32) -> u32 { to }

fn main() {}

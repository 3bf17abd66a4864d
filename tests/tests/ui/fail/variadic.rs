use redisq::fifo;

#[fifo(queue = "emails")]
pub unsafe extern "C" fn send_email(_to: u32, _args: ...) {}

fn main() {}

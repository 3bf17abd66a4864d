use redisq::fifo;

#[fifo(queue = "emails")]
pub extern "C" fn send_email(_to: u32) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "ledger", ordered = "yes")]
pub fn post(_entry: String) {}

fn main() {}

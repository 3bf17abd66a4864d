use redisq::fifo;

#[fifo(queue = "ledger", ordered = true, on_failure = "later")]
pub fn post(_entry: String) {}

fn main() {}

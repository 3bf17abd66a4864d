use redisq::fifo;

#[fifo(queue = "ledger", on_failure = "dead_letter")]
pub fn post(_entry: String) {}

fn main() {}

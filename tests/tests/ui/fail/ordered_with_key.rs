use redisq::fifo;

#[fifo(queue = "ledger", ordered = true, key = "account")]
pub fn post(_account: String, _amount: i64) {}

fn main() {}

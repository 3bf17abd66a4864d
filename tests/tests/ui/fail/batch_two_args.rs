use redisq::fifo;

#[fifo(queue = "points", batch = 100)]
pub fn insert(_points: Vec<String>, _table: String) {}

fn main() {}

use redisq::fifo;

#[fifo(queue = "points", batch = 100)]
pub fn insert(_point: String) {}

fn main() {}

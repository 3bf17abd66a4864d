use redisq::fifo;

#[fifo(queue = "points", batch = 0)]
pub fn insert(_points: Vec<String>) {}

fn main() {}

use redisq::fifo;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub device_id: u32,
}

#[fifo(queue = "points", batch = 100, key = "")]
pub fn insert(_points: Vec<Point>) {}

fn main() {}

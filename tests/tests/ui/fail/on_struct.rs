use redisq::fifo;

#[fifo(queue = "emails")]
pub struct SendEmail {
    pub to: String,
}

fn main() {}

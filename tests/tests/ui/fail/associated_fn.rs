use redisq::fifo;

pub struct Mailer;

impl Mailer {
    #[fifo(queue = "emails")]
    pub fn send_email(_to: String) {}
}

fn main() {}

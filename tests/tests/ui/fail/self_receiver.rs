use redisq::fifo;

pub struct Mailer;

impl Mailer {
    #[fifo(queue = "emails")]
    pub fn send_email(&self, _to: String) {}
}

fn main() {}

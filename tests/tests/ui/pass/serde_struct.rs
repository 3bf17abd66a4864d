//! A serde struct argument, a value return, and types named through `self::` and `super::`.
#![deny(warnings)]

use serde::{Deserialize, Serialize};

/// A mail to send.
#[derive(Serialize, Deserialize)]
pub struct Mail {
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
}

/// A receipt.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Receipt {
    /// How many recipients.
    pub recipients: usize,
}

/// A module whose task names its types relative to itself.
pub mod mail {
    use redisq::fifo;

    /// A header of a mail.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Header(pub String);

    /// Sends a mail and returns a receipt.
    #[fifo(queue = "emails")]
    pub fn send(mail: super::Mail, headers: Vec<self::Header>) -> super::Receipt {
        let _ = (mail.subject, headers);
        super::Receipt { recipients: usize::from(!mail.to.is_empty()) }
    }
}

fn main() {
    let mail = Mail { to: "a@b.c".to_owned(), subject: "hi".to_owned() };
    let headers = vec![mail::Header("X-A".to_owned())];
    assert_eq!(mail::send::run(mail, headers), Receipt { recipients: 1 });
    assert_eq!(mail::send::NAME, concat!(module_path!(), "::mail::send"));
    let _ = mail::send;
    let _ = mail::send::enqueue;
}

//! [`Partitions`]: one hot queue spread over several, so that on a Redis Cluster its
//! load is shared by several shards.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A queue partitioned into `count` queues named `<base>-0` … `<base>-<count − 1>`. Every
/// key of a queue is in the queue's slot, so one queue lives on one cluster master; its
/// partitions hash to different slots and spread over the masters.
///
/// Producers pick a partition per task — by key, so that the tasks of one key (one user,
/// one device) all go to one partition and keep their order there, or round robin — and
/// name it with `with(..).queue(..)`; workers serve every partition.
///
/// ```
/// use redisq::Partitions;
///
/// static EMAILS: Partitions = Partitions::new("emails", 8);
///
/// assert_eq!(EMAILS.names()[3], "emails-3");
/// // The same key, the same partition, in every process and every version.
/// assert_eq!(EMAILS.for_key("user-42"), EMAILS.for_key("user-42"));
/// assert_ne!(EMAILS.next(), EMAILS.next());
/// // send_email::with(&backend).queue(&EMAILS.for_key(&user)).enqueue(..)?;
/// // redisq::Worker::builder(backend).queues(EMAILS.names()).start()?;
/// ```
#[derive(Debug)]
pub struct Partitions {
    base: &'static str,
    count: usize,
    next: AtomicUsize,
}

impl Partitions {
    /// `count` partitions of the queue `base` (at least one).
    #[must_use]
    pub const fn new(base: &'static str, count: usize) -> Partitions {
        Partitions {
            base,
            count: if count == 0 { 1 } else { count },
            next: AtomicUsize::new(0),
        }
    }

    /// Every partition's queue name, in order: what a worker serves.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        (0..self.count).map(|n| self.name(n)).collect()
    }

    /// The partition of `key`: CRC16 (XMODEM) of the key, modulo the count — stable across
    /// processes and versions, so that a key's tasks always meet in one partition.
    #[must_use]
    pub fn for_key(&self, key: &str) -> String {
        let hash = crc16::State::<crc16::XMODEM>::calculate(key.as_bytes());
        self.name(usize::from(hash) % self.count)
    }

    /// The next partition, round robin (per `Partitions` value, across threads).
    #[must_use]
    pub fn next(&self) -> String {
        self.name(self.next.fetch_add(1, Ordering::Relaxed) % self.count)
    }

    fn name(&self, n: usize) -> String {
        format!("{}-{n}", self.base)
    }
}

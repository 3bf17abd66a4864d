//! A namespace of one test's own, its keys removed on drop.

use std::time::Duration;

use redisq::RedisQueueBackend;

use crate::{connect, redis_url, Raw};

/// How many keys one `SCAN` step asks for, and the most keys one `DEL` removes.
const CHUNK: usize = 1000;

/// A Redis namespace of one test's own: a unique name, `test-<32 hex digits>`, whose keys
/// (every key that starts with `<name>:`, which is every key redisq writes for the
/// namespace) are deleted when it drops.
///
/// It is on the shared Redis server ([`redis_url`]) unless made with [`Namespace::on`]
/// (a [`crate::RedisServer`]'s URL, say). Declare it after any [`crate::RedisServer`] it is
/// on, so that it drops first, while the server still runs.
///
/// ```no_run
/// use redisq_test_support::Namespace;
///
/// let ns = Namespace::new();
/// let backend = ns.backend(); // redisq, in this namespace
/// assert!(ns.keys().is_empty());
/// drop(ns); // every `test-…:` key is gone
/// ```
#[derive(Debug)]
pub struct Namespace {
    name: String,
    id: String,
    url: String,
}

impl Namespace {
    /// A new namespace on the shared Redis server.
    #[must_use]
    pub fn new() -> Namespace {
        Namespace::on(redis_url())
    }

    /// A new namespace on the Redis server at `url`.
    #[must_use]
    pub fn on(url: impl Into<String>) -> Namespace {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Namespace {
            name: format!("test-{id}"),
            id,
            url: url.into(),
        }
    }

    /// The same namespace renamed `test-<label>-<32 hex digits>`, so that keys left by a
    /// test that was killed tell which test tree wrote them. Call it before anything is
    /// written: keys under the former name are not removed.
    #[must_use]
    pub fn with_label(mut self, label: &str) -> Namespace {
        self.name = format!("test-{label}-{}", self.id);
        self
    }

    /// The namespace's name, for [`RedisQueueBackend::with_namespace`] and the like.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unique part of the name (32 hex digits), to name other resources of the same
    /// test after, such as a database schema.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The URL of the Redis server the namespace is on.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to the namespace's server.
    ///
    /// # Panics
    /// When the server does not answer.
    #[must_use]
    pub fn connection(&self) -> Raw {
        connect(&self.url)
    }

    /// A redisq backend on the namespace's server, in this namespace, with a 200 ms block
    /// timeout so that the workers of a test notice a shutdown promptly. Each call makes a
    /// new one; configure it further with its `with_…` methods.
    ///
    /// # Panics
    /// When the URL is not a Redis URL.
    #[must_use]
    pub fn backend(&self) -> RedisQueueBackend {
        RedisQueueBackend::new(&self.url)
            .expect("backend")
            .with_namespace(self.name.clone())
            .with_block_timeout(Duration::from_millis(200))
    }

    /// A key of a queue in redisq's layout, `<name>:{<queue>}:<what>`; e.g.
    /// `key("emails", "pending")` is the queue's normal lane.
    #[must_use]
    pub fn key(&self, queue: &str, what: &str) -> String {
        format!("{}:{{{queue}}}:{what}", self.name)
    }

    /// Every key of the namespace, in no particular order.
    ///
    /// # Panics
    /// When the server does not answer.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        let mut con = self.connection();
        let mut keys = Vec::new();
        scan(&mut con, &self.pattern(), |_, batch| {
            keys.extend(batch);
            Ok(())
        })
        .expect("scan");
        keys
    }

    /// The length of a queue's list `what` ([`Namespace::key`]).
    ///
    /// # Panics
    /// When the server does not answer.
    #[must_use]
    pub fn llen(&self, queue: &str, what: &str) -> usize {
        redis::cmd("LLEN")
            .arg(self.key(queue, what))
            .query(&mut self.connection())
            .expect("llen")
    }

    /// Pushes a raw payload onto a queue's normal lane, as a producer in another language
    /// would.
    ///
    /// # Panics
    /// When the server does not answer.
    pub fn rpush(&self, queue: &str, payload: &str) {
        let _: () = redis::cmd("RPUSH")
            .arg(self.key(queue, "pending"))
            .arg(payload)
            .query(&mut self.connection())
            .expect("rpush");
    }

    /// Deletes every key of the namespace now (`SCAN MATCH <name>:*`, then `DEL` at most
    /// 1,000 keys at a time) and returns how many there were. Dropping the namespace does
    /// the same.
    ///
    /// # Errors
    /// When the server does not answer.
    pub fn delete_keys(&self) -> redis::RedisResult<usize> {
        let mut con = Raw::open(&self.url)?;
        let mut deleted = 0;
        scan(&mut con, &self.pattern(), |con, batch| {
            if matches!(con, Raw::Cluster(..)) {
                // One key a command: on a cluster the keys of a batch are in many slots.
                for key in &batch {
                    deleted += redis::cmd("DEL").arg(key).query::<usize>(con)?;
                }
                return Ok(());
            }
            for chunk in batch.chunks(CHUNK) {
                deleted += redis::cmd("DEL").arg(chunk).query::<usize>(con)?;
            }
            Ok(())
        })?;
        Ok(deleted)
    }

    /// `SCAN`'s pattern for the namespace's keys, its glob characters escaped.
    fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.name.len() + 2);
        for c in self.name.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":*");
        pattern
    }
}

impl Default for Namespace {
    fn default() -> Namespace {
        Namespace::new()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(err) = self.delete_keys() {
            eprintln!(
                "could not delete the keys of namespace {} at {}: {err}",
                self.name, self.url
            );
        }
    }
}

/// Runs `SCAN` over the keys matching `pattern` (on every master of a cluster), handing
/// each batch to `each` with the connection (deleting the keys of a batch does not make
/// the scan miss any other key).
fn scan(
    con: &mut Raw,
    pattern: &str,
    mut each: impl FnMut(&mut Raw, Vec<String>) -> redis::RedisResult<()>,
) -> redis::RedisResult<()> {
    let masters = con.servers()?;
    if masters.is_empty() {
        return scan_one(con, pattern).and_then(|batches| {
            for batch in batches {
                each(con, batch)?;
            }
            Ok(())
        });
    }
    for mut master in masters {
        for batch in scan_one(&mut master, pattern)? {
            each(con, batch)?;
        }
    }
    Ok(())
}

/// The batches of one server's `SCAN` over `pattern`.
fn scan_one(
    con: &mut dyn redis::ConnectionLike,
    pattern: &str,
) -> redis::RedisResult<Vec<Vec<String>>> {
    let mut cursor: u64 = 0;
    let mut batches = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(CHUNK)
            .query(con)?;
        batches.push(batch);
        if next == 0 {
            return Ok(batches);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::Namespace;

    #[test]
    fn names_are_unique_and_prefixed() {
        let (a, b) = (Namespace::on("redis://127.0.0.1:1"), Namespace::new());
        assert_ne!(a.name(), b.name());
        assert_eq!(a.name(), format!("test-{}", a.id()));
        assert_eq!(a.id().len(), 32);
        let labelled = a.with_label("cli");
        assert!(labelled.name().starts_with("test-cli-"));
        assert_eq!(
            labelled.key("q", "pending"),
            format!("{}:{{q}}:pending", labelled.name())
        );
        std::mem::forget(labelled); // nothing to delete, and no server at port 1
    }

    #[test]
    fn the_pattern_escapes_glob_characters() {
        let ns = Namespace::on("redis://127.0.0.1:1").with_label("a*b[c]?");
        assert!(ns.pattern().starts_with(r"test-a\*b\[c\]\?-"));
        assert!(ns.pattern().ends_with(":*"));
        std::mem::forget(ns);
    }
}

//! Removing every key of a namespace: [`RedisQueueBackend::purge_namespace`].

use super::RedisQueueBackend;
use crate::error::{Error, Result};
use crate::schema::key_slot;

/// Keys one `SCAN` step asks for, and one `UNLINK` removes at most.
const CHUNK: usize = 1_000;

impl RedisQueueBackend {
    /// Deletes every key of this backend's namespace (every key that starts with
    /// `<namespace>:`), on every master of a cluster, and says how many there were: the
    /// queues, their tasks, records and dead letters, the worker registry. For tests and
    /// examples that must leave nothing behind; workers using the namespace should be
    /// stopped first. `SCAN` a thousand keys at a time, `UNLINK` per slot.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the empty namespace (that would be every key of the
    /// server); an error of Redis.
    pub fn purge_namespace(&self) -> Result<usize> {
        let namespace = &self.config.namespace;
        if namespace.is_empty() {
            return Err(Error::InvalidArgument(
                "purge_namespace refuses the empty namespace".to_owned(),
            ));
        }
        let pattern = format!("{}:*", glob_escape(namespace));
        let mut deleted = 0;
        for server in self.link.servers()? {
            let mut cursor: u64 = 0;
            loop {
                let mut con = server.get()?;
                let (next, keys): (u64, Vec<Vec<u8>>) = con.run(|c| {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(CHUNK)
                        .query(c)
                })?;
                let mut by_slot: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
                for key in keys {
                    let slot = key_slot(&key);
                    match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(key),
                        None => by_slot.push((slot, vec![key])),
                    }
                }
                drop(con);
                for (_, group) in by_slot {
                    let mut con = self.connection()?;
                    deleted += con.run(|c| redis::cmd("UNLINK").arg(&group).query::<usize>(c))?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// `text` with `SCAN`'s glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

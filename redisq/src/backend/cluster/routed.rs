//! [`Routed`]: a connection to a cluster that sends each request to the master of its
//! slot, following redirections the server says it did not run (see `cluster/mod.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{RedisResult, Value};

use super::resp::first_key;
use super::Cluster;
use crate::backend::pool::{Bounded, Conn, Pool};
use crate::error::is_connection_error;
use crate::schema::key_slot;

/// Where a request goes after a redirection.
enum Redirect {
    Moved(Arc<Pool>),
    Ask(Arc<Pool>),
}

/// A connection to a cluster: each request goes to the master of its slot (see the module
/// docs). It holds one connection per node it used, returned to that node's pool on drop
/// when pooled, dropped otherwise.
pub(crate) struct Routed {
    cluster: Arc<Cluster>,
    held: Vec<(Arc<Pool>, Conn, bool)>,
    /// The first request's deadline (set when taken from the pool, the connect included).
    first: Option<Instant>,
    /// Each further request's bound.
    each: Duration,
    /// Whether the connections go back to the pools.
    pooled: bool,
    /// The node of the last request: where a request without a key goes.
    last: Option<Arc<Pool>>,
}

impl Routed {
    /// A pooled routed connection: its first request is due within the timeout from now.
    pub(crate) fn pooled(cluster: Arc<Cluster>) -> Routed {
        let timeout = cluster.timeout;
        Routed {
            cluster,
            held: Vec::new(),
            first: Some(Instant::now() + timeout),
            each: timeout,
            pooled: true,
            last: None,
        }
    }

    /// A routed connection of its own whose requests may each last `read` (blocking pops).
    pub(crate) fn blocking(cluster: Arc<Cluster>, read: Duration) -> Routed {
        Routed {
            cluster,
            held: Vec::new(),
            first: None,
            each: read,
            pooled: false,
            last: None,
        }
    }

    /// Sends a request to `pool`'s node with `send`, on the connection held there (taken
    /// or opened first).
    fn send_to<T>(
        &mut self,
        pool: &Arc<Pool>,
        deadline: Instant,
        asking: bool,
        send: &mut impl FnMut(&mut Bounded<'_>) -> RedisResult<T>,
    ) -> Result<RedisResult<T>, redis::RedisError> {
        let index = match self.held.iter().position(|(p, _, _)| Arc::ptr_eq(p, pool)) {
            Some(index) => index,
            None => {
                let conn = pool.take(deadline)?;
                self.held.push((pool.clone(), conn, false));
                self.held.len() - 1
            }
        };
        let (pool, conn, broken) = &mut self.held[index];
        let mut bounded = Bounded::new(&mut conn.con, &mut conn.armed, pool, deadline);
        if asking {
            if let Err(err) = redis::cmd("ASKING").query::<()>(&mut bounded) {
                *broken = is_connection_error(&err);
                return Ok(Err(err));
            }
        }
        let result = send(&mut bounded);
        if let Err(err) = &result {
            *broken = is_connection_error(err) && err.redirect_node().is_none();
        }
        Ok(result)
    }

    /// Routes one request whose packed form is `packed` (its first key decides the slot).
    fn route<T>(
        &mut self,
        packed: &[u8],
        mut send: impl FnMut(&mut Bounded<'_>) -> RedisResult<T>,
        redirection: impl Fn(&T) -> Option<(String, String)>,
    ) -> RedisResult<T> {
        let deadline = self
            .first
            .take()
            .unwrap_or_else(|| Instant::now() + self.each);
        let slot = first_key(packed).map(key_slot);
        let mut redirect: Option<Redirect> = None;
        let mut waits = 0u32;
        loop {
            let (pool, asking) = match redirect.take() {
                Some(Redirect::Moved(pool)) => (pool, false),
                Some(Redirect::Ask(pool)) => (pool, true),
                None => match slot {
                    Some(slot) => (self.cluster.master(slot, deadline)?, false),
                    None => match &self.last {
                        Some(pool) => (pool.clone(), false),
                        None => (self.cluster.any_master(deadline)?, false),
                    },
                },
            };
            self.last = Some(pool.clone());
            let result = match self.send_to(&pool, deadline, asking, &mut send) {
                Ok(result) => result,
                // The connect failed: nothing was sent. The master may be gone.
                Err(err) if is_connection_error(&err) && !past(deadline) => {
                    self.wait_out(&mut waits, deadline);
                    let _ = self.cluster.refresh(deadline);
                    continue;
                }
                Err(err) => return Err(err),
            };
            let (code, detail) = match &result {
                Err(err) => (
                    err.code().unwrap_or_default().to_owned(),
                    err.detail().unwrap_or_default().to_owned(),
                ),
                Ok(value) => match redirection(value) {
                    Some(found) => found,
                    None => return result,
                },
            };
            match code.as_str() {
                "MOVED" | "ASK" => {
                    let Some((slot, host, port)) = parse_redirect(&detail) else {
                        return result;
                    };
                    redirect = Some(if code == "MOVED" {
                        Redirect::Moved(self.cluster.moved(slot, &host, port)?)
                    } else {
                        Redirect::Ask(self.cluster.node(&host, port)?)
                    });
                }
                "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING" | "READONLY"
                    if !past(deadline) =>
                {
                    self.wait_out(&mut waits, deadline);
                    if code != "TRYAGAIN" {
                        let _ = self.cluster.refresh(deadline);
                    }
                }
                _ => {
                    if result.as_ref().is_err_and(is_connection_error) {
                        // A failover may be why: the next request reads the map again.
                        let _ = self.cluster.refresh(deadline);
                    }
                    return result;
                }
            }
        }
    }

    /// Sleeps before the next try: 10 ms, doubling up to 200 ms, never past `deadline`.
    fn wait_out(&self, waits: &mut u32, deadline: Instant) {
        let pause = Duration::from_millis(10 << (*waits).min(4)).min(Duration::from_millis(200));
        *waits += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(pause.min(left));
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        for (pool, conn, broken) in self.held.drain(..) {
            if self.pooled && !broken && redis::ConnectionLike::is_open(&conn.con) {
                pool.put_back(conn);
            }
        }
    }
}

fn past(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// `<slot> <host>:<port>` of a `MOVED` or `ASK` reply.
fn parse_redirect(detail: &str) -> Option<(u16, String, u16)> {
    let (slot, addr) = detail.split_once(' ')?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((slot.parse().ok()?, host.to_owned(), port.parse().ok()?))
}

/// Replies that say the server did not run the request.
const NOT_RUN: [&str; 7] = [
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "LOADING",
    "READONLY",
];

/// The code and detail of `value` when it is a reply that says the request did not run.
fn redirection(value: &Value) -> Option<(String, String)> {
    match value {
        Value::ServerError(err) if NOT_RUN.contains(&err.code()) => Some((
            err.code().to_owned(),
            err.details().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

/// The first redirection among a pipeline's replies, when every reply is one (nothing
/// ran, so all may be sent again); a pipeline redirected only in part (a slot migrating
/// while some of its keys moved) is answered as it is, its errors surfacing to the caller.
fn pipeline_redirection(values: &Vec<Value>) -> Option<(String, String)> {
    let mut first = None;
    for value in values {
        let found = redirection(value)?;
        first.get_or_insert(found);
    }
    first
}

impl redis::ConnectionLike for Routed {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.route(cmd, |c| c.req_packed_command(cmd), redirection)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.route(
            cmd,
            |c| c.req_packed_commands(cmd, offset, count),
            pipeline_redirection,
        )
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.held
            .iter()
            .all(|(_, conn, _)| redis::ConnectionLike::is_open(&conn.con))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirections_parse() {
        assert_eq!(
            parse_redirect("3999 127.0.0.1:7002"),
            Some((3999, "127.0.0.1".to_owned(), 7002))
        );
        assert_eq!(parse_redirect("x"), None);
    }
}

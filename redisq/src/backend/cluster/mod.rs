//! Redis Cluster: the map of slots to masters, one [`Pool`] per master, and [`Routed`], a
//! connection that sends each request to the master of its keys' slot.
//!
//! Every request redisq sends touches one slot (every key of a queue has the queue's
//! hash tag, and the namespace's own keys are each sent alone), so routing a request is
//! finding its first key. A request is sent again only when the server said it did not
//! run it: `MOVED` (the slot has a new master: the map learns it), `ASK` (the slot is
//! migrating: `ASKING` and the request go to the target), `TRYAGAIN`, `CLUSTERDOWN`,
//! `MASTERDOWN`, `LOADING` and `READONLY` (a failover or migration under way: wait and
//! refresh the map), and a connect that failed. All within the request's deadline. A
//! request whose reply was lost (a timeout or a dropped connection after it was sent) is
//! never sent again: it may have run, and a settle run twice would acknowledge tasks
//! twice. The caller gets the error, as on a single server (the claim protocol resolves
//! it by reading its fence).
//!
//! Scripts declare every key they touch, among them keys that never exist (the queue's
//! key prefix), so that while their slot migrates the server refuses them whole
//! (`TRYAGAIN`) rather than running them halfway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult, Value};

use super::pool::{Bounded, Pool};
use super::tls::Tls;
use crate::schema::SLOTS;

mod report;
mod resp;
mod routed;

pub(crate) use report::weakest;
pub(crate) use routed::Routed;

/// The URL schemes of a cluster, with and without TLS.
const SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// The seed nodes of a cluster URL (`redis+cluster://[user:pass@]host:port[,host:port…]`,
/// `rediss+cluster://` over TLS), each as a single-server URL with the same credentials
/// and options; `None` when `url` is not a cluster URL.
///
/// ```
/// assert_eq!(
///     redisq::cluster_seeds("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7000"),
///     Some(vec![
///         "redis://app:pw@10.0.0.1:7000".to_owned(),
///         "redis://app:pw@10.0.0.2:7000".to_owned(),
///     ])
/// );
/// assert_eq!(redisq::cluster_seeds("redis://10.0.0.1:6379"), None);
/// ```
#[must_use]
pub fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let (rest, scheme) = SCHEMES
        .iter()
        .find_map(|(cluster, single)| url.strip_prefix(cluster).map(|rest| (rest, *single)))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| format!("{scheme}{userinfo}{host}{tail}"))
            .collect(),
    )
}

/// A cluster: how to reach its nodes and which master serves which slot.
pub(crate) struct Cluster {
    /// The seed nodes' settings: where to read the slot map when no known master answers.
    seeds: Vec<ConnectionInfo>,
    tls: Option<Tls>,
    pub(super) timeout: Duration,
    max_idle: usize,
    map: RwLock<SlotMap>,
    /// Every node's pool by address, masters and former masters.
    nodes: Mutex<HashMap<String, Arc<Pool>>>,
}

/// Which master serves each slot (`None`: not known yet).
struct SlotMap {
    slots: Vec<Option<Arc<Pool>>>,
}

impl Cluster {
    /// A cluster reached through `seeds` (single-server URLs), each request bounded by
    /// `timeout`. Does not connect: the first request reads the slot map.
    pub(crate) fn new(
        seeds: &[String],
        tls: Option<Tls>,
        timeout: Duration,
        max_idle: usize,
    ) -> RedisResult<Cluster> {
        let seeds = seeds
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        if seeds.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster URL names no node",
            )));
        }
        if seeds.iter().any(|seed| seed.redis_settings().db() != 0) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster has only database 0",
            )));
        }
        Ok(Cluster::of(seeds, tls, timeout, max_idle))
    }

    /// The cluster of `seeds`, no node known yet.
    fn of(
        seeds: Vec<ConnectionInfo>,
        tls: Option<Tls>,
        timeout: Duration,
        max_idle: usize,
    ) -> Cluster {
        Cluster {
            seeds,
            tls,
            timeout,
            max_idle,
            map: RwLock::new(SlotMap {
                slots: vec![None; usize::from(SLOTS)],
            }),
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The same cluster with another timeout, its map read again.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Cluster {
        Cluster::of(self.seeds.clone(), self.tls.clone(), timeout, self.max_idle)
    }

    /// The pool of the node at `host:port`, made on first use with the seeds' settings.
    pub(super) fn node(&self, host: &str, port: u16) -> RedisResult<Arc<Pool>> {
        let addr = format!("{host}:{port}");
        let mut nodes = self.nodes.lock().map_err(|_| poisoned())?;
        if let Some(pool) = nodes.get(&addr) {
            return Ok(pool.clone());
        }
        let seed = &self.seeds[0];
        let node_addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let info = seed.clone().set_addr(node_addr);
        let pool = Arc::new(Pool::new(
            info,
            self.tls.as_ref(),
            self.timeout,
            self.max_idle,
        )?);
        nodes.insert(addr, pool.clone());
        Ok(pool)
    }

    /// The master of `slot`, reading the map first when it is not known.
    pub(super) fn master(&self, slot: u16, deadline: Instant) -> RedisResult<Arc<Pool>> {
        if let Some(pool) = self.known_master(slot) {
            return Ok(pool);
        }
        self.refresh(deadline)?;
        self.known_master(slot).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                "no master serves the slot",
                format!("slot {slot}"),
            ))
        })
    }

    fn known_master(&self, slot: u16) -> Option<Arc<Pool>> {
        let map = self.map.read().ok()?;
        map.slots.get(usize::from(slot)).cloned().flatten()
    }

    /// Any master (for requests without a key), reading the map first when none is known.
    pub(super) fn any_master(&self, deadline: Instant) -> RedisResult<Arc<Pool>> {
        match self.master(0, deadline) {
            Ok(pool) => Ok(pool),
            // Slot 0 may be unserved while others are: any master then; the error when none.
            Err(err) => {
                let map = self.map.read().map_err(|_| poisoned())?;
                map.slots.iter().flatten().next().cloned().ok_or(err)
            }
        }
    }

    /// Every master, the map read first.
    pub(crate) fn masters(&self) -> RedisResult<Vec<Arc<Pool>>> {
        self.refresh(Instant::now() + self.timeout)?;
        let map = self.map.read().map_err(|_| poisoned())?;
        let mut masters: Vec<Arc<Pool>> = Vec::new();
        for pool in map.slots.iter().flatten() {
            if !masters.iter().any(|known| Arc::ptr_eq(known, pool)) {
                masters.push(pool.clone());
            }
        }
        Ok(masters)
    }

    /// Records that `slot` moved to `host:port` (a `MOVED` reply).
    pub(super) fn moved(&self, slot: u16, host: &str, port: u16) -> RedisResult<Arc<Pool>> {
        let pool = self.node(host, port)?;
        if let Ok(mut map) = self.map.write() {
            if let Some(entry) = map.slots.get_mut(usize::from(slot)) {
                *entry = Some(pool.clone());
            }
        }
        Ok(pool)
    }

    /// Reads the slot map (`CLUSTER SLOTS`) from the first node that answers: the known
    /// masters, then the seeds.
    pub(super) fn refresh(&self, deadline: Instant) -> RedisResult<()> {
        let mut candidates: Vec<Arc<Pool>> = self
            .nodes
            .lock()
            .map_err(|_| poisoned())?
            .values()
            .cloned()
            .collect();
        for seed in &self.seeds {
            if let ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } =
                seed.addr()
            {
                candidates.push(self.node(host, *port)?);
            }
        }
        let mut last = None;
        for pool in candidates {
            match read_slots(&pool, deadline) {
                Ok(ranges) => return self.install(&pool, ranges),
                Err(err) if deadline <= Instant::now() => return Err(err),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(no_node))
    }

    fn install(&self, asked: &Pool, ranges: Vec<(u16, u16, String, u16)>) -> RedisResult<()> {
        let mut slots = vec![None; usize::from(SLOTS)];
        for (start, end, host, port) in ranges {
            // An empty host is the node that was asked.
            let host = if host.is_empty() {
                asked
                    .addr()
                    .rsplit_once(':')
                    .map(|(h, _)| h.to_owned())
                    .unwrap_or(host)
            } else {
                host
            };
            let pool = self.node(&host, port)?;
            for slot in start..=end.min(SLOTS - 1) {
                slots[usize::from(slot)] = Some(pool.clone());
            }
        }
        let mut map = self.map.write().map_err(|_| poisoned())?;
        map.slots = slots;
        Ok(())
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seeds: Vec<String> = self.seeds.iter().map(|s| s.addr().to_string()).collect();
        f.debug_struct("Cluster")
            .field("seeds", &seeds)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `CLUSTER SLOTS` of one node: each range with its master's host and port.
fn read_slots(pool: &Pool, deadline: Instant) -> RedisResult<Vec<(u16, u16, String, u16)>> {
    let mut conn = pool.take(deadline)?;
    let mut armed = conn.armed;
    let reply: Value = {
        let mut bounded = Bounded::new(&mut conn.con, &mut armed, pool, deadline);
        redis::cmd("CLUSTER").arg("SLOTS").query(&mut bounded)?
    };
    conn.armed = armed;
    pool.put_back(conn);
    let Value::Array(ranges) = reply else {
        return Err(unexpected("CLUSTER SLOTS"));
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        if let (Ok(start), Ok(end), Ok(port)) = (
            u16::try_from(*start),
            u16::try_from(*end),
            u16::try_from(*port),
        ) {
            out.push((start, end, host, port));
        }
    }
    Ok(out)
}

fn poisoned() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "cluster map lock poisoned"))
}

fn no_node() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
        "no cluster node answered",
    ))
}

fn unexpected(what: &str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        what.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(
            cluster_seeds("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001/?protocol=resp3"),
            Some(vec![
                "redis://u:p@127.0.0.1:7000/?protocol=resp3".to_owned(),
                "redis://u:p@127.0.0.1:7001/?protocol=resp3".to_owned(),
            ])
        );
        assert_eq!(
            cluster_seeds("rediss+cluster://h:1"),
            Some(vec!["rediss://h:1".to_owned()])
        );
        assert_eq!(cluster_seeds("redis://h:1"), None);
    }

    #[test]
    fn a_cluster_url_names_nodes_and_no_database() {
        let timeout = Duration::from_secs(1);
        assert!(Cluster::new(&[], None, timeout, 1).is_err());
        let db = cluster_seeds("redis+cluster://h:1/2").unwrap();
        let err = Cluster::new(&db, None, timeout, 1).unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
        let fine = cluster_seeds("redis+cluster://h:1,h:2").unwrap();
        assert!(Cluster::new(&fine, None, timeout, 1).is_ok());
    }
}

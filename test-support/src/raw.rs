//! [`Raw`]: a plain connection to the Redis the tests use, a single server or a cluster.

use std::time::Duration;

use redis::{ConnectionLike, RedisResult, Value};

/// A connection to a Redis server or, for a `redis+cluster://` URL, to a Redis Cluster
/// (redis-rs's own cluster client, independent of redisq's routing). Commands run on it
/// as on a `redis::Connection`.
pub enum Raw {
    /// One server.
    Server(redis::Connection),
    /// A cluster, and the single-server URLs of its seeds.
    Cluster(Box<redis::cluster::ClusterConnection>, Vec<String>),
}

impl Raw {
    /// Connects to `url`.
    ///
    /// # Errors
    /// When the URL is invalid or nothing answers within 10 seconds.
    pub fn open(url: &str) -> RedisResult<Raw> {
        let timeout = Duration::from_secs(10);
        match redisq::cluster_seeds(url) {
            Some(seeds) => {
                let con = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?
                    .get_connection()?;
                Ok(Raw::Cluster(Box::new(con), seeds))
            }
            None => {
                let client = match tls_from_env(url)? {
                    Some(certificates) => redis::Client::build_with_tls(url, certificates)?,
                    None => redis::Client::open(url)?,
                };
                Ok(Raw::Server(client.get_connection_with_timeout(timeout)?))
            }
        }
    }

    /// A connection to each server that holds keys: the server, or every master.
    ///
    /// # Errors
    /// When a server does not answer.
    pub fn servers(&mut self) -> RedisResult<Vec<redis::Connection>> {
        match self {
            Raw::Server(_) => Ok(Vec::new()),
            Raw::Cluster(con, seeds) => {
                let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query(con.as_mut())?;
                let mut masters: Vec<String> = Vec::new();
                if let Value::Array(ranges) = slots {
                    for range in ranges {
                        let Value::Array(items) = range else { continue };
                        let Some(Value::Array(master)) = items.get(2) else {
                            continue;
                        };
                        if let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
                            (master.first(), master.get(1))
                        {
                            let addr = format!("{}:{port}", String::from_utf8_lossy(host));
                            if !masters.contains(&addr) {
                                masters.push(addr);
                            }
                        }
                    }
                }
                let scheme_and_auth = seeds
                    .first()
                    .and_then(|seed| {
                        seed.rfind('@')
                            .or_else(|| seed.find("://").map(|i| i + 2))
                            .map(|i| seed[..=i].to_owned())
                    })
                    .unwrap_or_else(|| "redis://".to_owned());
                masters
                    .iter()
                    .map(|addr| {
                        redis::Client::open(format!("{scheme_and_auth}{addr}"))?
                            .get_connection_with_timeout(Duration::from_secs(10))
                    })
                    .collect()
            }
        }
    }
}

/// For a `rediss://` URL, the certificates the files of `REDIS_TLS_CA_FILE`,
/// `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` hold (as redisq reads them).
fn tls_from_env(url: &str) -> RedisResult<Option<redis::TlsCertificates>> {
    if !url.starts_with("rediss://") {
        return Ok(None);
    }
    let read = |name: &str| -> RedisResult<Option<Vec<u8>>> {
        match std::env::var(name) {
            Ok(path) if !path.is_empty() => Ok(Some(std::fs::read(path)?)),
            _ => Ok(None),
        }
    };
    let root_cert = read("REDIS_TLS_CA_FILE")?;
    let client_tls = match (read("REDIS_TLS_CERT_FILE")?, read("REDIS_TLS_KEY_FILE")?) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

impl ConnectionLike for Raw {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Raw::Server(con) => con.req_packed_command(cmd),
            Raw::Cluster(con, _) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Raw::Server(con) => con.req_packed_commands(cmd, offset, count),
            Raw::Cluster(con, _) => con.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Raw::Server(con) => con.get_db(),
            Raw::Cluster(con, _) => con.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Raw::Server(con) => con.check_connection(),
            Raw::Cluster(con, _) => con.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Raw::Server(con) => con.is_open(),
            Raw::Cluster(con, _) => con.is_open(),
        }
    }
}

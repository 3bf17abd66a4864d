//! The Redis a run works against, every node behind a proxy of its own: one server, or a
//! Redis Cluster of three masters (no replicas: a restart is a restart, not a failover).
//! Every node keeps an append-only file (`appendfsync always`), so that what it
//! acknowledged survives a SIGKILL. A cluster's nodes announce their proxies' ports
//! (`cluster-announce-port`), so that clients following the slot map go through the
//! proxies too.

use std::io;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use redisq_test_support::RedisServer;

use super::proxy::{Mode, Proxy};

/// How long a cluster may take to be ok after a start or a restart.
const READY: Duration = Duration::from_secs(30);

/// A node and its proxy.
struct Node {
    server: RedisServer,
    proxy: Proxy,
}

/// The Redis of a run.
pub struct Servers {
    nodes: Vec<Node>,
    cluster: bool,
}

impl Servers {
    /// One server behind a proxy.
    ///
    /// # Errors
    /// When the proxy cannot start.
    pub fn single(seed: u64) -> io::Result<Servers> {
        let server = RedisServer::builder().aof().start();
        let proxy = Proxy::start(addr(server.port()), seed)?;
        Ok(Servers {
            nodes: vec![Node { server, proxy }],
            cluster: false,
        })
    }

    /// A cluster of three masters, each behind a proxy.
    ///
    /// # Errors
    /// When a proxy cannot start, `redis-cli --cluster create` fails or the cluster is not
    /// ok in time.
    pub fn cluster(seed: u64) -> io::Result<Servers> {
        let mut nodes = Vec::new();
        for n in 0..3 {
            let server = start_node();
            let proxy = Proxy::start(addr(server.port()), seed.wrapping_add(n))?;
            nodes.push(Node { server, proxy });
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.server.port()));
        }
        let out = create
            .arg("--cluster-replicas")
            .arg("0")
            .arg("--cluster-yes")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let servers = Servers {
            nodes,
            cluster: true,
        };
        servers.announce()?;
        Ok(servers)
    }

    /// Whether this is a cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The URL of the servers themselves (a cluster's slot map still names the proxies).
    #[must_use]
    pub fn url(&self) -> String {
        if !self.cluster {
            return self.nodes[0].server.url();
        }
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.server.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The URL through the proxies.
    #[must_use]
    pub fn proxy_url(&self) -> String {
        if !self.cluster {
            return self.nodes[0].proxy.url();
        }
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.proxy.addr().to_string())
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Switches every proxy to `mode`.
    pub fn set_mode(&self, mode: Mode) {
        for node in &self.nodes {
            node.proxy.set_mode(mode);
        }
    }

    /// Cuts every connection through every proxy; how many.
    pub fn cut(&self) -> usize {
        self.nodes.iter().map(|n| n.proxy.cut()).sum()
    }

    /// Makes every proxy refuse new connections for `period`.
    pub fn refuse_for(&self, period: Duration) {
        for node in &self.nodes {
            node.proxy.refuse_for(period);
        }
    }

    /// Makes every proxy pass everything again.
    pub fn heal_proxies(&self) {
        for node in &self.nodes {
            node.proxy.heal();
        }
    }

    /// Whether a node is down.
    #[must_use]
    pub fn any_down(&self) -> bool {
        self.nodes.iter().any(|n| n.server.pid().is_none())
    }

    /// SIGKILLs every node.
    pub fn kill(&mut self) {
        for node in &mut self.nodes {
            node.server.kill();
        }
    }

    /// Starts every node again on its append-only file (a cluster: and its `nodes.conf`),
    /// and waits until the cluster is ok and announces the proxies again.
    pub fn restart(&mut self) {
        for node in &mut self.nodes {
            node.server.restart();
        }
        if self.cluster {
            if let Err(err) = self.announce() {
                eprintln!("chaos: the cluster did not come back: {err}");
            }
        }
    }

    /// Makes each node announce its proxy's port, and waits until every node's slot map
    /// names only proxies and the cluster is ok.
    fn announce(&self) -> io::Result<()> {
        let proxies: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.proxy.addr().port().to_string())
            .collect();
        for node in &self.nodes {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-announce-port")
                .arg(node.proxy.addr().port())
                .query::<()>(&mut node.server.connection())
                .map_err(io::Error::other)?;
        }
        let deadline = Instant::now() + READY;
        loop {
            let ready = self.nodes.iter().all(|node| {
                let mut con = node.server.connection();
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut con)
                    .unwrap_or_default();
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query(&mut con)
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && nodes
                        .lines()
                        .filter_map(|l| {
                            l.split(' ')
                                .nth(1)?
                                .split(['@', ':'])
                                .nth(1)
                                .map(str::to_owned)
                        })
                        .all(|port| proxies.contains(&port))
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other("the cluster was not ok in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A cluster node: append-only file, `nodes.conf` in its directory. (A port whose bus port,
/// +10000, is out of range makes it exit; the builder then tries another.)
fn start_node() -> RedisServer {
    RedisServer::builder()
        .aof()
        .config("cluster-enabled", "yes")
        .config("cluster-config-file", "nodes.conf")
        .config("cluster-node-timeout", "5000")
        .config("cluster-require-full-coverage", "no")
        .start()
}

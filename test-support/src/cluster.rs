//! [`RedisCluster`]: a Redis Cluster of one test's own, started by the project's script.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use redis::Value;
use tempfile::TempDir;

use crate::{wait_until, Deadline};

/// Three masters and three replicas on free loopback ports, started by
/// `scripts/redis-cluster.sh` in a temporary directory, stopped (only its own processes)
/// when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    dir: TempDir,
    url: String,
    ports: Vec<u16>,
}

/// One node of the cluster as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a master (and not failed).
    pub master: bool,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-cluster.sh")
}

impl RedisCluster {
    /// Starts the cluster and returns once every node says it is ok.
    ///
    /// # Panics
    /// When the script fails.
    #[must_use]
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_dir = dir.path().join("cluster");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&cluster_dir)
            .output()
            .expect("scripts/redis-cluster.sh runs");
        assert!(
            out.status.success(),
            "redis-cluster.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let ports = url
            .trim_start_matches("redis+cluster://")
            .split(',')
            .filter_map(|addr| addr.rsplit_once(':')?.1.parse().ok())
            .collect();
        RedisCluster { dir, url, ports }
    }

    /// Its URL, `redis+cluster://127.0.0.1:<port>,…` (every node a seed).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to the node on `port` (no redirections followed).
    ///
    /// # Panics
    /// When the node does not answer.
    #[must_use]
    pub fn node(&self, port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("node {port}: {e}"))
    }

    /// The nodes as a live node (any but `except`) sees them.
    ///
    /// # Panics
    /// When no node answers.
    #[must_use]
    pub fn nodes(&self, except: Option<u16>) -> Vec<ClusterNode> {
        let port = self
            .ports
            .iter()
            .copied()
            .find(|p| Some(*p) != except)
            .expect("a live node");
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut self.node(port))
            .expect("CLUSTER NODES");
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let flags = fields.get(2)?;
                Some(ClusterNode {
                    id: (*fields.first()?).to_owned(),
                    port,
                    master: flags.contains("master") && !flags.contains("fail"),
                })
            })
            .collect()
    }

    /// The port of the master that serves `slot`, as the node on another port than
    /// `except` says.
    ///
    /// # Panics
    /// When no node answers.
    #[must_use]
    pub fn master_of(&self, slot: u16, except: Option<u16>) -> Option<u16> {
        let port = self.ports.iter().copied().find(|p| Some(*p) != except)?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.node(port))
            .expect("CLUSTER SLOTS");
        let Value::Array(ranges) = slots else {
            return None;
        };
        ranges.into_iter().find_map(|range| {
            let Value::Array(items) = range else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (items.first(), items.get(1), items.get(2))
            else {
                return None;
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            (i64::from(slot) >= *start && i64::from(slot) <= *end)
                .then(|| u16::try_from(*port).ok())
                .flatten()
        })
    }

    /// The slot of `key`, as the cluster computes it.
    ///
    /// # Panics
    /// When no node answers.
    #[must_use]
    pub fn slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.node(self.ports[0]))
            .expect("CLUSTER KEYSLOT")
    }

    /// Kills the node on `port` with SIGKILL (its pid from its own pid file).
    ///
    /// # Panics
    /// When it has no pid file.
    pub fn kill(&self, port: u16) {
        let pidfile = self
            .dir
            .path()
            .join("cluster")
            .join(port.to_string())
            .join("redis.pid");
        let pid = std::fs::read_to_string(&pidfile).expect("pid file");
        let status = Command::new("kill")
            .arg("-9")
            .arg(pid.trim())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Starts the node on `port` again after [`kill`](Self::kill), with its cluster
    /// config: it rejoins (a former master as a replica of its successor).
    ///
    /// # Panics
    /// When the script fails.
    pub fn restart(&self, port: u16) {
        let status = Command::new("bash")
            .arg(script())
            .arg("restart")
            .arg(self.dir.path().join("cluster"))
            .arg(port.to_string())
            .status()
            .expect("scripts/redis-cluster.sh runs");
        assert!(status.success(), "restart of node {port} failed");
    }

    /// How many replicas the master on `port` has connected.
    ///
    /// # Panics
    /// When the node does not answer.
    #[must_use]
    pub fn replicas(&self, port: u16) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.node(port))
            .expect("INFO replication");
        info.lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until every live node (all but `dead`) says `cluster_state:ok` and a master
    /// serves `slot` that is not `dead`; returns that master's port.
    pub fn wait_for_master(&self, slot: u16, dead: Option<u16>, deadline: Deadline) -> u16 {
        let mut master = None;
        wait_until(deadline, "a live master for the slot", || {
            master = self.master_of(slot, dead).filter(|p| Some(*p) != dead);
            let ok = self.ports.iter().filter(|p| Some(**p) != dead).all(|p| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut self.node(*p))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            ok && master.is_some()
        });
        master.unwrap_or_default()
    }

    /// Moves `slot` from the master on `from` to the master on `to` while clients run:
    /// `SETSLOT IMPORTING`/`MIGRATING`, `MIGRATE` of its keys `batch` at a time, then
    /// `SETSLOT NODE` on every master. Calls `between` after each batch.
    ///
    /// # Panics
    /// When a step fails.
    pub fn migrate_slot(
        &self,
        slot: u16,
        from: u16,
        to: u16,
        batch: usize,
        mut between: impl FnMut(),
    ) {
        let nodes = self.nodes(None);
        let id = |port: u16| {
            nodes
                .iter()
                .find(|n| n.port == port)
                .expect("node")
                .id
                .clone()
        };
        let (from_id, to_id) = (id(from), id(to));
        let (mut src, mut dst) = (self.node(from), self.node(to));
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query(&mut dst)
            .expect("importing");
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query(&mut src)
            .expect("migrating");
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(batch)
                .query(&mut src)
                .expect("getkeysinslot");
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut src)
                .expect("migrate");
            between();
        }
        for node in nodes.iter().filter(|n| n.master) {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut self.node(node.port))
                .expect("setslot node");
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path().join("cluster"))
            .status();
    }
}

//! [`RedisTls`]: a private TLS-only Redis with the minimal ACL user, started by the
//! project's script.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-tls.sh")
}

/// A `redis-server` on a free loopback port that speaks TLS only and requires a client
/// certificate, with certificates made for it by `openssl`, the user `redisq` (the rules
/// of `scripts/redisq.acl` on keys `pattern`), the user `outsider` (every command, keys
/// `other:*`), and the default user off. Stopped when dropped.
#[derive(Debug)]
pub struct RedisTls {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl RedisTls {
    /// Starts it, the `redisq` user limited to keys matching `pattern`.
    ///
    /// # Panics
    /// When the script fails.
    #[must_use]
    pub fn start(pattern: &str) -> RedisTls {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path().join("tls"))
            .arg(pattern)
            .output()
            .expect("scripts/redis-tls.sh runs");
        assert!(
            out.status.success(),
            "redis-tls.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        RedisTls { dir, env }
    }

    /// The value of one of the variables the script printed (`REDIS_URL`,
    /// `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`).
    ///
    /// # Panics
    /// When it printed no such variable.
    #[must_use]
    pub fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("redis-tls.sh printed no {name}"))
    }

    /// Its URL with other credentials: `rediss://<user>:<password>@127.0.0.1:<port>`.
    #[must_use]
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let url = self.var("REDIS_URL");
        let host = url.rsplit_once('@').map_or(url, |(_, host)| host);
        format!("rediss://{user}:{password}@{host}")
    }
}

impl Drop for RedisTls {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path().join("tls"))
            .status();
    }
}

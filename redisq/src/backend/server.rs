//! The Redis server itself: whether it answers, its version and memory, and the settings
//! that decide what becomes of the tasks it holds (`CONFIG GET maxmemory`,
//! `maxmemory-policy`, `appendonly`, `appendfsync`, `save`; `INFO replication`), what an
//! acknowledged enqueue survives by them, and what in them can lose or refuse tasks.
//! Read by `health()` and by a worker's start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::link::Handle;
use super::{Delivery, RedisQueueBackend};
use crate::error::{is_auth_error, Result};
use crate::status::{Durability, RedisSettings, Survival};

/// The settings read with `CONFIG GET`, one command each (Redis before 7.0 takes one
/// parameter per call).
const CONFIG: [&str; 5] = [
    "maxmemory",
    "maxmemory-policy",
    "appendonly",
    "appendfsync",
    "save",
];

/// Past this share of `maxmemory` a warning says that writes will soon fail or evict.
const MEMORY_WARNING: f64 = 0.9;

/// What a probe of the server found.
#[derive(Debug, Clone)]
pub(crate) struct ServerReport {
    /// The `PING` round trip (the connect included when it needed one).
    pub(crate) latency: Duration,
    pub(crate) version: Option<String>,
    pub(crate) used_memory: Option<u64>,
    pub(crate) settings: RedisSettings,
}

impl RedisQueueBackend {
    /// `PING` (within the timeout, the connect included), then `INFO` and the settings.
    ///
    /// # Errors
    /// [`Error::Unavailable`](crate::Error::Unavailable) when Redis does not answer the
    /// `PING`, [`Error::Auth`](crate::Error::Auth) when it refuses the credentials or
    /// `PING` to this user. `INFO` or `CONFIG GET` refused (an ACL user, a renamed
    /// command) leave what they would have said unknown.
    ///
    /// On a cluster every master is asked, and the report is the weakest of theirs (see
    /// `cluster::weakest`; of one server, its own).
    pub(crate) fn server_report(&self) -> Result<ServerReport> {
        let mut reports = Vec::new();
        for server in self.link.servers()? {
            reports.push(report_of(&mut Handle::Server(server.get()?))?);
        }
        super::cluster::weakest(reports)
    }

    /// A worker's probe at its start: [`RedisQueueBackend::server_report`], then the
    /// worker's queues added to the known queues (the heartbeat adds them again, for a
    /// worker started while Redis was down).
    ///
    /// # Errors
    /// As `server_report`; [`Error::Auth`](crate::Error::Auth) too when this user may not
    /// write the namespace's keys.
    pub(crate) fn start_probe(&self, queues: &[String]) -> Result<ServerReport> {
        let report = self.server_report()?;
        self.register_queues(queues)?;
        Ok(report)
    }
}

/// `PING`, `INFO` and the settings of the server `con` reaches.
fn report_of(con: &mut Handle<'_>) -> Result<ServerReport> {
    let started = Instant::now();
    con.run(|c| redis::cmd("PING").query::<String>(c))?;
    let latency = started.elapsed();
    let info: Option<String> = refused_is_unknown(con.run(|c| redis::cmd("INFO").query(c)))?;
    let mut pipe = redis::pipe();
    for name in CONFIG {
        pipe.cmd("CONFIG").arg("GET").arg(name);
    }
    let config: Option<Vec<HashMap<String, String>>> =
        refused_is_unknown(con.run(|c| pipe.query(c)))?;
    let config: HashMap<String, String> = config.into_iter().flatten().flatten().collect();
    let info = info.unwrap_or_default();
    let field = |name: &str| info_field(&info, name);
    let setting = |name: &str| config.get(name).cloned();
    Ok(ServerReport {
        latency,
        version: field("redis_version"),
        used_memory: field("used_memory").and_then(|m| m.parse().ok()),
        settings: RedisSettings {
            maxmemory: setting("maxmemory").and_then(|m| m.parse().ok()),
            maxmemory_policy: setting("maxmemory-policy"),
            appendonly: setting("appendonly").map(|v| v == "yes"),
            appendfsync: setting("appendfsync"),
            save: setting("save"),
            role: field("role"),
            connected_replicas: field("connected_slaves").and_then(|n| n.parse().ok()),
        },
    })
}

/// A reply, or `None` when Redis refused the command (not permitted to this user, renamed
/// or unknown): what it would have said is unknown. Connection failures stay errors.
fn refused_is_unknown<T>(reply: redis::RedisResult<T>) -> Result<Option<T>> {
    match reply {
        Ok(value) => Ok(Some(value)),
        Err(err) if is_auth_error(&err) || err.code().is_some() => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// A field of `INFO`'s `name:value` lines.
fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

impl RedisSettings {
    /// What an acknowledged enqueue survives with these settings, `delivery`, and the
    /// replicas each enqueue waits for (`with_replica_acks`; 0: none).
    pub(crate) fn durability(&self, delivery: Delivery, replica_acks: u64) -> Durability {
        let worker_crash = match delivery {
            Delivery::AtLeastOnce => Survival::Survives,
            Delivery::AtMostOnce => Survival::NotGuaranteed,
        };
        let redis_restart = match (self.appendonly, self.appendfsync.as_deref()) {
            (Some(true), Some("always")) => Survival::Survives,
            (Some(true), Some("everysec")) => Survival::LosesLastSecond,
            (Some(true), Some("no")) => Survival::LosesUnflushed,
            (Some(false), _) => match self.save.as_deref().map(str::trim) {
                Some("") => Survival::Lost,
                Some(_) => Survival::LosesSinceSnapshot,
                None => Survival::Unknown,
            },
            _ => Survival::Unknown,
        };
        Durability {
            worker_crash,
            redis_restart,
            failover: if replica_acks > 0 {
                Survival::Survives
            } else {
                Survival::NotGuaranteed
            },
        }
    }

    /// What in these settings (and `used_memory`) can lose or refuse tasks, one sentence
    /// each.
    pub(crate) fn warnings(&self, used_memory: Option<u64>) -> Vec<String> {
        let mut warnings = Vec::new();
        let limit = match self.maxmemory {
            Some(0) | None => "once a maxmemory is set".to_owned(),
            Some(bytes) => format!("at maxmemory ({bytes} bytes)"),
        };
        match self.maxmemory_policy.as_deref() {
            Some(policy) if policy.starts_with("allkeys-") => warnings.push(format!(
                "maxmemory-policy is {policy}: {limit} redis evicts any key, so queued tasks, \
                 claimed lists, scheduled tasks and dead letters can vanish without an error; \
                 set maxmemory-policy noeviction"
            )),
            Some(policy) if policy.starts_with("volatile-") => warnings.push(format!(
                "maxmemory-policy is {policy}: {limit} redis evicts keys that have a ttl; \
                 redisq's queues (lanes, scheduled, claimed, leases, dead letters) have none, \
                 but the status records and results of finished tasks do and can go before \
                 their ttl; with nothing left to evict, writes fail (OOM) as with noeviction"
            )),
            _ => {}
        }
        if let (Some(used), Some(max)) = (used_memory, self.maxmemory) {
            if max > 0 && used as f64 >= max as f64 * MEMORY_WARNING {
                warnings.push(format!(
                    "redis uses {used} of its maxmemory of {max} bytes ({:.0}%): at the limit \
                     enqueues fail with OutOfMemory (noeviction) or keys are evicted",
                    used as f64 * 100.0 / max as f64
                ));
            }
        }
        if self.appendonly == Some(false) && self.save.as_deref().map(str::trim) == Some("") {
            warnings.push(
                "redis persists nothing (appendonly no, no save schedule): a redis restart \
                 loses every task"
                    .to_owned(),
            );
        }
        if self.role.as_deref() == Some("slave") {
            warnings.push(
                "this redis is a replica (role slave): it refuses writes (READONLY); point \
                 redisq at the primary"
                    .to_owned(),
            );
        }
        warnings
    }

    /// The settings in one line, for a worker's start log.
    pub(crate) fn describe(&self) -> String {
        let known = |v: Option<&str>| v.unwrap_or("unknown").to_owned();
        let maxmemory = match self.maxmemory {
            Some(0) => "0 (no limit)".to_owned(),
            Some(bytes) => format!("{bytes} bytes"),
            None => "unknown".to_owned(),
        };
        let replicas = self
            .connected_replicas
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        format!(
            "role {}, {replicas} replica(s); maxmemory {maxmemory}, maxmemory-policy {}; \
             appendonly {}, appendfsync {}, save \"{}\"",
            known(self.role.as_deref()),
            known(self.maxmemory_policy.as_deref()),
            known(self.appendonly.map(|a| if a { "yes" } else { "no" })),
            known(self.appendfsync.as_deref()),
            known(self.save.as_deref()),
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Settings with these values, no memory limit, a master without replicas.
    pub(crate) fn settings(
        appendonly: bool,
        appendfsync: &str,
        save: &str,
        policy: &str,
    ) -> RedisSettings {
        RedisSettings {
            maxmemory: Some(0),
            maxmemory_policy: Some(policy.to_owned()),
            appendonly: Some(appendonly),
            appendfsync: Some(appendfsync.to_owned()),
            save: Some(save.to_owned()),
            role: Some("master".to_owned()),
            connected_replicas: Some(0),
        }
    }

    #[test]
    fn a_restart_is_survived_as_the_persistence_allows() {
        let restart = |s: RedisSettings| s.durability(Delivery::AtLeastOnce, 0).redis_restart;
        let policy = "noeviction";
        assert_eq!(
            restart(settings(true, "always", "", policy)),
            Survival::Survives
        );
        assert_eq!(
            restart(settings(true, "everysec", "3600 1", policy)),
            Survival::LosesLastSecond
        );
        assert_eq!(
            restart(settings(true, "no", "", policy)),
            Survival::LosesUnflushed
        );
        assert_eq!(
            restart(settings(false, "everysec", "3600 1 300 100", policy)),
            Survival::LosesSinceSnapshot
        );
        assert_eq!(
            restart(settings(false, "everysec", "", policy)),
            Survival::Lost
        );
        assert_eq!(restart(RedisSettings::default()), Survival::Unknown);
    }

    #[test]
    fn worker_crashes_and_failovers() {
        let s = settings(true, "always", "", "noeviction");
        let at_least = s.durability(Delivery::AtLeastOnce, 0);
        assert_eq!(at_least.worker_crash, Survival::Survives);
        assert_eq!(at_least.failover, Survival::NotGuaranteed);
        let at_most = s.durability(Delivery::AtMostOnce, 0);
        assert_eq!(at_most.worker_crash, Survival::NotGuaranteed);
        assert!(at_least.to_string().starts_with(
            "a worker crash: survives; a redis restart: survives; a failover: not guaranteed"
        ));
    }

    #[test]
    fn evicting_policies_are_warned_about_precisely() {
        let safe = settings(true, "always", "", "noeviction");
        assert!(
            safe.warnings(Some(1)).is_empty(),
            "{:?}",
            safe.warnings(None)
        );

        let mut allkeys = settings(true, "always", "", "allkeys-lru");
        allkeys.maxmemory = Some(1 << 20);
        let warnings = allkeys.warnings(Some(1));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with(
            "maxmemory-policy is allkeys-lru: at maxmemory (1048576 bytes) redis evicts any key"
        ));

        let volatile = settings(true, "always", "", "volatile-ttl");
        let warnings = volatile.warnings(None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("once a maxmemory is set redis evicts keys that have a ttl"));
        assert!(warnings[0].contains(
            "redisq's queues (lanes, scheduled, claimed, leases, dead letters) have none"
        ));
    }

    #[test]
    fn no_persistence_a_replica_and_memory_near_its_limit_are_warned_about() {
        let mut s = settings(false, "everysec", "", "noeviction");
        s.role = Some("slave".to_owned());
        s.maxmemory = Some(1000);
        let warnings = s.warnings(Some(950));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].starts_with("redis uses 950 of its maxmemory of 1000 bytes (95%)"));
        assert!(warnings[1].starts_with("redis persists nothing"));
        assert!(warnings[2].starts_with("this redis is a replica"));
        assert!(s.warnings(Some(100)).len() == 2);
    }

    #[test]
    fn unknown_settings_say_so() {
        assert_eq!(
            RedisSettings::default().describe(),
            "role unknown, unknown replica(s); maxmemory unknown, maxmemory-policy unknown; \
             appendonly unknown, appendfsync unknown, save \"unknown\""
        );
        assert!(RedisSettings::default().warnings(None).is_empty());
    }

    #[test]
    fn info_fields_are_read_by_name() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n";
        assert_eq!(info_field(info, "role").as_deref(), Some("master"));
        assert_eq!(info_field(info, "connected_slaves").as_deref(), Some("2"));
        assert_eq!(info_field(info, "connected"), None);
    }
}

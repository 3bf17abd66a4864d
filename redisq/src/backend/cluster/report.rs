//! The report of the servers that hold the keyspace (one, or a cluster's masters), from
//! each one's.

use super::super::server::ServerReport;
use crate::error::Result;

/// The report of a cluster from its masters': the slowest answer, the memory summed, and
/// each setting as the weakest master has it (the smallest memory limit, an evicting policy,
/// persistence off or the laxest fsync, no snapshots, the fewest replicas), so that its
/// durability and warnings hold for every queue.
pub(crate) fn weakest(reports: Vec<ServerReport>) -> Result<ServerReport> {
    let mut reports = reports.into_iter();
    let Some(mut out) = reports.next() else {
        return Err(crate::Error::Internal(
            "a cluster with no master".to_owned(),
        ));
    };
    let fsync_rank = |v: &Option<String>| match v.as_deref() {
        Some("always") => 0,
        Some("everysec") => 1,
        Some(_) => 2,
        None => 3,
    };
    for report in reports {
        let (a, b) = (&mut out.settings, report.settings);
        out.latency = out.latency.max(report.latency);
        out.used_memory = match (out.used_memory, report.used_memory) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        a.maxmemory = match (a.maxmemory, b.maxmemory) {
            (Some(0), y) | (None, y) => y.or(a.maxmemory),
            (x, Some(0)) | (x, None) => x,
            (Some(x), Some(y)) => Some(x.min(y)),
        };
        if b.maxmemory_policy
            .as_deref()
            .is_some_and(|p| p != "noeviction")
        {
            a.maxmemory_policy = b.maxmemory_policy;
        }
        a.appendonly = match (a.appendonly, b.appendonly) {
            (Some(x), Some(y)) => Some(x && y),
            _ => None,
        };
        if fsync_rank(&b.appendfsync) > fsync_rank(&a.appendfsync) {
            a.appendfsync = b.appendfsync;
        }
        if b.save.as_deref().is_some_and(|s| s.trim().is_empty()) || b.save.is_none() {
            a.save = b.save;
        }
        a.connected_replicas = match (a.connected_replicas, b.connected_replicas) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::server::tests::settings;
    use crate::status::RedisSettings;

    #[test]
    fn a_cluster_reports_its_weakest_master() {
        let report = |settings: RedisSettings, replicas: u64, memory: u64| ServerReport {
            latency: Duration::from_millis(memory),
            version: Some("7.0.15".to_owned()),
            used_memory: Some(memory),
            settings: RedisSettings {
                connected_replicas: Some(replicas),
                maxmemory: Some(memory * 100),
                ..settings
            },
        };
        let strong = report(settings(true, "always", "", "noeviction"), 2, 1);
        let weak = report(settings(true, "everysec", "", "allkeys-lru"), 1, 3);
        let combined = weakest(vec![strong.clone(), weak]).unwrap();
        assert_eq!(combined.settings.appendfsync.as_deref(), Some("everysec"));
        assert_eq!(
            combined.settings.maxmemory_policy.as_deref(),
            Some("allkeys-lru")
        );
        assert_eq!(combined.settings.connected_replicas, Some(1));
        assert_eq!(combined.settings.maxmemory, Some(100));
        assert_eq!(combined.used_memory, Some(4));
        assert_eq!(combined.latency, Duration::from_millis(3));
        let off = report(settings(false, "everysec", "", "noeviction"), 1, 1);
        let combined = weakest(vec![strong, off]).unwrap();
        assert_eq!(combined.settings.appendonly, Some(false));
    }
}

//! [`Stats::to_prometheus`]: the figures of [`Stats`] as Prometheus/OpenMetrics text, for a
//! `/metrics` endpoint.
//!
//! The figures are read from Redis by whoever calls
//! [`RedisQueueBackend::stats`](crate::RedisQueueBackend::stats), so they are not kept in
//! long-lived metric objects: each call builds a fresh `prometheus_client` registry holding
//! one collector over a snapshot, and `prometheus_client`'s text encoder writes it. The
//! collector writes the queues in name order, so two renderings of one snapshot are equal.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::status::{Percentiles, QueueStats, Stats};

impl Stats {
    /// The figures as OpenMetrics text (which Prometheus scrapes as it is), ending in
    /// `# EOF`.
    ///
    /// Per queue, labelled `queue`: the gauges `redisq_pending` (labelled `lane`: `high`,
    /// `normal`, `low`), `redisq_processing`, `redisq_scheduled`, `redisq_dead`,
    /// `redisq_throughput_per_second`, `redisq_last_processed_timestamp_seconds` (once a
    /// task succeeded), `redisq_keyed_tasks`, `redisq_keys` and `redisq_held_keys` (ordering
    /// keys), `redisq_key_pending` (labelled `key`, the ten busiest keys),
    /// `redisq_owner_since_timestamp_seconds` (labelled `consumer`, an ordered queue's
    /// owner), `redisq_wait_milliseconds` and `redisq_run_milliseconds` (labelled
    /// `quantile`: `0.5`, `0.95`, `0.99`; left out while the queue has no samples); the
    /// counters `redisq_processed`, `redisq_failed`, `redisq_retried` and
    /// `redisq_dead_lettered`, whose samples OpenMetrics names with a `_total` suffix
    /// (`redisq_processed_total{queue="emails"} 42`). Without a label: the gauges
    /// `redisq_workers_alive` and `redisq_redis_connected` (1 or 0).
    ///
    /// Serve it with the content type
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`, here from a bare
    /// `std::net` listener:
    ///
    /// ```no_run
    /// use std::io::{Read, Write};
    /// use std::net::TcpListener;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = redisq::RedisQueueBackend::from_env()?.with_namespace("myapp");
    /// let listener = TcpListener::bind("127.0.0.1:9100")?;
    /// for stream in listener.incoming() {
    ///     let mut stream = stream?;
    ///     let mut request = [0; 1024];
    ///     let _ = stream.read(&mut request)?; // any request gets the metrics
    ///     let (status, body) = match backend.stats() {
    ///         Ok(stats) => ("200 OK", stats.to_prometheus()),
    ///         Err(err) => ("503 Service Unavailable", format!("{err}\n")),
    ///     };
    ///     write!(
    ///         stream,
    ///         "HTTP/1.1 {status}\r\n\
    ///          Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
    ///          Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
    ///         body.len()
    ///     )?;
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot(families(self))));
        let mut out = String::new();
        // Writing to a String cannot fail, and every family below is well formed.
        if let Err(err) = text::encode(&mut out, &registry) {
            log::warn!("encoding metrics failed: {err}");
        }
        out
    }
}

/// One sample's labels, in order.
type Labels = Vec<(&'static str, String)>;

/// A sample's value.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// A metric family: its name (for a counter, without the `_total` the encoder adds), help,
/// type and samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// A figure of one queue: its family's name, help and type, and how to read it.
type PerQueue = (
    &'static str,
    &'static str,
    MetricType,
    fn(&QueueStats) -> Option<Value>,
);

/// The figures written once per queue, after `redisq_pending`, in this order.
const PER_QUEUE: [PerQueue; 12] = [
    (
        "redisq_processing",
        "Tasks taken by workers and not yet acknowledged.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.processing)),
    ),
    (
        "redisq_scheduled",
        "Delayed tasks and retries waiting to be due.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.scheduled)),
    ),
    (
        "redisq_dead",
        "Dead letters held.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.dead)),
    ),
    (
        "redisq_processed",
        "Tasks (batch items) that succeeded.",
        MetricType::Counter,
        |q| Some(Value::Int(q.processed)),
    ),
    (
        "redisq_failed",
        "Attempts that failed.",
        MetricType::Counter,
        |q| Some(Value::Int(q.failed)),
    ),
    (
        "redisq_retried",
        "Failed attempts scheduled to run again.",
        MetricType::Counter,
        |q| Some(Value::Int(q.retried)),
    ),
    (
        "redisq_dead_lettered",
        "Tasks set aside as dead letters.",
        MetricType::Counter,
        |q| Some(Value::Int(q.dead_lettered)),
    ),
    (
        "redisq_throughput_per_second",
        "Tasks that succeeded per second over the last minute.",
        MetricType::Gauge,
        |q| Some(Value::Float(q.throughput_per_second)),
    ),
    (
        "redisq_last_processed_timestamp_seconds",
        "When a task last succeeded, Unix time in seconds.",
        MetricType::Gauge,
        |q| q.last_processed.map(|ms| Value::Float(ms as f64 / 1000.0)),
    ),
    (
        "redisq_keyed_tasks",
        "Tasks with ordering keys waiting or running.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.keyed)),
    ),
    (
        "redisq_keys",
        "Ordering keys with tasks waiting or running.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.keys)),
    ),
    (
        "redisq_held_keys",
        "Ordering keys whose head task waits to be retried.",
        MetricType::Gauge,
        |q| Some(Value::Int(q.held_keys)),
    ),
];

/// The latency figures of each queue that has samples, labelled `quantile`.
type Latency = (&'static str, &'static str, fn(&QueueStats) -> &Percentiles);

const LATENCIES: [Latency; 2] = [
    (
        "redisq_wait_milliseconds",
        "Time from enqueue to start over the last tasks sampled.",
        |q| &q.wait_ms,
    ),
    (
        "redisq_run_milliseconds",
        "Run time over the last tasks sampled.",
        |q| &q.run_ms,
    ),
];

/// The families of a [`Stats`], in the order they are written.
fn families(stats: &Stats) -> Vec<Family> {
    let queues = &stats.queue_stats;
    let labels = |queue: &String, extra: Option<(&'static str, &str)>| {
        let mut labels = vec![("queue", queue.clone())];
        labels.extend(extra.map(|(k, v)| (k, v.to_owned())));
        labels
    };
    let pending = queues.iter().flat_map(|(queue, q)| {
        [
            ("high", q.priority_queue_size),
            ("normal", q.queue_size),
            ("low", q.low_queue_size),
        ]
        .map(|(lane, n)| (labels(queue, Some(("lane", lane))), Value::Int(n)))
    });
    let mut families = vec![Family {
        name: "redisq_pending",
        help: "Tasks waiting in a lane of a queue.",
        kind: MetricType::Gauge,
        samples: pending.collect(),
    }];
    for (name, help, kind, read) in PER_QUEUE {
        let samples = queues
            .iter()
            .filter_map(|(queue, q)| Some((labels(queue, None), read(q)?)))
            .collect();
        families.push(Family {
            name,
            help,
            kind,
            samples,
        });
    }
    for (name, help, of) in LATENCIES {
        let samples = queues
            .iter()
            .filter(|(_, q)| of(q).samples > 0)
            .flat_map(|(queue, q)| {
                let p = of(q);
                [("0.5", p.p50), ("0.95", p.p95), ("0.99", p.p99)].map(|(quantile, v)| {
                    (labels(queue, Some(("quantile", quantile))), Value::Float(v))
                })
            })
            .collect();
        families.push(Family {
            name,
            help,
            kind: MetricType::Gauge,
            samples,
        });
    }
    families.extend(order_families(queues));
    let alive = stats.processor_stats.workers_alive as u64;
    families.push(Family {
        name: "redisq_workers_alive",
        help: "Worker processes whose heartbeat is within a lease.",
        kind: MetricType::Gauge,
        samples: vec![(Vec::new(), Value::Int(alive))],
    });
    families.push(Family {
        name: "redisq_redis_connected",
        help: "Whether Redis answered: 1 or 0.",
        kind: MetricType::Gauge,
        samples: vec![(Vec::new(), Value::Int(u64::from(stats.redis_connected)))],
    });
    families
}

/// The families of ordering keys and ordered queues' owners.
fn order_families(queues: &std::collections::BTreeMap<String, QueueStats>) -> [Family; 2] {
    let labels = |queue: &String, (k, v): (&'static str, &str)| {
        vec![("queue", queue.clone()), (k, v.to_owned())]
    };
    let pending = queues.iter().flat_map(|(queue, q)| {
        q.busiest_keys
            .iter()
            .map(move |k| (labels(queue, ("key", &k.key)), Value::Int(k.pending)))
    });
    let owners = queues.iter().filter_map(|(queue, q)| {
        let owner = q.owner.as_ref()?;
        let since = Value::Float(owner.since as f64 / 1000.0);
        Some((labels(queue, ("consumer", &owner.consumer)), since))
    });
    [
        Family {
            name: "redisq_key_pending",
            help: "Tasks waiting or running of the busiest ordering keys (at most ten a queue).",
            kind: MetricType::Gauge,
            samples: pending.collect(),
        },
        Family {
            name: "redisq_owner_since_timestamp_seconds",
            help: "Since when the consumer labelled owns the ordered queue, Unix time in seconds.",
            kind: MetricType::Gauge,
            samples: owners.collect(),
        },
    ]
}

/// The collector registered for one rendering.
#[derive(Debug)]
struct Snapshot(Vec<Family>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            match family.samples.as_slice() {
                [(labels, value)] if labels.is_empty() => {
                    encode_value(metric, family.kind, *value)?;
                }
                samples => {
                    for (labels, value) in samples {
                        encode_value(metric.encode_family(labels)?, family.kind, *value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn encode_value(encoder: MetricEncoder, kind: MetricType, value: Value) -> std::fmt::Result {
    match (kind, value) {
        (MetricType::Counter, Value::Int(v)) => ConstCounter::new(v).encode(encoder),
        (MetricType::Counter, Value::Float(v)) => ConstCounter::new(v).encode(encoder),
        (_, Value::Int(v)) => ConstGauge::new(v).encode(encoder),
        (_, Value::Float(v)) => ConstGauge::new(v).encode(encoder),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::status::{KeyLoad, ProcessorStats, QueueOwner};

    /// One sample line: name, labels, value.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// Reads the samples of an exposition (names and label values without escapes).
    fn parse(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a value");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => {
                        let inner = rest.strip_suffix('}').expect("closing brace");
                        let labels = inner
                            .split(',')
                            .map(|pair| {
                                let (k, v) = pair.split_once('=').expect("label=value");
                                (k.to_owned(), v.trim_matches('"').to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                    None => (series, BTreeMap::new()),
                };
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().expect("a number"),
                }
            })
            .collect()
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} appears twice");
        found.first().copied()
    }

    fn queue(processed: u64, wait: Vec<f64>) -> QueueStats {
        QueueStats {
            queue_size: 5,
            priority_queue_size: 2,
            low_queue_size: 1,
            total_pending: 8,
            processing: 3,
            scheduled: 4,
            dead: 6,
            processed,
            failed: 7,
            retried: 9,
            dead_lettered: 10,
            last_processed: (processed > 0).then_some(1_700_000_000_500),
            throughput_per_second: 2.5,
            wait_ms: Percentiles::of(wait),
            run_ms: Percentiles::of((1..=100).map(f64::from).collect()),
            keyed: 3,
            keys: 2,
            held_keys: 1,
            busiest_keys: vec![KeyLoad {
                key: "dev\"1".to_owned(),
                pending: 2,
            }],
            owner: Some(QueueOwner {
                consumer: "w-1".to_owned(),
                since: 1_700_000_000_000,
            }),
        }
    }

    fn stats() -> Stats {
        Stats {
            redis_connected: true,
            queue_stats: BTreeMap::from([
                ("emails".to_owned(), queue(42, vec![10.0, 20.0])),
                ("idle".to_owned(), queue(0, Vec::new())),
            ]),
            processor_stats: ProcessorStats {
                processed: 42,
                failed: 14,
                last_processed: Some(1_700_000_000_500),
                workers_alive: 2,
                workers: Vec::new(),
            },
            timestamp: 1_700_000_001_000,
        }
    }

    #[test]
    fn renders_every_figure() {
        let text = stats().to_prometheus();
        let samples = parse(&text);
        let emails = [("queue", "emails")];
        let lane = |lane| [("queue", "emails"), ("lane", lane)];
        assert_eq!(value(&samples, "redisq_pending", &lane("high")), Some(2.0));
        assert_eq!(
            value(&samples, "redisq_pending", &lane("normal")),
            Some(5.0)
        );
        assert_eq!(value(&samples, "redisq_pending", &lane("low")), Some(1.0));
        assert_eq!(value(&samples, "redisq_processing", &emails), Some(3.0));
        assert_eq!(value(&samples, "redisq_scheduled", &emails), Some(4.0));
        assert_eq!(value(&samples, "redisq_dead", &emails), Some(6.0));
        assert_eq!(
            value(&samples, "redisq_processed_total", &emails),
            Some(42.0)
        );
        assert_eq!(value(&samples, "redisq_failed_total", &emails), Some(7.0));
        assert_eq!(value(&samples, "redisq_retried_total", &emails), Some(9.0));
        assert_eq!(
            value(&samples, "redisq_dead_lettered_total", &emails),
            Some(10.0)
        );
        assert_eq!(
            value(&samples, "redisq_throughput_per_second", &emails),
            Some(2.5)
        );
        assert_eq!(
            value(&samples, "redisq_last_processed_timestamp_seconds", &emails),
            Some(1_700_000_000.5)
        );
        let quantile = |q| [("queue", "emails"), ("quantile", q)];
        assert_eq!(
            value(&samples, "redisq_wait_milliseconds", &quantile("0.5")),
            Some(10.0)
        );
        assert_eq!(
            value(&samples, "redisq_wait_milliseconds", &quantile("0.99")),
            Some(20.0)
        );
        assert_eq!(
            value(&samples, "redisq_run_milliseconds", &quantile("0.95")),
            Some(95.0)
        );
        assert_eq!(value(&samples, "redisq_workers_alive", &[]), Some(2.0));
        assert_eq!(value(&samples, "redisq_redis_connected", &[]), Some(1.0));
    }

    #[test]
    fn idle_queue_has_counts_but_no_quantiles_or_last_time() {
        let samples = parse(&stats().to_prometheus());
        let idle = [("queue", "idle")];
        assert_eq!(value(&samples, "redisq_processed_total", &idle), Some(0.0));
        assert_eq!(
            value(&samples, "redisq_last_processed_timestamp_seconds", &idle),
            None
        );
        let median = [("queue", "idle"), ("quantile", "0.5")];
        assert_eq!(value(&samples, "redisq_wait_milliseconds", &median), None);
        // The run window of the idle queue has samples, so it is rendered.
        assert_eq!(
            value(&samples, "redisq_run_milliseconds", &median),
            Some(50.0)
        );
    }

    #[test]
    fn is_openmetrics_with_types_and_eof() {
        let text = stats().to_prometheus();
        assert!(text.contains("# TYPE redisq_processed counter\n"), "{text}");
        assert!(text.contains("# TYPE redisq_pending gauge\n"), "{text}");
        assert!(
            text.contains("# HELP redisq_dead Dead letters held.\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text, stats().to_prometheus(), "the rendering is stable");
        // Queues in name order within each family.
        let emails = text.find("redisq_dead{queue=\"emails\"}").expect("emails");
        let idle = text.find("redisq_dead{queue=\"idle\"}").expect("idle");
        assert!(emails < idle);
    }

    #[test]
    fn escapes_label_values_and_renders_an_empty_snapshot() {
        let mut s = stats();
        s.queue_stats = BTreeMap::from([("we\"ird".to_owned(), queue(1, Vec::new()))]);
        s.redis_connected = false;
        let text = s.to_prometheus();
        assert!(
            text.contains("redisq_processed_total{queue=\"we\\\"ird\"} 1\n"),
            "{text}"
        );
        s.queue_stats.clear();
        let samples = parse(&s.to_prometheus());
        assert_eq!(value(&samples, "redisq_redis_connected", &[]), Some(0.0));
        assert_eq!(samples.len(), 2, "only the two unlabelled gauges");
    }
}

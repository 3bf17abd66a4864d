//! The commands: each reads or changes Redis through the backend and prints its result
//! (a table, labelled lines or JSON) to stdout.

use std::io::{self, BufRead, IsTerminal, Write};
use std::thread;
use std::time::Duration;

use redisq::{Health, Percentiles, Stats, TaskId, TaskStatus};
use serde::Serialize;

use crate::format::{self, Align, Table};
use crate::{describe, Ctx, Failure};

/// ANSI: clear the screen and move the cursor home.
const CLEAR: &str = "\x1b[2J\x1b[H";

/// Writes `text` to stdout at once.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Failure::Output)
}

/// `value` as JSON, pretty (`pretty`) or on one line, with a newline.
fn json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Result<String, Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map(|t| t + "\n")
        .map_err(|e| Failure::Runtime(format!("cannot encode JSON: {e}")))
}

/// `redisq info`: the figures once, or every `watch` until interrupted.
pub(crate) fn info(ctx: &Ctx, as_json: bool, watch: Option<Duration>) -> Result<(), Failure> {
    let Some(every) = watch else {
        let stats = ctx.backend.stats()?;
        let text = if as_json {
            json(&stats, true)?
        } else {
            render_info(ctx, &stats)
        };
        return out(&text);
    };
    // A watch outlives Redis hiccups: an error is shown in place of one refresh.
    loop {
        match (ctx.backend.stats(), as_json) {
            (Ok(stats), true) => out(&json(&stats, false)?)?,
            (Ok(stats), false) => out(&format!(
                "{CLEAR}{}\n{}",
                render_info(ctx, &stats),
                watching(every)
            ))?,
            (Err(err), true) => eprintln!("error: {}", describe(&ctx.url, &err)),
            (Err(err), false) => out(&format!(
                "{CLEAR}error: {}\n\n{}",
                describe(&ctx.url, &err),
                watching(every)
            ))?,
        }
        thread::sleep(every);
    }
}

fn watching(every: Duration) -> String {
    format!(
        "every {}, Ctrl-C to stop\n",
        format::span(u64::try_from(every.as_millis()).unwrap_or(u64::MAX))
    )
}

/// The owners of ordered queues and the figures of ordering keys, a line each (nothing
/// when no queue has either).
fn render_order(stats: &Stats) -> String {
    let mut text = String::new();
    for (name, q) in &stats.queue_stats {
        if let Some(owner) = &q.owner {
            text.push_str(&format!(
                "{name}: ordered, owned by {} for {}\n",
                owner.consumer,
                format::span(stats.timestamp.saturating_sub(owner.since))
            ));
        }
        if q.keys > 0 || q.keyed > 0 {
            let busiest: Vec<String> = q
                .busiest_keys
                .iter()
                .map(|k| format!("{} ({})", k.key, k.pending))
                .collect();
            text.push_str(&format!(
                "{name}: {} tasks over {} keys, {} held for a retry; busiest: {}\n",
                q.keyed,
                q.keys,
                q.held_keys,
                busiest.join(", ")
            ));
        }
    }
    if !text.is_empty() {
        text.insert(0, '\n');
    }
    text
}

/// The queue and worker tables.
fn render_info(ctx: &Ctx, stats: &Stats) -> String {
    let now = stats.timestamp;
    let mut text = format!(
        "namespace {} at {}, {}\n\n",
        ctx.backend.namespace(),
        ctx.url,
        format::rfc3339(now)
    );
    if stats.queue_stats.is_empty() {
        text.push_str("no queues known\n");
    } else {
        let right = Align::Right;
        let mut queues = Table::new(&[
            ("QUEUE", Align::Left),
            ("HIGH", right),
            ("NORMAL", right),
            ("LOW", right),
            ("PROCESSING", right),
            ("SCHEDULED", right),
            ("DEAD", right),
            ("PROCESSED", right),
            ("FAILED", right),
            ("RETRIED", right),
            ("RATE/S", right),
            ("WAIT P50", right),
            ("WAIT P99", right),
            ("RUN P50", right),
            ("RUN P99", right),
        ]);
        let ms = |p: &Percentiles, v: f64| {
            if p.samples == 0 {
                "-".to_owned()
            } else {
                format::figure(v)
            }
        };
        for (name, q) in &stats.queue_stats {
            queues.row(vec![
                name.clone(),
                q.priority_queue_size.to_string(),
                q.queue_size.to_string(),
                q.low_queue_size.to_string(),
                q.processing.to_string(),
                q.scheduled.to_string(),
                q.dead.to_string(),
                q.processed.to_string(),
                q.failed.to_string(),
                q.retried.to_string(),
                format::figure(q.throughput_per_second),
                ms(&q.wait_ms, q.wait_ms.p50),
                ms(&q.wait_ms, q.wait_ms.p99),
                ms(&q.run_ms, q.run_ms.p50),
                ms(&q.run_ms, q.run_ms.p99),
            ]);
        }
        text.push_str(&queues.render());
        text.push_str(
            "(rate: successes per second over the last minute; wait: enqueue to start, \
             run: run time, in ms over the last tasks sampled)\n",
        );
        text.push_str(&render_order(stats));
    }
    text.push('\n');
    let workers = &stats.processor_stats.workers;
    if workers.is_empty() {
        text.push_str("no workers registered\n");
    } else {
        let mut table = Table::new(&[
            ("WORKER", Align::Left),
            ("HOST", Align::Left),
            ("PID", Align::Right),
            ("QUEUES", Align::Left),
            ("THREADS", Align::Right),
            ("IN FLIGHT", Align::Right),
            ("LAST BEAT", Align::Right),
            ("STATE", Align::Left),
        ]);
        for w in workers {
            table.row(vec![
                w.id.clone(),
                w.host.clone(),
                w.pid.to_string(),
                w.queues.join(","),
                w.threads.to_string(),
                w.in_flight.to_string(),
                format::age(now, w.last_beat),
                if w.alive { "alive" } else { "gone" }.to_owned(),
            ]);
        }
        text.push_str(&table.render());
        text.push_str(&format!(
            "{} of {} workers alive\n",
            stats.processor_stats.workers_alive,
            workers.len()
        ));
    }
    text
}

/// `redisq task ID`.
pub(crate) fn task(ctx: &Ctx, id: &str, as_json: bool) -> Result<(), Failure> {
    let Some(task) = ctx.backend.task(&TaskId::from(id))? else {
        return Err(Failure::Runtime(format!(
            "task {id} not found (unknown or expired)"
        )));
    };
    if as_json {
        return out(&json(&task, true)?);
    }
    let now = format::now_ms();
    let mut rows = vec![
        ("id", task.id.to_string()),
        ("status", status_name(task.status)),
        ("queue", task.queue.clone()),
        ("name", task.name.clone()),
        ("priority", task.priority.lane_name().to_owned()),
        ("created", format::time_and_age(now, task.created_at)),
    ];
    if let Some(key) = &task.key {
        rows.insert(4, ("key", key.clone()));
    }
    if let Some(t) = task.started_at {
        rows.push(("started", format::time_and_age(now, t)));
    }
    if let Some(t) = task.finished_at {
        rows.push(("finished", format::time_and_age(now, t)));
    }
    rows.push(("attempts", task.attempts.to_string()));
    if let Some(worker) = &task.worker {
        rows.push(("worker", worker.clone()));
    }
    if let Some(position) = task.queue_position {
        rows.push(("ahead of it", format!("{position} tasks")));
    }
    if let Some(secs) = task.estimated_wait_seconds {
        let wait = if secs.is_finite() && secs >= 0.0 {
            format!("about {}", format::span((secs * 1000.0) as u64))
        } else {
            "unknown (nothing ran in the last minute)".to_owned()
        };
        rows.push(("est. wait", wait));
    }
    if let Some(result) = &task.result {
        rows.push(("result", result.to_string()));
    }
    if let Some(error) = &task.error {
        rows.push(("error", error.clone()));
    }
    out(&format::fields(&rows))
}

/// A status as its wire name: `queued`, `done`, …
fn status_name(status: TaskStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{status:?}").to_lowercase(),
    }
}

/// `redisq dead list QUEUE`.
pub(crate) fn dead_list(
    ctx: &Ctx,
    queue: &str,
    offset: usize,
    limit: usize,
    as_json: bool,
) -> Result<(), Failure> {
    let letters = ctx.backend.dead_letters(queue, offset, limit)?;
    if as_json {
        return out(&json(&letters, true)?);
    }
    let total = ctx.backend.dead_count(queue)?;
    if letters.is_empty() {
        return out(&if total == 0 {
            format!("no dead letters in `{queue}`\n")
        } else {
            format!("no dead letters past {offset} in `{queue}` ({total} in all)\n")
        });
    }
    let now = format::now_ms();
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("FAILED", Align::Right),
        ("WORKER", Align::Left),
        ("REASON", Align::Left),
    ]);
    for letter in &letters {
        table.row(vec![
            letter.id.clone(),
            letter.name.clone().unwrap_or_else(|| "-".to_owned()),
            letter.attempts.to_string(),
            format::age(now, letter.failed_at),
            letter.worker.clone(),
            format::first_line(&letter.reason, 120),
        ]);
    }
    out(&format!(
        "{}{}-{} of {total} dead letters in `{queue}`, newest first (--json for every field)\n",
        table.render(),
        offset + 1,
        offset + letters.len(),
    ))
}

/// `redisq dead requeue QUEUE (ID | --all)`: `id` is `None` for all.
pub(crate) fn dead_requeue(ctx: &Ctx, queue: &str, id: Option<&str>) -> Result<(), Failure> {
    match id {
        Some(id) => {
            if ctx.backend.requeue_dead(queue, id)? {
                out(&format!("requeued 1 dead letter ({id}) to `{queue}`\n"))
            } else {
                Err(Failure::Runtime(format!(
                    "no dead letter of task {id} in `{queue}`"
                )))
            }
        }
        None => {
            let moved = ctx.backend.requeue_all_dead(queue)?;
            out(&format!("requeued {moved} dead letters to `{queue}`\n"))
        }
    }
}

/// `redisq dead purge QUEUE [--yes]`.
pub(crate) fn dead_purge(ctx: &Ctx, queue: &str, yes: bool) -> Result<(), Failure> {
    if !yes {
        if !io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "purging the dead letters of `{queue}` needs --yes when standard input is not a terminal"
            )));
        }
        let count = ctx.backend.dead_count(queue)?;
        if count == 0 {
            return out(&format!("no dead letters in `{queue}`\n"));
        }
        eprint!("delete the {count} dead letters of `{queue}` for good? [y/N] ");
        let mut answer = String::new();
        io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::Runtime(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            return Err(Failure::Runtime(
                "not confirmed: nothing deleted".to_owned(),
            ));
        }
    }
    let purged = ctx.backend.purge_dead(queue)?;
    out(&format!("purged {purged} dead letters of `{queue}`\n"))
}

/// `redisq recover [QUEUE]`.
pub(crate) fn recover(ctx: &Ctx, queue: Option<&str>) -> Result<(), Failure> {
    let text = match queue {
        Some(queue) => {
            let moved = ctx.backend.recover_stale(queue)?;
            format!("recovered {moved} tasks to `{queue}`\n")
        }
        None => {
            let moved = ctx.backend.recover_all()?;
            format!("recovered {moved} tasks across every known queue\n")
        }
    };
    out(&text)
}

/// `redisq health`: fails (exit 1) when Redis does not answer or refuses the credentials.
pub(crate) fn health(ctx: &Ctx, as_json: bool) -> Result<(), Failure> {
    let health = ctx.backend.health()?;
    let text = if as_json {
        json(&health, true)?
    } else {
        render_health(ctx, &health)
    };
    out(&text)?;
    if health.reachable {
        Ok(())
    } else {
        Err(Failure::Unavailable(
            health
                .error
                .unwrap_or_else(|| "no answer to PING".to_owned()),
        ))
    }
}

/// The health report as labelled lines: the server, then (when it answered) its settings,
/// what an acknowledged enqueue survives, and warnings.
fn render_health(ctx: &Ctx, health: &Health) -> String {
    let mut rows = vec![
        ("redis", ctx.url.clone()),
        (
            "reachable",
            if health.reachable { "yes" } else { "no" }.to_owned(),
        ),
    ];
    if health.reachable {
        rows.push((
            "latency",
            format!("{} ms", format::figure(health.latency_ms)),
        ));
    }
    if let Some(version) = &health.version {
        rows.push(("version", version.clone()));
    }
    if let Some(bytes) = health.used_memory {
        rows.push(("memory", format::bytes(bytes)));
    }
    let mut text = format::fields(&rows);
    if !health.reachable {
        return text;
    }
    let s = &health.settings;
    let known = |v: Option<String>| v.unwrap_or_else(|| "unknown (CONFIG GET refused)".to_owned());
    let settings = [
        (
            "maxmemory",
            known(s.maxmemory.map(|m| match m {
                0 => "0 (no limit)".to_owned(),
                m => format::bytes(m),
            })),
        ),
        ("maxmemory-policy", known(s.maxmemory_policy.clone())),
        (
            "appendonly",
            known(
                s.appendonly
                    .map(|a| if a { "yes" } else { "no" }.to_owned()),
            ),
        ),
        ("appendfsync", known(s.appendfsync.clone())),
        (
            "save",
            known(
                s.save
                    .clone()
                    .map(|v| if v.is_empty() { "(none)".to_owned() } else { v }),
            ),
        ),
        (
            "role",
            match (&s.role, s.connected_replicas) {
                (Some(role), Some(n)) => format!("{role}, {n} replica(s) connected"),
                (Some(role), None) => role.clone(),
                _ => "unknown".to_owned(),
            },
        ),
    ];
    text.push('\n');
    text.push_str(&format::fields(&settings));
    let d = &health.durability;
    text.push_str("\nan acknowledged enqueue survives:\n");
    text.push_str(&format::fields(&[
        ("  a worker crash", d.worker_crash.to_string()),
        ("  a redis restart", d.redis_restart.to_string()),
        (
            "  a failover",
            format!(
                "{} (replication is asynchronous and redisq does not WAIT)",
                d.failover
            ),
        ),
    ]));
    for warning in &health.warnings {
        text.push_str(&format!("\nwarning: {warning}\n"));
    }
    text
}

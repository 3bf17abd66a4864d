//! The architecture invariants of ARCHITECTURE.md, checked against the source tree:
//! each rule names the only place that may do a thing, and this test greps the rest.

use std::fs;
use std::path::{Path, PathBuf};

/// Every file under `dir` whose name ends in one of `exts`, with its path.
fn sources(dir: &Path, exts: &[&str]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if exts
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                let text = fs::read_to_string(&path).expect("readable source file");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` that are code: comments (`//`, `--`) and unit-test modules left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let tests_start = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..tests_start]
        .lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line))
        .filter(|(_, line)| {
            let t = line.trim_start();
            !(t.starts_with("//") || t.starts_with("--"))
        })
}

/// Lines outside `allowed` (paths relative to `src`) that contain any of `needles`.
fn offenders(src: &Path, exts: &[&str], allowed: &[&str], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(src, exts) {
        let relative = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| relative.starts_with(a)) {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{relative}:{n}: {}", line.trim()));
            }
        }
    }
    found
}

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[test]
fn only_backend_sends_commands_to_redis() {
    let found = offenders(
        &crate_dir("redisq/src"),
        &["rs"],
        &["backend/"],
        &[
            "redis::cmd(",
            "redis::pipe(",
            "Script::new(",
            ".query(",
            ".invoke(",
            "redis::Connection",
        ],
    );
    assert!(
        found.is_empty(),
        "Redis commands outside backend/:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_schema_module_spells_a_key() {
    // A key template ends a string with `:<name>` or starts one with `<name>:`.
    let mut keys = vec!["queues\"".to_owned(), "workers\"".to_owned()];
    for name in [
        "pending",
        "claimed",
        "leases",
        "scheduled",
        "dead",
        "signal",
        "stats",
        "counters",
        "state",
        "throughput",
        "latency",
        "task",
        "pushed",
        "taken",
    ] {
        for quote in ["\"", "'"] {
            keys.push(format!(":{name}{quote}"));
            keys.push(format!("{quote}{name}:"));
        }
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let found = offenders(
        &crate_dir("redisq/src"),
        &["rs", "lua"],
        &["schema/"],
        &keys,
    );
    assert!(
        found.is_empty(),
        "key names spelled outside schema/:\n{}",
        found.join("\n")
    );
    // Scripts get full key names in KEYS: none builds one by concatenation.
    let built = offenders(
        &crate_dir("redisq/src"),
        &["lua"],
        &[],
        &[".. ':'", "] .. "],
    );
    assert!(
        built.is_empty(),
        "keys built inside a script:\n{}",
        built.join("\n")
    );
}

#[test]
fn scripts_use_the_schema_names_for_fields_and_statuses() {
    // ('done' and 'dead' are also the claim protocol's outcome kinds, so not checked.)
    let names = [
        "'status'",
        "'queued'",
        "'scheduled'",
        "'processing'",
        "'failed'",
        "'attempts'",
        "'result'",
        "'error'",
        "'waiting'",
        "'processed'",
        "'retried'",
        "'seq'",
        "'lane'",
        "'normal'",
        "'high'",
        "'low'",
        "'started_at'",
        "'finished_at'",
        "'worker'",
    ];
    let found = offenders(&crate_dir("redisq/src"), &["lua"], &[], &names);
    assert!(
        found.is_empty(),
        "names spelled in a script:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_wire_module_reads_or_writes_a_payload() {
    // Field names as a hand-written JSON string spells them (`\"id\"`), or as a map key.
    let mut fields = Vec::new();
    for name in [
        "id",
        "name",
        "args",
        "enqueued_at",
        "attempts",
        "errors",
        "batch",
    ] {
        fields.push(format!("\\\"{name}\\\""));
    }
    for name in ["args", "enqueued_at", "errors", "batch"] {
        fields.push(format!("\"{name}\""));
    }
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let found = offenders(&crate_dir("redisq/src"), &["rs"], &["wire.rs"], &fields);
    assert!(
        found.is_empty(),
        "payload fields outside wire.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_macro_crate_knows_nothing_of_redis() {
    let manifest = fs::read_to_string(crate_dir("redisq-macros/Cargo.toml")).expect("manifest");
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("redis")),
        "redisq-macros depends on a redis crate"
    );
    let found = offenders(
        &crate_dir("redisq-macros/src"),
        &["rs"],
        &[],
        &["redis::", "RPUSH", "LPOP"],
    );
    assert!(
        found.is_empty(),
        "Redis in the macro crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn library_files_and_functions_stay_small() {
    const MAX_FILE: usize = 400;
    const MAX_FN: usize = 80;
    let mut found = Vec::new();
    let runtime = sources(&crate_dir("redisq/src"), &["rs"]);
    let all = runtime
        .iter()
        .chain(&sources(&crate_dir("redisq-macros/src"), &["rs"]))
        .cloned()
        .collect::<Vec<_>>();
    for (path, text) in &all {
        let code = &text[..text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len())];
        let lines = code.lines().count();
        if lines > MAX_FILE && runtime.iter().any(|(p, _)| p == path) {
            found.push(format!("{}: {lines} lines", path.display()));
        }
        // A function runs from its `fn` line to the next line that closes at its indent.
        let all: Vec<&str> = code.lines().collect();
        for (start, line) in all.iter().enumerate() {
            let t = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .any(|p| t.starts_with(p));
            // (A `fn` with `#` in it is generated code inside a `quote!`.)
            if !is_fn || t.ends_with(';') || t.contains('#') {
                continue;
            }
            let indent = line.len() - t.len();
            let close = format!("{}}}", " ".repeat(indent));
            let len = all[start..]
                .iter()
                .position(|l| *l == close)
                .map_or(0, |p| p + 1);
            if len > MAX_FN {
                found.push(format!(
                    "{}:{}: a function of {len} lines",
                    path.display(),
                    start + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "too large:\n{}", found.join("\n"));
}

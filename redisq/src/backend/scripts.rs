//! The Lua scripts, each the generated prelude of names ([`schema::lua_prelude`]), the
//! shared library (`lua/common.lua`, `lua/lanes.lua`, `lua/outcomes.lua`) and its own
//! file. Loaded by SHA on first use (`EVALSHA`, falling back to `EVAL`).

use std::sync::LazyLock;

use redis::Script;

use crate::schema;

/// What every script starts with after the prelude.
const LIBRARY: &str = concat!(
    include_str!("lua/common.lua"),
    include_str!("lua/lanes.lua"),
    include_str!("lua/outcomes.lua"),
);

/// A script's first line: its flags. Scripts that only move tasks (claims, settles,
/// recoveries) may run when Redis is at its memory limit (`allow-oom`), so that workers go
/// on draining a full Redis; the ones that add tasks may not, so that a producer's push is
/// refused whole, before anything is written.
const MAY_RUN_FULL: &str = "#!lua flags=allow-oom\n";
const REFUSED_FULL: &str = "#!lua\n";

fn script(flags: &str, body: &str) -> Script {
    Script::new(&format!("{flags}{}{LIBRARY}{body}", schema::lua_prelude()))
}

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident => $file:literal, $flags:ident;)*) => {$(
        $(#[$doc])*
        pub(super) static $name: LazyLock<Script> =
            LazyLock::new(|| script($flags, include_str!(concat!("lua/", $file))));
    )*};
}

scripts! {
    /// The claim protocol: acknowledge, record outcomes, promote, lease, take.
    SETTLE => "settle.lua", MAY_RUN_FULL;
    /// Push tasks that keep status records.
    ENQUEUE => "enqueue.lua", REFUSED_FULL;
    /// Renew consumers' leases.
    RENEW => "renew.lua", MAY_RUN_FULL;
    /// List consumers whose lease ran out.
    EXPIRED => "expired.lua", MAY_RUN_FULL;
    /// Hand a consumer's tasks back.
    RECOVER => "recover.lua", MAY_RUN_FULL;
    /// Move a dead letter back to its queue.
    REQUEUE => "requeue.lua", MAY_RUN_FULL;
    /// Mark a record waited on.
    WAIT => "wait.lua", MAY_RUN_FULL;
    /// Add delayed tasks, due by the server's clock.
    SCHEDULE => "schedule.lua", REFUSED_FULL;
    /// Apply the dead-letter bounds.
    RETENTION => "retention.lua", MAY_RUN_FULL;
}

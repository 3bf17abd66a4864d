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

fn script(body: &str) -> Script {
    Script::new(&format!("{}{LIBRARY}{body}", schema::lua_prelude()))
}

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident => $file:literal;)*) => {$(
        $(#[$doc])*
        pub(super) static $name: LazyLock<Script> =
            LazyLock::new(|| script(include_str!(concat!("lua/", $file))));
    )*};
}

scripts! {
    /// The claim protocol: acknowledge, record outcomes, promote, lease, take.
    SETTLE => "settle.lua";
    /// Push tasks that keep status records.
    ENQUEUE => "enqueue.lua";
    /// Renew consumers' leases.
    RENEW => "renew.lua";
    /// List consumers whose lease ran out.
    EXPIRED => "expired.lua";
    /// Hand an expired consumer's tasks back.
    RECOVER => "recover.lua";
    /// Move a dead letter back to its queue.
    REQUEUE => "requeue.lua";
    /// Mark a record waited on.
    WAIT => "wait.lua";
}

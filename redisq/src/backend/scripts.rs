//! The Lua, as one Redis Functions library (`FUNCTION LOAD`, called with `FCALL`): the
//! generated prelude of names ([`schema::lua_prelude`]), the shared library
//! (`lua/common.lua`, `lua/keys.lua`, `lua/lanes.lua`, `lua/outcomes.lua`) and one function per script
//! file. A library is loaded once per server and stays loaded, so a call does not pay for
//! setting the library up again (as an `EVALSHA` of the same text would, every call).
//!
//! The library's name and its functions' carry a hash of its text, `redisq_<hash>`, so
//! that workers of two versions of redisq can share a server during a rolling deploy.
//! A call whose function is not there (a new server, one restarted without persistence,
//! `FUNCTION FLUSH`) loads the library and is sent again.

use std::sync::LazyLock;

use redis::{ConnectionLike, FromRedisValue, RedisResult, ToRedisArgs};

use crate::schema;

/// What every script starts with after the prelude.
const LIBRARY: &str = concat!(
    include_str!("lua/common.lua"),
    include_str!("lua/keys.lua"),
    include_str!("lua/lanes.lua"),
    include_str!("lua/outcomes.lua"),
);

/// One function of the library: its script file's name and whether it may run when Redis
/// is at its memory limit. Those that only move tasks (claims, settles, recoveries) may, so
/// that workers go on draining a full Redis; the ones that add tasks may not, so that a
/// producer's push is refused whole, before anything is written.
pub(super) struct Function {
    name: &'static str,
    may_run_full: bool,
    body: &'static str,
}

macro_rules! functions {
    ($($(#[$doc:meta])* $name:ident => $file:literal, $full:literal;)*) => {
        $(
            $(#[$doc])*
            pub(super) static $name: Function = Function {
                name: $file,
                may_run_full: $full,
                body: include_str!(concat!("lua/", $file, ".lua")),
            };
        )*
        /// Every function, for the library.
        const ALL: &[&Function] = &[$(&$name),*];
    };
}

functions! {
    /// The claim protocol: acknowledge, record outcomes, promote, lease, take.
    SETTLE => "settle", true;
    /// Push tasks that keep status records.
    ENQUEUE => "enqueue", false;
    /// Push tasks with ordering keys.
    ENQUEUE_KEYED => "enqueue_keyed", false;
    /// Renew consumers' leases.
    RENEW => "renew", true;
    /// List consumers whose lease ran out.
    EXPIRED => "expired", true;
    /// Hand a consumer's tasks back.
    RECOVER => "recover", true;
    /// Move a dead letter back to its queue.
    REQUEUE => "requeue", true;
    /// Mark a record waited on.
    WAIT => "wait", true;
    /// Add delayed tasks, due by the server's clock.
    SCHEDULE => "schedule", false;
    /// Apply the dead-letter bounds.
    RETENTION => "retention", true;
}

/// The library's text and the prefix of its functions' names.
struct Library {
    source: String,
    prefix: String,
}

static LOADED: LazyLock<Library> = LazyLock::new(|| {
    let mut code = format!("local KEYS, ARGV\n{}{LIBRARY}", schema::lua_prelude());
    for function in ALL {
        code.push_str(&format!(
            "local function script_{}()\n{}\nend\n",
            function.name, function.body
        ));
    }
    // The hash of the code names the library and its functions.
    let hash = redis::Script::new(&code)
        .get_hash()
        .chars()
        .take(16)
        .collect::<String>();
    let prefix = format!("redisq_{hash}_");
    let mut source = format!("#!lua name=redisq_{hash}\n{code}");
    for function in ALL {
        let flags = if function.may_run_full {
            "'allow-oom'"
        } else {
            ""
        };
        source.push_str(&format!(
            "redis.register_function{{function_name = '{prefix}{name}', \
             callback = function(keys, args) KEYS, ARGV = keys, args; return script_{name}() end, \
             flags = {{ {flags} }}}}\n",
            name = function.name
        ));
    }
    Library { source, prefix }
});

impl Function {
    /// A call of this function: give it its keys and arguments, then invoke it.
    pub(super) fn call(&'static self) -> Call {
        Call {
            function: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a [`Function`], in the manner of redis-rs's `ScriptInvocation`.
pub(super) struct Call {
    function: &'static Function,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    /// Adds a key (every key the function touches is one).
    pub(super) fn key(&mut self, key: impl ToRedisArgs) -> &mut Call {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Adds an argument.
    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Call {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// Calls the function (`FCALL`), loading the library first when the server lacks it.
    pub(super) fn invoke<T: FromRedisValue>(&self, con: &mut dyn ConnectionLike) -> RedisResult<T> {
        let mut fcall = redis::cmd("FCALL");
        fcall
            .arg(format!("{}{}", LOADED.prefix, self.function.name))
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        match fcall.query(con) {
            Err(err) if is_missing(&err) => {
                redis::cmd("FUNCTION")
                    .arg("LOAD")
                    .arg("REPLACE")
                    .arg(&LOADED.source)
                    .query::<()>(con)?;
                fcall.query(con)
            }
            result => result,
        }
    }
}

/// Whether `err` says the function is not loaded.
fn is_missing(err: &redis::RedisError) -> bool {
    err.to_string().contains("Function not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_names_every_function_with_its_hash() {
        let source = &LOADED.source;
        assert!(source.starts_with("#!lua name=redisq_"));
        for function in ALL {
            let name = format!("function_name = '{}{}'", LOADED.prefix, function.name);
            assert!(source.contains(&name), "{name}");
        }
        assert!(source.contains("flags = { 'allow-oom' }"));
        assert!(source.contains(&format!("'{}enqueue', callback", LOADED.prefix)));
    }
}

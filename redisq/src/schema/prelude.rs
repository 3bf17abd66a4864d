//! The Lua prelude of every script, generated from the names and bounds of the schema.

use std::fmt::Write as _;

use super::names::{field, lane_index, owner, pushed_counter, stat, status_name, LANES, STATUSES};
use super::names::{DEAD_BYTES_COUNTER, FENCE_COUNTER, KEYED_COUNTER, KEYED_SEGMENT, KEYS_COUNTER};
use super::THROUGHPUT_TTL_SECS;
use super::{DONE_TTL_SECS, LATENCY_MAX, MINUTE_MS, SCRIPT_KEYS, SIGNAL_MAX};
use crate::task::Priority;

/// The Lua prelude of every script: the names above, as Lua tables `F` (record fields),
/// `STAT` (statistics fields) and `S` (status names), and the lane names, so that scripts
/// say `F.status`, never `'status'`.
pub(crate) fn lua_prelude() -> String {
    let mut lua = String::from("local F = {");
    for name in field::ALL {
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\nlocal STAT = {");
    for name in stat::ALL {
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\nlocal OWNER = {");
    for name in owner::ALL {
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\nlocal S = {");
    for status in STATUSES {
        let name = status_name(status);
        let _ = write!(lua, " {name} = '{name}',");
    }
    lua.push_str(" }\n");
    // Lanes by index in the order they are taken (LANES): names and pushed counters.
    lua.push_str("local LANE_NAMES = {");
    for lane in LANES {
        let _ = write!(lua, " '{}',", lane.lane_name());
    }
    lua.push_str(" }\nlocal PUSHED = {");
    for lane in LANES {
        let _ = write!(lua, " '{}',", pushed_counter(lane));
    }
    let _ = writeln!(
        lua,
        " }}\nlocal NORMAL = {}\nlocal FENCE_COUNTER = '{FENCE_COUNTER}'\n\
         local DEAD_BYTES = '{DEAD_BYTES_COUNTER}'\nlocal KEYED_COUNTER = '{KEYED_COUNTER}'\n\
         local KEYS_COUNTER = '{KEYS_COUNTER}'\nlocal KEYED = {KEYED_SEGMENT}",
        lane_index(Priority::Normal)
    );
    // The queue's keys every queue script gets first, in `QueueKeys::script_keys` order.
    lua.push_str("local QUEUE_KEYS = ");
    let _ = writeln!(lua, "{}", SCRIPT_KEYS.len());
    lua.push_str("local function queue_keys()\n  return {");
    for (n, name) in SCRIPT_KEYS.iter().enumerate() {
        let _ = write!(lua, " {name} = KEYS[{}],", n + 1);
    }
    lua.push_str(" }\nend\n");
    let _ = writeln!(
        lua,
        "local MINUTE_MS = {MINUTE_MS}\nlocal THROUGHPUT_TTL = {THROUGHPUT_TTL_SECS}\n\
         local SIGNAL_MAX = {SIGNAL_MAX}\nlocal LATENCY_MAX = {LATENCY_MAX}\n\
         local DONE_TTL = {DONE_TTL_SECS}"
    );
    // The two forms of a `state` value, as `State::parse` reads them, and a fence's.
    lua.push_str(
        "local function state_queued(lane, seq) return 'q:' .. lane .. ':' .. seq end\n\
         local function state_processing(now, consumer) return 'p:' .. now .. ':' .. consumer end\n\
         local STATE_KEYED = 'k:0:0'\n\
         local function fence_value(token, seq, segmented)\n  \
           return token .. ':' .. seq .. ':' .. (segmented and '1' or '0')\nend\n\
         local function fence_parse(value)\n  \
           local token, seq, segmented = string.match(value or '', '^(%d+):(%d+):?([01]?)$')\n  \
           return tonumber(token), tonumber(seq), segmented == '1'\nend\n\
         local function segment_value(lane, count) return lane .. ':' .. count end\n\
         local function segment_parse(value)\n  \
           local lane, count = string.match(value, '^(%d+):(%d+)$')\n  \
           return tonumber(lane), tonumber(count)\nend\n",
    );
    lua
}

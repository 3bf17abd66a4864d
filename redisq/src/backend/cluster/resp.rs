//! Reading the first key of packed commands, to route them by its slot.

/// Commands that name no key: they go to the node of the request before, or any master.
const KEYLESS: &[&[u8]] = &[
    b"MULTI",
    b"EXEC",
    b"DISCARD",
    b"PING",
    b"INFO",
    b"CONFIG",
    b"FUNCTION",
    b"CLUSTER",
    b"SCAN",
    b"TIME",
    b"CLIENT",
    b"SELECT",
    b"AUTH",
    b"HELLO",
    b"DBSIZE",
    b"ACL",
    b"WAIT",
    b"ASKING",
    b"COMMAND",
    b"SCRIPT",
    b"MEMORY",
    b"FLUSHALL",
    b"FLUSHDB",
];

/// The first key of the packed commands `packed` (RESP arrays of bulk strings): the
/// argument after the name, or after `numkeys` for `FCALL`/`EVALSHA`/`EVAL`; commands
/// without a key are skipped.
pub(super) fn first_key(packed: &[u8]) -> Option<&[u8]> {
    let mut rest = packed;
    while !rest.is_empty() {
        let (args, after) = command(rest)?;
        rest = after;
        let Some(name) = args.first() else { continue };
        let name = name.to_ascii_uppercase();
        if KEYLESS.contains(&name.as_slice()) {
            continue;
        }
        let key = match name.as_slice() {
            b"FCALL" | b"FCALL_RO" | b"EVALSHA" | b"EVAL" => {
                let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
                if keys == 0 {
                    continue;
                }
                args.get(3)
            }
            _ => args.get(1),
        };
        if let Some(key) = key {
            return Some(key);
        }
    }
    None
}

/// The arguments of the first command of `packed` (up to the fourth: no key comes later)
/// and what follows the command.
fn command(packed: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    let (count, mut rest) = header(packed, b'*')?;
    let mut args = Vec::new();
    for _ in 0..count {
        let (len, after) = header(rest, b'$')?;
        let arg = after.get(..len)?;
        rest = after.get(len + 2..)?;
        if args.len() < 4 {
            args.push(arg);
        }
    }
    Some((args, rest))
}

/// A RESP header `<kind><number>\r\n`: the number and what follows.
fn header(packed: &[u8], kind: u8) -> Option<(usize, &[u8])> {
    if packed.first() != Some(&kind) {
        return None;
    }
    let end = packed.iter().position(|b| *b == b'\r')?;
    let number = std::str::from_utf8(&packed[1..end]).ok()?.parse().ok()?;
    Some((number, packed.get(end + 2..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(cmd: &redis::Cmd) -> Vec<u8> {
        cmd.get_packed_command()
    }

    #[test]
    fn the_first_key_routes() {
        let get = packed(redis::cmd("GET").arg("a:{q}:x"));
        assert_eq!(first_key(&get), Some(&b"a:{q}:x"[..]));
        let fcall = packed(
            redis::cmd("FCALL")
                .arg("f")
                .arg(2)
                .arg("k1")
                .arg("k2")
                .arg("v"),
        );
        assert_eq!(first_key(&fcall), Some(&b"k1"[..]));
        let keyless = packed(redis::cmd("FCALL").arg("f").arg(0).arg("v"));
        assert_eq!(first_key(&keyless), None);
        assert_eq!(first_key(&packed(&redis::cmd("PING"))), None);
        let mut pipe = redis::pipe();
        pipe.cmd("TIME").cmd("HGETALL").arg("h");
        assert_eq!(first_key(&pipe.get_packed_pipeline()), Some(&b"h"[..]));
        let mut atomic = redis::pipe();
        atomic.atomic().cmd("LLEN").arg("l");
        assert_eq!(first_key(&atomic.get_packed_pipeline()), Some(&b"l"[..]));
        assert_eq!(first_key(b"garbage"), None);
    }
}

//! A stored value written back as the commands that recreate it: base
//! images and the final states of cross-shard transactions are logged this
//! way, so replay needs nothing but the ordinary command code. Big
//! collections are split into commands of at most `ITEMS_PER_CMD` items;
//! a `Sink` that bounds its pieces (a base image) also gets big strings
//! as SET + APPENDs and collections in commands of bounded bytes, and may
//! start a new record after any command.

use crate::keyspace::effects::encode_array;
use crate::keyspace::Value;
use crate::protocol::reply::fmt_i64;

pub const ITEMS_PER_CMD: usize = 64;

/// Every command `value_commands` writes (streams included). A RESTORE
/// payload may run these and nothing else.
pub const VALUE_COMMANDS: &[&str] =
    &["SET", "APPEND", "RPUSH", "HSET", "SADD", "ZADD", "XADD", "XSETID", "XGROUP", "XCLAIM", "PEXPIREAT"];

/// Is `name` one of `VALUE_COMMANDS` (any case)?
pub fn builds_value(name: &[u8]) -> bool {
    VALUE_COMMANDS.iter().any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

/// Where rebuilt commands go.
pub trait Sink {
    /// The buffer the next command is appended to.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// A command is complete: a base image may end its record here.
    fn command_done(&mut self) {}
    /// Most bytes of a value one command should carry; None: no bound
    /// (one SET per string, `ITEMS_PER_CMD` items per command).
    fn piece(&self) -> Option<usize> {
        None
    }
}

impl Sink for Vec<u8> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }
}

/// Append one command to the sink.
fn command<'a>(out: &mut dyn Sink, parts: impl Iterator<Item = &'a [u8]>, n: usize) {
    encode_array(out.buf(), parts, n);
    out.command_done();
}

/// Items of one collection gathered into commands of `full` items (and,
/// if the sink bounds pieces, about that many bytes) each.
struct Chunk<'a> {
    cmd: &'a [u8],
    key: &'a [u8],
    full: usize,
    max_bytes: usize,
    items: Vec<Vec<u8>>,
    bytes: usize,
    out: &'a mut dyn Sink,
    /// Commands written.
    n: usize,
}

impl Chunk<'_> {
    fn add(&mut self, parts: &[&[u8]]) {
        self.items.extend(parts.iter().map(|p| p.to_vec()));
        self.bytes += parts.iter().map(|p| p.len()).sum::<usize>();
        if self.items.len() >= self.full || self.bytes >= self.max_bytes {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.items.is_empty() {
            let parts = [self.cmd, self.key].into_iter().chain(self.items.iter().map(|i| &i[..]));
            command(self.out, parts, 2 + self.items.len());
            self.items.clear();
            self.bytes = 0;
            self.n += 1;
        }
    }
}

/// Append the commands that make `key` hold `value` with `expire` (0 =
/// none), assuming the key does not exist. Returns how many commands.
pub fn value_commands(out: &mut dyn Sink, key: &[u8], value: &Value, expire: i64) -> usize {
    let mut n = 0;
    let mut sb = [0u8; 24];
    if let Some(s) = value.str_bytes(&mut sb) {
        // A string longer than the sink's piece: SET its start, APPEND the rest.
        let piece = out.piece().unwrap_or(usize::MAX).max(1);
        let mut pieces = s.chunks(piece);
        command(out, [&b"SET"[..], key, pieces.next().unwrap_or(b"")].into_iter(), 3);
        n += 1;
        for p in pieces {
            command(out, [&b"APPEND"[..], key, p].into_iter(), 3);
            n += 1;
        }
    } else if let Value::Stream(st) = value {
        st.each_rebuild_command(key, |parts| {
            command(out, parts.iter().copied(), parts.len());
            n += 1;
        });
    } else {
        let (cmd, per_item): (&[u8], usize) = match value {
            Value::List(_) => (b"RPUSH", 1),
            Value::Hash(_) => (b"HSET", 2),
            Value::Set(_) => (b"SADD", 1),
            Value::ZSet(_) => (b"ZADD", 2),
            _ => unreachable!("strings and streams handled above"),
        };
        let max_bytes = out.piece().unwrap_or(usize::MAX);
        let mut chunk =
            Chunk { cmd, key, full: ITEMS_PER_CMD * per_item, max_bytes, items: Vec::new(), bytes: 0, out, n: 0 };
        match value {
            Value::List(l) => l.for_each(|e| chunk.add(&[e])),
            Value::Set(s) => s.for_each(|e| chunk.add(&[e])),
            Value::Hash(h) => h.for_each(|f, v| chunk.add(&[f, v])),
            // %.17g round-trips every double exactly.
            Value::ZSet(z) => z.for_each(|m, score| chunk.add(&[crate::util::fmt_g17(score).as_bytes(), m])),
            _ => {}
        }
        chunk.flush();
        n += chunk.n;
    }
    if expire != 0 {
        command(out, [&b"PEXPIREAT"[..], key, fmt_i64(&mut sb, expire)].into_iter(), 3);
        n += 1;
    }
    n
}

/// Append the commands that set `key` to `state` whatever it held before:
/// `DEL`, then the value's commands. Used for the final states a
/// cross-shard transaction pushes to a participant.
pub fn state_commands(out: &mut Vec<u8>, key: &[u8], state: Option<(&Value, i64)>) -> usize {
    encode_array(out, [&b"DEL"[..], key].into_iter(), 2);
    1 + match state {
        Some((v, exp)) => value_commands(out, key, v, exp),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::commands;

    #[test]
    fn strings_with_and_without_expiry() {
        let mut out = Vec::new();
        assert_eq!(value_commands(&mut out, b"k", &Value::from_bytes(b"123"), 0), 1);
        assert_eq!(value_commands(&mut out, b"k", &Value::from_bytes(b"v"), 1_700_000_000_000), 2);
        let cmds: Vec<Vec<Vec<u8>>> =
            commands(&out).map(|c| c.expect("parses").iter().map(|p| p.to_vec()).collect()).collect();
        assert_eq!(cmds[0], vec![b"SET".to_vec(), b"k".to_vec(), b"123".to_vec()]);
        assert_eq!(cmds[2], vec![b"PEXPIREAT".to_vec(), b"k".to_vec(), b"1700000000000".to_vec()]);
    }
}

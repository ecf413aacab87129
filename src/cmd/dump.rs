//! DUMP and RESTORE in Redis's own payload format (see `rdb::payload`),
//! so that keys move between redis-server and shardis both ways.
//!
//! RESTORE also reads the format older shardis versions wrote, which
//! users may hold:
//!
//! ```text
//! "SHDS" | version (1 byte) | the commands that rebuild the value, on the
//! empty key name, as RESP arrays (persist::rebuild) | CRC32C of all that (4 bytes LE)
//! ```
//! Those commands replay onto a scratch keyspace with the ordinary command
//! code. Only the commands that build values run from such a payload (a
//! RESTORE inside one would nest without limit); a payload carrying
//! anything else is refused as a bad format, whatever its checksum.

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::{Keyspace, KEEP_TTL};
use crate::persist::{crc32c::crc32c, load::Replayer};
use crate::util::parse_i64;

const MAGIC: &[u8] = b"SHDS";
const VERSION: u8 = 1;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::KEYSPACE).group(Group::Generic)
}

pub static COMMANDS: &[CommandDef] = &[
    c("dump", 2, READONLY, &[at(1, RO | ACCESS)], dump).since("2.6.0").tips(&["nondeterministic_output"]),
    c("restore", -4, WRITE | DENYOOM, &[at(1, OW | UPDATE)], restore)
        .acl(acl::KEYSPACE | acl::DANGEROUS)
        .since("2.6.0")
        .event(ev::GENERIC, "restore"),
];

/// The serialized form of a value: Redis's DUMP payload.
pub fn serialize(value: &crate::keyspace::Value) -> Vec<u8> {
    crate::rdb::payload::dump(value)
}

/// The old shardis payload of a value (tests of the old format).
#[cfg(test)]
fn serialize_v1(value: &crate::keyspace::Value) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    crate::persist::rebuild::value_commands(&mut out, b"", value, 0);
    let crc = crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Rebuild a value from a DUMP payload (Redis's, or the old shardis
/// format), or Redis's error text.
pub fn deserialize(payload: &[u8]) -> Result<crate::keyspace::Value, &'static str> {
    if is_v1(payload) {
        return deserialize_v1(payload);
    }
    crate::rdb::payload::restore(payload)
}

/// Is this the old shardis format with a right checksum? (No RDB payload
/// starts with "SHDS": 'S' is no object type.)
fn is_v1(payload: &[u8]) -> bool {
    payload.len() >= MAGIC.len() + 1 + 4 && payload.starts_with(MAGIC) && payload[MAGIC.len()] == VERSION
}

fn deserialize_v1(payload: &[u8]) -> Result<crate::keyspace::Value, &'static str> {
    const WRONG: &str = "ERR DUMP payload version or checksum are wrong";
    const BAD: &str = "ERR Bad data format";
    if payload.len() < MAGIC.len() + 1 + 4 || !payload.starts_with(MAGIC) || payload[MAGIC.len()] != VERSION {
        return Err(WRONG);
    }
    let (body, crc) = payload.split_at(payload.len() - 4);
    if crc32c(body).to_le_bytes() != crc {
        return Err(WRONG);
    }
    let mut ks = Keyspace::new();
    let mut rp = Replayer::default();
    rp.values_only = true;
    rp.apply_payload(&mut ks, 0, &body[MAGIC.len() + 1..]).map_err(|_| BAD)?;
    if rp.failed > 0 {
        return Err(BAD);
    }
    ks.remove(0, b"").map(|e| e.into_value()).ok_or(BAD)
}

/// DUMP key
fn dump(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    match ctx.ks.lookup(db, &args[1], now) {
        None => ctx.out.null(),
        Some(e) => {
            let payload = serialize(&e.value);
            ctx.out.bulk(&payload);
        }
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
fn restore(ctx: &mut Ctx, args: &Args) {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None, None);
    let mut i = 4;
    while i < args.len() {
        let more = i + 1 < args.len();
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "absttl") {
            absttl = true;
        } else if args.is(i, "idletime") && more {
            match parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => idle = Some(n),
                Some(_) => return ctx.error("ERR Invalid IDLETIME value, must be >= 0"),
                None => return ctx.error(err::NOT_INT),
            }
            i += 1;
        } else if args.is(i, "freq") && more {
            match parse_i64(&args[i + 1]) {
                Some(n) if (0..=255).contains(&n) => freq = Some(n as u8),
                Some(_) => return ctx.error("ERR Invalid FREQ value, must be >= 0 and <= 255"),
                None => return ctx.error(err::NOT_INT),
            }
            i += 1;
        } else {
            return ctx.error(err::SYNTAX);
        }
        i += 1;
    }
    let ttl = match parse_i64(&args[2]) {
        Some(t) if t >= 0 => t,
        Some(_) => return ctx.error("ERR Invalid TTL value, must be >= 0"),
        None => return ctx.error(err::NOT_INT),
    };
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    if !replace && ctx.ks.lookup(db, key, now).is_some() {
        return ctx.error("BUSYKEY Target key name already exists.");
    }
    let value = match deserialize(&args[3]) {
        Ok(v) => v,
        Err(e) => return ctx.error(e),
    };
    let expire = match ttl {
        0 => 0,
        t if absttl => t,
        t => t.saturating_add(now),
    };
    if expire != 0 && expire <= now {
        // Already expired: the key is (re)moved, as Redis does.
        ctx.ks.delete(db, key, now);
        ctx.propagate(&[&b"DEL"[..], key]);
        return ctx.out.ok();
    }
    ctx.ks.remove(db, key);
    ctx.ks.set(db, key, value, if expire == 0 { KEEP_TTL } else { expire });
    if expire == 0 {
        // A replaced key must not keep the old key's expiry.
        ctx.ks.set_expire(db, key, 0);
    }
    ctx.ks.restore_clock(db, key, idle, freq);
    // Logged with an absolute time, so a replay gets the same expiry.
    let mut nb = [0u8; 24];
    let at = crate::protocol::reply::fmt_i64(&mut nb, expire);
    ctx.propagate(&[&b"RESTORE"[..], key, at, &args[3], b"REPLACE", b"ABSTTL"]);
    ctx.out.ok();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{self, OwnedArgs, Rng};
    use crate::keyspace::Value;
    use crate::persist::rebuild;
    use crate::protocol::reply::Reply;

    fn run(ks: &mut Keyspace, parts: &[&[u8]]) -> Vec<u8> {
        let owned = OwnedArgs::from_slices(parts);
        let args = owned.args();
        let (_, def) = cmd::lookup(args.get(0)).expect("command");
        let mut buf = Vec::new();
        let mut rng = Rng::new(1);
        let mut ctx = Ctx::new(ks, 0, 1_000_000, Reply::new(&mut buf, false), &mut rng);
        cmd::exec(def, &mut ctx, &args);
        buf
    }

    fn bulk_payload(reply: &[u8]) -> Vec<u8> {
        // "$<len>\r\n<payload>\r\n"
        let nl = reply.iter().position(|&b| b == b'\n').expect("header");
        reply[nl + 1..reply.len() - 2].to_vec()
    }

    /// A payload as `serialize` frames it, around arbitrary commands.
    fn payload_of(cmds: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        for c in cmds {
            crate::keyspace::effects::encode_array(&mut out, c.iter().copied(), c.len());
        }
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn payloads_run_only_value_commands() {
        const BAD: &[u8] = b"-ERR Bad data format\r\n";
        let mut ks = Keyspace::new();
        run(&mut ks, &[b"SET", b"keep", b"1"]);
        let inner = payload_of(&[&[b"SET", b"", b"v"]]);
        assert_eq!(run(&mut ks, &[b"RESTORE", b"a", b"0", &inner]), b"+OK\r\n");
        // A RESTORE inside a payload, however deep, is refused at once.
        let mut nested = inner.clone();
        for _ in 0..3 {
            nested = payload_of(&[&[b"RESTORE", b"", b"0", &nested]]);
        }
        assert_eq!(run(&mut ks, &[b"RESTORE", b"b", b"0", &nested]), BAD);
        for cmd in [
            &[&b"FLUSHALL"[..]][..],
            &[b"SELECT", b"1"],
            &[b"CONFIG", b"SET", b"maxclients", b"1"],
            &[b"DEBUG", b"SLEEP", b"1"],
            &[b"SETRANGE", b"", b"1000", b"x"],
        ] {
            let p = payload_of(&[&[b"SET", b"", b"v"], cmd]);
            assert_eq!(run(&mut ks, &[b"RESTORE", b"c", b"0", &p]), BAD, "{:?}", String::from_utf8_lossy(cmd[0]));
        }
        assert_eq!(ks.lookup(0, b"keep", 0).map(|e| serialize(&e.value)), Some(serialize(&Value::from_bytes(b"1"))));
        assert!(ks.lookup(0, b"b", 0).is_none() && ks.lookup(0, b"c", 0).is_none());
    }

    #[test]
    fn serialized_values_use_only_value_commands() {
        let mut ks = Keyspace::new();
        for cmd in [
            &[&b"XADD"[..], b"x", b"1-1", b"f", b"v"][..],
            &[b"XADD", b"x", b"2-1", b"f", b"v"],
            &[b"XGROUP", b"CREATE", b"x", b"g", b"0"],
            &[b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"x", b">"],
            &[b"XDEL", b"x", b"2-1"],
            &[b"XADD", b"e", b"MAXLEN", b"0", b"5-5", b"f", b"v"],
            &[b"RPUSH", b"l", b"a"],
            &[b"HSET", b"h", b"f", b"v"],
            &[b"SADD", b"s", b"1", b"x"],
            &[b"ZADD", b"z", b"1", b"m"],
            &[b"PFADD", b"hll", b"a"],
        ] {
            run(&mut ks, cmd);
        }
        for key in [&b"x"[..], b"e", b"l", b"h", b"s", b"z", b"hll"] {
            let v = &ks.lookup(0, key, 0).expect("key").value;
            let mut out = Vec::new();
            rebuild::value_commands(&mut out, b"", v, 1);
            let payload = serialize_v1(v);
            for c in crate::persist::record::commands(&out) {
                let name = c.expect("parses")[0].to_vec();
                assert!(rebuild::builds_value(&name), "{}", String::from_utf8_lossy(&name));
            }
            let copy = [key, b"-copy"].concat();
            assert_eq!(run(&mut ks, &[b"RESTORE", &copy, b"0", &payload]), b"+OK\r\n");
        }
    }

    #[test]
    fn every_type_round_trips() {
        let mut ks = Keyspace::new();
        for cmd in [
            &[&b"SET"[..], b"s", b"hello"][..],
            &[b"RPUSH", b"l", b"a", b"b", b"c"],
            &[b"HSET", b"h", b"f", b"v", b"g", b"w"],
            &[b"SADD", b"st", b"1", b"2", b"x"],
            &[b"ZADD", b"z", b"1.5", b"m", b"-2", b"n"],
        ] {
            run(&mut ks, cmd);
        }
        for key in [&b"s"[..], b"l", b"h", b"st", b"z"] {
            let payload = bulk_payload(&run(&mut ks, &[b"DUMP", key]));
            let copy = [key, b"-copy"].concat();
            assert_eq!(run(&mut ks, &[b"RESTORE", &copy, b"0", &payload]), b"+OK\r\n");
            assert_eq!(
                run(&mut ks, &[b"RESTORE", &copy, b"0", &payload]),
                b"-BUSYKEY Target key name already exists.\r\n"
            );
            let a = ks.lookup(0, key, 0).map(|e| serialize(&e.value));
            let b = ks.lookup(0, &copy, 0).map(|e| serialize(&e.value));
            assert_eq!(a, b, "{}", String::from_utf8_lossy(key));
            // One flipped bit anywhere is refused.
            let mut bad = payload.clone();
            let at = bad.len() / 2;
            bad[at] ^= 4;
            assert_eq!(
                run(&mut ks, &[b"RESTORE", b"other", b"0", &bad]),
                b"-ERR DUMP payload version or checksum are wrong\r\n"
            );
        }
        let payload = bulk_payload(&run(&mut ks, &[b"DUMP", b"s"]));
        assert_eq!(run(&mut ks, &[b"RESTORE", b"s", b"5000", &payload, b"REPLACE"]), b"+OK\r\n");
        assert_eq!(ks.lookup(0, b"s", 0).map(|e| e.expire()), Some(1_005_000));
        assert_eq!(run(&mut ks, &[b"RESTORE", b"t", b"-1", &payload]), b"-ERR Invalid TTL value, must be >= 0\r\n");
        assert_eq!(run(&mut ks, &[b"DUMP", b"missing"]), b"$-1\r\n");
    }
}

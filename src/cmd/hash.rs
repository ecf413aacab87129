//! Hash commands: HSET and the rest of Redis 7.0's hash family. Replies,
//! RESP3 types and error texts follow Redis; HINCRBYFLOAT logs the HSET of
//! its result, as Redis propagates it.

use super::flags::*;
use super::keys::{parse_scan_args_ext, parse_scan_cursor};
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{arity_error, err, Args, Ctx};
use crate::keyspace::hash::Hash;
use crate::keyspace::notify as ev;
use crate::keyspace::WrongType;
use crate::protocol::reply::fmt_i64;
use crate::util::longdouble as ld;
use crate::util::{glob_match, parse_i64};

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::HASH).group(Group::Hash)
}

pub static COMMANDS: &[CommandDef] = &[
    c("hset", -4, WRITE | DENYOOM | FAST, &[at(1, RW | UPDATE)], hset).since("2.0.0").event(ev::HASH, "hset"),
    c("hmset", -4, WRITE | DENYOOM | FAST, &[at(1, RW | UPDATE)], hmset).since("2.0.0").event(ev::HASH, "hset"),
    c("hsetnx", 4, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], hsetnx).since("2.0.0").event(ev::HASH, "hset"),
    c("hget", 3, READONLY | FAST, &[at(1, RO | ACCESS)], hget).since("2.0.0"),
    c("hmget", -3, READONLY | FAST, &[at(1, RO | ACCESS)], hmget).since("2.0.0"),
    c("hgetall", 2, READONLY, &[at(1, RO | ACCESS)], hgetall).since("2.0.0").tips(&["nondeterministic_output_order"]),
    c("hkeys", 2, READONLY, &[at(1, RO | ACCESS)], hkeys).since("2.0.0").tips(&["nondeterministic_output_order"]),
    c("hvals", 2, READONLY, &[at(1, RO | ACCESS)], hvals).since("2.0.0").tips(&["nondeterministic_output_order"]),
    c("hdel", -3, WRITE | FAST, &[at(1, RW | DELETE)], hdel).since("2.0.0").event(ev::HASH, "hdel"),
    c("hexists", 3, READONLY | FAST, &[at(1, RO)], hexists).since("2.0.0"),
    c("hlen", 2, READONLY | FAST, &[at(1, RO)], hlen).since("2.0.0"),
    c("hstrlen", 3, READONLY | FAST, &[at(1, RO)], hstrlen).since("3.2.0"),
    c("hincrby", 4, WRITE | DENYOOM | FAST, &[at(1, RW | ACCESS | UPDATE)], hincrby)
        .since("2.0.0")
        .event(ev::HASH, "hincrby"),
    c("hincrbyfloat", 4, WRITE | DENYOOM | FAST, &[at(1, RW | ACCESS | UPDATE)], hincrbyfloat)
        .since("2.6.0")
        .event(ev::HASH, "hincrbyfloat"),
    c("hrandfield", -2, READONLY, &[at(1, RO | ACCESS)], hrandfield).since("6.2.0").tips(&["nondeterministic_output"]),
    c("hscan", -3, READONLY, &[at(1, RO | ACCESS)], hscan).since("2.8.0").tips(&["nondeterministic_output"]),
];

/// Run `f` on the hash at `key` (a new one if absent and `create`), as
/// `Keyspace::modify_typed`.
fn modify<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut Hash) -> (R, bool),
) -> Result<Option<R>, WrongType> {
    ctx.ks.modify_typed(ctx.db, key, ctx.now, if create { Some(&Hash::new) } else { None }, f)
}

fn hset(ctx: &mut Ctx, args: &Args) {
    hset_generic(ctx, args, "hset")
}

fn hmset(ctx: &mut Ctx, args: &Args) {
    hset_generic(ctx, args, "hmset")
}

/// HSET key field value [field value ...] (replies the new fields) and
/// HMSET (replies OK).
fn hset_generic(ctx: &mut Ctx, args: &Args, name: &str) {
    if args.len() % 2 == 1 {
        return arity_error(&mut ctx.out, name);
    }
    let r = modify(ctx, &args[1], true, |h| {
        let mut created = 0;
        for i in (2..args.len()).step_by(2) {
            created += h.set(&args[i], &args[i + 1]) as i64;
        }
        (created, true)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(n) if name == "hset" => ctx.out.int(n.unwrap_or(0)),
        Ok(_) => ctx.out.ok(),
    }
}

/// HSETNX key field value
fn hsetnx(ctx: &mut Ctx, args: &Args) {
    let r = modify(ctx, &args[1], true, |h| {
        if h.contains(&args[2]) {
            (0, false)
        } else {
            h.set(&args[2], &args[3]);
            (1, true)
        }
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(n) => ctx.out.int(n.unwrap_or(0)),
    }
}

/// HGET key field
fn hget(ctx: &mut Ctx, args: &Args) {
    let Ctx { ks, out, db, now, .. } = ctx;
    match ks.get_typed::<Hash>(*db, &args[1], *now) {
        Ok(None) => out.null(),
        Err(e) => out.error(e.msg()),
        Ok(Some(h)) => match h.get(&args[2]) {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
    }
}

/// HMGET key field [field ...]: a missing key answers nulls.
fn hmget(ctx: &mut Ctx, args: &Args) {
    let Ctx { ks, out, db, now, .. } = ctx;
    let h = match ks.get_typed::<Hash>(*db, &args[1], *now) {
        Err(e) => return out.error(e.msg()),
        Ok(h) => h,
    };
    out.array(args.len() - 2);
    for i in 2..args.len() {
        match h.and_then(|h| h.get(&args[i])) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
}

/// HGETALL key (a map in RESP3), HKEYS key, HVALS key.
fn hgetall(ctx: &mut Ctx, args: &Args) {
    hgetall_generic(ctx, args, true, true)
}

fn hkeys(ctx: &mut Ctx, args: &Args) {
    hgetall_generic(ctx, args, true, false)
}

fn hvals(ctx: &mut Ctx, args: &Args) {
    hgetall_generic(ctx, args, false, true)
}

fn hgetall_generic(ctx: &mut Ctx, args: &Args, keys: bool, vals: bool) {
    let Ctx { ks, out, db, now, .. } = ctx;
    let h = match ks.get_typed::<Hash>(*db, &args[1], *now) {
        Err(e) => return out.error(e.msg()),
        Ok(h) => h,
    };
    let n = h.map_or(0, |h| h.len());
    if keys && vals {
        out.map(n);
    } else {
        out.array(n);
    }
    if let Some(h) = h {
        h.for_each(|k, v| {
            if keys {
                out.bulk(k);
            }
            if vals {
                out.bulk(v);
            }
        });
    }
}

/// HDEL key field [field ...]; the key goes when its last field does.
fn hdel(ctx: &mut Ctx, args: &Args) {
    let r = modify(ctx, &args[1], false, |h| {
        let mut n = 0;
        for i in 2..args.len() {
            n += h.remove(&args[i]) as i64;
        }
        (n, n > 0)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(n) => ctx.out.int(n.unwrap_or(0)),
    }
}

/// HEXISTS key field
fn hexists(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Hash>(&args[1]) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(h) => {
            let n = h.is_some_and(|h| h.contains(&args[2])) as i64;
            ctx.out.int(n)
        }
    }
}

/// HLEN key
fn hlen(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Hash>(&args[1]) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(h) => {
            let n = h.map_or(0, |h| h.len()) as i64;
            ctx.out.int(n)
        }
    }
}

/// HSTRLEN key field
fn hstrlen(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Hash>(&args[1]) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(h) => {
            let n = h.and_then(|h| h.get(&args[2])).map_or(0, |v| v.len()) as i64;
            ctx.out.int(n)
        }
    }
}

/// HINCRBY key field increment
fn hincrby(ctx: &mut Ctx, args: &Args) {
    let Some(incr) = parse_i64(&args[3]) else { return ctx.out.error(err::NOT_INT) };
    let r = modify(ctx, &args[1], true, |h| {
        let cur = match h.get(&args[2]) {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(n) => n,
                None => return (Err("ERR hash value is not an integer"), false),
            },
        };
        let Some(n) = cur.checked_add(incr) else { return (Err(err::OVERFLOW), false) };
        let mut buf = [0u8; 24];
        h.set(&args[2], fmt_i64(&mut buf, n));
        (Ok(n), true)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(Some(Ok(n))) => ctx.out.int(n),
        Ok(Some(Err(e))) => ctx.out.error(e),
        Ok(None) => {}
    }
}

/// HINCRBYFLOAT key field increment: Redis's long double arithmetic (as
/// INCRBYFLOAT); logged as the HSET of the result so a replay does not
/// depend on the arithmetic.
fn hincrbyfloat(ctx: &mut Ctx, args: &Args) {
    let Some(incr) = ld::parse(&args[3]) else { return ctx.out.error(err::NOT_FLOAT) };
    if !ld::is_finite(&incr) {
        return ctx.out.error("ERR value is NaN or Infinity");
    }
    let r = modify(ctx, &args[1], true, |h| {
        let cur = match h.get(&args[2]) {
            None => ld::zero(),
            Some(v) => match ld::parse(v) {
                Some(x) => x,
                None => return (Err("ERR hash value is not a float"), false),
            },
        };
        let sum = ld::add(&cur, &incr);
        if !ld::is_finite(&sum) {
            return (Err("ERR increment would produce NaN or Infinity"), false);
        }
        let s = ld::fmt_human(&sum);
        h.set(&args[2], &s);
        (Ok(s), true)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(Some(Ok(s))) => {
            ctx.out.bulk(&s);
            ctx.propagate(&[&b"HSET"[..], &args[1], &args[2], &s]);
        }
        Ok(Some(Err(e))) => ctx.out.error(e),
        Ok(None) => {}
    }
}

/// Largest reply HRANDFIELD/SRANDMEMBER will build for a negative count:
/// Redis would try to send any size; a shard must not run out of memory.
pub(super) const MAX_RANDOM_REPLY: u64 = 1 << 27;

/// Parse a RANDFIELD/SRANDMEMBER count (-LONG_MAX..=LONG_MAX).
pub(super) fn parse_rand_count(a: &[u8]) -> Result<i64, &'static str> {
    match parse_i64(a) {
        None => Err(err::NOT_INT),
        Some(i64::MIN) => {
            Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        }
        Some(n) => Ok(n),
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx, args: &Args) {
    if args.len() == 2 {
        let Ctx { ks, out, db, now, rng, .. } = ctx;
        let mut rnd = || rng.next_u64();
        return match ks.get_typed::<Hash>(*db, &args[1], *now) {
            Ok(None) => out.null(),
            Err(e) => out.error(e.msg()),
            Ok(Some(h)) => match h.random(&mut rnd) {
                Some((k, _)) => out.bulk(k),
                None => out.null(),
            },
        };
    }
    let count = match parse_rand_count(&args[2]) {
        Ok(n) => n,
        Err(e) => return ctx.out.error(e),
    };
    if args.len() > 4 || (args.len() == 4 && !args.is(3, "withvalues")) {
        return ctx.out.error(err::SYNTAX);
    }
    let withvalues = args.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return ctx.out.error("ERR value is out of range");
    }
    let Ctx { ks, out, db, now, rng, .. } = ctx;
    let mut rnd = || rng.next_u64();
    let h = match ks.get_typed::<Hash>(*db, &args[1], *now) {
        Ok(None) => return out.array(0),
        Err(e) => return out.error(e.msg()),
        Ok(Some(h)) => h,
    };
    let size = h.len();
    let resp3 = out.resp3;
    let emit = |out: &mut crate::protocol::reply::Reply, k: &[u8], v: &[u8]| {
        if withvalues && resp3 {
            out.array(2);
        }
        out.bulk(k);
        if withvalues {
            out.bulk(v);
        }
    };
    let per = if withvalues && !resp3 { 2 } else { 1 };
    if count == 0 || size == 0 {
        return out.array(0);
    }
    // Negative: that many picks, repeats allowed, in random order.
    if count < 0 || count == 1 {
        let n = count.unsigned_abs();
        if n > MAX_RANDOM_REPLY {
            return out.error("ERR value is out of range");
        }
        out.array(n as usize * per);
        for _ in 0..n {
            if let Some((k, v)) = h.random(&mut rnd) {
                emit(out, k, v);
            }
        }
        return;
    }
    let count = count as usize;
    let mut pairs = h.pairs();
    if count >= size {
        out.array(size * per);
        for (k, v) in pairs {
            emit(out, k, v);
        }
        return;
    }
    // Distinct picks: a partial shuffle of all pairs.
    for i in 0..count {
        let j = i + (rnd() % (size - i) as u64) as usize;
        pairs.swap(i, j);
    }
    out.array(count * per);
    for &(k, v) in &pairs[..count] {
        emit(out, k, v);
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(ctx: &mut Ctx, args: &Args) {
    let Some(cursor) = parse_scan_cursor(&args[2]) else { return ctx.out.error("ERR invalid cursor") };
    let Ctx { ks, out, db, now, .. } = ctx;
    let h = match ks.get_typed::<Hash>(*db, &args[1], *now) {
        Ok(None) => return scan_reply(out, 0, &[]),
        Err(e) => return out.error(e.msg()),
        Ok(Some(h)) => h,
    };
    let sa = match parse_scan_args_ext(args, 2, false) {
        Ok(sa) => sa,
        Err(e) => return out.error(&e),
    };
    let mut items: Vec<&[u8]> = Vec::new();
    let next = h.scan(cursor, sa.count, |k, v| {
        if sa.pattern.as_deref().is_none_or(|p| glob_match(p, k, false)) {
            items.push(k);
            items.push(v);
        }
    });
    scan_reply(out, next, &items)
}

/// `[cursor, [items...]]`, as every SCAN variant replies.
pub(super) fn scan_reply(out: &mut crate::protocol::reply::Reply, cursor: u64, items: &[&[u8]]) {
    out.array(2);
    out.bulk(cursor.to_string().as_bytes());
    out.array(items.len());
    for i in items {
        out.bulk(i);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{exec, lookup, Ctx, OwnedArgs, Rng};
    use crate::keyspace::Keyspace;
    use crate::protocol::reply::Reply;

    const NOW: i64 = 1_700_000_000_000;

    pub(crate) fn run_proto(ks: &mut Keyspace, cmd: &str, resp3: bool) -> String {
        let parts: Vec<&[u8]> = cmd.split(' ').map(|s| s.as_bytes()).collect();
        let mut buf = Vec::new();
        let mut rng = Rng::new(7);
        let args = OwnedArgs::from_slices(&parts);
        let (_, def) = lookup(parts[0]).expect("known command");
        let mut ctx = Ctx {
            ks,
            db: 0,
            now: NOW,
            out: Reply::new(&mut buf, resp3),
            max_bulk_len: 512 << 20,
            rng: &mut rng,
            facts: &crate::cmd::Facts::SINGLE,
            scripts: None,
        };
        if !super::super::arity_ok(def, parts.len()) {
            super::super::arity_error(&mut ctx.out, def.name);
        } else {
            exec(def, &mut ctx, &args.args());
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn check(cases: &[(&str, &str)]) {
        let mut ks = Keyspace::new();
        for (cmd, want) in cases {
            assert_eq!(run_proto(&mut ks, cmd, false), *want, "command: {cmd}");
        }
    }

    #[test]
    fn basic_replies() {
        check(&[
            ("HSET h a 1 b 2", ":2\r\n"),
            ("HSET h a 3", ":0\r\n"),
            ("HSET h a", "-ERR wrong number of arguments for 'hset' command\r\n"),
            ("HMSET h c 4", "+OK\r\n"),
            ("HGET h a", "$1\r\n3\r\n"),
            ("HGET h zz", "$-1\r\n"),
            ("HMGET h a zz", "*2\r\n$1\r\n3\r\n$-1\r\n"),
            ("HMGET nokey a", "*1\r\n$-1\r\n"),
            ("HGETALL h", "*6\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n4\r\n"),
            ("HKEYS h", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
            ("HVALS nokey", "*0\r\n"),
            ("HLEN h", ":3\r\n"),
            ("HSTRLEN h a", ":1\r\n"),
            ("HEXISTS h b", ":1\r\n"),
            ("HSETNX h b 9", ":0\r\n"),
            ("HSETNX h d 9", ":1\r\n"),
            ("HDEL h a b c d x", ":4\r\n"),
            ("EXISTS h", ":0\r\n"),
            ("SET s x", "+OK\r\n"),
            ("HGET s a", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            ("HSET s a 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            ("HINCRBY n f 5", ":5\r\n"),
            ("HINCRBY n f x", "-ERR value is not an integer or out of range\r\n"),
            ("HINCRBY n f 9223372036854775807", "-ERR increment or decrement would overflow\r\n"),
            ("HSET n s abc", ":1\r\n"),
            ("HINCRBY n s 1", "-ERR hash value is not an integer\r\n"),
            ("HINCRBYFLOAT n s 1", "-ERR hash value is not a float\r\n"),
            ("HINCRBYFLOAT n f 0.5", "$3\r\n5.5\r\n"),
            ("HINCRBYFLOAT n f inf", "-ERR value is NaN or Infinity\r\n"),
            ("HINCRBYFLOAT n f x", "-ERR value is not a valid float\r\n"),
            (
                "HINCRBYFLOAT n g 1e70",
                "$71\r\n10000000000000000000222479489586148259025995410601157579323600873193472\r\n",
            ),
            ("OBJECT ENCODING n", "$9\r\nhashtable\r\n"),
            ("HRANDFIELD nokey", "$-1\r\n"),
            ("HRANDFIELD nokey 3", "*0\r\n"),
            ("HRANDFIELD s 0", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            ("HRANDFIELD n 1 withvalues x", "-ERR syntax error\r\n"),
            ("HRANDFIELD n 9223372036854775807 withvalues", "-ERR value is out of range\r\n"),
            (
                "HRANDFIELD n -9223372036854775808",
                "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n",
            ),
            ("HSCAN nokey 0 COUNT 0", "*2\r\n$1\r\n0\r\n*0\r\n"),
            ("HSCAN n x", "-ERR invalid cursor\r\n"),
            ("HSCAN n 0 COUNT 0", "-ERR syntax error\r\n"),
            ("HSCAN n 0 TYPE string", "-ERR syntax error\r\n"),
        ]);
    }

    #[test]
    fn resp3_and_random() {
        let mut ks = Keyspace::new();
        run_proto(&mut ks, "HSET h a 1 b 2", true);
        assert_eq!(run_proto(&mut ks, "HGETALL h", true), "%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n");
        assert_eq!(run_proto(&mut ks, "HGETALL x", true), "%0\r\n");
        assert_eq!(
            run_proto(&mut ks, "HRANDFIELD h 5 WITHVALUES", true),
            "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert_eq!(run_proto(&mut ks, "HRANDFIELD h 5 WITHVALUES", false).lines().next(), Some("*4"));
        assert_eq!(run_proto(&mut ks, "HRANDFIELD h -5", false).lines().next(), Some("*5"));
        assert_eq!(run_proto(&mut ks, "HRANDFIELD h -3 WITHVALUES", true).lines().next(), Some("*3"));
        assert_eq!(run_proto(&mut ks, "HRANDFIELD h 1", true).lines().next(), Some("*1"));
        assert_eq!(
            run_proto(&mut ks, "HSCAN h 0", true),
            "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert_eq!(run_proto(&mut ks, "HSCAN h 0 MATCH b", true), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n");
    }

    #[test]
    fn writes_touch_and_log() {
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        run_proto(&mut ks, "HSET h f 1", false);
        let d = ks.dirty;
        assert_eq!(run_proto(&mut ks, "HDEL h nofield", false), ":0\r\n");
        assert_eq!(ks.dirty, d);
        assert_eq!(run_proto(&mut ks, "HINCRBYFLOAT h f 1.5", false), "$3\r\n2.5\r\n");
        let mut logged = vec![];
        ks.effects.drain_each(|_, b| logged.push(String::from_utf8_lossy(b).into_owned()));
        assert_eq!(
            logged,
            [
                "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\n1\r\n",
                "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$3\r\n2.5\r\n"
            ]
        );
    }
}

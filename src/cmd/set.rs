//! Set commands: SADD and the rest of Redis 7.0's set family, including the
//! multi-key algebra (SINTER/SUNION/SDIFF, their STORE forms, SINTERCARD,
//! SMOVE): the shard layer gathers every key onto one keyspace first, so
//! these run as if the keyspace were whole. SPOP logs the concrete SREM (or
//! DEL) of what it popped.

use super::flags::*;
use super::hash::{parse_rand_count, scan_reply, MAX_RANDOM_REPLY};
use super::keys::{parse_scan_args_ext, parse_scan_cursor};
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::set::Set;
use crate::keyspace::{Keyspace, Value, WrongType};
use crate::util::{glob_match, parse_i64};

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::SET).group(Group::Set)
}

pub static COMMANDS: &[CommandDef] = &[
    c("sadd", -3, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], sadd).since("1.0.0").event(ev::SET, "sadd"),
    c("srem", -3, WRITE | FAST, &[at(1, RW | DELETE)], srem).since("1.0.0").event(ev::SET, "srem"),
    c("smembers", 2, READONLY, &[at(1, RO | ACCESS)], smembers).since("1.0.0").tips(&["nondeterministic_output_order"]),
    c("sismember", 3, READONLY | FAST, &[at(1, RO)], sismember).since("1.0.0"),
    c("smismember", -3, READONLY | FAST, &[at(1, RO | ACCESS)], smismember).since("6.2.0"),
    c("scard", 2, READONLY | FAST, &[at(1, RO)], scard).since("1.0.0"),
    c("spop", -2, WRITE | FAST, &[at(1, RW | ACCESS | DELETE)], spop)
        .since("1.0.0")
        .tips(&["nondeterministic_output"])
        .event(ev::SET, "spop"),
    c("srandmember", -2, READONLY, &[at(1, RO | ACCESS)], srandmember)
        .since("1.0.0")
        .tips(&["nondeterministic_output"]),
    c("smove", 4, WRITE | FAST, &[at(1, RW | ACCESS | DELETE), at(2, RW | INSERT)], smove).since("1.0.0"),
    c("sinter", -2, READONLY, &[at(1, RO | ACCESS).range(-1, 1, 0)], sinter)
        .since("1.0.0")
        .tips(&["nondeterministic_output_order"]),
    c("sintercard", -3, READONLY, &[at(1, RO | ACCESS).keynum(0, 1, 1)], sintercard).since("7.0.0"),
    c("sunion", -2, READONLY, &[at(1, RO | ACCESS).range(-1, 1, 0)], sunion)
        .since("1.0.0")
        .tips(&["nondeterministic_output_order"]),
    c("sdiff", -2, READONLY, &[at(1, RO | ACCESS).range(-1, 1, 0)], sdiff)
        .since("1.0.0")
        .tips(&["nondeterministic_output_order"]),
    c("sinterstore", -3, WRITE | DENYOOM, &[at(1, RW | UPDATE), at(2, RO | ACCESS).range(-1, 1, 0)], sinterstore)
        .since("1.0.0")
        .store_event(ev::SET, "sinterstore"),
    c("sunionstore", -3, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS).range(-1, 1, 0)], sunionstore)
        .since("1.0.0")
        .store_event(ev::SET, "sunionstore"),
    c("sdiffstore", -3, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS).range(-1, 1, 0)], sdiffstore)
        .since("1.0.0")
        .store_event(ev::SET, "sdiffstore"),
    c("sscan", -3, READONLY, &[at(1, RO | ACCESS)], sscan).since("2.8.0").tips(&["nondeterministic_output"]),
];

/// Run `f` on the set at `key`, or on `new()` if absent (when given), as
/// `Keyspace::modify_typed`.
fn modify<R>(
    ctx: &mut Ctx,
    key: &[u8],
    new: Option<&dyn Fn() -> Set>,
    f: impl FnOnce(&mut Set) -> (R, bool),
) -> Result<Option<R>, WrongType> {
    ctx.ks.modify_typed(ctx.db, key, ctx.now, new, f)
}

/// SADD key member [member ...]
fn sadd(ctx: &mut Ctx, args: &Args) {
    let new = || Set::for_members(&args[2], args.len() - 2);
    let r = modify(ctx, &args[1], Some(&new), |s| {
        let mut n = 0;
        for i in 2..args.len() {
            n += s.add(&args[i]) as i64;
        }
        (n, n > 0)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(n) => ctx.out.int(n.unwrap_or(0)),
    }
}

/// SREM key member [member ...]; the key goes with its last member.
fn srem(ctx: &mut Ctx, args: &Args) {
    let r = modify(ctx, &args[1], None, |s| {
        let mut n = 0;
        for i in 2..args.len() {
            n += s.remove(&args[i]) as i64;
        }
        (n, n > 0)
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(n) => ctx.out.int(n.unwrap_or(0)),
    }
}

fn reply_set(ctx: &mut Ctx, s: Option<&Set>) {
    let Some(s) = s else { return ctx.out.set(0) };
    ctx.out.set(s.len());
    s.for_each(|m| ctx.out.bulk(m));
}

/// SMEMBERS key (a set in RESP3)
fn smembers(ctx: &mut Ctx, args: &Args) {
    let Ctx { ks, out, db, now, .. } = ctx;
    match ks.get_typed::<Set>(*db, &args[1], *now) {
        Ok(None) => out.set(0),
        Err(e) => out.error(e.msg()),
        Ok(Some(s)) => {
            out.set(s.len());
            s.for_each(|m| out.bulk(m));
        }
    }
}

/// SISMEMBER key member
fn sismember(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Set>(&args[1]) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(s) => {
            let n = s.is_some_and(|s| s.contains(&args[2])) as i64;
            ctx.out.int(n)
        }
    }
}

/// SMISMEMBER key member [member ...]
fn smismember(ctx: &mut Ctx, args: &Args) {
    let Ctx { ks, out, db, now, .. } = ctx;
    let s = match ks.get_typed::<Set>(*db, &args[1], *now) {
        Err(e) => return out.error(e.msg()),
        Ok(s) => s,
    };
    out.array(args.len() - 2);
    for i in 2..args.len() {
        out.int(s.is_some_and(|s| s.contains(&args[i])) as i64);
    }
}

/// SCARD key
fn scard(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Set>(&args[1]) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(s) => {
            let n = s.map_or(0, |s| s.len()) as i64;
            ctx.out.int(n)
        }
    }
}

/// SPOP key [count]. Logged as the SREM of the popped members, or DEL when
/// the whole set went, so a replay removes the same members.
fn spop(ctx: &mut Ctx, args: &Args) {
    if args.len() > 3 {
        return ctx.out.error(err::SYNTAX);
    }
    let key = &args[1];
    let (db, now) = (ctx.db, ctx.now);
    if args.len() == 2 {
        let rng = &mut *ctx.rng;
        let r = modify_popped(ctx.ks, db, key, now, |s| s.pop_random(&mut || rng.next_u64()).into_iter().collect());
        return match r {
            Err(e) => ctx.out.error(e.msg()),
            Ok(None) => ctx.out.null(),
            Ok(Some((popped, _))) => match popped.first() {
                Some(m) => {
                    ctx.out.bulk(m);
                    ctx.propagate(&[&b"SREM"[..], key, m]);
                }
                None => ctx.out.null(),
            },
        };
    }
    let count = match parse_i64(&args[2]) {
        Some(n) if n >= 0 => n as u64,
        _ => return ctx.out.error("ERR value is out of range, must be positive"),
    };
    let rng = &mut *ctx.rng;
    let r = modify_popped(ctx.ks, db, key, now, |s| {
        if count == 0 {
            return Vec::new();
        }
        if count >= s.len() as u64 {
            let all = s.members();
            *s = Set::new();
            return all;
        }
        let mut rnd = || rng.next_u64();
        (0..count).filter_map(|_| s.pop_random(&mut rnd)).collect()
    });
    match r {
        Err(e) => ctx.out.error(e.msg()),
        Ok(None) => ctx.out.set(0),
        Ok(Some((popped, deleted))) => {
            ctx.out.set(popped.len());
            for m in &popped {
                ctx.out.bulk(m);
            }
            if deleted {
                ctx.propagate(&[&b"DEL"[..], key]);
            } else if !popped.is_empty() {
                let mut cmd: Vec<&[u8]> = vec![b"SREM", key];
                cmd.extend(popped.iter().map(|m| &m[..]));
                ctx.propagate(&cmd);
            }
        }
    }
}

/// Pop from the set at `key` with `f`; returns the popped members and
/// whether the key was deleted (left empty).
#[allow(clippy::type_complexity)]
fn modify_popped(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    now: i64,
    f: impl FnOnce(&mut Set) -> Vec<Vec<u8>>,
) -> Result<Option<(Vec<Vec<u8>>, bool)>, WrongType> {
    let Some(s) = ks.get_typed_mut::<Set>(db, key, now)? else { return Ok(None) };
    let popped = f(s);
    let empty = s.is_empty();
    if empty {
        ks.remove(db, key);
    } else if !popped.is_empty() {
        ks.touch(db, key);
    }
    Ok(Some((popped, empty)))
}

/// SRANDMEMBER key [count]: negative counts repeat members; positive ones
/// give distinct members (all of them when count >= size).
fn srandmember(ctx: &mut Ctx, args: &Args) {
    if args.len() > 3 {
        return ctx.out.error(err::SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_rand_count(&args[2]) {
            Ok(n) => Some(n),
            Err(e) => return ctx.out.error(e),
        }
    } else {
        None
    };
    let Ctx { ks, out, db, now, rng, .. } = ctx;
    let mut rnd = || rng.next_u64();
    let s = match ks.get_typed::<Set>(*db, &args[1], *now) {
        Ok(None) if count.is_some() => return out.array(0),
        Ok(None) => return out.null(),
        Err(e) => return out.error(e.msg()),
        Ok(Some(s)) => s,
    };
    let mut buf = [0u8; 24];
    let Some(count) = count else {
        return match s.random(&mut rnd) {
            Some(m) => out.bulk(m.bytes(&mut buf)),
            None => out.null(),
        };
    };
    let size = s.len();
    if count == 0 || size == 0 {
        return out.array(0);
    }
    if count < 0 || count == 1 {
        let n = count.unsigned_abs();
        if n > MAX_RANDOM_REPLY {
            return out.error("ERR value is out of range");
        }
        out.array(n as usize);
        for _ in 0..n {
            if let Some(m) = s.random(&mut rnd) {
                out.bulk(m.bytes(&mut buf));
            }
        }
        return;
    }
    let count = count as usize;
    if count >= size {
        out.array(size);
        s.for_each(|m| out.bulk(m));
        return;
    }
    // Many of the members: a partial shuffle of all. Few: random picks
    // until enough distinct ones (cheap on big sets).
    let picked: Vec<Vec<u8>> = if count * 3 > size {
        let mut all = s.members();
        for i in 0..count {
            let j = i + (rnd() % (size - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut v = Vec::with_capacity(count);
        while v.len() < count {
            let Some(m) = s.random(&mut rnd) else { break };
            let m = m.to_vec();
            if seen.insert(m.clone()) {
                v.push(m);
            }
        }
        v
    };
    out.array(picked.len());
    for m in &picked {
        out.bulk(m);
    }
}

/// SMOVE source destination member
fn smove(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let (src, dst, m) = (&args[1], &args[2], &args[3]);
    // Both looked up first, as Redis does (expiring either).
    let dst_ok = ctx.ks.get_typed::<Set>(db, dst, now).map(|_| ());
    if src == dst {
        // Two lookups in Redis, so two uses of the one key.
        ctx.ks.next_lookup();
    }
    let src_member = match ctx.ks.get_typed::<Set>(db, src, now) {
        Ok(None) => return ctx.out.int(0),
        Err(e) => return ctx.out.error(e.msg()),
        Ok(Some(s)) => s.contains(m),
    };
    if let Err(e) = dst_ok {
        return ctx.out.error(e.msg());
    }
    if src == dst || !src_member {
        return ctx.out.int(src_member as i64);
    }
    let _ = modify(ctx, src, None, |s| ((), s.remove(m)));
    ctx.notify(ev::SET, "srem", src);
    let new = || Set::for_members(m, 1);
    let _ = modify(ctx, dst, Some(&new), |s| ((), s.add(m)));
    ctx.notify(ev::SET, "sadd", dst);
    ctx.out.int(1);
}

// ---- set algebra ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Look every key up (expiring it if due) and check its type; then the
/// sets, absent ones as None.
fn gather<'a>(ctx: &'a mut Ctx, keys: &[&[u8]]) -> Result<Vec<Option<&'a Set>>, WrongType> {
    let (db, now) = (ctx.db, ctx.now);
    for k in keys {
        ctx.ks.get_typed::<Set>(db, k, now)?;
    }
    let ks: &'a Keyspace = ctx.ks;
    Ok(keys.iter().map(|k| ks.peek(db, k, now).and_then(|e| e.value.as_set())).collect())
}

/// Members of the intersection, visiting the smallest set; stops after
/// `limit` members when non-zero (SINTERCARD).
fn intersect(sets: &mut [Option<&Set>], limit: usize, mut f: impl FnMut(&[u8])) {
    if sets.iter().any(|s| s.is_none()) {
        return;
    }
    let mut sets: Vec<&Set> = sets.iter().flatten().copied().collect();
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else { return };
    let mut n = 0;
    first.for_each(|m| {
        if (limit == 0 || n < limit) && rest.iter().all(|s| s.contains(m)) {
            n += 1;
            f(m);
        }
    });
}

/// The result of `op` over the sets at `keys`, as a new set.
fn compute(ctx: &mut Ctx, keys: &[&[u8]], op: Op) -> Result<Set, WrongType> {
    let mut sets = gather(ctx, keys)?;
    let mut out = Set::new();
    match op {
        Op::Inter => intersect(&mut sets, 0, |m| {
            out.add(m);
        }),
        Op::Union => {
            for s in sets.iter().flatten() {
                s.for_each(|m| {
                    out.add(m);
                });
            }
        }
        Op::Diff => {
            if let Some(Some(first)) = sets.first() {
                let rest: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
                first.for_each(|m| {
                    if !rest.iter().any(|s| s.contains(m)) {
                        out.add(m);
                    }
                });
            }
        }
    }
    Ok(out)
}

fn keys_from<'a>(args: &Args<'a>, from: usize) -> Vec<&'a [u8]> {
    (from..args.len()).map(|i| args.get(i)).collect()
}

fn algebra(ctx: &mut Ctx, args: &Args, op: Op) {
    match compute(ctx, &keys_from(args, 1), op) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(s) => reply_set(ctx, Some(&s)),
    }
}

/// SINTERSTORE/SUNIONSTORE/SDIFFSTORE destination key [key ...]: an empty
/// result deletes the destination; otherwise it is replaced (TTL dropped).
fn algebra_store(ctx: &mut Ctx, args: &Args, op: Op) {
    let s = match compute(ctx, &keys_from(args, 2), op) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(s) => s,
    };
    let (db, now, dst) = (ctx.db, ctx.now, &args[1]);
    let n = s.len();
    if n == 0 {
        ctx.ks.delete(db, dst, now);
    } else {
        ctx.ks.set(db, dst, Value::Set(s), 0);
    }
    ctx.out.int(n as i64);
}

fn sinter(ctx: &mut Ctx, args: &Args) {
    algebra(ctx, args, Op::Inter)
}

fn sunion(ctx: &mut Ctx, args: &Args) {
    algebra(ctx, args, Op::Union)
}

fn sdiff(ctx: &mut Ctx, args: &Args) {
    algebra(ctx, args, Op::Diff)
}

fn sinterstore(ctx: &mut Ctx, args: &Args) {
    algebra_store(ctx, args, Op::Inter)
}

fn sunionstore(ctx: &mut Ctx, args: &Args) {
    algebra_store(ctx, args, Op::Union)
}

fn sdiffstore(ctx: &mut Ctx, args: &Args) {
    algebra_store(ctx, args, Op::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, args: &Args) {
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return ctx.out.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (args.len() - 2) as u64 {
        return ctx.out.error("ERR Number of keys can't be greater than number of args");
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0usize;
    let mut i = end;
    while i < args.len() {
        if args.is(i, "limit") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => limit = usize::try_from(n).unwrap_or(usize::MAX),
                _ => return ctx.out.error("ERR LIMIT can't be negative"),
            }
            i += 2;
        } else {
            return ctx.out.error(err::SYNTAX);
        }
    }
    let keys: Vec<&[u8]> = (2..end).map(|i| args.get(i)).collect();
    let mut sets = match gather(ctx, &keys) {
        Ok(s) => s,
        Err(e) => return ctx.out.error(e.msg()),
    };
    let mut n = 0;
    intersect(&mut sets, limit, |_| n += 1);
    ctx.out.int(n);
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(ctx: &mut Ctx, args: &Args) {
    let Some(cursor) = parse_scan_cursor(&args[2]) else { return ctx.out.error("ERR invalid cursor") };
    let Ctx { ks, out, db, now, .. } = ctx;
    let s = match ks.get_typed::<Set>(*db, &args[1], *now) {
        Ok(None) => return scan_reply(out, 0, &[]),
        Err(e) => return out.error(e.msg()),
        Ok(Some(s)) => s,
    };
    let sa = match parse_scan_args_ext(args, 2, false) {
        Ok(sa) => sa,
        Err(e) => return out.error(&e),
    };
    let mut items: Vec<Vec<u8>> = Vec::new();
    let next = s.scan(cursor, sa.count, |m| {
        if sa.pattern.as_deref().is_none_or(|p| glob_match(p, m, false)) {
            items.push(m.to_vec());
        }
    });
    let refs: Vec<&[u8]> = items.iter().map(|m| &m[..]).collect();
    scan_reply(out, next, &refs)
}

#[cfg(test)]
mod tests {
    use super::super::hash::tests::run_proto;
    use crate::keyspace::Keyspace;

    fn check(cases: &[(&str, &str)]) {
        let mut ks = Keyspace::new();
        for (cmd, want) in cases {
            assert_eq!(run_proto(&mut ks, cmd, false), *want, "command: {cmd}");
        }
    }

    /// Sorted lines of an aggregate reply (members come in any order).
    fn sorted(r: &str) -> Vec<String> {
        let mut v: Vec<String> = r.split("\r\n").skip(1).map(String::from).collect();
        v.sort();
        v
    }

    const WT: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    #[test]
    fn basic_replies() {
        check(&[
            ("SADD s a b c a", ":3\r\n"),
            ("SADD s a", ":0\r\n"),
            ("SCARD s", ":3\r\n"),
            ("SISMEMBER s b", ":1\r\n"),
            ("SMISMEMBER s a x", "*2\r\n:1\r\n:0\r\n"),
            ("SMISMEMBER nokey a", "*1\r\n:0\r\n"),
            ("SREM s a x", ":1\r\n"),
            ("SMEMBERS nokey", "*0\r\n"),
            ("SADD i 3 1 2", ":3\r\n"),
            ("SMEMBERS i", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"),
            ("OBJECT ENCODING i", "$6\r\nintset\r\n"),
            ("OBJECT ENCODING s", "$9\r\nhashtable\r\n"),
            ("SET str x", "+OK\r\n"),
            ("SADD str a", WT),
            ("SINTER nokey str", WT),
            ("SUNION str nokey", WT),
            ("SDIFF nokey str", WT),
            ("SINTER s nokey", "*0\r\n"),
            ("SINTER s i", "*0\r\n"),
            ("SINTERCARD 0 s", "-ERR numkeys should be greater than 0\r\n"),
            ("SINTERCARD x s", "-ERR numkeys should be greater than 0\r\n"),
            ("SINTERCARD 3 s", "-ERR Number of keys can't be greater than number of args\r\n"),
            ("SINTERCARD 1 s LIMIT -1", "-ERR LIMIT can't be negative\r\n"),
            ("SINTERCARD 1 s foo", "-ERR syntax error\r\n"),
            ("SINTERCARD 1 s LIMIT 1", ":1\r\n"),
            ("SINTERCARD 1 s", ":2\r\n"),
            ("SINTERCARD 2 s str", WT),
            ("SPOP s -1", "-ERR value is out of range, must be positive\r\n"),
            ("SPOP s x", "-ERR value is out of range, must be positive\r\n"),
            ("SPOP s 1 2", "-ERR syntax error\r\n"),
            ("SPOP nokey", "$-1\r\n"),
            ("SPOP nokey 2", "*0\r\n"),
            ("SPOP str", WT),
            ("SRANDMEMBER s 1 2", "-ERR syntax error\r\n"),
            ("SRANDMEMBER nokey 5", "*0\r\n"),
            ("SRANDMEMBER nokey", "$-1\r\n"),
            (
                "SRANDMEMBER s -9223372036854775808",
                "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n",
            ),
            ("SMOVE nokey str a", ":0\r\n"),
            ("SMOVE s str b", WT),
            ("SMOVE str s a", WT),
            ("SMOVE s s b", ":1\r\n"),
            ("SMOVE s s zz", ":0\r\n"),
            ("SMOVE s d zz", ":0\r\n"),
            ("SMOVE i d 2", ":1\r\n"),
            ("SMEMBERS d", "*1\r\n$1\r\n2\r\n"),
            ("OBJECT ENCODING d", "$6\r\nintset\r\n"),
            ("SDIFFSTORE d2 i nokey", ":2\r\n"),
            ("SINTERSTORE d2 i nokey", ":0\r\n"),
            ("EXISTS d2", ":0\r\n"),
            ("SUNIONSTORE str s i", ":4\r\n"),
            ("TYPE str", "+set\r\n"),
            ("SSCAN nokey 0 COUNT 0", "*2\r\n$1\r\n0\r\n*0\r\n"),
            ("SSCAN i x", "-ERR invalid cursor\r\n"),
            ("SSCAN i 0 COUNT 0", "-ERR syntax error\r\n"),
            ("SSCAN i 0 MATCH 3", "*2\r\n$1\r\n0\r\n*1\r\n$1\r\n3\r\n"),
        ]);
    }

    #[test]
    fn algebra_and_random() {
        let mut ks = Keyspace::new();
        run_proto(&mut ks, "SADD a 1 2 3 x y", false);
        run_proto(&mut ks, "SADD b 2 3 4 y", false);
        let r = |ks: &mut Keyspace, c: &str| sorted(&run_proto(ks, c, false));
        assert_eq!(r(&mut ks, "SINTER a b"), ["", "$1", "$1", "$1", "2", "3", "y"]);
        assert_eq!(r(&mut ks, "SDIFF a b").len(), 5);
        assert_eq!(run_proto(&mut ks, "SUNION a b", true).lines().next(), Some("~6"));
        assert_eq!(run_proto(&mut ks, "SUNIONSTORE u a b", false), ":6\r\n");
        assert_eq!(run_proto(&mut ks, "SINTERCARD 2 a b LIMIT 2", false), ":2\r\n");
        assert_eq!(run_proto(&mut ks, "SRANDMEMBER u -10", false).lines().next(), Some("*10"));
        assert_eq!(run_proto(&mut ks, "SRANDMEMBER u 10", true).lines().next(), Some("*6"));
        assert_eq!(run_proto(&mut ks, "SRANDMEMBER u 3", false).lines().next(), Some("*3"));
        assert_eq!(run_proto(&mut ks, "SRANDMEMBER u 5", false).lines().next(), Some("*5"));
        assert_eq!(run_proto(&mut ks, "SPOP u 2", true).lines().next(), Some("~2"));
        assert_eq!(run_proto(&mut ks, "SCARD u", false), ":4\r\n");
        assert_eq!(run_proto(&mut ks, "SPOP u 0", true), "~0\r\n");
        assert_eq!(run_proto(&mut ks, "SPOP u 10", true).lines().next(), Some("~4"));
        assert_eq!(run_proto(&mut ks, "EXISTS u", false), ":0\r\n");
    }

    #[test]
    fn spop_logs_what_it_removed() {
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        run_proto(&mut ks, "SADD s a", false);
        run_proto(&mut ks, "SADD t a b c", false);
        assert_eq!(run_proto(&mut ks, "SPOP s", false), "$1\r\na\r\n");
        assert_eq!(run_proto(&mut ks, "EXISTS s", false), ":0\r\n");
        run_proto(&mut ks, "SPOP t 2", false);
        run_proto(&mut ks, "SPOP t 5", false);
        run_proto(&mut ks, "SPOP t 5", false);
        let mut logged = vec![];
        ks.effects.drain_each(|_, b| logged.push(String::from_utf8_lossy(b).into_owned()));
        assert_eq!(logged.len(), 5, "{logged:?}");
        assert_eq!(logged[2], "*3\r\n$4\r\nSREM\r\n$1\r\ns\r\n$1\r\na\r\n");
        assert!(logged[3].starts_with("*4\r\n$4\r\nSREM\r\n$1\r\nt\r\n"));
        assert_eq!(logged[4], "*2\r\n$3\r\nDEL\r\n$1\r\nt\r\n");
    }

    #[test]
    fn table_rows() {
        let d = super::super::lookup(b"sintercard").expect("sintercard").1;
        let a = super::super::OwnedArgs::from_slices(&["SINTERCARD", "2", "a", "b", "LIMIT", "1"]);
        assert_eq!(super::super::key_positions(d, &a.args()).collect::<Vec<_>>(), [2, 3]);
        let d = super::super::lookup(b"smove").expect("smove").1;
        assert_eq!((d.first_key, d.last_key), (1, 2));
    }
}

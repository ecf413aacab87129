//! List commands: pushes, pops (with COUNT, LMPOP), LRANGE/LINDEX/LSET/
//! LINSERT/LREM/LTRIM/LPOS and LMOVE/RPOPLPUSH. Semantics, reply types and
//! error texts follow Redis 7.0.
//!
//! The blocking variants (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) are
//! carried out by the shard layer; when a blocked client can be served it
//! calls `pop_for_block` / `move_for_block`, which reply and log exactly as
//! the non-blocking commands here do.

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{arity_error, err, Args, Ctx};
use crate::keyspace::list::{End, List};
use crate::keyspace::notify as ev;
use crate::keyspace::{Keyspace, Value};
use crate::util::parse_i64;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::LIST).group(Group::List)
}

pub static COMMANDS: &[CommandDef] = &[
    c("lpush", -3, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], lpush).since("1.0.0").event(ev::LIST, "lpush"),
    c("rpush", -3, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], rpush).since("1.0.0").event(ev::LIST, "rpush"),
    c("lpushx", -3, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], lpushx).since("2.2.0").event(ev::LIST, "lpush"),
    c("rpushx", -3, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], rpushx).since("2.2.0").event(ev::LIST, "rpush"),
    c("lpop", -2, WRITE | FAST, &[at(1, RW | ACCESS | DELETE)], lpop).since("1.0.0").event(ev::LIST, "lpop"),
    c("rpop", -2, WRITE | FAST, &[at(1, RW | ACCESS | DELETE)], rpop).since("1.0.0").event(ev::LIST, "rpop"),
    c("llen", 2, READONLY | FAST, &[at(1, RO)], llen).since("1.0.0"),
    c("lrange", 4, READONLY, &[at(1, RO | ACCESS)], lrange).since("1.0.0"),
    c("lindex", 3, READONLY, &[at(1, RO | ACCESS)], lindex).since("1.0.0"),
    c("lset", 4, WRITE | DENYOOM, &[at(1, RW | UPDATE)], lset).since("1.0.0").event(ev::LIST, "lset"),
    c("linsert", 5, WRITE | DENYOOM, &[at(1, RW | INSERT)], linsert).since("2.2.0").event(ev::LIST, "linsert"),
    c("lrem", 4, WRITE, &[at(1, RW | DELETE)], lrem).since("1.0.0").event(ev::LIST, "lrem"),
    c("ltrim", 4, WRITE, &[at(1, RW | DELETE)], ltrim).since("1.0.0").event(ev::LIST, "ltrim"),
    c("lpos", -3, READONLY, &[at(1, RO | ACCESS)], lpos).since("6.0.6"),
    c("lmove", 5, WRITE | DENYOOM, &[at(1, RW | ACCESS | DELETE), at(2, RW | INSERT)], lmove).since("6.2.0"),
    c("rpoplpush", 3, WRITE | DENYOOM, &[at(1, RW | ACCESS | DELETE), at(2, RW | INSERT)], rpoplpush).since("1.2.0"),
    c("lmpop", -4, WRITE, &[at(1, RW | ACCESS | DELETE).keynum(0, 1, 1)], lmpop).since("7.0.0"),
];

/// `LEFT`/`RIGHT` as Redis's getListPositionFromObjectOrReply.
pub fn parse_end(a: &[u8]) -> Option<End> {
    if a.eq_ignore_ascii_case(b"LEFT") {
        Some(End::Head)
    } else if a.eq_ignore_ascii_case(b"RIGHT") {
        Some(End::Tail)
    } else {
        None
    }
}

/// The keyspace events of a pop and a push at `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    }
}

fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Head => b"LPOP",
        End::Tail => b"RPOP",
    }
}

/// After removing elements from `key`: delete it if emptied, else mark it
/// modified (WATCH, AOF).
fn after_removal(ks: &mut Keyspace, db: usize, key: &[u8], emptied: bool) {
    if emptied {
        ks.remove(db, key);
    } else {
        ks.touch(db, key);
    }
}

// ---- pushes -----------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, args: &Args, end: End, only_existing: bool) {
    let key = &args[1];
    let len = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(Some(l)) => {
            for v in args.iter().skip(2) {
                l.push(end, v);
            }
            let n = l.len();
            ctx.ks.touch(ctx.db, key);
            n
        }
        Ok(None) if only_existing => return ctx.out.int(0),
        Ok(None) => {
            let mut l = List::new();
            for v in args.iter().skip(2) {
                l.push(end, v);
            }
            let n = l.len();
            ctx.ks.set(ctx.db, key, Value::List(Box::new(l)), 0);
            n
        }
    };
    ctx.out.int(len as i64);
}

/// LPUSH key element [element ...]
fn lpush(ctx: &mut Ctx, args: &Args) {
    push_generic(ctx, args, End::Head, false)
}

/// RPUSH key element [element ...]
fn rpush(ctx: &mut Ctx, args: &Args) {
    push_generic(ctx, args, End::Tail, false)
}

/// LPUSHX key element [element ...]
fn lpushx(ctx: &mut Ctx, args: &Args) {
    push_generic(ctx, args, End::Head, true)
}

/// RPUSHX key element [element ...]
fn rpushx(ctx: &mut Ctx, args: &Args) {
    push_generic(ctx, args, End::Tail, true)
}

// ---- pops -------------------------------------------------------------------

/// Pop up to `n` elements from `end` of the list at `key` (which must be a
/// non-empty list), replying with them as an array.
fn pop_n_reply(ctx: &mut Ctx, key: &[u8], end: End, n: usize) -> usize {
    let Ok(Some(l)) = ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) else {
        ctx.out.array(0);
        return 0;
    };
    let n = n.min(l.len());
    ctx.out.array(n);
    for _ in 0..n {
        l.pop_with(end, |v| ctx.out.bulk(v));
    }
    let emptied = l.is_empty();
    after_removal(ctx.ks, ctx.db, key, emptied);
    n
}

fn pop_generic(ctx: &mut Ctx, args: &Args, end: End) {
    if args.len() > 3 {
        return arity_error(&mut ctx.out, if end == End::Head { "lpop" } else { "rpop" });
    }
    let count = if args.len() == 3 {
        match parse_i64(&args[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.out.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let key = &args[1];
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return if count.is_some() { ctx.out.null_array() } else { ctx.out.null() },
        Ok(Some(l)) => l,
    };
    match count {
        Some(0) => ctx.out.array(0),
        Some(n) => {
            pop_n_reply(ctx, key, end, n);
        }
        None => {
            l.pop_with(end, |v| ctx.out.bulk(v));
            let emptied = l.is_empty();
            after_removal(ctx.ks, ctx.db, key, emptied);
        }
    }
}

/// LPOP key [count]
fn lpop(ctx: &mut Ctx, args: &Args) {
    pop_generic(ctx, args, End::Head)
}

/// RPOP key [count]
fn rpop(ctx: &mut Ctx, args: &Args) {
    pop_generic(ctx, args, End::Tail)
}

/// Serve a client blocked on `key` (BLPOP/BRPOP with `count` None, BLMPOP
/// with `Some(count)`): if `key` holds a list, pop from `end`, reply
/// `[key, element]` (or `[key, [elements]]`), log it as `LPOP/RPOP key
/// [count]` through `Ctx::propagate`, and return true. Returns false and
/// writes nothing if the key is missing or not a list (the client stays
/// blocked, as in Redis). Outside `cmd::exec`, the caller must clear the
/// effects log's replaced flag afterwards (`ctx.ks.effects.take_replaced()`).
pub fn pop_for_block(ctx: &mut Ctx, key: &[u8], end: End, count: Option<usize>) -> bool {
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Ok(Some(l)) if !l.is_empty() => l,
        _ => return false,
    };
    ctx.out.array(2);
    ctx.out.bulk(key);
    match count {
        None => {
            l.pop_with(end, |v| ctx.out.bulk(v));
            let emptied = l.is_empty();
            after_removal(ctx.ks, ctx.db, key, emptied);
            ctx.propagate(&[pop_name(end), key]);
        }
        Some(n) => {
            let n = pop_n_reply(ctx, key, end, n.max(1));
            let mut nb = [0u8; 24];
            ctx.propagate(&[pop_name(end), key, crate::protocol::reply::fmt_i64(&mut nb, n as i64)]);
        }
    }
    true
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
fn lmpop(ctx: &mut Ctx, args: &Args) {
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return ctx.out.error("ERR numkeys should be greater than 0"),
    };
    // The direction follows the keys; a count past the arguments is a syntax error.
    if numkeys >= args.len() as u64 - 2 {
        return ctx.out.error(err::SYNTAX);
    }
    let where_idx = 2 + numkeys as usize;
    let Some(end) = parse_end(&args[where_idx]) else {
        return ctx.out.error(err::SYNTAX);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && args.is(j, "COUNT") && j + 1 < args.len() {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) if n >= 1 => count = Some(n as usize),
                _ => return ctx.out.error("ERR count should be greater than 0"),
            }
        } else {
            return ctx.out.error(err::SYNTAX);
        }
        j += 1;
    }
    let count = count.unwrap_or(1);
    for i in 2..where_idx {
        let key = &args[i];
        match ctx.ks.get_typed::<List>(ctx.db, key, ctx.now) {
            Err(e) => return ctx.out.error(e.msg()),
            Ok(None) => continue,
            Ok(Some(_)) => {
                ctx.out.array(2);
                ctx.out.bulk(key);
                let n = pop_n_reply(ctx, key, end, count);
                ctx.notify(ev::LIST, pop_event(end), key);
                // Logged as the pop it was (Redis rewrites LMPOP the same way).
                let mut nb = [0u8; 24];
                ctx.propagate(&[pop_name(end), key, crate::protocol::reply::fmt_i64(&mut nb, n as i64)]);
                return;
            }
        }
    }
    ctx.out.null_array();
}

// ---- reads ------------------------------------------------------------------

/// LLEN key
fn llen(ctx: &mut Ctx, args: &Args) {
    match ctx.ks.get_typed::<List>(ctx.db, &args[1], ctx.now) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(l) => ctx.out.int(l.map_or(0, |l| l.len() as i64)),
    }
}

/// LRANGE key start stop
fn lrange(ctx: &mut Ctx, args: &Args) {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.out.error(err::NOT_INT);
    };
    let l = match ctx.ks.get_typed::<List>(ctx.db, &args[1], ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.array(0),
        Ok(Some(l)) => l,
    };
    let Some((start, end)) = list_range(start, end, l.len()) else {
        return ctx.out.array(0);
    };
    let n = end - start + 1;
    ctx.out.array(n);
    for v in l.iter_from(start).take(n) {
        ctx.out.bulk(v);
    }
}

/// LRANGE/LTRIM's inclusive index range over a `len`-element list
/// (negative indexes count from the end), or None when it is empty.
fn list_range(mut start: i64, mut end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// Resolve a possibly negative index against `len`.
fn resolve(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { index + len as i64 } else { index };
    (i >= 0 && i < len as i64).then_some(i as usize)
}

/// LINDEX key index
fn lindex(ctx: &mut Ctx, args: &Args) {
    let l = match ctx.ks.get_typed::<List>(ctx.db, &args[1], ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.null(),
        Ok(Some(l)) => l,
    };
    let Some(index) = parse_i64(&args[2]) else {
        return ctx.out.error(err::NOT_INT);
    };
    match resolve(index, l.len()).and_then(|i| l.get(i)) {
        Some(v) => ctx.out.bulk(v),
        None => ctx.out.null(),
    }
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(ctx: &mut Ctx, args: &Args) {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        if args.is(j, "RANK") && more {
            j += 1;
            match parse_i64(&args[j]) {
                None => return ctx.out.error(err::NOT_INT),
                Some(0) => {
                    return ctx.out.error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                         or use negative to start from the end of the list",
                    )
                }
                Some(r) => rank = r,
            }
        } else if args.is(j, "COUNT") && more {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) if n >= 0 => count = Some(n),
                _ => return ctx.out.error("ERR COUNT can't be negative"),
            }
        } else if args.is(j, "MAXLEN") && more {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) if n >= 0 => maxlen = n,
                _ => return ctx.out.error("ERR MAXLEN can't be negative"),
            }
        } else {
            return ctx.out.error(err::SYNTAX);
        }
        j += 1;
    }
    let l = match ctx.ks.get_typed::<List>(ctx.db, &args[1], ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return if count.is_some() { ctx.out.array(0) } else { ctx.out.null() },
        Ok(Some(l)) => l,
    };
    // A negative rank searches from the tail. Redis negates in C: i64::MIN
    // stays negative, so every match then counts as reaching the rank.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let len = l.len() as i64;
    let ele = &args[2];
    let mut found: Vec<i64> = Vec::new();
    let mut matches = 0i64;
    let mut scan = |index: i64, v: &[u8]| -> bool {
        if v != ele {
            return true;
        }
        matches += 1;
        if matches >= rank {
            found.push(if from_tail { len - index - 1 } else { index });
            match count {
                None => return false,
                Some(c) if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c => return false,
                _ => {}
            }
        }
        true
    };
    let limit = if maxlen == 0 { usize::MAX } else { maxlen as usize };
    if from_tail {
        for (i, v) in l.iter().rev().take(limit).enumerate() {
            if !scan(i as i64, v) {
                break;
            }
        }
    } else {
        for (i, v) in l.iter().take(limit).enumerate() {
            if !scan(i as i64, v) {
                break;
            }
        }
    }
    match count {
        Some(_) => {
            ctx.out.array(found.len());
            for i in found {
                ctx.out.int(i);
            }
        }
        None => match found.first() {
            Some(&i) => ctx.out.int(i),
            None => ctx.out.null(),
        },
    }
}

// ---- in-place edits -----------------------------------------------------------

/// LSET key index element
fn lset(ctx: &mut Ctx, args: &Args) {
    let key = &args[1];
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.error(err::NO_KEY),
        Ok(Some(l)) => l,
    };
    let Some(index) = parse_i64(&args[2]) else {
        return ctx.out.error(err::NOT_INT);
    };
    match resolve(index, l.len()) {
        Some(i) => {
            l.set(i, &args[3]);
            ctx.ks.touch(ctx.db, key);
            ctx.out.ok();
        }
        None => ctx.out.error("ERR index out of range"),
    }
}

/// LINSERT key BEFORE|AFTER pivot element
fn linsert(ctx: &mut Ctx, args: &Args) {
    let after = if args.is(2, "AFTER") {
        true
    } else if args.is(2, "BEFORE") {
        false
    } else {
        return ctx.out.error(err::SYNTAX);
    };
    let key = &args[1];
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(l)) => l,
    };
    let Some(pos) = l.position(&args[3]) else {
        return ctx.out.int(-1);
    };
    l.insert(pos + after as usize, &args[4]);
    let n = l.len();
    ctx.ks.touch(ctx.db, key);
    ctx.out.int(n as i64);
}

/// LREM key count element
fn lrem(ctx: &mut Ctx, args: &Args) {
    let Some(count) = parse_i64(&args[2]) else {
        return ctx.out.error(err::NOT_INT);
    };
    let key = &args[1];
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(l)) => l,
    };
    let removed = l.remove_matching(&args[3], count);
    if removed > 0 {
        let emptied = l.is_empty();
        after_removal(ctx.ks, ctx.db, key, emptied);
    }
    ctx.out.int(removed as i64);
}

/// LTRIM key start stop
fn ltrim(ctx: &mut Ctx, args: &Args) {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.out.error(err::NOT_INT);
    };
    let key = &args[1];
    let l = match ctx.ks.get_typed_mut::<List>(ctx.db, key, ctx.now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.ok(),
        Ok(Some(l)) => l,
    };
    match list_range(start, end, l.len()) {
        Some((start, end)) => l.trim(start, end),
        None => l.trim(1, 0),
    }
    // Redis signals the key even when nothing was trimmed.
    let emptied = l.is_empty();
    after_removal(ctx.ks, ctx.db, key, emptied);
    ctx.out.ok();
}

// ---- moves --------------------------------------------------------------------

/// What `move_for_block` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// Moved one element and replied with it.
    Done,
    /// The source is missing: nothing written.
    SourceMissing,
    /// Source or destination is not a list: WRONGTYPE replied.
    WrongType,
}

/// Pop from `end` of `src`, push at `to` of `dst` (which may be `src`),
/// reply with the element. Shared by LMOVE, RPOPLPUSH and the blocking
/// BLMOVE/BRPOPLPUSH when they are served.
pub fn move_for_block(ctx: &mut Ctx, src: &[u8], dst: &[u8], from: End, to: End) -> Moved {
    let (db, now) = (ctx.db, ctx.now);
    match ctx.ks.get_typed_mut::<List>(db, src, now) {
        Err(e) => {
            ctx.out.error(e.msg());
            return Moved::WrongType;
        }
        Ok(None) => return Moved::SourceMissing,
        Ok(Some(_)) => {}
    }
    if src == dst {
        if let Ok(Some(l)) = ctx.ks.get_typed_mut::<List>(db, src, now) {
            if let Some(v) = l.pop(from) {
                l.push(to, &v);
                ctx.out.bulk(&v);
            }
        }
        ctx.ks.touch(db, src);
        ctx.notify(ev::LIST, pop_event(from), src);
        ctx.notify(ev::LIST, push_event(to), src);
        return Moved::Done;
    }
    let dst_exists = match ctx.ks.get_typed::<List>(db, dst, now) {
        Err(e) => {
            ctx.out.error(e.msg());
            return Moved::WrongType;
        }
        Ok(d) => d.is_some(),
    };
    let (v, emptied) = match ctx.ks.get_typed_mut::<List>(db, src, now) {
        Ok(Some(l)) => match l.pop(from) {
            Some(v) => (v, l.is_empty()),
            None => return Moved::SourceMissing,
        },
        _ => return Moved::SourceMissing,
    };
    after_removal(ctx.ks, db, src, emptied);
    ctx.notify(ev::LIST, pop_event(from), src);
    if dst_exists {
        if let Ok(Some(d)) = ctx.ks.get_typed_mut::<List>(db, dst, now) {
            d.push(to, &v);
        }
        ctx.ks.touch(db, dst);
    } else {
        let mut d = List::new();
        d.push(to, &v);
        ctx.ks.set(db, dst, Value::List(Box::new(d)), 0);
    }
    ctx.notify(ev::LIST, push_event(to), dst);
    ctx.out.bulk(&v);
    Moved::Done
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
fn lmove(ctx: &mut Ctx, args: &Args) {
    let (Some(from), Some(to)) = (parse_end(&args[3]), parse_end(&args[4])) else {
        return ctx.out.error(err::SYNTAX);
    };
    if move_for_block(ctx, &args[1], &args[2], from, to) == Moved::SourceMissing {
        ctx.out.null();
    }
}

/// RPOPLPUSH source destination
fn rpoplpush(ctx: &mut Ctx, args: &Args) {
    if move_for_block(ctx, &args[1], &args[2], End::Tail, End::Head) == Moved::SourceMissing {
        ctx.out.null();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{exec, lookup, OwnedArgs, Rng};
    use crate::protocol::reply::Reply;

    fn run(ks: &mut Keyspace, resp3: bool, parts: &[&str]) -> String {
        let a = OwnedArgs::from_slices(parts);
        let (_, def) = lookup(parts[0].as_bytes()).expect("command");
        let mut out = Vec::new();
        let mut rng = Rng::new(1);
        let mut ctx = Ctx::new(ks, 0, 1000, Reply::new(&mut out, resp3), &mut rng);
        if !crate::cmd::arity_ok(def, parts.len()) {
            return "arity".into();
        }
        exec(def, &mut ctx, &a.args());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn list_push_pop_and_count_forms() {
        let mut ks = Keyspace::new();
        assert_eq!(run(&mut ks, false, &["RPUSH", "l", "a", "b", "c"]), ":3\r\n");
        assert_eq!(run(&mut ks, false, &["LPOP", "l", "0"]), "*0\r\n");
        assert_eq!(run(&mut ks, false, &["LPOP", "nokey", "0"]), "*-1\r\n");
        assert_eq!(run(&mut ks, true, &["LPOP", "nokey", "2"]), "_\r\n");
        assert_eq!(run(&mut ks, false, &["LPOP", "nokey"]), "$-1\r\n");
        assert_eq!(run(&mut ks, false, &["RPOP", "l", "2"]), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
        assert_eq!(run(&mut ks, false, &["LPOP", "l", "-1"]), "-ERR value is out of range, must be positive\r\n");
        assert_eq!(run(&mut ks, false, &["LPOP", "l", "5"]), "*1\r\n$1\r\na\r\n");
        assert!(ks.peek(0, b"l", 1000).is_none(), "emptied list is deleted");
        assert_eq!(run(&mut ks, false, &["LPUSHX", "l", "a"]), ":0\r\n");
    }

    #[test]
    fn list_range_index_pos_and_edits() {
        let mut ks = Keyspace::new();
        run(&mut ks, false, &["RPUSH", "l", "a", "b", "a", "c", "a"]);
        assert_eq!(run(&mut ks, false, &["LRANGE", "l", "-2", "100"]), "*2\r\n$1\r\nc\r\n$1\r\na\r\n");
        assert_eq!(run(&mut ks, false, &["LINDEX", "l", "-1"]), "$1\r\na\r\n");
        assert_eq!(run(&mut ks, false, &["LPOS", "l", "a", "RANK", "-1", "COUNT", "0"]), "*3\r\n:4\r\n:2\r\n:0\r\n");
        assert_eq!(run(&mut ks, false, &["LPOS", "l", "a", "RANK", "2"]), ":2\r\n");
        assert_eq!(run(&mut ks, false, &["LPOS", "l", "a", "MAXLEN", "2", "COUNT", "0"]), "*1\r\n:0\r\n");
        assert_eq!(run(&mut ks, false, &["LINSERT", "l", "AFTER", "c", "d"]), ":6\r\n");
        assert_eq!(run(&mut ks, false, &["LREM", "l", "-2", "a"]), ":2\r\n");
        assert_eq!(
            run(&mut ks, false, &["LRANGE", "l", "0", "-1"]),
            "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n"
        );
        assert_eq!(run(&mut ks, false, &["LSET", "l", "9", "x"]), "-ERR index out of range\r\n");
        assert_eq!(run(&mut ks, false, &["LTRIM", "l", "1", "2"]), "+OK\r\n");
        assert_eq!(run(&mut ks, false, &["LRANGE", "l", "0", "-1"]), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(run(&mut ks, false, &["LTRIM", "l", "5", "2"]), "+OK\r\n");
        assert!(ks.peek(0, b"l", 1000).is_none());
    }

    #[test]
    fn list_moves_and_lmpop() {
        let mut ks = Keyspace::new();
        run(&mut ks, false, &["RPUSH", "a", "1", "2"]);
        assert_eq!(run(&mut ks, false, &["LMOVE", "a", "a", "LEFT", "RIGHT"]), "$1\r\n1\r\n");
        assert_eq!(run(&mut ks, false, &["RPOPLPUSH", "a", "b"]), "$1\r\n1\r\n");
        assert_eq!(run(&mut ks, false, &["RPOPLPUSH", "a", "b"]), "$1\r\n2\r\n");
        assert!(ks.peek(0, b"a", 1000).is_none());
        assert_eq!(run(&mut ks, false, &["LMOVE", "a", "b", "LEFT", "UP"]), "-ERR syntax error\r\n");
        assert_eq!(run(&mut ks, false, &["LMOVE", "a", "b", "LEFT", "LEFT"]), "$-1\r\n");
        assert_eq!(
            run(&mut ks, false, &["LMPOP", "2", "a", "b", "RIGHT", "COUNT", "5"]),
            "*2\r\n$1\r\nb\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
        );
        assert_eq!(run(&mut ks, true, &["LMPOP", "1", "b", "LEFT"]), "_\r\n");
        assert_eq!(run(&mut ks, false, &["LMPOP", "2", "b", "LEFT"]), "-ERR syntax error\r\n");
        // LMPOP is logged as the pop it did; a plain push as itself.
        ks.effects.enabled = true;
        run(&mut ks, false, &["RPUSH", "b", "1", "2", "3"]);
        run(&mut ks, false, &["LMPOP", "2", "a", "b", "RIGHT", "COUNT", "2"]);
        run(&mut ks, false, &["LMPOP", "1", "a", "LEFT"]);
        let mut log = Vec::new();
        ks.effects.drain_each(|_, b| log.push(String::from_utf8_lossy(b).replace("\r\n", " ")));
        assert_eq!(log, ["*5 $5 RPUSH $1 b $1 1 $1 2 $1 3 ", "*3 $4 RPOP $1 b $1 2 "]);
        let a = OwnedArgs::from_slices(&["LMPOP", "2", "x", "y", "LEFT"]);
        let def = lookup(b"lmpop").expect("lmpop").1;
        assert_eq!(crate::cmd::key_positions(def, &a.args()).collect::<Vec<_>>(), vec![2, 3]);
    }
}

//! Sorted set commands: ZADD and the rest of Redis 7's zset family
//! (blocking forms excepted). Semantics, reply types (doubles in RESP3,
//! WITHSCORES pairs nested in RESP3) and error texts follow Redis 7.0;
//! ZRANK/ZREVRANK also take 7.2's WITHSCORE.
//!
//! Every range command resolves its range to (first rank, count,
//! direction) on the set and then walks it, so the encoding never shows.

use super::flags::*;
use super::keys::{parse_scan_args_ext, parse_scan_cursor};
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::zset::{LexBound, LexRange, ScoreRange, ZSet};
use crate::keyspace::{Keyspace, Value};
use crate::protocol::reply::Reply;
use crate::util::num::{parse_double, parse_range_double};
use crate::util::{fmt_double_reply, glob_match, parse_i64};
use std::collections::HashMap;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::SORTEDSET).group(Group::SortedSet)
}

pub static COMMANDS: &[CommandDef] = &[
    c("zadd", -4, WRITE | DENYOOM | FAST, &[at(1, RW | UPDATE)], zadd).since("1.2.0"),
    c("zincrby", 4, WRITE | DENYOOM | FAST, &[at(1, RW | ACCESS | UPDATE)], zincrby)
        .since("1.2.0")
        .event(ev::ZSET, "zincr"),
    c("zrem", -3, WRITE | FAST, &[at(1, RW | DELETE)], zrem).since("1.2.0").event(ev::ZSET, "zrem"),
    c("zcard", 2, READONLY | FAST, &[at(1, RO)], zcard).since("1.2.0"),
    c("zscore", 3, READONLY | FAST, &[at(1, RO | ACCESS)], zscore).since("1.2.0"),
    c("zmscore", -3, READONLY | FAST, &[at(1, RO | ACCESS)], zmscore).since("6.2.0"),
    // Arity -3, not 7.0's 3: WITHSCORE is accepted, as in Redis 7.2.
    c("zrank", -3, READONLY | FAST, &[at(1, RO | ACCESS)], zrank).since("2.0.0"),
    c("zrevrank", -3, READONLY | FAST, &[at(1, RO | ACCESS)], zrevrank).since("2.0.0"),
    c("zcount", 4, READONLY | FAST, &[at(1, RO | ACCESS)], zcount).since("2.0.0"),
    c("zlexcount", 4, READONLY | FAST, &[at(1, RO | ACCESS)], zlexcount).since("2.8.9"),
    c("zrange", -4, READONLY, &[at(1, RO | ACCESS)], zrange).since("1.2.0"),
    c("zrangebyscore", -4, READONLY, &[at(1, RO | ACCESS)], zrangebyscore).since("1.0.5"),
    c("zrevrangebyscore", -4, READONLY, &[at(1, RO | ACCESS)], zrevrangebyscore).since("2.2.0"),
    c("zrangebylex", -4, READONLY, &[at(1, RO | ACCESS)], zrangebylex).since("2.8.9"),
    c("zrevrangebylex", -4, READONLY, &[at(1, RO | ACCESS)], zrevrangebylex).since("2.8.9"),
    c("zrevrange", -4, READONLY, &[at(1, RO | ACCESS)], zrevrange).since("1.2.0"),
    c("zrangestore", -5, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS)], zrangestore)
        .since("6.2.0")
        .store_event(ev::ZSET, "zrangestore"),
    c("zpopmin", -2, WRITE | FAST, &[at(1, RW | ACCESS | DELETE)], zpopmin).since("5.0.0").event(ev::ZSET, "zpopmin"),
    c("zpopmax", -2, WRITE | FAST, &[at(1, RW | ACCESS | DELETE)], zpopmax).since("5.0.0").event(ev::ZSET, "zpopmax"),
    c("zmpop", -4, WRITE, &[at(1, RW | ACCESS | DELETE).keynum(0, 1, 1)], zmpop).since("7.0.0"),
    c("zrandmember", -2, READONLY, &[at(1, RO | ACCESS)], zrandmember)
        .since("6.2.0")
        .tips(&["nondeterministic_output"]),
    c("zremrangebyrank", 4, WRITE, &[at(1, RW | DELETE)], zremrangebyrank)
        .since("2.0.0")
        .event(ev::ZSET, "zremrangebyrank"),
    c("zremrangebyscore", 4, WRITE, &[at(1, RW | DELETE)], zremrangebyscore)
        .since("1.2.0")
        .event(ev::ZSET, "zremrangebyscore"),
    c("zremrangebylex", 4, WRITE, &[at(1, RW | DELETE)], zremrangebylex)
        .since("2.8.9")
        .event(ev::ZSET, "zremrangebylex"),
    c("zunion", -3, READONLY, &[at(1, RO | ACCESS).keynum(0, 1, 1)], zunion).since("6.2.0"),
    c("zinter", -3, READONLY, &[at(1, RO | ACCESS).keynum(0, 1, 1)], zinter).since("6.2.0"),
    c("zdiff", -3, READONLY, &[at(1, RO | ACCESS).keynum(0, 1, 1)], zdiff).since("6.2.0"),
    c("zunionstore", -4, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS).keynum(0, 1, 1)], zunionstore)
        .since("2.0.0")
        .store_event(ev::ZSET, "zunionstore"),
    c("zinterstore", -4, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS).keynum(0, 1, 1)], zinterstore)
        .since("2.0.0")
        .store_event(ev::ZSET, "zinterstore"),
    c("zdiffstore", -4, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS).keynum(0, 1, 1)], zdiffstore)
        .since("6.2.0")
        .store_event(ev::ZSET, "zdiffstore"),
    c("zintercard", -3, READONLY, &[at(1, RO | ACCESS).keynum(0, 1, 1)], zintercard).since("7.0.0"),
    c("zscan", -3, READONLY, &[at(1, RO | ACCESS)], zscan).since("2.8.0").tips(&["nondeterministic_output"]),
];

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
const RANGE_NOT_LEX: &str = "ERR min or max not valid string range item";
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

// ---- parsing ----------------------------------------------------------------

fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let end = |s: &[u8]| match s.first() {
        Some(b'(') => parse_range_double(&s[1..]).map(|v| (v, true)),
        _ => parse_range_double(s).map(|v| (v, false)),
    };
    let ((min, minex), (max, maxex)) = (end(min)?, end(max)?);
    Some(ScoreRange { min, max, minex, maxex })
}

fn parse_lex_bound(s: &[u8]) -> Option<LexBound> {
    // `+`/`-` are checked as C strings: "+\0..." still reads as "+".
    let alone = s.len() == 1 || s.get(1) == Some(&0);
    match s.first()? {
        b'+' if alone => Some(LexBound::PosInf),
        b'-' if alone => Some(LexBound::NegInf),
        b'(' => Some(LexBound::Excl(s[1..].to_vec())),
        b'[' => Some(LexBound::Incl(s[1..].to_vec())),
        _ => None,
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    Some(LexRange { min: parse_lex_bound(min)?, max: parse_lex_bound(max)? })
}

/// getRangeLongFromObjectOrReply with a message: any failure gives it.
fn parse_long_in(s: &[u8], min: i64, max: i64, msg: &str) -> Result<i64, String> {
    match parse_i64(s) {
        Some(n) if n >= min && n <= max => Ok(n),
        _ => Err(msg.to_string()),
    }
}

// ---- keyspace helpers ---------------------------------------------------------

/// After changing the zset at `key` in place: delete it if emptied (Redis
/// never keeps empty collections), otherwise signal the modification.
fn finish_write(ks: &mut Keyspace, db: usize, key: &[u8], changed: bool) {
    if !changed {
        return;
    }
    let empty = ks.dbs[db].dict.get(key).and_then(|e| e.value.as_zset()).is_some_and(|z| z.is_empty());
    if empty {
        ks.remove(db, key);
    } else {
        ks.touch(db, key);
    }
}

/// Store `pairs` (sorted, distinct) at `dest` replacing anything there and
/// its TTL; an empty result deletes `dest`. Replies with the count.
pub(crate) fn store_result(ctx: &mut Ctx, dest: &[u8], pairs: Vec<(Vec<u8>, f64)>) {
    let n = pairs.len();
    if n == 0 {
        ctx.ks.delete(ctx.db, dest, ctx.now);
    } else {
        let max_len = pairs.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let mut z = ZSet::with_hint(n, max_len);
        for (m, s) in pairs {
            z.insert(&m, s);
        }
        ctx.ks.set(ctx.db, dest, Value::ZSet(z), 0);
    }
    ctx.out.int(n as i64);
}

// ---- reply helpers --------------------------------------------------------------

/// Header of a member list: pairs are nested in RESP3, flat in RESP2.
fn pairs_header(out: &mut Reply, n: usize, withscores: bool) {
    if withscores && !out.resp3 {
        out.array(n * 2)
    } else {
        out.array(n)
    }
}

fn pair(out: &mut Reply, m: &[u8], s: f64, withscores: bool) {
    if withscores && out.resp3 {
        out.array(2);
    }
    out.bulk(m);
    if withscores {
        out.double(s);
    }
}

/// Reply `n` members walked from `start` (towards the head if `rev`).
fn emit_ranks(out: &mut Reply, z: &ZSet, start: usize, n: usize, rev: bool, withscores: bool) {
    pairs_header(out, n, withscores);
    let mut left = n;
    if left == 0 {
        return;
    }
    z.walk(start, rev, |m, s| {
        pair(out, m, s, withscores);
        left -= 1;
        left > 0
    });
}

fn collect_ranks(z: &ZSet, start: usize, n: usize, rev: bool) -> Vec<(Vec<u8>, f64)> {
    let mut v = Vec::with_capacity(n);
    if n > 0 {
        z.walk(start, rev, |m, s| {
            v.push((m.to_vec(), s));
            v.len() < n
        });
    }
    v
}

// ---- ZADD / ZINCRBY / ZREM ------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub(crate) fn zadd(ctx: &mut Ctx, args: &Args) {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        match () {
            _ if args.is(i, "nx") => f.nx = true,
            _ if args.is(i, "xx") => f.xx = true,
            _ if args.is(i, "gt") => f.gt = true,
            _ if args.is(i, "lt") => f.lt = true,
            _ if args.is(i, "ch") => f.ch = true,
            _ if args.is(i, "incr") => f.incr = true,
            _ => break,
        }
        i += 1;
    }
    let elements = args.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return ctx.out.error(err::SYNTAX);
    }
    if f.nx && f.xx {
        return ctx.out.error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.gt || f.lt) && f.nx || (f.gt && f.lt) {
        return ctx.out.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 2 {
        return ctx.out.error("ERR INCR option supports a single increment-element pair");
    }
    // Its event says which it was: an increment or an add.
    let mark = ctx.ks.notify.touched_len();
    zadd_core(ctx, args, f, i);
    if ctx.ks.notify.touched_len() > mark {
        ctx.notify(ev::ZSET, if f.incr { "zincr" } else { "zadd" }, &args[1]);
    }
}

/// ZINCRBY key increment member
fn zincrby(ctx: &mut Ctx, args: &Args) {
    zadd_core(ctx, args, AddFlags { incr: true, ..Default::default() }, 2);
}

/// The shared body of ZADD and ZINCRBY: (score, member) pairs from `at`.
fn zadd_core(ctx: &mut Ctx, args: &Args, f: AddFlags, at: usize) {
    let mut scores = Vec::with_capacity((args.len() - at) / 2);
    for j in (at..args.len()).step_by(2) {
        match parse_double(&args[j]) {
            Some(s) => scores.push(s),
            None => return ctx.out.error(err::NOT_FLOAT),
        }
    }
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    let mut fresh: Option<ZSet> = None;
    let z = match ctx.ks.get_typed_mut::<ZSet>(db, key, now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(Some(z)) => z,
        Ok(None) => {
            if f.xx {
                return if f.incr { ctx.out.null() } else { ctx.out.int(0) };
            }
            fresh.insert(ZSet::with_hint(1, args[at + 1].len()))
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0);
    let mut last_score = 0.0;
    let mut nan = false;
    for (k, &score) in scores.iter().enumerate() {
        let member = &args[at + 1 + 2 * k];
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                let mut s = score;
                if f.incr {
                    s += cur;
                    if s.is_nan() {
                        nan = true;
                        break;
                    }
                }
                if (f.lt && s >= cur) || (f.gt && s <= cur) {
                    continue;
                }
                processed += 1;
                last_score = s;
                if s != cur {
                    z.insert(member, s);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                z.insert(member, score);
                added += 1;
                processed += 1;
                last_score = score;
            }
        }
    }
    match fresh {
        Some(z) if !z.is_empty() => ctx.ks.set(db, key, Value::ZSet(z), 0),
        Some(_) => {}
        None => finish_write(ctx.ks, db, key, added + updated > 0),
    }
    if nan {
        ctx.out.error(NAN_SCORE)
    } else if f.incr {
        if processed > 0 {
            ctx.out.double(last_score)
        } else {
            ctx.out.null()
        }
    } else {
        ctx.out.int(if f.ch { added + updated } else { added })
    }
}

/// ZREM key member [member ...]
fn zrem(ctx: &mut Ctx, args: &Args) {
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    let z = match ctx.ks.get_typed_mut::<ZSet>(db, key, now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(z)) => z,
    };
    let mut n = 0;
    for i in 2..args.len() {
        if z.remove(&args[i]).is_some() {
            n += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    finish_write(ctx.ks, db, key, n > 0);
    ctx.out.int(n);
}

// ---- simple reads -------------------------------------------------------------

/// Run `f` on the zset at args[1] (None if absent); WRONGTYPE handled.
fn with_zset(ctx: &mut Ctx, args: &Args, f: impl FnOnce(&mut Reply, Option<&ZSet>)) {
    let (db, now) = (ctx.db, ctx.now);
    match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(z) => f(&mut ctx.out, z),
    }
}

/// ZCARD key
fn zcard(ctx: &mut Ctx, args: &Args) {
    with_zset(ctx, args, |out, z| out.int(z.map_or(0, |z| z.len()) as i64));
}

/// ZSCORE key member
fn zscore(ctx: &mut Ctx, args: &Args) {
    with_zset(ctx, args, |out, z| match z.and_then(|z| z.score(&args[2])) {
        Some(s) => out.double(s),
        None => out.null(),
    });
}

/// ZMSCORE key member [member ...]
fn zmscore(ctx: &mut Ctx, args: &Args) {
    with_zset(ctx, args, |out, z| {
        out.array(args.len() - 2);
        for i in 2..args.len() {
            match z.and_then(|z| z.score(&args[i])) {
                Some(s) => out.double(s),
                None => out.null(),
            }
        }
    });
}

fn zrank(ctx: &mut Ctx, args: &Args) {
    zrank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx, args: &Args) {
    zrank_generic(ctx, args, true)
}

/// ZRANK/ZREVRANK key member [WITHSCORE] (WITHSCORE as in Redis 7.2)
fn zrank_generic(ctx: &mut Ctx, args: &Args, rev: bool) {
    if args.len() > 4 {
        let name = if rev { "zrevrank" } else { "zrank" };
        return super::arity_error(&mut ctx.out, name);
    }
    let withscore = args.len() == 4;
    if withscore && !args.is(3, "withscore") {
        return ctx.out.error(err::SYNTAX);
    }
    with_zset(ctx, args, |out, z| {
        let len = z.map_or(0, |z| z.len());
        match z.and_then(|z| z.rank(&args[2])) {
            Some((r, s)) => {
                if withscore {
                    out.array(2);
                }
                out.int(if rev { len - 1 - r } else { r } as i64);
                if withscore {
                    out.double(s);
                }
            }
            None if withscore => out.null_array(),
            None => out.null(),
        }
    });
}

/// ZCOUNT key min max
fn zcount(ctx: &mut Ctx, args: &Args) {
    let Some(r) = parse_score_range(&args[2], &args[3]) else { return ctx.out.error(RANGE_NOT_FLOAT) };
    with_zset(ctx, args, |out, z| {
        let n = z.and_then(|z| Some(z.score_last(&r)? + 1 - z.score_first(&r)?));
        out.int(n.unwrap_or(0) as i64)
    });
}

/// ZLEXCOUNT key min max
fn zlexcount(ctx: &mut Ctx, args: &Args) {
    let Some(r) = parse_lex_range(&args[2], &args[3]) else { return ctx.out.error(RANGE_NOT_LEX) };
    with_zset(ctx, args, |out, z| out.int(z.map_or(0, |z| z.lex_count(&r)) as i64));
}

// ---- ZRANGE and friends ---------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

enum Spec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The members a range selects: `n` of them from rank `start`, walking
/// towards the head when `rev`.
fn resolve(z: &ZSet, spec: &Spec, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    let len = z.len() as i64;
    // A negative offset skips everything; a negative limit means no limit.
    let limit = if limit < 0 { i64::MAX } else { limit };
    match spec {
        Spec::Rank(start, end) => {
            let mut start = if *start < 0 { len + start } else { *start };
            let mut end = if *end < 0 { len + end } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                return (0, 0);
            }
            end = end.min(len - 1);
            let n = (end - start + 1) as usize;
            if rev {
                ((len - 1 - start) as usize, n)
            } else {
                (start as usize, n)
            }
        }
        Spec::Score(r) => {
            let (Some(first), Some(last)) = (z.score_first(r), z.score_last(r)) else { return (0, 0) };
            if offset < 0 || limit == 0 {
                return (0, 0);
            }
            let avail = last + 1 - first;
            let off = offset.min(len) as usize;
            if off >= avail {
                return (0, 0);
            }
            let n = (avail - off).min(limit.min(len) as usize);
            if rev {
                (last - off, n)
            } else {
                (first + off, n)
            }
        }
        Spec::Lex(r) => {
            let start = if rev { z.lex_last(r) } else { z.lex_first(r) };
            let Some(start) = start else { return (0, 0) };
            if offset < 0 || limit == 0 {
                return (0, 0);
            }
            let off = offset.min(len) as usize;
            let start = if rev {
                match start.checked_sub(off) {
                    Some(s) => s,
                    None => return (0, 0),
                }
            } else {
                start + off
            };
            // Members are in range while they stay under the far end.
            let mut n = 0usize;
            let limit = limit.min(len) as usize;
            z.walk(start, rev, |m, _| {
                let ok = if rev { r.gte_min(m) } else { r.lte_max(m) };
                if ok {
                    n += 1;
                }
                ok && n < limit
            });
            (start, n)
        }
    }
}

/// Redis's zrangeGenericCommand: `src` is the index of the source key;
/// `by`/`rev` are fixed by the older command forms (ZRANGEBYSCORE, ...)
/// or Auto/None to take them from the options (ZRANGE, ZRANGESTORE).
fn zrange_generic(ctx: &mut Ctx, args: &Args, src: usize, store: bool, mut by: By, rev: Option<bool>) {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut dir = rev;
    let mut j = src + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        if !store && args.is(j, "withscores") {
            withscores = true;
        } else if args.is(j, "limit") && left >= 2 {
            match (parse_i64(&args[j + 1]), parse_i64(&args[j + 2])) {
                (Some(o), Some(l)) => (offset, limit) = (o, l),
                _ => return ctx.out.error(err::NOT_INT),
            }
            j += 2;
        } else if rev.is_none() && dir.is_none() && args.is(j, "rev") {
            dir = Some(true);
        } else if by == By::Auto && args.is(j, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && args.is(j, "byscore") {
            by = By::Score;
        } else {
            return ctx.out.error(err::SYNTAX);
        }
        j += 1;
    }
    let rev = dir.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return ctx.out.error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && by == By::Lex {
        return ctx.out.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    // Reverse score and lex ranges are given as max, min.
    let (mut lo, mut hi) = (src + 1, src + 2);
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let spec = match by {
        By::Score => match parse_score_range(&args[lo], &args[hi]) {
            Some(r) => Spec::Score(r),
            None => return ctx.out.error(RANGE_NOT_FLOAT),
        },
        By::Lex => match parse_lex_range(&args[lo], &args[hi]) {
            Some(r) => Spec::Lex(r),
            None => return ctx.out.error(RANGE_NOT_LEX),
        },
        _ => match (parse_i64(&args[lo]), parse_i64(&args[hi])) {
            (Some(a), Some(b)) => Spec::Rank(a, b),
            _ => return ctx.out.error(err::NOT_INT),
        },
    };
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[src], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(z) => z,
    };
    if store {
        let pairs = match z {
            Some(z) => {
                let (start, n) = resolve(z, &spec, rev, offset, limit);
                let mut v = collect_ranks(z, start, n, rev);
                if rev {
                    v.reverse();
                }
                v
            }
            None => Vec::new(),
        };
        return store_result(ctx, &args[1], pairs);
    }
    match z {
        None => ctx.out.array(0),
        Some(z) => {
            let (start, n) = resolve(z, &spec, rev, offset, limit);
            emit_ranks(&mut ctx.out, z, start, n, rev, withscores);
        }
    }
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
fn zrange(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Auto, None)
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
fn zrangestore(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 2, true, By::Auto, None)
}

fn zrangebyscore(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Score, Some(true))
}

fn zrangebylex(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Lex, Some(true))
}

fn zrevrange(ctx: &mut Ctx, args: &Args) {
    zrange_generic(ctx, args, 1, false, By::Rank, Some(true))
}

// ---- ZREMRANGEBY* -----------------------------------------------------------------

fn zremrangebyrank(ctx: &mut Ctx, args: &Args) {
    match (parse_i64(&args[2]), parse_i64(&args[3])) {
        (Some(a), Some(b)) => zremrange(ctx, args, Spec::Rank(a, b)),
        _ => ctx.out.error(err::NOT_INT),
    }
}

fn zremrangebyscore(ctx: &mut Ctx, args: &Args) {
    match parse_score_range(&args[2], &args[3]) {
        Some(r) => zremrange(ctx, args, Spec::Score(r)),
        None => ctx.out.error(RANGE_NOT_FLOAT),
    }
}

fn zremrangebylex(ctx: &mut Ctx, args: &Args) {
    match parse_lex_range(&args[2], &args[3]) {
        Some(r) => zremrange(ctx, args, Spec::Lex(r)),
        None => ctx.out.error(RANGE_NOT_LEX),
    }
}

fn zremrange(ctx: &mut Ctx, args: &Args, spec: Spec) {
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    let z = match ctx.ks.get_typed_mut::<ZSet>(db, key, now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(z)) => z,
    };
    let (start, n) = resolve(z, &spec, false, 0, -1);
    let removed = if n > 0 { z.remove_ranks(start, start + n - 1, |_, _| {}) } else { 0 };
    finish_write(ctx.ks, db, key, removed > 0);
    ctx.out.int(removed as i64);
}

// ---- pops ---------------------------------------------------------------------------

/// Pop up to `count` members from the min or max end of the zset at `key`
/// (which must exist): highest first for max.
pub(crate) fn pop_n(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    now: i64,
    count: usize,
    max: bool,
) -> Vec<(Vec<u8>, f64)> {
    let mut v = Vec::new();
    if let Ok(Some(z)) = ks.get_typed_mut::<ZSet>(db, key, now) {
        let len = z.len();
        let n = count.min(len);
        if n > 0 {
            let start = if max { len - n } else { 0 };
            z.remove_ranks(start, start + n - 1, |m, s| v.push((m.to_vec(), s)));
            if max {
                v.reverse();
            }
        }
    }
    finish_write(ks, db, key, !v.is_empty());
    v
}

fn zpopmin(ctx: &mut Ctx, args: &Args) {
    zpop(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx, args: &Args) {
    zpop(ctx, args, true)
}

/// ZPOPMIN/ZPOPMAX key [count]
fn zpop(ctx: &mut Ctx, args: &Args, max: bool) {
    if args.len() > 3 {
        return ctx.out.error(err::SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_long_in(&args[2], 0, i64::MAX, NOT_POSITIVE) {
            Ok(n) => Some(n as usize),
            Err(e) => return ctx.out.error(&e),
        }
    } else {
        None
    };
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    match ctx.ks.get_typed::<ZSet>(db, key, now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.array(0),
        Ok(Some(_)) if count == Some(0) => return ctx.out.array(0),
        Ok(Some(_)) => {}
    }
    let popped = pop_n(ctx.ks, db, key, now, count.unwrap_or(1), max);
    // With a count RESP3 nests the pairs; a single pop stays flat.
    let nested = ctx.out.resp3 && count.is_some();
    let out = &mut ctx.out;
    out.array(if nested { popped.len() } else { popped.len() * 2 });
    for (m, s) in &popped {
        if nested {
            out.array(2);
        }
        out.bulk(m);
        out.double(*s);
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
fn zmpop(ctx: &mut Ctx, args: &Args) {
    let numkeys = match parse_long_in(&args[1], 1, i64::MAX, "ERR numkeys should be greater than 0") {
        Ok(n) => n as usize,
        Err(e) => return ctx.out.error(&e),
    };
    let where_at = match numkeys.checked_add(2) {
        Some(w) if w < args.len() => w,
        _ => return ctx.out.error(err::SYNTAX),
    };
    let max = if args.is(where_at, "min") {
        false
    } else if args.is(where_at, "max") {
        true
    } else {
        return ctx.out.error(err::SYNTAX);
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && args.is(j, "count") && j + 1 < args.len() {
            match parse_long_in(&args[j + 1], 1, i64::MAX, "ERR count should be greater than 0") {
                Ok(n) => count = Some(n as usize),
                Err(e) => return ctx.out.error(&e),
            }
            j += 2;
        } else {
            return ctx.out.error(err::SYNTAX);
        }
    }
    let (db, now) = (ctx.db, ctx.now);
    for i in 2..where_at {
        let key = &args[i];
        match ctx.ks.get_typed::<ZSet>(db, key, now) {
            Err(e) => return ctx.out.error(e.msg()),
            Ok(None) => continue,
            Ok(Some(_)) => {
                let popped = pop_n(ctx.ks, db, key, now, count.unwrap_or(1), max);
                ctx.notify(ev::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
                ctx.out.array(2);
                ctx.out.bulk(key);
                // Always nested pairs, in RESP2 too.
                ctx.out.array(popped.len());
                for (m, s) in &popped {
                    ctx.out.array(2);
                    ctx.out.bulk(m);
                    ctx.out.double(*s);
                }
                return;
            }
        }
    }
    ctx.out.null_array();
}

// ---- ZRANDMEMBER --------------------------------------------------------------------

/// ZRANDMEMBER key [count [WITHSCORES]]
fn zrandmember(ctx: &mut Ctx, args: &Args) {
    if args.len() == 2 {
        let (db, now) = (ctx.db, ctx.now);
        let r = ctx.rng.next_u64();
        return match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
            Err(e) => ctx.out.error(e.msg()),
            Ok(None) => ctx.out.null(),
            Ok(Some(z)) => match z.at_rank((r % z.len() as u64) as usize) {
                Some((m, _)) => ctx.out.bulk(m),
                None => ctx.out.null(),
            },
        };
    }
    let l = match parse_i64(&args[2]) {
        None => return ctx.out.error(err::NOT_INT),
        Some(i64::MIN) => {
            return ctx
                .out
                .error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        }
        Some(l) => l,
    };
    if args.len() > 4 || (args.len() == 4 && !args.is(3, "withscores")) {
        return ctx.out.error(err::SYNTAX);
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return ctx.out.error("ERR value is out of range");
    }
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.array(0),
        Ok(Some(z)) => z,
    };
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    if count == 0 {
        return ctx.out.array(0);
    }
    let size = z.len();
    // A listpack is read once into a table so each draw is O(1).
    let table: Vec<(&[u8], f64)> = if z.encoding() == "listpack" { z.iter().collect() } else { Vec::new() };
    let at = |r: usize| -> (&[u8], f64) {
        if table.is_empty() {
            z.at_rank(r).unwrap_or((&[], 0.0))
        } else {
            table[r]
        }
    };
    let out = &mut ctx.out;
    if !uniq || count == 1 {
        // Draws with repetition.
        let count = count as usize;
        pairs_header(out, count, withscores);
        for _ in 0..count {
            let (m, s) = at((ctx.rng.next_u64() % size as u64) as usize);
            pair(out, m, s, withscores);
        }
        return;
    }
    if count as usize >= size {
        // The whole set, highest first, as Redis 7.0 replies it.
        return emit_ranks(out, z, size - 1, size, true, withscores);
    }
    // Distinct members: a partial Fisher-Yates shuffle of the ranks.
    let count = count as usize;
    let mut ranks: Vec<usize> = (0..size).collect();
    pairs_header(out, count, withscores);
    for i in 0..count {
        let j = i + (ctx.rng.next_u64() % (size - i) as u64) as usize;
        ranks.swap(i, j);
        let (m, s) = at(ranks[i]);
        pair(out, m, s, withscores);
    }
}

// ---- ZUNION / ZINTER / ZDIFF ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *target += v;
            // inf + -inf: Redis keeps 0 rather than NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Agg::Min => {
            if v < *target {
                *target = v
            }
        }
        Agg::Max => {
            if v > *target {
                *target = v
            }
        }
    }
}

fn zunion(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, None, SetOp::Union, false, "zunion")
}
fn zinter(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, None, SetOp::Inter, false, "zinter")
}
fn zdiff(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, None, SetOp::Diff, false, "zdiff")
}
fn zunionstore(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, Some(1), SetOp::Union, false, "zunionstore")
}
fn zinterstore(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, Some(1), SetOp::Inter, false, "zinterstore")
}
fn zdiffstore(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, Some(1), SetOp::Diff, false, "zdiffstore")
}
/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
fn zintercard(ctx: &mut Ctx, args: &Args) {
    setop(ctx, args, None, SetOp::Inter, true, "zintercard")
}

/// Redis's zunionInterDiffGenericCommand. Keys are looked up and
/// type-checked before the options are parsed, as Redis does. Plain sets
/// take part with every score 1.
fn setop(ctx: &mut Ctx, args: &Args, dest: Option<usize>, op: SetOp, card: bool, name: &str) {
    let nk_at = if dest.is_some() { 2 } else { 1 };
    let Some(numkeys) = parse_i64(&args[nk_at]) else { return ctx.out.error(err::NOT_INT) };
    if numkeys < 1 {
        return ctx.out.error(&format!("ERR at least 1 input key is needed for '{name}' command"));
    }
    if numkeys as u64 > (args.len() - nk_at - 1) as u64 {
        return ctx.out.error(err::SYNTAX);
    }
    let n = numkeys as usize;
    let (db, now) = (ctx.db, ctx.now);
    // Plain sets are copied into temporary zsets so every source is a ZSet.
    let mut temps: Vec<Option<ZSet>> = Vec::with_capacity(n);
    for i in 0..n {
        match ctx.ks.lookup(db, &args[nk_at + 1 + i], now) {
            None => temps.push(None),
            Some(e) => match &e.value {
                Value::ZSet(_) => temps.push(None),
                Value::Set(s) => {
                    let mut z = ZSet::new();
                    s.for_each(|m| {
                        z.insert(m, 1.0);
                    });
                    temps.push(Some(z));
                }
                _ => return ctx.out.error(err::WRONGTYPE),
            },
        }
    }
    let mut weights = vec![1.0f64; n];
    let (mut agg, mut withscores, mut limit) = (Agg::Sum, false, 0usize);
    let mut j = nk_at + 1 + n;
    while j < args.len() {
        let remaining = args.len() - j;
        if op != SetOp::Diff && !card && remaining > n && args.is(j, "weights") {
            for (k, w) in weights.iter_mut().enumerate() {
                match parse_double(&args[j + 1 + k]) {
                    Some(v) => *w = v,
                    None => return ctx.out.error("ERR weight value is not a float"),
                }
            }
            j += 1 + n;
        } else if op != SetOp::Diff && !card && remaining >= 2 && args.is(j, "aggregate") {
            agg = match &args[j + 1] {
                a if a.eq_ignore_ascii_case(b"sum") => Agg::Sum,
                a if a.eq_ignore_ascii_case(b"min") => Agg::Min,
                a if a.eq_ignore_ascii_case(b"max") => Agg::Max,
                _ => return ctx.out.error(err::SYNTAX),
            };
            j += 2;
        } else if dest.is_none() && !card && args.is(j, "withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && args.is(j, "limit") {
            match parse_long_in(&args[j + 1], 0, i64::MAX, "ERR LIMIT can't be negative") {
                Ok(l) => limit = l as usize,
                Err(e) => return ctx.out.error(&e),
            }
            j += 2;
        } else {
            return ctx.out.error(err::SYNTAX);
        }
    }

    // Shared borrows of every source at once (lookups above did expiry).
    let ks: &Keyspace = ctx.ks;
    let srcs: Vec<Option<&ZSet>> = (0..n)
        .map(|i| match &temps[i] {
            Some(z) => Some(z),
            None => ks.peek(db, &args[nk_at + 1 + i], now).and_then(|e| e.value.as_zset()),
        })
        .collect();
    let len = |i: usize| srcs[i].map_or(0, |z| z.len());
    let mut result: Vec<(&[u8], f64)> = Vec::new();
    match op {
        SetOp::Union | SetOp::Inter => {
            // Smallest first, as Redis orders them (it matters for float sums).
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| len(i));
            if op == SetOp::Union {
                let mut acc: HashMap<&[u8], f64> = HashMap::new();
                let mut seen_order: Vec<&[u8]> = Vec::new();
                for &i in &order {
                    let Some(z) = srcs[i] else { continue };
                    for (m, s) in z.iter() {
                        let mut v = weights[i] * s;
                        if v.is_nan() {
                            v = 0.0;
                        }
                        match acc.get_mut(m) {
                            Some(t) => aggregate(t, v, agg),
                            None => {
                                acc.insert(m, v);
                                seen_order.push(m);
                            }
                        }
                    }
                }
                result = seen_order.into_iter().map(|m| (m, acc[m])).collect();
            } else if let Some(first) = srcs[order[0]].filter(|z| !z.is_empty()) {
                let mut count = 0usize;
                'members: for (m, s) in first.iter() {
                    if card && limit > 0 && count >= limit {
                        break;
                    }
                    let mut score = weights[order[0]] * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for &k in &order[1..] {
                        let Some(other) = srcs[k] else { continue 'members };
                        let v = if std::ptr::eq(other, first) {
                            s
                        } else {
                            match other.score(m) {
                                Some(v) => v,
                                None => continue 'members,
                            }
                        };
                        aggregate(&mut score, v * weights[k], agg);
                    }
                    count += 1;
                    if !card {
                        result.push((m, score));
                    }
                }
                if card {
                    return ctx.out.int(count as i64);
                }
            }
        }
        SetOp::Diff => {
            if let Some(first) = srcs[0] {
                for (m, s) in first.iter() {
                    if !srcs[1..].iter().any(|o| o.is_some_and(|o| o.score(m).is_some())) {
                        result.push((m, s));
                    }
                }
            }
        }
    }
    if card {
        return ctx.out.int(0);
    }
    result.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(b.0)));
    match dest {
        Some(d) => {
            let pairs: Vec<(Vec<u8>, f64)> = result.into_iter().map(|(m, s)| (m.to_vec(), s)).collect();
            drop(srcs);
            drop(temps);
            store_result(ctx, &args[d], pairs);
        }
        None => {
            pairs_header(&mut ctx.out, result.len(), withscores);
            for (m, s) in &result {
                pair(&mut ctx.out, m, *s, withscores);
            }
        }
    }
}

// ---- ZSCAN ---------------------------------------------------------------------------

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
fn zscan(ctx: &mut Ctx, args: &Args) {
    if parse_scan_cursor(&args[2]).is_none() {
        return ctx.out.error("ERR invalid cursor");
    }
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => {
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            return ctx.out.array(0);
        }
        Ok(Some(z)) => z,
    };
    // Options are only looked at once the key is known to exist, as in Redis.
    let sa = match parse_scan_args_ext(args, 2, false) {
        Ok(sa) => sa,
        Err(e) => return ctx.out.error(&e),
    };
    let mut items: Vec<(Vec<u8>, f64)> = Vec::new();
    let next = z.scan(sa.cursor, sa.count, |m, s| {
        if sa.pattern.as_deref().is_none_or(|p| glob_match(p, m, false)) {
            items.push((m.to_vec(), s));
        }
    });
    let out = &mut ctx.out;
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(items.len() * 2);
    for (m, s) in &items {
        out.bulk(m);
        // Scores as strings, in RESP3 too: Redis builds them as string objects.
        out.bulk(fmt_double_reply(*s).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{arity_error, arity_ok, exec, lookup, OwnedArgs, Rng};

    fn run3(ks: &mut Keyspace, resp3: bool, parts: &[&str]) -> String {
        let mut buf = Vec::new();
        let mut rng = Rng::new(7);
        {
            let mut ctx = Ctx::new(ks, 0, 1_000, Reply::new(&mut buf, resp3), &mut rng);
            let args = OwnedArgs::from_slices(parts);
            let def = lookup(parts[0].as_bytes()).expect("command").1;
            if arity_ok(def, parts.len()) {
                exec(def, &mut ctx, &args.args());
            } else {
                arity_error(&mut ctx.out, def.name);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn run(ks: &mut Keyspace, parts: &[&str]) -> String {
        run3(ks, false, parts)
    }

    #[test]
    fn zset_zadd_options_and_replies() {
        let mut ks = Keyspace::new();
        assert_eq!(run(&mut ks, &["ZADD", "z", "1", "a", "2", "b"]), ":2\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "XX", "CH", "5", "a", "9", "nope"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "GT", "CH", "1", "a", "3", "b"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "NX", "INCR", "1", "a"]), "$-1\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "INCR", "0.5", "a"]), "$3\r\n5.5\r\n");
        assert_eq!(run3(&mut ks, true, &["ZINCRBY", "z", "1", "a"]), ",6.5\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "inf", "i"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZINCRBY", "z", "-inf", "i"]), "-ERR resulting score is not a number (NaN)\r\n");
        assert!(run(&mut ks, &["ZADD", "z", "NX", "XX", "1", "a"]).starts_with("-ERR XX and NX"));
        assert_eq!(run(&mut ks, &["ZADD", "z", "1e400", "a"]), "-ERR value is not a valid float\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "z", "1", "a", "2"]), "-ERR syntax error\r\n");
        assert_eq!(run(&mut ks, &["ZADD", "nokey", "XX", "1", "a"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXISTS", "nokey"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["SET", "s", "x"]), "+OK\r\n");
        assert!(run(&mut ks, &["ZADD", "s", "1", "a"]).starts_with("-WRONGTYPE"));
    }

    #[test]
    fn zset_reply_shapes_resp2_and_resp3() {
        let mut ks = Keyspace::new();
        run(&mut ks, &["ZADD", "z", "1", "a", "2.5", "b", "3", "c"]);
        assert_eq!(
            run(&mut ks, &["ZRANGE", "z", "0", "1", "WITHSCORES"]),
            "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n"
        );
        assert_eq!(
            run3(&mut ks, true, &["ZRANGE", "z", "0", "1", "WITHSCORES"]),
            "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        );
        assert_eq!(run3(&mut ks, true, &["ZRANK", "z", "b", "WITHSCORE"]), "*2\r\n:1\r\n,2.5\r\n");
        assert_eq!(run3(&mut ks, true, &["ZRANK", "z", "x", "WITHSCORE"]), "_\r\n");
        assert_eq!(run(&mut ks, &["ZREVRANK", "z", "a"]), ":2\r\n");
        assert_eq!(run3(&mut ks, true, &["ZPOPMAX", "z"]), "*2\r\n$1\r\nc\r\n,3\r\n");
        assert_eq!(run3(&mut ks, true, &["ZPOPMAX", "z", "1"]), "*1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n");
        assert_eq!(
            run(&mut ks, &["ZMPOP", "2", "nokey", "z", "MIN", "COUNT", "5"]),
            "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        // Emptied by the pop: the key is gone.
        assert_eq!(run(&mut ks, &["EXISTS", "z"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["ZMPOP", "1", "z", "MIN"]), "*-1\r\n");
    }

    #[test]
    fn zset_setops_and_store() {
        let mut ks = Keyspace::new();
        run(&mut ks, &["ZADD", "a", "1", "x", "2", "y"]);
        run(&mut ks, &["ZADD", "b", "10", "y", "20", "z"]);
        assert_eq!(
            run(&mut ks, &["ZUNION", "2", "a", "b", "WEIGHTS", "2", "1", "WITHSCORES"]),
            "*6\r\n$1\r\nx\r\n$1\r\n2\r\n$1\r\ny\r\n$2\r\n14\r\n$1\r\nz\r\n$2\r\n20\r\n"
        );
        assert_eq!(run(&mut ks, &["ZINTERSTORE", "d", "2", "a", "b", "AGGREGATE", "MIN"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZSCORE", "d", "y"]), "$1\r\n2\r\n");
        assert_eq!(run(&mut ks, &["ZDIFF", "2", "b", "a"]), "*1\r\n$1\r\nz\r\n");
        assert_eq!(run(&mut ks, &["ZINTERCARD", "2", "a", "b", "LIMIT", "0"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZINTERSTORE", "d", "2", "a", "nokey"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXISTS", "d"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["ZUNION", "0", "a"]), "-ERR at least 1 input key is needed for 'zunion' command\r\n");
        assert_eq!(run(&mut ks, &["ZRANGESTORE", "d", "b", "(10", "+inf", "BYSCORE"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["ZRANGE", "d", "0", "-1"]), "*1\r\n$1\r\nz\r\n");
    }

    /// Range commands on a skiplist-encoded set against a sorted vector.
    #[test]
    fn zset_ranges_match_model_on_large_sets() {
        let mut ks = Keyspace::new();
        let mut model: Vec<(String, i64)> = Vec::new();
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..400 {
            let s = (next() % 50) as i64;
            let m = format!("m{i:03}");
            run(&mut ks, &["ZADD", "z", &s.to_string(), &m]);
            model.push((m, s));
        }
        model.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let list = |v: &[&(String, i64)]| {
            let mut s = format!("*{}\r\n", v.len());
            for (m, _) in v {
                s += &format!("${}\r\n{}\r\n", m.len(), m);
            }
            s
        };
        assert_eq!(run(&mut ks, &["OBJECT", "ENCODING", "z"]), "$8\r\nskiplist\r\n");
        for _ in 0..100 {
            let (lo, hi) = ((next() % 60) as i64 - 5, (next() % 60) as i64 - 5);
            let (off, cnt) = ((next() % 30) as i64, (next() % 40) as i64 - 1);
            let inr: Vec<&(String, i64)> = model.iter().filter(|(_, s)| *s >= lo && *s < hi).collect();
            let want: Vec<&(String, i64)> =
                inr.iter().skip(off as usize).take(if cnt < 0 { usize::MAX } else { cnt as usize }).copied().collect();
            let got = run(
                &mut ks,
                &[
                    "ZRANGE",
                    "z",
                    &lo.to_string(),
                    &format!("({hi}"),
                    "BYSCORE",
                    "LIMIT",
                    &off.to_string(),
                    &cnt.to_string(),
                ],
            );
            assert_eq!(got, list(&want), "{lo} ({hi} LIMIT {off} {cnt}");
            let rev: Vec<&(String, i64)> = inr
                .iter()
                .rev()
                .skip(off as usize)
                .take(if cnt < 0 { usize::MAX } else { cnt as usize })
                .copied()
                .collect();
            let got = run(
                &mut ks,
                &[
                    "ZREVRANGEBYSCORE",
                    "z",
                    &format!("({hi}"),
                    &lo.to_string(),
                    "LIMIT",
                    &off.to_string(),
                    &cnt.to_string(),
                ],
            );
            assert_eq!(got, list(&rev));
            assert_eq!(
                run(&mut ks, &["ZCOUNT", "z", &lo.to_string(), &format!("({hi}")]),
                format!(":{}\r\n", inr.len())
            );
            let (a, b) = ((next() % 450) as i64 - 20, (next() % 450) as i64 - 420);
            let len = model.len() as i64;
            let (s, e) = ((if a < 0 { len + a } else { a }).max(0), (if b < 0 { len + b } else { b }).min(len - 1));
            let want: Vec<&(String, i64)> =
                if s > e { vec![] } else { model[s as usize..=e as usize].iter().collect() };
            assert_eq!(run(&mut ks, &["ZRANGE", "z", &a.to_string(), &b.to_string()]), list(&want));
            let k = (next() % model.len() as u64) as usize;
            assert_eq!(run(&mut ks, &["ZRANK", "z", &model[k].0]), format!(":{k}\r\n"));
        }
        assert_eq!(run(&mut ks, &["ZREMRANGEBYRANK", "z", "10", "19"]), ":10\r\n");
        model.drain(10..20);
        let all: Vec<&(String, i64)> = model.iter().collect();
        assert_eq!(run(&mut ks, &["ZRANGE", "z", "0", "-1"]), list(&all));
    }

    #[test]
    fn zset_writes_touch_and_reads_do_not() {
        let mut ks = Keyspace::new();
        run(&mut ks, &["ZADD", "z", "1", "a"]);
        let d = ks.dirty;
        run(&mut ks, &["ZADD", "z", "1", "a"]);
        run(&mut ks, &["ZRANGE", "z", "0", "-1"]);
        run(&mut ks, &["ZREM", "z", "nope"]);
        assert_eq!(ks.dirty, d);
        run(&mut ks, &["ZADD", "z", "2", "a"]);
        assert_eq!(ks.dirty, d + 1);
    }
}

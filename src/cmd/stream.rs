//! Stream commands: XADD, XRANGE, XREAD, consumer groups (XGROUP,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM), XINFO, XSETID, as
//! Redis 7.0 has them: same replies, RESP3 types and error texts.
//!
//! Two Redis habits matter beyond the replies:
//! - WATCH: Redis signals a modified key only for XADD, XDEL/XTRIM that
//!   removed something, and key creation. Consumer-group changes (XREADGROUP,
//!   XACK, XCLAIM, XGROUP, XSETID) do not invalidate a WATCH, so those go
//!   through `touch_quiet`, which still counts the change for the AOF and
//!   for cross-shard transactions.
//! - Propagation: anything that depends on the clock (XADD `*`, delivery
//!   times) or on node layout (`~` trimming) is logged as deterministic
//!   commands: XADD with its concrete id and an exact MAXLEN, and
//!   XREADGROUP/XCLAIM/XAUTOCLAIM as `XCLAIM ... TIME t RETRYCOUNT n FORCE
//!   JUSTID` per entry plus `XGROUP SETID ... ENTRIESREAD n`.
//!
//! BLOCK is parsed; the blocking itself belongs to the shard layer, which
//! keeps the `ReadRequest` from `parse_read` and retries it with
//! `serve_read`.

use super::flags::*;
use super::keyspec::*;
use super::table::{container, help as help_row, CommandDef, Handler, KeyspaceFn};
use super::{arity_error, err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::stream::{EntryRef, Group, Stream, StreamId, Trim, ENTRIES_READ_INVALID};
use crate::keyspace::Value;
use crate::protocol::reply::{fmt_u64, Reply};
use crate::util::parse_i64;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::STREAM).group(super::flags::Group::Stream)
}

pub static COMMANDS: &[CommandDef] = &[
    c("xadd", -5, WRITE | DENYOOM | FAST, &[at(1, RW | UPDATE)], xadd)
        .since("5.0.0")
        .tips(&["nondeterministic_output"])
        .event(ev::STREAM, "xadd"),
    c("xlen", 2, READONLY | FAST, &[at(1, RO)], xlen).since("5.0.0"),
    c("xrange", -4, READONLY, &[at(1, RO | ACCESS)], xrange).since("5.0.0"),
    c("xrevrange", -4, READONLY, &[at(1, RO | ACCESS)], xrevrange).since("5.0.0"),
    c("xdel", -3, WRITE | FAST, &[at(1, RW | DELETE)], xdel).since("5.0.0").event(ev::STREAM, "xdel"),
    c("xtrim", -4, WRITE, &[at(1, RW | DELETE)], xtrim)
        .since("5.0.0")
        .tips(&["nondeterministic_output"])
        .event(ev::STREAM, "xtrim"),
    c("xsetid", -3, WRITE | DENYOOM | FAST, &[at(1, RW | UPDATE)], xsetid).since("5.0.0").event(ev::STREAM, "xsetid"),
    c("xack", -4, WRITE | FAST, &[at(1, RW | UPDATE)], xack).since("5.0.0"),
    c("xpending", -3, READONLY, &[at(1, RO | ACCESS)], xpending).since("5.0.0").tips(&["nondeterministic_output"]),
    c("xclaim", -6, WRITE | FAST | RECORDS_NOW, &[at(1, RW | UPDATE)], xclaim)
        .since("5.0.0")
        .tips(&["nondeterministic_output"]),
    c("xautoclaim", -6, WRITE | FAST | RECORDS_NOW, &[at(1, RW | DELETE)], xautoclaim)
        .since("6.2.0")
        .tips(&["nondeterministic_output"]),
    container("xgroup", XGROUP).group(super::flags::Group::Stream).since("5.0.0"),
    container("xinfo", XINFO).group(super::flags::Group::Stream).since("5.0.0"),
    // The STREAMS keyword is found by parsing the options (`read_keys`): a
    // group or consumer may be named "streams".
    c("xread", -4, READONLY | BLOCKING, &[kw("STREAMS", 1, RO | ACCESS).range(-1, 1, 2)], xread)
        .since("5.0.0")
        .keys_fn(read_keys)
        .blocks(super::blocking::XREAD),
    c("xreadgroup", -7, WRITE | BLOCKING | RECORDS_NOW, &[kw("STREAMS", 4, RO | ACCESS).range(-1, 1, 2)], xreadgroup)
        .since("5.0.0")
        .keys_fn(read_keys)
        .blocks(super::blocking::XREADGROUP),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

// ---- helpers ------------------------------------------------------------------

/// Key positions of XREAD/XREADGROUP: the first half of what follows STREAMS.
fn read_keys(args: &Args) -> Vec<KeyRef> {
    let mut i = 1;
    while i < args.len() {
        if args.is(i, "block") || args.is(i, "count") {
            i += 1;
        } else if args.is(i, "group") {
            i += 2;
        } else if args.is(i, "streams") {
            let n = args.len() - i - 1;
            if n == 0 || !n.is_multiple_of(2) {
                return Vec::new();
            }
            return (i + 1..i + 1 + n / 2).map(|pos| KeyRef { pos, flags: RO | ACCESS }).collect();
        }
        i += 1;
    }
    Vec::new()
}

/// XGROUP's subcommands.
static XGROUP: &[CommandDef] = &[
    c("xgroup|create", -5, WRITE | DENYOOM, &[at(2, RW | INSERT)], xgroup)
        .since("5.0.0")
        .event(ev::STREAM, "xgroup-create"),
    c("xgroup|createconsumer", 5, WRITE | DENYOOM | RECORDS_NOW, &[at(2, RW | INSERT)], xgroup)
        .since("6.2.0")
        .event(ev::STREAM, "xgroup-createconsumer"),
    c("xgroup|delconsumer", 5, WRITE, &[at(2, RW | DELETE)], xgroup)
        .since("5.0.0")
        .event(ev::STREAM, "xgroup-delconsumer"),
    c("xgroup|destroy", 4, WRITE, &[at(2, RW | DELETE)], xgroup).since("5.0.0").event(ev::STREAM, "xgroup-destroy"),
    help_row("xgroup|help", XGROUP_HELP).acl(acl::STREAM).group(super::flags::Group::Stream).since("5.0.0"),
    c("xgroup|setid", -5, WRITE, &[at(2, RW | UPDATE)], xgroup).since("5.0.0").event(ev::STREAM, "xgroup-setid"),
];

/// XINFO's subcommands.
static XINFO: &[CommandDef] = &[
    c("xinfo|consumers", 4, READONLY, &[at(2, RO | ACCESS)], xinfo).since("5.0.0").tips(&["nondeterministic_output"]),
    c("xinfo|groups", 3, READONLY, &[at(2, RO | ACCESS)], xinfo).since("5.0.0"),
    help_row("xinfo|help", XINFO_HELP).acl(acl::STREAM).group(super::flags::Group::Stream).since("5.0.0"),
    c("xinfo|stream", -3, READONLY, &[at(2, RO | ACCESS)], xinfo).since("5.0.0"),
];

/// A strict id: `ms[-seq]`, no `-`/`+`.
fn strict_id(b: &[u8]) -> Option<StreamId> {
    StreamId::parse(b, 0, false).map(|p| p.0)
}

/// An interval bound: `-`, `+`, `ms[-seq]` or `(ms[-seq]` (exclusive).
fn interval_id(b: &[u8], missing_seq: u64) -> Option<(StreamId, bool)> {
    match b {
        b"-" => Some((StreamId::MIN, false)),
        b"+" => Some((StreamId::MAX, false)),
        [b'(', rest @ ..] if !rest.is_empty() => StreamId::parse(rest, missing_seq, false).map(|p| (p.0, true)),
        _ => StreamId::parse(b, missing_seq, false).map(|p| (p.0, false)),
    }
}

/// Every argument from `from` on as an exact id (XDEL, XACK).
fn strict_ids(args: &Args, from: usize) -> Option<Vec<StreamId>> {
    (from..args.len()).map(|i| strict_id(&args[i])).collect()
}

/// Start of an interval, exclusive bounds moved inward.
fn range_start(ctx: &mut Ctx, b: &[u8]) -> Option<StreamId> {
    range_bound(ctx, b, 0, StreamId::incr, "ERR invalid start ID for the interval")
}

fn range_end(ctx: &mut Ctx, b: &[u8]) -> Option<StreamId> {
    range_bound(ctx, b, u64::MAX, StreamId::decr, "ERR invalid end ID for the interval")
}

/// One end of an interval: `missing_seq` completes a bare `ms`, `inward`
/// moves an exclusive bound, `overflow` is the error when it cannot.
fn range_bound(
    ctx: &mut Ctx,
    b: &[u8],
    missing_seq: u64,
    inward: fn(StreamId) -> Option<StreamId>,
    overflow: &str,
) -> Option<StreamId> {
    match interval_id(b, missing_seq) {
        None => {
            ctx.error(INVALID_ID);
            None
        }
        Some((id, false)) => Some(id),
        Some((id, true)) => {
            let r = inward(id);
            if r.is_none() {
                ctx.error(overflow);
            }
            r
        }
    }
}

/// Count a change that Redis does not signal to WATCH (see the module doc):
/// `dirty` and cross-shard tracking see it, watchers do not.
fn touch_quiet(ctx: &mut Ctx, key: &[u8]) {
    ctx.ks.dirty += 1;
    // A change all the same for the row's keyspace event (XGROUP, XSETID).
    ctx.ks.notify.touched(ctx.db, key, false);
    if let Some(t) = &mut ctx.ks.track_touched {
        t.push((ctx.db as u8, key.into()));
    }
}

fn reply_id(out: &mut Reply, id: StreamId) {
    // Formatted on the stack: XADD replies with an id on its hot path.
    let (mut a, mut b) = ([0u8; 24], [0u8; 24]);
    let (ms, seq) = (fmt_u64(&mut a, id.ms), fmt_u64(&mut b, id.seq));
    let mut buf = [0u8; 41];
    buf[..ms.len()].copy_from_slice(ms);
    buf[ms.len()] = b'-';
    let n = ms.len() + 1 + seq.len();
    buf[ms.len() + 1..n].copy_from_slice(seq);
    out.bulk(&buf[..n]);
}

fn reply_entry(out: &mut Reply, id: StreamId, f: EntryRef) {
    out.array(2);
    reply_id(out, id);
    out.array(f.len());
    for p in f.iter() {
        out.bulk(p);
    }
}

fn nogroup(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    )
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    )
}

/// Parts of `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID`:
/// how a delivery or a claim is logged (Redis's streamPropagateXCLAIM).
fn xclaim_record(key: &[u8], group: &[u8], consumer: &[u8], id: StreamId, time: i64, count: u64) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        consumer.to_vec(),
        b"0".to_vec(),
        id.to_bytes(),
        b"TIME".to_vec(),
        time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
    ]
}

/// `XGROUP SETID key group id ENTRIESREAD n`: a group's position.
fn setid_record(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        g.last_id.to_bytes(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

fn createconsumer_record(key: &[u8], group: &[u8], consumer: &[u8]) -> Vec<Vec<u8>> {
    vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), group.to_vec(), consumer.to_vec()]
}

/// Log `records` in place of the command (nothing if empty).
fn propagate_all(ctx: &mut Ctx, records: &[Vec<Vec<u8>>]) {
    if records.is_empty() {
        ctx.propagate_nothing();
    }
    for r in records {
        ctx.propagate(r);
    }
}

// ---- XADD / XTRIM -------------------------------------------------------------

struct TrimArgs {
    how: Option<Trim>,
    approx: bool,
    limit: u64,
}

enum AddId {
    Auto,
    /// The id, and whether the sequence was given (`ms-*` otherwise).
    Explicit(StreamId, bool),
}

/// Options of XADD (from 2, up to and including the id) or XTRIM (from 2
/// to the end), as Redis's streamParseAddOrTrimArgsOrReply. Returns the
/// trim arguments, the id and its position (XADD), NOMKSTREAM.
/// What XADD/XTRIM options parse to: trim arguments, the XADD id and its
/// position, NOMKSTREAM.
type AddTrim = (TrimArgs, Option<(AddId, usize)>, bool);

fn parse_add_trim(args: &Args, xadd: bool) -> Result<AddTrim, String> {
    let argc = args.len();
    let mut t = TrimArgs { how: None, approx: false, limit: 0 };
    let mut limit_given = false;
    let mut nomk = false;
    let mut id = None;
    let mut i = 2;
    while i < argc {
        let more = argc - 1 - i;
        if xadd && &args[i] == b"*" {
            id = Some((AddId::Auto, i));
            break;
        } else if (args.is(i, "maxlen") || args.is(i, "minid")) && more > 0 {
            let maxlen = args.is(i, "maxlen");
            t.approx = false;
            if more >= 2 && &args[i + 1] == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && &args[i + 1] == b"=" {
                i += 1;
            }
            let how = if maxlen {
                let v = parse_i64(&args[i + 1]).ok_or(err::NOT_INT)?;
                if v < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                Trim::MaxLen(v as u64)
            } else {
                Trim::MinId(strict_id(&args[i + 1]).ok_or(INVALID_ID)?)
            };
            if t.how.is_some() {
                return Err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible".into());
            }
            t.how = Some(how);
            i += 1;
        } else if args.is(i, "limit") && more > 0 {
            let v = parse_i64(&args[i + 1]).ok_or(err::NOT_INT)?;
            if v < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            t.limit = v as u64;
            limit_given = true;
            i += 1;
        } else if xadd && args.is(i, "nomkstream") {
            nomk = true;
        } else if xadd {
            let (sid, seq_given) = StreamId::parse(&args[i], 0, true).ok_or(INVALID_ID)?;
            id = Some((AddId::Explicit(sid, seq_given), i));
            break;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if limit_given {
        if t.how.is_none() {
            return Err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into());
        }
        if !t.approx {
            return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
        }
    } else if t.approx {
        // Redis's default: 100 nodes' worth of entries per call.
        t.limit = crate::keyspace::stream::default_trim_limit();
    }
    Ok((t, id, nomk))
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
fn xadd(ctx: &mut Ctx, args: &Args) {
    let (trim, id, nomk) = match parse_add_trim(args, true) {
        Ok(p) => p,
        Err(e) => return ctx.error(&e),
    };
    let Some((id, id_pos)) = id else { return arity_error(&mut ctx.out, "xadd") };
    let nfields = args.len() - id_pos - 1;
    if nfields < 2 || nfields % 2 == 1 {
        return arity_error(&mut ctx.out, "xadd");
    }
    if let AddId::Explicit(sid, true) = id {
        if sid.is_zero() {
            return ctx.error("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = &args[1];
    let (db, now) = (ctx.db, ctx.now);
    let s = match ctx.get_typed_mut::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(Some(s)) => s,
        Ok(None) if nomk => return ctx.out.null(),
        Ok(None) => {
            ctx.ks.set(db, key, Value::Stream(Box::default()), 0);
            match ctx.get_typed_mut::<Stream>(key) {
                Ok(Some(s)) => s,
                _ => return ctx.error("ERR stream creation failed"),
            }
        }
    };
    if s.last_id == StreamId::MAX {
        return ctx.error("ERR The stream has exhausted the last possible ID, unable to add more items");
    }
    let last = s.last_id;
    let new_id = match id {
        AddId::Auto => {
            let ms = now.max(0) as u64;
            if ms > last.ms {
                StreamId::new(ms, 0)
            } else {
                last.incr().unwrap_or(StreamId::MAX)
            }
        }
        AddId::Explicit(sid, true) => sid,
        AddId::Explicit(sid, false) => {
            if sid.ms > last.ms {
                sid
            } else if sid.ms == last.ms && last.seq == u64::MAX {
                return ctx.error("ERR Elements are too large to be stored");
            } else if sid.ms == last.ms {
                StreamId::new(sid.ms, last.seq + 1)
            } else {
                sid
            }
        }
    };
    if new_id <= last {
        return ctx.error("ERR The ID specified in XADD is equal or smaller than the target stream top item");
    }
    let pairs: Vec<&[u8]> = (id_pos + 1..args.len()).map(|i| &args[i]).collect();
    s.append(new_id, &pairs);
    let deleted = match trim.how {
        Some(how) => s.trim(how, trim.approx, trim.limit),
        None => 0,
    };
    let len = s.len();
    reply_id(&mut ctx.out, new_id);
    ctx.ks.touch(db, key);
    if deleted > 0 {
        // Besides the row's `xadd`.
        ctx.notify(ev::STREAM, "xtrim", key);
    }
    let explicit = matches!(id, AddId::Explicit(_, true));
    if ctx.ks.effects.enabled && (!explicit || (trim.approx && deleted > 0)) {
        let mut rec: Vec<Vec<u8>> = vec![b"XADD".to_vec(), key.to_vec()];
        if deleted > 0 {
            rec.extend([b"MAXLEN".to_vec(), b"=".to_vec(), len.to_string().into_bytes()]);
        }
        rec.push(new_id.to_bytes());
        rec.extend(pairs.iter().map(|p| p.to_vec()));
        ctx.propagate(&rec);
    }
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
fn xtrim(ctx: &mut Ctx, args: &Args) {
    let trim = match parse_add_trim(args, false) {
        Ok((t, _, _)) => t,
        Err(e) => return ctx.error(&e),
    };
    let Some(how) = trim.how else { return ctx.error(err::SYNTAX) };
    let key = &args[1];
    let s = match ctx.get_typed_mut::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(s)) => s,
    };
    let deleted = s.trim(how, trim.approx, trim.limit);
    let len = s.len();
    ctx.out.int(deleted as i64);
    if deleted > 0 {
        ctx.ks.touch(ctx.db, key);
        if trim.approx {
            // Which nodes `~` drops depends on the layout: log the result.
            let n = len.to_string();
            ctx.propagate(&[&b"XTRIM"[..], key, b"MAXLEN", b"=", n.as_bytes()]);
        }
    }
}

// ---- reading --------------------------------------------------------------------

/// XLEN key
fn xlen(ctx: &mut Ctx, args: &Args) {
    match ctx.get_typed::<Stream>(&args[1]) {
        Err(e) => ctx.error(e.msg()),
        Ok(s) => {
            let n = s.map_or(0, |s| s.len());
            ctx.out.int(n as i64)
        }
    }
}

fn xrange(ctx: &mut Ctx, args: &Args) {
    range_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx, args: &Args) {
    range_generic(ctx, args, true)
}

/// XRANGE key start end [COUNT n], XREVRANGE key end start [COUNT n]
fn range_generic(ctx: &mut Ctx, args: &Args, rev: bool) {
    let (sa, ea) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let Some(start) = range_start(ctx, sa) else { return };
    let Some(end) = range_end(ctx, ea) else { return };
    let mut count: Option<usize> = None;
    let mut i = 4;
    while i < args.len() {
        if args.is(i, "count") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) => count = Some(n.max(0) as usize),
                None => return ctx.error(err::NOT_INT),
            }
            i += 2;
        } else {
            return ctx.error(err::SYNTAX);
        }
    }
    let Ctx { ks, out, db, now, .. } = ctx;
    let s = match ks.get_typed::<Stream>(*db, &args[1], *now) {
        Ok(None) => return out.array(0),
        Err(e) => return out.error(e.msg()),
        Ok(Some(s)) => s,
    };
    if count == Some(0) {
        return out.null_array();
    }
    let limit = count.unwrap_or(usize::MAX);
    let items: Vec<(StreamId, EntryRef)> =
        if rev { s.range(start, end).rev().take(limit).collect() } else { s.range(start, end).take(limit).collect() };
    out.array(items.len());
    for (id, f) in items {
        reply_entry(out, id, f);
    }
}

/// A parsed XREAD/XREADGROUP, kept by the blocking layer to retry.
#[derive(Clone, Debug)]
pub struct ReadRequest {
    /// (group, consumer) for XREADGROUP.
    pub group: Option<(Vec<u8>, Vec<u8>)>,
    /// 0: no limit.
    pub count: usize,
    /// BLOCK milliseconds (0 = forever), None without BLOCK.
    pub block: Option<i64>,
    pub noack: bool,
    pub keys: Vec<Vec<u8>>,
    /// Per key: entries must be greater than this; `$` already resolved;
    /// StreamId::MAX is `>` for a group (as in Redis, where it is the same).
    pub ids: Vec<StreamId>,
}

/// Parse XREAD (`group == false`) or XREADGROUP and check its keys and
/// groups; on error replies it and returns None.
pub fn parse_read(ctx: &mut Ctx, args: &Args, xreadgroup: bool) -> Option<ReadRequest> {
    let argc = args.len();
    let mut req = ReadRequest { group: None, count: 0, block: None, noack: false, keys: vec![], ids: vec![] };
    let mut streams_at = 0;
    let mut i = 1;
    while i < argc {
        let more = argc - 1 - i;
        if args.is(i, "block") && more > 0 {
            i += 1;
            match parse_i64(&args[i]) {
                None => {
                    ctx.error("ERR timeout is not an integer or out of range");
                    return None;
                }
                Some(t) if t < 0 => {
                    ctx.error("ERR timeout is negative");
                    return None;
                }
                Some(t) => req.block = Some(t),
            }
        } else if args.is(i, "count") && more > 0 {
            i += 1;
            match parse_i64(&args[i]) {
                None => {
                    ctx.error(err::NOT_INT);
                    return None;
                }
                Some(n) => req.count = n.max(0) as usize,
            }
        } else if args.is(i, "streams") && more > 0 {
            streams_at = i + 1;
            if !(argc - streams_at).is_multiple_of(2) {
                ctx.error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.");
                return None;
            }
            break;
        } else if args.is(i, "group") && more >= 2 {
            if !xreadgroup {
                ctx.error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            req.group = Some((args[i + 1].to_vec(), args[i + 2].to_vec()));
            i += 2;
        } else if args.is(i, "noack") {
            if !xreadgroup {
                ctx.error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            req.noack = true;
        } else {
            ctx.error(err::SYNTAX);
            return None;
        }
        i += 1;
    }
    if streams_at == 0 {
        ctx.error(err::SYNTAX);
        return None;
    }
    if xreadgroup && req.group.is_none() {
        ctx.error("ERR Missing GROUP option for XREADGROUP");
        return None;
    }
    let n = (argc - streams_at) / 2;
    for k in 0..n {
        let key = &args[streams_at + k];
        let idarg = &args[streams_at + n + k];
        let s = match ctx.get_typed::<Stream>(key) {
            Err(e) => {
                ctx.error(e.msg());
                return None;
            }
            Ok(s) => s,
        };
        let last = s.map_or(StreamId::MIN, |s| s.last_id);
        if let Some((g, _)) = &req.group {
            if !s.is_some_and(|s| s.groups.contains_key(&g[..])) {
                let msg = format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(g)
                );
                ctx.error(&msg);
                return None;
            }
        }
        let id = if idarg == b"$" {
            if xreadgroup {
                ctx.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
                return None;
            }
            last
        } else if idarg == b">" {
            if !xreadgroup {
                ctx.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
                return None;
            }
            StreamId::MAX
        } else {
            match strict_id(idarg) {
                Some(id) => id,
                None => {
                    ctx.error(INVALID_ID);
                    return None;
                }
            }
        };
        req.keys.push(key.to_vec());
        req.ids.push(id);
    }
    Some(req)
}

/// Serve `req` if any of its streams has something for it: reply (an
/// array, or a map in RESP3, of key → entries), log the group changes, and
/// return true. Returns false and writes nothing otherwise. Outside
/// `cmd::exec`, the caller clears the effects log's replaced flag after.
pub fn serve_read(ctx: &mut Ctx, req: &ReadRequest) -> bool {
    let mut body = Vec::new();
    let mut served = 0;
    let mut records: Vec<Vec<Vec<u8>>> = Vec::new();
    // Streams where the consumer was created (its keyspace event).
    let mut created: Vec<&[u8]> = Vec::new();
    let logging = ctx.ks.effects.enabled;
    let (db, now, resp3) = (ctx.db, ctx.now, ctx.out.resp3);
    let limit = if req.count == 0 { usize::MAX } else { req.count };
    for (key, &gt) in req.keys.iter().zip(&req.ids) {
        let Ok(Some(s)) = ctx.ks.get_typed_mut::<Stream>(db, key, now) else { continue };
        let mut out = Reply::new(&mut body, resp3);
        let Some((gname, cname)) = &req.group else {
            if s.is_empty() || s.last_valid_id() <= gt {
                continue;
            }
            served += 1;
            if !resp3 {
                out.array(2);
            }
            out.bulk(key);
            let start = gt.incr().unwrap_or(StreamId::MAX);
            let items: Vec<_> = s.range(start, StreamId::MAX).take(limit).collect();
            out.array(items.len());
            for (id, f) in items {
                reply_entry(&mut out, id, f);
            }
            continue;
        };
        let Some(g) = s.groups.get(&gname[..]) else { continue };
        let history = gt != StreamId::MAX;
        let start = if history {
            gt.incr().unwrap_or(StreamId::MAX)
        } else if !s.is_empty() && s.last_valid_id() > g.last_id {
            g.last_id.incr().unwrap_or(StreamId::MAX)
        } else {
            continue;
        };
        served += 1;
        if !resp3 {
            out.array(2);
        }
        out.bulk(key);
        let s: &mut Stream = s;
        let g = s.groups.get_mut(&gname[..]).expect("checked above");
        if g.ensure_consumer(cname, now) {
            created.push(key);
            if logging {
                records.push(createconsumer_record(key, gname, cname));
            }
        }
        if let Some(c) = g.consumers.get_mut(&cname[..]) {
            c.seen_time = now;
        }
        if history {
            let pending: Vec<StreamId> = g.consumers.get(&cname[..]).map_or(Vec::new(), |c| {
                if start == StreamId::MAX && gt == StreamId::MAX {
                    Vec::new()
                } else {
                    c.pel.range(start..).take(limit).copied().collect()
                }
            });
            out.array(pending.len());
            for id in pending {
                match s.get(id) {
                    Some(f) => {
                        reply_entry(&mut out, id, f);
                        if let Some(n) = s.groups.get_mut(&gname[..]).and_then(|g| g.pel.get_mut(&id)) {
                            n.delivery_time = now;
                            n.delivery_count += 1;
                        }
                    }
                    None => {
                        out.array(2);
                        reply_id(&mut out, id);
                        out.null_array();
                    }
                }
            }
        } else {
            let ids: Vec<StreamId> = s.range(start, StreamId::MAX).take(limit).map(|(id, _)| id).collect();
            out.array(ids.len());
            for &id in &ids {
                s.advance_group(gname, id);
                if let Some(f) = s.get(id) {
                    reply_entry(&mut out, id, f);
                }
                if !req.noack {
                    let g = s.groups.get_mut(&gname[..]).expect("checked above");
                    let n = g.assign(id, cname);
                    n.delivery_time = now;
                    n.delivery_count = 1;
                    if logging {
                        records.push(xclaim_record(key, gname, cname, id, now, 1));
                    }
                }
            }
            if logging && !ids.is_empty() {
                if let Some(g) = s.groups.get(&gname[..]) {
                    records.push(setid_record(key, gname, g));
                }
            }
        }
        touch_quiet(ctx, key);
    }
    for key in created {
        ctx.notify(ev::STREAM, "xgroup-createconsumer", key);
    }
    if served == 0 {
        return false;
    }
    if resp3 {
        ctx.out.map(served);
    } else {
        ctx.out.array(served);
    }
    ctx.out.raw(&body);
    if req.group.is_some() {
        propagate_all(ctx, &records);
    }
    true
}

/// XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]
fn xread(ctx: &mut Ctx, args: &Args) {
    let Some(req) = parse_read(ctx, args, false) else { return };
    if !serve_read(ctx, &req) {
        ctx.out.null_array();
        ask_to_block(ctx, args, &req);
    }
}

/// Nothing to read and BLOCK given: ask the shard to block the client,
/// with `$` pinned to the ids it meant now (a retry must not move it).
fn ask_to_block(ctx: &mut Ctx, args: &Args, req: &ReadRequest) {
    if req.block.is_none() {
        return;
    }
    ctx.ks.would_block = true;
    let n = req.keys.len();
    let first_id = args.len() - n;
    let mut parts: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    for (k, id) in req.ids.iter().enumerate() {
        if parts[first_id + k] == b"$" {
            parts[first_id + k] = id.to_bytes();
        }
    }
    ctx.ks.block_rewrite = Some(parts);
}

/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...]
fn xreadgroup(ctx: &mut Ctx, args: &Args) {
    let Some(req) = parse_read(ctx, args, true) else { return };
    if !serve_read(ctx, &req) {
        ctx.propagate_nothing();
        ctx.out.null_array();
        ask_to_block(ctx, args, &req);
    }
}

// ---- deleting ----------------------------------------------------------------------

/// XDEL key id [id ...]
fn xdel(ctx: &mut Ctx, args: &Args) {
    let key = &args[1];
    match ctx.get_typed_mut::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(_)) => {}
    }
    let Some(ids) = strict_ids(args, 2) else { return ctx.error(INVALID_ID) };
    let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.out.int(0) };
    let n = ids.iter().filter(|&&id| s.delete(id)).count();
    ctx.out.int(n as i64);
    if n > 0 {
        ctx.ks.touch(ctx.db, key);
    }
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
fn xsetid(ctx: &mut Ctx, args: &Args) {
    let Some(id) = strict_id(&args[2]) else { return ctx.error(INVALID_ID) };
    let mut added: Option<u64> = None;
    let mut maxdel = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args.is(i, "entriesadded") && more > 0 {
            match parse_i64(&args[i + 1]) {
                None => return ctx.error(err::NOT_INT),
                Some(n) if n < 0 => return ctx.error("ERR entries_added must be positive"),
                Some(n) => added = Some(n as u64),
            }
        } else if args.is(i, "maxdeletedid") && more > 0 {
            match strict_id(&args[i + 1]) {
                None => return ctx.error(INVALID_ID),
                Some(m) if id < m => {
                    return ctx
                        .error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
                }
                Some(m) => maxdel = m,
            }
        } else {
            return ctx.error(err::SYNTAX);
        }
        i += 2;
    }
    let key = &args[1];
    let s = match ctx.get_typed_mut::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(None) => return ctx.error(err::NO_KEY),
        Ok(Some(s)) => s,
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return ctx.error("ERR The ID specified in XSETID is smaller than the target stream top item");
        }
        if added.is_some_and(|a| (s.len() as u64) > a) {
            return ctx.error("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.last_id = id;
    if let Some(a) = added {
        s.entries_added = a;
    }
    if !maxdel.is_zero() {
        s.max_deleted_id = maxdel;
    }
    ctx.out.ok();
    touch_quiet(ctx, key);
}

// ---- groups ---------------------------------------------------------------------------

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn help(ctx: &mut Ctx, lines: &[&str]) {
    super::reply_help(&mut ctx.out, lines);
}

/// Check a container command's subcommand and its arity; replies the
/// error and returns None if wrong.
fn subcommand(ctx: &mut Ctx, args: &Args, cmd: &str, subs: &[(&'static str, i32)]) -> Option<&'static str> {
    let Some(&(name, arity)) = subs.iter().find(|(n, _)| args.is(1, n)) else {
        ctx.error(&super::unknown_subcommand_text(cmd, &args[1]));
        return None;
    };
    let n = args.len() as i32;
    if (arity >= 0 && n != arity) || (arity < 0 && n < -arity) {
        arity_error(&mut ctx.out, &format!("{cmd}|{name}"));
        return None;
    }
    Some(name)
}

fn subcommand_syntax(ctx: &mut Ctx, args: &Args, cmd: &str) {
    ctx.error(&super::subcommand_syntax_text(cmd, &args[1]));
}

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP
fn xgroup(ctx: &mut Ctx, args: &Args) {
    let subs = [("create", -5), ("setid", -5), ("destroy", 4), ("createconsumer", 5), ("delconsumer", 5), ("help", 2)];
    let Some(sub) = subcommand(ctx, args, "xgroup", &subs) else { return };
    if sub == "help" {
        return help(ctx, XGROUP_HELP);
    }
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_INVALID;
    if sub == "create" || sub == "setid" {
        if (sub == "create" && args.len() > 8) || (sub == "setid" && args.len() != 5 && args.len() != 7) {
            return subcommand_syntax(ctx, args, "XGROUP");
        }
        let mut i = 5;
        while i < args.len() {
            if sub == "create" && args.is(i, "mkstream") {
                mkstream = true;
                i += 1;
            } else if args.is(i, "entriesread") && i + 1 < args.len() {
                match parse_i64(&args[i + 1]) {
                    None => return ctx.error(err::NOT_INT),
                    Some(n) if n < 0 && n != ENTRIES_READ_INVALID => {
                        return ctx.error("ERR value for ENTRIESREAD must be positive or -1")
                    }
                    Some(n) => entries_read = n,
                }
                i += 2;
            } else {
                return subcommand_syntax(ctx, args, "XGROUP");
            }
        }
    }
    let (key, gname) = (&args[2], &args[3]);
    let exists = match ctx.get_typed::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(s) => s.map(|s| s.groups.contains_key(gname)),
    };
    let Some(group_exists) = exists.or(if mkstream { Some(false) } else { None }) else {
        return ctx.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
    };
    if !group_exists && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
        return ctx.error(&nogroup_for_key(key, gname));
    }
    let (db, now) = (ctx.db, ctx.now);
    match sub {
        "create" => {
            let id = if &args[4] == b"$" {
                None
            } else {
                match strict_id(&args[4]) {
                    Some(id) => Some(id),
                    None => return ctx.error(INVALID_ID),
                }
            };
            if exists.is_none() {
                ctx.ks.set(db, key, Value::Stream(Box::default()), 0);
            }
            let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(err::NO_KEY) };
            if group_exists {
                return ctx.error("BUSYGROUP Consumer Group name already exists");
            }
            let id = id.unwrap_or(s.last_id);
            s.groups.insert(gname.into(), Group::new(id, entries_read));
            ctx.out.ok();
            touch_quiet(ctx, key);
        }
        "setid" => {
            let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(err::NO_KEY) };
            let id = if &args[4] == b"$" {
                s.last_id
            } else {
                match interval_id(&args[4], 0) {
                    Some((id, false)) => id,
                    _ => return ctx.error(INVALID_ID),
                }
            };
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.out.ok();
            touch_quiet(ctx, key);
        }
        "destroy" => {
            let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(err::NO_KEY) };
            let gone = s.groups.remove(gname).is_some();
            ctx.out.int(gone as i64);
            if gone {
                touch_quiet(ctx, key);
                // Clients blocked reading through it get an error.
                ctx.ks.signal_ready(ctx.db, key);
            }
        }
        "createconsumer" => {
            let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(err::NO_KEY) };
            let created = s.groups.get_mut(gname).is_some_and(|g| g.ensure_consumer(&args[4], now));
            ctx.out.int(created as i64);
            if created {
                touch_quiet(ctx, key);
            }
        }
        _ => {
            let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(err::NO_KEY) };
            let had = s.groups.get_mut(gname).and_then(|g| g.delete_consumer(&args[4]));
            ctx.out.int(had.unwrap_or(0) as i64);
            if had.is_some() {
                touch_quiet(ctx, key);
            }
        }
    }
}

/// XACK key group id [id ...]
fn xack(ctx: &mut Ctx, args: &Args) {
    let (key, gname) = (&args[1], &args[2]);
    match ctx.get_typed::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return ctx.out.int(0),
    }
    let Some(ids) = strict_ids(args, 3) else { return ctx.error(INVALID_ID) };
    let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.out.int(0) };
    let Some(g) = s.groups.get_mut(gname) else { return ctx.out.int(0) };
    let n = ids.iter().filter(|&&id| g.ack(id)).count();
    ctx.out.int(n as i64);
    if n > 0 {
        touch_quiet(ctx, key);
    }
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
fn xpending(ctx: &mut Ctx, args: &Args) {
    let argc = args.len();
    let mut ext = None;
    if argc >= 6 {
        let mut i = 3;
        let mut minidle = 0i64;
        if args.is(3, "idle") {
            match parse_i64(&args[4]) {
                Some(n) => minidle = n,
                None => return ctx.error(err::NOT_INT),
            }
            if argc < 8 {
                return ctx.error(err::SYNTAX);
            }
            i += 2;
        }
        if argc > i + 4 {
            return ctx.error(err::SYNTAX);
        }
        let Some(start) = range_start(ctx, &args[i]) else { return };
        let Some(end) = range_end(ctx, &args[i + 1]) else { return };
        let count = match parse_i64(&args[i + 2]) {
            Some(n) => n.max(0) as usize,
            None => return ctx.error(err::NOT_INT),
        };
        let consumer = (argc > i + 3).then(|| &args[i + 3]);
        ext = Some((minidle, start, end, count, consumer));
    } else if argc != 3 {
        return ctx.error(err::SYNTAX);
    }
    let (key, gname) = (&args[1], &args[2]);
    let now = ctx.now;
    let g = match ctx.ks.get_typed::<Stream>(ctx.db, key, now) {
        Err(e) => return ctx.error(e.msg()),
        Ok(s) => s.and_then(|s| s.groups.get(gname)),
    };
    let out = &mut ctx.out;
    let Some(g) = g else { return out.error(&nogroup(key, gname)) };
    let Some((minidle, start, end, count, consumer)) = ext else {
        out.array(4);
        out.int(g.pel.len() as i64);
        match (g.pel.keys().next(), g.pel.keys().next_back()) {
            (Some(&a), Some(&b)) => {
                reply_id(out, a);
                reply_id(out, b);
                let owners: Vec<_> = g.consumers.iter().filter(|(_, c)| !c.pel.is_empty()).collect();
                out.array(owners.len());
                for (name, c) in owners {
                    out.array(2);
                    out.bulk(name);
                    out.bulk(c.pel.len().to_string().as_bytes());
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return;
    };
    let ids: Vec<StreamId> = if start > end || count == 0 {
        Vec::new()
    } else {
        match consumer {
            Some(c) => g.consumers.get(c).map_or(Vec::new(), |c| c.pel.range(start..=end).copied().collect()),
            None => g.pel.range(start..=end).map(|(id, _)| *id).collect(),
        }
    };
    let mut rows = Vec::new();
    for id in ids {
        if rows.len() >= count {
            break;
        }
        let Some(n) = g.pel.get(&id) else { continue };
        let idle = (now - n.delivery_time).max(0);
        if minidle != 0 && idle < minidle {
            continue;
        }
        rows.push((id, n, idle));
    }
    out.array(rows.len());
    for (id, n, idle) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(&n.consumer);
        out.int(idle);
        out.int(n.delivery_count as i64);
    }
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
fn xclaim(ctx: &mut Ctx, args: &Args) {
    let (key, gname, cname) = (&args[1], &args[2], &args[3]);
    match ctx.get_typed::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return ctx.error(&nogroup(key, gname)),
    }
    let now = ctx.now;
    let minidle = match parse_i64(&args[4]) {
        Some(n) => n.max(0),
        None => return ctx.error("ERR Invalid min-idle-time argument for XCLAIM"),
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match strict_id(&args[j]) {
            Some(id) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let (mut time, mut retry, mut force, mut justid, mut lastid) = (None, -1i64, false, false, None);
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args.is(j, "force") {
            force = true;
        } else if args.is(j, "justid") {
            justid = true;
        } else if args.is(j, "idle") && more > 0 {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) => time = Some(now.saturating_sub(n)),
                None => return ctx.error("ERR Invalid IDLE option argument for XCLAIM"),
            }
        } else if args.is(j, "time") && more > 0 {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) => time = Some(n),
                None => return ctx.error("ERR Invalid TIME option argument for XCLAIM"),
            }
        } else if args.is(j, "retrycount") && more > 0 {
            j += 1;
            match parse_i64(&args[j]) {
                Some(n) => retry = n,
                None => return ctx.error("ERR Invalid RETRYCOUNT option argument for XCLAIM"),
            }
        } else if args.is(j, "lastid") && more > 0 {
            j += 1;
            match interval_id(&args[j], 0) {
                Some((id, false)) => lastid = Some(id),
                _ => return ctx.error(INVALID_ID),
            }
        } else {
            let msg = format!("ERR Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(&args[j]));
            return ctx.error(&msg);
        }
        j += 1;
    }
    // A bogus time becomes now, as in Redis; during AOF replay (now == 0)
    // the logged TIME is taken as it is.
    let delivery = match time {
        Some(t) if t < 0 || (now > 0 && t > now) => now,
        Some(t) => t,
        None => now,
    };
    let logging = ctx.ks.effects.enabled;
    let resp3 = ctx.out.resp3;
    let Ok(Some(s)) = ctx.get_typed_mut::<Stream>(key) else { return ctx.error(&nogroup(key, gname)) };
    let mut records = Vec::new();
    let mut new_consumer = false;
    let mut changed = false;
    if let Some(l) = lastid {
        if let Some(g) = s.groups.get_mut(gname) {
            if l > g.last_id {
                g.last_id = l;
                changed = true;
                if logging {
                    records.push(setid_record(key, gname, g));
                }
            }
        }
    }
    let mut body = Vec::new();
    let mut out = Reply::new(&mut body, resp3);
    let mut n = 0;
    for id in ids {
        let exists = s.contains(id);
        let Some(g) = s.groups.get_mut(gname) else { break };
        let pending = g.pel.get(&id).map(|n| (n.delivery_time, n.consumer.clone()));
        if !exists {
            if let Some((t, owner)) = pending {
                if logging {
                    records.push(xclaim_record(key, gname, &owner, id, t, 0));
                }
                g.ack(id);
                changed = true;
            }
            continue;
        }
        if pending.is_none() && !force {
            continue;
        }
        if let Some((t, _)) = pending {
            if minidle > 0 && now - t < minidle {
                continue;
            }
        }
        new_consumer |= g.ensure_consumer(cname, now);
        let fresh = pending.is_none();
        let nack = g.assign(id, cname);
        if fresh {
            nack.delivery_count = 1;
        }
        nack.delivery_time = delivery;
        if retry >= 0 {
            nack.delivery_count = retry as u64;
        } else if !justid {
            nack.delivery_count += 1;
        }
        if logging {
            records.push(xclaim_record(key, gname, cname, id, nack.delivery_time, nack.delivery_count));
        }
        changed = true;
        n += 1;
        if justid {
            reply_id(&mut out, id);
        } else if let Some(f) = s.get(id) {
            reply_entry(&mut out, id, f);
        }
    }
    ctx.out.array(n);
    ctx.out.raw(&body);
    if changed {
        touch_quiet(ctx, key);
    }
    if new_consumer {
        ctx.notify(ev::STREAM, "xgroup-createconsumer", key);
    }
    propagate_all(ctx, &records);
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
fn xautoclaim(ctx: &mut Ctx, args: &Args) {
    let (key, gname, cname) = (&args[1], &args[2], &args[3]);
    let now = ctx.now;
    let minidle = match parse_i64(&args[4]) {
        Some(n) => n.max(0),
        None => return ctx.error("ERR Invalid min-idle-time argument for XAUTOCLAIM"),
    };
    let Some(start) = range_start(ctx, &args[5]) else { return };
    let (mut count, mut justid) = (100i64, false);
    let mut j = 6;
    while j < args.len() {
        if args.is(j, "count") && j + 1 < args.len() {
            match parse_i64(&args[j + 1]) {
                Some(n) if (1..=i64::MAX / 10).contains(&n) => count = n,
                _ => return ctx.error("ERR COUNT must be > 0"),
            }
            j += 2;
        } else if args.is(j, "justid") {
            justid = true;
            j += 1;
        } else {
            return ctx.error(err::SYNTAX);
        }
    }
    match ctx.get_typed::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return ctx.error(&nogroup(key, gname)),
    }
    let logging = ctx.ks.effects.enabled;
    let Ctx { ks, out, db, .. } = ctx;
    let Ok(Some(s)) = ks.get_typed_mut::<Stream>(*db, key, now) else { return out.error(err::NO_KEY) };
    let mut attempts = count * 10;
    let mut records = Vec::new();
    let mut new_consumer = false;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor = start;
    let mut next = StreamId::MIN;
    while let Some((&id, nack)) = s.groups.get(gname).and_then(|g| g.pel.range(cursor..).next()) {
        if attempts == 0 || count == 0 {
            next = id;
            break;
        }
        attempts -= 1;
        let (t, owner) = (nack.delivery_time, nack.consumer.clone());
        let after = id.incr();
        let exists = s.contains(id);
        let g = s.groups.get_mut(gname).expect("looked up above");
        if !exists {
            if logging {
                records.push(xclaim_record(key, gname, &owner, id, t, 0));
            }
            g.ack(id);
            deleted.push(id);
            // Redis counts deleted ids against COUNT too: it bounds the
            // size of the reply, not the number of claims.
            count -= 1;
        } else if minidle == 0 || now - t >= minidle {
            new_consumer |= g.ensure_consumer(cname, now);
            let nack = g.assign(id, cname);
            nack.delivery_time = now;
            if !justid {
                nack.delivery_count += 1;
            }
            if logging {
                records.push(xclaim_record(key, gname, cname, id, now, nack.delivery_count));
            }
            claimed.push(id);
            count -= 1;
        }
        match after {
            Some(a) => cursor = a,
            None => break,
        }
    }
    out.array(3);
    reply_id(out, next);
    out.array(claimed.len());
    for &id in &claimed {
        match (justid, s.get(id)) {
            (false, Some(f)) => reply_entry(out, id, f),
            _ => reply_id(out, id),
        }
    }
    out.array(deleted.len());
    for &id in &deleted {
        reply_id(out, id);
    }
    if !claimed.is_empty() || !deleted.is_empty() {
        touch_quiet(ctx, key);
    }
    if new_consumer {
        ctx.notify(ev::STREAM, "xgroup-createconsumer", key);
    }
    propagate_all(ctx, &records);
}

// ---- XINFO --------------------------------------------------------------------------

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
fn xinfo(ctx: &mut Ctx, args: &Args) {
    let subs = [("consumers", 4), ("groups", 3), ("stream", -3), ("help", 2)];
    let Some(sub) = subcommand(ctx, args, "xinfo", &subs) else { return };
    if sub == "help" {
        return help(ctx, XINFO_HELP);
    }
    let key = &args[2];
    match ctx.get_typed::<Stream>(key) {
        Err(e) => return ctx.error(e.msg()),
        Ok(None) => return ctx.error(err::NO_KEY),
        Ok(Some(_)) => {}
    }
    let mut full = None;
    if sub == "stream" && args.len() > 3 {
        if !args.is(3, "full") || (args.len() > 4 && (args.len() != 6 || !args.is(4, "count"))) {
            return subcommand_syntax(ctx, args, "XINFO");
        }
        let mut count = 10usize;
        if args.len() == 6 {
            match parse_i64(&args[5]) {
                Some(n) if n < 0 => count = 10,
                Some(n) => count = n as usize,
                None => return ctx.error(err::NOT_INT),
            }
        }
        full = Some(if count == 0 { usize::MAX } else { count });
    }
    let now = ctx.now;
    let Ctx { ks, out, db, .. } = ctx;
    let s = match ks.get_typed::<Stream>(*db, key, now) {
        Ok(None) => return out.error(err::NO_KEY),
        Err(e) => return out.error(e.msg()),
        Ok(Some(s)) => s,
    };
    match sub {
        "consumers" => {
            let Some(g) = s.groups.get(&args[3]) else { return out.error(&nogroup_for_key(key, &args[3])) };
            out.array(g.consumers.len());
            for (name, c) in &g.consumers {
                out.map(3);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"pending");
                out.int(c.pel.len() as i64);
                out.bulk(b"idle");
                out.int((now - c.seen_time).max(0));
            }
        }
        "groups" => {
            out.array(s.groups.len());
            for (name, g) in &s.groups {
                out.map(6);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pel.len() as i64);
                out.bulk(b"last-delivered-id");
                reply_id(out, g.last_id);
                group_counters(out, s, g);
            }
        }
        _ => {
            out.map(if full.is_some() { 9 } else { 10 });
            out.bulk(b"length");
            out.int(s.len() as i64);
            out.bulk(b"radix-tree-keys");
            out.int(s.node_count() as i64);
            // Not modelled exactly: a radix tree of n keys has about 2n nodes.
            out.bulk(b"radix-tree-nodes");
            out.int(1 + 2 * s.node_count() as i64);
            out.bulk(b"last-generated-id");
            reply_id(out, s.last_id);
            out.bulk(b"max-deleted-entry-id");
            reply_id(out, s.max_deleted_id);
            out.bulk(b"entries-added");
            out.int(s.entries_added as i64);
            out.bulk(b"recorded-first-entry-id");
            reply_id(out, s.first_id());
            match full {
                None => {
                    out.bulk(b"groups");
                    out.int(s.groups.len() as i64);
                    for (name, e) in [(&b"first-entry"[..], s.first()), (b"last-entry", s.last())] {
                        out.bulk(name);
                        match e {
                            Some((id, f)) => reply_entry(out, id, f),
                            None => out.null(),
                        }
                    }
                }
                Some(count) => {
                    out.bulk(b"entries");
                    let items: Vec<_> = s.range(StreamId::MIN, StreamId::MAX).take(count).collect();
                    out.array(items.len());
                    for (id, f) in items {
                        reply_entry(out, id, f);
                    }
                    out.bulk(b"groups");
                    out.array(s.groups.len());
                    for (name, g) in &s.groups {
                        out.map(7);
                        out.bulk(b"name");
                        out.bulk(name);
                        out.bulk(b"last-delivered-id");
                        reply_id(out, g.last_id);
                        group_counters(out, s, g);
                        out.bulk(b"pel-count");
                        out.int(g.pel.len() as i64);
                        out.bulk(b"pending");
                        let pel: Vec<_> = g.pel.iter().take(count).collect();
                        out.array(pel.len());
                        for (id, n) in pel {
                            out.array(4);
                            reply_id(out, *id);
                            out.bulk(&n.consumer);
                            out.int(n.delivery_time);
                            out.int(n.delivery_count as i64);
                        }
                        out.bulk(b"consumers");
                        out.array(g.consumers.len());
                        for (cname, c) in &g.consumers {
                            out.map(4);
                            out.bulk(b"name");
                            out.bulk(cname);
                            out.bulk(b"seen-time");
                            out.int(c.seen_time);
                            out.bulk(b"pel-count");
                            out.int(c.pel.len() as i64);
                            out.bulk(b"pending");
                            let pel: Vec<_> = c.pel.iter().take(count).collect();
                            out.array(pel.len());
                            for id in pel {
                                let n = g.pel.get(id);
                                out.array(3);
                                reply_id(out, *id);
                                out.int(n.map_or(0, |n| n.delivery_time));
                                out.int(n.map_or(0, |n| n.delivery_count as i64));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `entries-read` and `lag` of a group (null when unknown).
fn group_counters(out: &mut Reply, s: &Stream, g: &Group) {
    out.bulk(b"entries-read");
    if g.entries_read == ENTRIES_READ_INVALID {
        out.null();
    } else {
        out.int(g.entries_read);
    }
    out.bulk(b"lag");
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::hash::tests::run_proto;
    use crate::keyspace::Keyspace;

    /// Run one command given as parts at time `now`; returns the reply.
    fn run_at(ks: &mut Keyspace, parts: &[Vec<u8>], now: i64) -> String {
        let parts: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        String::from_utf8_lossy(&crate::cmd::testing::run_at(ks, now, &parts)).into_owned()
    }

    fn check(ks: &mut Keyspace, cases: &[(&str, &str)]) {
        for (cmd, want) in cases {
            assert_eq!(run_proto(ks, cmd, false), *want, "command: {cmd}");
        }
    }

    /// Split back-to-back RESP arrays of bulk strings into commands.
    fn parse_resp(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
        fn line(b: &mut &[u8]) -> usize {
            let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
            let n = std::str::from_utf8(&b[1..end]).expect("utf8").parse().expect("number");
            *b = &b[end + 2..];
            n
        }
        let mut cmds = Vec::new();
        while !b.is_empty() {
            let n = line(&mut b);
            let mut parts = Vec::new();
            for _ in 0..n {
                let len = line(&mut b);
                parts.push(b[..len].to_vec());
                b = &b[len + 2..];
            }
            cmds.push(parts);
        }
        cmds
    }

    fn logged(ks: &mut Keyspace) -> Vec<String> {
        let mut v = Vec::new();
        ks.effects.drain_each(|_, b| {
            for c in parse_resp(b) {
                v.push(c.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>().join(" "));
            }
        });
        v
    }

    #[test]
    fn basic_replies() {
        let mut ks = Keyspace::new();
        check(
            &mut ks,
            &[
                ("XADD s 1-1 f v", "$3\r\n1-1\r\n"),
                ("XADD s 1-1 f v", "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"),
                ("XADD s 1-* f v", "$3\r\n1-2\r\n"),
                ("XADD s 0-0 f v", "-ERR The ID specified in XADD must be greater than 0-0\r\n"),
                ("XADD s 2-1 f", "-ERR wrong number of arguments for 'xadd' command\r\n"),
                ("XADD s MAXLEN 1 LIMIT 5 3-1 f v", "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n"),
                ("XADD s LIMIT 5 3-1 f v", "-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n"),
                ("XADD s MAXLEN 1 MINID 1 3-1 f v", "-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n"),
                ("XADD nokey NOMKSTREAM 1-1 f v", "$-1\r\n"),
                ("XLEN s", ":2\r\n"),
                ("XRANGE s - + COUNT 1", "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
                ("XRANGE s (1-1 +", "*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
                ("XRANGE s - + COUNT 0", "*-1\r\n"),
                ("XRANGE s (18446744073709551615-18446744073709551615 +", "-ERR invalid start ID for the interval\r\n"),
                ("XREVRANGE s + - COUNT 1", "*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
                ("XREAD STREAMS s 1-1", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
                ("XREAD STREAMS s $", "*-1\r\n"),
                ("XREAD STREAMS s >", "-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.\r\n"),
                ("XDEL s 1-1 9-9", ":1\r\n"),
                ("XTRIM s MAXLEN 0", ":1\r\n"),
                ("EXISTS s", ":1\r\n"),
                ("XSETID s 0-1", "+OK\r\n"),
                ("XSETID nokey 1-1", "-ERR no such key\r\n"),
                ("SET str x", "+OK\r\n"),
                ("XADD str 1-1 f v", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
                ("XINFO STREAM str", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            ],
        );
    }

    /// XAUTOCLAIM's COUNT bounds claimed plus deleted ids (Redis 7): a
    /// pending entry that was deleted uses up one of them.
    #[test]
    fn xautoclaim_count_includes_deleted_ids() {
        let mut ks = Keyspace::new();
        check(
            &mut ks,
            &[
                ("XADD s 1-0 a 1", "$3\r\n1-0\r\n"),
                ("XADD s 2-0 a 2", "$3\r\n2-0\r\n"),
                ("XADD s 3-0 a 3", "$3\r\n3-0\r\n"),
                ("XGROUP CREATE s g 0", "+OK\r\n"),
                ("XREADGROUP GROUP g c1 COUNT 3 STREAMS s >", "*1\r\n*2\r\n$1\r\ns\r\n*3\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$1\r\n2\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\na\r\n$1\r\n3\r\n"),
                ("XDEL s 1-0", ":1\r\n"),
                ("XAUTOCLAIM s g c2 0 - COUNT 1", "*3\r\n$3\r\n2-0\r\n*0\r\n*1\r\n$3\r\n1-0\r\n"),
                ("XAUTOCLAIM s g c2 0 - COUNT 1 JUSTID", "*3\r\n$3\r\n3-0\r\n*1\r\n$3\r\n2-0\r\n*0\r\n"),
            ],
        );
    }

    #[test]
    fn groups_and_pending() {
        let mut ks = Keyspace::new();
        check(
            &mut ks,
            &[
                ("XGROUP CREATE s g $", "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.\r\n"),
                ("XGROUP CREATE s g $ MKSTREAM", "+OK\r\n"),
                ("XGROUP CREATE s g $", "-BUSYGROUP Consumer Group name already exists\r\n"),
                ("XGROUP CREATE s", "-ERR wrong number of arguments for 'xgroup|create' command\r\n"),
                ("XGROUP FOO s", "-ERR unknown subcommand 'FOO'. Try XGROUP HELP.\r\n"),
                ("XADD s 1-1 a 1", "$3\r\n1-1\r\n"),
                ("XADD s 2-1 b 2", "$3\r\n2-1\r\n"),
                ("XREADGROUP GROUP g c1 COUNT 1 STREAMS s >", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"),
                ("XREADGROUP GROUP g c2 STREAMS s >", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"),
                ("XREADGROUP GROUP g c2 STREAMS s >", "*-1\r\n"),
                ("XPENDING s g", "*4\r\n:2\r\n$3\r\n1-1\r\n$3\r\n2-1\r\n*2\r\n*2\r\n$2\r\nc1\r\n$1\r\n1\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n"),
                ("XPENDING s g - + 10 c2", "*1\r\n*4\r\n$3\r\n2-1\r\n$2\r\nc2\r\n:0\r\n:1\r\n"),
                ("XDEL s 1-1", ":1\r\n"),
                ("XREADGROUP GROUP g c1 STREAMS s 0", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*-1\r\n"),
                ("XCLAIM s g c3 0 1-1 2-1 JUSTID", "*1\r\n$3\r\n2-1\r\n"),
                ("XPENDING s g - + 10", "*1\r\n*4\r\n$3\r\n2-1\r\n$2\r\nc3\r\n:0\r\n:1\r\n"),
                ("XAUTOCLAIM s g c1 0 0 COUNT 5", "*3\r\n$3\r\n0-0\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*0\r\n"),
                ("XACK s g 2-1 9-9", ":1\r\n"),
                ("XGROUP DELCONSUMER s g c1", ":0\r\n"),
                ("XGROUP CREATECONSUMER s g c9", ":1\r\n"),
                ("XGROUP DESTROY s g", ":1\r\n"),
                ("XPENDING s g", "-NOGROUP No such key 's' or consumer group 'g'\r\n"),
            ],
        );
        run_proto(&mut ks, "XGROUP CREATE s g2 0", false);
        let info = run_proto(&mut ks, "XINFO GROUPS s", true);
        assert_eq!(
            info,
            "*1\r\n%6\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n_\r\n$3\r\nlag\r\n:1\r\n"
        );
    }

    #[test]
    fn group_changes_do_not_touch_watchers() {
        let mut ks = Keyspace::new();
        run_proto(&mut ks, "XGROUP CREATE s g 0 MKSTREAM", false);
        ks.watch(0, b"s", 1);
        let d = ks.dirty;
        run_proto(&mut ks, "XGROUP CREATECONSUMER s g c", false);
        assert!(ks.dirty > d);
        assert!(!ks.watch_dirty(1));
        run_proto(&mut ks, "XADD s 1-1 f v", false);
        assert!(ks.watch_dirty(1));
    }

    #[test]
    fn clock_dependent_effects_are_logged_concretely() {
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        run_proto(&mut ks, "XADD s * f v", false);
        run_proto(&mut ks, "XGROUP CREATE s g 0", false);
        run_proto(&mut ks, "XREADGROUP GROUP g c STREAMS s >", false);
        run_proto(&mut ks, "XREADGROUP GROUP g c STREAMS s >", false);
        let id = "1700000000000-0";
        assert_eq!(
            logged(&mut ks),
            [
                format!("XADD s {id} f v"),
                "XGROUP CREATE s g 0".into(),
                "XGROUP CREATECONSUMER s g c".into(),
                format!("XCLAIM s g c 0 {id} TIME 1700000000000 RETRYCOUNT 1 FORCE JUSTID"),
                format!("XGROUP SETID s g {id} ENTRIESREAD 1"),
            ]
        );
        for i in 1..=150 {
            run_proto(&mut ks, &format!("XADD t {i}-0 f v"), false);
        }
        logged(&mut ks);
        run_proto(&mut ks, "XTRIM t MAXLEN ~ 10", false);
        run_proto(&mut ks, "XADD t MAXLEN ~ 0 200-* f v", false);
        run_proto(&mut ks, "XADD t 201-0 f v", false);
        assert_eq!(
            logged(&mut ks),
            ["XTRIM t MAXLEN = 50".to_string(), "XADD t MAXLEN = 0 200-0 f v".into(), "XADD t 201-0 f v".into()]
        );
    }

    #[test]
    fn rebuild_commands_round_trip() {
        let mut ks = Keyspace::new();
        for cmd in [
            "XADD s 1-1 a 1 b 2",
            "XADD s 2-1 a 3",
            "XADD s 3-1 c 4",
            "XADD s 4-1 c 5",
            "XGROUP CREATE s g1 0",
            "XGROUP CREATE s g2 $ ENTRIESREAD 4",
            "XREADGROUP GROUP g1 alice COUNT 2 STREAMS s >",
            "XREADGROUP GROUP g1 bob STREAMS s >",
            "XGROUP CREATECONSUMER s g2 carol",
            "XCLAIM s g1 carol 0 3-1 RETRYCOUNT 7",
            "XDEL s 2-1",
            "XSETID s 9-9 ENTRIESADDED 12",
            "XGROUP CREATE e g 0 MKSTREAM",
            "XADD e 5-5 x y",
            "XDEL e 5-5",
        ] {
            let parts: Vec<Vec<u8>> = cmd.split(' ').map(|s| s.as_bytes().to_vec()).collect();
            run_at(&mut ks, &parts, 1_000);
        }
        for key in [&b"s"[..], b"e"] {
            let mut out = Vec::new();
            let orig = ks.lookup(0, key, 1_000).and_then(|e| e.value.as_stream()).expect("stream");
            let n = orig.rebuild_commands(key, &mut out);
            let cmds = parse_resp(&out);
            assert_eq!(n, cmds.len());
            // Replayed as the AOF does: the clock reads 0.
            let mut fresh = Keyspace::new();
            for c in &cmds {
                let r = run_at(&mut fresh, c, 0);
                assert!(!r.starts_with('-'), "{r} for {:?}", String::from_utf8_lossy(&c.concat()));
            }
            let orig = ks.lookup(0, key, 1_000).and_then(|e| e.value.as_stream()).expect("stream");
            let copy = fresh.lookup(0, key, 0).and_then(|e| e.value.as_stream()).expect("rebuilt");
            let mut a = orig.clone();
            // Pending entries of deleted entries are not carried (see rebuild_commands).
            for g in a.groups.values_mut() {
                let gone: Vec<_> = g.pel.keys().copied().filter(|id| !orig.contains(*id)).collect();
                for id in gone {
                    g.ack(id);
                }
                for c in g.consumers.values_mut() {
                    c.seen_time = 0;
                }
            }
            let mut b = copy.clone();
            for g in b.groups.values_mut() {
                for c in g.consumers.values_mut() {
                    c.seen_time = 0;
                }
            }
            assert!(a.same_as(&b), "rebuilt stream differs for {:?}", String::from_utf8_lossy(key));
        }
    }
}

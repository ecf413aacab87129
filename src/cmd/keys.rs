//! Generic key commands: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, expiry, OBJECT,
//! MEMORY,
//! and the per-shard halves of keyspace-wide commands (KEYS, SCAN,
//! RANDOMKEY), which the shard layer runs on every shard and merges.

use super::flags::*;
use super::keyspec::*;
use super::table::{container, help, CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx, Rng};
use crate::keyspace::notify as ev;
use crate::keyspace::Keyspace;
use crate::util::{glob_match, parse_i64};

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::KEYSPACE).group(Group::Generic)
}

pub static COMMANDS: &[CommandDef] = &[
    c("del", -2, WRITE | SPLITS_BY_KEY, &[at(1, RM | DELETE).range(-1, 1, 0)], del)
        .since("1.0.0")
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .event(ev::GENERIC, "del"),
    c("unlink", -2, WRITE | FAST | SPLITS_BY_KEY, &[at(1, RM | DELETE).range(-1, 1, 0)], del)
        .since("4.0.0")
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .event(ev::GENERIC, "del"),
    c("exists", -2, READONLY | FAST, &[at(1, RO).range(-1, 1, 0)], exists)
        .since("1.0.0")
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    c("touch", -2, READONLY | FAST, &[at(1, RO).range(-1, 1, 0)], exists)
        .since("3.2.1")
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    c("type", 2, READONLY | FAST, &[at(1, RO)], type_cmd).since("1.0.0"),
    c("rename", 3, WRITE, &[at(1, RW | ACCESS | DELETE), at(2, OW | UPDATE)], rename).since("1.0.0"),
    c("renamenx", 3, WRITE | FAST, &[at(1, RW | ACCESS | DELETE), at(2, OW | INSERT)], renamenx).since("1.0.0"),
    c("copy", -3, WRITE | DENYOOM, &[at(1, RO | ACCESS), at(2, OW | UPDATE)], copy)
        .since("6.2.0")
        .other_db(copy_target),
    c("move", 3, WRITE | FAST, &[at(1, RW | ACCESS | UPDATE)], move_cmd).since("1.0.0").other_db(move_target),
    c("expire", -3, WRITE | FAST, &[at(1, RW | UPDATE)], expire).since("1.0.0"),
    c("pexpire", -3, WRITE | FAST, &[at(1, RW | UPDATE)], pexpire).since("2.6.0"),
    c("expireat", -3, WRITE | FAST, &[at(1, RW | UPDATE)], expireat).since("1.2.0"),
    c("pexpireat", -3, WRITE | FAST, &[at(1, RW | UPDATE)], pexpireat).since("2.6.0"),
    c("ttl", 2, READONLY | FAST, &[at(1, RO | ACCESS)], ttl).since("1.0.0").tips(&["nondeterministic_output"]),
    c("pttl", 2, READONLY | FAST, &[at(1, RO | ACCESS)], pttl).since("2.6.0").tips(&["nondeterministic_output"]),
    c("expiretime", 2, READONLY | FAST, &[at(1, RO | ACCESS)], expiretime).since("7.0.0"),
    c("pexpiretime", 2, READONLY | FAST, &[at(1, RO | ACCESS)], pexpiretime).since("7.0.0"),
    c("persist", 2, WRITE | FAST, &[at(1, RW | UPDATE)], persist).since("2.2.0"),
    container("object", OBJECT).since("2.2.3"),
    container("memory", MEMORY).group(Group::Server).since("4.0.0"),
];

/// DEL key [key ...], and UNLINK, which frees big values on the lazyfree
/// thread (as DEL does with lazyfree-lazy-user-del).
fn del(ctx: &mut Ctx, args: &Args) {
    let lazy = args.is(0, "unlink") || ctx.ks.lazy.user_del;
    let mut n = 0;
    for i in 1..args.len() {
        if ctx.ks.delete_maybe_lazy(ctx.db, &args[i], ctx.now, lazy) {
            n += 1;
        }
    }
    ctx.out.int(n);
}

/// EXISTS key [key ...] (a key named twice counts twice); also TOUCH, which
/// counts the same way but, unlike EXISTS, updates the keys' access clocks.
fn exists(ctx: &mut Ctx, args: &Args) {
    let touch = args.is(0, "touch");
    if touch {
        // TOUCH is a use of its keys even for a CLIENT NO-TOUCH client.
        ctx.ks.no_touch = false;
    }
    let mut n = 0;
    for i in 1..args.len() {
        let found = if touch {
            ctx.ks.next_lookup();
            ctx.ks.lookup(ctx.db, &args[i], ctx.now).is_some()
        } else {
            ctx.ks.lookup_no_touch(ctx.db, &args[i], ctx.now).is_some()
        };
        if found {
            n += 1;
        }
    }
    ctx.out.int(n);
}

/// TYPE key
fn type_cmd(ctx: &mut Ctx, args: &Args) {
    let name = match ctx.ks.lookup_no_touch(ctx.db, &args[1], ctx.now) {
        Some(e) => e.value.type_name(),
        None => "none",
    };
    ctx.out.simple(name);
}

fn rename(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, true)
}

/// RENAME key newkey / RENAMENX key newkey. The value and its TTL move;
/// an existing `newkey` (RENAME) is replaced, its TTL with it.
fn rename_generic(ctx: &mut Ctx, args: &Args, nx: bool) {
    let (db, now) = (ctx.db, ctx.now);
    let (src, dst) = (&args[1], &args[2]);
    if ctx.ks.lookup(db, src, now).is_none() {
        return ctx.error(err::NO_KEY);
    }
    if src == dst {
        return if nx { ctx.out.int(0) } else { ctx.out.ok() };
    }
    if nx && ctx.ks.lookup(db, dst, now).is_some() {
        return ctx.out.int(0);
    }
    // A logically expired `dst` is replaced either way.
    let clock = ctx.ks.clock_of(db, src);
    let e = match ctx.ks.remove(db, src) {
        Some(e) => e,
        None => return ctx.error(err::NO_KEY),
    };
    // Redis deletes a `dst` it replaces and adds the key anew.
    if ctx.ks.peek(db, dst, now).is_some() {
        ctx.notify(ev::NEW, "new", dst);
    }
    let (value, expire) = e.into_parts();
    ctx.ks.set(db, dst, value, expire);
    if let Some(c) = clock {
        ctx.ks.set_clock_of(db, dst, c);
    }
    // A rename, not a deletion of `src`.
    ctx.ks.notify.untouch(db, src);
    ctx.notify(ev::GENERIC, "rename_from", src);
    ctx.notify(ev::GENERIC, "rename_to", dst);
    if nx {
        ctx.out.int(1)
    } else {
        ctx.out.ok()
    }
}

/// COPY source destination [DB destination-db] [REPLACE]
fn copy(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let mut dst_db = db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "db") && i + 1 < args.len() {
            let n = match super::parse_int_arg(&args[i + 1], None) {
                Ok(n) => n,
                Err(e) => return ctx.error(e),
            };
            if n < 0 || n as usize >= ctx.ks.dbs.len() {
                return ctx.error(err::DB_INDEX);
            }
            dst_db = n as usize;
            i += 1;
        } else {
            return ctx.error(err::SYNTAX);
        }
        i += 1;
    }
    let (src, dst) = (&args[1], &args[2]);
    if dst_db == db && src == dst {
        return ctx.error("ERR source and destination objects are the same");
    }
    let (value, expire) = match ctx.ks.lookup(db, src, now) {
        Some(e) => (e.value.deep_clone(), e.expire()),
        None => return ctx.out.int(0),
    };
    if !replace && ctx.ks.lookup(dst_db, dst, now).is_some() {
        return ctx.out.int(0);
    }
    // A replaced `dst` is deleted and added anew, as in Redis: a new
    // object, so a new access clock (no LFU count carried over).
    let replaced = ctx.ks.peek(dst_db, dst, now).is_some();
    if replaced {
        ctx.ks.notify.emit(ev::NEW, "new", dst_db, dst);
    }
    ctx.ks.set(dst_db, dst, value, expire);
    if replaced {
        let clock = crate::keyspace::evict::new_clock(ctx.ks.mem_limit().policy, now);
        ctx.ks.set_clock_of(dst_db, dst, clock);
    }
    ctx.ks.notify.emit(ev::GENERIC, "copy_to", dst_db, dst);
    ctx.out.int(1);
}

/// MOVE key db: the key keeps its name, so it stays on its shard; its value
/// and expiry change databases. 0 if it is missing or `db` has the name.
fn move_cmd(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let dst_db = match super::parse_int_arg(&args[2], None) {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    if dst_db < 0 || dst_db as usize >= ctx.ks.dbs.len() {
        return ctx.error(err::DB_INDEX);
    }
    let dst_db = dst_db as usize;
    if dst_db == db {
        return ctx.error("ERR source and destination objects are the same");
    }
    let key = &args[1];
    if ctx.ks.lookup(db, key, now).is_none() || ctx.ks.lookup(dst_db, key, now).is_some() {
        return ctx.out.int(0);
    }
    let clock = ctx.ks.clock_of(db, key);
    match ctx.ks.remove(db, key) {
        Some(e) => {
            let (value, expire) = e.into_parts();
            ctx.ks.set(dst_db, key, value, expire);
            if let Some(c) = clock {
                ctx.ks.set_clock_of(dst_db, key, c);
            }
            ctx.ks.notify.untouch(db, key);
            ctx.notify(ev::GENERIC, "move_from", key);
            ctx.ks.notify.emit(ev::GENERIC, "move_to", dst_db, key);
            ctx.out.int(1)
        }
        None => ctx.out.int(0),
    }
}

fn expire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    expire_generic(ctx, args, now, true, "expire")
}

fn pexpire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    expire_generic(ctx, args, now, false, "pexpire")
}

fn expireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, false, "pexpireat")
}

/// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key time [NX|XX|GT|LT] as Redis 7.0:
/// options are checked before the time, the time (converted to absolute
/// ms) before the key. GT/LT treat "no TTL" as infinite. A time not in the
/// future deletes the key and still replies 1.
fn expire_generic(ctx: &mut Ctx, args: &Args, base: i64, seconds: bool, name: &str) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 3..args.len() {
        if args.is(i, "nx") {
            nx = true;
        } else if args.is(i, "xx") {
            xx = true;
        } else if args.is(i, "gt") {
            gt = true;
        } else if args.is(i, "lt") {
            lt = true;
        } else {
            let o = &args[i];
            // Redis formats the option with %s: it stops at a NUL byte.
            let o = &o[..o.iter().position(|&b| b == 0).unwrap_or(o.len())];
            return ctx.error(&format!("ERR Unsupported option {}", String::from_utf8_lossy(o)));
        }
    }
    if nx && (xx || gt || lt) {
        return ctx.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return ctx.error("ERR GT and LT options at the same time are not compatible");
    }
    let when = match parse_i64(&args[2]) {
        Some(n) => n,
        None => return ctx.error(err::NOT_INT),
    };
    let when = if seconds { when.checked_mul(1000) } else { Some(when) };
    let when = match when.and_then(|w| w.checked_add(base)) {
        Some(w) => w,
        None => return ctx.error(&err::INVALID_EXPIRE.replace("{}", name)),
    };
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    let current = match ctx.ks.lookup(db, key, now) {
        Some(e) => e.expire(),
        None => return ctx.out.int(0),
    };
    let refused = (nx && current != 0)
        || (xx && current == 0)
        || (gt && (current == 0 || when <= current))
        || (lt && current != 0 && when >= current);
    if refused {
        return ctx.out.int(0);
    }
    if when <= now {
        ctx.ks.remove(db, key);
        ctx.propagate(&[&b"DEL"[..], key]);
    } else {
        ctx.ks.set_expire(db, key, when);
        ctx.notify(ev::GENERIC, "expire", key);
        let mut nb = [0u8; 24];
        let at = crate::protocol::reply::fmt_i64(&mut nb, when);
        ctx.propagate(&[&b"PEXPIREAT"[..], key, at]);
    }
    ctx.out.int(1);
}

fn ttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, false)
}

fn pttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, false)
}

fn expiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, true)
}

fn pexpiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, true)
}

/// TTL/PTTL/EXPIRETIME/PEXPIRETIME: -2 missing, -1 no expiry; seconds are
/// rounded to nearest as Redis does ((ms + 500) / 1000).
fn ttl_generic(ctx: &mut Ctx, args: &Args, ms: bool, absolute: bool) {
    let now = ctx.now;
    let expire = match ctx.ks.lookup_no_touch(ctx.db, &args[1], now) {
        Some(e) => e.expire(),
        None => return ctx.out.int(-2),
    };
    if expire == 0 {
        return ctx.out.int(-1);
    }
    let t = if absolute { expire } else { expire.saturating_sub(now).max(0) };
    // i128: Redis's (t + 500) / 1000 does not wrap for t near i64::MAX.
    let t = if ms { t } else { ((t as i128 + 500) / 1000) as i64 };
    ctx.out.int(t);
}

/// PERSIST key
fn persist(ctx: &mut Ctx, args: &Args) {
    let (db, now, key) = (ctx.db, ctx.now, &args[1]);
    match ctx.ks.lookup(db, key, now) {
        Some(e) if e.expire() != 0 => {
            ctx.ks.set_expire(db, key, 0);
            ctx.notify(ev::GENERIC, "persist", key);
            ctx.out.int(1)
        }
        _ => ctx.out.int(0),
    }
}

/// A db index argument, if it is one.
fn db_arg(a: &[u8]) -> Option<usize> {
    parse_i64(a).filter(|d| (0..crate::keyspace::NUM_DBS as i64).contains(d)).map(|d| d as usize)
}

/// COPY src dst DB n: the destination in db n (a transaction pulls it too).
fn copy_target<'a>(args: &Args<'a>) -> Option<(usize, &'a [u8])> {
    let i = (3..args.len().saturating_sub(1)).find(|&i| args.is(i, "DB"))?;
    Some((db_arg(args.get(i + 1))?, args.get(2)))
}

/// MOVE key db: the key in its target db.
fn move_target<'a>(args: &Args<'a>) -> Option<(usize, &'a [u8])> {
    Some((db_arg(args.get(2))?, args.get(1)))
}

/// OBJECT's subcommands (Redis 7 lists OBJECT as a container of these).
static OBJECT: &[CommandDef] = &[
    c("object|encoding", 3, READONLY, &[at(2, RO)], object).since("2.2.3").tips(&["nondeterministic_output"]),
    c("object|freq", 3, READONLY, &[at(2, RO)], object).since("4.0.0").tips(&["nondeterministic_output"]),
    help("object|help", OBJECT_HELP).acl(acl::KEYSPACE).since("6.2.0"),
    c("object|idletime", 3, READONLY, &[at(2, RO)], object).since("2.2.3").tips(&["nondeterministic_output"]),
    c("object|refcount", 3, READONLY, &[at(2, RO)], object).since("2.2.3").tips(&["nondeterministic_output"]),
];

/// MEMORY's subcommands (STATS and DOCTOR sum every shard's figures:
/// `cmd::server::memory`).
static MEMORY: &[CommandDef] = &[
    crate::cmd::server::memory::DOCTOR,
    help("memory|help", MEMORY_HELP).group(Group::Server).since("4.0.0"),
    server_row(c("memory|malloc-stats", 2, 0, &[], memory)).since("4.0.0").tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
    server_row(c("memory|purge", 2, 0, &[], memory))
        .since("4.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    crate::cmd::server::memory::STATS,
    server_row(c("memory|usage", -3, READONLY, &[at(2, RO)], memory)).since("4.0.0"),
];

/// MEMORY is a server command in Redis's docs, with no category of its own.
const fn server_row(d: CommandDef) -> CommandDef {
    d.acl(0).group(Group::Server)
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Report memory problems, if any.",
    "MALLOC-STATS",
    "    The allocator's own statistics (none: shardis runs on libc's allocator).",
    "PURGE",
    "    Ask the allocator to return free memory to the system.",
    "STATS",
    "    The server's memory use, part by part.",
    "USAGE <key> [SAMPLES <count>]",
    "    Bytes the key and its value take in memory (SAMPLES is accepted; the",
    "    count is exact, every type keeps its own).",
    "HELP",
    "    Print this help.",
];

/// MEMORY USAGE key [SAMPLES n] | MALLOC-STATS | PURGE | HELP.
fn memory(ctx: &mut Ctx, args: &Args) {
    let sub = String::from_utf8_lossy(&args[1][..args[1].len().min(128)]).to_ascii_lowercase();
    let arity = |n: usize| args.len() == n;
    match sub.as_str() {
        "help" if arity(2) => super::reply_help(&mut ctx.out, MEMORY_HELP),
        // What Redis answers when built without jemalloc.
        "malloc-stats" if arity(2) => ctx.out.bulk_str("Stats not supported for the current allocator"),
        "purge" if arity(2) => ctx.out.ok(),
        "usage" if args.len() >= 3 => {
            let mut j = 3;
            while j < args.len() {
                if !args.is(j, "samples") || j + 1 >= args.len() {
                    return ctx.error(err::SYNTAX);
                }
                match parse_i64(&args[j + 1]) {
                    None => return ctx.error(err::NOT_INT),
                    Some(n) if n < 0 => return ctx.error(err::SYNTAX),
                    Some(_) => {}
                }
                j += 2;
            }
            match ctx.ks.lookup_no_touch(ctx.db, &args[2], ctx.now) {
                Some(e) => {
                    let n = crate::keyspace::evict::entry_mem(e);
                    ctx.out.int(n as i64)
                }
                None => ctx.out.null(),
            }
        }
        "help" | "malloc-stats" | "purge" | "usage" => super::arity_error(&mut ctx.out, &format!("memory|{sub}")),
        _ => ctx.error(&super::unknown_subcommand_text("memory", &args[1])),
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    How the value of <key> is stored (listpack, hashtable, skiplist, ...).",
    "FREQ <key>",
    "    The logarithmic access counter of <key> (LFU policies only).",
    "IDLETIME <key>",
    "    Seconds since <key> was last read or written (not under LFU policies).",
    "REFCOUNT <key>",
    "    References to the value of <key> (shared small integers report INT_MAX).",
    "HELP",
    "    This text.",
];

/// Redis shares the integer objects 0..10000 (refcount INT_MAX).
const OBJ_SHARED_INTEGERS: i64 = 10000;

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key, OBJECT HELP
fn object(ctx: &mut Ctx, args: &Args) {
    #[derive(Clone, Copy)]
    enum Sub {
        Encoding,
        Freq,
        Idletime,
        Refcount,
    }
    if args.is(1, "help") {
        if args.len() != 2 {
            return super::arity_error(&mut ctx.out, "object|help");
        }
        return super::reply_help(&mut ctx.out, OBJECT_HELP);
    }
    let (sub, full) = if args.is(1, "encoding") {
        (Sub::Encoding, "object|encoding")
    } else if args.is(1, "freq") {
        (Sub::Freq, "object|freq")
    } else if args.is(1, "idletime") {
        (Sub::Idletime, "object|idletime")
    } else if args.is(1, "refcount") {
        (Sub::Refcount, "object|refcount")
    } else {
        return ctx.error(&super::unknown_subcommand_text("object", &args[1]));
    };
    if args.len() != 3 {
        return super::arity_error(&mut ctx.out, full);
    }
    let now = ctx.now;
    // OBJECT is no access: it must not change what it reports.
    let limit = ctx.ks.mem_limit();
    let (policy, decay) = (limit.policy, limit.lfu.decay_time);
    let e = match ctx.ks.lookup_no_touch(ctx.db, &args[2], now) {
        Some(e) => e,
        None => return ctx.out.null(),
    };
    match sub {
        Sub::Encoding => {
            let enc = e.value.encoding();
            ctx.out.bulk_str(enc)
        }
        Sub::Refcount => {
            let shared = matches!(e.value, crate::keyspace::Value::Int(n) if (0..OBJ_SHARED_INTEGERS).contains(&n));
            ctx.out.int(if shared { i32::MAX as i64 } else { 1 })
        }
        Sub::Idletime if policy.is_lfu() => ctx.error(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. \
             Please note that when switching between policies at runtime LRU and LFU data \
             will take some time to adjust.",
        ),
        Sub::Idletime => {
            let ms = crate::keyspace::evict::lru_idle_ms(e.clock(), now);
            ctx.out.int((ms / 1000) as i64)
        }
        Sub::Freq if policy.is_lfu() => {
            let f = crate::keyspace::evict::lfu_decayed(e.clock(), now, decay);
            ctx.out.int(f as i64)
        }
        Sub::Freq => ctx.error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
             Please note that when switching between policies at runtime LRU and LFU data \
             will take some time to adjust.",
        ),
    }
}

/// Keys of one shard's db matching `pattern` (the per-shard half of KEYS).
pub fn keys_matching(ks: &Keyspace, db: usize, pattern: &[u8], now: i64) -> Vec<Vec<u8>> {
    let all = pattern == b"*";
    let Some(d) = ks.dbs.get(db) else { return Vec::new() };
    d.dict
        .iter()
        .filter(|e| e.expire() == 0 || e.expire() > now)
        .filter(|e| all || glob_match(pattern, e.key(), false))
        .map(|e| e.key().to_vec())
        .collect()
}

/// Parsed `cursor [MATCH pattern] [COUNT count] [TYPE type]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanArgs {
    pub cursor: u64,
    /// At least 1; Redis's default is 10.
    pub count: usize,
    /// None when absent or `*` (matches everything).
    pub pattern: Option<Vec<u8>>,
    pub type_filter: Option<Vec<u8>>,
}

/// SCAN's cursor reader, for HSCAN/SSCAN/ZSCAN too.
pub use crate::util::num::parse_scan_cursor;

/// SCAN's arguments from `from` (the cursor's index: 1 for SCAN).
pub fn parse_scan_args(args: &Args, from: usize) -> Result<ScanArgs, String> {
    parse_scan_args_ext(args, from, true)
}

/// As `parse_scan_args`; `allow_type` is false for HSCAN/SSCAN/ZSCAN,
/// where TYPE is a syntax error.
pub fn parse_scan_args_ext(args: &Args, from: usize, allow_type: bool) -> Result<ScanArgs, String> {
    if from >= args.len() {
        return Err(err::SYNTAX.to_string());
    }
    let cursor = parse_scan_cursor(&args[from]).ok_or_else(|| "ERR invalid cursor".to_string())?;
    let mut sa = ScanArgs { cursor, count: 10, pattern: None, type_filter: None };
    let mut i = from + 1;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if args.is(i, "count") && has_value {
            let n = parse_i64(&args[i + 1]).ok_or_else(|| err::NOT_INT.to_string())?;
            if n < 1 {
                return Err(err::SYNTAX.to_string());
            }
            sa.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if args.is(i, "match") && has_value {
            let p = &args[i + 1];
            sa.pattern = if p == b"*" { None } else { Some(p.to_vec()) };
        } else if allow_type && args.is(i, "type") && has_value {
            sa.type_filter = Some(args[i + 1].to_vec());
        } else {
            return Err(err::SYNTAX.to_string());
        }
        i += 2;
    }
    Ok(sa)
}

/// One shard's step of SCAN on `db`: visit buckets from `cursor` until
/// about `count` keys were visited (at most 10*count+1 buckets, as Redis
/// bounds sparse tables), appending the live keys that pass the filters to
/// `out`. Returns the next cursor of this shard's table, 0 when done.
/// As in Redis 7.0, `count` counts keys visited before filtering.
#[allow(clippy::too_many_arguments)]
pub fn scan_shard(
    ks: &Keyspace,
    db: usize,
    cursor: u64,
    count: usize,
    pattern: Option<&[u8]>,
    type_filter: Option<&[u8]>,
    now: i64,
    out: &mut Vec<Vec<u8>>,
) -> u64 {
    let Some(d) = ks.dbs.get(db) else { return 0 };
    let count = count.max(1);
    let pattern = pattern.filter(|p| *p != b"*");
    let mut budget = count.saturating_mul(10);
    let mut visited = 0usize;
    let mut cursor = cursor;
    loop {
        cursor = d.dict.scan(cursor, |e| {
            visited += 1;
            if e.expire() != 0 && e.expire() <= now {
                return;
            }
            if let Some(p) = pattern {
                if !glob_match(p, e.key(), false) {
                    return;
                }
            }
            if let Some(t) = type_filter {
                if !t.eq_ignore_ascii_case(e.value.type_name().as_bytes()) {
                    return;
                }
            }
            out.push(e.key().to_vec());
        });
        if cursor == 0 || budget == 0 || visited >= count {
            return cursor;
        }
        budget -= 1;
    }
}

/// A random live key of `db` (the per-shard half of RANDOMKEY). Expired
/// keys drawn are deleted, as Redis does; after a bounded number of such
/// draws the table is walked for the first live key instead, so a mostly
/// expired db neither loops long nor wrongly answers nil.
pub fn random_key(ks: &mut Keyspace, db: usize, now: i64, rng: &mut Rng) -> Option<Vec<u8>> {
    const MAX_TRIES: usize = 100;
    if db >= ks.dbs.len() {
        return None;
    }
    for _ in 0..MAX_TRIES {
        let (key, expire) = {
            let e = ks.dbs[db].dict.random(|| rng.next_u64())?;
            (e.key().to_vec(), e.expire())
        };
        if expire == 0 || expire > now {
            return Some(key);
        }
        // Deletes it (counted as expired) and touches watchers.
        ks.lookup(db, &key, now);
    }
    ks.dbs[db].dict.iter().find(|e| e.expire() == 0 || e.expire() > now).map(|e| e.key().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{arity_error, arity_ok, exec, lookup, OwnedArgs};
    use crate::keyspace::Value;
    use crate::protocol::reply::Reply;
    use std::collections::HashSet;

    const NOW: i64 = 1_700_000_000_000;

    fn run_at(ks: &mut Keyspace, db: usize, now: i64, parts: &[&str]) -> String {
        let mut buf = Vec::new();
        let mut rng = Rng::new(1);
        {
            let mut ctx = Ctx {
                ks,
                db,
                now,
                out: Reply::new(&mut buf, false),
                max_bulk_len: 512 << 20,
                rng: &mut rng,
                facts: &crate::cmd::Facts::SINGLE,
                scripts: None,
            };
            let args = OwnedArgs::from_slices(parts);
            let def = lookup(parts[0].as_bytes()).expect("command").1;
            if arity_ok(def, parts.len()) {
                exec(def, &mut ctx, &args.args());
            } else {
                arity_error(&mut ctx.out, def.name);
            }
        }
        String::from_utf8(buf).expect("utf8 reply")
    }

    fn run(ks: &mut Keyspace, parts: &[&str]) -> String {
        run_at(ks, 0, NOW, parts)
    }

    fn set(ks: &mut Keyspace, key: &str, val: &str, expire: i64) {
        // As a command at NOW would: the key's access clock starts then.
        ks.begin_command(NOW, true);
        ks.set(0, key.as_bytes(), Value::from_bytes(val.as_bytes()), expire);
        ks.end_command();
    }

    fn expire_of(ks: &Keyspace, db: usize, key: &str) -> Option<i64> {
        ks.dbs[db].dict.get(key.as_bytes()).map(|e| e.expire())
    }

    #[test]
    fn del_exists_touch_type() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a", "1", 0);
        set(&mut ks, "b", "x", NOW - 1); // already expired
        assert_eq!(run(&mut ks, &["EXISTS", "a", "a", "b", "c"]), ":2\r\n");
        assert_eq!(run(&mut ks, &["TOUCH", "a", "b"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["TYPE", "a"]), "+string\r\n");
        assert_eq!(run(&mut ks, &["type", "nope"]), "+none\r\n");
        set(&mut ks, "c", "1", 0);
        assert_eq!(run(&mut ks, &["DEL", "a", "a", "b", "c"]), ":2\r\n");
        assert_eq!(run(&mut ks, &["UNLINK", "a"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["DEL"]), "-ERR wrong number of arguments for 'del' command\r\n");
        assert_eq!(ks.dbs[0].dict.len(), 0);
    }

    #[test]
    fn expire_option_matrix() {
        let mut ks = Keyspace::new();
        set(&mut ks, "k", "v", 0);
        // No TTL: XX and GT refuse, LT and NX set.
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "100", "XX"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "100", "GT"]), ":0\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(0));
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "100", "LT"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(NOW + 100_000));
        assert_eq!(run(&mut ks, &["PERSIST", "k"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["PERSIST", "k"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "100", "nx"]), ":1\r\n");
        // TTL of 100s: NX refuses, XX sets; GT/LT compare.
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "50", "NX"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "200", "XX"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(NOW + 200_000));
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "200", "GT"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "100", "GT"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "300", "GT"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "300", "LT"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "400", "LT"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["PEXPIRE", "k", "250000", "LT", "XX"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(NOW + 250_000));
        assert_eq!(run(&mut ks, &["PEXPIRE", "k", "260000", "GT", "XX"]), ":1\r\n");
        assert_eq!(ks.dbs[0].volatile, 1);
        // Absolute forms.
        assert_eq!(run(&mut ks, &["EXPIREAT", "k", "1800000000"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(1_800_000_000_000));
        assert_eq!(run(&mut ks, &["PEXPIREAT", "k", "1800000000123"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "k"), Some(1_800_000_000_123));
        // Incompatible options, checked before the time and the key.
        let nx_err = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
        for opts in [["NX", "XX"], ["nx", "gt"], ["LT", "NX"]] {
            assert_eq!(run(&mut ks, &["EXPIRE", "k", "10", opts[0], opts[1]]), nx_err);
        }
        assert_eq!(
            run(&mut ks, &["EXPIRE", "nokey", "x", "GT", "LT"]),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "abc", "foo"]), "-ERR Unsupported option foo\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "10", "XX", "XX"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "abc"]), format!("-{}\r\n", err::NOT_INT));
        assert_eq!(run(&mut ks, &["EXPIRE", "k", "1.5"]), format!("-{}\r\n", err::NOT_INT));
        // Overflow, even for a missing key; named after the command.
        assert_eq!(
            run(&mut ks, &["EXPIRE", "nokey", "9999999999999999"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            run(&mut ks, &["PEXPIRE", "k", "9223372036854775807"]),
            "-ERR invalid expire time in 'pexpire' command\r\n"
        );
        assert_eq!(
            run(&mut ks, &["EXPIREAT", "k", "-9223372036854776"]),
            "-ERR invalid expire time in 'expireat' command\r\n"
        );
        assert_eq!(run(&mut ks, &["PEXPIREAT", "k", "9223372036854775807"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "nokey", "10"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["EXPIRE", "k"]), "-ERR wrong number of arguments for 'expire' command\r\n");
    }

    #[test]
    fn expire_in_the_past_deletes() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a", "1", 0);
        set(&mut ks, "b", "1", NOW + 5000);
        set(&mut ks, "c", "1", 0);
        assert_eq!(run(&mut ks, &["EXPIRE", "a", "-1"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["EXISTS", "a"]), ":0\r\n");
        // GT refuses a past time; LT accepts it and deletes.
        assert_eq!(run(&mut ks, &["PEXPIRE", "b", "0", "GT"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["PEXPIRE", "b", "0", "LT"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["EXISTS", "b"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["PEXPIREAT", "c", &NOW.to_string()]), ":1\r\n");
        assert_eq!(ks.dbs[0].dict.len(), 0);
        assert_eq!(ks.dbs[0].volatile, 0);
    }

    #[test]
    fn ttl_rounding_and_forms() {
        let mut ks = Keyspace::new();
        set(&mut ks, "p", "1", 0);
        assert_eq!(run(&mut ks, &["TTL", "nokey"]), ":-2\r\n");
        assert_eq!(run(&mut ks, &["PTTL", "p"]), ":-1\r\n");
        assert_eq!(run(&mut ks, &["EXPIRETIME", "p"]), ":-1\r\n");
        assert_eq!(run(&mut ks, &["PEXPIRETIME", "nokey"]), ":-2\r\n");
        for (ms, secs) in [(1, 0), (499, 0), (500, 1), (1499, 1), (1500, 2), (100_000, 100)] {
            set(&mut ks, "k", "v", NOW + ms);
            assert_eq!(run(&mut ks, &["TTL", "k"]), format!(":{secs}\r\n"), "ttl of {ms}ms");
            assert_eq!(run(&mut ks, &["PTTL", "k"]), format!(":{ms}\r\n"));
        }
        set(&mut ks, "k", "v", 1_700_000_001_499);
        assert_eq!(run(&mut ks, &["EXPIRETIME", "k"]), ":1700000001\r\n");
        assert_eq!(run(&mut ks, &["PEXPIRETIME", "k"]), ":1700000001499\r\n");
        set(&mut ks, "k", "v", 1_700_000_001_500);
        assert_eq!(run(&mut ks, &["EXPIRETIME", "k"]), ":1700000002\r\n");
        // Redis prints 9223372036854776 here: no wrap near i64::MAX.
        set(&mut ks, "k", "v", i64::MAX);
        assert_eq!(run(&mut ks, &["EXPIRETIME", "k"]), ":9223372036854776\r\n");
        // Expired: gone.
        set(&mut ks, "k", "v", NOW + 10);
        assert_eq!(run_at(&mut ks, 0, NOW + 10, &["TTL", "k"]), ":-2\r\n");
    }

    #[test]
    fn rename_moves_value_and_ttl() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a", "va", NOW + 10_000);
        set(&mut ks, "b", "vb", NOW + 20_000);
        set(&mut ks, "c", "vc", 0);
        assert_eq!(run(&mut ks, &["RENAME", "nokey", "x"]), "-ERR no such key\r\n");
        assert_eq!(run(&mut ks, &["RENAME", "nokey", "nokey"]), "-ERR no such key\r\n");
        assert_eq!(run(&mut ks, &["RENAMENX", "nokey", "x"]), "-ERR no such key\r\n");
        assert_eq!(run(&mut ks, &["RENAME", "a", "a"]), "+OK\r\n");
        assert_eq!(run(&mut ks, &["RENAMENX", "a", "a"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["RENAMENX", "a", "b"]), ":0\r\n");
        // Onto a key without TTL: the TTL moves with the value.
        assert_eq!(run(&mut ks, &["RENAME", "a", "c"]), "+OK\r\n");
        assert_eq!(run(&mut ks, &["EXISTS", "a"]), ":0\r\n");
        assert_eq!(expire_of(&ks, 0, "c"), Some(NOW + 10_000));
        // Onto a key with TTL from a persistent key: the TTL goes.
        set(&mut ks, "p", "vp", 0);
        assert_eq!(run(&mut ks, &["RENAME", "p", "b"]), "+OK\r\n");
        assert_eq!(expire_of(&ks, 0, "b"), Some(0));
        assert_eq!(run(&mut ks, &["GET", "b"]), "$2\r\nvp\r\n");
        assert_eq!(run(&mut ks, &["RENAMENX", "c", "new"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 0, "new"), Some(NOW + 10_000));
        // A logically expired destination counts as absent for RENAMENX.
        set(&mut ks, "dead", "x", NOW - 1);
        assert_eq!(run(&mut ks, &["RENAMENX", "new", "dead"]), ":1\r\n");
        assert_eq!(ks.dbs[0].dict.len(), 2);
        assert_eq!(ks.dbs[0].volatile, 1);
    }

    #[test]
    fn copy_with_ttl_db_and_replace() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a", "hello", NOW + 10_000);
        set(&mut ks, "b", "other", 0);
        assert_eq!(run(&mut ks, &["COPY", "a", "b"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["COPY", "nokey", "z"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["COPY", "a", "b", "REPLACE"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["GET", "b"]), "$5\r\nhello\r\n");
        assert_eq!(expire_of(&ks, 0, "b"), Some(NOW + 10_000));
        assert_eq!(expire_of(&ks, 0, "a"), Some(NOW + 10_000));
        assert_eq!(run(&mut ks, &["COPY", "a", "a", "db", "3"]), ":1\r\n");
        assert_eq!(expire_of(&ks, 3, "a"), Some(NOW + 10_000));
        assert_eq!(ks.dbs[3].volatile, 1);
        assert_eq!(run(&mut ks, &["COPY", "a", "a", "DB", "3"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["COPY", "a", "a", "db", "3", "replace"]), ":1\r\n");
        assert_eq!(run_at(&mut ks, 3, NOW, &["GET", "a"]), "$5\r\nhello\r\n");
        // Errors.
        let same = "-ERR source and destination objects are the same\r\n";
        assert_eq!(run(&mut ks, &["COPY", "a", "a"]), same);
        assert_eq!(run(&mut ks, &["COPY", "nokey", "nokey"]), same);
        assert_eq!(run(&mut ks, &["COPY", "a", "a", "DB", "0"]), same);
        assert_eq!(run(&mut ks, &["COPY", "a", "x", "DB", "16"]), "-ERR DB index is out of range\r\n");
        assert_eq!(run(&mut ks, &["COPY", "a", "x", "DB", "-1"]), "-ERR DB index is out of range\r\n");
        assert_eq!(run(&mut ks, &["COPY", "a", "x", "DB", "x"]), format!("-{}\r\n", err::NOT_INT));
        assert_eq!(
            run(&mut ks, &["COPY", "a", "x", "DB", "4294967296"]),
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
        );
        assert_eq!(run(&mut ks, &["COPY", "a", "x", "DB"]), "-ERR syntax error\r\n");
        assert_eq!(run(&mut ks, &["COPY", "a", "x", "foo"]), "-ERR syntax error\r\n");
        // The copy is independent of the source.
        set(&mut ks, "a", "changed", 0);
        assert_eq!(run(&mut ks, &["GET", "b"]), "$5\r\nhello\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "ENCODING", "b"]), "$6\r\nembstr\r\n");
    }

    #[test]
    fn writes_invalidate_watches() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a", "1", 0);
        ks.watch(0, b"a", 1);
        ks.watch(0, b"z", 2);
        ks.watch(0, b"c", 3);
        assert_eq!(run(&mut ks, &["EXPIRE", "a", "10", "XX"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["TTL", "a"]), ":-1\r\n");
        assert!(!ks.watch_dirty(1));
        assert_eq!(run(&mut ks, &["EXPIRE", "a", "10"]), ":1\r\n");
        assert!(ks.watch_dirty(1));
        assert_eq!(run(&mut ks, &["RENAME", "a", "z"]), "+OK\r\n");
        assert!(ks.watch_dirty(2));
        assert_eq!(run(&mut ks, &["COPY", "z", "c"]), ":1\r\n");
        assert!(ks.watch_dirty(3));
    }

    #[test]
    fn object_subcommands() {
        let mut ks = Keyspace::new();
        set(&mut ks, "i", "123", 0);
        set(&mut ks, "big", "123456", 0);
        set(&mut ks, "s", "hello", 0);
        set(&mut ks, "r", &"x".repeat(45), 0);
        assert_eq!(run(&mut ks, &["OBJECT", "ENCODING", "i"]), "$3\r\nint\r\n");
        assert_eq!(run(&mut ks, &["object", "encoding", "s"]), "$6\r\nembstr\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "Encoding", "r"]), "$3\r\nraw\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "ENCODING", "nokey"]), "$-1\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "REFCOUNT", "i"]), ":2147483647\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "REFCOUNT", "big"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "REFCOUNT", "s"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "IDLETIME", "s"]), ":0\r\n");
        assert_eq!(run(&mut ks, &["OBJECT", "FREQ", "nokey"]), "$-1\r\n");
        assert_eq!(
            run(&mut ks, &["OBJECT", "FREQ", "s"]),
            "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that \
             when switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n"
        );
        assert_eq!(
            run(&mut ks, &["OBJECT", "ENCODING"]),
            "-ERR wrong number of arguments for 'object|encoding' command\r\n"
        );
        assert_eq!(
            run(&mut ks, &["OBJECT", "encoding", "s", "x"]),
            "-ERR wrong number of arguments for 'object|encoding' command\r\n"
        );
        assert_eq!(
            run(&mut ks, &["OBJECT", "HELP", "x"]),
            "-ERR wrong number of arguments for 'object|help' command\r\n"
        );
        assert_eq!(run(&mut ks, &["OBJECT", "FOO"]), "-ERR unknown subcommand 'FOO'. Try OBJECT HELP.\r\n");
        let help = run(&mut ks, &["OBJECT", "help"]);
        assert!(help.starts_with("*11\r\n+OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"));
        assert!(help.ends_with("+HELP\r\n+    This text.\r\n"));
        assert_eq!(run(&mut ks, &["OBJECT"]), "-ERR wrong number of arguments for 'object' command\r\n");
    }

    #[test]
    fn table_rows() {
        let d = lookup(b"RENAME").expect("rename").1;
        assert_eq!((d.arity, d.first_key, d.last_key, d.step), (3, 1, 2, 1));
        assert!(d.has(WRITE) && !d.has(FAST));
        // A container in Redis 7: no keys of its own; OBJECT ENCODING's key at 2.
        let d = lookup(b"object").expect("object").1;
        assert_eq!((d.arity, d.first_key, d.last_key, d.step), (-2, 0, 0, 0));
        let d = crate::cmd::table::by_full_name(b"object|encoding").expect("object|encoding").1;
        assert_eq!((d.arity, d.first_key, d.last_key, d.step), (3, 2, 2, 1));
        let d = lookup(b"ttl").expect("ttl").1;
        assert!(d.has(READONLY) && d.has(FAST));
        let d = lookup(b"copy").expect("copy").1;
        assert_eq!((d.arity, d.first_key, d.last_key), (-3, 1, 2));
        for name in ["touch", "expiretime", "pexpiretime", "persist", "renamenx", "pexpireat"] {
            assert!(lookup(name.as_bytes()).is_some(), "{name}");
        }
    }

    fn scan_args(parts: &[&str]) -> Result<ScanArgs, String> {
        let a = OwnedArgs::from_slices(parts);
        parse_scan_args(&a.args(), 1)
    }

    #[test]
    fn scan_argument_parsing() {
        let sa = scan_args(&["SCAN", "0"]).expect("ok");
        assert_eq!(sa, ScanArgs { cursor: 0, count: 10, pattern: None, type_filter: None });
        let sa = scan_args(&["SCAN", "42", "match", "a*", "COUNT", "5", "TYPE", "string"]).expect("ok");
        assert_eq!(sa.cursor, 42);
        assert_eq!(sa.count, 5);
        assert_eq!(sa.pattern.as_deref(), Some(&b"a*"[..]));
        assert_eq!(sa.type_filter.as_deref(), Some(&b"string"[..]));
        assert_eq!(scan_args(&["SCAN", "0", "MATCH", "*"]).expect("ok").pattern, None);
        assert_eq!(
            scan_args(&["SCAN", "0", "type", "string", "type", "hash"]).expect("ok").type_filter.as_deref(),
            Some(&b"hash"[..])
        );
        // strtoul-style cursors, as redis-server 7.0 accepts them.
        assert_eq!(scan_args(&["SCAN", ""]).expect("ok").cursor, 0);
        assert_eq!(scan_args(&["SCAN", "+5"]).expect("ok").cursor, 5);
        assert_eq!(scan_args(&["SCAN", "-1"]).expect("ok").cursor, u64::MAX);
        assert_eq!(scan_args(&["SCAN", "18446744073709551615"]).expect("ok").cursor, u64::MAX);
        let bad = Err("ERR invalid cursor".to_string());
        for c in ["abc", " 5", "5 ", "+", "-", "18446744073709551616", "1.0"] {
            assert_eq!(scan_args(&["SCAN", c]), bad, "cursor {c:?}");
        }
        // The cursor is checked before the options.
        assert_eq!(scan_args(&["SCAN", "x", "COUNT", "0"]), bad);
        let syntax = Err(err::SYNTAX.to_string());
        assert_eq!(scan_args(&["SCAN", "0", "COUNT", "0"]), syntax);
        assert_eq!(scan_args(&["SCAN", "0", "COUNT", "-3"]), syntax);
        assert_eq!(scan_args(&["SCAN", "0", "MATCH"]), syntax);
        assert_eq!(scan_args(&["SCAN", "0", "foo", "bar"]), syntax);
        assert_eq!(scan_args(&["SCAN", "0", "COUNT", "x"]), Err(err::NOT_INT.to_string()));
        assert_eq!(scan_args(&["SCAN", "0", "COUNT", "99999999999999999999"]), Err(err::NOT_INT.to_string()));
        let a = OwnedArgs::from_slices(&["HSCAN", "h", "0", "TYPE", "string"]);
        assert_eq!(parse_scan_args_ext(&a.args(), 2, false), syntax);
    }

    fn full_scan(ks: &Keyspace, count: usize, pattern: Option<&[u8]>, ty: Option<&[u8]>, now: i64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let before = out.len();
            cursor = scan_shard(ks, 0, cursor, count, pattern, ty, now, &mut out);
            // A call never returns far more than COUNT keys (chains may overshoot).
            assert!(out.len() - before <= count + 16);
            calls += 1;
            assert!(calls < 100_000, "scan does not terminate");
            if cursor == 0 {
                return out;
            }
        }
    }

    #[test]
    fn scan_returns_every_key_once() {
        let mut ks = Keyspace::new();
        for i in 0..1000 {
            set(&mut ks, &format!("key:{i}"), "v", 0);
        }
        for count in [1, 7, 10, 100, 5000] {
            let keys = full_scan(&ks, count, None, None, NOW);
            assert_eq!(keys.len(), 1000, "count {count}");
            let set: HashSet<_> = keys.into_iter().collect();
            assert_eq!(set.len(), 1000);
        }
        // Pattern and type filters.
        let keys = full_scan(&ks, 10, Some(b"key:1??"), None, NOW);
        assert_eq!(keys.len(), 100);
        assert_eq!(full_scan(&ks, 10, Some(b"*"), Some(b"STRING"), NOW).len(), 1000);
        assert_eq!(full_scan(&ks, 10, None, Some(b"hash"), NOW).len(), 0);
        assert_eq!(full_scan(&ks, 10, None, Some(b"nosuchtype"), NOW).len(), 0);
        // Expired keys are skipped (and not deleted: the keyspace is shared).
        for i in 0..10 {
            set(&mut ks, &format!("key:{i}"), "v", NOW);
        }
        assert_eq!(full_scan(&ks, 10, None, None, NOW).len(), 990);
        assert_eq!(ks.dbs[0].dict.len(), 1000);
        // Empty db, and a db index out of range, are done at once.
        let mut out = Vec::new();
        assert_eq!(scan_shard(&ks, 1, 0, 10, None, None, NOW, &mut out), 0);
        assert_eq!(scan_shard(&ks, 99, 0, 10, None, None, NOW, &mut out), 0);
        assert!(out.is_empty());
        // A huge COUNT is bounded by the table, not allocated up front.
        assert_eq!(scan_shard(&ks, 0, 0, usize::MAX, None, None, NOW, &mut out), 0);
        assert_eq!(out.len(), 990);
    }

    #[test]
    fn scan_after_shrink() {
        let mut ks = Keyspace::new();
        for i in 0..4096 {
            set(&mut ks, &format!("k{i}"), "v", 0);
        }
        for i in 0..4096 {
            if i % 512 != 0 {
                ks.delete(0, format!("k{i}").as_bytes(), NOW);
            }
        }
        // Whatever the table size after shrinking, every remaining key is seen once.
        let keys = full_scan(&ks, 1, None, None, NOW);
        assert_eq!(keys.len(), 8);
        assert_eq!(keys.into_iter().collect::<HashSet<_>>().len(), 8);
    }

    #[test]
    fn keys_matching_skips_expired() {
        let mut ks = Keyspace::new();
        set(&mut ks, "a1", "v", 0);
        set(&mut ks, "a2", "v", NOW - 1);
        set(&mut ks, "b1", "v", 0);
        let mut k = keys_matching(&ks, 0, b"a*", NOW);
        k.sort();
        assert_eq!(k, vec![b"a1".to_vec()]);
        assert_eq!(keys_matching(&ks, 0, b"*", NOW).len(), 2);
    }

    #[test]
    fn random_key_skips_expired() {
        let mut ks = Keyspace::new();
        let mut rng = Rng::new(7);
        assert_eq!(random_key(&mut ks, 0, NOW, &mut rng), None);
        for i in 0..500 {
            set(&mut ks, &format!("dead{i}"), "v", NOW - 1);
        }
        assert_eq!(random_key(&mut ks, 0, NOW, &mut rng), None);
        set(&mut ks, "live", "v", 0);
        for _ in 0..20 {
            assert_eq!(random_key(&mut ks, 0, NOW, &mut rng), Some(b"live".to_vec()));
        }
        for i in 0..50 {
            set(&mut ks, &format!("k{i}"), "v", 0);
        }
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            seen.insert(random_key(&mut ks, 0, NOW, &mut rng).expect("a key"));
        }
        assert!(seen.len() > 40, "poor spread: {}", seen.len());
        assert_eq!(random_key(&mut ks, 99, NOW, &mut rng), None);
    }
}

//! Keyspace-wide commands: DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHDB,
//! FLUSHALL, SWAPDB. Every shard holds part of each database, so each of
//! these is a plan for every shard (`crate::shard::fanout`), plus the one
//! shard's part on its own keyspace (`here`: what AOF replay applies, and
//! the whole answer when there is one shard).
//!
//! SCAN's cursor carries the shard it is at in its low 10 bits.

use crate::cmd::flags::*;
use crate::cmd::keys::{keys_matching, parse_scan_args, random_key, scan_shard};
use crate::cmd::table::{Handler, KeyspaceFn, PlanFn};
use crate::cmd::{self, err, Args, CommandDef, Ctx};
use crate::keyspace::NUM_DBS;
use crate::shard::fanout::{FanOp, GlobalPlan, PlanCtx};
use crate::shard::FanReq;

const fn every(name: &'static str, arity: i32, flags: Flags, plan: PlanFn, here: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, &[], Handler::EveryShard { plan, here }).acl(acl::KEYSPACE)
}

pub static COMMANDS: &[CommandDef] = &[
    every("dbsize", 1, READONLY | FAST, dbsize, dbsize_here)
        .group(Group::Server)
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    every("keys", 2, READONLY, keys, keys_here)
        .acl(acl::KEYSPACE | acl::DANGEROUS)
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    every("scan", -2, READONLY, scan, scan_here)
        .since("2.8.0")
        .tips(&["nondeterministic_output", "request_policy:special"]),
    every("randomkey", 1, READONLY, randomkey, randomkey_here)
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "nondeterministic_output"]),
    every("flushdb", -1, WRITE, flushdb, flushdb_here)
        .acl(acl::KEYSPACE | acl::DANGEROUS)
        .group(Group::Server)
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    every("flushall", -1, WRITE, flushall, flushall_here)
        .acl(acl::KEYSPACE | acl::DANGEROUS)
        .group(Group::Server)
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    every("swapdb", 3, WRITE | FAST, swapdb, swapdb_here)
        .acl(acl::KEYSPACE | acl::DANGEROUS)
        .group(Group::Server)
        .since("4.0.0"),
];

/// DBSIZE: the sum of every shard's count.
fn dbsize(_: &Args, p: &PlanCtx) -> GlobalPlan {
    GlobalPlan::Fan(p.all_shards(), FanReq::DbSize { db: p.db as u8 }, FanOp::DbSize)
}

fn dbsize_here(ctx: &mut Ctx, _: &Args) {
    let n = ctx.ks.dbs.get(ctx.db).map_or(0, |d| d.dict.len());
    ctx.out.int(n as i64)
}

/// KEYS pattern: every shard's matches, joined.
fn keys(args: &Args, p: &PlanCtx) -> GlobalPlan {
    GlobalPlan::Fan(p.all_shards(), FanReq::Keys { db: p.db as u8, pattern: args.get(1).to_vec() }, FanOp::Keys)
}

fn keys_here(ctx: &mut Ctx, args: &Args) {
    let keys = keys_matching(ctx.ks, ctx.db, args.get(1), ctx.now);
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.bulk(&k);
    }
}

/// RANDOMKEY: one random key of each shard, then one of those.
fn randomkey(_: &Args, p: &PlanCtx) -> GlobalPlan {
    GlobalPlan::Fan(p.all_shards(), FanReq::RandomKey { db: p.db as u8 }, FanOp::RandomKey)
}

fn randomkey_here(ctx: &mut Ctx, _: &Args) {
    match random_key(ctx.ks, ctx.db, ctx.now, ctx.rng) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: the shard the
/// cursor names scans; the cursor moves on to the next shard when it is
/// done.
fn scan(args: &Args, p: &PlanCtx) -> GlobalPlan {
    let sa = match parse_scan_args(args, 1) {
        Ok(s) => s,
        Err(e) => return p.reply(|r| r.error(&e)),
    };
    let shard = (sa.cursor & 1023) as usize;
    if shard >= p.nshards {
        // A cursor from another shard layout: start over, as Redis does
        // with a cursor it cannot interpret.
        return p.reply(|r| {
            r.array(2);
            r.bulk(b"0");
            r.array(0);
        });
    }
    let req = FanReq::Scan {
        db: p.db as u8,
        cursor: sa.cursor >> 10,
        count: sa.count,
        pattern: sa.pattern,
        kind: sa.type_filter,
    };
    GlobalPlan::Fan(vec![shard], req, FanOp::Scan { shard })
}

/// One keyspace's SCAN, with its own cursor.
fn scan_here(ctx: &mut Ctx, args: &Args) {
    let sa = match parse_scan_args(args, 1) {
        Ok(s) => s,
        Err(e) => return ctx.error(&e),
    };
    let mut keys = Vec::new();
    let (pattern, kind) = (sa.pattern.as_deref(), sa.type_filter.as_deref());
    let next = scan_shard(ctx.ks, ctx.db, sa.cursor, sa.count, pattern, kind, ctx.now, &mut keys);
    ctx.out.array(2);
    ctx.out.bulk_str(&next.to_string());
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.bulk(&k);
    }
}

/// FLUSHDB/FLUSHALL take an optional ASYNC or SYNC.
fn flush_args_ok(args: &Args) -> bool {
    args.len() == 1 || (args.len() == 2 && (args.is(1, "ASYNC") || args.is(1, "SYNC")))
}

/// The flush's mode: Some(true) ASYNC, Some(false) SYNC, None as
/// lazyfree-lazy-user-flush says.
fn flush_mode(args: &Args) -> Option<bool> {
    (args.len() == 2).then(|| args.is(1, "ASYNC"))
}

fn flushdb(args: &Args, p: &PlanCtx) -> GlobalPlan {
    if !flush_args_ok(args) {
        return p.reply(|r| r.error(err::SYNTAX));
    }
    GlobalPlan::Fan(p.all_shards(), FanReq::FlushDb { db: p.db as u8, lazy: flush_mode(args) }, FanOp::Ok)
}

fn flushdb_here(ctx: &mut Ctx, args: &Args) {
    if !flush_args_ok(args) {
        return ctx.error(err::SYNTAX);
    }
    let lazy = flush_mode(args).unwrap_or(ctx.ks.lazy.user_flush);
    ctx.ks.flush_db_mode(ctx.db, lazy);
    ctx.out.ok()
}

fn flushall(args: &Args, p: &PlanCtx) -> GlobalPlan {
    if !flush_args_ok(args) {
        return p.reply(|r| r.error(err::SYNTAX));
    }
    GlobalPlan::Fan(p.all_shards(), FanReq::FlushAll { lazy: flush_mode(args) }, FanOp::Ok)
}

fn flushall_here(ctx: &mut Ctx, args: &Args) {
    if !flush_args_ok(args) {
        return ctx.error(err::SYNTAX);
    }
    let lazy = flush_mode(args).unwrap_or(ctx.ks.lazy.user_flush);
    for db in 0..ctx.ks.dbs.len() {
        ctx.ks.flush_db_mode(db, lazy);
    }
    ctx.out.ok()
}

/// SWAPDB index index
fn swapdb(args: &Args, p: &PlanCtx) -> GlobalPlan {
    match parse_swapdb(args.get(1), args.get(2)) {
        Ok((a, b)) => GlobalPlan::Fan(p.all_shards(), FanReq::SwapDb { a, b }, FanOp::Ok),
        Err(e) => p.reply(|r| r.error(e)),
    }
}

fn swapdb_here(ctx: &mut Ctx, args: &Args) {
    match parse_swapdb(args.get(1), args.get(2)) {
        Ok((a, b)) => {
            ctx.ks.swap_db(a as usize, b as usize);
            ctx.out.ok()
        }
        Err(e) => ctx.error(e),
    }
}

/// SWAPDB's two indexes: both are parsed before either is range-checked,
/// as in Redis (so `SWAPDB 16 x` complains about the second).
fn parse_swapdb(a: &[u8], b: &[u8]) -> Result<(u8, u8), &'static str> {
    let a = cmd::parse_int_arg(a, Some("ERR invalid first DB index"))?;
    let b = cmd::parse_int_arg(b, Some("ERR invalid second DB index"))?;
    match (u8::try_from(a), u8::try_from(b)) {
        (Ok(a), Ok(b)) if (a as usize) < NUM_DBS && (b as usize) < NUM_DBS => Ok((a, b)),
        _ => Err(err::DB_INDEX),
    }
}

//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO: run a Lua script; FCALL,
//! FCALL_RO: run a library function (`crate::script`).
//!
//! They are keyspace commands: routed by their declared keys like any
//! other (never forwarded: see `RUNS_SCRIPT`), and run against the
//! context's keyspace with the shard's engine from the context.
//!
//! # Format
//! `EVAL script numkeys [key ...] [arg ...]`,
//! `EVALSHA sha1 numkeys [key ...] [arg ...]`,
//! `FCALL function numkeys [key ...] [arg ...]`

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::script::{parse_sha, sha1::sha1_hex, Script};

const fn c(name: &'static str, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, -3, flags | RUNS_SCRIPT, keys, Handler::Keyspace(h))
        .acl(acl::SCRIPTING | acl::SLOW)
        .group(Group::Scripting)
}

const EVAL_FLAGS: Flags = NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE;
const RO_FLAGS: Flags = NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY;
const KEYS: &[KeySpec] = &[at(2, RW | ACCESS | UPDATE).keynum(0, 1, 1)];
const RO_KEYS: &[KeySpec] = &[at(2, RO | ACCESS).keynum(0, 1, 1)];

pub static COMMANDS: &[CommandDef] = &[
    c("eval", EVAL_FLAGS, KEYS, eval).since("2.6.0"),
    c("evalsha", EVAL_FLAGS, KEYS, evalsha).since("2.6.0"),
    c("eval_ro", RO_FLAGS, RO_KEYS, eval_ro).since("7.0.0"),
    c("evalsha_ro", RO_FLAGS, RO_KEYS, evalsha_ro).since("7.0.0"),
    c("fcall", EVAL_FLAGS, KEYS, fcall).since("7.0.0"),
    c("fcall_ro", RO_FLAGS, RO_KEYS, fcall_ro).since("7.0.0"),
];

fn fcall(ctx: &mut Ctx, args: &Args) {
    run_function(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx, args: &Args) {
    run_function(ctx, args, true)
}

/// `FCALL function numkeys [key ...] [arg ...]`.
fn run_function(ctx: &mut Ctx, args: &Args, read_only: bool) {
    // As Redis: the function is looked up before the keys are counted.
    let Some(engine) = ctx.scripts.as_deref_mut() else {
        return ctx.error("ERR scripts cannot run in this context");
    };
    if !engine.has_function(ctx.ks, args.get(1)) {
        return ctx.error("ERR Function not found");
    }
    if crate::util::parse_i64(args.get(2)).is_none() {
        return ctx.error("ERR Bad number of keys provided");
    }
    let n = match numkeys(args) {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    let all: Vec<&[u8]> = args.iter().skip(3).collect();
    let (keys, argv) = all.split_at(n);
    let Some(engine) = ctx.scripts.take() else {
        return ctx.error("ERR scripts cannot run in this context");
    };
    engine.fcall(ctx, args, args.get(1), keys, argv, read_only);
    ctx.scripts = Some(engine);
}

fn eval(ctx: &mut Ctx, args: &Args) {
    run(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx, args: &Args) {
    run(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx, args: &Args) {
    run(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, args: &Args) {
    run(ctx, args, true, true)
}

/// The number of keys, checked as Redis checks it.
pub fn numkeys(args: &Args) -> Result<usize, &'static str> {
    let n = crate::util::parse_i64(args.get(2)).ok_or(err::NOT_INT)?;
    if n < 0 {
        return Err("ERR Number of keys can't be negative");
    }
    if n as u64 > (args.len() - 3) as u64 {
        return Err("ERR Number of keys can't be greater than number of args");
    }
    Ok(n as usize)
}

fn run(ctx: &mut Ctx, args: &Args, by_sha: bool, read_only: bool) {
    let n = match numkeys(args) {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    let script = if by_sha {
        match parse_sha(args.get(1)) {
            Some(sha) => Script { sha, body: None },
            None => return ctx.error("NOSCRIPT No matching script. Please use EVAL."),
        }
    } else {
        Script { sha: sha1_hex(args.get(1)), body: Some(args.get(1)) }
    };
    let all: Vec<&[u8]> = args.iter().skip(3).collect();
    let (keys, argv) = all.split_at(n);
    let Some(engine) = ctx.scripts.take() else {
        return ctx.error("ERR scripts cannot run in this context");
    };
    engine.eval(ctx, &script, keys, argv, read_only);
    ctx.scripts = Some(engine);
}

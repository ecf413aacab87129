//! Generic key commands: DEL, EXISTS, TYPE, RENAME, expiry, OBJECT, and the
//! per-shard halves of keyspace-wide commands (KEYS, SCAN, RANDOMKEY).

use super::flags::*;
use super::table::{CommandDef, Handler};
use super::{Args, Ctx};

const fn c(name: &'static str, arity: i32, flags: u32, keys: (i32, i32, i32), h: Handler) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Some(h))
}

pub static COMMANDS: &[CommandDef] = &[
    c("del", -2, WRITE, (1, -1, 1), del),
    c("unlink", -2, WRITE | FAST, (1, -1, 1), del),
    c("exists", -2, READONLY | FAST, (1, -1, 1), exists),
];

/// DEL key [key ...]
fn del(ctx: &mut Ctx, args: &Args) {
    let mut n = 0;
    for i in 1..args.len() {
        if ctx.ks.delete(ctx.db, &args[i], ctx.now) {
            n += 1;
        }
    }
    ctx.out.int(n);
}

/// EXISTS key [key ...] (a key named twice counts twice)
fn exists(ctx: &mut Ctx, args: &Args) {
    let mut n = 0;
    for i in 1..args.len() {
        if ctx.ks.lookup(ctx.db, &args[i], ctx.now).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
}

/// Keys of one shard's db matching `pattern` (the per-shard half of KEYS).
pub fn keys_matching(ks: &crate::keyspace::Keyspace, db: usize, pattern: &[u8], now: i64) -> Vec<Vec<u8>> {
    let all = pattern == b"*";
    ks.dbs[db]
        .dict
        .iter()
        .filter(|e| e.expire == 0 || e.expire > now)
        .filter(|e| all || crate::util::glob_match(pattern, &e.key, false))
        .map(|e| e.key.to_vec())
        .collect()
}

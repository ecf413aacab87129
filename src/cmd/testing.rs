//! Helpers for the command families' unit tests: run a command against a
//! keyspace as the shard would (arity check, then the handler) and look at
//! its RESP2 reply.

use super::{arity_error, arity_ok, exec, lookup, Ctx, OwnedArgs, Rng};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;

/// The clock the tests run at.
pub const NOW: i64 = 1_700_000_000_000;

/// Run one command against `ks` (db 0) at `now` and return its RESP2 reply.
pub fn run_at(ks: &mut Keyspace, now: i64, parts: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut rng = Rng::new(1);
    let args = OwnedArgs::from_slices(parts);
    let (_, def) = lookup(parts[0]).expect("known command");
    let mut ctx = Ctx {
        ks,
        db: 0,
        now,
        out: Reply::new(&mut buf, false),
        max_bulk_len: 512 << 20,
        rng: &mut rng,
        facts: &super::Facts::SINGLE,
        scripts: None,
    };
    if !arity_ok(def, parts.len()) {
        arity_error(&mut ctx.out, def.name);
    } else {
        exec(def, &mut ctx, &args.args());
    }
    buf
}

/// `run_at` at `NOW`, with the command given as space-separated words.
pub fn run(ks: &mut Keyspace, cmd: &str) -> String {
    let parts: Vec<&[u8]> = cmd.split(' ').map(|s| s.as_bytes()).collect();
    String::from_utf8_lossy(&run_at(ks, NOW, &parts)).into_owned()
}

/// Run commands in order on a fresh keyspace, asserting each reply.
pub fn check(cases: &[(&str, &str)]) {
    let mut ks = Keyspace::new();
    for (cmd, want) in cases {
        assert_eq!(run(&mut ks, cmd), *want, "command: {cmd}");
    }
}

/// OBJECT ENCODING of `key` in db 0 ("none" if absent).
pub fn encoding(ks: &mut Keyspace, key: &[u8]) -> &'static str {
    ks.lookup(0, key, NOW).map(|e| e.value.encoding()).unwrap_or("none")
}

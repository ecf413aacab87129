//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH. EXEC itself is
//! `crate::shard::txn`'s (it may span shards); these rows say how each is
//! treated inside MULTI: MULTI, EXEC, DISCARD and WATCH are never queued.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::keyspec::{at, RO};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard, Wait};
use crate::shard::dispatch::MultiState;
use crate::shard::fanout::{FanOp, FanState};
use crate::shard::{FanReq, Msg};
use std::sync::Arc;

const CONTROL: Flags = NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY;

const fn tx(d: CommandDef) -> CommandDef {
    d.acl(acl::TRANSACTION).group(Group::Transactions)
}

pub static COMMANDS: &[CommandDef] = &[
    tx(server("multi", 1, CONTROL | NEVER_QUEUED, Shard::cmd_multi)).since("1.2.0"),
    // Not in the SLOWLOG itself: the commands it ran are, one by one.
    tx(server("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | NEVER_QUEUED | RUNS_QUEUE, Shard::exec_multi))
        .since("1.2.0"),
    tx(server("discard", 1, CONTROL | NEVER_QUEUED, Shard::cmd_discard)).since("2.0.0"),
    // Inside MULTI it runs, and refuses, without aborting the transaction.
    tx(CommandDef::new(
        "watch",
        -2,
        CONTROL | NEVER_QUEUED,
        &[at(1, RO).range(-1, 1, 0)],
        crate::cmd::Handler::Server(Shard::cmd_watch),
    ))
    .since("2.2.0"),
    tx(server("unwatch", 1, CONTROL, Shard::cmd_unwatch)).since("2.2.0"),
];

impl Shard {
    fn cmd_multi(&mut self, conn: &mut Conn, _: &Args) {
        let mut out = std::mem::take(&mut conn.out);
        multi(conn, &mut Reply::new(&mut out, conn.resp3));
        conn.out = out;
    }

    fn cmd_discard(&mut self, conn: &mut Conn, _: &Args) {
        if conn.multi.is_some() {
            let ws = std::mem::take(&mut conn.watch_shards);
            self.unwatch_everywhere(conn.id, &ws);
        }
        let mut out = std::mem::take(&mut conn.out);
        discard(conn, &mut Reply::new(&mut out, conn.resp3));
        conn.out = out;
    }

    fn cmd_unwatch(&mut self, conn: &mut Conn, _: &Args) {
        let ws = std::mem::take(&mut conn.watch_shards);
        self.unwatch_everywhere(conn.id, &ws);
        Reply::new(&mut conn.out, conn.resp3).ok();
    }

    /// WATCH key [key ...]: registered at every shard that owns one of the
    /// keys before the reply.
    fn cmd_watch(&mut self, conn: &mut Conn, args: &Args) {
        if conn.multi.is_some() {
            return Reply::new(&mut conn.out, conn.resp3).error("ERR WATCH inside MULTI is not allowed");
        }
        let n = self.shared.nshards;
        let mut by_shard: Vec<Vec<crate::shard::DbKey>> = vec![Vec::new(); n];
        for k in args.iter().skip(1) {
            by_shard[self.shared.slots.shard_of(k)].push((conn.db as u8, k.to_vec()));
        }
        let mut targets = Vec::new();
        for (s, keys) in by_shard.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            if !conn.watch_shards.contains(&s) {
                conn.watch_shards.push(s);
            }
            if s == self.id {
                for (db, k) in keys {
                    self.ks.watch(db as usize, &k, conn.id);
                }
            } else {
                targets.push((s, keys));
            }
        }
        if targets.is_empty() {
            return Reply::new(&mut conn.out, conn.resp3).ok();
        }
        // Reply only once every shard registered the watch, so a write
        // after our OK is always seen.
        let from = conn.conn_ref(self.id);
        let st = FanState { expect: targets.len(), resps: Vec::new(), op: FanOp::WatchAck };
        for (s, keys) in targets {
            self.send(s, Msg::Fanout { from, req: Arc::new(FanReq::Watch { who: conn.id, keys }) });
        }
        conn.wait = Wait::Fan(Box::new(st));
    }
}

/// MULTI on `conn` (also from a busy script's hook, `busy_io`).
pub fn multi(conn: &mut Conn, r: &mut Reply) {
    if conn.multi.is_some() {
        r.error("ERR MULTI calls can not be nested");
    } else {
        conn.multi = Some(MultiState { cmds: Vec::new(), aborted: false });
        r.ok();
    }
}

/// DISCARD on `conn` once its WATCHes are gone (also from `busy_io`).
pub fn discard(conn: &mut Conn, r: &mut Reply) {
    if conn.multi.take().is_none() {
        r.error("ERR DISCARD without MULTI");
    } else {
        r.ok();
    }
}

//! Persistence and stopping: BGREWRITEAOF, BGSAVE (the same: the AOF's
//! base is the snapshot), SAVE (answers once the rewrite is done),
//! LASTSAVE, SHUTDOWN.

use super::{server, session};
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef, Session};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Settle, Shard, Wait};
use crate::shard::Msg;
use std::sync::atomic::Ordering;

/// Rewrites: shardis cannot start one from a transaction's queue.
const REWRITE: Flags = ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_EXEC;

const fn srv(d: CommandDef) -> CommandDef {
    d.group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[
    srv(server("bgrewriteaof", 1, REWRITE, Shard::cmd_bgrewriteaof)).since("1.0.0"),
    srv(server("bgsave", -1, REWRITE, Shard::cmd_bgsave)).since("1.0.0"),
    srv(server("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, Shard::cmd_save)).since("1.0.0"),
    srv(session("lastsave", 1, LOADING | STALE | FAST, lastsave))
        .acl(acl::ADMIN | acl::DANGEROUS)
        .since("1.0.0")
        .tips(&["nondeterministic_output"]),
    srv(server(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | SENTINEL | ALLOW_BUSY,
        Shard::cmd_shutdown,
    ))
    .since("1.0.0"),
];

/// LASTSAVE: when the last rewrite finished (unix seconds).
fn lastsave(s: &mut Session, _: &Args) {
    s.out.int(crate::persist::rewrite::status().map_or(0, |st| st.last_save.load(Ordering::Relaxed)))
}

/// How a rewrite command answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rewrite {
    Aof,
    Save,
    /// SAVE: wait for it.
    Wait,
}

impl Shard {
    fn cmd_bgrewriteaof(&mut self, conn: &mut Conn, _: &Args) {
        self.rewrite(conn, Rewrite::Aof)
    }

    fn cmd_bgsave(&mut self, conn: &mut Conn, _: &Args) {
        self.rewrite(conn, Rewrite::Save)
    }

    fn cmd_save(&mut self, conn: &mut Conn, _: &Args) {
        self.rewrite(conn, Rewrite::Wait)
    }

    /// BGREWRITEAOF, BGSAVE (the same: the AOF's base is the snapshot),
    /// and SAVE, which answers once the rewrite is done.
    pub(crate) fn rewrite(&mut self, conn: &mut Conn, kind: Rewrite) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if self.aof.is_none() {
            return r.error("ERR appendonly is off: there is no AOF to rewrite (start with --appendonly yes)");
        }
        let Some(st) = crate::persist::rewrite::status() else {
            return r.error("ERR persistence is not initialised");
        };
        let gen = st.generation.load(Ordering::Acquire);
        if !self.start_rewrite() {
            return r.error(if kind == Rewrite::Aof {
                "ERR Background append only file rewriting already in progress"
            } else {
                "ERR Background save already in progress"
            });
        }
        match kind {
            Rewrite::Aof => r.simple("Background append only file rewriting started"),
            Rewrite::Save => r.simple("Background saving started"),
            Rewrite::Wait => {
                conn.wait = Wait::Save(gen);
                self.save_waiters.push(conn.conn_ref(self.id));
            }
        }
    }

    /// Cron: answer SAVEs whose rewrite finished.
    pub fn check_save_waiters(&mut self) {
        if self.save_waiters.is_empty() {
            return;
        }
        let Some(st) = crate::persist::rewrite::status() else { return };
        let gen_now = st.generation.load(Ordering::Acquire);
        let ok = st.last_ok.load(Ordering::Relaxed);
        let waiters = std::mem::take(&mut self.save_waiters);
        self.save_waiters = self.settle_waiters(waiters, |c| match c.wait {
            Wait::Save(g) if gen_now > g => {
                let mut rep = Reply::new(&mut c.out, c.resp3);
                if ok {
                    rep.ok();
                } else {
                    rep.error("ERR the AOF rewrite failed, see the server log");
                }
                Settle::Answered
            }
            Wait::Save(_) => Settle::Waiting,
            _ => Settle::Gone,
        });
    }

    /// SHUTDOWN: stop every shard (they drain together, see
    /// `crate::shard::shutdown`).
    fn cmd_shutdown(&mut self, conn: &mut Conn, args: &Args) {
        if let Some(busy) = self.shared.busy.busy_reply() {
            // As Redis: only SHUTDOWN NOSAVE while a script is busy.
            if !(1..args.len()).any(|i| args.is(i, "nosave")) {
                Reply::new(&mut conn.out, conn.resp3).error(busy);
                return;
            }
            // A shard is stuck in a script and would never drain: exit
            // now (as SHUTDOWN NOSAVE in Redis). What was acknowledged
            // was written before its reply; the script's writes were not
            // logged (a script is logged when it ends).
            crate::log("SHUTDOWN while a script is busy: exiting now");
            std::process::exit(0);
        }
        crate::log("SHUTDOWN requested by a client; stopping");
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.stop = true;
        // Wake every other shard so it sees the flag.
        for s in 0..self.shared.nshards {
            if s != self.id {
                self.send(s, Msg::Unwatch { who: 0 });
            }
        }
        conn.close_after_flush = true;
    }
}

//! Writers waiting for replicas: WAIT and WAITAOF on a master, the
//! durable fences a replica's link thread asks its shards for, and the
//! release gate of `repl-sync-ack`.
//!
//! A WAIT covers every write the client was answered before it: those
//! are at or below each shard's published safe lsn (`repl::master`), so
//! the waiter takes a snapshot of all of them and counts the replicas
//! whose links acknowledged at least that much on every shard. Taking
//! other clients' writes along costs a little waiting, never a wrong
//! answer.

use super::core::{Conn, Settle, Shard, Wait};
use crate::protocol::reply::Reply;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a connection in WAIT / WAITAOF waits for.
pub struct ReplWait {
    /// Per shard: the lsn replicas must have acknowledged.
    pub targets: Vec<u64>,
    pub numreplicas: usize,
    /// WAITAOF: acknowledgements must be durable in the replicas' AOF,
    /// and with `local` also in this server's.
    pub aof: bool,
    pub local: bool,
    /// Unix ms; 0 = no timeout.
    pub deadline: i64,
}

impl ReplWait {
    /// (local count, replica count) reached now.
    fn reached(&self) -> (usize, usize) {
        let local = self.local
            && crate::persist::rewrite::status().is_some_and(|st| {
                self.targets.iter().enumerate().all(|(s, &t)| st.durable[s].load(Ordering::Acquire) >= t)
            });
        (local as usize, crate::repl::master::replicas_at(&self.targets, self.aof))
    }

    fn done(&self, (local, replicas): (usize, usize)) -> bool {
        replicas >= self.numreplicas && (!self.local || local == 1)
    }
}

/// The answer to a WAIT (a count) or a WAITAOF ([local, replicas]).
fn answer(r: &mut Reply, w: &ReplWait, (local, replicas): (usize, usize)) {
    if w.aof {
        r.array(2);
        r.int(local as i64);
        r.int(replicas as i64);
    } else {
        r.int(replicas as i64);
    }
}

impl Shard {
    /// WAIT numreplicas timeout
    pub fn cmd_wait(&mut self, conn: &mut Conn, args: &crate::cmd::Args) {
        self.start_repl_wait(conn, args, false)
    }

    /// WAITAOF numlocal numreplicas timeout (Redis 7.2)
    pub fn cmd_waitaof(&mut self, conn: &mut Conn, args: &crate::cmd::Args) {
        self.start_repl_wait(conn, args, true)
    }

    fn start_repl_wait(&mut self, conn: &mut Conn, args: &crate::cmd::Args, aof: bool) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let name = if aof { "WAITAOF" } else { "WAIT" };
        if !self.config.replicaof.is_empty() {
            return r.error(&format!(
                "ERR {} cannot be used with replica instances. Please also note that writes to replicas are just \
                 local and are not propagated.",
                name
            ));
        }
        let num = |i: usize| crate::util::num::parse_i64(args.get(i));
        let (local, numreplicas, timeout) =
            if aof { (num(1), num(2), args.get(3)) } else { (Some(0), num(1), args.get(2)) };
        let (Some(local), Some(numreplicas)) = (local, numreplicas) else {
            return r.error(crate::cmd::err::NOT_INT);
        };
        let Some(timeout) = crate::util::num::parse_i64(timeout) else {
            return r.error("ERR timeout is not an integer or out of range");
        };
        if timeout < 0 {
            return r.error("ERR timeout is negative");
        }
        if local > 0 && self.aof.is_none() {
            return r.error("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.");
        }
        let targets: Vec<u64> = match crate::repl::master::get() {
            Some(m) => m.safe.iter().map(|s| s.load(Ordering::Acquire)).collect(),
            None => vec![0; self.shared.nshards],
        };
        let w = ReplWait {
            targets,
            numreplicas: numreplicas.max(0) as usize,
            aof,
            local: local > 0,
            deadline: if timeout > 0 { crate::util::now_ms() + timeout } else { 0 },
        };
        let now = w.reached();
        if w.done(now) {
            return answer(&mut r, &w, now);
        }
        if w.local {
            // Every shard's writer syncs what it has written.
            self.fan_sync_soon();
        }
        crate::repl::master::set_waiting(self.id, true);
        crate::repl::master::request_acks();
        conn.wait = Wait::Replicas(Box::new(w));
        self.repl_waiters.push(conn.conn_ref(self.id));
    }

    /// Ask every shard to sync its AOF at once (WAITAOF numlocal).
    fn fan_sync_soon(&mut self) {
        if let Some(w) = self.aof.as_mut() {
            w.sync_soon = true;
        }
        for s in 0..self.shared.nshards {
            if s != self.id {
                self.send(s, super::Msg::SyncSoon);
            }
        }
    }

    /// Answer the waiters whose replicas arrived or whose time is up
    /// (when acks advance, `Msg::ReplAcked`, and on cron).
    pub fn check_repl_waiters(&mut self) {
        if self.repl_waiters.is_empty() {
            return;
        }
        let now_ms = crate::util::now_ms();
        let waiters = std::mem::take(&mut self.repl_waiters);
        self.repl_waiters = self.settle_waiters(waiters, |c| {
            let Wait::Replicas(w) = &c.wait else { return Settle::Gone };
            let reached = w.reached();
            if w.done(reached) || (w.deadline > 0 && now_ms >= w.deadline) {
                answer(&mut Reply::new(&mut c.out, c.resp3), w, reached);
                Settle::Answered
            } else {
                Settle::Waiting
            }
        });
        if self.repl_waiters.is_empty() && !self.sync_ack_on() {
            crate::repl::master::set_waiting(self.id, false);
        }
    }

    /// Replica: the link thread asks to hear when everything this shard
    /// applied so far is durable in its AOF.
    pub fn on_repl_fence(&mut self, done: Arc<AtomicUsize>) {
        match self.aof.as_mut() {
            Some(w) if w.durable_lsn < w.appended_lsn() => {
                w.sync_soon = true;
                let lsn = w.appended_lsn();
                self.repl_fences.push((lsn, done));
            }
            _ => {
                done.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Count the fences the AOF's durable lsn has passed.
    pub fn check_repl_fences(&mut self) {
        if self.repl_fences.is_empty() {
            return;
        }
        let durable = self.aof.as_ref().map_or(u64::MAX, |w| w.durable_lsn);
        self.repl_fences.retain(|(lsn, done)| {
            if *lsn <= durable {
                done.fetch_add(1, Ordering::AcqRel);
                false
            } else {
                true
            }
        });
    }

    /// `repl-sync-ack yes` with `min-replicas-to-write` N: replies wait
    /// for N replicas to hold the writes durably.
    pub fn sync_ack_on(&self) -> bool {
        self.config.repl_sync_ack && self.config.min_replicas_to_write > 0 && self.config.replicaof.is_empty()
    }

    /// `repl-sync-ack` takes effect (a replica promoted, or CONFIG SET):
    /// what this shard logged before (its old master's data, writes made
    /// while it was off) waits for no replica's ack. Otherwise a promoted
    /// replica would hold every reply, INFO and PING included, until a
    /// replica acknowledged its whole log, and a monitor waiting for its
    /// INFO would never re-point the replicas to it.
    pub fn start_sync_ack_gate(&self) {
        if let (Some(m), Some(w)) = (crate::repl::master::get(), &self.aof) {
            m.sync_acked[self.id].fetch_max(w.appended_lsn(), Ordering::AcqRel);
        }
    }

    /// A master under `repl-sync-ack` became a replica (a monitor demoted
    /// it after a partition): replies it held for writes no replica
    /// acknowledged must not go out as acknowledgements once the gate
    /// opens, since those writes are about to be set aside as a divergent
    /// tail. So every client here is closed (it hears nothing, as after a
    /// crash) and the other shards are told to do the same before any
    /// reply held here reaches them.
    pub fn on_demoted_under_sync_ack(&mut self) {
        let acked = self.sync_acked();
        let Some(appended) = self.aof.as_ref().map(|w| w.appended_lsn()) else { return };
        if appended <= acked {
            return;
        }
        crate::log(&format!(
            "shard {}: demoted with writes no replica acknowledged (lsn {} to {}); closing every client so that none hears them acknowledged",
            self.id,
            acked + 1,
            appended
        ));
        for to in 0..self.shared.nshards {
            if to != self.id {
                self.send_now(to, super::Msg::DropClients);
            }
        }
        self.drop_all_clients();
    }

    /// Close every client connection of this shard.
    pub fn drop_all_clients(&mut self) {
        let live: Vec<u32> = (0..self.conns.len() as u32)
            .filter(|&i| matches!(self.conns.get(i as usize), Some(Some(c)) if !c.closing))
            .collect();
        for idx in live {
            // What it holds goes nowhere (a reply of a write set aside).
            if let Some(Some(c)) = self.conns.get_mut(idx as usize) {
                c.out.clear();
            }
            self.close(idx);
        }
    }

    /// The lsn output may reveal under `repl-sync-ack` (u64::MAX: no
    /// limit from replicas).
    #[inline]
    pub fn sync_ack_gate(&self) -> u64 {
        if !self.sync_ack_on() {
            return u64::MAX;
        }
        self.sync_acked()
    }

    /// How far replicas acknowledged this shard's log (u64::MAX: no
    /// replication master running).
    fn sync_acked(&self) -> u64 {
        crate::repl::master::get().map_or(u64::MAX, |m| m.sync_acked[self.id].load(Ordering::Acquire))
    }
}

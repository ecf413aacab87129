//! Cross-shard transactions: multi-key commands whose keys span shards
//! (MSET, DEL, RENAME, COPY, ...) and MULTI/EXEC.
//!
//! How a transaction runs (the connection's shard coordinates):
//! 1. Lock and pull, one participant at a time in ascending shard order:
//!    `LockPull` locks the participant for this txid, collects the current
//!    state of the transaction's keys there (and whether the client's
//!    WATCHes there were invalidated) and travels on to the next
//!    participant; the last one returns everything to the coordinator
//!    (N+1 hops for N participants). Taking locks in one global order makes
//!    deadlock impossible.
//! 2. Execute: the commands run, with the ordinary command code, on a
//!    temporary keyspace holding exactly the pulled keys.
//! 3. Push and unlock: every participant receives the final state of its
//!    keys that the commands touched, applies it and unlocks. The client
//!    gets its reply once every participant has acknowledged.
//!
//! A MULTI that contains keyspace-wide commands (DBSIZE, FLUSHDB, KEYS, ...)
//! cannot run on a temporary keyspace. It is *routed* instead: every shard
//! is locked (same order), then the coordinator runs each command in turn
//! where it belongs — on its key's shard, fanned out to all shards, or, for
//! a command whose keys span shards, pulled into a temporary keyspace and
//! applied back — and finally unlocks every shard.
//!
//! Locks (`shard::locks`, after VLL). A transaction locks, on each
//! participant, either the whole shard or exactly its keys there, all at
//! once. Whole shard: routed transactions, EXEC with WATCHes (the watched
//! keys are checked, not locked), and, while the AOF is on, any that may
//! write: recovery cuts a shard's log at a transaction missing from a
//! participant together with everything after it, so nothing may be
//! logged on a participant after such a record until all have it durable
//! (`hold`). The rest (every transaction with the AOF off, read-only ones
//! with it on) lock only their keys and log each participant's part as a
//! record by itself. Replicas applying a master's transaction and a
//! snapshot's cut lock whole shards too (`lock_for`).
//!
//! Other work runs at once unless it needs something locked: a request
//! its keys; keyspace-wide commands, scripts, blocking commands and work
//! whose keys are not known up front everything (they would see a
//! transaction applied on some shards and not yet on others). What cannot
//! run waits in one FIFO per shard and runs as soon as nothing held and
//! nothing queued ahead of it conflicts. So no client sees some of a
//! transaction's writes and not others: each participant unlocks once its
//! part is applied, and a reader that saw that part and goes on to another
//! participant finds the keys there locked until that part is applied
//! too. A local connection whose request waits stops
//! reading its later requests, so its requests keep their order.
//!
//! No deadlock: locks are taken one participant at a time in ascending
//! shard order, and a LockPull waits at a shard only for transactions
//! that hold something there (each either executing, or waiting at a
//! higher shard) or for work queued ahead of it there (which waits for the
//! same). Following the waits always leads to higher shards or to a
//! transaction that holds all it needs, which finishes without waiting for
//! any lock; so every wait ends. Single-shard work pays one check
//! (`clear()`) while nothing is held or waiting.

use super::core::{Conn, Shard, Wait};
use super::dispatch::shard_observer;
use super::locks::{Locks, Need};
use super::{Clocks, ConnRef, DbKey, KeyState, Msg, PulledState};
use crate::cmd::admission::{self, Road};
use crate::cmd::{self, flags::*, Ctx, Handler, OwnedArgs, Session};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use std::collections::HashMap;

pub enum Deferred {
    Msg(Msg),
    /// A local connection whose request waits for the unlock.
    Conn(ConnRef),
}

#[derive(Default)]
pub struct TxnState {
    /// What transactions hold on this shard, and the work waiting for it
    /// (see `shard::locks`).
    locks: Locks<Deferred>,
    /// A connection resumed from the queue: it waited its turn, so its
    /// requests need only what is held (not what queued after it).
    resumed: Option<ConnRef>,
    /// `resume_deferred` is running (a nested call asks it to look again).
    resuming: bool,
    rescan: bool,
    /// Transactions this shard coordinates.
    coord: HashMap<u64, Txn>,
}

impl TxnState {
    /// Nothing held and nothing waiting: the one check single-shard work
    /// pays before running at once.
    #[inline]
    pub fn clear(&self) -> bool {
        !self.locks.busy()
    }

    /// A transaction holds the whole shard: everything else waits, and
    /// what this shard does meanwhile is part of that transaction.
    #[inline]
    pub fn locked(&self) -> bool {
        self.locks.whole().is_some()
    }

    /// May a request of `conn` needing `need` run now?
    pub fn admits_conn(&self, conn: ConnRef, need: &Need) -> bool {
        if self.resumed == Some(conn) {
            self.locks.admits_held(need)
        } else {
            self.locks.admits(need)
        }
    }

    pub fn admits(&self, need: &Need) -> bool {
        self.locks.admits(need)
    }

    /// Is any of these keys locked by a transaction (or the whole shard)?
    pub fn keys_locked(&self, need: &Need) -> bool {
        !self.locks.admits_held(need)
    }

    /// Lock the shard for transaction `id` (a replica applying a master's
    /// transaction, `shard::replica`; a snapshot's cut, `shard::snap`),
    /// admitted as `Need::All`; `Shard::on_unlock` releases it.
    pub fn lock_for(&mut self, id: u64) {
        self.locks.lock_whole(id);
    }

    pub fn defer(&mut self, d: Deferred, need: Need) {
        self.locks.defer(d, need);
    }

    /// A watch of blocked command `block_id` fired while transaction
    /// `txid` tries that command (see `BlockWait::woken`).
    pub fn note_woken(&mut self, txid: u64, block_id: u64) {
        if let Some(b) = self.coord.get_mut(&txid).and_then(|t| t.block.as_mut()) {
            if b.block_id == block_id {
                b.woken = true;
            }
        }
    }

    /// The transaction holding the whole shard, if any.
    pub fn holder(&self) -> Option<u64> {
        self.locks.whole()
    }

    /// For the stuck-shard log line.
    pub fn describe(&self) -> String {
        let mut coord: Vec<u64> = self.coord.keys().copied().collect();
        coord.sort_unstable();
        format!("{} deferred, {} keys locked, coordinating {:?}", self.locks.queued(), self.locks.key_locks(), coord)
    }

    /// Nothing held and coordinating nothing (nothing to finish before stopping).
    pub fn is_quiet(&self) -> bool {
        !self.locks.any_held() && self.coord.is_empty()
    }
}

pub struct Txn {
    conn: ConnRef,
    cmds: Vec<OwnedArgs>,
    db: usize,
    resp3: bool,
    /// MULTI/EXEC (array reply, WATCH check) or a single command.
    is_exec: bool,
    participants: Vec<usize>,
    watcher: Option<u64>,
    watch_shards: Vec<usize>,
    temp: Keyspace,
    watch_dirty: bool,
    acks_left: usize,
    reply: Vec<u8>,
    /// The db the connection ends up in (SELECT inside MULTI).
    final_db: usize,
    /// Routed execution (see the module doc): next command, and what the
    /// coordinator is waiting for.
    routed: bool,
    idx: usize,
    fan: Option<super::fanout::FanState>,
    pulls_left: usize,
    /// Participants wait for `Unlock` after pushing (see `txn_logging`).
    hold: bool,
    /// It locks whole shards, not only its keys (see `start_txn_with`).
    whole: bool,
    /// The union of the commands' flags, for the admission gates.
    flags: Flags,
    /// A blocking command tried as a transaction (keys on several
    /// shards), and whether it found nothing to serve.
    block: Option<Box<super::blocking::BlockWait>>,
    would_block: bool,
    /// EXEC: commands the client's user may no longer run (their ACL
    /// changed since they were queued): each answers this error instead.
    denied: Vec<Option<crate::acl::check::Denied>>,
    /// A script's keys it did not declare, found by earlier runs, and how
    /// many runs it took (see `start_script_txn`).
    extra: Vec<DbKey>,
    script_rounds: u32,
    /// AFTER_TXN commands: (where their reply goes in `reply`, which command).
    after: Vec<(usize, usize)>,
    /// The client's user when restricted: its scripts' calls are checked.
    user: Option<std::sync::Arc<crate::acl::user::User>>,
    /// The keys pulled into `temp` that existed: their clocks go back.
    pulled_keys: Vec<DbKey>,
    /// A client's lone MIGRATE (NETWORK_IO) whose keys live elsewhere: the
    /// network step its first run left, done off the core once the
    /// transaction unlocked (`on_pushed`); and, for its second run, that
    /// step's outcome (see `shard::netio`).
    io_job: Option<crate::cmd::migrate::Job>,
    pub(super) io_done: Option<(crate::cmd::migrate::Job, crate::cmd::migrate::Result2)>,
}

/// How many times a script that keeps reaching for new undeclared keys is
/// run again (each time with every shard locked and the keys found so
/// far pulled) before it is refused.
const MAX_SCRIPT_ROUNDS: u32 = 64;

impl Shard {
    /// Start a transaction for `cmds` on behalf of `conn`. `shards` are the
    /// owners of the commands' keys; for EXEC the client's watched shards
    /// are added here.
    pub fn start_txn(&mut self, conn: &mut Conn, cmds: Vec<OwnedArgs>, shards: Vec<usize>, is_exec: bool) {
        self.start_txn_with(conn, cmds, shards, is_exec, (Vec::new(), 0));
    }

    /// A script that touched keys it did not declare (`keys`) runs again
    /// with every shard locked and those keys pulled, as its `round`th run.
    pub fn start_script_txn(&mut self, conn: &mut Conn, cmd: OwnedArgs, keys: Vec<DbKey>, round: u32) {
        self.scripts.all_shard_runs += 1;
        let all = (0..self.shared.nshards).collect();
        self.start_txn_with(conn, vec![cmd], all, false, (keys, round));
    }

    fn start_txn_with(
        &mut self,
        conn: &mut Conn,
        cmds: Vec<OwnedArgs>,
        shards: Vec<usize>,
        is_exec: bool,
        (extra, script_rounds): (Vec<DbKey>, u32),
    ) {
        let n = self.shared.nshards;
        // PUBLISH reaches every shard and answers their count: it runs as a
        // keyspace-wide command does.
        let routed = n > 1
            && cmds
                .iter()
                .any(|c| cmd::find(&c.args()).is_some_and(|(_, d)| d.has(EVERY_SHARD) || d.publishes().is_some()));
        let mut participants = if routed { (0..n).collect() } else { shards };
        let watcher = if is_exec && !conn.watch_shards.is_empty() {
            participants.extend(conn.watch_shards.iter().copied());
            Some(conn.id)
        } else {
            None
        };
        participants.sort_unstable();
        participants.dedup();
        let mut keys: Vec<Vec<DbKey>> = vec![Vec::new(); participants.len()];
        let mut db = conn.db;
        // A routed transaction runs on the real keyspaces: nothing to pull.
        for c in cmds.iter().filter(|_| !routed) {
            let args = c.args();
            let Some((_, def)) = cmd::find(&args) else { continue };
            if def.has(CONN_SHARD) {
                // A session command may change the db the next ones run in
                // (SELECT): follow it as EXEC will. It has no keys.
                db = db_after_session(def, &args, db);
                continue;
            }
            // COPY ... DB n and MOVE write to another db: pull the key there too.
            if let Some((target, dst)) = def.other_db_key.and_then(|f| f(&args)) {
                let s = self.shared.slots.shard_of(dst);
                if let Some(p) = participants.iter().position(|&x| x == s) {
                    keys[p].push((target as u8, dst.to_vec()));
                }
            }
            for i in cmd::key_positions(def, &args) {
                let k = args.get(i);
                let s = self.shared.slots.shard_of(k);
                if let Some(p) = participants.iter().position(|&x| x == s) {
                    keys[p].push((db as u8, k.to_vec()));
                }
            }
        }
        for (db, key) in &extra {
            let s = self.shared.slots.shard_of(key);
            if let Some(p) = participants.iter().position(|&x| x == s) {
                keys[p].push((*db, key.clone()));
            }
        }
        // Checked as a whole, as Redis checks EXEC by what it queued.
        let flags = cmds.iter().filter_map(|c| cmd::find(&c.args())).fold(0, |f, (_, d)| f | d.flags);
        let txid = self.shared.next_txid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut temp = self.temp_keyspace();
        temp.track_touched = Some(Vec::new());
        let reaches = cmds.iter().any(|c| cmd::find(&c.args()).is_some_and(|(_, d)| d.reach.is_some()));
        if flags & RUNS_SCRIPT != 0 || reaches {
            // A script may touch only what was pulled (see `crate::script`);
            // SORT lists the pattern keys it lacks.
            temp.pulled = Some(keys.iter().flatten().cloned().collect());
        }
        // A routed transaction runs on the real keyspaces, and an EXEC's
        // WATCHes are checked where they are but name no key it locks:
        // both hold the whole shard. So does one that may write while the
        // AOF is on: recovery cuts a shard's log at a transaction missing
        // from a participant *with everything after it* (`persist::load`),
        // so nothing may be logged after its record until every
        // participant has it durable (`txn_logging`'s `hold`). The rest
        // hold only their keys there, and log each part by itself.
        let whole = routed || watcher.is_some() || (self.aof.is_some() && flags & (WRITE | RUNS_SCRIPT) != 0);
        let mut chain: Vec<(usize, Vec<DbKey>)> = participants.iter().copied().zip(keys).collect();
        let (first, first_keys) = chain.remove(0);
        let txn = Txn {
            conn: conn.conn_ref(self.id),
            cmds,
            db: conn.db,
            resp3: conn.resp3,
            is_exec,
            participants,
            watcher,
            watch_shards: conn.watch_shards.clone(),
            temp,
            watch_dirty: false,
            acks_left: 0,
            reply: Vec::new(),
            final_db: conn.db,
            routed,
            idx: 0,
            fan: None,
            pulls_left: 0,
            hold: false,
            whole,
            flags,
            block: None,
            would_block: false,
            denied: Vec::new(),
            user: (!conn.acl_free).then(|| conn.user.clone()),
            extra,
            script_rounds,
            after: Vec::new(),
            pulled_keys: Vec::new(),
            io_job: None,
            io_done: None,
        };
        self.txn.coord.insert(txid, txn);
        conn.wait = Wait::Txn(txid);
        chain.insert(0, (first, first_keys));
        let msg = Msg::LockPull {
            txid,
            coord: self.id,
            whole,
            chain,
            acc: Vec::new(),
            watch_dirty: false,
            watcher,
            flags,
            report: admission::Report::default(),
        };
        self.send(first, msg);
    }

    /// A blocking command whose keys span shards: try it as a transaction;
    /// `on_pushed` either replies or leaves the client blocked.
    pub fn start_blocking_txn(
        &mut self,
        conn: &mut Conn,
        cmd: OwnedArgs,
        shards: Vec<usize>,
        block: Box<super::blocking::BlockWait>,
    ) {
        self.start_txn(conn, vec![cmd], shards, false);
        if let Wait::Txn(txid) = conn.wait {
            if let Some(t) = self.txn.coord.get_mut(&txid) {
                t.block = Some(block);
            }
        }
    }

    /// Participant, phase 1: lock, report this shard's admission
    /// conditions (evicting first, as Redis does before a command), and
    /// the keys' state.
    #[allow(clippy::too_many_arguments)]
    pub fn on_lock_pull(
        &mut self,
        (txid, whole): (u64, bool),
        coord: usize,
        mut chain: Vec<(usize, Vec<DbKey>)>,
        mut acc: Vec<(DbKey, PulledState)>,
        (mut watch_dirty, watcher): (bool, Option<u64>),
        (flags, mut report): (Flags, admission::Report),
    ) {
        // Admitted with `lock_pull_need`: take exactly that.
        let need = lock_pull_need(whole, &chain);
        self.txn.locks.lock_keys(txid, need);
        let aof_error = self.aof.as_ref().and_then(|w| w.last_write_error.as_deref());
        let read_only = self.read_only_replica();
        report.add(flags, &mut admission::Local { now: crate::util::now_ms(), aof_error, read_only }, &mut self.ks);
        let keys = if chain.is_empty() { Vec::new() } else { chain.remove(0).1 };
        acc.extend(self.pull_keys(keys));
        watch_dirty |= watcher.map(|w| self.ks.watch_dirty(w)).unwrap_or(false);
        // What evicting did is its own record (nothing when the whole
        // shard is locked: it joins the transaction's).
        self.log_pending();
        match chain.first() {
            Some(&(next, _)) => {
                self.send(next, Msg::LockPull { txid, coord, whole, chain, acc, watch_dirty, watcher, flags, report });
            }
            None => self.send(coord, Msg::Pulled { txid, entries: acc, watch_dirty, report }),
        }
    }

    /// Coordinator: every participant is locked; check the gates with what
    /// they reported, then execute.
    pub fn on_pulled(
        &mut self,
        txid: u64,
        entries: Vec<(DbKey, PulledState)>,
        watch_dirty: bool,
        mut report: admission::Report,
    ) {
        let Some(t) = self.txn.coord.get_mut(&txid) else { return };
        if let Err(refusal) = admission::check(Road::Transaction, t.flags, &mut report, &mut t.temp) {
            return self.refuse_txn(txid, refusal);
        }
        install_pulled(t, entries);
        t.watch_dirty |= watch_dirty;
        if t.routed {
            if t.is_exec && t.watch_dirty {
                Reply::new(&mut t.reply, t.resp3).null_array();
                t.idx = t.cmds.len();
            } else if t.is_exec {
                let n = t.cmds.len();
                Reply::new(&mut t.reply, t.resp3).array(n);
            }
            self.routed_step(txid);
            return;
        }
        self.execute_txn(txid);
    }

    /// Participant: the current state of keys (this shard is locked). Not
    /// a use of them: the commands use them on the transaction's keyspace
    /// and their clocks come back with the writes (`apply_writes`).
    pub fn pull_keys(&mut self, keys: Vec<DbKey>) -> Vec<(DbKey, PulledState)> {
        let now = crate::util::now_ms();
        keys.into_iter()
            .map(|(db, key)| {
                let st = self
                    .ks
                    .lookup_no_touch(db as usize, &key, now)
                    .map(|e| (e.value.deep_clone(), e.expire(), e.clock()));
                ((db, key), st)
            })
            .collect()
    }

    /// A transaction's temporary keyspace: it counts uses under this
    /// shard's policy (LRU or LFU, with its factors); it never evicts.
    fn temp_keyspace(&self) -> Keyspace {
        let mut temp = Keyspace::new();
        temp.set_mem_limit(crate::keyspace::evict::MemLimit { maxmemory: 0, ..self.ks.mem_limit() });
        temp
    }

    /// Participant: install the final state of keys a transaction wrote,
    /// then the access clocks its commands left on the keys it used.
    pub fn apply_writes(&mut self, writes: Vec<(DbKey, KeyState)>, clocks: Clocks) {
        // The transaction's commands published their events where they
        // ran; installing their results publishes none.
        let flags = std::mem::take(&mut self.ks.notify.flags);
        for ((db, key), st) in writes {
            if self.ks.effects.enabled {
                let state = st.as_ref().map(|(v, exp)| (v, *exp));
                self.ks.effects.push_encoded(db as usize, |out| {
                    crate::persist::rebuild::state_commands(out, &key, state);
                });
            }
            match st {
                Some((v, exp)) => self.ks.set(db as usize, &key, v, exp),
                None => {
                    self.ks.remove(db as usize, &key);
                }
            }
        }
        for ((db, key), clock) in clocks {
            self.ks.set_clock_of(db as usize, &key, clock);
        }
        self.ks.notify.flags = flags;
    }

    /// Coordinator of a routed transaction: run commands in order until one
    /// has to wait for another shard; when all ran, unlock every shard.
    /// A routed transaction's keyspace-wide command or PUBLISH: its reply
    /// now, or its fan-out sent; true if the transaction must wait for the
    /// other shards' answers (`on_routed_fan_reply` resumes it).
    fn routed_fan(&mut self, t: &mut Txn, txid: u64, plan: super::fanout::GlobalPlan) -> bool {
        match plan {
            super::fanout::GlobalPlan::Reply(bytes) => t.reply.extend_from_slice(&bytes),
            super::fanout::GlobalPlan::Fan(targets, req, op) => {
                let req = std::sync::Arc::new(req);
                let mut st = super::fanout::FanState { expect: targets.len(), resps: Vec::new(), op };
                for target in targets {
                    if target == self.id {
                        st.resps.push((target, self.fan_local(&req)));
                    } else {
                        self.send(target, Msg::TxnFan { txid, coord: self.id, req: req.clone() });
                    }
                }
                if st.resps.len() < st.expect {
                    t.fan = Some(st);
                    return true;
                }
                self.finish_fan(&mut t.reply, t.resp3, st);
            }
        }
        false
    }

    fn routed_step(&mut self, txid: u64) {
        let Some(mut t) = self.txn.coord.remove(&txid) else { return };
        loop {
            if t.idx >= t.cmds.len() {
                t.acks_left = t.participants.len();
                // Every shard may have written: each logs a record for this
                // txid (an empty one if it changed nothing).
                let writes = t.cmds.iter().any(|c| cmd::find(&c.args()).is_some_and(|(_, d)| d.has(WRITE)));
                let count = if writes { t.participants.len() } else { 0 };
                let (log_txid, hold) = self.txn_logging(txid, count);
                t.hold = hold;
                for &p in &t.participants {
                    let participants = count as u16;
                    let log_txid = if writes { log_txid } else { 0 };
                    self.send(
                        p,
                        Msg::PushUnlock {
                            txid,
                            coord: self.id,
                            writes: Vec::new(),
                            clocks: Vec::new(),
                            log_txid,
                            participants,
                            hold,
                        },
                    );
                }
                break;
            }
            let i = t.idx;
            t.idx += 1;
            let args = t.cmds[i].args();
            let Some((id, def)) = cmd::find(&args) else { continue };
            let resp3 = t.resp3;
            if let Some(&Some(d)) = t.denied.get(i) {
                let e = self.exec_refused(t.conn, d, def, &args);
                Reply::new(&mut t.reply, resp3).error(&e);
                continue;
            }
            if let Some(sharded) = def.publishes() {
                let (channel, message) = (args.get(1).to_vec(), args.get(2).to_vec());
                let req = super::FanReq::Publish { channel, message, sharded };
                let plan = super::fanout::GlobalPlan::Fan(self.all_shards(), req, super::fanout::FanOp::Publish);
                self.stats[id].calls += 1;
                if self.routed_fan(&mut t, txid, plan) {
                    break;
                }
                continue;
            }
            if let Handler::EveryShard { plan, .. } = def.handler {
                let ctx = super::fanout::PlanCtx { nshards: self.shared.nshards, db: t.final_db, resp3 };
                self.stats[id].calls += 1;
                let plan = plan(&args, &ctx);
                if self.routed_fan(&mut t, txid, plan) {
                    break;
                }
                continue;
            }
            if def.has(CONN_SHARD) {
                let mut s = Session { db: t.final_db, out: Reply::new(&mut t.reply, resp3), subscribed_resp2: false };
                if !cmd::run_session(def, &mut s, &args) {
                    s.out.error(&format!("ERR '{}' is not supported inside MULTI", def.name));
                }
                t.final_db = s.db;
                continue;
            }
            let shards = super::router::key_shards(&self.shared.slots, def, &args);
            if shards.len() <= 1 {
                let s = shards.first().copied().unwrap_or(self.id);
                let mut cmd_bytes = Vec::new();
                crate::protocol::reply::encode_command(&mut cmd_bytes, &args.iter().collect::<Vec<_>>());
                if s == self.id {
                    if def.has(RUNS_SCRIPT) {
                        self.script_acl_begin(t.user.clone());
                    }
                    let (out, _) = self.run_batch(t.final_db, resp3, cmd_bytes, Road::Admitted);
                    self.script_acl_end_for(Some(t.conn));
                    t.reply.extend_from_slice(&out);
                    continue;
                }
                let user = t.user.clone().filter(|_| def.has(RUNS_SCRIPT));
                let (db, coord) = (t.final_db as u8, self.id);
                self.send(s, Msg::TxnRun { txid, coord, db, resp3, cmd: cmd_bytes, user });
                break;
            }
            // Keys on several shards: pull them, run here, apply back.
            t.temp = self.temp_keyspace();
            t.pulled_keys.clear();
            t.pulls_left = shards.len();
            let mut local = Vec::new();
            for &s in &shards {
                let mut keys: Vec<DbKey> = cmd::key_positions(def, &args)
                    .map(|k| args.get(k))
                    .filter(|k| self.shared.slots.shard_of(k) == s)
                    .map(|k| (t.final_db as u8, k.to_vec()))
                    .collect();
                // COPY ... DB n and MOVE also read and write their target there.
                if let Some((target, dst)) = def.other_db_key.and_then(|f| f(&args)) {
                    if self.shared.slots.shard_of(dst) == s {
                        keys.push((target as u8, dst.to_vec()));
                    }
                }
                if s == self.id {
                    local = self.pull_keys(keys);
                } else {
                    self.send(s, Msg::TxnPull { txid, coord: self.id, keys });
                }
            }
            self.txn.coord.insert(txid, t);
            if shards.contains(&self.id) {
                self.on_routed_pulled(txid, local);
            }
            return;
        }
        self.txn.coord.insert(txid, t);
    }

    pub fn on_routed_reply(&mut self, txid: u64, out: Vec<u8>) {
        let Some(t) = self.txn.coord.get_mut(&txid) else { return };
        t.reply.extend_from_slice(&out);
        self.routed_step(txid);
    }

    pub fn on_routed_fan_reply(&mut self, txid: u64, shard: usize, resp: super::FanResp) {
        let Some(mut t) = self.txn.coord.remove(&txid) else { return };
        let done = match &mut t.fan {
            Some(st) => {
                st.resps.push((shard, resp));
                st.resps.len() >= st.expect
            }
            None => false,
        };
        if done {
            if let Some(st) = t.fan.take() {
                let resp3 = t.resp3;
                self.finish_fan(&mut t.reply, resp3, st);
            }
            self.txn.coord.insert(txid, t);
            self.routed_step(txid);
        } else {
            self.txn.coord.insert(txid, t);
        }
    }

    /// A cross-shard command inside a routed transaction: once all its keys
    /// are here, run it and send each owner the keys it changed.
    pub fn on_routed_pulled(&mut self, txid: u64, entries: Vec<(DbKey, PulledState)>) {
        let Some(mut t) = self.txn.coord.remove(&txid) else { return };
        install_pulled(&mut t, entries);
        t.pulls_left = t.pulls_left.saturating_sub(1);
        if t.pulls_left > 0 {
            self.txn.coord.insert(txid, t);
            return;
        }
        let args = t.cmds[t.idx - 1].args();
        if let Some(row) = cmd::find(&args) {
            t.temp.track_touched = Some(Vec::new());
            if row.1.has(RUNS_SCRIPT) {
                // What was pulled: the script's declared keys.
                let db = t.final_db as u8;
                t.temp.pulled = Some(cmd::key_positions(row.1, &args).map(|i| (db, args.get(i).to_vec())).collect());
                self.script_acl_begin(t.user.clone());
            }
            let now = crate::util::now_ms();
            // Library functions are compiled from the shard's own copy.
            self.scripts.sync_functions(&self.ks.functions);
            self.scripts.replica_read_only = self.read_only_replica();
            let _lend = self.lend_busy_io();
            let mut ctx = Ctx {
                ks: &mut t.temp,
                db: t.final_db,
                now,
                out: Reply::new(&mut t.reply, t.resp3),
                max_bulk_len: self.limits.max_bulk_len,
                rng: &mut self.rng,
                facts: &self.shared.facts,
                scripts: Some(&mut self.scripts),
            };
            // Admitted with the transaction (every shard reported).
            let mut obs = shard_observer!(self, now);
            ctx.ks.notify.flags = self.ks.notify.flags;
            let _ = cmd::call::call(&mut ctx, Road::Admitted, &mut admission::Unchecked, &mut obs, row, &args);
            self.script_acl_end_for(Some(t.conn));
            self.take_script_stats();
            // Its keyspace events are published from here.
            t.temp.notify.flags = 0;
            if t.temp.missing.is_empty() {
                self.ks.notify.events.append(&mut t.temp.notify.events);
            }
        }
        let n = self.shared.nshards;
        let mut touched = t.temp.track_touched.take().unwrap_or_default();
        touched.sort();
        touched.dedup();
        let mut clocks: Vec<Clocks> = (0..n).map(|_| Vec::new()).collect();
        for (k, c) in used_clocks(&mut t, &touched) {
            clocks[self.shared.slots.shard_of(&k.1)].push((k, c));
        }
        let mut by_shard: Vec<Vec<(DbKey, KeyState)>> = (0..n).map(|_| Vec::new()).collect();
        for (db, key) in touched {
            let st = t.temp.remove(db as usize, &key).map(|e| e.into_parts());
            by_shard[self.shared.slots.shard_of(&key)].push(((db, key.to_vec()), st));
        }
        t.temp = Keyspace::new();
        for (s, (writes, clocks)) in by_shard.into_iter().zip(clocks).enumerate() {
            if writes.is_empty() && clocks.is_empty() {
                continue;
            }
            if s == self.id {
                self.apply_writes(writes, clocks);
            } else {
                // FIFO per pair: applied before any later command we send there.
                self.send(s, Msg::TxnApply { writes, clocks });
            }
        }
        self.txn.coord.insert(txid, t);
        self.routed_step(txid);
    }

    fn execute_txn(&mut self, txid: u64) {
        let Some(mut t) = self.txn.coord.remove(&txid) else { return };
        // Pulling recorded touches; only what the commands change counts.
        if let Some(v) = &mut t.temp.track_touched {
            v.clear();
        }
        let mut reply = Vec::new();
        self.scripts.retry = None;
        if t.is_exec && t.watch_dirty {
            Reply::new(&mut reply, t.resp3).null_array();
        } else {
            let now = crate::util::now_ms();
            let mut db = t.db;
            // The commands' keyspace events are published from here.
            t.temp.notify.flags = self.ks.notify.flags;
            // A lone MIGRATE leaves its network step (first run) or
            // finishes with its outcome (second run); inside EXEC or a
            // script it stays synchronous (see `cmd::migrate`).
            let lone_io =
                !t.is_exec && t.cmds.len() == 1 && cmd::find(&t.cmds[0].args()).is_some_and(|(_, d)| d.has(NETWORK_IO));
            if lone_io {
                t.temp.io_done = t.io_done.take();
                t.temp.offload_io = t.temp.io_done.is_none();
            }
            if t.is_exec {
                Reply::new(&mut reply, t.resp3).array(t.cmds.len());
            }
            for (i, c) in t.cmds.iter().enumerate() {
                let args = c.args();
                let t0 = super::ticks::now();
                let Some((id, def)) = cmd::find(&args) else { continue };
                if let Some(&Some(d)) = t.denied.get(i) {
                    let e = self.exec_refused(t.conn, d, def, &args);
                    Reply::new(&mut reply, t.resp3).error(&e);
                    continue;
                }
                let before = reply.len();
                if def.has(CONN_SHARD | EVERY_SHARD) {
                    let mut s = Session { db, out: Reply::new(&mut reply, t.resp3), subscribed_resp2: false };
                    let ran = cmd::run_session(def, &mut s, &args);
                    db = s.db;
                    if !ran && def.has(AFTER_TXN) {
                        // Run once the transaction is done (`on_pushed`).
                        t.after.push((reply.len(), i));
                        continue;
                    }
                    if !ran {
                        Reply::new(&mut reply, t.resp3).error(&format!(
                            "ERR '{}' is not supported inside a transaction spanning shards",
                            def.name
                        ));
                    }
                    let failed = reply.get(before) == Some(&b'-');
                    let ticks = self.record_stat(id, t0, failed);
                    self.note_if_slow(ticks, &args);
                    continue;
                }
                if def.has(RUNS_SCRIPT) {
                    let aof_error = self.aof.as_ref().and_then(|w| w.last_write_error.clone());
                    self.scripts.aof_error = aof_error;
                    self.script_acl_begin(t.user.clone());
                    self.scripts.sync_functions(&self.ks.functions);
                    self.scripts.replica_read_only = self.read_only_replica();
                }
                let _lend = if def.has(RUNS_SCRIPT) { self.lend_busy_io() } else { None };
                let mut ctx = Ctx {
                    ks: &mut t.temp,
                    db,
                    now,
                    out: Reply::new(&mut reply, t.resp3),
                    max_bulk_len: self.limits.max_bulk_len,
                    rng: &mut self.rng,
                    facts: &self.shared.facts,
                    scripts: Some(&mut self.scripts),
                };
                // Admitted as a whole when every participant reported.
                let mut obs = shard_observer!(self, now);
                let _ =
                    cmd::call::call(&mut ctx, Road::Admitted, &mut admission::Unchecked, &mut obs, (id, def), &args);
                self.script_acl_end_for(Some(t.conn));
                if def.has(RUNS_SCRIPT) {
                    self.take_script_stats();
                    if t.is_exec {
                        if let Some(found) = self.scripts.retry.take() {
                            // A script of this EXEC reached for keys not
                            // pulled (undeclared, or a SORT pattern's):
                            // nothing the EXEC did counts; it runs again
                            // with them (the next script would forget them).
                            t.temp.missing.extend(found);
                        }
                    }
                }
            }
            t.final_db = db;
            t.temp.notify.flags = 0;
            t.temp.offload_io = false;
            t.temp.io_done = None;
            t.io_job = t.temp.io_job.take();
            if t.temp.missing.is_empty() {
                self.ks.notify.events.append(&mut t.temp.notify.events);
            }
        }
        if let Some(found) = self.scripts.retry.take() {
            // A lone script reached for keys it had not declared: what it
            // did was undone; it runs again with them (and every shard).
            // Otherwise (inside EXEC, or too many rounds) it answered an error.
            if !t.is_exec && t.cmds.len() == 1 && t.script_rounds < MAX_SCRIPT_ROUNDS {
                return self.rerun_script(txid, t, found);
            }
        }
        let missing = std::mem::take(&mut t.temp.missing);
        if !missing.is_empty() && t.script_rounds < MAX_SCRIPT_ROUNDS {
            // SORT's patterns named keys not pulled: nothing it did counts;
            // the transaction runs again with them (and their shards).
            return self.rerun_with_keys(txid, t, missing);
        }
        t.would_block = std::mem::take(&mut t.temp.would_block);
        if let (Some(parts), Some(b)) = (t.temp.block_rewrite.take(), t.block.as_mut()) {
            // The retry must run what blocked (XREAD's `$` pinned).
            b.cmd = Some(OwnedArgs::from_slices(&parts));
        }
        // Lookups counted on the temporary keyspace belong to this server.
        self.ks.hits += t.temp.hits;
        self.ks.misses += t.temp.misses;
        // Ship the final state of every touched key to its owner.
        let mut writes: Vec<Vec<(DbKey, KeyState)>> = (0..t.participants.len()).map(|_| Vec::new()).collect();
        let mut touched = t.temp.track_touched.take().unwrap_or_default();
        touched.sort();
        touched.dedup();
        let mut clocks: Vec<Clocks> = (0..t.participants.len()).map(|_| Vec::new()).collect();
        for (k, c) in used_clocks(&mut t, &touched) {
            let owner = self.shared.slots.shard_of(&k.1);
            if let Some(p) = t.participants.iter().position(|&x| x == owner) {
                clocks[p].push((k, c));
            }
        }
        for (db, key) in touched {
            let owner = self.shared.slots.shard_of(&key);
            let Some(p) = t.participants.iter().position(|&x| x == owner) else { continue };
            let st = t.temp.remove(db as usize, &key).map(|e| e.into_parts());
            writes[p].push(((db, key.to_vec()), st));
        }
        t.acks_left = t.participants.len();
        t.reply = reply;
        let participants = t.participants.clone();
        t.temp = Keyspace::new();
        // Only participants that write log a record of this transaction;
        // one holding only keys logs each part by itself (it writes only
        // with the AOF off, or what reading expired: see `start_txn_with`).
        let count = writes.iter().filter(|w| !w.is_empty()).count();
        let (log_txid, hold) = if t.whole { self.txn_logging(txid, count) } else { (0, false) };
        t.hold = hold;
        self.txn.coord.insert(txid, t);
        for ((p, w), clocks) in participants.into_iter().zip(writes).zip(clocks) {
            let log_txid = if w.is_empty() { 0 } else { log_txid };
            let participants = count as u16;
            self.send(p, Msg::PushUnlock { txid, coord: self.id, writes: w, clocks, log_txid, participants, hold });
        }
    }

    /// A cross-shard MIGRATE's network step ended: run it again as a
    /// transaction with the outcome, deleting what the target took.
    pub fn start_io_finish(
        &mut self,
        conn: &mut Conn,
        cmd: OwnedArgs,
        shards: Vec<usize>,
        done: (crate::cmd::migrate::Job, crate::cmd::migrate::Result2),
    ) {
        self.start_txn(conn, vec![cmd], shards, false);
        if let Wait::Txn(txid) = conn.wait {
            if let Some(t) = self.txn.coord.get_mut(&txid) {
                t.io_done = Some(done);
            }
        }
    }

    /// Coordinator: unlock every participant of `t` (nothing written) and
    /// start the script again over every shard with `found` pulled too.
    fn rerun_script(&mut self, txid: u64, t: Txn, found: Vec<DbKey>) {
        self.rerun(txid, t, found, |sh, conn, mut t, extra| {
            let cmd = t.cmds.swap_remove(0);
            sh.start_script_txn(conn, cmd, extra, t.script_rounds + 1);
        });
    }

    /// Coordinator: unlock every participant of `t` (nothing written) and
    /// start it again with `found` pulled too, their owners taking part.
    fn rerun_with_keys(&mut self, txid: u64, t: Txn, found: Vec<DbKey>) {
        self.rerun(txid, t, found, |sh, conn, mut t, extra| {
            let mut shards = std::mem::take(&mut t.participants);
            shards.extend(extra.iter().map(|(_, k)| sh.shared.slots.shard_of(k)));
            shards.sort_unstable();
            shards.dedup();
            // EXEC's watched shards are added again from the connection.
            let denied = std::mem::take(&mut t.denied);
            let cmds = std::mem::take(&mut t.cmds);
            sh.start_txn_with(conn, cmds, shards, t.is_exec, (extra, t.script_rounds + 1));
            if let Wait::Txn(new) = conn.wait {
                if let Some(nt) = sh.txn.coord.get_mut(&new) {
                    nt.denied = denied;
                    nt.block = t.block.take();
                }
            }
        });
    }

    /// Unlock every participant of `t` (nothing written) and, if its
    /// client still waits for it, hand `again` the client, `t` and the
    /// keys to pull next time (`t`'s and `found`, sorted, deduplicated).
    fn rerun(
        &mut self,
        txid: u64,
        mut t: Txn,
        found: Vec<DbKey>,
        again: impl FnOnce(&mut Self, &mut Conn, Txn, Vec<DbKey>),
    ) {
        self.unlock_unwritten(txid, &t.participants);
        let r = t.conn;
        let Some(slot) = self.conns.get_mut(r.idx as usize) else { return };
        let Some(mut conn) = slot.take() else { return };
        if conn.gen == r.gen && matches!(conn.wait, Wait::Txn(id) if id == txid) {
            let mut extra = std::mem::take(&mut t.extra);
            extra.extend(found);
            extra.sort();
            extra.dedup();
            again(self, &mut conn, t, extra);
        }
        if let Some(slot) = self.conns.get_mut(r.idx as usize) {
            *slot = Some(conn);
        }
    }

    /// Coordinator: a gate refused the transaction (a participant is out of
    /// memory, or its AOF fails). Nothing runs; every participant unlocks,
    /// and the client gets the refusal once all have (`on_pushed`).
    fn refuse_txn(&mut self, txid: u64, refusal: admission::Refusal) {
        let Some(t) = self.txn.coord.get_mut(&txid) else { return };
        let msg = if t.is_exec { refusal.exec_abort_message() } else { refusal.message() };
        t.reply.clear();
        Reply::new(&mut t.reply, t.resp3).error(&msg);
        t.idx = t.cmds.len();
        t.acks_left = t.participants.len();
        // A refused blocking command answers; it does not wait.
        t.would_block = false;
        let ids: Vec<usize> = t.cmds.iter().filter_map(|c| cmd::find(&c.args())).map(|(id, _)| id).collect();
        let participants = t.participants.clone();
        for id in ids {
            self.stats[id].rejected += 1;
        }
        self.unlock_unwritten(txid, &participants);
    }

    /// Unlock `participants` of transaction `txid`, which wrote nothing.
    fn unlock_unwritten(&mut self, txid: u64, participants: &[usize]) {
        for &p in participants {
            let msg = Msg::PushUnlock {
                txid,
                coord: self.id,
                writes: Vec::new(),
                clocks: Vec::new(),
                log_txid: 0,
                participants: 0,
                hold: false,
            };
            self.send(p, msg);
        }
    }

    /// How a transaction writing on `count` shards is logged: the txid its
    /// records carry (0 when one record is atomic by itself) and whether
    /// participants stay locked until all have it as durable as the policy
    /// promises (written, under everysec and no): otherwise a reader on one
    /// participant could see a transaction that recovery then drops
    /// because another participant's record never reached the kernel.
    fn txn_logging(&self, txid: u64, count: usize) -> (u64, bool) {
        if count < 2 {
            return (0, false);
        }
        (txid, self.aof.is_some())
    }

    /// Participant, phase 2: apply, log, unlock (or, with `hold`, wait for
    /// `Unlock`), resume deferred work. The ack to the coordinator leaves
    /// only once the record is as durable as the policy promises.
    pub fn on_push_unlock(
        &mut self,
        txid: u64,
        coord: usize,
        (writes, clocks): (Vec<(DbKey, KeyState)>, Clocks),
        (log_txid, participants): (u64, u16),
        hold: bool,
    ) {
        if !self.txn.locks.holds(txid) {
            crate::log(&format!("shard {}: unlock for txid {} that does not hold the lock", self.id, txid));
            return;
        }
        // With only keys locked, other work ran meanwhile: anything it left
        // unlogged is its own record, not part of this transaction's.
        self.log_pending();
        self.apply_writes(writes, clocks);
        if log_txid != 0 && crate::persist::failpoint("txn-partial") {
            self.failpoint_txn_partial(log_txid, participants);
        }
        // Everything this shard did while locked, as one record.
        self.log_effects(log_txid, if log_txid != 0 { participants } else { 0 });
        if !hold {
            self.txn.locks.release(txid);
        }
        self.send(coord, Msg::Pushed { txid });
        if !hold {
            self.serve_ready();
            self.resume_deferred();
        }
    }

    /// Participant: every participant has the transaction durable.
    pub fn on_unlock(&mut self, txid: u64) {
        if self.txn.locks.release(txid) {
            self.serve_ready();
            self.resume_deferred();
        }
    }

    /// Run the queued work that may run now, in queue order (see
    /// `shard::locks`).
    fn resume_deferred(&mut self) {
        if self.txn.resuming {
            self.txn.rescan = true;
            return;
        }
        self.txn.resuming = true;
        let mut from = 0;
        loop {
            let Some((i, d)) = self.txn.locks.next_ready(from) else {
                if std::mem::take(&mut self.txn.rescan) {
                    from = 0;
                    continue;
                }
                break;
            };
            from = i;
            match d {
                Deferred::Msg(m) => self.on_work(m),
                Deferred::Conn(r) => {
                    // Run it now, in queue order: marking it runnable for
                    // later would let the next queued lock overtake it
                    // again and again (starvation).
                    let ready = match self.conns.get_mut(r.idx as usize) {
                        Some(Some(c)) if c.gen == r.gen && matches!(c.wait, Wait::ShardLock) => {
                            c.wait = Wait::None;
                            true
                        }
                        _ => false,
                    };
                    if ready {
                        self.txn.resumed = Some(r);
                        self.process_conn(r.idx);
                        self.txn.resumed = None;
                    }
                }
            }
        }
        self.txn.resuming = false;
    }

    /// Coordinator: a participant applied its writes.
    pub fn on_pushed(&mut self, txid: u64) {
        let Some(t) = self.txn.coord.get_mut(&txid) else { return };
        t.acks_left -= 1;
        if t.acks_left > 0 {
            return;
        }
        let Some(t) = self.txn.coord.remove(&txid) else { return };
        if t.hold {
            for &p in &t.participants {
                self.send(p, Msg::Unlock { txid });
            }
        }
        let r = t.conn;
        if let Some(job) = t.io_job {
            // The keys are serialised and the shards free again: the
            // network step runs on a helper thread.
            let Some(args) = t.cmds.into_iter().next() else { return };
            let call = super::netio::IoCall::new(r, args, (t.db, t.resp3), job, Some(t.participants));
            return self.start_io(r, txid, call);
        }
        let watch_shards = t.watch_shards;
        let who = t.watcher;
        if let Some(b) = t.block {
            return self.finish_blocking_txn(r, txid, b, t.would_block, t.reply);
        }
        let mut reply = t.reply;
        if !t.after.is_empty() {
            reply = self.run_after_txn(r, txid, &t.cmds, &t.after, reply);
        }
        if let Some(Some(c)) = self.conns.get_mut(r.idx as usize) {
            if c.gen == r.gen && matches!(c.wait, Wait::Txn(id) if id == txid) {
                c.out.extend_from_slice(&reply);
                c.wait = Wait::None;
                c.db = t.final_db;
                if t.is_exec {
                    c.watch_shards.clear();
                }
                self.mark_dirty(r.idx);
                self.runnable.push_back(r.idx);
            }
        }
        if t.is_exec {
            if let Some(w) = who {
                self.unwatch_everywhere(w, &watch_shards);
            }
        }
    }

    /// Run a finished EXEC's AFTER_TXN commands for its client, in order,
    /// and put each reply in its place in `reply`.
    fn run_after_txn(
        &mut self,
        r: ConnRef,
        txid: u64,
        cmds: &[OwnedArgs],
        after: &[(usize, usize)],
        reply: Vec<u8>,
    ) -> Vec<u8> {
        let Some(slot) = self.conns.get_mut(r.idx as usize) else { return reply };
        let Some(mut conn) = slot.take() else { return reply };
        let mut pieces = Vec::with_capacity(after.len());
        if conn.gen == r.gen && matches!(conn.wait, Wait::Txn(id) if id == txid) {
            for &(_, i) in after {
                let args = cmds[i].args();
                let Some((id, def)) = cmd::find(&args) else { continue };
                let saved = std::mem::take(&mut conn.out);
                self.server_command(&mut conn, id, def, &args);
                pieces.push(std::mem::replace(&mut conn.out, saved));
            }
        }
        if let Some(slot) = self.conns.get_mut(r.idx as usize) {
            *slot = Some(conn);
        }
        if pieces.len() != after.len() {
            return reply;
        }
        let mut out = Vec::with_capacity(reply.len() + pieces.iter().map(Vec::len).sum::<usize>());
        let mut at = 0;
        for (&(off, _), piece) in after.iter().zip(&pieces) {
            out.extend_from_slice(&reply[at..off]);
            out.extend_from_slice(piece);
            at = off;
        }
        out.extend_from_slice(&reply[at..]);
        out
    }

    /// A cross-shard blocking attempt finished: reply, or keep waiting on
    /// the watches (until the deadline, which may have passed meanwhile).
    fn finish_blocking_txn(
        &mut self,
        r: super::ConnRef,
        txid: u64,
        b: Box<super::blocking::BlockWait>,
        would_block: bool,
        reply: Vec<u8>,
    ) {
        let now = crate::util::now_ms();
        let Some(Some(c)) = self.conns.get_mut(r.idx as usize) else { return };
        if c.gen != r.gen || !matches!(c.wait, Wait::Txn(id) if id == txid) {
            return;
        }
        let expired = b.deadline != 0 && b.deadline <= now;
        if would_block && !expired {
            if b.deadline != 0 {
                self.blocked.deadlines.insert((b.deadline, r.idx, r.gen, b.block_id));
            }
            let (woken, block_id) = (b.woken, b.block_id);
            c.wait = Wait::Blocked(b);
            if woken {
                // A key changed after the attempt looked: look again now.
                self.on_block_ready(r, block_id);
            }
            return;
        }
        // Served, or timed out meanwhile.
        if would_block {
            c.out.extend_from_slice(&super::blocking::timeout_reply(c.resp3));
        } else {
            c.out.extend_from_slice(&reply);
        }
        c.wait = Wait::None;
        self.drop_watches(b.block_id, &b.owners);
        self.mark_dirty(r.idx);
        self.runnable.push_back(r.idx);
    }

    /// EXEC: run the queued commands atomically.
    pub fn exec_multi(&mut self, conn: &mut Conn, exec_args: &crate::cmd::Args) {
        let Some(m) = conn.multi.take() else {
            Reply::new(&mut conn.out, conn.resp3).error("ERR EXEC without MULTI");
            return;
        };
        if m.aborted {
            Reply::new(&mut conn.out, conn.resp3).error("EXECABORT Transaction discarded because of previous errors.");
            let ws = std::mem::take(&mut conn.watch_shards);
            self.unwatch_everywhere(conn.id, &ws);
            return;
        }
        let n = self.shared.nshards;
        let mut shards: Vec<usize> = Vec::new();
        let mut has_global = false;
        let mut has_server = false;
        for c in &m.cmds {
            let args = c.args();
            if let Some((_, def)) = cmd::find(&args) {
                has_global |= def.has(EVERY_SHARD) || def.publishes().is_some();
                has_server |= matches!(def.handler, Handler::Server(_));
                if def.takes_keys() {
                    shards.extend(super::router::key_shards(&self.shared.slots, def, &args));
                }
            }
        }
        if has_server && shards.is_empty() && conn.watch_shards.is_empty() && self.replay_exec(conn, &m) {
            return;
        }
        shards.extend(conn.watch_shards.iter().copied());
        shards.sort_unstable();
        shards.dedup();
        // A SORT whose patterns reach other slots needs a temporary
        // keyspace; so may a script (its SORTs, its undeclared keys): the
        // transaction runs again with what they reached for.
        let reaches = n > 1
            && m.cmds.iter().any(|c| {
                let args = c.args();
                cmd::find(&args).is_some_and(|(_, d)| d.has(RUNS_SCRIPT) || d.reach.is_some_and(|f| f(&args).is_some()))
            });
        let local = shards.iter().all(|&s| s == self.id) && (!has_global || n == 1) && !reaches;
        if local {
            let need = if self.txn.clear() { None } else { Some(multi_need(&m, conn.db, has_global)) };
            if let Some(need) = need.filter(|n| !self.txn.admits_conn(conn.conn_ref(self.id), n)) {
                // Re-queue: MULTI state goes back, EXEC runs after unlock.
                conn.multi = Some(m);
                let r = conn.conn_ref(self.id);
                conn.rpos -= exec_args.buf_len();
                conn.wait = Wait::ShardLock;
                self.txn.defer(Deferred::Conn(r), need);
                return;
            }
            let denied = self.exec_acl(conn, &m);
            self.exec_multi_here(conn, m, denied);
            return;
        }
        if shards.is_empty() {
            shards.push(self.id);
        }
        let denied = self.exec_acl(conn, &m);
        self.start_txn(conn, m.cmds, shards, true);
        if let Wait::Txn(txid) = conn.wait {
            if let Some(t) = self.txn.coord.get_mut(&txid) {
                t.denied = denied;
            }
        }
    }

    /// EXEC of keyless commands among which some need the connection and
    /// may answer later (REPLICAOF, CONFIG REWRITE, CLIENT KILL: what
    /// Sentinel sends in one MULTI on failover). They name no keys: the
    /// queue is replayed through the normal path, in order, each reply an
    /// element of EXEC's array (a keyspace-wide one queued with them,
    /// FLUSHALL or DBSIZE, runs in order but not isolated from other
    /// clients' commands). False (nothing
    /// done) if the user may no longer run one of them: EXEC proper
    /// reports that.
    fn replay_exec(&mut self, conn: &mut Conn, m: &super::dispatch::MultiState) -> bool {
        if self.exec_acl(conn, m).iter().any(Option::is_some) {
            return false;
        }
        Reply::new(&mut conn.out, conn.resp3).array(m.cmds.len());
        for c in &m.cmds {
            crate::protocol::reply::encode_command(&mut conn.replay, &c.args().iter().collect::<Vec<_>>());
        }
        true
    }

    /// EXEC checks each queued command again, as Redis does: the user's
    /// rules may have changed since it was queued. Per command, why it
    /// may no longer run (empty: all may); logged when EXEC reaches it
    /// (not if WATCH or a gate stops the whole EXEC first, as in Redis).
    fn exec_acl(&self, conn: &Conn, m: &super::dispatch::MultiState) -> Vec<Option<crate::acl::check::Denied>> {
        if conn.acl_free {
            return Vec::new();
        }
        let check = |c: &OwnedArgs| {
            let args = c.args();
            let (id, def) = cmd::find(&args)?;
            crate::acl::check::check(&conn.user, id, def, &args).err()
        };
        m.cmds.iter().map(check).collect()
    }

    /// EXEC when every key lives here: run in place, nothing can interleave.
    fn exec_multi_here(
        &mut self,
        conn: &mut Conn,
        m: super::dispatch::MultiState,
        denied: Vec<Option<crate::acl::check::Denied>>,
    ) {
        let who = conn.id;
        let flags = m.cmds.iter().filter_map(|c| cmd::find(&c.args())).fold(0, |f, (_, d)| f | d.flags);
        if let Err(refusal) = self.admit(Road::Transaction, flags) {
            self.log_pending();
            Reply::new(&mut conn.out, conn.resp3).error(&refusal.exec_abort_message());
        } else if !conn.watch_shards.is_empty() && self.ks.watch_dirty(who) {
            Reply::new(&mut conn.out, conn.resp3).null_array();
        } else {
            Reply::new(&mut conn.out, conn.resp3).array(m.cmds.len());
            // One record for the whole EXEC: replayed all or not at all.
            self.aof_group += 1;
            for (i, c) in m.cmds.iter().enumerate() {
                let args = c.args();
                let Some((id, def)) = cmd::find(&args) else { continue };
                if let Some(&Some(d)) = denied.get(i) {
                    self.log_denied(conn, d, def, &args, "multi");
                    Reply::new(&mut conn.out, conn.resp3).error(&d.exec_error());
                    continue;
                }
                if def.has(EVERY_SHARD) {
                    // One shard (else this EXEC would be routed): it completes here.
                    debug_assert_eq!(self.shared.nshards, 1);
                    self.server_command(conn, id, def, &args);
                } else if let Some(sharded) = def.publishes() {
                    // One shard (else this EXEC would be routed): every
                    // subscriber is here.
                    let (channel, message) = (args.get(1), args.get(2));
                    let n =
                        self.deliver_to_self(conn, channel, message, sharded) + self.deliver(channel, message, sharded);
                    self.stats[id].calls += 1;
                    Reply::new(&mut conn.out, conn.resp3).int(n as i64);
                } else if def.has(CONN_SHARD) {
                    let mut s =
                        Session { db: conn.db, out: Reply::new(&mut conn.out, conn.resp3), subscribed_resp2: false };
                    let ran = cmd::run_session(def, &mut s, &args);
                    conn.db = s.db;
                    if !ran && def.has(AFTER_TXN) {
                        // Nothing else runs in between: it may run in place.
                        self.server_command(conn, id, def, &args);
                    } else if !ran {
                        Reply::new(&mut conn.out, conn.resp3)
                            .error(&format!("ERR '{}' is not supported inside MULTI", def.name));
                    }
                } else {
                    self.exec_local(conn, id, def, &args, Road::Admitted);
                }
            }
            self.aof_group -= 1;
            self.log_pending();
            self.serve_ready();
        }
        let ws = std::mem::take(&mut conn.watch_shards);
        self.unwatch_everywhere(who, &ws);
    }
}

/// Put what a transaction pulled into its keyspace, each key with the
/// access clock it had at its owner.
fn install_pulled(t: &mut Txn, entries: Vec<(DbKey, PulledState)>) {
    for ((db, key), st) in entries {
        if let Some((v, exp, clock)) = st {
            t.temp.set(db as usize, &key, v, exp);
            t.temp.set_clock_of(db as usize, &key, clock);
            t.pulled_keys.push((db, key));
        }
    }
}

/// The clocks a transaction's commands left on the keys they pulled or
/// wrote (those still present), for their owners.
fn used_clocks(t: &mut Txn, touched: &[(u8, Box<[u8]>)]) -> Clocks {
    let mut keys = std::mem::take(&mut t.pulled_keys);
    keys.extend(touched.iter().map(|(db, k)| (*db, k.to_vec())));
    keys.sort();
    keys.dedup();
    keys.into_iter().filter_map(|(db, k)| t.temp.clock_of(db as usize, &k).map(|c| ((db, k), c))).collect()
}

/// What a participant's `LockPull` locks there: the whole shard, or the
/// keys the transaction pulls there (the first of its chain).
pub fn lock_pull_need(whole: bool, chain: &[(usize, Vec<DbKey>)]) -> Need {
    if whole {
        return Need::All;
    }
    let keys = chain.first().map(|(_, k)| k.as_slice()).unwrap_or_default();
    Need::keys(keys.iter().map(|(db, k)| (*db, k.as_slice())))
}

/// What one request needs from the lock table to run here: its keys, or
/// everything when what it touches is not known from its key positions
/// (scripts, SORT patterns, MIGRATE, keyless and keyspace-wide commands).
pub fn cmd_need(def: &crate::cmd::table::CommandDef, args: &crate::cmd::Args, db: usize) -> Need {
    if def.has(RUNS_SCRIPT | NETWORK_IO | EVERY_SHARD)
        || !matches!(def.handler, Handler::Keyspace(_))
        || def.reach.is_some_and(|f| f(args).is_some())
    {
        return Need::All;
    }
    let mut keys: Vec<(u8, &[u8])> = cmd::key_positions(def, args).map(|i| (db as u8, args.get(i))).collect();
    if keys.is_empty() {
        return Need::All;
    }
    if let Some((target, dst)) = def.other_db_key.and_then(|f| f(args)) {
        keys.push((target as u8, dst));
    }
    Need::keys(keys.into_iter())
}

/// The db a queued session command (SELECT) leaves the connection in.
fn db_after_session(def: &'static cmd::CommandDef, args: &cmd::Args, db: usize) -> usize {
    let mut scratch = Vec::new();
    let mut s = Session { db, out: Reply::new(&mut scratch, false), subscribed_resp2: false };
    cmd::run_session(def, &mut s, args);
    s.db
}

/// What a local EXEC needs: every queued command's keys (SELECT followed).
fn multi_need(m: &super::dispatch::MultiState, db: usize, has_global: bool) -> Need {
    if has_global {
        return Need::All;
    }
    let mut db = db;
    let mut all = Vec::new();
    for c in &m.cmds {
        let args = c.args();
        let Some((_, def)) = cmd::find(&args) else { continue };
        if def.has(CONN_SHARD) {
            db = db_after_session(def, &args, db);
            continue;
        }
        if matches!(def.handler, Handler::Server(_)) {
            continue;
        }
        match cmd_need(def, &args, db) {
            Need::Keys(k) => all.extend(k),
            _ => return Need::All,
        }
    }
    all.sort_unstable();
    all.dedup();
    Need::Keys(all)
}

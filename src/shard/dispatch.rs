//! What a connection does with each parsed request: check auth, arity,
//! ACL permissions (`shard::acl`) and pub/sub mode, queue it inside MULTI, then route it by its keys. A request
//! whose keys all live on this shard runs here at once; one whose keys live
//! on one other shard is forwarded; one whose keys span shards becomes a
//! cross-shard transaction (`txn`).
//!
//! Pipelines are squashed: a run of single-shard requests is split into one
//! batch per shard, all sent at once (requests for this shard run in
//! place), and the replies are put back in request order when every batch
//! has answered. Requests on the same shard keep their order; requests on
//! different shards (so on different keys) of one pipeline may take effect
//! in another order, as with Dragonfly's pipeline squashing.

use super::core::{Conn, ReplyMode, Shard, Wait};
use super::fanout::{GlobalPlan, PlanCtx};
use super::router::{self, Route};
use super::Msg;
use crate::cmd::admission::{self, Refusal, Road};
use crate::cmd::{self, flags::*, Args, CommandDef, Ctx, Handler, OwnedArgs, Session};
use crate::protocol::parse::{parse_request, parse_request_resume, Limits, ParseOutcome};
use crate::protocol::reply::{encode_command, Reply};

/// The refusal of a command a RESP2 subscriber may not run.
pub fn subscribed_context_error(def: &CommandDef) -> String {
    format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        def.name
    )
}

/// Commands queued by MULTI.
pub struct MultiState {
    pub cmds: Vec<OwnedArgs>,
    /// A queued command was rejected: EXEC must answer EXECABORT.
    pub aborted: bool,
}

/// Commands whose replies reveal nothing of the keyspace's data: a
/// connection that ran only these is answered at once, not held until what
/// was logged is durable or acknowledged by replicas (`Conn::reveals`).
/// They are what a Sentinel or shardis-monitor sends (PING, INFO, PUBLISH
/// of hellos, REPLICAOF, ROLE) and a replica's handshake (REPLCONF).
/// INFO's key counts and offsets are not data.
pub const REVEALS_NOTHING: &[&str] = &[
    "PING",
    "ECHO",
    "INFO",
    "ROLE",
    "REPLICAOF",
    "SLAVEOF",
    // A replica's handshake on the client port: held, no replica could
    // link to a promoted master that took writes before any linked.
    "REPLCONF",
    "PUBLISH",
    "HELLO",
    "AUTH",
    "CLIENT",
    "CONFIG",
    "COMMAND",
    "SELECT",
    "TIME",
    "QUIT",
    "RESET",
];

impl Shard {
    /// Where a request runs (see `router`).
    #[inline]
    pub fn route(&self, def: &CommandDef, args: &Args) -> Route {
        router::route(&self.shared.slots, self.id, def, args)
    }

    /// Parse and run requests from the connection's buffer until it has to
    /// wait (for another shard, a lock) or the buffer runs dry.
    pub fn run_requests(&mut self, conn: &mut Conn) {
        let mut ranges = std::mem::take(&mut self.ranges);
        let mut rbuf = std::mem::take(&mut conn.rbuf);
        splice_replay(conn, &mut rbuf);
        // Started by the first request for another shard; later single-shard
        // requests join it until something else comes along.
        let mut squash: Option<Box<SquashWait>> = None;
        self.now = crate::util::now_ms();
        self.prefetch_pipeline(conn, &mut rbuf, &mut ranges);
        // Paused while its unsent replies exceed OUTPUT_PAUSE (on_send resumes it).
        while conn.wait.is_none()
            && !conn.closing
            && !conn.close_after_flush
            && conn.output_bytes() < super::core::OUTPUT_PAUSE
        {
            let start = conn.rpos;
            if conn.reply != ReplyMode::On {
                // One request at a time (no squashing), so each reply can
                // be cut when its request completes.
                conn.settle_reply();
                if squash.is_some() {
                    break;
                }
                if conn.reply == ReplyMode::SkipNext && start < rbuf.len() {
                    conn.reply = ReplyMode::Skipping;
                    conn.mute_from = conn.out.len();
                }
            }
            if start >= rbuf.len() {
                break;
            }
            let limits = Limits { unauthenticated: !conn.authed, ..self.limits };
            match parse_request_resume(&mut rbuf[start..], &limits, &mut ranges, &mut conn.parse) {
                ParseOutcome::Incomplete { need } => {
                    conn.need = need;
                    break;
                }
                ParseOutcome::Error(e) => {
                    Reply::new(&mut conn.out, conn.resp3).error(&e.message());
                    conn.close_after_flush = true;
                    conn.rpos = rbuf.len();
                    break;
                }
                ParseOutcome::Done { consumed } => {
                    conn.need = 0;
                    if ranges.is_empty() {
                        conn.rpos += consumed;
                        continue;
                    }
                    let args = Args::new(&rbuf[start..start + consumed], &ranges);
                    if !conn.reveals {
                        conn.reveals = !REVEALS_NOTHING.iter().any(|n| args.is(0, n));
                    }
                    match self.classify(conn, &args) {
                        Step::Forward(to, def) => {
                            self.feed_monitors(conn, def, &args);
                            let sq = squash.get_or_insert_with(|| SquashWait::new(self.shared.nshards, self.id));
                            sq.add_remote(to, &args);
                            self.note_forwarded(conn, def);
                            conn.rpos += consumed;
                        }
                        // The hot path: checks are done, run it here.
                        Step::Here(id, def)
                            if self.txn.clear()
                                || self.txn.admits_conn(
                                    conn.conn_ref(self.id),
                                    &super::txn::cmd_need(def, &args, conn.db),
                                ) =>
                        {
                            self.feed_monitors(conn, def, &args);
                            conn.rpos += consumed;
                            conn.last_cmd = def.name;
                            conn.last_cmd_ms = self.now;
                            match squash.as_mut() {
                                Some(sq) => {
                                    let (db, resp3) = (conn.db, conn.resp3);
                                    self.ks.no_touch = conn.no_touch;
                                    self.call(&mut sq.local, (resp3, db), (id, def), &args, Road::Client);
                                    self.ks.no_touch = false;
                                    sq.local_done();
                                }
                                None => self.exec_local(conn, id, def, &args, Road::Client),
                            }
                        }
                        Step::Here(..) | Step::Run => {
                            if squash.is_some() {
                                break;
                            }
                            conn.rpos += consumed;
                            self.handle(conn, &args);
                            splice_replay(conn, &mut rbuf);
                        }
                    }
                }
            }
        }
        if let Some(sq) = squash {
            self.send_squash(conn, sq);
        }
        if conn.reply != ReplyMode::On {
            conn.settle_reply();
        }
        if conn.rpos == rbuf.len() {
            rbuf.clear();
            conn.rpos = 0;
        } else if conn.rpos >= 64 * 1024 {
            // A pipeline whose chunks end mid-request never empties the
            // buffer: drop what was consumed, or it grows with the stream.
            rbuf.drain(..conn.rpos);
            conn.rpos = 0;
        }
        conn.rbuf = rbuf;
        self.ranges = ranges;
    }

    /// Send every batch of a squashed pipeline and wait for the replies.
    fn send_squash(&mut self, conn: &mut Conn, mut sq: Box<SquashWait>) {
        let from = conn.conn_ref(self.id);
        let (db, resp3, no_touch) = (conn.db as u8, conn.resp3, conn.no_touch);
        for (to, cmds) in sq.take_batches() {
            self.send(to, Msg::Batch { from, db, resp3, no_touch, cmds });
        }
        conn.wait = Wait::Squash(sq);
    }

    /// When several requests are buffered, touch their keys' hash entries
    /// first so the cache misses overlap (a pipeline of GETs is otherwise
    /// bound by one dependent miss after another). Only multibulk requests:
    /// parsing them twice is harmless, while inline parsing unescapes in place.
    fn prefetch_pipeline(&self, conn: &Conn, rbuf: &mut [u8], ranges: &mut Vec<std::ops::Range<usize>>) {
        if conn.parse.in_progress() {
            // A big request still arriving: parsing it from its start here
            // on every read would undo what resuming saves.
            return;
        }
        let mut pos = conn.rpos;
        let limits = Limits { unauthenticated: !conn.authed, ..self.limits };
        let mut n = 0;
        let dict = &self.ks.dbs[conn.db].dict;
        while n < 64 && pos < rbuf.len() && rbuf[pos] == b'*' {
            match parse_request(&mut rbuf[pos..], &limits, ranges) {
                ParseOutcome::Done { consumed } => {
                    if ranges.len() >= 2 {
                        let key = &rbuf[pos + ranges[1].start..pos + ranges[1].end];
                        if self.shared.slots.shard_of(key) == self.id {
                            dict.prefetch(key);
                        }
                    }
                    pos += consumed;
                    n += 1;
                }
                _ => break,
            }
        }
    }

    fn note_forwarded(&mut self, conn: &mut Conn, def: &'static CommandDef) {
        conn.last_cmd = def.name;
        conn.last_cmd_ms = self.now;
    }

    /// Decide whether a request can take part in a squashed pipeline.
    fn classify(&self, conn: &Conn, args: &Args) -> Step {
        if conn.multi.is_some() || !conn.authed || conn.in_pubsub() || conn.reply != ReplyMode::On {
            return Step::Run;
        }
        // A busy script somewhere (`handle` answers -BUSY), or a CLIENT
        // PAUSE that may hold it (`handle` decides).
        if self.shared.busy.count.load(std::sync::atomic::Ordering::Relaxed) != 0
            || self.shared.pause.active(self.now).is_some()
        {
            return Step::Run;
        }
        let Some((id, def)) = cmd::find(args) else { return Step::Run };
        // Container rows have arity -2, so they never pass as keyspace rows.
        if def.has(CONN_SHARD | EVERY_SHARD | BLOCKING | RUNS_SCRIPT | NETWORK_IO) || !cmd::arity_ok(def, args.len()) {
            return Step::Run;
        }
        // A restricted user's command is checked here (a refusal is
        // answered by `handle`); the default user's costs this flag test.
        if !conn.acl_free && crate::acl::check::check(&conn.user, id, def, args).is_err() {
            return Step::Run;
        }
        match self.route(def, args) {
            Route::Shard(s) => Step::Forward(s, def),
            Route::Here => Step::Here(id, def),
            Route::Shards(_) | Route::AllShards => Step::Run,
        }
    }

    /// Run one request (not a forwardable one) for a connection: the
    /// checks in Redis's order (lookup, arity, auth, ACL, subscribe mode, MULTI
    /// queueing), then by its row's handler: at the connection, fanned out,
    /// blocked, or routed by its keys.
    pub fn handle(&mut self, conn: &mut Conn, args: &Args) {
        conn.last_cmd_ms = self.now;
        let (id, def) = match cmd::lookup_args(args) {
            Ok(found) => found,
            Err(why) => {
                // Refused before it could be queued: EXEC then aborts.
                cmd::not_found_error(&mut Reply::new(&mut conn.out, conn.resp3), args, why);
                if let Some(m) = &mut conn.multi {
                    m.aborted = true;
                }
                return;
            }
        };
        conn.last_cmd = def.name;
        if !cmd::arity_ok(def, args.len()) {
            let e = format!("ERR wrong number of arguments for '{}' command", def.name);
            return self.refuse(conn, (id, def), args, &e);
        }
        if !conn.authed && !def.has(NO_AUTH) {
            return self.refuse(conn, (id, def), args, "NOAUTH Authentication required.");
        }
        // ACL, as Redis checks it: after authentication, before the rest.
        if !conn.acl_free {
            if let Some(e) = self.acl_gate(conn, (id, def), args, conn.multi.is_some()) {
                return self.refuse(conn, (id, def), args, &e);
            }
        }
        if conn.in_pubsub() && !conn.resp3 && !def.has(SUBSCRIBED_OK) {
            return self.refuse(conn, (id, def), args, &subscribed_context_error(def));
        }
        // A script on some shard is past busy-reply-threshold (after the
        // subscribe context, as Redis checks).
        // EXEC is refused too (not allowed while busy, as in Redis 7.0):
        // its transaction is discarded with EXECABORT.
        if !def.has(ALLOW_BUSY) {
            if let Some(busy) = self.shared.busy.busy_reply() {
                return self.refuse(conn, (id, def), args, busy);
            }
        }
        if self.pause_holds(conn, def) {
            return self.wait_paused(conn, args);
        }
        // MONITOR shows a command at the connection after it ran (SELECT
        // shows its new db, as in Redis); others when they are dispatched.
        let at_conn = !matches!(def.handler, Handler::Keyspace(_));
        let show_after = at_conn && !def.has(RUNS_QUEUE) && (conn.multi.is_none() || def.has(NEVER_QUEUED));
        if !show_after {
            self.feed_monitors(conn, def, args);
        }
        if conn.multi.is_some() && !def.has(NEVER_QUEUED) {
            return self.queue(conn, id, def, args);
        }
        if at_conn {
            self.server_command(conn, id, def, args);
            if show_after {
                self.feed_monitors(conn, def, args);
            }
            return;
        }
        if def.block.is_some_and(|b| b.blocks(args)) {
            // Outside MULTI: may wait at the keys' owner (see `blocking`).
            self.start_block(conn, def, args, None);
            return;
        }
        match self.route(def, args) {
            Route::Here => {
                if !self.txn.clear() {
                    let need = super::txn::cmd_need(def, args, conn.db);
                    if !self.txn.admits_conn(conn.conn_ref(self.id), &need) {
                        // A transaction holds what it needs: wait, and
                        // re-run this request when it may run.
                        self.unconsume_and_wait(conn, args, need);
                        return;
                    }
                }
                if def.has(RUNS_SCRIPT) {
                    return self.run_script_here(conn, id, def, args);
                }
                if def.has(NETWORK_IO) {
                    return self.run_offloaded(conn, id, def, args);
                }
                self.exec_local(conn, id, def, args, Road::Client);
            }
            // A script whose keys live on one other shard runs here on
            // them (pulled under that shard's lock), so that one touching
            // an undeclared key can still be run again from here.
            // So does a MIGRATE (`netio`): its network step runs off the
            // cores between two short transactions.
            Route::Shard(s) if def.has(RUNS_SCRIPT | NETWORK_IO) => {
                let cmds = vec![OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>())];
                self.start_txn(conn, cmds, vec![s], false);
            }
            Route::Shard(s) => {
                let mut sq = SquashWait::new(self.shared.nshards, self.id);
                sq.add_remote(s, args);
                self.send_squash(conn, sq);
            }
            // CONN and GLOBAL commands were run above.
            Route::AllShards => self.server_command(conn, id, def, args),
            Route::Shards(shards) => {
                let cmds = vec![OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>())];
                self.start_txn(conn, cmds, shards, false);
            }
        }
    }

    /// Refuse a command before it runs or is queued, as Redis's
    /// rejectCommand: inside MULTI the transaction is then aborted at EXEC;
    /// a refused EXEC itself discards the transaction (and its watches)
    /// at once, answering EXECABORT with the refusal (without its "ERR ").
    fn refuse(&mut self, conn: &mut Conn, (id, def): Row, args: &Args, e: &str) {
        self.stats[id].rejected += 1;
        if def.has(RUNS_QUEUE) {
            conn.multi = None;
            let ws = std::mem::take(&mut conn.watch_shards);
            self.unwatch_everywhere(conn.id, &ws);
            let why = e.strip_prefix("ERR ").unwrap_or(e);
            Reply::new(&mut conn.out, conn.resp3).error(&format!("EXECABORT Transaction discarded because of: {why}"));
            self.feed_monitors(conn, def, args);
            return;
        }
        Reply::new(&mut conn.out, conn.resp3).error(e);
        if let Some(m) = &mut conn.multi {
            m.aborted = true;
        }
    }

    /// Inside MULTI: refuse the command (and abort the transaction) or
    /// queue it.
    fn queue(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        let refusal = if def.has(NO_MULTI | NO_EXEC) {
            Some("ERR Command not allowed inside a transaction".to_string())
        } else {
            // As Redis: the queued command is refused, and EXEC then aborts.
            let aof_error = self.aof.as_ref().and_then(|w| w.last_write_error.as_deref());
            let read_only = self.read_only_replica();
            let mut cond = Queueing { shared: &self.shared, id: self.id, aof_error, read_only };
            let admitted = admission::check(Road::Queue, def.flags, &mut cond, &mut self.ks);
            // What eviction deleted goes to the AOF.
            self.log_pending();
            admitted.err().map(|r| r.message())
        };
        let Some(m) = &mut conn.multi else { return };
        match refusal {
            Some(e) => {
                m.aborted = true;
                self.stats[id].rejected += 1;
                Reply::new(&mut conn.out, conn.resp3).error(&e);
            }
            None => {
                m.cmds.push(OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>()));
                Reply::new(&mut conn.out, conn.resp3).simple("QUEUED");
            }
        }
    }

    /// A command that runs on the connection's shard (session, HELP and
    /// server commands) or over every shard (`EveryShard`).
    pub fn server_command(&mut self, conn: &mut Conn, id: usize, def: &'static CommandDef, args: &Args) {
        // Server and keyspace-wide commands pass the client road's gates
        // here, as keyspace commands do in `cmd::call` (a keyspace-wide
        // write over several shards is checked as a transaction instead).
        // Session commands and HELP replies touch nothing the gates guard.
        let as_txn = matches!(def.handler, Handler::EveryShard { .. }) && def.has(WRITE) && self.shared.nshards > 1;
        if !as_txn && matches!(def.handler, Handler::Server(_) | Handler::EveryShard { .. }) {
            let admitted = self.admit(Road::Client, def.flags);
            // What eviction deleted goes to the AOF.
            self.log_pending();
            if let Err(refusal) = admitted {
                self.stats[id].rejected += 1;
                Reply::new(&mut conn.out, conn.resp3).error(&refusal.message());
                return;
            }
        }
        let t0 = super::ticks::now();
        let before = conn.out.len();
        match def.handler {
            Handler::Session(_) | Handler::Help(_) => {
                let subscribed_resp2 = conn.in_pubsub() && !conn.resp3;
                let mut s = Session { db: conn.db, out: Reply::new(&mut conn.out, conn.resp3), subscribed_resp2 };
                cmd::run_session(def, &mut s, args);
                conn.db = s.db;
            }
            Handler::Server(f) => f(self, conn, args),
            Handler::EveryShard { plan, .. } => self.every_shard(conn, def, plan, args),
            Handler::Keyspace(_) | Handler::Container => {
                Reply::new(&mut conn.out, conn.resp3).error("ERR command not available in this context")
            }
        }
        if conn.wait.is_none() {
            let ticks = self.record_stat(id, t0, conn.out.get(before) == Some(&b'-'));
            if !def.has(SKIP_SLOWLOG | SECRET_ARGS) && self.note_if_slow(ticks, args) {
                self.slowlog.name_newest(&conn.addr, &conn.name);
            }
        } else {
            self.stats[id].calls += 1;
            self.total_commands += 1;
        }
    }

    /// A keyspace-wide command: its plan's fan-out, or, for a write with
    /// several shards, a transaction holding them all, so no client sees
    /// some shards flushed and others not.
    fn every_shard(&mut self, conn: &mut Conn, def: &CommandDef, plan: cmd::table::PlanFn, args: &Args) {
        let n = self.shared.nshards;
        if n > 1 && def.has(WRITE) {
            let cmds = vec![OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>())];
            self.start_txn(conn, cmds, (0..n).collect(), false);
            return;
        }
        match plan(args, &PlanCtx { nshards: n, db: conn.db, resp3: conn.resp3 }) {
            GlobalPlan::Fan(targets, req, op) => self.fan(conn, targets, req, op),
            GlobalPlan::Reply(bytes) => conn.out.extend_from_slice(&bytes),
        }
    }

    /// Put a request back so it runs again once the shard lock is released.
    fn unconsume_and_wait(&mut self, conn: &mut Conn, args: &Args, need: super::locks::Need) {
        // `handle` is only reached after rpos moved past this request.
        let len = args.buf_len();
        conn.rpos -= len;
        conn.wait = Wait::ShardLock;
        self.txn.defer(super::txn::Deferred::Conn(conn.conn_ref(self.id)), need);
    }

    /// A script whose declared keys all live here: run it on this shard's
    /// keyspace; if it reached for a key elsewhere, it was stopped and
    /// undone, and runs again as a transaction over every shard.
    fn run_script_here(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        let before = conn.out.len();
        self.exec_local(conn, id, def, args, Road::Client);
        if let Some(keys) = self.scripts.retry.take() {
            conn.out.truncate(before);
            let cmd = OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>());
            self.start_script_txn(conn, cmd, keys, 1);
        }
    }

    /// Run a keyspace command on this shard's keyspace.
    pub fn exec_local(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args, road: Road) {
        // A restricted user's script has its calls checked (`script::acl`).
        let checked = def.has(RUNS_SCRIPT) && !conn.acl_free;
        if checked {
            self.script_acl_begin(Some(conn.user.clone()));
        }
        self.ks.no_touch = conn.no_touch;
        let slow = self.call(&mut conn.out, (conn.resp3, conn.db), (id, def), args, road);
        self.ks.no_touch = false;
        if slow {
            self.slowlog.name_newest(&conn.addr, &conn.name);
        }
        if checked {
            self.script_acl_end(conn);
        }
    }

    /// Run a keyspace command here through `cmd::call` (the road's gates,
    /// the handler, this shard's stats and slowlog), appending its reply to
    /// `out`; true if it was slow enough for the SLOWLOG.
    pub fn call(&mut self, out: &mut Vec<u8>, (resp3, db): (bool, usize), row: Row, args: &Args, road: Road) -> bool {
        // A script past busy-reply-threshold answers this shard's clients.
        let lend = if row.1.has(RUNS_SCRIPT) { self.lend_busy_io() } else { None };
        let aof_error = self.aof.as_ref().and_then(|w| w.last_write_error.as_deref());
        let read_only = self.read_only_replica();
        if row.1.has(RUNS_SCRIPT) {
            self.scripts.aof_error = aof_error.map(str::to_string);
            self.scripts.retry = None;
            self.scripts.replica_read_only = read_only;
        }
        let mut cond = admission::Local { now: self.now, aof_error, read_only };
        let mut obs = shard_observer!(self, self.now);
        let mut ctx = Ctx {
            ks: &mut self.ks,
            db,
            now: self.now,
            out: Reply::new(out, resp3),
            max_bulk_len: self.limits.max_bulk_len,
            rng: &mut self.rng,
            facts: &self.shared.facts,
            scripts: Some(&mut self.scripts),
        };
        let _ = cmd::call::call(&mut ctx, road, &mut cond, &mut obs, row, args);
        // The table is the core's again (blocked clients are served below).
        drop(lend);
        let slow = obs.slow;
        self.note_eviction_cycle();
        if row.1.has(RUNS_SCRIPT) {
            self.take_script_stats();
        }
        // Effects (and evictions the gate made) go to the AOF.
        self.log_pending();
        if !self.ks.ready_keys.is_empty() {
            self.serve_ready();
        }
        slow
    }

    /// An eviction cycle the keyspace ran, to the latency monitor.
    #[inline]
    pub fn note_eviction_cycle(&mut self) {
        if let Some(ms) = self.ks.evict_cycle_ms.take() {
            self.latmon.note("eviction-cycle", ms, self.now);
        }
    }

    /// Count the commands scripts ran in this shard's commandstats.
    pub fn take_script_stats(&mut self) {
        for (id, ticks, outcome) in self.scripts.nested.drain(..) {
            let Some(st) = self.stats.get_mut(id) else { continue };
            match outcome {
                crate::script::Outcome::Refused => st.rejected += 1,
                o => {
                    st.calls += 1;
                    st.ticks += ticks;
                    if o == crate::script::Outcome::Failed {
                        st.failed += 1;
                    }
                }
            }
        }
    }

    /// A replica with replica-read-only: clients' writes are refused
    /// (the shard's own copy of the config: nothing shared is read).
    #[inline]
    pub fn read_only_replica(&self) -> bool {
        self.config.replica_read_only && !self.config.replicaof.is_empty()
    }

    /// This shard's admission gates for a command (or transaction) with
    /// `flags` arriving by `road` (see `cmd::admission`).
    #[inline]
    pub fn admit(&mut self, road: Road, flags: crate::cmd::flags::Flags) -> Result<(), Refusal> {
        let aof_error = self.aof.as_ref().and_then(|w| w.last_write_error.as_deref());
        let read_only = self.read_only_replica();
        admission::check(road, flags, &mut admission::Local { now: self.now, aof_error, read_only }, &mut self.ks)
    }

    /// Add a command that took `ticks` to the SLOWLOG if it was slow
    /// enough; true if it was.
    #[inline]
    pub fn note_if_slow(&mut self, ticks: u64, args: &Args) -> bool {
        note_if_slow(&mut self.slowlog, (self.slow_ticks, &self.shared.next_slowlog_id), self.now, ticks, args)
    }

    /// Count a call of command `id` that started at tick `t0`; returns the
    /// ticks it took.
    pub fn record_stat(&mut self, id: usize, t0: u64, failed: bool) -> u64 {
        let ticks = record_stat(&mut self.stats[id], &mut self.total_commands, t0, failed);
        note_latency(&mut self.latmon, id, ticks, self.now);
        ticks
    }

    /// Run forwarded requests (all for keys on this shard) and return the
    /// replies, RESP-encoded for the sender's protocol, with the end offset
    /// of each request's reply.
    pub fn run_batch(&mut self, db: usize, resp3: bool, mut cmds: Vec<u8>, road: Road) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::with_capacity(64);
        let mut ends = Vec::new();
        let mut ranges = std::mem::take(&mut self.ranges);
        let mut pos = 0;
        self.now = crate::util::now_ms();
        while pos < cmds.len() {
            match parse_request(&mut cmds[pos..], &self.limits, &mut ranges) {
                ParseOutcome::Done { consumed } => {
                    let args = Args::new(&cmds[pos..pos + consumed], &ranges);
                    if let Some((id, def)) = cmd::find(&args) {
                        self.call(&mut out, (resp3, db), (id, def), &args, road);
                    }
                    ends.push(out.len());
                    pos += consumed;
                }
                // We encoded these ourselves; anything else is a bug, but
                // must not take the shard down.
                _ => break,
            }
        }
        self.ranges = ranges;
        (out, ends)
    }
}

/// A pipeline squashed across shards, waiting for its batches' replies.
pub struct SquashWait {
    /// Per shard: the batch to send, then its replies and their ends.
    batches: Vec<Vec<u8>>,
    parts: Vec<Option<(Vec<u8>, Vec<usize>)>>,
    /// Replies of requests run here, and their ends.
    pub local: Vec<u8>,
    local_ends: Vec<usize>,
    /// The shard each request went to, in request order.
    order: Vec<u16>,
    here: usize,
    pending: usize,
}

impl SquashWait {
    pub fn new(nshards: usize, here: usize) -> Box<Self> {
        Box::new(SquashWait {
            batches: vec![Vec::new(); nshards],
            parts: (0..nshards).map(|_| None).collect(),
            local: Vec::new(),
            local_ends: Vec::new(),
            order: Vec::with_capacity(16),
            here,
            pending: 0,
        })
    }

    pub fn add_remote(&mut self, to: usize, args: &Args) {
        encode_command(&mut self.batches[to], &args.iter().collect::<Vec<_>>());
        self.order.push(to as u16);
    }

    /// A request ran here; its reply was appended to `local`.
    pub fn local_done(&mut self) {
        self.local_ends.push(self.local.len());
        self.order.push(self.here as u16);
    }

    /// The non-empty batches, to send; counts the replies to wait for.
    pub fn take_batches(&mut self) -> Vec<(usize, Vec<u8>)> {
        let v: Vec<(usize, Vec<u8>)> = self
            .batches
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i, std::mem::take(b)))
            .collect();
        self.pending = v.len();
        v
    }

    /// Store one shard's replies; true when all have arrived.
    pub fn part_arrived(&mut self, shard: usize, out: Vec<u8>, ends: Vec<usize>) -> bool {
        if let Some(p) = self.parts.get_mut(shard) {
            if p.is_none() {
                *p = Some((out, ends));
                self.pending -= 1;
            }
        }
        self.pending == 0
    }

    /// Append every reply to `out` in request order.
    pub fn assemble(self, out: &mut Vec<u8>) {
        let mut next = vec![0usize; self.parts.len()];
        let mut start = vec![0usize; self.parts.len()];
        for &src in &self.order {
            let s = src as usize;
            let (buf, ends): (&[u8], &[usize]) = if s == self.here {
                (&self.local, &self.local_ends)
            } else {
                match &self.parts[s] {
                    Some((b, e)) => (b, e),
                    None => continue,
                }
            };
            let Some(&end) = ends.get(next[s]) else { continue };
            out.extend_from_slice(&buf[start[s]..end]);
            start[s] = end;
            next[s] += 1;
        }
    }
}

/// A command's table row: its index and definition.
pub type Row<'a> = (usize, &'a CommandDef);

/// What a shard observes of every call: command stats, the latency
/// histogram and the slowlog.
pub(super) struct ShardObserver<'a> {
    pub stats: &'a mut [super::core::CmdStat],
    pub total: &'a mut u64,
    pub slowlog: &'a mut super::slowlog::SlowLog,
    pub slow_ticks: u64,
    pub slow_ids: &'a std::sync::atomic::AtomicU64,
    pub latmon: &'a mut super::latmon::LatencyMonitor,
    pub now: i64,
    /// The call was logged as slow.
    pub slow: bool,
}

/// A shard's `ShardObserver`, built in place so that the keyspace and the
/// RNG can be borrowed beside it for the command's context.
macro_rules! shard_observer {
    ($shard:expr, $now:expr) => {
        $crate::shard::dispatch::ShardObserver {
            stats: &mut $shard.stats,
            total: &mut $shard.total_commands,
            slowlog: &mut $shard.slowlog,
            slow_ticks: $shard.slow_ticks,
            slow_ids: &$shard.shared.next_slowlog_id,
            latmon: &mut $shard.latmon,
            now: $now,
            slow: false,
        }
    };
}
pub(super) use shard_observer;

impl cmd::call::Observer for ShardObserver<'_> {
    #[inline]
    fn start(&mut self) -> u64 {
        super::ticks::now()
    }

    fn refused(&mut self, id: usize) {
        // As Redis counts a refusal: rejected, not called.
        self.stats[id].rejected += 1;
    }

    #[inline]
    fn finished(&mut self, id: usize, t0: u64, failed: bool, args: &Args) {
        let ticks = record_stat(&mut self.stats[id], self.total, t0, failed);
        note_latency(self.latmon, id, ticks, self.now);
        self.slow = note_if_slow(self.slowlog, (self.slow_ticks, self.slow_ids), self.now, ticks, args);
    }
}

/// Count a call that started at tick `t0`; returns the ticks it took.
#[inline]
fn record_stat(st: &mut super::core::CmdStat, total: &mut u64, t0: u64, failed: bool) -> u64 {
    // Ticks, not microseconds: most commands take well under one.
    let ticks = super::ticks::now().wrapping_sub(t0);
    st.calls += 1;
    st.ticks += ticks;
    if failed {
        st.failed += 1;
    }
    let h = st.hist.get_or_insert_with(|| {
        // Up to an hour at a 10 GHz tick.
        hdrhistogram::Histogram::new_with_bounds(1, 1 << 56, 2).expect("static histogram bounds")
    });
    let _ = h.record(ticks.max(1));
    *total += 1;
    ticks
}

/// A command that took `ticks` as a latency monitor event: `fast-command`
/// for the commands flagged fast, `command` for the others (as Redis).
#[inline]
fn note_latency(latmon: &mut super::latmon::LatencyMonitor, id: usize, ticks: u64, now: i64) {
    if latmon.threshold == 0 {
        return;
    }
    let ms = super::ticks::to_ns(ticks) / 1_000_000;
    let fast = cmd::table::by_id(id).has(crate::cmd::flags::FAST);
    latmon.note(if fast { "fast-command" } else { "command" }, ms, now);
}

/// Add a command that took `ticks` to the SLOWLOG if it reached the
/// threshold (`slow`: threshold in ticks, and the server-wide entry ids).
#[inline]
fn note_if_slow(
    slowlog: &mut super::slowlog::SlowLog,
    (threshold, ids): (u64, &std::sync::atomic::AtomicU64),
    now: i64,
    ticks: u64,
    args: &Args,
) -> bool {
    if ticks < threshold {
        return false;
    }
    let id = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    slowlog.add(id, now / 1000, super::ticks::to_ns(ticks) / 1000, args);
    true
}

/// The conditions a command being queued in MULTI is checked against:
/// memory as Redis's MULTI sees it, and this shard's AOF (an AOF
/// failing elsewhere refuses the EXEC instead, when its participants
/// report).
struct Queueing<'a> {
    shared: &'a super::Shared,
    id: usize,
    aof_error: Option<&'a str>,
    read_only: bool,
}

impl admission::Conditions for Queueing<'_> {
    /// This shard is over its share of maxmemory and eviction cannot bring
    /// it under, or under noeviction another shard was over at the end of
    /// its last turn (Redis has one limit for all; a shard that evicts
    /// frees itself on its next write).
    fn out_of_memory(&mut self, ks: &mut crate::keyspace::Keyspace) -> bool {
        if ks.over_limit() && !ks.free_memory(crate::util::now_ms()) {
            return true;
        }
        let others_full = || {
            let mut over = self.shared.over_limit.iter().enumerate();
            over.any(|(s, o)| s != self.id && o.load(std::sync::atomic::Ordering::Relaxed))
        };
        ks.mem_limit().policy == crate::keyspace::evict::Policy::NoEviction && others_full()
    }

    fn aof_error(&self) -> Option<&str> {
        self.aof_error
    }

    fn read_only(&self) -> bool {
        self.read_only
    }
}

enum Step {
    Forward(usize, &'static CommandDef),
    /// A keyspace command for this shard.
    Here(usize, &'static CommandDef),
    Run,
}

/// Put requests queued for replay (`Conn::replay`) where the next request
/// starts, so they run before anything the client sent after.
fn splice_replay(conn: &mut Conn, rbuf: &mut Vec<u8>) {
    if !conn.replay.is_empty() {
        let replay = std::mem::take(&mut conn.replay);
        rbuf.splice(conn.rpos..conn.rpos, replay);
    }
}

//! What a connection does with each parsed request: check auth, arity and
//! pub/sub mode, queue it inside MULTI, then route it by its keys. A request
//! whose keys all live on this shard runs here at once; one whose keys live
//! on one other shard is forwarded (consecutive ones to the same shard go
//! together in one batch); one whose keys span shards becomes a
//! cross-shard transaction (`txn`).

use super::event_loop::{Conn, Shard, Wait};
use super::{ConnRef, Msg};
use crate::cmd::{self, flags::*, Args, CommandDef, Ctx, OwnedArgs};
use crate::protocol::parse::{parse_request, Limits, ParseOutcome};
use crate::protocol::reply::{encode_command, Reply};

/// Commands queued by MULTI.
pub struct MultiState {
    pub cmds: Vec<OwnedArgs>,
    /// A queued command was rejected: EXEC must answer EXECABORT.
    pub aborted: bool,
}

/// Where a request's keys live.
pub enum Route {
    /// No keys (or all here): run on this shard.
    Here,
    One(usize),
    Many(Vec<usize>),
}

/// Shards owning the keys of a command, in shard order, deduplicated.
pub fn key_shards(def: &CommandDef, args: &Args, nshards: usize) -> Vec<usize> {
    let mut v: Vec<usize> = cmd::key_positions(def, args.len())
        .map(|i| crate::util::key_shard(args.get(i), nshards))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Shard {
    pub fn route(&self, def: &CommandDef, args: &Args) -> Route {
        let n = self.shared.nshards;
        if n == 1 || def.first_key <= 0 {
            return Route::Here;
        }
        let mut it = cmd::key_positions(def, args.len());
        let Some(first) = it.next() else { return Route::Here };
        let s0 = crate::util::key_shard(args.get(first), n);
        for i in it {
            if crate::util::key_shard(args.get(i), n) != s0 {
                return Route::Many(key_shards(def, args, n));
            }
        }
        if s0 == self.id {
            Route::Here
        } else {
            Route::One(s0)
        }
    }

    /// Parse and run requests from the connection's buffer until it has to
    /// wait (for another shard, a lock) or the buffer runs dry.
    pub fn run_requests(&mut self, conn: &mut Conn) {
        let mut ranges = std::mem::take(&mut self.ranges);
        let mut rbuf = std::mem::take(&mut conn.rbuf);
        // A batch of requests for one other shard, built while the requests
        // keep going there; sent when something else comes along.
        let mut batch: Option<(usize, Vec<u8>)> = None;
        self.now = crate::util::now_ms();
        self.prefetch_pipeline(conn, &mut rbuf, &mut ranges);
        while conn.wait.is_none() && !conn.closing && !conn.close_after_flush {
            let start = conn.rpos;
            if start >= rbuf.len() {
                break;
            }
            let limits = Limits { unauthenticated: !conn.authed, ..self.limits };
            match parse_request(&mut rbuf[start..], &limits, &mut ranges) {
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
                    // A request bound for a batch in progress joins it;
                    // anything else first sends the batch and waits.
                    match self.classify(conn, &args) {
                        Step::Forward(to, def) => {
                            if let Some((t, _)) = &batch {
                                if *t != to {
                                    break;
                                }
                            }
                            let b = batch.get_or_insert_with(|| (to, Vec::with_capacity(256)));
                            encode_command(&mut b.1, &args.iter().collect::<Vec<_>>());
                            self.note_forwarded(conn, def);
                            conn.rpos += consumed;
                        }
                        Step::Run => {
                            if batch.is_some() {
                                break;
                            }
                            conn.rpos += consumed;
                            self.handle(conn, &args);
                        }
                    }
                }
            }
        }
        if let Some((to, cmds)) = batch {
            conn.wait = Wait::Batch;
            let from = conn.conn_ref(self.id);
            self.send(to, Msg::Batch { from, db: conn.db as u8, resp3: conn.resp3, cmds });
        }
        if conn.rpos == rbuf.len() {
            rbuf.clear();
            conn.rpos = 0;
        }
        conn.rbuf = rbuf;
        self.ranges = ranges;
    }

    /// When several requests are buffered, touch their keys' hash entries
    /// first so the cache misses overlap (a pipeline of GETs is otherwise
    /// bound by one dependent miss after another). Only multibulk requests:
    /// parsing them twice is harmless, while inline parsing unescapes in place.
    fn prefetch_pipeline(&self, conn: &Conn, rbuf: &mut [u8], ranges: &mut Vec<std::ops::Range<usize>>) {
        let mut pos = conn.rpos;
        let limits = Limits { unauthenticated: !conn.authed, ..self.limits };
        let mut n = 0;
        let nshards = self.shared.nshards;
        let dict = &self.ks.dbs[conn.db].dict;
        while n < 64 && pos < rbuf.len() && rbuf[pos] == b'*' {
            match parse_request(&mut rbuf[pos..], &limits, ranges) {
                ParseOutcome::Done { consumed } => {
                    if ranges.len() >= 2 {
                        let key = &rbuf[pos + ranges[1].start..pos + ranges[1].end];
                        if nshards == 1 || crate::util::key_shard(key, nshards) == self.id {
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

    /// Decide whether a request can join a forwarded batch.
    fn classify(&self, conn: &Conn, args: &Args) -> Step {
        if conn.multi.is_some() || !conn.authed || conn.in_pubsub() {
            return Step::Run;
        }
        let Some((_, def)) = cmd::lookup(args.get(0)) else { return Step::Run };
        if def.has(CONN | GLOBAL) || !cmd::arity_ok(def, args.len()) {
            return Step::Run;
        }
        match self.route(def, args) {
            Route::One(s) => Step::Forward(s, def),
            _ => Step::Run,
        }
    }

    /// Run one request (not a forwardable one) for a connection.
    pub fn handle(&mut self, conn: &mut Conn, args: &Args) {
        conn.last_cmd_ms = self.now;
        let Some((id, def)) = cmd::lookup(args.get(0)) else {
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            cmd::unknown_command_error(&mut r, args);
            if let Some(m) = &mut conn.multi {
                m.aborted = true;
            }
            return;
        };
        conn.last_cmd = def.name;
        if !cmd::arity_ok(def, args.len()) {
            self.stats[id].rejected += 1;
            cmd::arity_error(&mut Reply::new(&mut conn.out, conn.resp3), def.name);
            if let Some(m) = &mut conn.multi {
                m.aborted = true;
            }
            return;
        }
        if !conn.authed && !def.has(NO_AUTH) {
            self.stats[id].rejected += 1;
            Reply::new(&mut conn.out, conn.resp3).error("NOAUTH Authentication required.");
            if let Some(m) = &mut conn.multi {
                m.aborted = true;
            }
            return;
        }
        if conn.in_pubsub() && !conn.resp3 && !def.has(PUBSUB) {
            self.stats[id].rejected += 1;
            Reply::new(&mut conn.out, false).error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                def.name
            ));
            return;
        }
        if let Some(m) = &mut conn.multi {
            if !def.has(TX_CONTROL) {
                if def.name == "watch" {
                    // Redis answers this one itself and keeps the transaction.
                    Reply::new(&mut conn.out, conn.resp3).error("ERR WATCH inside MULTI is not allowed");
                    return;
                }
                if let Some(e) = queue_time_subcommand_error(def, args) {
                    self.stats[id].rejected += 1;
                    m.aborted = true;
                    Reply::new(&mut conn.out, conn.resp3).error(&e);
                    return;
                }
                if def.has(NO_MULTI) {
                    self.stats[id].rejected += 1;
                    m.aborted = true;
                    Reply::new(&mut conn.out, conn.resp3).error("ERR Command not allowed inside a transaction");
                    return;
                }
                m.cmds.push(OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>()));
                Reply::new(&mut conn.out, conn.resp3).simple("QUEUED");
                return;
            }
        }
        if def.has(CONN) || def.has(GLOBAL) {
            self.server_command(conn, id, def, args);
            return;
        }
        match self.route(def, args) {
            Route::Here => {
                if self.txn.locked() {
                    // The shard is held by a transaction: wait, and re-run
                    // this request when it ends.
                    self.unconsume_and_wait(conn, args);
                    return;
                }
                self.exec_local(conn, id, def, args);
            }
            Route::One(s) => {
                // Not batched (e.g. first request after MULTI state ended).
                let mut cmds = Vec::new();
                encode_command(&mut cmds, &args.iter().collect::<Vec<_>>());
                conn.wait = Wait::Batch;
                let from = conn.conn_ref(self.id);
                self.send(s, Msg::Batch { from, db: conn.db as u8, resp3: conn.resp3, cmds });
            }
            Route::Many(shards) => {
                let cmds = vec![OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>())];
                self.start_txn(conn, cmds, shards, false);
            }
        }
    }

    /// Put a request back so it runs again once the shard lock is released.
    fn unconsume_and_wait(&mut self, conn: &mut Conn, args: &Args) {
        // `handle` is only reached after rpos moved past this request.
        let len = args_wire_len(args);
        conn.rpos -= len;
        conn.wait = Wait::ShardLock;
        self.txn.defer(super::txn::Deferred::Conn(conn.conn_ref(self.id)));
    }

    /// Run a keyspace command on this shard's keyspace.
    pub fn exec_local(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        let t0 = std::time::Instant::now();
        let before = conn.out.len();
        {
            let mut ctx = Ctx {
                ks: &mut self.ks,
                db: conn.db,
                now: self.now,
                out: Reply::new(&mut conn.out, conn.resp3),
                max_bulk_len: self.limits.max_bulk_len,
                rng: &mut self.rng,
            };
            cmd::exec(def, &mut ctx, args);
        }
        let failed = conn.out.get(before) == Some(&b'-');
        self.record_stat(id, t0, failed);
    }

    pub fn record_stat(&mut self, id: usize, t0: std::time::Instant, failed: bool) {
        // Nanoseconds: most commands take well under a microsecond.
        let ns = t0.elapsed().as_nanos() as u64;
        let st = &mut self.stats[id];
        st.calls += 1;
        st.nsec += ns;
        if failed {
            st.failed += 1;
        }
        let h = st.hist.get_or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("static histogram bounds")
        });
        let _ = h.record(ns.max(1));
        self.total_commands += 1;
    }

    /// Run forwarded requests (all for keys on this shard) and return the
    /// replies, RESP-encoded for the sender's protocol.
    pub fn run_batch(&mut self, db: usize, resp3: bool, mut cmds: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut ranges = std::mem::take(&mut self.ranges);
        let mut pos = 0;
        self.now = crate::util::now_ms();
        while pos < cmds.len() {
            match parse_request(&mut cmds[pos..], &self.limits, &mut ranges) {
                ParseOutcome::Done { consumed } => {
                    let args = Args::new(&cmds[pos..pos + consumed], &ranges);
                    if let Some((id, def)) = cmd::lookup(args.get(0)) {
                        let t0 = std::time::Instant::now();
                        let before = out.len();
                        let mut ctx = Ctx {
                            ks: &mut self.ks,
                            db,
                            now: self.now,
                            out: Reply::new(&mut out, resp3),
                            max_bulk_len: self.limits.max_bulk_len,
                            rng: &mut self.rng,
                        };
                        cmd::exec(def, &mut ctx, &args);
                        let failed = out.get(before) == Some(&b'-');
                        self.record_stat(id, t0, failed);
                    }
                    pos += consumed;
                }
                // We encoded these ourselves; anything else is a bug, but
                // must not take the shard down.
                _ => break,
            }
        }
        self.ranges = ranges;
        out
    }
}

/// Redis 7 knows container commands' subcommands at queue time, so an
/// unknown one is rejected (and aborts MULTI) before EXEC.
fn queue_time_subcommand_error(def: &CommandDef, args: &Args) -> Option<String> {
    let known: &[&str] = match def.name {
        "object" => &["encoding", "freq", "idletime", "refcount", "help"],
        "config" => &["get", "set", "resetstat", "rewrite", "help"],
        "client" => &["id", "getname", "setname", "info", "list", "kill", "help", "setinfo", "no-evict", "no-touch", "reply"],
        "pubsub" => &["channels", "numsub", "numpat", "help"],
        "command" => &["count", "info", "docs", "getkeys", "help"],
        _ => return None,
    };
    if args.len() < 2 {
        return None;
    }
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    if known.contains(&sub.as_str()) {
        return None;
    }
    Some(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(args.get(1)),
        def.name.to_ascii_uppercase()
    ))
}

enum Step {
    Forward(usize, &'static CommandDef),
    Run,
}

/// Length of a request's wire form when it was a multibulk or inline line.
/// Only used to step back over a request just consumed: we recorded the
/// consumed length in the buffer slice given to `Args`.
fn args_wire_len(args: &Args) -> usize {
    args.buf_len()
}

impl<'a> Args<'a> {
    /// Length of the buffer slice the arguments point into.
    pub fn buf_len(&self) -> usize {
        self.raw_buf().len()
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Msg>();
    is_send::<ConnRef>();
}

//! The shard core: one shard's keyspace, sessions, transactions,
//! blocking, pub/sub, AOF writer state and statistics, driven by the
//! reactor (`crate::net`) and performing no I/O itself.
//!
//! The reactor hands it what happened (`accept_client`, bytes appended to
//! a connection's `rbuf` then `on_input`, `on_eof`, `on_sent`, AOF
//! completions, the cron tick, messages from other shards) and it answers
//! by filling connections' output buffers and by listing, in `io`, what
//! only the reactor can do: arm or pause a receive, send, close, write or
//! sync the AOF, ring another shard's doorbell. Because nothing here
//! touches a socket or the ring, several cores can run in one thread under
//! a seeded scheduler (`tests/simulation.rs`).

use super::{ConnRef, FanResp, Msg, Shared};
use crate::cmd::Rng;
use crate::config::Config;
use crate::keyspace::Keyspace;
use crate::protocol::parse::Limits;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Stop running (and reading) a client's requests while its unsent replies
/// exceed this (backpressure): a client that pipelines GETs of a big value
/// without reading would otherwise grow the server without bound (normal
/// clients have no output limit by default, as in Redis).
pub const OUTPUT_PAUSE: usize = 64 * 1024 * 1024;

/// A write or sync of the AOF for the reactor to submit (`persist::writer`
/// says what; the reactor hands it to the ring and reports back through
/// `Shard::on_aof_cqe`).
pub enum AofIo {
    Write(crate::persist::writer::WriteOp),
    /// fdatasync covering records up to lsn `upto`.
    Fsync {
        fd: RawFd,
        upto: u64,
    },
    /// fsync after a segment rotation (the old segment, the directory).
    RotationSync {
        fd: RawFd,
    },
    /// Zero-fill ahead of the data, then fdatasync it (linked).
    Extend {
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        offset: u64,
    },
}

/// What the core asks of the reactor this turn.
#[derive(Default)]
pub struct Io {
    /// Connections to read from (armed unless already).
    pub recv: Vec<u32>,
    /// Connections whose multishot receive must stop (output over the pause).
    pub pause: Vec<u32>,
    /// Connections whose `sending` buffer is ready to go.
    pub send: Vec<u32>,
    /// Connections closed: shut their sockets and `release` them.
    pub close: Vec<u32>,
    pub aof: Vec<AofIo>,
    /// Shards that need a doorbell (messages were posted to them).
    pub doorbells: Vec<bool>,
}

/// What a connection is waiting for before it may run its next request.
pub enum Wait {
    None,
    /// Replies of a pipeline squashed across shards.
    Squash(Box<super::dispatch::SquashWait>),
    /// Replies of a fan-out to several shards, merged by `finish`.
    Fan(Box<super::fanout::FanState>),
    /// A cross-shard transaction it started.
    Txn(u64),
    /// This shard is locked by a transaction; resume when it unlocks.
    ShardLock,
    /// SAVE: the rewrite generation it started after.
    Save(u64),
    /// A blocking command waits for data (see `blocking`).
    Blocked(Box<super::blocking::BlockWait>),
    /// WAIT / WAITAOF: acknowledgements from replicas (see `replwait`).
    Replicas(Box<super::replwait::ReplWait>),
    /// CLIENT PAUSE holds its next request (see `pause`).
    Paused,
    /// MIGRATE's network step runs on a helper thread (see `netio`).
    Io,
}

impl Wait {
    pub fn is_none(&self) -> bool {
        matches!(self, Wait::None)
    }
}

/// What became of a connection waiting for a server-wide event (SAVE,
/// WAIT): `Shard::settle_waiters` asks each one.
pub enum Settle {
    /// Its reply is written: it runs again.
    Answered,
    /// Still waiting: it stays on the list.
    Waiting,
    /// It waits for something else now: off the list.
    Gone,
}

pub struct Conn {
    /// Its socket's descriptor, for CLIENT LIST (the reactor owns it).
    pub fd: RawFd,
    pub idx: u32,
    pub gen: u32,
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    /// Received bytes; `rpos` is where the next request starts.
    pub rbuf: Vec<u8>,
    pub rpos: usize,
    /// Requests to run next, before the rest of `rbuf` (an EXEC of server
    /// commands replays its queue through the normal path: `txn`).
    pub replay: Vec<u8>,
    /// Bytes the parser needs before trying again (0 = unknown).
    pub need: usize,
    /// Where parsing of the partly received request at `rpos` stopped.
    pub parse: crate::protocol::parse::Resume,
    /// Replies not yet handed to the kernel.
    pub out: Vec<u8>,
    /// Replies handed to the reactor to send; `sent` bytes done. Not empty
    /// exactly while a send is in flight.
    pub sending: Vec<u8>,
    pub sent: usize,
    /// Close once output is flushed (QUIT, protocol error, CLIENT KILL).
    pub close_after_flush: bool,
    /// The peer shut its side (EOF): read no more, finish what it sent
    /// before (as Redis answers a pipeline followed by a half-close), then
    /// close.
    pub read_eof: bool,
    /// The peer is gone or we are tearing down: no more requests.
    pub closing: bool,
    pub db: usize,
    pub resp3: bool,
    pub authed: bool,
    /// The ACL user it runs as, and whether that user may do everything
    /// (then the permission check is this flag).
    pub user: Arc<crate::acl::user::User>,
    pub acl_free: bool,
    pub name: Vec<u8>,
    pub wait: Wait,
    pub multi: Option<super::dispatch::MultiState>,
    /// Shards holding this client's WATCHes (bitset by shard index list).
    pub watch_shards: Vec<usize>,
    pub subs: std::collections::HashSet<Vec<u8>>,
    pub psubs: std::collections::HashSet<Vec<u8>>,
    /// Shard channels (SSUBSCRIBE).
    pub ssubs: std::collections::HashSet<Vec<u8>>,
    pub created_ms: i64,
    pub last_cmd_ms: i64,
    pub last_cmd: &'static str,
    pub in_dirty_list: bool,
    /// AOF lsn its pending output may reveal; the output waits until that
    /// lsn is released (`Writer::release_lsn`; `out_held` while it waits).
    pub out_gate: u64,
    pub out_held: bool,
    /// It ran a command that may reveal the keyspace (anything but the
    /// few in `dispatch::REVEALS_NOTHING`); until then its output is not
    /// held for the AOF or `repl-sync-ack`. A monitor's PING/INFO/REPLICAOF
    /// connection must get answers from a master holding writes that no
    /// replica will ever acknowledge (it was cut off and its replicas
    /// follow a new master), or it is never seen again, nor demoted.
    pub reveals: bool,
    /// When its output went over the soft output-buffer limit (0: under).
    pub obuf_soft_since: i64,
    /// CLIENT REPLY: whether replies are sent.
    pub reply: ReplyMode,
    /// While replies are muted, `out` is cut back to here (`settle_reply`).
    pub mute_from: usize,
    /// In MONITOR mode: every shard sends it the commands it sees.
    pub monitor: bool,
    /// CLIENT NO-EVICT on (shown in CLIENT LIST; no client is evicted).
    pub no_evict: bool,
    /// CLIENT NO-TOUCH on: its commands leave keys' access clocks alone.
    pub no_touch: bool,
}

/// CLIENT REPLY ON | OFF | SKIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    /// Nothing is sent (replies and pushes alike, as Redis).
    Off,
    /// The next command's reply is not sent.
    SkipNext,
    /// The command being run now is the skipped one.
    Skipping,
}

impl Conn {
    /// A new client's connection, as `user`'s (as Redis: `default`, logged
    /// in if it needs no password).
    pub fn new(
        fd: RawFd,
        (idx, gen, id): (u32, u32, u64),
        addr: String,
        laddr: String,
        user: Arc<crate::acl::user::User>,
        now: i64,
    ) -> Box<Conn> {
        let authed = user.nopass && user.enabled;
        let acl_free = user.unrestricted();
        Box::new(Conn {
            fd,
            idx,
            gen,
            id,
            addr,
            laddr,
            rbuf: Vec::new(),
            replay: Vec::new(),
            rpos: 0,
            need: 0,
            parse: Default::default(),
            out: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            close_after_flush: false,
            read_eof: false,
            closing: false,
            db: 0,
            resp3: false,
            authed,
            user,
            acl_free,
            name: Vec::new(),
            wait: Wait::None,
            multi: None,
            watch_shards: Vec::new(),
            subs: Default::default(),
            psubs: Default::default(),
            ssubs: Default::default(),
            created_ms: now,
            last_cmd_ms: now,
            last_cmd: "NULL",
            in_dirty_list: false,
            out_gate: 0,
            out_held: false,
            reveals: false,
            obuf_soft_since: 0,
            reply: ReplyMode::On,
            mute_from: 0,
            monitor: false,
            no_evict: false,
            no_touch: false,
        })
    }

    pub fn conn_ref(&self, shard: usize) -> ConnRef {
        ConnRef { shard, idx: self.idx, gen: self.gen }
    }

    /// It may be read from: open, not finishing, and not paused for
    /// unsent output.
    #[inline]
    pub fn wants_input(&self) -> bool {
        !self.closing && !self.close_after_flush && !self.read_eof && self.output_bytes() < OUTPUT_PAUSE
    }

    /// Drop what a muted client was given since `mute_from`: everything
    /// under CLIENT REPLY OFF; the skipped command's reply once it is
    /// complete (nothing waits), after which replies are on again.
    #[inline]
    pub fn settle_reply(&mut self) {
        match self.reply {
            ReplyMode::On | ReplyMode::SkipNext => {}
            ReplyMode::Off => self.out.truncate(self.mute_from),
            ReplyMode::Skipping if self.wait.is_none() => {
                self.out.truncate(self.mute_from);
                self.reply = ReplyMode::On;
            }
            ReplyMode::Skipping => {}
        }
    }

    pub fn in_pubsub(&self) -> bool {
        !self.subs.is_empty() || !self.psubs.is_empty() || !self.ssubs.is_empty()
    }

    /// Reply bytes not yet sent: queued, and handed to the kernel but not
    /// yet taken by it (O(1): what the output limits and the pause count).
    #[inline]
    pub fn output_bytes(&self) -> usize {
        self.out.len() + self.sending.len() - self.sent
    }

    /// Memory of its buffers and itself (CLIENT LIST tot-mem).
    pub fn mem_bytes(&self) -> usize {
        self.rbuf.capacity() + self.out.capacity() + self.sending.capacity() + std::mem::size_of::<Conn>()
    }

    pub fn obuf_class(&self) -> super::obuf::Class {
        if self.in_pubsub() {
            super::obuf::Class::Pubsub
        } else {
            super::obuf::Class::Normal
        }
    }
}

/// Per-command counters for INFO commandstats / latencystats.
pub struct CmdStat {
    pub calls: u64,
    /// Time in `ticks` (converted when INFO reports it).
    pub ticks: u64,
    pub failed: u64,
    pub rejected: u64,
    pub hist: Option<hdrhistogram::Histogram<u64>>,
}

pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub ks: Keyspace,
    pub conns: Vec<Option<Box<Conn>>>,
    free_slots: Vec<u32>,
    next_gen: u32,
    pub rng: Rng,
    pub limits: Limits,
    pub config: Config,
    /// Reused argument ranges of the request being run.
    pub ranges: Vec<std::ops::Range<usize>>,
    /// Connections with new output to flush at the end of the turn.
    dirty: Vec<u32>,
    /// Connections to run again (a wait ended) before the turn ends.
    pub runnable: VecDeque<u32>,
    /// What the reactor is to do at the end of the turn.
    pub io: Io,
    /// Messages this shard sends to itself.
    pub self_msgs: VecDeque<Msg>,
    pub txn: super::txn::TxnState,
    pub pubsub: super::pubsub::PubSub,
    /// Every MONITOR client of the server, on any shard (`monitor`).
    pub monitors: Vec<ConnRef>,
    pub stats: Vec<CmdStat>,
    pub total_commands: u64,
    pub slowlog: super::slowlog::SlowLog,
    /// LATENCY's events on this shard (`latency-monitor-threshold`).
    pub latmon: super::latmon::LatencyMonitor,
    /// `slowlog-log-slower-than` in clock ticks (u64::MAX: log nothing).
    pub slow_ticks: u64,
    pub total_connections: u64,
    pub net_in: u64,
    pub net_out: u64,
    pub rejected_conns: u64,
    /// Loop turns and completions reaped (INFO stats: completions per turn).
    pub turns: u64,
    pub completions: u64,
    /// Cached clock for this turn (ms).
    pub now: i64,
    pub stop: bool,
    /// Stopping: draining with the other shards (see `shutdown`).
    pub drain: super::shutdown::Drain,
    /// The reactor's ring set-up, for INFO.
    pub ring_flags: &'static str,
    /// client-output-buffer-limit, clients it closed, and the largest
    /// output and query buffers seen lately (INFO).
    pub obuf_limits: super::obuf::Limits,
    pub obuf_disconnections: u64,
    pub recent_max_out: super::obuf::RecentMax,
    pub recent_max_in: super::obuf::RecentMax,
    /// This shard's AOF writer (None with `appendonly no`).
    pub aof: Option<crate::persist::writer::Writer>,
    /// >0 while a MULTI/EXEC collects its effects into one record.
    pub aof_group: u32,
    /// CONFIG SET appendonly no is waiting for a write in flight.
    pub aof_closing: bool,
    /// Messages and connections whose output waits for durability.
    pub held_msgs: VecDeque<(u64, usize, Msg)>,
    pub held_conns: Vec<u32>,
    pub watchdog: super::watchdog::Watchdog,
    /// Coordinating a rewrite: each shard's reported lsn.
    pub rewrite_lsns: Option<Vec<Option<u64>>>,
    /// Connections waiting in SAVE.
    pub save_waiters: Vec<ConnRef>,
    /// Connections waiting in WAIT / WAITAOF.
    pub repl_waiters: Vec<ConnRef>,
    /// Replica: durable fences its link threads wait on (lsn, counter).
    pub repl_fences: Vec<(u64, Arc<std::sync::atomic::AtomicUsize>)>,
    /// Blocked clients: those waiting on this shard's keys, and the
    /// deadlines of this shard's own blocked connections.
    pub blocked: super::blocking::Registry,
    /// Connections a CLIENT PAUSE holds (see `pause`).
    pub paused: Vec<ConnRef>,
    /// This shard's copy of the ACL user table (see `crate::acl`).
    pub acl: Arc<crate::acl::Users>,
    /// Lua scripting: the interpreter is created on the first script.
    pub scripts: crate::script::Engine,
}

impl Shard {
    /// Shard `id`'s core over its loaded keyspace and AOF writer.
    /// `ring_flags` says how the reactor set its ring up (INFO).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        config: &Config,
        ks: Keyspace,
        aof: Option<crate::persist::writer::Writer>,
        ring_flags: &'static str,
    ) -> Result<Shard, String> {
        let n = shared.nshards;
        let acl = shared.acl.snapshot();
        let mut scripts = crate::script::Engine::new(shared.scripts.clone(), id, shared.slots.clone());
        scripts.busy = Some(shared.busy.clone());
        let mut ks = ks;
        ks.lazy = config.lazy_free();
        Ok(Shard {
            id,
            ks,
            conns: Vec::new(),
            free_slots: Vec::new(),
            next_gen: 1,
            rng: Rng::new(crate::util::now_us() as u64 ^ ((id as u64 + 1) << 40)),
            limits: Limits { max_bulk_len: config.proto_max_bulk_len, unauthenticated: false },
            config: config.clone(),
            ranges: Vec::with_capacity(16),
            dirty: Vec::new(),
            runnable: VecDeque::new(),
            io: Io { doorbells: vec![false; n], ..Io::default() },
            self_msgs: VecDeque::new(),
            txn: Default::default(),
            pubsub: Default::default(),
            monitors: Vec::new(),
            stats: (0..crate::cmd::table::count())
                .map(|_| CmdStat { calls: 0, ticks: 0, failed: 0, rejected: 0, hist: None })
                .collect(),
            total_commands: 0,
            slowlog: super::slowlog::SlowLog::new(config.slowlog_max_len as usize),
            latmon: super::latmon::LatencyMonitor { threshold: config.latency_monitor_threshold, ..Default::default() },
            slow_ticks: super::slowlog::threshold_ticks(config.slowlog_log_slower_than),
            total_connections: 0,
            net_in: 0,
            net_out: 0,
            rejected_conns: 0,
            turns: 0,
            completions: 0,
            now: crate::util::now_ms(),
            stop: false,
            drain: Default::default(),
            obuf_limits: config.output_limits()?,
            obuf_disconnections: 0,
            recent_max_out: Default::default(),
            recent_max_in: Default::default(),
            ring_flags,
            shared,
            aof,
            aof_group: 0,
            aof_closing: false,
            held_msgs: VecDeque::new(),
            held_conns: Vec::new(),
            watchdog: Default::default(),
            rewrite_lsns: None,
            save_waiters: Vec::new(),
            repl_waiters: Vec::new(),
            repl_fences: Vec::new(),
            blocked: Default::default(),
            paused: Vec::new(),
            acl,
            scripts,
        })
    }

    /// One turn's work after the reactor handed over its completions:
    /// blocked clients past their deadline, messages from other shards,
    /// connections whose wait ended; then what the reactor is to send.
    pub fn run_turn(&mut self) {
        self.expire_blocks();
        self.drain_messages();
        self.settle();
    }

    /// The end of a turn: messages to itself, connections whose wait
    /// ended, then what the reactor is to send.
    pub fn settle(&mut self) {
        while let Some(m) = self.self_msgs.pop_front() {
            self.on_message(m);
        }
        self.run_runnable();
        // What this turn's commands (and the cron's expiries) published.
        self.publish_notifications();
        let over = self.ks.over_limit();
        if over != self.shared.over_limit[self.id].load(Ordering::Relaxed) {
            self.shared.over_limit[self.id].store(over, Ordering::Relaxed);
        }
        self.flush();
    }

    /// Handle the oldest message from shard `from`, if any: one delivery
    /// at a time, in whatever order a scheduler picks among senders (each
    /// sender's messages stay in order, as in the queues). A simulation
    /// drives cores this way; the reactor drains whole queues.
    pub fn deliver_one(&mut self, from: usize) -> bool {
        let Some(m) = self.shared.queues[self.id][from].pop() else { return false };
        self.shared.inflight.fetch_sub(1, Ordering::SeqCst);
        self.on_message(m);
        true
    }

    /// A client connected from `addr` to `laddr` on socket `fd`: take it
    /// (its slot and generation) or say why not (maxclients, protected
    /// mode), as the error line the reactor sends before closing.
    pub fn accept_client(&mut self, fd: RawFd, addr: String, laddr: String) -> Result<(u32, u32), &'static str> {
        let maxclients = self.config.maxclients as usize;
        let n = self.shared.connected_clients.fetch_add(1, Ordering::Relaxed);
        if n >= maxclients {
            self.shared.connected_clients.fetch_sub(1, Ordering::Relaxed);
            self.rejected_conns += 1;
            return Err("ERR max number of clients reached");
        }
        let user = self.acl.default_user();
        let has_password = !user.nopass;
        if crate::security::protected_mode_refuses(self.config.protected_mode, has_password, &addr) {
            self.shared.connected_clients.fetch_sub(1, Ordering::Relaxed);
            self.rejected_conns += 1;
            return Err(crate::security::DENIED);
        }
        self.total_connections += 1;
        let idx = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                (self.conns.len() - 1) as u32
            }
        };
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let gen = self.next_gen;
        let id = self.shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(fd, (idx, gen, id), addr, laddr, user, self.now);
        self.conns[idx as usize] = Some(conn);
        Ok((idx, gen))
    }

    pub fn conn_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Conn> {
        conn_in(&mut self.conns, idx, gen)
    }

    /// Ask the reactor to read from connection `idx`.
    #[inline]
    fn want_recv(&mut self, idx: u32) {
        self.io.recv.push(idx);
    }

    /// Bytes were appended to connection `idx`'s `rbuf`.
    pub fn on_input(&mut self, idx: u32) {
        let limit = self.config.client_query_buffer_limit;
        let Some(Some(c)) = self.conns.get_mut(idx as usize) else { return };
        if c.closing {
            return;
        }
        if (c.rbuf.len() - c.rpos) as i64 > limit {
            crate::log(&format!(
                "shard {}: closing client id={} addr={}: query buffer exceeds client-query-buffer-limit",
                self.id, c.id, c.addr
            ));
            self.close(idx);
            return;
        }
        if c.output_bytes() >= OUTPUT_PAUSE {
            // Paused for output: keep the bytes, stop the recv.
            self.io.pause.push(idx);
            return;
        }
        let waiting = !c.wait.is_none();
        if waiting || (c.need != 0 && c.rbuf.len() - c.rpos < c.need) {
            // Busy, or a big value still arriving: keep the bytes for later.
            return;
        }
        self.process_conn(idx);
    }

    /// The peer shut its side of connection `idx`.
    pub fn on_eof(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get_mut(idx as usize) else { return };
        if matches!(c.wait, Wait::Blocked(_)) {
            // A blocked client stops waiting, as Redis frees it.
            return self.close(idx);
        }
        // The requests before the EOF still run and are answered.
        c.read_eof = true;
        self.process_conn(idx);
    }

    /// Run a connection's buffered requests until it must wait, then re-arm
    /// its recv if it is idle.
    pub fn process_conn(&mut self, idx: u32) {
        if self.drain.active {
            // Stopping: no new requests (output still goes out).
            return;
        }
        let Some(slot) = self.conns.get_mut(idx as usize) else { return };
        let Some(mut conn) = slot.take() else { return };
        self.run_requests(&mut conn);
        if conn.rpos > 0 {
            // rbuf is the core's alone (never lent to the kernel): compact
            // any time.
            conn.rbuf.drain(..conn.rpos);
            conn.rpos = 0;
        }
        let idle = conn.wait.is_none() && !conn.closing;
        let has_out = !conn.out.is_empty();
        let out_len = conn.output_bytes();
        let done = conn.close_after_flush || (conn.read_eof && conn.wait.is_none());
        // A reply still to come (another shard's) is sent before closing.
        let close_now = done && out_len == 0 && conn.wait.is_none();
        self.conns[idx as usize] = Some(conn);
        if has_out {
            self.mark_dirty(idx);
        }
        if close_now {
            self.close(idx);
            return;
        }
        if idle && out_len < OUTPUT_PAUSE {
            self.want_recv(idx);
        } else if out_len >= OUTPUT_PAUSE {
            self.io.pause.push(idx);
        }
    }

    /// Ask each live connection of `waiters` what became of its wait
    /// (`settle` writes the reply when it answers); answered ones stop
    /// waiting and run again. Returns those still waiting.
    pub fn settle_waiters(
        &mut self,
        waiters: Vec<ConnRef>,
        mut settle: impl FnMut(&mut Conn) -> Settle,
    ) -> Vec<ConnRef> {
        let mut still = Vec::new();
        for r in waiters {
            let Some(Some(c)) = self.conns.get_mut(r.idx as usize) else { continue };
            if c.gen != r.gen {
                continue;
            }
            match settle(c) {
                Settle::Answered => {
                    c.wait = Wait::None;
                    self.mark_dirty(r.idx);
                    self.runnable.push_back(r.idx);
                }
                Settle::Waiting => still.push(r),
                Settle::Gone => {}
            }
        }
        still
    }

    pub fn mark_dirty(&mut self, idx: u32) {
        let gate = self.stamp_output();
        if let Some(Some(c)) = self.conns.get_mut(idx as usize) {
            if c.reveals {
                c.out_gate = c.out_gate.max(gate);
            }
            if !c.in_dirty_list {
                c.in_dirty_list = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Queue a connection for sending without new output (its held
    /// output became durable).
    pub fn mark_dirty_unstamped(&mut self, idx: u32) {
        if let Some(Some(c)) = self.conns.get_mut(idx as usize) {
            if !c.in_dirty_list {
                c.in_dirty_list = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Append bytes to a connection's output (pub/sub deliveries, replies
    /// that arrive from other shards).
    pub fn write_to(&mut self, r: ConnRef, bytes: &[u8]) -> bool {
        let limits = self.obuf_limits;
        match self.conn_mut(r.idx, r.gen) {
            Some(c) if !c.closing => {
                let hard = limits.get(c.obuf_class()).hard;
                if hard > 0 && c.output_bytes() as u64 >= hard {
                    // Over its hard limit: dropped; flush closes it.
                    self.mark_dirty(r.idx);
                    return false;
                }
                c.out.extend_from_slice(bytes);
                self.mark_dirty(r.idx);
                true
            }
            _ => false,
        }
    }

    fn flush(&mut self) {
        self.submit_aof();
        let dirty = std::mem::take(&mut self.dirty);
        // Output stamped past this lsn waits; fixed for the pass.
        let released = self.release_gate();
        let mut over_limit = Vec::new();
        for &idx in &dirty {
            let Some(Some(c)) = self.conns.get_mut(idx as usize) else { continue };
            let held = released.is_some_and(|d| c.out_gate > d);
            c.in_dirty_list = false;
            let used = c.output_bytes() as u64;
            self.recent_max_out.note(used, self.now);
            if self.obuf_limits.get(c.obuf_class()).exceeded(used, self.now, &mut c.obuf_soft_since) && !c.closing {
                over_limit.push(idx);
                continue;
            }
            if c.reply != ReplyMode::On {
                c.settle_reply();
            }
            if !c.sending.is_empty() || c.out.is_empty() || c.closing {
                continue;
            }
            if held {
                if !c.out_held {
                    c.out_held = true;
                    self.held_conns.push(idx);
                }
                continue;
            }
            std::mem::swap(&mut c.out, &mut c.sending);
            c.sent = 0;
            c.mute_from = 0;
            self.io.send.push(idx);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
        for idx in over_limit {
            self.close_over_output_limit(idx);
        }
    }

    /// The reactor finished sending connection `idx`'s `sending` buffer.
    pub fn on_sent(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get_mut(idx as usize) else { return };
        c.sending.clear();
        c.sent = 0;
        // Do not let one huge reply pin a huge buffer forever.
        if c.sending.capacity() > 4 * 1024 * 1024 {
            c.sending = Vec::new();
        }
        let more = !c.out.is_empty();
        let close_now = (c.close_after_flush || (c.read_eof && c.wait.is_none())) && !more;
        if more {
            self.mark_dirty(idx);
        } else if close_now {
            self.close(idx);
        }
    }

    /// The reactor is not reading connection `idx` (its output drained, or
    /// its receive was paused): run it again if it may go on.
    pub fn resume(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get(idx as usize) else { return };
        if c.wait.is_none() && !c.closing && c.output_bytes() < OUTPUT_PAUSE {
            self.runnable.push_back(idx);
        }
    }

    /// Tear a connection down. Buffers stay alive until every in-flight
    /// operation on them has completed.
    pub fn close(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get_mut(idx as usize) else { return };
        if c.closing {
            return;
        }
        c.closing = true;
        let r = c.conn_ref(self.id);
        let id = c.id;
        let watch_shards = std::mem::take(&mut c.watch_shards);
        let subs: Vec<Vec<u8>> = c.subs.drain().collect();
        let psubs: Vec<Vec<u8>> = c.psubs.drain().collect();
        let ssubs: Vec<Vec<u8>> = c.ssubs.drain().collect();
        let was_monitor = std::mem::take(&mut c.monitor);
        // A blocked client stops waiting everywhere.
        let blocked = match &c.wait {
            Wait::Blocked(b) => Some((b.block_id, b.owners.clone())),
            _ => None,
        };
        self.io.close.push(idx);
        self.shared.connected_clients.fetch_sub(1, Ordering::Relaxed);
        for ch in subs {
            self.pubsub.unsubscribe(&ch, r, false);
        }
        for ch in ssubs {
            self.pubsub.unsubscribe(&ch, r, true);
        }
        for p in psubs {
            self.pubsub.punsubscribe(&p, r);
        }
        self.unwatch_everywhere(id, &watch_shards);
        if was_monitor {
            self.announce_monitor(r, false);
        }
        if let Some((block_id, owners)) = blocked {
            self.drop_watches(block_id, &owners);
        }
    }

    /// A client over its client-output-buffer-limit: closed without
    /// sending what is queued (as Redis does), logged and counted.
    fn close_over_output_limit(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get(idx as usize) else { return };
        crate::log(&format!(
            "shard {}: closing client id={} addr={} for overcoming its output buffer limit ({} bytes unsent, class {:?}; client-output-buffer-limit)",
            self.id,
            c.id,
            c.addr,
            c.output_bytes(),
            c.obuf_class()
        ));
        self.obuf_disconnections += 1;
        self.close(idx);
    }

    /// The reactor let go of connection `idx`'s socket (nothing of it is
    /// in flight): its slot may be reused.
    pub fn release(&mut self, idx: u32) {
        if matches!(self.conns.get(idx as usize), Some(Some(c)) if c.closing) {
            self.conns[idx as usize] = None;
            self.free_slots.push(idx);
        }
    }

    pub fn unwatch_everywhere(&mut self, who: u64, shards: &[usize]) {
        for &s in shards {
            if s == self.id {
                self.ks.unwatch_all(who);
            } else {
                self.send(s, Msg::Unwatch { who });
            }
        }
    }

    /// Send a message to a shard (possibly this one).
    pub fn send(&mut self, to: usize, msg: Msg) {
        if to == self.id {
            self.self_msgs.push_back(msg);
            return;
        }
        if let Some(msg) = self.hold_message(to, msg) {
            self.send_now(to, msg);
        }
    }

    /// `send` for a message that shows no keyspace data: it overtakes
    /// what this shard holds for durability or replicas' acks.
    pub fn send_unheld(&mut self, to: usize, msg: Msg) {
        if to == self.id {
            self.self_msgs.push_back(msg);
        } else {
            self.send_now(to, msg);
        }
    }

    /// Post a message to another shard without the durability hold.
    pub fn send_now(&mut self, to: usize, msg: Msg) {
        if self.shared.post(self.id, to, msg) {
            self.io.doorbells[to] = true;
        }
    }

    fn drain_messages(&mut self) {
        // Clear the flag before draining so a message posted after we look
        // rings the doorbell again.
        self.shared.doorbell_pending[self.id].store(false, Ordering::SeqCst);
        let mut handled = 0;
        let external = self.shared.nshards;
        for from in 0..=external {
            while let Some(m) = self.shared.queues[self.id][from].pop() {
                if handled == 0 && self.drain.active {
                    // Busy before the message stops counting as in flight.
                    self.shared.idle[self.id].store(false, Ordering::SeqCst);
                }
                if from < external && matches!(m, Msg::ReplTxn { .. }) {
                    // A replicated transaction reaching this shard through
                    // another: the records its link posted here before it
                    // (queues are FIFO per sender only) must apply first, or
                    // the transaction's position would skip them.
                    while let Some(e) = self.shared.queues[self.id][external].pop() {
                        self.on_message(e);
                        handled += 1;
                    }
                }
                self.on_message(m);
                handled += 1;
            }
        }
        if handled > 0 {
            if self.drain.active {
                self.shared.handled.fetch_add(handled as u64, Ordering::SeqCst);
            }
            self.shared.inflight.fetch_sub(handled, Ordering::SeqCst);
        }
        while let Some(m) = self.self_msgs.pop_front() {
            self.on_message(m);
        }
    }

    fn run_runnable(&mut self) {
        // Bounded: a connection made runnable again during this pass waits
        // for the next turn.
        let n = self.runnable.len();
        for _ in 0..n {
            let Some(idx) = self.runnable.pop_front() else { break };
            let ready = matches!(self.conns.get(idx as usize), Some(Some(c)) if c.wait.is_none() && !c.closing);
            if ready {
                self.process_conn(idx);
            }
        }
        // Messages to self produced while running.
        while let Some(m) = self.self_msgs.pop_front() {
            self.on_message(m);
        }
    }

    fn on_message(&mut self, m: Msg) {
        match m {
            Msg::BatchReply { to, shard, out, ends } => {
                if let Some(c) = self.conn_mut(to.idx, to.gen) {
                    let done = match &mut c.wait {
                        Wait::Squash(sq) => sq.part_arrived(shard, out, ends),
                        _ => false,
                    };
                    if done {
                        if let Wait::Squash(sq) = std::mem::replace(&mut c.wait, Wait::None) {
                            sq.assemble(&mut c.out);
                        }
                        self.mark_dirty(to.idx);
                        self.runnable.push_back(to.idx);
                    }
                }
            }
            Msg::FanoutReply { to, shard, resp } => self.on_fan_reply(to, shard, resp),
            Msg::Pulled { txid, entries, watch_dirty, report } => self.on_pulled(txid, entries, watch_dirty, report),
            Msg::Pushed { txid } => self.on_pushed(txid),
            Msg::PushUnlock { txid, coord, writes, clocks, log_txid, participants, hold } => {
                self.on_push_unlock(txid, coord, (writes, clocks), (log_txid, participants), hold)
            }
            Msg::Unlock { txid } => self.on_unlock(txid),
            Msg::RewriteStart { coord } => {
                let lsn = self.aof.as_mut().map_or(0, |w| {
                    w.request_rotation();
                    w.appended_lsn()
                });
                self.send(coord, Msg::RewriteLsn { shard: self.id, lsn });
            }
            Msg::RewriteLsn { shard, lsn } => self.on_rewrite_lsn(shard, lsn),
            Msg::BlockedReply { to, block_id, out } => self.on_blocked_reply(to, block_id, out),
            Msg::BlockReady { to, block_id } => self.on_block_ready(to, block_id),
            Msg::Monitor { who, on } => self.on_monitor(who, on),
            Msg::MonitorLine { to, line } => {
                self.write_to(to, &line);
            }
            Msg::Notify { msgs } => self.on_notify(&msgs),
            Msg::PauseChanged => self.wake_paused(),
            // Only the transaction holding this shard sends these.
            Msg::TxnRun { txid, coord, db, resp3, cmd, user } => {
                // A script's refusals are logged here, without the client
                // (it is connected elsewhere).
                let script_user = user.is_some();
                if script_user {
                    self.script_acl_begin(user);
                }
                // Admitted as part of its transaction.
                let (out, _) = self.run_batch(db as usize, resp3, cmd, crate::cmd::admission::Road::Admitted);
                if script_user {
                    self.script_acl_end_for(None);
                }
                self.send(coord, Msg::TxnRunReply { txid, out });
            }
            Msg::TxnFan { txid, coord, req } => {
                let resp = self.fan_local(&req);
                self.send(coord, Msg::TxnFanReply { txid, shard: self.id, resp });
            }
            Msg::TxnPull { txid, coord, keys } => {
                let entries = self.pull_keys(keys);
                self.send(coord, Msg::TxnPulled { txid, entries });
            }
            Msg::TxnApply { writes, clocks } => self.apply_writes(writes, clocks),
            // The lock holder's own message: runs while locked.
            Msg::ReplTxnApply { id, parts, participants, done } => {
                self.on_repl_txn_apply(id, parts, participants);
                done.fetch_add(1, Ordering::Release);
            }
            Msg::TxnRunReply { txid, out } => self.on_routed_reply(txid, out),
            Msg::TxnFanReply { txid, shard, resp } => self.on_routed_fan_reply(txid, shard, resp),
            Msg::TxnPulled { txid, entries } => self.on_routed_pulled(txid, entries),
            // Never deferred: a locked shard's next transaction message
            // may be what these release (held behind the AOF or replicas'
            // acks); deferring them until the unlock deadlocked the shard.
            Msg::ReplAcked => {
                self.check_repl_waiters();
                self.release_held();
            }
            Msg::SyncSoon => {
                if let Some(w) = self.aof.as_mut() {
                    w.sync_soon = true;
                }
            }
            other => {
                // Work that touches this shard's keyspace waits while a
                // transaction holds what it needs (see `shard::locks`).
                if self.txn.clear() {
                    return self.on_work(other);
                }
                let need = self.msg_need(&other);
                if self.txn.admits(&need) {
                    self.on_work(other);
                } else {
                    self.txn.defer(super::txn::Deferred::Msg(other), need);
                }
            }
        }
    }

    /// What keyspace work from another shard needs from the lock table:
    /// a batch of commands their keys, a transaction's lock its keys here
    /// (or the whole shard), UNWATCH only its place in the queue, and the
    /// rest (keyspace-wide requests, blocking commands, replication,
    /// a snapshot's cut) everything.
    fn msg_need(&mut self, m: &Msg) -> super::locks::Need {
        use super::locks::Need;
        match m {
            Msg::Batch { db, cmds, .. } => {
                let mut buf = cmds.clone();
                let mut ranges = Vec::new();
                let mut pos = 0;
                let mut all = Vec::new();
                while pos < buf.len() {
                    let crate::protocol::parse::ParseOutcome::Done { consumed } =
                        crate::protocol::parse::parse_request(&mut buf[pos..], &self.limits, &mut ranges)
                    else {
                        return Need::All;
                    };
                    let args = crate::cmd::Args::new(&buf[pos..pos + consumed], &ranges);
                    let Some((_, def)) = crate::cmd::find(&args) else { return Need::All };
                    match super::txn::cmd_need(def, &args, *db as usize) {
                        Need::Keys(k) => all.extend(k),
                        _ => return Need::All,
                    }
                    pos += consumed;
                }
                all.sort_unstable();
                all.dedup();
                Need::Keys(all)
            }
            Msg::LockPull { whole, chain, .. } => super::txn::lock_pull_need(*whole, chain),
            Msg::Unwatch { .. } => Need::Order,
            _ => Need::All,
        }
    }

    /// Keyspace work from another shard, run now (the lock table admits it).
    pub fn on_work(&mut self, m: Msg) {
        match m {
            Msg::Batch { from, db, resp3, no_touch, cmds } => {
                self.ks.no_touch = no_touch;
                let (out, ends) = self.run_batch(db as usize, resp3, cmds, crate::cmd::admission::Road::Client);
                self.ks.no_touch = false;
                self.send(from.shard, Msg::BatchReply { to: from, shard: self.id, out, ends });
            }
            Msg::LockPull { txid, coord, whole, chain, acc, watch_dirty, watcher, flags, report } => {
                self.on_lock_pull((txid, whole), coord, chain, acc, (watch_dirty, watcher), (flags, report))
            }
            Msg::Fanout { from, req } => {
                let resp = self.fan_local(&req);
                let reply = Msg::FanoutReply { to: from, shard: self.id, resp };
                if req.reveals_nothing() {
                    self.send_unheld(from.shard, reply);
                } else {
                    self.send(from.shard, reply);
                }
            }
            Msg::BlockCmd { block_id, from, db, resp3, cmd } => self.on_block_cmd(block_id, from, db, resp3, cmd),
            Msg::BlockWatch { block_id, to, keys } => self.on_block_watch(block_id, to, keys),
            Msg::CancelBlock { block_id, reply } => self.on_cancel_block(block_id, reply),
            Msg::UnblockError { block_id, out } => self.on_unblock_error(block_id, out),
            // Deferred like the rest while locked: a transaction of the same
            // client that waits for the lock must still find its WATCHes
            // (and whether they were broken), or its EXEC runs blind.
            Msg::Unwatch { who } => {
                self.ks.unwatch_all(who);
            }
            Msg::ReplApply { mshard, lsn, replid, base, db, payload } => {
                self.on_repl_apply(mshard, (&replid, lsn), base, db, &payload)
            }
            Msg::ReplReset { mshard, master_shards } => self.on_repl_reset(mshard, master_shards),
            Msg::DropClients => self.drop_all_clients(),
            Msg::ReplTxn { id, chain, locked, done } => self.on_repl_txn(id, chain, locked, done),
            Msg::ReplPos { mshard, replid, lsn } => self.on_repl_pos(mshard, &replid, lsn),
            Msg::ReplFence { done } => self.on_repl_fence(done),
            Msg::SnapLock { id, run } => self.on_snap_lock(id, run),
            Msg::IoDone(call) => self.on_io_done(*call),
            _ => {}
        }
    }

    pub fn on_fan_reply(&mut self, to: ConnRef, shard: usize, resp: FanResp) {
        let Some(slot) = self.conns.get_mut(to.idx as usize) else { return };
        let Some(mut conn) = slot.take() else { return };
        if conn.gen != to.gen {
            self.conns[to.idx as usize] = Some(conn);
            return;
        }
        let done = if let Wait::Fan(st) = &mut conn.wait {
            st.resps.push((shard, resp));
            st.resps.len() >= st.expect
        } else {
            false
        };
        if done {
            if let Wait::Fan(st) = std::mem::replace(&mut conn.wait, Wait::None) {
                self.finish_fan(&mut conn.out, conn.resp3, *st);
            }
            self.runnable.push_back(to.idx);
        }
        let has_out = !conn.out.is_empty();
        self.conns[to.idx as usize] = Some(conn);
        if has_out {
            self.mark_dirty(to.idx);
        }
    }

    /// The cron tick (`hz` times a second).
    pub fn cron(&mut self) {
        // Active expiry: sample each db, continuing while many keys expire
        // (as Redis does), within a time budget of 25% of the period.
        let budget = std::time::Duration::from_micros(250_000 / self.config.hz.max(1) as u64);
        let start = std::time::Instant::now();
        // The end of a CLIENT PAUSE.
        self.wake_paused();
        if !self.txn.locked() {
            // A replica expires nothing itself (`Keyspace::no_expire`), nor
            // does anyone during a CLIENT PAUSE.
            let dbs = if self.ks.no_expire || self.ks.expire_paused { 0 } else { self.ks.dbs.len() };
            let t0 = super::ticks::now();
            for db in 0..dbs {
                loop {
                    let (checked, expired) = self.ks.active_expire_step(db, self.now, 64);
                    if checked == 0 || expired * 4 < checked || start.elapsed() > budget {
                        break;
                    }
                }
                if start.elapsed() > budget {
                    break;
                }
            }
            let took = super::ticks::to_ns(super::ticks::now().wrapping_sub(t0)) / 1_000_000;
            self.latmon.note("expire-cycle", took, self.now);
            if self.id == 0 {
                for (event, ms, at) in super::latmon::take_background() {
                    self.latmon.note(event, ms, at);
                }
            }
            // Finish any incremental rehash in the background (Redis's
            // activerehashing: 1 ms per tick).
            self.ks.rehash_step(std::time::Duration::from_millis(1));
            // The expiries as DELs.
            self.log_pending();
            self.serve_ready();
        }
        self.aof_cron();
        // Query buffers for INFO (output buffers are noted as they are flushed).
        let now = self.now;
        for c in self.conns.iter().flatten() {
            self.recent_max_in.note((c.rbuf.len() - c.rpos) as u64, now);
        }
        self.check_save_waiters();
        self.check_repl_waiters();
        // Acks may have moved with no ReplAcked posted (none is while no
        // shard says it waits): what they release goes out by the next tick.
        if !self.held_msgs.is_empty() || !self.held_conns.is_empty() {
            self.release_held();
        }
        self.watch_stuck();
        // Hear of every acknowledgement while replies (repl-sync-ack) or
        // WAITs wait for them; stop once neither does (CONFIG SET turned
        // sync-ack off), so replication threads stop asking for acks.
        crate::repl::master::set_waiting(self.id, self.sync_ack_on() || !self.repl_waiters.is_empty());
        if self.config.timeout > 0 {
            let limit = self.config.timeout as i64 * 1000;
            let idle: Vec<u32> = self
                .conns
                .iter()
                .flatten()
                .filter(|c| !c.closing && c.wait.is_none() && !c.in_pubsub() && self.now - c.last_cmd_ms > limit)
                .map(|c| c.idx)
                .collect();
            for idx in idle {
                self.close(idx);
            }
        }
    }

    /// Stopping: close every connection.
    pub fn close_all(&mut self) {
        let idxs: Vec<u32> = self.conns.iter().flatten().map(|c| c.idx).collect();
        for idx in idxs {
            self.close(idx);
        }
    }
}

fn conn_in(conns: &mut [Option<Box<Conn>>], idx: u32, gen: u32) -> Option<&mut Conn> {
    match conns.get_mut(idx as usize) {
        Some(Some(c)) if c.gen == gen => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One core, no AOF, driven as the reactor drives it.
    fn core(nshards: usize) -> Shard {
        let config = Config { shards: nshards, appendonly: false, ..Config::default() };
        let shared = Arc::new(Shared::new(nshards, config.clone()));
        let mut c = Shard::new(0, shared, &config, Keyspace::new(), None, "test").expect("core");
        c.apply_config(&config, None).expect("config");
        c
    }

    fn client(c: &mut Shard) -> (u32, u32) {
        c.accept_client(-1, "127.0.0.1:5000".into(), "127.0.0.1:6379".into()).expect("accepted")
    }

    /// Feed bytes, end the turn, and take what the reactor would send.
    fn exchange(c: &mut Shard, (idx, gen): (u32, u32), bytes: &[u8]) -> Vec<u8> {
        c.conn_mut(idx, gen).expect("open").rbuf.extend_from_slice(bytes);
        c.on_input(idx);
        c.settle();
        let mut out = Vec::new();
        for i in std::mem::take(&mut c.io.send) {
            let conn = c.conn_mut(i, gen).expect("open");
            out.extend_from_slice(&conn.sending[conn.sent..]);
            c.on_sent(i);
        }
        out
    }

    #[test]
    fn requests_in_replies_out_through_io() {
        let mut c = core(1);
        let cl = client(&mut c);
        assert_eq!(exchange(&mut c, cl, b"SET k v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), b"+OK\r\n$1\r\nv\r\n");
        assert!(c.io.recv.contains(&cl.0), "an idle connection asks to be read");
        // Half a request waits for the rest; nothing is sent meanwhile.
        assert_eq!(exchange(&mut c, cl, b"*2\r\n$3\r\nGET\r\n$1"), b"");
        assert_eq!(exchange(&mut c, cl, b"\r\nk\r\n"), b"$1\r\nv\r\n");
    }

    #[test]
    fn quit_and_eof_close_after_the_replies() {
        let mut c = core(1);
        let cl = client(&mut c);
        assert_eq!(exchange(&mut c, cl, b"PING\r\nQUIT\r\n"), b"+PONG\r\n+OK\r\n");
        assert_eq!(c.io.close, vec![cl.0], "closed once the replies went out");
        c.release(cl.0);
        assert!(c.conn_mut(cl.0, cl.1).is_none());
        // EOF after a request: answered, then closed.
        let cl = client(&mut c);
        c.conn_mut(cl.0, cl.1).expect("open").rbuf.extend_from_slice(b"PING\r\n");
        c.on_eof(cl.0);
        c.settle();
        assert_eq!(c.io.send, vec![cl.0]);
        c.on_sent(cl.0);
        assert!(c.io.close.contains(&cl.0));
    }

    #[test]
    fn a_key_of_another_shard_becomes_a_message() {
        let mut c = core(2);
        let cl = client(&mut c);
        let key = (0..1000).map(|i| format!("k{i}")).find(|k| c.shared.slots.shard_of(k.as_bytes()) == 1).expect("key");
        let req = format!("GET {key}\r\n");
        assert_eq!(exchange(&mut c, cl, req.as_bytes()), b"", "waits for shard 1");
        assert!(c.shared.pending(1, 0), "forwarded to shard 1");
        assert!(c.io.doorbells[1], "and shard 1's doorbell rung");
        let waiting = !c.conn_mut(cl.0, cl.1).expect("open").wait.is_none();
        assert!(waiting, "the connection waits for the reply");
    }
}

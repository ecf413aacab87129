//! Shards: one OS thread per shard, each running a reactor (`crate::net`:
//! its io_uring ring and sockets) around a core (`core`: a slice of the
//! hash slots, its keyspace and the sessions of the clients it accepted),
//! which performs no I/O.
//!
//! Shards talk only through messages: a lock-free queue per (to, from) pair
//! plus a doorbell (`IORING_OP_MSG_RING` into the target's ring). Per-pair
//! queues are FIFO, which the ordering arguments in `txn` rely on.
//!
//! - `core`: the shard's state and what it does with requests, messages,
//!   ticks and AOF completions; `Io` lists what it asks of the reactor.
//! - `router`: the slot map, and where a command runs.
//! - `fdlimit`: RLIMIT_NOFILE raised to fit maxclients (or maxclients lowered).
//! - `obuf`: client-output-buffer-limit classes (pure).
//! - `dispatch`: what a connection does with a parsed request: the checks,
//!   then by its table row (`crate::cmd::table`) run it here, forward it by
//!   its keys, queue it in MULTI, or run a server command at the connection.
//! - `txn`: atomic multi-key commands and MULTI/EXEC across shards.
//! - `fanout`: requests answered by every shard, merged into one reply
//!   (keyspace-wide commands, INFO, CLIENT LIST, ...). The server commands
//!   themselves are in `crate::cmd::server`.
//! - `blocking`: blocked clients, waiting at the shard that owns their keys.
//! - `pubsub`: channel subscriptions and cross-shard PUBLISH.
//! - `monitor`: MONITOR clients and the command lines every shard sends
//!   them.
//! - `acl`: the ACL gate every client command passes, and taking a new
//!   user table (re-pointing or closing its clients).
//! - `aof`: the shard's side of its AOF (logging, group commit, rewrites).
//! - `slowlog`, `latency`, `ticks`: SLOWLOG entries, latency histograms, the
//!   clock they are measured with.
//! - `bufring`, `wait_policy`: provided buffers; how long a turn may wait.
//! - `shutdown`: signals, and the shards draining together before they stop.

pub mod acl;
pub mod aof;
pub mod blocking;
pub mod busy;
pub mod core;
pub mod dispatch;
pub mod fanout;
pub mod fdlimit;
pub mod latency;
pub mod latmon;
pub mod locks;
pub mod monitor;
pub mod netio;
pub mod obuf;
pub mod pause;
pub mod pubsub;
pub mod replica;
pub mod replwait;
pub mod router;
pub mod shutdown;
pub mod slowlog;
pub mod snap;
pub mod ticks;
pub mod txn;
pub mod watchdog;

use crate::config::Config;
use crate::keyspace::Value;
use crossbeam_queue::SegQueue;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A connection anywhere in the server. `gen` guards against a slot that
/// was reused after the connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRef {
    pub shard: usize,
    pub idx: u32,
    pub gen: u32,
}

/// State shared by all shards; written rarely, read without locks on the
/// hot path.
pub struct Shared {
    pub nshards: usize,
    /// Which shard serves each hash slot: every key-to-shard question.
    pub slots: router::SlotMap,
    /// What command handlers may know of the server (`cmd::Facts`).
    pub facts: crate::cmd::Facts,
    /// The Lua script cache every shard's engine compiles from.
    pub scripts: Arc<crate::script::Cache>,
    /// Each shard's running script, read by the others (BUSY, SCRIPT KILL).
    pub busy: Arc<crate::script::busy::Busy>,
    /// queues[to][from]; `from == nshards` is the row for threads that
    /// are not shards (replication links).
    pub(crate) queues: Vec<Vec<SegQueue<Msg>>>,
    /// Ring fd of each shard, for MSG_RING doorbells (-1 until ready).
    ring_fds: Vec<AtomicI32>,
    /// Set when a doorbell is already pending for that shard, so many
    /// messages in one turn cost one doorbell.
    doorbell_pending: Vec<AtomicBool>,
    pub next_client_id: AtomicU64,
    /// SLOWLOG entry ids, unique and increasing across shards.
    pub next_slowlog_id: AtomicU64,
    pub next_txid: AtomicU64,
    /// Ids of blocked-client waits, unique across shards.
    pub next_block_id: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub shutdown: AtomicBool,
    /// Stopping (see `shutdown`): messages posted and not yet handled,
    /// messages handled while draining, shards draining (and which), and
    /// per shard whether it has nothing of its own left in flight.
    pub inflight: AtomicUsize,
    pub handled: AtomicU64,
    pub draining: AtomicUsize,
    pub in_drain: Vec<AtomicBool>,
    pub idle: Vec<AtomicBool>,
    /// The master copy of the configuration (CONFIG GET/REWRITE); shards keep
    /// local copies of what their hot path reads, refreshed by messages.
    pub config: Mutex<Config>,
    pub start_unix: i64,
    pub start_instant: std::time::Instant,
    pub run_id: String,
    pub tcp_port: u16,
    /// Shards that finished start-up (listening).
    pub ready: AtomicUsize,
    /// Per shard: over its share of maxmemory at the end of its last turn
    /// (MULTI refuses to queue while a shard is, as Redis does).
    pub over_limit: Vec<AtomicBool>,
    /// ACL users (the master table), ACL LOG and refusal counters.
    pub acl: crate::acl::AclShared,
    /// CLIENT PAUSE, for every shard.
    pub pause: pause::Pause,
}

impl Shared {
    pub fn new(nshards: usize, config: Config) -> Self {
        let queues = (0..nshards).map(|_| (0..=nshards).map(|_| SegQueue::new()).collect()).collect();
        let seed = crate::util::now_us() as u64 ^ (std::process::id() as u64) << 32;
        let mut rng = crate::cmd::Rng::new(seed);
        let run_id: String = (0..40).map(|_| format!("{:x}", rng.next_u64() % 16)).collect();
        Shared {
            nshards,
            slots: router::SlotMap::contiguous(nshards),
            facts: crate::cmd::Facts { shards: nshards },
            scripts: Arc::new(crate::script::Cache::default()),
            busy: Arc::new(crate::script::busy::Busy::new(nshards, config.busy_reply_threshold)),
            queues,
            ring_fds: (0..nshards).map(|_| AtomicI32::new(-1)).collect(),
            doorbell_pending: (0..nshards).map(|_| AtomicBool::new(false)).collect(),
            next_client_id: AtomicU64::new(1),
            next_slowlog_id: AtomicU64::new(0),
            next_txid: AtomicU64::new(1),
            next_block_id: AtomicU64::new(1),
            connected_clients: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            handled: AtomicU64::new(0),
            draining: AtomicUsize::new(0),
            in_drain: (0..nshards).map(|_| AtomicBool::new(false)).collect(),
            idle: (0..nshards).map(|_| AtomicBool::new(false)).collect(),
            tcp_port: config.port,
            acl: crate::acl::AclShared::new(&config),
            config: Mutex::new(config),
            start_unix: crate::util::now_ms(),
            start_instant: std::time::Instant::now(),
            run_id,
            ready: AtomicUsize::new(0),
            over_limit: (0..nshards).map(|_| AtomicBool::new(false)).collect(),
            pause: pause::Pause::default(),
        }
    }

    /// Enqueue a message; returns true if the target needs a doorbell.
    pub fn post(&self, from: usize, to: usize, msg: Msg) -> bool {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        self.queues[to][from].push(msg);
        !self.doorbell_pending[to].swap(true, Ordering::AcqRel)
    }

    /// Enqueue a message from a thread that is not a shard; returns true
    /// if the target needs a doorbell.
    pub fn post_external(&self, to: usize, msg: Msg) -> bool {
        self.post(self.nshards, to, msg)
    }

    /// Messages from `from` wait in `to`'s queue (a simulation's
    /// scheduler picks among these).
    pub fn pending(&self, to: usize, from: usize) -> bool {
        !self.queues[to][from].is_empty()
    }

    /// Shard `shard`'s reactor is up: its ring takes doorbells at `fd`.
    pub fn set_ring_fd(&self, shard: usize, fd: i32) {
        self.ring_fds[shard].store(fd, Ordering::Release);
    }

    pub fn ring_fd(&self, shard: usize) -> i32 {
        self.ring_fds[shard].load(Ordering::Acquire)
    }

    pub fn config_snapshot(&self) -> Config {
        match self.config.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Part of a master record for one replica shard: master shard, lsn,
/// replid, the db it starts in, its commands.
pub type ReplPart = (u16, u64, Arc<str>, u8, Vec<u8>);

/// A key as messages carry it: (db, key).
pub type DbKey = (u8, Vec<u8>);

/// A key's full state moved between shards: value and absolute expiry,
/// or None for "absent / delete".
pub type KeyState = Option<(Value, i64)>;

/// A key as a transaction pulls it: value, absolute expiry and access
/// clock (LRU/LFU). The pull does not count a use; the commands count
/// theirs on the transaction's keyspace and the clocks travel back
/// (`Clocks`), so a key is used once per command, as in Redis.
pub type PulledState = Option<(Value, i64, u32)>;

/// The access clocks of the keys a transaction pulled or wrote, as its
/// commands left them, for their owners to install.
pub type Clocks = Vec<(DbKey, u32)>;

pub enum Msg {
    /// Single-shard commands forwarded by a connection on another shard,
    /// RESP-encoded back to back; replies come back in one buffer, with the
    /// end offset of each command's reply (usize: a pipeline's replies may
    /// pass 4 GiB, which u32 offsets wrapped, and assembling then panicked).
    Batch {
        from: ConnRef,
        db: u8,
        resp3: bool,
        /// The sender is a CLIENT NO-TOUCH client.
        no_touch: bool,
        cmds: Vec<u8>,
    },
    BatchReply {
        to: ConnRef,
        shard: usize,
        out: Vec<u8>,
        ends: Vec<usize>,
    },
    /// Transaction phase 1, passed along the participants in shard order:
    /// lock this shard for `txid`, add the current state of this shard's
    /// keys (the head of `chain`) to `acc`, note whether `watcher`'s
    /// WATCHes here were invalidated, then hand it to the next participant;
    /// the last one sends everything to the coordinator as `Pulled`.
    LockPull {
        txid: u64,
        coord: usize,
        /// Lock the whole shard, or only the keys pulled there.
        whole: bool,
        chain: Vec<(usize, Vec<DbKey>)>,
        acc: Vec<(DbKey, PulledState)>,
        watch_dirty: bool,
        watcher: Option<u64>,
        /// The union of the transaction's command flags, and what each
        /// participant reports for its admission gates (`cmd::admission`).
        flags: crate::cmd::flags::Flags,
        report: crate::cmd::admission::Report,
    },
    Pulled {
        txid: u64,
        entries: Vec<(DbKey, PulledState)>,
        watch_dirty: bool,
        report: crate::cmd::admission::Report,
    },
    /// Phase 2: apply the final state of the written keys, then unlock.
    /// `log_txid`/`participants` are what the participant's AOF record
    /// carries (0 = an ordinary record); with `hold` the participant stays
    /// locked until `Unlock` (appendfsync always: nothing may read the
    /// writes before every participant has them durable).
    PushUnlock {
        txid: u64,
        coord: usize,
        writes: Vec<(DbKey, KeyState)>,
        clocks: Clocks,
        log_txid: u64,
        participants: u16,
        hold: bool,
    },
    Unlock {
        txid: u64,
    },
    /// Blocked clients (see `blocking`): run a blocking command at the
    /// owner of its keys, queueing the client if there is nothing yet.
    BlockCmd {
        block_id: u64,
        from: ConnRef,
        db: u8,
        resp3: bool,
        cmd: Vec<u8>,
    },
    /// Watch keys for a blocked command whose keys span shards.
    BlockWatch {
        block_id: u64,
        to: ConnRef,
        keys: Vec<DbKey>,
    },
    /// Stop waiting (timeout: answer with the timeout reply; or silently).
    CancelBlock {
        block_id: u64,
        reply: bool,
    },
    /// Home: the blocked command's reply (served or timed out).
    BlockedReply {
        to: ConnRef,
        block_id: u64,
        out: Vec<u8>,
    },
    /// A client started (or stopped) MONITOR: every shard keeps the list.
    Monitor {
        who: ConnRef,
        on: bool,
    },
    /// CLIENT UNBLOCK ... ERROR: answer the waiter `block_id` with `out`.
    UnblockError {
        block_id: u64,
        out: Vec<u8>,
    },
    /// CLIENT PAUSE or UNPAUSE ran somewhere: follow the shared state.
    PauseChanged,
    /// Keyspace events another shard published, as (channel, message),
    /// for this shard's subscribers.
    Notify {
        msgs: Arc<Vec<(Vec<u8>, Vec<u8>)>>,
    },
    /// A command line for a MONITOR client of this shard.
    MonitorLine {
        to: ConnRef,
        line: Vec<u8>,
    },
    /// Home: a watched key changed; try the cross-shard command again.
    BlockReady {
        to: ConnRef,
        block_id: u64,
    },
    /// AOF rewrite: start a new segment and report the last appended lsn.
    RewriteStart {
        coord: usize,
    },
    RewriteLsn {
        shard: usize,
        lsn: u64,
    },
    /// Snapshot rewrite: the all-shards barrier that starts it (`snap`).
    SnapLock {
        id: u64,
        run: Arc<crate::persist::snapshot::Run>,
    },
    Pushed {
        txid: u64,
    },
    /// Work every (or some) shard does for one command, merged by the sender.
    Fanout {
        from: ConnRef,
        req: Arc<FanReq>,
    },
    FanoutReply {
        to: ConnRef,
        shard: usize,
        resp: FanResp,
    },
    /// Routed transactions (MULTI with keyspace-wide commands): with every
    /// shard locked, the coordinator runs each command where it belongs.
    TxnRun {
        txid: u64,
        coord: usize,
        db: u8,
        resp3: bool,
        cmd: Vec<u8>,
        /// The client's user when restricted: a script's calls are checked.
        user: Option<std::sync::Arc<crate::acl::user::User>>,
    },
    TxnRunReply {
        txid: u64,
        out: Vec<u8>,
    },
    TxnFan {
        txid: u64,
        coord: usize,
        req: Arc<FanReq>,
    },
    TxnFanReply {
        txid: u64,
        shard: usize,
        resp: FanResp,
    },
    /// Current state of keys of one cross-shard command inside a routed
    /// transaction (the shard is already locked), and its result.
    TxnPull {
        txid: u64,
        coord: usize,
        keys: Vec<DbKey>,
    },
    TxnPulled {
        txid: u64,
        entries: Vec<(DbKey, PulledState)>,
    },
    TxnApply {
        writes: Vec<(DbKey, KeyState)>,
        clocks: Clocks,
    },
    /// Fire-and-forget: drop a client's WATCHes on this shard.
    Unwatch {
        who: u64,
    },
    /// Replica: apply this part of master shard `mshard`'s record `lsn`
    /// (a base image's when `base`), unless this shard already has it.
    ReplApply {
        mshard: u16,
        lsn: u64,
        replid: Arc<str>,
        base: bool,
        db: u8,
        payload: Vec<u8>,
    },
    /// Replica: the records of one master transaction, applied together:
    /// the message travels `chain` in shard order, each shard locking
    /// itself (as a cross-shard transaction's lock does) and adding its
    /// parts to `locked`; the last applies its parts and sends each locked
    /// one its own (`ReplTxnApply`), which applies and unlocks. A reader's
    /// transaction locks in the same order, so it sees all or none.
    /// `done` counts the participants that applied their parts.
    ReplTxn {
        id: u64,
        chain: Vec<(usize, Vec<ReplPart>)>,
        locked: Vec<(usize, Vec<ReplPart>)>,
        done: Arc<AtomicUsize>,
    },
    ReplTxnApply {
        id: u64,
        parts: Vec<ReplPart>,
        participants: u16,
        done: Arc<AtomicUsize>,
    },
    /// A shard demoted with writes its replicas never acknowledged under
    /// `repl-sync-ack` closes its clients; it sends this ahead of the
    /// replies it held, so that none of them reaches a client here either.
    DropClients,
    /// Replica: a full sync of master shard `mshard` begins: drop the keys
    /// that shard owns (by the master's slot map) and forget the position.
    ReplReset {
        mshard: u16,
        master_shards: u16,
    },
    /// Replica: every record of `mshard` up to `lsn` was handed to the
    /// shards: record the position (so a restart resumes from it).
    ReplPos {
        mshard: u16,
        replid: Arc<str>,
        lsn: u64,
    },
    /// Replica: count `done` once everything applied so far is durable in
    /// this shard's AOF (the link then acknowledges it as durable).
    ReplFence {
        done: Arc<AtomicUsize>,
    },
    /// Master: replicas acknowledged more (WAIT, WAITAOF and
    /// `repl-sync-ack` may be satisfied).
    ReplAcked,
    /// Sync the AOF at once (WAITAOF with numlocal).
    SyncSoon,
    /// A parked client's network step ended (`netio`).
    IoDone(Box<netio::IoCall>),
}

impl Msg {
    /// The variant's name, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Batch { .. } => "Batch",
            Msg::BatchReply { .. } => "BatchReply",
            Msg::LockPull { .. } => "LockPull",
            Msg::Pulled { .. } => "Pulled",
            Msg::PushUnlock { .. } => "PushUnlock",
            Msg::Unlock { .. } => "Unlock",
            Msg::BlockCmd { .. } => "BlockCmd",
            Msg::BlockWatch { .. } => "BlockWatch",
            Msg::CancelBlock { .. } => "CancelBlock",
            Msg::BlockedReply { .. } => "BlockedReply",
            Msg::Monitor { .. } => "Monitor",
            Msg::UnblockError { .. } => "UnblockError",
            Msg::PauseChanged { .. } => "PauseChanged",
            Msg::Notify { .. } => "Notify",
            Msg::MonitorLine { .. } => "MonitorLine",
            Msg::BlockReady { .. } => "BlockReady",
            Msg::RewriteStart { .. } => "RewriteStart",
            Msg::RewriteLsn { .. } => "RewriteLsn",
            Msg::SnapLock { .. } => "SnapLock",
            Msg::Pushed { .. } => "Pushed",
            Msg::Fanout { .. } => "Fanout",
            Msg::FanoutReply { .. } => "FanoutReply",
            Msg::TxnRun { .. } => "TxnRun",
            Msg::TxnRunReply { .. } => "TxnRunReply",
            Msg::TxnFan { .. } => "TxnFan",
            Msg::TxnFanReply { .. } => "TxnFanReply",
            Msg::TxnPull { .. } => "TxnPull",
            Msg::TxnPulled { .. } => "TxnPulled",
            Msg::TxnApply { .. } => "TxnApply",
            Msg::Unwatch { .. } => "Unwatch",
            Msg::ReplApply { .. } => "ReplApply",
            Msg::ReplTxn { .. } => "ReplTxn",
            Msg::ReplTxnApply { .. } => "ReplTxnApply",
            Msg::DropClients { .. } => "DropClients",
            Msg::ReplReset { .. } => "ReplReset",
            Msg::ReplPos { .. } => "ReplPos",
            Msg::ReplFence { .. } => "ReplFence",
            Msg::ReplAcked { .. } => "ReplAcked",
            Msg::SyncSoon { .. } => "SyncSoon",
            Msg::IoDone(..) => "IoDone",
        }
    }
}

#[derive(Clone, Debug)]
pub enum FanReq {
    DbSize {
        db: u8,
    },
    Keys {
        db: u8,
        pattern: Vec<u8>,
    },
    Scan {
        db: u8,
        cursor: u64,
        count: usize,
        pattern: Option<Vec<u8>>,
        kind: Option<Vec<u8>>,
    },
    RandomKey {
        db: u8,
    },
    /// `lazy`: ASYNC (Some(true)), SYNC (Some(false)), or as
    /// lazyfree-lazy-user-flush says.
    FlushDb {
        db: u8,
        lazy: Option<bool>,
    },
    FlushAll {
        lazy: Option<bool>,
    },
    /// FUNCTION LOAD / DELETE / FLUSH / RESTORE, applied and logged by
    /// every shard.
    Function {
        cmd: Vec<Vec<u8>>,
    },
    SwapDb {
        a: u8,
        b: u8,
    },
    /// `sharded`: a shard channel (SPUBLISH, PUBSUB SHARD*).
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
        sharded: bool,
    },
    PubsubChannels {
        pattern: Option<Vec<u8>>,
        sharded: bool,
    },
    PubsubNumsub {
        channels: Vec<Vec<u8>>,
        sharded: bool,
    },
    PubsubNumpat,
    Info,
    ClientList {
        filter: crate::cmd::server::client::KillFilter,
    },
    ClientKill {
        filter: crate::cmd::server::client::KillFilter,
    },
    ClientUnblock {
        id: u64,
        error: bool,
    },
    /// `switch` is set when the AOF is being turned on (all shards at once).
    ConfigUpdate {
        config: Box<Config>,
        switch: Option<Arc<crate::persist::switch::AofSwitch>>,
    },
    Watch {
        who: u64,
        keys: Vec<DbKey>,
    },
    ResetStat,
    /// The ACL table changed: take the newest snapshot.
    AclRefresh,
    SlowlogGet {
        count: usize,
    },
    SlowlogLen,
    SlowlogReset,
    /// The latency monitor's events on the shard.
    LatencyEvents,
    /// DEBUG OBJECT, DIGEST, POPULATE, ... over this shard's keys.
    Debug {
        db: u8,
        op: crate::cmd::server::debug_keys::DebugOp,
    },
    /// Forget these events (all if empty); answers the names it had.
    LatencyReset {
        names: Vec<String>,
    },
}

impl FanReq {
    /// Work whose answer shows server state, not keyspace data: under
    /// `repl-sync-ack` it need not wait behind writes no replica has
    /// acknowledged yet (see `Shard::send_unheld`), so INFO, CONFIG SET,
    /// REPLICAOF and CLIENT still work on a multi-shard master cut off
    /// from its replicas, as they do on one shard (`dispatch::REVEALS_NOTHING`).
    pub fn reveals_nothing(&self) -> bool {
        matches!(
            self,
            FanReq::Info
                | FanReq::Publish { .. }
                | FanReq::PubsubChannels { .. }
                | FanReq::PubsubNumsub { .. }
                | FanReq::PubsubNumpat
                | FanReq::ClientList { .. }
                | FanReq::ClientKill { .. }
                | FanReq::ClientUnblock { .. }
                | FanReq::ConfigUpdate { .. }
                | FanReq::ResetStat
                | FanReq::AclRefresh
                | FanReq::SlowlogGet { .. }
                | FanReq::SlowlogLen
                | FanReq::SlowlogReset
                | FanReq::LatencyEvents
                | FanReq::LatencyReset { .. }
        )
    }
}

#[derive(Debug)]
pub enum FanResp {
    Int(i64),
    Keys(Vec<Vec<u8>>),
    Scan {
        next: u64,
        keys: Vec<Vec<u8>>,
    },
    Key(Option<Vec<u8>>),
    Counts(Vec<i64>),
    Info(Box<crate::cmd::server::info::ShardInfo>),
    Text(String),
    /// A reply as RESP bytes.
    Reply(Vec<u8>),
    Slow(Vec<slowlog::SlowEntry>),
    Latency(std::collections::BTreeMap<&'static str, latmon::Series>),
    Ack,
}

/// `disable-thp`: no transparent huge pages for this process. The kernel
/// checks the flag at fault time, so it also covers what the allocator
/// mapped (and asked huge pages for) before we got here.
fn disable_thp() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        crate::log(&format!(
            "disable-thp: prctl(PR_SET_THP_DISABLE) failed: {}; transparent huge pages stay as the system sets them",
            std::io::Error::last_os_error()
        ));
    }
}

/// Number of shards when the config says 0: the cores we may run on.
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
            if !cores.is_empty() {
                return cores;
            }
        }
    }
    (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect()
}

pub fn pin_to_core(core: usize) {
    // SAFETY: as above; failure to pin is logged, not fatal.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            crate::log(&format!("could not pin thread to core {}", core));
        }
    }
}

/// A loaded shard's keyspace and its AOF writer, logging from now on.
pub fn open_aof(
    config: &Config,
    id: usize,
    l: crate::persist::load::Loaded,
) -> Result<(crate::keyspace::Keyspace, Option<crate::persist::writer::Writer>), String> {
    let dir = crate::persist::shard_dir(std::path::Path::new(&config.dir), id);
    let policy = crate::persist::writer::Fsync::parse(&config.appendfsync);
    let w = crate::persist::writer::Writer::open(&dir, id, l.next_lsn, policy, config.aof_segment_size as u64)?;
    let mut ks = l.ks;
    ks.effects.enabled = true;
    Ok((ks, Some(w)))
}

/// The master side (with an AOF to stream) and, if configured, the link
/// to this server's master. Failing to start it is logged, not fatal: the
/// server still serves its clients.
fn start_replication(shared: &Arc<Shared>, config: &Config, initial: Vec<u64>) {
    if config.appendonly {
        let started = crate::repl::master::Ids::load(std::path::Path::new(&config.dir), true)
            .and_then(|ids| crate::repl::master::start(shared.clone(), ids, initial));
        if let Err(e) = started {
            crate::log(&format!("replication: cannot serve replicas: {}", e));
        }
    }
    if let Some(st) = crate::persist::rewrite::status() {
        st.backlog.store(config.repl_backlog_size.max(0) as u64, Ordering::Relaxed);
    }
    if !config.replicaof.is_empty() {
        match crate::config::parse_replicaof(&config.replicaof) {
            Ok(m) => crate::repl::replica::set_master(shared, Some(m)),
            Err(e) => crate::log(&format!("replication: {}", e)),
        }
    }
}

/// Start all shards and block until they stop (SHUTDOWN or a signal).
pub fn run(mut config: Config) -> Result<(), String> {
    shutdown::install_signal_handlers();
    if config.disable_thp {
        disable_thp();
    }
    ticks::calibrate();
    config.apply_encoding_limits()?;
    let cores = allowed_cores();
    let nshards = if config.shards == 0 { cores.len().max(1) } else { config.shards };
    let pin = config.pin_threads;
    config.maxclients = fdlimit::fit_maxclients(config.maxclients, nshards)?;
    // Bad ACL users stop start-up, as in Redis.
    crate::acl::Users::load(&config).map_err(|e| format!("Aborting startup because of ACL errors: {}", e))?;
    let shared = Arc::new(Shared::new(nshards, config.clone()));
    crate::log(&format!(
        "shardis {} starting: {} shard(s) on port {}, bind {}, pid {}",
        env!("CARGO_PKG_VERSION"),
        nshards,
        config.port,
        config.bind,
        std::process::id()
    ));
    // Recovery before any shard listens: clients never see a half-loaded
    // keyspace.
    let mut loaded: Vec<Option<crate::persist::load::Loaded>> = if config.appendonly {
        let dir = std::path::Path::new(&config.dir);
        let l = crate::persist::load::recover(dir, nshards)?;
        let st = crate::persist::rewrite::init_status(nshards);
        for (i, x) in l.iter().enumerate() {
            st.durable[i].store(x.next_lsn - 1, Ordering::Relaxed);
        }
        let max_txid = l.iter().map(|x| x.max_txid).max().unwrap_or(0);
        shared.next_txid.store(max_txid + 1, Ordering::SeqCst);
        // Where a replica resumes: the positions its shards logged.
        let pos: Vec<_> = l.iter().map(|x| x.ks.repl_pos.clone()).collect();
        crate::repl::replica::set_positions(&pos);
        l.into_iter().map(Some).collect()
    } else {
        (0..nshards).map(|_| None).collect()
    };
    let initial: Vec<u64> = loaded.iter().map(|l| l.as_ref().map_or(0, |l| l.next_lsn - 1)).collect();
    let replica = !config.replicaof.is_empty();
    // Before any shard answers: a replica asks on the client port for
    // the replication listener as soon as the server is up.
    start_replication(&shared, &config, initial);
    let mut handles = Vec::new();
    let (err_tx, err_rx) = std::sync::mpsc::channel::<String>();
    for id in 0..nshards {
        let shared = shared.clone();
        let config = config.clone();
        let core = cores[id % cores.len()];
        let err_tx = err_tx.clone();
        let loaded = loaded[id].take();
        let h = std::thread::Builder::new()
            .name(format!("shard-{}", id))
            .spawn(move || {
                if pin {
                    pin_to_core(core);
                }
                let opened = match loaded {
                    Some(l) => open_aof(&config, id, l),
                    None => Ok((crate::keyspace::Keyspace::new(), None)),
                };
                let opened = opened.map(|(mut ks, aof)| {
                    ks.no_expire = replica;
                    (ks, aof)
                });
                let started = crate::net::Net::new(id, &config).and_then(|(net, flags)| {
                    shared.set_ring_fd(id, net.ring_fd());
                    let (ks, aof) = opened?;
                    Ok((net, core::Shard::new(id, shared.clone(), &config, ks, aof, flags)?))
                });
                match started {
                    Ok((mut net, mut shard)) => {
                        if let Err(e) = net.run(&mut shard) {
                            let _ = err_tx.send(format!("shard {}: {}", id, e));
                        }
                    }
                    Err(e) => {
                        let _ = err_tx.send(format!("shard {}: {}", id, e));
                    }
                }
                shared.shard_exited(id);
                shared.shutdown.store(true, Ordering::SeqCst);
            })
            .map_err(|e| format!("spawning shard thread {}: {}", id, e))?;
        handles.push(h);
    }
    drop(err_tx);
    shutdown::wait_for_shards(&shared, handles);
    let errors: Vec<String> = err_rx.try_iter().collect();
    if shutdown::SIGNALLED.load(Ordering::SeqCst) {
        crate::log("received a termination signal; shards stopped");
    }
    if errors.is_empty() {
        crate::log("shardis stopped");
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

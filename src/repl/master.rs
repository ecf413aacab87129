//! The master's side: a replication listener and one OS thread per shard
//! that streams the shard's AOF to every replica linked to it.
//!
//! Why a listener of its own rather than a command on the client port that
//! hands the socket over: client sockets belong to the shard's io_uring
//! (multishot receives into provided buffers); taking one away from the
//! ring races with receives already in flight, which could swallow a
//! replica's first acks. A listener owned by plain threads gives the
//! replication thread the socket from the first byte, with ordinary
//! non-blocking reads and writes, off the shard's core. The replica learns
//! its port on the client port (`REPLCONF SHARDIS-HELLO`, after AUTH), so
//! nothing new has to be configured or opened by hand.
//!
//! A shard tells its thread each new lsn it may reveal (what its clients
//! may read: durable under `always`, written under everysec/no) over a
//! crossbeam channel; sending never blocks the shard. The thread reads
//! the records through `persist::logread` (memmap2) up to that lsn.

use super::wire::{self, Answer, Hello};
use crate::persist::logread::{LogReader, ReadError, Step};
use crossbeam_channel::{Receiver, Sender};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes of frames a link composes before writing them out.
const OUT_CHUNK: usize = 256 * 1024;
/// Handshakes being read at once (a flood of idle peers must not pile up
/// threads).
const MAX_HANDSHAKES: usize = 64;
/// How long a peer may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub enum Event {
    /// The shard may reveal records up to this lsn.
    Safe(u64),
    /// A replica passed the handshake; stream from `reader`.
    Link(Box<NewLink>),
}

pub struct NewLink {
    sock: TcpStream,
    reader: LogReader,
    ip: String,
    port: u16,
    lsn: u64,
}

/// One replica link of one shard, as INFO shows it.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub ip: String,
    pub port: u16,
    pub acked: u64,
    /// Held durably in the replica's own AOF up to here.
    pub durable: u64,
    pub last_ack: Instant,
}

/// Replication counters (INFO stats).
#[derive(Default)]
pub struct Counters {
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
}

/// The node's replication identity (MANIFEST.toml keeps it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub replid: String,
    /// The history this node continues (its master's, before it was
    /// promoted) and, per shard, how far its data holds it.
    pub replid2: String,
    pub second: Vec<u64>,
    /// The highest failover epoch seen.
    pub epoch: u64,
}

impl Ids {
    /// The node's identity as its manifest keeps it (a fresh replid if it
    /// has none yet, or with appendonly off).
    pub fn load(dir: &std::path::Path, appendonly: bool) -> Result<Ids, String> {
        let replid = super::node_replid(dir, appendonly)?;
        let m = if appendonly { crate::persist::manifest::Manifest::read(dir)? } else { None };
        Ok(match m {
            Some(m) => Ids { replid, replid2: m.replid2, second: m.second_offsets, epoch: m.epoch },
            None => Ids { replid, ..Ids::default() },
        })
    }
}

pub struct Master {
    /// Changes on promotion and when a higher epoch is seen.
    ids: Mutex<Ids>,
    /// The replication listener's port.
    pub port: u16,
    feeds: Vec<Sender<Event>>,
    /// Per shard: the last safe lsn the shard published.
    pub safe: Vec<AtomicU64>,
    /// Per shard: its thread has links, so wants to be woken by new lsns
    /// (without replicas a shard's write costs no wake-up).
    linked: Vec<std::sync::atomic::AtomicBool>,
    /// Per shard: its links, for INFO and ROLE.
    pub links: Vec<Mutex<Vec<LinkInfo>>>,
    pub counters: Counters,
    handshakes: AtomicUsize,
    /// Bumped when a writer waits for acknowledgements: every shard's
    /// thread then asks its replicas to acknowledge at once.
    getack: AtomicU64,
    /// Per shard: it has writers waiting for acknowledgements (WAIT,
    /// WAITAOF, `repl-sync-ack`), so wants a message when acks advance.
    waiting: Vec<std::sync::atomic::AtomicBool>,
    /// Replicas whose every link acknowledged within `min-replicas-max-lag`
    /// (Redis's good replicas; refreshed by shard 0's thread).
    pub good: AtomicUsize,
    /// Per shard: the lsn that `min-replicas-to-write` replicas hold
    /// durably (`repl-sync-ack` releases replies up to it).
    pub sync_acked: Vec<AtomicU64>,
}

static MASTER: OnceLock<Master> = OnceLock::new();

/// `min-replicas-to-write` is not met: writes are refused (NOREPLICAS).
/// Kept by shard 0's replication thread (and at start) so that the gate
/// costs one load.
static WRITES_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[inline]
pub fn writes_refused() -> bool {
    WRITES_REFUSED.load(Ordering::Relaxed)
}

/// What the replication threads read of the config on every turn.
#[derive(Clone, Copy)]
struct Knobs {
    timeout: Duration,
    ping: Duration,
    min_replicas: usize,
    max_lag: Duration,
    is_master: bool,
}

impl Knobs {
    fn read(shared: &crate::shard::Shared) -> Knobs {
        let f = |c: &crate::config::Config| Knobs {
            timeout: Duration::from_secs(c.repl_timeout),
            ping: Duration::from_secs(c.repl_ping_replica_period),
            min_replicas: c.min_replicas_to_write as usize,
            max_lag: Duration::from_secs(c.min_replicas_max_lag),
            is_master: c.replicaof.is_empty(),
        };
        match shared.config.lock() {
            Ok(c) => f(&c),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Refresh `writes_refused` from the good replicas.
    fn refresh_refused(&self, good: usize) {
        WRITES_REFUSED.store(self.is_master && self.min_replicas > 0 && good < self.min_replicas, Ordering::Relaxed);
    }
}

pub fn get() -> Option<&'static Master> {
    MASTER.get()
}

/// The node's replication identity now.
pub fn ids() -> Option<Ids> {
    MASTER.get().map(|m| m.ids.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Change the node's identity, durably first (the manifest), then in
/// memory. Err leaves both as they were.
pub fn update_ids(dir: &std::path::Path, f: impl FnOnce(&mut Ids)) -> Result<Ids, String> {
    let m = MASTER.get().ok_or("replication is not running (appendonly no)")?;
    let mut g = m.ids.lock().unwrap_or_else(|p| p.into_inner());
    let mut next = g.clone();
    f(&mut next);
    if next != *g {
        let n = next.clone();
        crate::persist::manifest::Manifest::update(dir, move |m| {
            m.replid = n.replid;
            m.replid2 = n.replid2;
            m.second_offsets = n.second;
            m.epoch = n.epoch;
        })?;
        *g = next;
    }
    Ok(g.clone())
}

pub fn counters() -> Option<&'static Counters> {
    MASTER.get().map(|m| &m.counters)
}

/// A shard may reveal up to `lsn` now (called by the shard; never blocks).
#[inline]
pub fn notify(shard: usize, lsn: u64) {
    let Some(m) = MASTER.get() else { return };
    if m.safe[shard].load(Ordering::Relaxed) < lsn {
        m.safe[shard].store(lsn, Ordering::Relaxed);
        if m.linked[shard].load(Ordering::Relaxed) {
            let _ = m.feeds[shard].send(Event::Safe(lsn));
        }
    }
}

/// Shard `shard` has writers waiting for acknowledgements (or no longer):
/// while it has, its replicas are asked to acknowledge at once and the
/// shard hears of every ack (`Msg::ReplAcked`).
pub fn set_waiting(shard: usize, on: bool) {
    let Some(m) = MASTER.get() else { return };
    let was = m.waiting[shard].swap(on, Ordering::AcqRel);
    if on && !was {
        m.getack.fetch_add(1, Ordering::AcqRel);
    }
}

/// Ask every replica to acknowledge at once.
pub fn request_acks() {
    if let Some(m) = MASTER.get() {
        m.getack.fetch_add(1, Ordering::AcqRel);
    }
}

/// How many replicas have a link on every shard that passes `ok(shard,
/// link)`. A replica is known by the address it announced.
fn count_replicas(m: &Master, ok: impl Fn(usize, &LinkInfo) -> bool) -> usize {
    let mut passed: std::collections::HashMap<(String, u16), usize> = Default::default();
    for (s, links) in m.links.iter().enumerate() {
        let Ok(g) = links.lock() else { continue };
        for l in g.iter().filter(|l| ok(s, l)) {
            *passed.entry((l.ip.clone(), l.port)).or_default() += 1;
        }
    }
    passed.values().filter(|&&n| n == m.links.len()).count()
}

/// How many replicas acknowledged, on every shard `s`, at least
/// `targets[s]` (applied, or durable in their own AOF with `durable`).
pub fn replicas_at(targets: &[u64], durable: bool) -> usize {
    let Some(m) = MASTER.get() else { return 0 };
    count_replicas(m, |s, l| {
        let at = if durable { l.durable } else { l.acked };
        at >= targets.get(s).copied().unwrap_or(0)
    })
}

/// Replicas whose every shard link acknowledged within `max_lag` (Redis's
/// good replicas, for `min-replicas-to-write`; whole seconds, as Redis).
fn count_good(m: &Master, max_lag: Duration) -> usize {
    count_replicas(m, |_, l| l.last_ack.elapsed().as_secs() <= max_lag.as_secs())
}

/// Start the listener and the per-shard threads. `initial[s]` is what
/// shard s may reveal at start-up.
pub fn start(shared: Arc<crate::shard::Shared>, ids: Ids, initial: Vec<u64>) -> Result<(), String> {
    let cfg = shared.config_snapshot();
    let host = cfg.bind.split_whitespace().next().unwrap_or("127.0.0.1").to_string();
    let listener =
        TcpListener::bind((host.as_str(), 0)).map_err(|e| format!("replication listener on {}: {}", host, e))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut feeds = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..shared.nshards {
        let (tx, rx) = crossbeam_channel::unbounded();
        feeds.push(tx);
        rxs.push(rx);
    }
    let m = Master {
        ids: Mutex::new(ids.clone()),
        port,
        feeds,
        safe: initial.iter().map(|&l| AtomicU64::new(l)).collect(),
        linked: (0..shared.nshards).map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
        links: (0..shared.nshards).map(|_| Mutex::new(Vec::new())).collect(),
        counters: Counters::default(),
        handshakes: AtomicUsize::new(0),
        getack: AtomicU64::new(0),
        waiting: (0..shared.nshards).map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
        good: AtomicUsize::new(0),
        // What the AOF held at start-up waits for no replica's ack, as
        // when repl-sync-ack takes effect on a running server: a master
        // restarted with `repl-sync-ack` held every reply, PING and INFO
        // included, until a replica acknowledged its whole log; but its
        // replicas follow the new master by then, so monitors saw it down
        // for good and never re-pointed it (found by scripts/chaos).
        sync_acked: initial.iter().map(|&l| AtomicU64::new(l)).collect(),
    };
    let started = format!("replication listener on {}:{} (replid {}, epoch {})", host, port, ids.replid, ids.epoch);
    if MASTER.set(m).is_err() {
        return Err("replication already started".into());
    }
    Knobs::read(&shared).refresh_refused(0);
    let root = PathBuf::from(&cfg.dir);
    for (s, rx) in rxs.into_iter().enumerate() {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("repl-{}", s))
            .spawn(move || shard_thread(&shared, s, rx))
            .map_err(|e| format!("spawning replication thread {}: {}", s, e))?;
    }
    std::thread::Builder::new()
        .name("repl-listen".into())
        .spawn(move || accept_loop(listener, shared, root))
        .map_err(|e| format!("spawning replication listener: {}", e))?;
    crate::log(&started);
    Ok(())
}

fn accept_loop(listener: TcpListener, shared: Arc<crate::shard::Shared>, root: PathBuf) {
    for conn in listener.incoming() {
        let Ok(sock) = conn else { continue };
        let Some(m) = get() else { return };
        if m.handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            m.handshakes.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: too many peers mid-handshake
        }
        let (shared, root) = (shared.clone(), root.clone());
        let spawned = std::thread::Builder::new().name("repl-hello".into()).spawn(move || {
            let peer = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            if let Err(e) = handshake(sock, &shared, &root) {
                crate::log(&format!("replication: refused {}: {}", peer, e));
            }
            m.handshakes.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            m.handshakes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Read a replica's `Hello`, answer it, and hand the link to its shard's
/// thread. Err says why the peer was refused (for the log).
fn handshake(mut sock: TcpStream, shared: &crate::shard::Shared, root: &std::path::Path) -> Result<(), String> {
    let m = get().ok_or("replication is not running")?;
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::new();
    let hello = loop {
        let mut chunk = [0u8; 1024];
        let n = sock.read(&mut chunk).map_err(|e| format!("reading the handshake: {}", e))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match Hello::parse(&buf) {
            Ok(Some(h)) => break h,
            Ok(None) => continue,
            Err(e) => return refuse(&mut sock, &format!("ERR bad replication handshake: {}", e)),
        }
    };
    // As AUTH: the ACL user (masteruser, or default) and its password.
    let users = shared.acl.snapshot();
    let name = if hello.user.is_empty() { "default" } else { hello.user.as_str() };
    if !users.get(name).is_some_and(|u| u.password_ok(&hello.password)) {
        shared.acl.count("auth");
        return refuse(
            &mut sock,
            &format!("ERR invalid username-password pair or user is disabled (masteruser '{}', masterauth)", name),
        );
    }
    if hello.shard >= m.feeds.len() {
        return refuse(&mut sock, &format!("ERR no shard {} (this master has {})", hello.shard, m.feeds.len()));
    }
    let safe = m.safe[hello.shard].load(Ordering::Relaxed);
    let dir = crate::persist::shard_dir(root, hello.shard);
    let ids = m.ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Where in this node's own log the asked history continues.
    let from = if hello.replid == ids.replid {
        if hello.lsn > safe {
            return refuse(
                &mut sock,
                &format!("ERR lsn {} of shard {} is ahead of this master's log (at {})", hello.lsn, hello.shard, safe),
            );
        }
        Some(hello.lsn)
    } else if !ids.replid2.is_empty() && hello.replid == ids.replid2 && ids.second.len() == m.feeds.len() {
        let second = ids.second[hello.shard];
        if hello.lsn > second {
            let d = Answer::Diverged { at: second };
            crate::log(&format!(
                "replication: shard {}: {} holds lsn {} of the previous history, which ends here at {}: it diverged",
                hello.shard, hello.ip, hello.lsn, second
            ));
            m.counters.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            let _ = sock.write_all(d.encode().as_bytes());
            return Ok(());
        }
        super::history::own_lsn(hello.shard, &ids.replid2, hello.lsn)
    } else {
        None
    };
    let cont = from.map(|lsn| (lsn, LogReader::after(&dir, lsn, safe)));
    let (reader, answer) = match cont {
        Some((lsn, Ok(r))) => {
            m.counters.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            (r, Answer::Continue { lsn, replid: ids.replid.clone() })
        }
        Some((_, Err(ReadError::Damaged(e)))) => return refuse(&mut sock, &format!("ERR cannot read the log: {}", e)),
        other => {
            if other.is_some() || hello.replid != "?" {
                m.counters.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            }
            let r = full_reader(root, hello.shard, safe).map_err(|e| format!("full sync: {}", e))?;
            m.counters.sync_full.fetch_add(1, Ordering::Relaxed);
            let lsn = r.position();
            (r, Answer::FullSync { replid: ids.replid.clone(), lsn })
        }
    };
    sock.write_all(answer.encode().as_bytes()).map_err(|e| format!("answering: {}", e))?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let ip = if hello.ip.is_empty() {
        sock.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
    } else {
        hello.ip.clone()
    };
    crate::log(&format!(
        "replication: replica {}:{} linked to shard {} ({})",
        ip,
        hello.port,
        hello.shard,
        match &answer {
            Answer::Continue { lsn, .. } if hello.replid != ids.replid => {
                format!("partial sync of the previous history from lsn {} (its lsn {})", lsn, hello.lsn)
            }
            Answer::Continue { lsn, .. } => format!("partial sync from lsn {}", lsn),
            _ => "full sync".to_string(),
        }
    ));
    let link = NewLink { sock, reader, ip, port: hello.port, lsn: hello.lsn };
    let _ = m.feeds[hello.shard].send(Event::Link(Box::new(link)));
    Ok(())
}

/// A full-sync reader; a rewrite may replace the base between reading the
/// manifest and opening the image, so try a few times.
fn full_reader(root: &std::path::Path, shard: usize, safe: u64) -> Result<LogReader, ReadError> {
    let mut last = None;
    for _ in 0..5 {
        match LogReader::full(root, shard, safe) {
            Ok(r) => return Ok(r),
            Err(e @ ReadError::Gone { .. }) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ReadError::Gone { lsn: 0 }))
}

fn refuse(sock: &mut TcpStream, e: &str) -> Result<(), String> {
    let _ = sock.write_all(Answer::Refused(e.to_string()).encode().as_bytes());
    Err(e.to_string())
}

/// One linked replica of a shard.
struct Link {
    sock: TcpStream,
    reader: LogReader,
    ip: String,
    port: u16,
    acked: u64,
    durable: u64,
    out: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
    last_ack: Instant,
    last_send: Instant,
    /// A full sync's progress line: when it was last logged, bytes then.
    progress: (Instant, usize),
    /// The last compose stopped at OUT_CHUNK with records left up to
    /// `safe`: the thread must come back at once, not after the idle wait.
    more: bool,
}

fn shard_thread(shared: &crate::shard::Shared, shard: usize, rx: Receiver<Event>) {
    let Some(m) = get() else { return };
    let mut links: Vec<Link> = Vec::new();
    let mut safe = m.safe[shard].load(Ordering::Relaxed);
    let mut rec = Vec::new();
    let mut getack_seen = m.getack.load(Ordering::Acquire);
    loop {
        let busy = links.iter().any(|l| l.sent < l.out.len() || l.more);
        // A writer waiting for acks wants them read as they come.
        let waiting = m.waiting.iter().any(|w| w.load(Ordering::Relaxed));
        let wait = if busy || waiting { Duration::from_millis(1) } else { Duration::from_millis(100) };
        let mut events = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(ev) => events.push(ev),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        events.extend(rx.try_iter());
        for ev in events {
            match ev {
                Event::Safe(l) => safe = safe.max(l),
                Event::Link(n) => {
                    let now = Instant::now();
                    links.push(Link {
                        sock: n.sock,
                        reader: n.reader,
                        ip: n.ip,
                        port: n.port,
                        acked: n.lsn,
                        durable: 0,
                        out: Vec::new(),
                        sent: 0,
                        inbuf: Vec::new(),
                        last_ack: now,
                        last_send: now,
                        progress: (now, 0),
                        more: false,
                    })
                }
            }
        }
        // Published while nobody was woken for it (no links then).
        safe = safe.max(m.safe[shard].load(Ordering::Relaxed));
        m.linked[shard].store(!links.is_empty(), Ordering::Relaxed);
        let knobs = Knobs::read(shared);
        if shard == 0 {
            let good = count_good(m, knobs.max_lag);
            m.good.store(good, Ordering::Relaxed);
            knobs.refresh_refused(good);
        }
        if links.is_empty() {
            continue;
        }
        let getack = m.getack.load(Ordering::Acquire);
        if getack != getack_seen {
            getack_seen = getack;
            for l in links.iter_mut() {
                wire::frame_u64(&mut l.out, wire::GETACK, getack);
            }
        }
        // Acks moved (or a link went): writers waiting for them may go on.
        let mut advanced = false;
        links.retain_mut(|l| {
            let before = (l.acked, l.durable);
            let r = pump(l, safe, &mut rec, (knobs.timeout, knobs.ping), waiting);
            advanced |= r.is_err() || (l.acked, l.durable) != before;
            match r {
                Ok(()) => {
                    log_progress(shard, l);
                    true
                }
                Err(e) => {
                    crate::log(&format!("replication: shard {}: link to {}:{} dropped: {}", shard, l.ip, l.port, e));
                    false
                }
            }
        });
        publish(m, shard, &links, knobs.min_replicas);
        if advanced {
            wake_waiters(shared, m);
        }
    }
}

/// A full sync logs its progress at most once a second: bytes of the
/// base image sent, the share, the rate.
fn log_progress(shard: usize, l: &mut Link) {
    let Some((done, total)) = l.reader.base_progress() else { return };
    let (at, before) = l.progress;
    let secs = at.elapsed().as_secs_f64();
    if secs < 1.0 {
        return;
    }
    crate::log(&format!(
        "replication: shard {}: full sync to {}:{}: {} of {} MB ({:.0}%), {:.1} MB/s",
        shard,
        l.ip,
        l.port,
        done >> 20,
        total >> 20,
        done as f64 * 100.0 / total.max(1) as f64,
        (done.saturating_sub(before)) as f64 / secs / (1 << 20) as f64
    ));
    l.progress = (Instant::now(), done);
}

/// Tell the shards with writers waiting for acknowledgements that acks
/// advanced.
fn wake_waiters(shared: &crate::shard::Shared, m: &Master) {
    let mut bells = vec![false; shared.nshards];
    for (s, w) in m.waiting.iter().enumerate() {
        if w.load(Ordering::Acquire) && shared.post_external(s, crate::shard::Msg::ReplAcked) {
            bells[s] = true;
        }
    }
    if bells.iter().any(|&b| b) {
        crate::net::ring_doorbells_now(shared, &bells);
    }
}

/// INFO's view of the links, and the retention floor: compaction keeps
/// what the slowest linked replica still needs (the last floor stays when
/// they all go, so one that comes back can still continue).
fn publish(m: &Master, shard: usize, links: &[Link], sync_n: usize) {
    if let Ok(mut g) = m.links[shard].lock() {
        *g = links
            .iter()
            .map(|l| LinkInfo {
                ip: l.ip.clone(),
                port: l.port,
                acked: l.acked,
                durable: l.durable,
                last_ack: l.last_ack,
            })
            .collect();
    }
    // What `sync_n` replicas hold durably: the sync_n-th highest.
    if sync_n > 0 && links.len() >= sync_n {
        let mut d: Vec<u64> = links.iter().map(|l| l.durable).collect();
        d.sort_unstable_by(|a, b| b.cmp(a));
        m.sync_acked[shard].fetch_max(d[sync_n - 1], Ordering::AcqRel);
    }
    if let (Some(st), Some(min)) = (crate::persist::rewrite::status(), links.iter().map(|l| l.acked).min()) {
        st.retain_floor[shard].store(min + 1, Ordering::Release);
    }
}

/// Move one link forward: read its acks, compose frames up to `safe`,
/// write what the socket takes. With `ask` (writers wait for acks), new
/// records are followed by a request to acknowledge them at once. Err
/// drops the link.
fn pump(
    l: &mut Link,
    safe: u64,
    rec: &mut Vec<u8>,
    (timeout, ping): (Duration, Duration),
    ask: bool,
) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    loop {
        match l.sock.read(&mut chunk) {
            Ok(0) => return Err("closed by the replica".into()),
            Ok(n) => {
                l.inbuf.extend_from_slice(&chunk[..n]);
                let mut pos = 0;
                while let Some((tag, body, used)) = wire::parse_frame(&l.inbuf[pos..])? {
                    if tag != wire::ACK {
                        return Err(format!("unexpected frame '{}' from a replica", tag as char));
                    }
                    let (lsn, durable) = wire::ack_body(body);
                    if lsn > safe || durable > lsn {
                        return Err(format!("acknowledged lsn {}/{} beyond the log (at {})", lsn, durable, safe));
                    }
                    l.acked = l.acked.max(lsn);
                    l.durable = l.durable.max(durable);
                    l.last_ack = Instant::now();
                    pos += used;
                }
                l.inbuf.drain(..pos);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    if l.last_ack.elapsed() > timeout {
        return Err(format!("no acknowledgement for {} s (repl-timeout)", timeout.as_secs()));
    }
    if l.sent == l.out.len() {
        l.out.clear();
        l.sent = 0;
        l.more = true;
        while l.out.len() < OUT_CHUNK {
            rec.clear();
            match l.reader.next(safe, rec).map_err(|e| e.to_string())? {
                Step::Base => wire::frame(&mut l.out, wire::BASE, rec),
                Step::BaseEnd { lsn } => wire::frame_u64(&mut l.out, wire::BASE_END, lsn),
                Step::Log { .. } => wire::frame(&mut l.out, wire::LOG, rec),
                Step::Idle => {
                    l.more = false;
                    break;
                }
            }
        }
        if ask && !l.out.is_empty() {
            wire::frame_u64(&mut l.out, wire::GETACK, 0);
        }
        if l.out.is_empty() && l.last_send.elapsed() >= ping {
            wire::frame_u64(&mut l.out, wire::PING, safe);
        }
    }
    while l.sent < l.out.len() {
        match l.sock.write(&l.out[l.sent..]) {
            Ok(0) => return Err("the socket takes no more".into()),
            Ok(n) => {
                l.sent += n;
                l.last_send = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

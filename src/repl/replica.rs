//! The replica's side: one link thread per master shard. Each learns the
//! master's replication port on the master's client port (AUTH, then
//! `REPLCONF SHARDIS-HELLO`), opens a connection from this server's own
//! `bind` address, asks to continue from the position it holds for that
//! master shard, and applies what streams in: it routes each record's
//! commands by key to this server's shards (`route`), which apply them on
//! the replication road and log them, with the position, in their own
//! AOF. It acknowledges its position every second.
//!
//! Positions: every shard of this server keeps, per master shard, the
//! (replid, lsn) it has applied (`REPLPOS` in its AOF, in the same record
//! as the data, so they are durable together). A shard skips parts of
//! records at or below its own position, so the link may resume from the
//! lowest position over the shards and nothing is applied twice.

use super::wire::{self, Answer, Hello};
use crate::persist::record;
use crate::protocol::client::{self, Value};
use crate::shard::{Msg, ReplPart, Shared};
use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Replication state of this server as a replica (INFO, ROLE).
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The `set_master` generation it describes.
    pub gen: u64,
    pub host: String,
    pub port: u16,
    pub master_shards: usize,
    /// Per master shard.
    pub links: Vec<LinkStatus>,
}

#[derive(Clone, Debug)]
pub struct LinkStatus {
    pub up: bool,
    pub syncing: bool,
    /// Position applied (handed to this server's shards, in order).
    pub applied: u64,
    /// Highest lsn received.
    pub read: u64,
    pub last_io: Instant,
    /// When the link last went down (None: never up yet), for Redis's
    /// `master_link_down_since_seconds`, which Sentinel weighs.
    pub down_since: Option<Instant>,
}

impl Default for LinkStatus {
    fn default() -> Self {
        LinkStatus { up: false, syncing: false, applied: 0, read: 0, last_io: Instant::now(), down_since: None }
    }
}

static STATUS: Mutex<Option<Status>> = Mutex::new(None);
/// Bumped on every REPLICAOF: link threads of an older generation stop.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Per master shard: the position to ask for (replid, lsn).
static POSITIONS: Mutex<Option<HashMap<usize, (String, u64)>>> = Mutex::new(None);

pub fn status() -> Option<Status> {
    STATUS.lock().ok().and_then(|g| g.clone())
}

/// Positions found in this server's data at start-up: for each master
/// shard, the lowest over this server's shards (`pos[r]` is shard r's).
pub fn set_positions(per_shard: &[std::collections::BTreeMap<u16, (Box<str>, u64)>]) {
    let mut out: HashMap<usize, (String, u64)> = HashMap::new();
    for m in per_shard.iter().flat_map(|p| p.keys()).copied().collect::<std::collections::BTreeSet<u16>>() {
        let all: Vec<&(Box<str>, u64)> = per_shard.iter().filter_map(|p| p.get(&m)).collect();
        let same = all.windows(2).all(|w| w[0].0 == w[1].0);
        if all.len() == per_shard.len() && same {
            let lsn = all.iter().map(|p| p.1).min().unwrap_or(0);
            out.insert(m as usize, (all[0].0.to_string(), lsn));
        }
    }
    if let Ok(mut g) = POSITIONS.lock() {
        *g = Some(out);
    }
}

fn position(m: usize) -> (String, u64) {
    POSITIONS.lock().ok().and_then(|g| g.as_ref().and_then(|p| p.get(&m).cloned())).unwrap_or(("?".into(), 0))
}

fn set_position(m: usize, replid: &str, lsn: u64) {
    if let Ok(mut g) = POSITIONS.lock() {
        g.get_or_insert_with(HashMap::new).insert(m, (replid.to_string(), lsn));
    }
}

/// Change link `m`'s status if it is still generation `gen`'s: a link
/// thread of the previous master, stopping after a REPLICAOF, marked the
/// new master's link down for good (INFO said master_link_status:down
/// while it streamed; found by scripts/chaos).
fn update(gen: u64, m: usize, f: impl FnOnce(&mut LinkStatus)) {
    if let Ok(mut g) = STATUS.lock() {
        if let Some(st) = g.as_mut().filter(|st| st.gen == gen) {
            if st.links.len() <= m {
                st.links.resize(m + 1, LinkStatus::default());
            }
            f(&mut st.links[m]);
        }
    }
}

/// Follow `master` ("host port"), or stop following (None). Link threads
/// of the previous master stop within a second.
pub fn set_master(shared: &Arc<Shared>, master: Option<(String, u16)>) {
    let gen = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let Some((host, port)) = master else {
        if let Ok(mut g) = STATUS.lock() {
            *g = None;
        }
        return;
    };
    if let Ok(mut g) = STATUS.lock() {
        *g = Some(Status { gen, host: host.clone(), port, master_shards: 0, links: Vec::new() });
    }
    crate::log(&format!("replica of {}:{}: connecting", host, port));
    let shared = shared.clone();
    let _ = std::thread::Builder::new().name("repl-replica".into()).spawn(move || manager(shared, host, port, gen));
}

fn current(gen: u64) -> bool {
    GENERATION.load(Ordering::SeqCst) == gen
}

/// Learn the master's shard count, then run one link per master shard
/// (again if the count changes).
fn manager(shared: Arc<Shared>, host: String, port: u16, gen: u64) {
    let mut running = 0usize;
    while current(gen) {
        match discover(&shared, &host, port) {
            Ok(hello) if hello.nshards != running => {
                if running != 0 {
                    crate::log(&format!("master now has {} shards (was {}); relinking", hello.nshards, running));
                    return set_master(&shared, Some((host, port)));
                }
                running = hello.nshards;
                if let Ok(mut g) = STATUS.lock() {
                    if let Some(st) = g.as_mut().filter(|st| st.gen == gen) {
                        st.master_shards = running;
                        st.links = vec![LinkStatus::default(); running];
                    }
                }
                for m in 0..running {
                    let (shared, host) = (shared.clone(), host.clone());
                    let _ = std::thread::Builder::new()
                        .name(format!("repl-link-{}", m))
                        .spawn(move || link_loop(shared, host, port, m, gen));
                }
            }
            Ok(_) => {}
            Err(e) if running == 0 => crate::log(&format!("replica of {}:{}: {}", host, port, e)),
            Err(_) => {}
        }
        sleep_while(gen, Duration::from_secs(5));
    }
}

fn sleep_while(gen: u64, d: Duration) {
    let end = Instant::now() + d;
    while current(gen) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct MasterHello {
    repl_port: u16,
    nshards: usize,
}

/// A connection to `addr` from this server's own bind address (Redis's
/// bind-source-addr), so that a master lists replicas on one machine under
/// their own loopback addresses.
fn connect_from(bind: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let src: Option<std::net::IpAddr> = bind.split_whitespace().next().and_then(|b| b.parse().ok());
    let src = src.filter(|ip| ip.is_ipv4() == addr.is_ipv4() && !ip.is_unspecified());
    let Some(src) = src else { return TcpStream::connect_timeout(&addr, Duration::from_secs(5)) };
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket calls on a descriptor we own until it is handed
    // to the TcpStream; the sockaddr structs outlive the calls.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = TcpStream::from_raw_fd(fd);
        let (sa, len) = sockaddr(SocketAddr::new(src, 0));
        if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (sa, len) = sockaddr(addr);
        if libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(sock)
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large enough for either form.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {}", host, e))?
        .next()
        .ok_or_else(|| format!("{} has no address", host))
}

/// AUTH (if masterauth is set) and `REPLCONF SHARDIS-HELLO` on the
/// master's client port.
fn discover(shared: &Shared, host: &str, port: u16) -> Result<MasterHello, String> {
    let cfg = shared.config_snapshot();
    let addr = resolve(host, port)?;
    let sock = connect_from(&cfg.bind, addr).map_err(|e| format!("connecting to {}: {}", addr, e))?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut w = sock.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(sock);
    let mut ask = |args: &[&[u8]]| -> Result<Value, String> {
        w.write_all(&client::encode_command(args)).map_err(|e| e.to_string())?;
        let v = client::read_value(&mut r).map_err(|e| e.to_string())?;
        if v.is_error() {
            return Err(format!("master answered {:?}", v));
        }
        Ok(v)
    };
    if !cfg.masterauth.is_empty() {
        if cfg.masteruser.is_empty() {
            ask(&[b"AUTH", cfg.masterauth.as_bytes()])?;
        } else {
            ask(&[b"AUTH", cfg.masteruser.as_bytes(), cfg.masterauth.as_bytes()])?;
        }
    }
    let v = ask(&[b"REPLCONF", b"SHARDIS-HELLO"])?;
    let items = v.as_items().ok_or("REPLCONF SHARDIS-HELLO: not an array")?;
    let int = |i: usize| items.get(i).and_then(|v| v.as_int()).ok_or("REPLCONF SHARDIS-HELLO: bad reply");
    let repl_port = u16::try_from(int(0)?).map_err(|_| "bad replication port")?;
    let nshards = int(1)?;
    if !(1..=1024).contains(&nshards) {
        return Err(format!("master claims {} shards", nshards));
    }
    let epoch = items.get(3).and_then(|v| v.as_int()).unwrap_or(0).max(0) as u64;
    fence_epoch(shared, host, port, epoch)?;
    Ok(MasterHello { repl_port, nshards: nshards as usize })
}

/// Epoch fencing: refuse a master whose failover epoch is below the
/// highest this node has seen (an old master that came back after a
/// failover); adopt a higher one, durably, before following it.
fn fence_epoch(shared: &Shared, host: &str, port: u16, epoch: u64) -> Result<(), String> {
    let Some(mine) = super::master::ids() else { return Ok(()) };
    if epoch < mine.epoch {
        return Err(format!(
            "master {}:{} is at failover epoch {}, below {} (the highest this node has seen): refusing its stream",
            host, port, epoch, mine.epoch
        ));
    }
    if epoch > mine.epoch {
        let dir = shared.config_snapshot().dir;
        super::master::update_ids(std::path::Path::new(&dir), |ids| ids.epoch = epoch)?;
        crate::log(&format!("following {}:{} at failover epoch {} (was {})", host, port, epoch, mine.epoch));
    }
    Ok(())
}

/// Keep master shard `m` linked until the generation changes.
fn link_loop(shared: Arc<Shared>, host: String, port: u16, m: usize, gen: u64) {
    let mut failures = 0u32;
    while current(gen) {
        let started = Instant::now();
        let r = run_link(&shared, &host, port, m, gen);
        update(gen, m, |l| {
            if l.up {
                l.down_since = Some(Instant::now());
            }
            l.up = false;
            l.syncing = false;
        });
        if let Err(e) = r {
            if current(gen) {
                crate::log(&format!("replica: link to {}:{} shard {}: {}", host, port, m, e));
            }
        }
        failures = if started.elapsed() > Duration::from_secs(5) { 1 } else { failures + 1 };
        // 100 ms, doubling, at most 2 s between tries.
        sleep_while(gen, Duration::from_millis((100u64 << failures.min(5)).min(2000)));
    }
}

/// What one link posts to this server's shards, batched per read.
struct Poster<'a> {
    shared: &'a Shared,
    bells: Vec<bool>,
}

impl Poster<'_> {
    fn post(&mut self, to: usize, msg: Msg) {
        if self.shared.post_external(to, msg) {
            self.bells[to] = true;
        }
    }

    fn all(&mut self, msg: impl Fn() -> Msg) {
        for s in 0..self.shared.nshards {
            self.post(s, msg());
        }
    }

    fn ring(&mut self) {
        if self.bells.iter().any(|&b| b) {
            crate::net::ring_doorbells_now(self.shared, &self.bells);
            self.bells.iter_mut().for_each(|b| *b = false);
        }
    }
}

fn run_link(shared: &Shared, host: &str, port: u16, m: usize, gen: u64) -> Result<(), String> {
    let hello = discover(shared, host, port)?;
    let cfg = shared.config_snapshot();
    let addr = resolve(host, hello.repl_port)?;
    let mut sock = connect_from(&cfg.bind, addr).map_err(|e| format!("connecting to {}: {}", addr, e))?;
    let _ = sock.set_nodelay(true);
    sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let (mut replid, mut applied) = position(m);
    let ip = if cfg.replica_announce_ip.is_empty() {
        cfg.bind.split_whitespace().next().unwrap_or("").to_string()
    } else {
        cfg.replica_announce_ip.clone()
    };
    let my_port = if cfg.replica_announce_port != 0 { cfg.replica_announce_port } else { cfg.port };
    let h = Hello {
        shard: m,
        replid: replid.clone(),
        lsn: applied,
        ip,
        port: my_port,
        user: cfg.masteruser.clone(),
        password: cfg.masterauth.into_bytes(),
    };
    sock.write_all(&h.encode()).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1 << 16);
    let line = read_line(&mut sock, &mut buf, gen)?;
    let answer = Answer::parse(&line).ok_or_else(|| format!("unexpected answer {:?}", line))?;
    let mut poster = Poster { shared, bells: vec![false; shared.nshards] };
    let master_n = hello.nshards;
    let mut in_base = false;
    match answer {
        Answer::Refused(e) => return Err(format!("master refused: {}", e)),
        Answer::Continue { lsn, replid: r } if r != replid => {
            // The master continues the asked history as its replid2: from
            // here on positions are in its own log.
            crate::log(&format!(
                "replica: shard {} of {}:{}: partial sync continuing history {} at lsn {} as {} lsn {}",
                m, host, port, replid, applied, r, lsn
            ));
            replid = r;
            applied = lsn;
            let rid: Arc<str> = Arc::from(replid.as_str());
            poster.all(|| Msg::ReplPos { mshard: m as u16, replid: rid.clone(), lsn });
            poster.ring();
            set_position(m, &replid, applied);
        }
        Answer::Continue { lsn, .. } => {
            if lsn != applied {
                return Err(format!("master continues from lsn {}, asked {}", lsn, applied));
            }
            crate::log(&format!("replica: shard {} of {}:{}: partial sync from lsn {}", m, host, port, lsn));
        }
        Answer::Diverged { at } => {
            set_aside_tail(shared, m, at);
            set_position(m, "?", 0);
            return Err(format!("this node's shard {} diverged from the master after lsn {}; full sync next", m, at));
        }
        Answer::FullSync { replid: r, lsn } => {
            crate::log(&format!("replica: shard {} of {}:{}: full sync (base at lsn {})", m, host, port, lsn));
            replid = r;
            applied = lsn;
            in_base = true;
            poster.all(|| Msg::ReplReset { mshard: m as u16, master_shards: master_n as u16 });
            set_position(m, "?", 0);
        }
    }
    update(gen, m, |l| {
        l.up = true;
        l.syncing = in_base;
        l.applied = applied;
        l.read = applied;
        l.last_io = Instant::now();
    });
    let rid: Arc<str> = Arc::from(replid.as_str());
    let slots = &shared.slots;
    let master_slots = crate::shard::router::SlotMap::contiguous(master_n);
    let mut last_ack = Instant::now();
    let mut last_io = Instant::now();
    let timeout = Duration::from_secs(cfg.repl_timeout.max(1));
    let mut chunk = vec![0u8; 1 << 16];
    // Durability of what was applied: a fence asks every shard to say when
    // all it applied so far is in its AOF on disk; then `durable` = the
    // fence's lsn.
    let mut durable = 0u64;
    let mut fence: Option<(u64, Arc<std::sync::atomic::AtomicUsize>)> = None;
    // The master asked for an acknowledgement (a writer waits there).
    let mut asked = false;
    let mut fast = false;
    loop {
        // A stopping server takes no more work (its shards are draining).
        let stopping =
            shared.shutdown.load(Ordering::Relaxed) || crate::shard::shutdown::SIGNALLED.load(Ordering::Relaxed);
        if !current(gen) || stopping {
            return Ok(());
        }
        match sock.read(&mut chunk) {
            Ok(0) => return Err("closed by the master".into()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                last_io = Instant::now();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
        // A link of a previous master (REPLICAOF changed it while this
        // read waited) applies nothing more: the new link's positions
        // would not skip it.
        if !current(gen) {
            return Ok(());
        }
        let mut pos = 0;
        while let Some((tag, body, used)) = wire::parse_frame(&buf[pos..])? {
            pos += used;
            match tag {
                wire::BASE | wire::LOG => {
                    let (rec, _) = record::decode(body).map_err(|e| format!("record from the master: {}", e))?;
                    let base = tag == wire::BASE;
                    if base != in_base {
                        return Err("a base record outside a full sync, or a log record inside one".into());
                    }
                    if !base && rec.lsn != applied + 1 {
                        return Err(format!("master sent lsn {}, expected {}", rec.lsn, applied + 1));
                    }
                    let parts = super::route::split(rec.payload, rec.db, m, &master_slots, slots)?;
                    if !base && rec.txid != 0 && rec.participants > 1 {
                        let mine =
                            parts.into_iter().map(|p| (p.shard, (m as u16, rec.lsn, rid.clone(), p.db, p.payload)));
                        assemble(&mut poster, (rec.txid, rec.participants), mine.collect(), gen);
                        applied = rec.lsn;
                        continue;
                    }
                    for p in parts {
                        let msg = Msg::ReplApply {
                            mshard: m as u16,
                            lsn: rec.lsn,
                            replid: rid.clone(),
                            base,
                            db: p.db,
                            payload: p.payload,
                        };
                        poster.post(p.shard, msg);
                    }
                    if !base {
                        applied = rec.lsn;
                    }
                }
                wire::BASE_END => {
                    if !in_base {
                        return Err("base end outside a full sync".into());
                    }
                    in_base = false;
                    applied = wire::body_u64(body);
                    let r = rid.clone();
                    poster.all(|| Msg::ReplPos { mshard: m as u16, replid: r.clone(), lsn: applied });
                    crate::log(&format!("replica: shard {} of {}:{}: full sync done", m, host, port));
                }
                wire::PING => {}
                wire::GETACK => asked = true,
                t => return Err(format!("unexpected frame '{}' from the master", t as char)),
            }
        }
        buf.drain(..pos);
        poster.ring();
        if !in_base && current(gen) {
            set_position(m, &replid, applied);
        }
        update(gen, m, |l| {
            l.syncing = in_base;
            l.applied = applied;
            l.read = applied;
            l.last_io = last_io;
        });
        if last_io.elapsed() > timeout {
            return Err(format!("nothing from the master for {} s (repl-timeout)", timeout.as_secs()));
        }
        let mut ack_now = false;
        if let Some((lsn, done)) = &fence {
            if done.load(Ordering::Acquire) >= shared.nshards {
                durable = durable.max(*lsn);
                fence = None;
                ack_now = true;
            }
        }
        if !in_base && fence.is_none() && applied > durable && (asked || last_ack.elapsed() >= Duration::from_secs(1)) {
            let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let d = done.clone();
            poster.all(|| Msg::ReplFence { done: d.clone() });
            poster.ring();
            fence = Some((applied, done));
        }
        // Poll quickly while a fence is out, so its ack leaves at once.
        if fence.is_some() != fast {
            fast = fence.is_some();
            let t = if fast { Duration::from_millis(1) } else { Duration::from_millis(200) };
            sock.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        }
        let periodic = last_ack.elapsed() >= Duration::from_secs(1);
        if periodic {
            last_ack = Instant::now();
            if !in_base {
                // Every shard records the position, so a restart can
                // resume from the lowest of them.
                let r = rid.clone();
                poster.all(|| Msg::ReplPos { mshard: m as u16, replid: r.clone(), lsn: applied });
                poster.ring();
            }
        }
        if asked || ack_now || periodic {
            asked = false;
            let mut ack = Vec::new();
            wire::ack(&mut ack, applied, durable.min(applied));
            sock.write_all(&ack).map_err(|e| e.to_string())?;
        }
    }
}

/// Records of master transactions being gathered from the links, by txid.
struct Gathering {
    parts: Vec<(usize, ReplPart)>,
    /// Master records arrived, and links done with it.
    arrived: u16,
    left: u16,
    /// Once handed to the shards: its done counter and participant count.
    posted: Option<(Arc<std::sync::atomic::AtomicUsize>, usize)>,
}
static ASSEMBLY: Mutex<Option<HashMap<u64, Gathering>>> = Mutex::new(None);
static ASSEMBLED: std::sync::Condvar = std::sync::Condvar::new();
/// How long a link waits for the rest of a transaction while every link
/// is up. Past it (the other part will not come: its shard did a full
/// sync), what arrived is applied: shards skip what their position
/// already covers.
const ASSEMBLY_WAIT: Duration = Duration::from_secs(5);
/// ... and while a link is down: it may still bring its part once it
/// resumes (a partial sync resends from its applied position), so the
/// transaction stays whole; bounded below the master's `repl-timeout`.
const ASSEMBLY_WAIT_LINK_DOWN: Duration = Duration::from_secs(30);
/// Transactions applied without every part (the newest ones): a part
/// of one arriving later is applied at once. Waiting for a part already
/// applied alone stalled the link for the whole wait each time.
static INCOMPLETE: Mutex<std::collections::VecDeque<u64>> = Mutex::new(std::collections::VecDeque::new());
const INCOMPLETE_KEPT: usize = 4096;

fn links_all_up() -> bool {
    STATUS.lock().ok().and_then(|g| g.as_ref().map(|st| st.links.iter().all(|l| l.up))).unwrap_or(true)
}

fn was_incomplete(txid: u64) -> bool {
    INCOMPLETE.lock().is_ok_and(|q| q.contains(&txid))
}

fn note_incomplete(txid: u64) {
    if let Ok(mut q) = INCOMPLETE.lock() {
        if q.len() >= INCOMPLETE_KEPT {
            q.pop_front();
        }
        q.push_back(txid);
    }
}

/// One master shard's record of transaction `txid` (of `need` records):
/// once all arrived, they go to this server's shards as one transaction.
/// Every link that brought a part goes on only once it is applied, so its
/// later records cannot overtake it on any shard.
fn assemble(poster: &mut Poster, (txid, need): (u64, u16), mine: Vec<(usize, ReplPart)>, gen: u64) {
    // What this link posted before the transaction must reach its shards
    // now: this link may wait below for as long as they sleep, and a
    // shard whose doorbell is marked pending is not rung by other posters.
    poster.ring();
    let Ok(mut g) = ASSEMBLY.lock() else { return };
    let new = || Gathering { parts: Vec::new(), arrived: 0, left: 0, posted: None };
    let e = g.get_or_insert_with(HashMap::new).entry(txid).or_insert_with(new);
    e.parts.extend(mine);
    e.arrived += 1;
    let start = Instant::now();
    let ready = |g: &Option<HashMap<u64, Gathering>>| {
        g.as_ref().and_then(|p| p.get(&txid)).is_none_or(|e| e.arrived >= need || e.posted.is_some())
    };
    let late = !ready(&g) && was_incomplete(txid);
    while !ready(&g) && !late {
        let waited = start.elapsed();
        if (waited > ASSEMBLY_WAIT && (waited > ASSEMBLY_WAIT_LINK_DOWN || links_all_up())) || !current(gen) {
            crate::log(&format!(
                "replica: transaction {} of the master: not every part arrived within {} s; applying what did",
                txid,
                waited.as_secs()
            ));
            note_incomplete(txid);
            break;
        }
        g = match ASSEMBLED.wait_timeout(g, Duration::from_millis(50)) {
            Ok((g, _)) => g,
            Err(_) => return,
        };
    }
    let Some(map) = g.as_mut() else { return };
    let Some(e) = map.get_mut(&txid) else { return };
    if e.posted.is_none() {
        e.posted = Some(post_txn(poster, std::mem::take(&mut e.parts)));
    }
    let posted = e.posted.clone();
    e.left += 1;
    if e.left >= e.arrived {
        map.remove(&txid);
    }
    drop(g);
    ASSEMBLED.notify_all();
    if let Some((done, n)) = posted {
        wait_applied(&done, n, gen);
    }
}

/// Hand a transaction's parts to the shards; returns its done counter and
/// how many participants will count.
fn post_txn(poster: &mut Poster, parts: Vec<(usize, ReplPart)>) -> (Arc<std::sync::atomic::AtomicUsize>, usize) {
    let mut by_shard: std::collections::BTreeMap<usize, Vec<ReplPart>> = Default::default();
    for (s, p) in parts {
        by_shard.entry(s).or_default().push(p);
    }
    let chain: Vec<(usize, Vec<ReplPart>)> = by_shard.into_iter().collect();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = chain.len();
    if let Some(&(first, _)) = chain.first() {
        let id = poster.shared.next_txid.fetch_add(1, Ordering::Relaxed);
        let msg = Msg::ReplTxn { id, chain, locked: Vec::new(), done: done.clone() };
        poster.post(first, msg);
        poster.ring();
    }
    (done, n)
}

fn wait_applied(done: &std::sync::atomic::AtomicUsize, n: usize, gen: u64) {
    while done.load(Ordering::Acquire) < n && current(gen) {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The master's answer line (CRLF stripped); what follows it stays in
/// `buf`.
fn read_line(sock: &mut TcpStream, buf: &mut Vec<u8>, gen: u64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > wire::MAX_HANDSHAKE || Instant::now() > deadline || !current(gen) {
            return Err("no answer to the handshake".into());
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk) {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// An old master's records its new master never had (logged on shard `m`
/// after lsn `at`): copied, as AOF records, to
/// `<dir>/diverged/shard<m>-after-<at>-<unix seconds>.aof` before a full
/// sync replaces the shard's data, with a log line naming the file.
fn set_aside_tail(shared: &Shared, m: usize, at: u64) {
    let root = std::path::PathBuf::from(shared.config_snapshot().dir);
    let end = super::master::get().and_then(|mm| mm.safe.get(m).map(|s| s.load(Ordering::Acquire))).unwrap_or(0);
    let out_dir = root.join("diverged");
    let path = out_dir.join(format!("shard{}-after-{}-{}.aof", m, at, crate::util::now_ms() / 1000));
    let copy = || -> Result<usize, String> {
        let mut r = crate::persist::logread::LogReader::after(&crate::persist::shard_dir(&root, m), at, end)
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {}", out_dir.display(), e))?;
        let mut bytes = Vec::new();
        let mut n = 0;
        loop {
            let len = bytes.len();
            match r.next(end, &mut bytes).map_err(|e| e.to_string())? {
                crate::persist::logread::Step::Log { .. } => n += 1,
                crate::persist::logread::Step::Idle => {
                    bytes.truncate(len);
                    break;
                }
                _ => bytes.truncate(len),
            }
        }
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {}", path.display(), e))?;
        Ok(n)
    };
    match copy() {
        Ok(n) => crate::log(&format!(
            "replica: shard {} diverged from its new master after lsn {}: {} record(s) set aside in {}",
            m,
            at,
            n,
            path.display()
        )),
        Err(e) => crate::log(&format!(
            "replica: shard {} diverged from its new master after lsn {}; its tail could not be set aside: {}",
            m, at, e
        )),
    }
}

/// This node, a master until now, follows another: it asks to continue
/// its own history (the new master may hold it as its replid2, having
/// been this node's replica), from where each shard's log ends.
pub fn adopt_own_history() {
    let (Some(ids), Some(m)) = (super::master::ids(), super::master::get()) else { return };
    let own: HashMap<usize, (String, u64)> =
        m.safe.iter().enumerate().map(|(s, l)| (s, (ids.replid.clone(), l.load(Ordering::Acquire)))).collect();
    if let Ok(mut g) = POSITIONS.lock() {
        *g = Some(own);
    }
}

/// The positions held for each master shard `0..n`, if they all continue
/// one history: (replid, lsns).
pub fn positions_of_one_history(n: usize) -> Option<(String, Vec<u64>)> {
    let g = POSITIONS.lock().ok()?;
    let p = g.as_ref()?;
    let first = p.get(&0)?.0.clone();
    let lsns: Option<Vec<u64>> = (0..n).map(|m| p.get(&m).filter(|(r, _)| *r == first).map(|(_, l)| *l)).collect();
    Some((first, lsns?)).filter(|(r, _)| r != "?")
}

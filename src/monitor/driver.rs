//! The I/O around `monitor::election`: the only socket code of
//! shardis-monitor. Plain threads and blocking sockets with timeouts, not
//! glommio: the monitor handles a few requests a second, every wait is
//! bounded by a timeout, and blocking reads make "a PING that does not come
//! back" a read timeout rather than a timer to manage.
//!
//! - One loop thread owns the `Monitor`; everything reaches it as a `Msg` on
//!   one channel and it carries out the actions in order (a `Persist` is
//!   written and fsynced before anything after it is sent).
//! - One prober thread per watched server keeps a connection, sends PING and
//!   INFO every `PROBE_PERIOD_MS`, notices a closed connection within
//!   `WATCH_MS` (a killed master is known at once, not at the next PING),
//!   and runs REPLICAOF / PUBLISH for the loop.
//! - One subscriber thread per server listens on `__sentinel__:hello`.
//!   Hellos travel through the watched servers, as Sentinel's do: monitors
//!   find each other without being told, and a real redis-sentinel sees
//!   them in the same format.
//! - A vote or opinion request to a peer runs on a short-lived thread.
//! - The listener hands each client connection to a thread of its own.

use super::api;
use super::conn::ConnState;
use super::election::{Action, Addr, Event, Hello, Monitor, HELLO_PERIOD_MS, PROBE_PERIOD_MS};
use super::{info, state_file};
use crate::protocol::client::{RespConn, Value};
use crate::protocol::parse::{parse_request, Limits, ParseOutcome};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a prober looks for a closed connection between probes.
const WATCH_MS: u64 = 20;
/// The loop ticks the election at least this often.
const TICK_MS: u64 = 20;
/// Connect timeout to servers and peers (one network; a slow connect is a
/// failed probe).
const CONNECT_MS: u64 = 500;
/// Largest request a client may send to the monitor port (the Sentinel
/// API has no large arguments).
const MAX_REQUEST: usize = 64 * 1024;
const HELLO_CHANNEL: &str = "__sentinel__:hello";

pub enum Msg {
    Event(Event),
    /// A client request; the reply goes to `reply`.
    Api {
        args: Vec<Vec<u8>>,
        /// The connection speaks RESP3 (HELLO 3): maps and nulls differ.
        resp3: bool,
        reply: Sender<Vec<u8>>,
    },
    /// A subscriber wants every Sentinel event as (channel, message).
    Subscribe(Sender<(String, String)>),
}

enum ProbeCmd {
    /// `REPLICAOF` toward `target` (None: promote) for failover `epoch`.
    ReplicaOf(Option<Addr>, u64),
    Publish(String),
}

struct ServerThreads {
    stop: Arc<AtomicBool>,
    cmds: Sender<ProbeCmd>,
}

pub struct Driver {
    mon: Monitor,
    dir: String,
    start: Instant,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    servers: BTreeMap<Addr, ServerThreads>,
    pending_votes: HashMap<u64, Sender<Vec<u8>>>,
    next_token: u64,
    subscribers: Vec<Sender<(String, String)>>,
    asks_in_flight: Arc<Mutex<BTreeSet<String>>>,
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

impl Driver {
    pub fn new(mon: Monitor, dir: String) -> Driver {
        let (tx, rx) = channel();
        Driver {
            mon,
            dir,
            start: Instant::now(),
            tx,
            rx,
            servers: BTreeMap::new(),
            pending_votes: HashMap::new(),
            next_token: 1,
            subscribers: Vec::new(),
            asks_in_flight: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// Clock the state machine's `now` is measured on.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Serve the Sentinel API on `listener` and run the loop; returns only
    /// on a fatal error (the state file cannot be written).
    pub fn run(mut self, listener: TcpListener) -> Result<(), String> {
        let tx = self.tx.clone();
        let start = self.start;
        thread::spawn(move || accept_loop(listener, tx, start));
        let (mut last_hello, mut last_tick) = (0, 0);
        loop {
            self.sync_servers();
            let now = now_ms(self.start);
            if now >= last_hello + HELLO_PERIOD_MS {
                last_hello = now;
                let names: Vec<String> = self.mon.masters.keys().cloned().collect();
                for n in names {
                    self.publish_hello(&n);
                }
            }
            // Ticks are due by the clock, not only when the channel is idle:
            // clients polling the API (a Sentinel client asks every few ms
            // during a failover) kept the loop busy and delayed ODOWN and the
            // election by hundreds of ms.
            if now >= last_tick + TICK_MS {
                last_tick = now;
                let actions = self.mon.tick(now);
                self.execute(actions)?;
            }
            let wait = (last_tick + TICK_MS).saturating_sub(now_ms(self.start)).max(1);
            let msg = self.rx.recv_timeout(Duration::from_millis(wait));
            let now = now_ms(self.start);
            let actions = match msg {
                Ok(Msg::Event(ev)) => self.mon.step(ev, now),
                Ok(Msg::Api { args, resp3, reply }) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    let h = api::handle(&mut self.mon, &args, now, token, resp3);
                    match h.reply {
                        Some(r) => {
                            // A command's actions (a Persist) come before its reply.
                            self.execute(h.actions)?;
                            let _ = reply.send(r);
                            continue;
                        }
                        None => {
                            self.pending_votes.insert(token, reply);
                            h.actions
                        }
                    }
                }
                Ok(Msg::Subscribe(s)) => {
                    self.subscribers.push(s);
                    continue;
                }
                Err(_) => continue,
            };
            self.execute(actions)?;
        }
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<(), String> {
        for a in actions {
            match a {
                Action::Persist(p) => state_file::write(&self.dir, &p)?,
                Action::ReplyVote { token, down, leader, leader_epoch } => {
                    if let Some(r) = self.pending_votes.remove(&token) {
                        let _ = r.send(api::vote_reply(down, leader.as_deref(), leader_epoch));
                    }
                }
                Action::AskPeer { peer, peer_id, master_name, master, epoch, run_id } => {
                    self.ask_peer(peer, peer_id, master_name, master, epoch, run_id)
                }
                Action::ReplicaOf { addr, target, epoch } => {
                    crate::log(&format!(
                        "REPLICAOF {} on {addr} (epoch {epoch})",
                        target.as_ref().map(|t| format!("{} {}", t.host, t.port)).unwrap_or_else(|| "NO ONE".into())
                    ));
                    self.sync_servers();
                    if let Some(s) = self.servers.get(&addr) {
                        let _ = s.cmds.send(ProbeCmd::ReplicaOf(target, epoch));
                    }
                }
                Action::Hello { master_name } => self.publish_hello(&master_name),
                Action::Event { channel, msg } => {
                    crate::log(&format!("{channel} {msg}"));
                    self.subscribers.retain(|s| s.send((channel.clone(), msg.clone())).is_ok());
                }
            }
        }
        Ok(())
    }

    fn publish_hello(&mut self, name: &str) {
        let Some(m) = self.mon.masters.get(name) else { return };
        let h = Hello {
            addr: self.mon.my_addr.clone(),
            run_id: self.mon.my_id.clone(),
            current_epoch: self.mon.current_epoch,
            master_name: name.to_string(),
            master: m.master.addr.clone(),
            config_epoch: m.config_epoch,
        }
        .encode();
        let addrs: Vec<Addr> = std::iter::once(m.master.addr.clone()).chain(m.replicas.keys().cloned()).collect();
        for a in addrs {
            if let Some(s) = self.servers.get(&a) {
                let _ = s.cmds.send(ProbeCmd::Publish(h.clone()));
            }
        }
    }

    fn ask_peer(
        &self,
        peer: Addr,
        peer_id: String,
        master_name: String,
        master: Addr,
        epoch: u64,
        run_id: Option<String>,
    ) {
        // One request per peer at a time: a hung peer does not pile up threads.
        let Ok(mut busy) = self.asks_in_flight.lock() else { return };
        if !busy.insert(peer_id.clone()) {
            return;
        }
        drop(busy);
        let (tx, busy) = (self.tx.clone(), self.asks_in_flight.clone());
        thread::spawn(move || {
            let req = [
                "SENTINEL".to_string(),
                "is-master-down-by-addr".into(),
                master.host.clone(),
                master.port.to_string(),
                epoch.to_string(),
                run_id.unwrap_or_else(|| "*".into()),
            ];
            let reply = connect(&peer, Duration::from_millis(1000))
                .and_then(|mut c| c.try_cmd(&req).map_err(|e| e.to_string()));
            if let Ok(mut b) = busy.lock() {
                b.remove(&peer_id);
            }
            let Ok(Value::Array(v)) = reply else { return };
            let (Some(down), Some(leader), Some(le)) = (
                v.first().and_then(Value::as_int),
                v.get(1).and_then(Value::as_bytes),
                v.get(2).and_then(Value::as_int),
            ) else {
                return;
            };
            let leader = String::from_utf8_lossy(leader).into_owned();
            let _ = tx.send(Msg::Event(Event::VoteReply {
                peer: peer_id,
                master_name,
                down: down == 1,
                leader: Some(leader).filter(|l| l != "*"),
                leader_epoch: le.max(0) as u64,
            }));
        });
    }

    /// One prober and one hello subscriber per server the machine knows.
    fn sync_servers(&mut self) {
        let mut want: BTreeMap<Addr, (Auth, u64)> = BTreeMap::new();
        for m in self.mon.masters.values() {
            for a in std::iter::once(&m.master.addr).chain(m.replicas.keys()) {
                let auth = Auth { user: m.config.auth_user.clone(), pass: m.config.auth_pass.clone() };
                want.entry(a.clone()).or_insert((auth, m.config.down_after_ms));
            }
        }
        self.servers.retain(|a, t| {
            let keep = want.contains_key(a);
            if !keep {
                t.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        for (a, (pass, down_after)) in want {
            if self.servers.contains_key(&a) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let (ctx, crx) = channel();
            let (tx, s2, a2, p2, start) = (self.tx.clone(), stop.clone(), a.clone(), pass.clone(), self.start);
            thread::spawn(move || probe_loop(a2, p2, down_after, crx, tx, s2, start));
            let (tx, s2, a2) = (self.tx.clone(), stop.clone(), a.clone());
            thread::spawn(move || hello_loop(a2, pass, tx, s2));
            self.servers.insert(a, ServerThreads { stop, cmds: ctx });
        }
    }
}

fn connect(a: &Addr, io: Duration) -> Result<RespConn, String> {
    let addr: SocketAddr = (a.host.as_str(), a.port)
        .to_socket_addrs()
        .map_err(|e| format!("{a}: {e}"))?
        .next()
        .ok_or_else(|| format!("{a}: no address"))?;
    RespConn::connect_addr(addr, Duration::from_millis(CONNECT_MS), io).map_err(|e| format!("{a}: {e}"))
}

/// How the monitor authenticates to a watched server (Sentinel's
/// auth-user / auth-pass).
#[derive(Clone, Debug, Default)]
struct Auth {
    user: String,
    pass: String,
}

fn open(a: &Addr, auth: &Auth, io: Duration) -> Result<RespConn, String> {
    let mut c = connect(a, io)?;
    if !auth.pass.is_empty() {
        let r = if auth.user.is_empty() {
            c.try_cmd(&["AUTH", &auth.pass])
        } else {
            c.try_cmd(&["AUTH", &auth.user, &auth.pass])
        };
        match r {
            Ok(Value::Simple(_)) => {}
            other => return Err(format!("{a}: AUTH failed: {other:?}")),
        }
    }
    Ok(c)
}

/// PING + INFO on a kept connection; Err when the connection is unusable.
fn probe(c: &mut RespConn) -> Result<(bool, Option<String>), String> {
    c.send_raw(&crate::protocol::client::encode_command(&["PING"])).map_err(|e| e.to_string())?;
    c.send_raw(&crate::protocol::client::encode_command(&["INFO"])).map_err(|e| e.to_string())?;
    let ping = c.read_value().map_err(|e| e.to_string())?;
    // LOADING and MASTERDOWN still mean "alive", as in Sentinel.
    let ok = match &ping {
        Value::Simple(s) => s == "PONG",
        Value::Error(e) => e.starts_with("LOADING") || e.starts_with("MASTERDOWN"),
        _ => false,
    };
    let info = c.read_value().map_err(|e| e.to_string())?;
    Ok((ok, info.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())))
}

/// A closed connection (the server died) shows as a readable EOF.
fn closed(c: &RespConn) -> bool {
    let s = c.stream();
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    let _ = s.set_nonblocking(false);
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn probe_loop(
    a: Addr,
    pass: Auth,
    down_after: u64,
    cmds: Receiver<ProbeCmd>,
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
    start: Instant,
) {
    let io = Duration::from_millis(down_after.clamp(100, 5000));
    let mut conn: Option<RespConn> = None;
    let mut next_probe = 0u64;
    // From the last INFO: shardis-server is promoted with its epoch.
    let mut shardis = false;
    let send = |ev: Event| tx.send(Msg::Event(ev)).is_ok();
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms(start);
        if conn.as_ref().is_some_and(closed) {
            conn = None;
            if !send(Event::Probe { addr: a.clone(), ok: false, at: now }) {
                return;
            }
            next_probe = now;
        }
        if now >= next_probe {
            next_probe = now + PROBE_PERIOD_MS;
            if conn.is_none() {
                conn = open(&a, &pass, io).ok();
            }
            let r = match conn.as_mut() {
                Some(c) => probe(c),
                None => Err("no connection".into()),
            };
            match r {
                Ok((ok, info_text)) => {
                    send(Event::Probe { addr: a.clone(), ok, at: now });
                    if let Some(t) = info_text {
                        shardis = info::is_shardis(&t);
                        send(Event::Info { addr: a.clone(), info: info::parse(&t) });
                    }
                }
                Err(_) => {
                    conn = None;
                    // Retry soon: a restarted server is seen quickly.
                    next_probe = now + PROBE_PERIOD_MS / 4;
                    if !send(Event::Probe { addr: a.clone(), ok: false, at: now }) {
                        return;
                    }
                }
            }
        }
        match cmds.recv_timeout(Duration::from_millis(WATCH_MS)) {
            Ok(ProbeCmd::ReplicaOf(target, epoch)) => {
                let mut args: Vec<String> = match &target {
                    Some(t) => vec!["REPLICAOF".into(), t.host.clone(), t.port.to_string()],
                    None => vec!["REPLICAOF".into(), "NO".into(), "ONE".into()],
                };
                // The epoch makes shardis replicas refuse the old master
                // (fencing) should it come back before it is re-pointed.
                if target.is_none() && shardis {
                    args.extend(["EPOCH".into(), epoch.to_string()]);
                }
                let c = match conn.as_mut() {
                    Some(c) => Ok(c),
                    None => open(&a, &pass, io).map(|c| conn.insert(c)),
                };
                let r = c.and_then(|c| {
                    let r = c.try_cmd(&args).map_err(|e| e.to_string())?;
                    if r.is_error() {
                        return Err(format!("{r}"));
                    }
                    // Ask at once: the loop learns the new role now, not at the next poll.
                    probe(c)
                });
                match r {
                    Ok((_, Some(t))) => {
                        shardis = info::is_shardis(&t);
                        send(Event::Info { addr: a.clone(), info: info::parse(&t) });
                    }
                    Ok(_) | Err(_) => {
                        conn = None;
                        send(Event::ReplicaOfFailed { addr: a.clone() });
                    }
                }
            }
            Ok(ProbeCmd::Publish(msg)) => {
                if let Some(c) = conn.as_mut() {
                    if c.try_cmd(&["PUBLISH", HELLO_CHANNEL, &msg]).is_err() {
                        conn = None;
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => return,
        }
    }
}

fn hello_loop(a: Addr, pass: Auth, tx: Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let c = open(&a, &pass, Duration::from_millis(500)).and_then(|mut c| {
            c.try_cmd(&["SUBSCRIBE", HELLO_CHANNEL]).map_err(|e| e.to_string())?;
            Ok(c)
        });
        let Ok(mut c) = c else {
            thread::sleep(Duration::from_millis(250));
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            match c.read_value() {
                Ok(Value::Array(v)) | Ok(Value::Push(v)) => {
                    let text = v.get(2).and_then(Value::as_bytes).map(|b| String::from_utf8_lossy(b).into_owned());
                    if let Some(h) = text.as_deref().and_then(Hello::decode) {
                        if tx.send(Msg::Event(Event::Hello(h))).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }
}

// ---- the monitor's own port -------------------------------------------------

fn accept_loop(listener: TcpListener, tx: Sender<Msg>, _start: Instant) {
    for s in listener.incoming() {
        match s {
            Ok(s) => {
                let tx = tx.clone();
                thread::spawn(move || client_loop(s, tx));
            }
            Err(e) => {
                crate::log(&format!("accept: {e}"));
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Channels and patterns a client subscribed to.
#[derive(Default)]
struct Subs {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    feed: Option<Receiver<(String, String)>>,
}

impl Subs {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// CLIENT ID / HELLO's `id`: one counter for the process.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

fn client_loop(mut s: TcpStream, tx: Sender<Msg>) {
    let mut conn = ConnState::new(NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed));
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf: Vec<u8> = Vec::new();
    let mut args = Vec::new();
    let mut subs = Subs::default();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Events for a subscriber.
        if let Some(feed) = &subs.feed {
            let mut out = Vec::new();
            while let Ok((ch, msg)) = feed.try_recv() {
                push_event(&subs, conn.resp3, &ch, &msg, &mut out);
            }
            if !out.is_empty() && s.write_all(&out).is_err() {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let mut out = Vec::new();
        loop {
            let limits = Limits { max_bulk_len: MAX_REQUEST as i64, unauthenticated: false };
            match parse_request(&mut buf, &limits, &mut args) {
                ParseOutcome::Done { consumed } => {
                    let req: Vec<Vec<u8>> = args.iter().map(|r| buf[r.clone()].to_vec()).collect();
                    buf.drain(..consumed);
                    if req.is_empty() {
                        continue;
                    }
                    if !request(&req, &tx, &mut subs, &mut conn, &mut out) {
                        let _ = s.write_all(&out);
                        return;
                    }
                }
                ParseOutcome::Incomplete { .. } if buf.len() > MAX_REQUEST * 2 => {
                    out.extend_from_slice(b"-ERR Protocol error: request too large\r\n");
                    let _ = s.write_all(&out);
                    return;
                }
                ParseOutcome::Incomplete { .. } => break,
                ParseOutcome::Error(e) => {
                    out.extend_from_slice(format!("-{}\r\n", e.message()).as_bytes());
                    let _ = s.write_all(&out);
                    return;
                }
            }
        }
        if !out.is_empty() && s.write_all(&out).is_err() {
            return;
        }
    }
}

fn push_event(subs: &Subs, resp3: bool, ch: &str, msg: &str, out: &mut Vec<u8>) {
    let mut r = crate::protocol::reply::Reply::new(out, resp3);
    if subs.channels.contains(ch.as_bytes()) {
        r.push(3);
        r.bulk_str("message");
        r.bulk_str(ch);
        r.bulk_str(msg);
    }
    for p in &subs.patterns {
        if crate::util::glob_match(p, ch.as_bytes(), false) {
            r.push(4);
            r.bulk_str("pmessage");
            r.bulk(p);
            r.bulk_str(ch);
            r.bulk_str(msg);
        }
    }
}

/// One request; false to close the connection (QUIT).
fn request(req: &[Vec<u8>], tx: &Sender<Msg>, subs: &mut Subs, conn: &mut ConnState, out: &mut Vec<u8>) -> bool {
    use crate::protocol::reply::Reply;
    let cmd = String::from_utf8_lossy(&req[0]).to_ascii_lowercase();
    // RESP3 lets a subscribed connection run any command; RESP2 does not.
    let restricted = subs.count() > 0 && !conn.resp3;
    match cmd.as_str() {
        "ping" => {
            super::conn::ping(conn, req, subs.count() > 0, out);
            return true;
        }
        "hello" if !restricted => {
            super::conn::hello(conn, req, out);
            return true;
        }
        "client" if !restricted => {
            super::conn::client(conn, req, out);
            return true;
        }
        _ => {}
    }
    let mut r = Reply::new(out, conn.resp3);
    match cmd.as_str() {
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" => {
            let pattern = cmd.starts_with('p');
            let unsub = cmd.contains("un");
            if !unsub && req.len() < 2 {
                r.error(&format!("ERR wrong number of arguments for '{cmd}' command"));
                return true;
            }
            if subs.feed.is_none() && !unsub {
                let (ftx, frx) = channel();
                if tx.send(Msg::Subscribe(ftx)).is_err() {
                    return false;
                }
                subs.feed = Some(frx);
            }
            let names: Vec<Vec<u8>> = match (unsub && req.len() == 1, pattern) {
                (true, true) => subs.patterns.iter().cloned().collect(),
                (true, false) => subs.channels.iter().cloned().collect(),
                _ => req[1..].to_vec(),
            };
            for n in names {
                let set = if pattern { &mut subs.patterns } else { &mut subs.channels };
                if unsub {
                    set.remove(&n);
                } else {
                    set.insert(n.clone());
                }
                r.push(3);
                r.bulk_str(&cmd);
                r.bulk(&n);
                r.int(subs.count() as i64);
            }
            true
        }
        "quit" => {
            r.ok();
            false
        }
        _ if restricted => {
            r.error(&format!("ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"));
            true
        }
        _ => {
            let (rtx, rrx) = channel();
            if tx.send(Msg::Api { args: req.to_vec(), resp3: conn.resp3, reply: rtx }).is_err() {
                return false;
            }
            match rrx.recv_timeout(Duration::from_secs(10)) {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => r.error("ERR monitor busy, try again"),
            }
            true
        }
    }
}

/// Seed for the election's generator and a fresh run id, from the OS.
pub fn random_bytes() -> [u8; 28] {
    let mut b = [0u8; 28];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    // Mix in the clock and pid in case /dev/urandom was unreadable.
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64;
    for (i, x) in (t ^ ((std::process::id() as u64) << 32)).to_le_bytes().iter().enumerate() {
        b[i] ^= x;
    }
    b
}

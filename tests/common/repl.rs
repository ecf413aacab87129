//! Replication test helpers: servers on distinct loopback addresses and a
//! fault-injecting TCP proxy that can cut every link it carries.

use super::{RespConn, Server, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

pub const MASTER_HOST: &str = "127.0.0.2";

pub fn master(shards: usize) -> Server {
    Server::start(shards, &["--bind", MASTER_HOST])
}

pub fn replica_of(shards: usize, host: &str, m: (&str, u16)) -> Server {
    let port = m.1.to_string();
    Server::start(shards, &["--bind", host, "--replicaof", m.0, &port])
}

pub fn info_field(c: &mut RespConn, section: &str, field: &str) -> Option<String> {
    let v = c.cmd(&["INFO", section]);
    let text = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|s| s.trim().to_string()))
}

pub fn info_u64(c: &mut RespConn, section: &str, field: &str) -> u64 {
    info_field(c, section, field).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub struct Proxy {
    pub cut: Arc<AtomicBool>,
    pub socks: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(listen: (&str, u16), target: (&str, u16), cut: Arc<AtomicBool>, socks: Arc<Mutex<Vec<TcpStream>>>) {
        let l = TcpListener::bind(listen).expect("proxy bind");
        let target = format!("{}:{}", target.0, target.1);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(a) = conn else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the link is down
                }
                let Ok(b) = TcpStream::connect(&target) else { continue };
                for s in [&a, &b] {
                    if let Ok(c) = s.try_clone() {
                        socks.lock().unwrap().push(c);
                    }
                }
                for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
    }

    /// A proxy on `host` standing for master `m`: its client and
    /// replication ports alike, on the same port numbers.
    pub fn for_master(m: &Server, host: &str) -> Proxy {
        let mut mc = m.conn();
        let hello = mc.cmd(&["REPLCONF", "SHARDIS-HELLO"]);
        let repl_port = hello.as_items().expect("hello")[0].as_int().expect("port") as u16;
        let (cut, socks) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        Proxy::start((host, m.port), (MASTER_HOST, m.port), cut.clone(), socks.clone());
        Proxy::start((host, repl_port), (MASTER_HOST, repl_port), cut.clone(), socks.clone());
        Proxy { cut, socks }
    }

    /// Cut every link and refuse new ones until `restore`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.socks.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Cut every link for `d`, refusing new ones meanwhile.
    pub fn cut_for(&self, d: Duration) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.socks.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        std::thread::sleep(d);
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Every key of db 0 with a canonical rendering of its value.
pub fn snapshot(c: &mut RespConn) -> BTreeMap<Vec<u8>, String> {
    let mut keys = Vec::new();
    let mut cursor = "0".to_string();
    for _ in 0..100_000 {
        let v = c.cmd(&["SCAN", &cursor, "COUNT", "500"]);
        let items = v.as_items().expect("SCAN reply").to_vec();
        cursor = String::from_utf8_lossy(items[0].as_bytes().expect("cursor")).into_owned();
        for k in items[1].as_items().expect("keys") {
            keys.push(k.as_bytes().expect("key").to_vec());
        }
        if cursor == "0" {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for k in keys {
        let t = c.cmd(&[&b"TYPE"[..], &k]);
        let t = match &t {
            Value::Simple(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let mut items: Vec<String> = match t.as_str() {
            "string" => vec![format!("{:?}", c.cmd(&[&b"GET"[..], &k]))],
            "list" => vec![format!("{:?}", c.cmd(&[&b"LRANGE"[..], &k, b"0", b"-1"]))],
            "hash" => flat(c.cmd(&[&b"HGETALL"[..], &k])),
            "set" => flat(c.cmd(&[&b"SMEMBERS"[..], &k])),
            _ => vec![],
        };
        items.sort();
        let ttl = !matches!(c.cmd(&[&b"PTTL"[..], &k]), Value::Int(-1));
        out.insert(k, format!("{t} ttl={ttl} {}", items.join(",")));
    }
    out
}

pub fn flat(v: Value) -> Vec<String> {
    v.as_items().unwrap_or_default().iter().map(|x| format!("{x:?}")).collect()
}

/// A bounded mixed write load: `n` commands over `keys` keys, pipelined,
/// multi-key ones over several slots (cross-shard transactions) among them.
pub fn write_load(c: &mut RespConn, seed: u64, n: usize, keys: usize) {
    write_load_with(c, seed, n, keys, true);
}

/// `write_load`, with `multi` adding writes over keys of several slots
/// (MSET, SMOVE, LMOVE, SUNIONSTORE, COPY, two-key DEL).
pub fn write_load_with(c: &mut RespConn, seed: u64, n: usize, keys: usize, multi: bool) {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut batch = Vec::new();
    for i in 0..n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = (x >> 33) as usize % keys;
        // With `multi`, multi-key writes (keys in different slots) in one of every 3.
        let j = (k * 7 + 3) % keys;
        let cmd: Vec<String> = match (x >> 20) % if multi { 12 } else { 7 } {
            0 => vec!["SET".into(), format!("s{k}"), format!("v{i}")],
            1 => vec!["INCR".into(), format!("n{k}")],
            2 => vec!["RPUSH".into(), format!("l{k}"), format!("e{i}")],
            3 => vec!["HSET".into(), format!("h{k}"), format!("f{}", i % 5), format!("{i}")],
            4 => vec!["SADD".into(), format!("t{k}"), format!("m{}", i % 9)],
            5 if multi => vec!["DEL".into(), format!("s{}", (k + 1) % keys), format!("n{j}")],
            5 => vec!["DEL".into(), format!("s{}", (k + 1) % keys)],
            6 => vec!["EXPIRE".into(), format!("l{k}"), "100000".into()],
            7 => vec!["MSET".into(), format!("s{k}"), format!("a{i}"), format!("s{j}"), format!("b{i}")],
            8 => vec!["SMOVE".into(), format!("t{k}"), format!("t{j}"), format!("m{}", i % 9)],
            9 => vec!["LMOVE".into(), format!("l{k}"), format!("l{j}"), "LEFT".into(), "RIGHT".into()],
            10 => vec!["SUNIONSTORE".into(), format!("t{j}"), format!("t{k}"), format!("t{j}")],
            _ => vec!["COPY".into(), format!("h{k}"), format!("h{j}"), "REPLACE".into()],
        };
        batch.extend(super::encode_command(&cmd));
        if (i + 1) % 100 == 0 || i + 1 == n {
            c.send_raw(&batch).expect("send");
            batch.clear();
            for _ in 0..((i % 100) + 1) {
                let v = c.read_value().expect("reply");
                assert!(!v.is_error(), "write failed on the master: {v:?}");
            }
        }
    }
}

/// Wait (bounded) until the replica applied everything the master may
/// reveal and both hold the same keyspace.
pub fn converge(m: &Server, r: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut mc, mut rc) = (m.conn(), r.conn());
    loop {
        let want = info_u64(&mut mc, "replication", "master_repl_offset");
        let got = info_u64(&mut rc, "replication", "slave_repl_offset");
        if want == got && snapshot(&mut mc) == snapshot(&mut rc) {
            return;
        }
        if Instant::now() > deadline {
            let (a, b) = (snapshot(&mut mc), snapshot(&mut rc));
            let diff: Vec<_> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(v))
                .take(3)
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v, b.get(k)))
                .collect();
            panic!(
                "{} did not converge: offsets {} vs {}, {} vs {} keys, first differences {:?}\n--- replica log ---\n{}\n--- master log ---\n{}",
                r.name,
                want,
                got,
                a.len(),
                b.len(),
                diff,
                r.logs(),
                m.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait (bounded) until `cond` holds.
pub fn until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! Replication test helpers: servers on distinct loopback addresses and a
//! fault-injecting TCP proxy that can cut every link it carries.

use super::{RespConn, Server};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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


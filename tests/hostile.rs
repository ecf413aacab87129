//! Hostile input against a live server (issue 13): garbage and truncated
//! RESP, huge counts and lengths, deep nesting, every command with random
//! arguments, half-closed sockets and clients that vanish mid-command or
//! mid-transaction, many connections, pattern bombs, nested DUMP payloads
//! and a huge request arriving in pieces. After each abuse the server must
//! answer PING on every shard and its memory must be back within bounds of
//! where it started: a hostile client harms nobody else.
//!
//! Randomised tests are seeded (`SHARDIS_HOSTILE_SEED`, printed on failure)
//! and bounded in count and wall time. `tests/protocol.rs` compares the
//! protocol's error replies with redis-server's; this file is about
//! survival.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::shards::conn_on_shard;
use common::{encode_command, RespConn, Server, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SHARDS: usize = 4;
/// How much RSS an abuse may leave behind (allocator caches, buffer rings
/// touched for the first time); a leak or a buffered 512 MB bulk is far more.
const RSS_SLACK: u64 = 96 << 20;

fn start() -> Server {
    Server::start(SHARDS, &[])
}

fn seed() -> u64 {
    std::env::var("SHARDIS_HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026)
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Every shard answers PING on a fresh connection, and the process's RSS
/// is back within `RSS_SLACK` of `baseline` (waiting, bounded, for buffers
/// of closed connections to be let go).
fn assert_healthy(srv: &Server, baseline: u64, after: &str) {
    let shards: usize = srv.name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(1);
    for shard in 0..shards {
        let mut c = conn_on_shard(srv, shard);
        match c.try_cmd(&["PING"]) {
            Ok(Value::Simple(s)) if s == "PONG" => {}
            other => panic!("after {after}: shard {shard} answered PING with {other:?}\n{}", srv.logs()),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rss = rss_bytes(srv.pid());
        if rss <= baseline + RSS_SLACK {
            break;
        }
        if Instant::now() > deadline {
            let info = srv.conn().cmd(&["INFO", "memory"]);
            let info = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
            panic!("after {after}: RSS {} MB, started at {} MB\n{info}", rss >> 20, baseline >> 20);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Raw socket: send `bytes` (ignoring a reset), then read until the server
/// closes or goes quiet for `idle`. Returns what came back.
fn send_and_drain(port: u16, bytes: &[u8], idle: Duration) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return Vec::new() };
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(bytes);
    let _ = s.set_read_timeout(Some(idle));
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[test]
fn garbage_and_truncated_requests() {
    let srv = start();
    let base = rss_bytes(srv.pid());
    let mut rng = StdRng::seed_from_u64(seed());
    let valid: Vec<Vec<u8>> = vec![
        encode_command(&["SET", "k", "v"]),
        encode_command(&["MSET", "a", "1", "b", "2", "c", "3"]),
        encode_command(&["ZADD", "z", "1", "m", "2", "n"]),
        encode_command(&["XADD", "s", "*", "f", "v"]),
        b"PING\r\n".to_vec(),
    ];
    thread::scope(|s| {
        for t in 0..4u64 {
            let port = srv.port;
            let mut rng = StdRng::seed_from_u64(rng.gen::<u64>() ^ t);
            let valid = &valid;
            s.spawn(move || {
                for round in 0..150 {
                    let bytes: Vec<u8> = match round % 3 {
                        // Pure noise, biased towards RESP's own bytes.
                        0 => (0..rng.gen_range(1..2000))
                            .map(|_| match rng.gen_range(0..6) {
                                0 => b'*',
                                1 => b'$',
                                2 => b'\r',
                                3 => b'\n',
                                4 => b'0' + rng.gen_range(0..10),
                                _ => rng.gen(),
                            })
                            .collect(),
                        // A valid command cut anywhere, then the peer leaves.
                        1 => {
                            let v = &valid[rng.gen_range(0..valid.len())];
                            v[..rng.gen_range(0..v.len())].to_vec()
                        }
                        // A valid command with one byte flipped.
                        _ => {
                            let mut v = valid[rng.gen_range(0..valid.len())].clone();
                            let i = rng.gen_range(0..v.len());
                            v[i] = rng.gen();
                            v
                        }
                    };
                    send_and_drain(port, &bytes, Duration::from_millis(20));
                }
            });
        }
    });
    assert_healthy(&srv, base, "garbage and truncated requests");
}

#[test]
fn huge_counts_and_lengths() {
    let srv = start();
    let base = rss_bytes(srv.pid());
    let cases: &[(&str, &[u8])] = &[
        ("multibulk count over i32", b"*2147483648\r\n"),
        ("multibulk count over the limit", b"*1048577\r\n"),
        ("negative bulk length", b"*1\r\n$-2\r\n"),
        ("bulk length over proto-max-bulk-len", b"*1\r\n$536870913\r\n"),
        ("bulk length over i64", b"*1\r\n$99999999999999999999\r\n"),
        ("non-numeric count", b"*12ab\r\n"),
        // Announced big, then nothing: the server must not reserve it.
        ("512 MB bulk announced then abandoned", b"*2\r\n$3\r\nSET\r\n$536870912\r\nxyz"),
        ("a million arguments announced then abandoned", b"*1048576\r\n$1\r\na\r\n"),
    ];
    for (what, bytes) in cases {
        let out = send_and_drain(srv.port, bytes, Duration::from_millis(200));
        assert!(out.is_empty() || out.starts_with(b"-"), "{what}: replied {:?}", String::from_utf8_lossy(&out));
    }
    // An inline request with no end: refused at Redis's inline limit.
    // The server answers and closes, so a long idle bound costs nothing
    // and holds on a loaded machine.
    let out = send_and_drain(srv.port, &vec![b'a'; 128 * 1024], Duration::from_secs(5));
    assert!(out.starts_with(b"-ERR Protocol error"), "endless inline line: {:?}", String::from_utf8_lossy(&out));
    // Many clients announcing big bulks at once, each holding a little.
    thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let mut c = RespConn::connect(srv.port).expect("connect");
                let _ = c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n");
                let _ = c.send_raw(&[b'x'; 4096]);
                thread::sleep(Duration::from_millis(100));
            });
        }
    });
    assert_healthy(&srv, base, "huge counts and lengths");
}

#[test]
fn deep_nesting() {
    let srv = start();
    let base = rss_bytes(srv.pid());
    // Requests are arrays of bulk strings; a nested array is a protocol
    // error however deep it goes.
    let nested = b"*1\r\n".repeat(100_000);
    let out = send_and_drain(srv.port, &nested, Duration::from_millis(200));
    assert!(out.starts_with(b"-ERR Protocol error"), "nested arrays: {:?}", String::from_utf8_lossy(&out));
    // Deep data the server builds itself stays a value like any other.
    let mut c = srv.conn();
    let deep_json = "[".repeat(50_000);
    assert_eq!(c.cmd(&["SET", "deep", &deep_json]), Value::ok());
    assert_eq!(c.cmd(&["STRLEN", "deep"]), Value::Int(50_000));
    assert_healthy(&srv, base, "deep nesting");
}

/// Arguments worth trying in any position.
const ATOMS: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "2",
    "10",
    "-10",
    "100",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1.5",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "+inf",
    "1e400",
    "0x10",
    "(1",
    "[a",
    "-",
    "+",
    "*",
    "$",
    "?",
    "[",
    "a*",
    "\\",
    "k",
    "k2",
    "{t}k",
    "{t}l",
    "{t}s",
    "{t}z",
    "{t}h",
    "{t}x",
    "str",
    "list",
    "set",
    "zset",
    "hash",
    "stream",
    "WITHSCORES",
    "LIMIT",
    "COUNT",
    "MATCH",
    "TYPE",
    "EX",
    "PX",
    "NX",
    "XX",
    "GT",
    "LT",
    "KEEPTTL",
    "GET",
    "BY",
    "STORE",
    "ASC",
    "DESC",
    "ALPHA",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "MAXLEN",
    "MINID",
    "~",
    "=",
    "STREAMS",
    "GROUP",
    "MKSTREAM",
    "ID",
    "BLOCK",
    "NOACK",
    "IDLE",
    "TIME",
    "RETRYCOUNT",
    "FORCE",
    "JUSTID",
    "REV",
    "BYSCORE",
    "BYLEX",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "INCR",
    "CH",
    "REPLACE",
    "ABSTTL",
    "FREQ",
    "ENCODING",
    "HELP",
    "OVERFLOW",
    "FAIL",
    "SAT",
    "WRAP",
    "u8",
    "i64",
    "#1",
    "BIT",
    "BYTE",
    "IDX",
    "LEN",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "RANK",
    "MAXLEN",
    "DB",
    "COPY",
    "AUTH",
    "SETNAME",
    "NOVALUE",
    "FROMMEMBER",
    "BYRADIUS",
    "BYBOX",
    "m",
    "km",
    "WITHCOORD",
    "WITHDIST",
    "WITHHASH",
    "ANY",
    "0-1",
    "1-0",
    "$",
    ">",
    "0-0",
    "18446744073709551615-18446744073709551615",
];

/// Commands the random run leaves out: they stop or reconfigure the
/// server, block for a client-chosen time, or change the connection's
/// protocol mode in ways the reader below does not follow.
const SKIP: &[&str] = &[
    "shutdown",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "debug",
    "config",
    "monitor",
    "sync",
    "psync",
    "replicaof",
    "slaveof",
    "client",
    "quit",
    "reset",
    "hello",
    "auth",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "save",
    "bgsave",
    "bgrewriteaof",
    "failover",
    "wait",
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "select",
    "swapdb",
    "flushall",
    "acl",
    "module",
    "latency",
    "slowlog",
    "multi",
    "exec",
    "discard",
    "watch",
];

fn command_names(c: &mut RespConn) -> Vec<String> {
    let v = c.cmd(&["COMMAND", "LIST"]);
    let items = v.as_items().expect("COMMAND LIST is an array");
    items.iter().filter_map(|i| i.as_bytes()).map(|b| String::from_utf8_lossy(b).to_lowercase()).collect()
}

fn random_arg(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect(),
        1 => rng.gen::<i64>().to_string().into_bytes(),
        2 => format!("{}", rng.gen::<f64>() * 1e6).into_bytes(),
        _ => ATOMS[rng.gen_range(0..ATOMS.len())].as_bytes().to_vec(),
    }
}

/// Give the keyspace one key of every type under the `{t}` tag (again and
/// again: random commands delete and retype them; errors are expected then).
fn seed_keys(c: &mut RespConn) {
    for cmd in [
        "SET {t}k 10",
        "SET str hello",
        "RPUSH {t}l a b c 1 2 3",
        "SADD {t}s a b c 1 2",
        "ZADD {t}z 1 a 2 b 3 c",
        "HSET {t}h f v g 1",
        "XADD {t}x * f v",
        "PFADD hll a b c",
    ] {
        c.cmd_str(cmd);
    }
}

#[test]
fn every_command_with_random_arguments() {
    let srv = start();
    let base = rss_bytes(srv.pid());
    let seed = seed();
    let names: Vec<String> =
        command_names(&mut srv.conn()).into_iter().filter(|n| !SKIP.contains(&n.as_str())).collect();
    assert!(names.len() > 150, "COMMAND LIST gave only {} usable names", names.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    // Four clients at once (two RESP2, two RESP3), so cross-shard commands
    // and transactions interleave; MULTI/EXEC/DISCARD/WATCH come up now and
    // then among the random commands.
    let counts: Vec<(usize, usize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (srv, names) = (&srv, &names);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(t));
                    let mut c = srv.conn();
                    if t % 2 == 1 {
                        assert!(!c.cmd(&["HELLO", "3"]).is_error());
                    }
                    let (mut sent, mut ok) = (0, 0);
                    for i in 0..8_000 {
                        if Instant::now() > deadline {
                            break;
                        }
                        if i % 1000 == 0 {
                            seed_keys(&mut c);
                        }
                        let name = match rng.gen_range(0..50) {
                            0 => "multi",
                            1 => "exec",
                            2 => "discard",
                            3 => "watch",
                            _ => names[rng.gen_range(0..names.len())].as_str(),
                        };
                        let mut args: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
                        for _ in 0..rng.gen_range(0..7) {
                            args.push(random_arg(&mut rng));
                        }
                        match c.try_cmd(&args) {
                            Ok(v) => {
                                sent += 1;
                                ok += usize::from(!v.is_error());
                            }
                            Err(e) => {
                                let shown: Vec<String> =
                                    args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                                panic!("seed {seed}, client {t}, command #{i} {shown:?}: {e}\n{}", srv.logs());
                            }
                        }
                    }
                    (sent, ok)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let sent: usize = counts.iter().map(|c| c.0).sum();
    let ok: usize = counts.iter().map(|c| c.1).sum();
    assert!(sent > 1000, "only {sent} commands ran in the time allowed");
    // Most random calls are refused, but enough must reach the handlers.
    assert!(ok * 10 > sent, "only {ok} of {sent} random commands succeeded");
    eprintln!("seed {seed}: {sent} commands, {ok} not errors");
    // What the commands stored (SETBIT at a 4 GiB offset holds 512 MB) is
    // not what the bound is about: drop it first.
    assert_eq!(srv.conn().cmd(&["FLUSHALL"]), Value::ok());
    assert_healthy(&srv, base, &format!("random commands (seed {seed})"));
}

#[test]
fn half_closed_and_vanishing_clients() {
    let srv = start();
    let base = rss_bytes(srv.pid());
    // A client that sends and half-closes still gets its replies.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).expect("connect");
    s.write_all(&[encode_command(&["SET", "hc", "1"]), encode_command(&["INCR", "hc"])].concat()).expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, b"+OK\r\n:2\r\n", "replies before the half-close");
    // Clients that vanish in the middle of a command, a pipeline, a
    // cross-shard transaction and a blocking pop.
    let keys: Vec<String> = (0..16).map(|i| format!("vanish:{i}")).collect();
    for round in 0..50 {
        let mut c = srv.conn();
        let mut mset = vec!["MSET".to_string()];
        for k in &keys {
            mset.push(k.clone());
            mset.push(round.to_string());
        }
        let mut bytes = encode_command(&["MULTI"]);
        bytes.extend(encode_command(&mset));
        bytes.extend(encode_command(&["INCR", "vanish:counter"]));
        bytes.extend(encode_command(&["EXEC"]));
        bytes.extend(encode_command(&mset));
        bytes.extend(encode_command(&["BLPOP", "vanish:list", "0"]));
        bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$10\r\nabc");
        let cut = round * bytes.len() / 50;
        c.send_raw(&bytes[..cut.max(1)]).expect("send");
        drop(c);
    }
    // Every MSET that ran was whole: all keys hold the same round.
    let mut c = srv.conn();
    let v = c.cmd(&[&["MGET".to_string()][..], &keys[..]].concat());
    let vals = v.as_items().expect("MGET array").to_vec();
    assert!(vals.windows(2).all(|w| w[0] == w[1]), "a vanished client left half a transaction: {vals:?}");
    // The blocked pops of vanished clients are gone: a push is not eaten.
    assert_eq!(c.cmd(&["RPUSH", "vanish:list", "v"]), Value::Int(1));
    assert_eq!(c.cmd(&["LLEN", "vanish:list"]), Value::Int(1));
    assert_healthy(&srv, base, "half-closed and vanishing clients");
}

/// Raise this process's open-file limit so it can hold `n` sockets.
fn raise_nofile(n: u64) -> bool {
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        if lim.rlim_cur >= n {
            return true;
        }
        lim.rlim_cur = n.max(lim.rlim_cur);
        lim.rlim_max = lim.rlim_max.max(n);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
    }
}

#[test]
fn ten_thousand_connections() {
    const N: usize = 10_000;
    if !raise_nofile(N as u64 + 1000) {
        eprintln!("skipping: cannot raise this process's RLIMIT_NOFILE to {}", N + 1000);
        return;
    }
    let srv = start();
    let base = rss_bytes(srv.pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conns = Vec::with_capacity(N);
    let mut refused = 0;
    while conns.len() + refused < N && Instant::now() < deadline {
        match TcpStream::connect(("127.0.0.1", srv.port)) {
            Ok(s) => conns.push(s),
            Err(_) => refused += 1,
        }
    }
    assert!(conns.len() >= N - 100, "only {} of {N} connections opened ({refused} refused)", conns.len());
    // Each sends a PING; all are answered (or told the server is full).
    for s in conns.iter_mut() {
        let _ = s.write_all(b"PING\r\n");
    }
    let mut answered = 0;
    for s in conns.iter_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-ERR max number of clients") {
                answered += 1;
            }
        }
        if Instant::now() > deadline + Duration::from_secs(60) {
            break;
        }
    }
    assert!(answered >= conns.len() - 100, "{answered} of {} connections answered", conns.len());
    drop(conns);
    // The clients are gone on the server too.
    let mut c = srv.conn();
    let wait = Instant::now() + Duration::from_secs(20);
    loop {
        let info = c.cmd(&["INFO", "clients"]);
        let text = String::from_utf8_lossy(info.as_bytes().expect("INFO bulk")).into_owned();
        let n: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("connected_clients");
        if n <= 5 {
            break;
        }
        assert!(Instant::now() < wait, "{n} clients still connected after all closed");
        thread::sleep(Duration::from_millis(50));
    }
    assert_healthy(&srv, base, "10k connections");
}

#[test]
fn glob_pattern_bomb_returns() {
    // The pattern: 20 stars, against a key of 40 a's. Exponential
    // matching never returned; the client's read timeout bounds the wait.
    let s = Server::start(2, &[]);
    let base = rss_bytes(s.pid());
    let mut c = s.conn();
    let key = "a".repeat(40);
    assert_eq!(c.cmd(&["SET", &key, "v"]), Value::ok());
    let bomb = format!("{}b", "a*".repeat(20));
    assert_eq!(c.cmd(&["KEYS", &bomb]), Value::Array(vec![]));
    let scanned = c.cmd(&["SCAN", "0", "MATCH", &bomb, "COUNT", "1000"]);
    assert_eq!(scanned.as_items().map(|i| i[1].clone()), Some(Value::Array(vec![])), "{scanned}");
    assert_eq!(c.cmd(&["SADD", "set", &key]), Value::Int(1));
    let scanned = c.cmd(&["SSCAN", "set", "0", "MATCH", &bomb]);
    assert_eq!(scanned.as_items().map(|i| i[1].clone()), Some(Value::Array(vec![])), "{scanned}");
    // It still matches what it should.
    let hit = "a*".repeat(20);
    assert_eq!(c.cmd(&["KEYS", &hit]), Value::Array(vec![Value::bulk(&key)]));
    assert_healthy(&s, base, "pattern bombs");
}

/// A DUMP payload as shardis frames it: "SHDS", version 1, the commands,
/// CRC32C of all that (little-endian).
fn payload_of(cmds: &[Vec<&[u8]>]) -> Vec<u8> {
    let mut p = b"SHDS\x01".to_vec();
    for c in cmds {
        p.extend_from_slice(&encode_command(c));
    }
    let crc = shardis::persist::crc32c::crc32c(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn nested_restore_payloads_are_refused() {
    const BAD: &str = "ERR Bad data format";
    let s = Server::start(2, &[]);
    let base = rss_bytes(s.pid());
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "keep", "1"]), Value::ok());
    // Each level RESTOREs the one inside it. Replayed through the command
    // table, 8000 levels (≈ 350 KB) overflowed a shard thread's stack and
    // aborted the process.
    let mut payload = payload_of(&[vec![b"SET", b"", b"v"]]);
    for _ in 0..8000 {
        payload = payload_of(&[vec![b"RESTORE", b"", b"0", &payload]]);
    }
    let restore = [&b"RESTORE"[..], b"nested", b"0", &payload];
    assert_eq!(c.cmd(&restore), Value::err(BAD));
    // Commands that do not build a value are refused too, checksum or not.
    for cmd in [vec![&b"FLUSHALL"[..]], vec![b"CONFIG", b"SET", b"maxclients", b"1"], vec![b"SELECT", b"3"]] {
        let p = payload_of(&[vec![b"SET", b"", b"v"], cmd.clone()]);
        let r = c.cmd(&[&b"RESTORE"[..], b"other", b"0", &p]);
        assert_eq!(r, Value::err(BAD), "{}", String::from_utf8_lossy(cmd[0]));
    }
    assert_eq!(c.cmd(&["GET", "keep"]), Value::bulk("1"));
    assert_eq!(c.cmd(&["EXISTS", "nested", "other"]), Value::Int(0));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxclients"]),
        Value::Array(vec![Value::bulk("maxclients"), Value::bulk("10000")])
    );
    assert_healthy(&s, base, "nested payloads");
}

#[test]
fn huge_multibulk_in_pieces_does_not_stall_the_shard() {
    // One shard, so the pinging client shares the loop with the big request.
    // RPUSH of 1048574 one-byte elements: 7.3 MB arriving over many reads,
    // each of which re-parsed the request from its start.
    const ELEMENTS: usize = 1024 * 1024 - 2;
    const PIECE: usize = 16 * 1024;
    let s = Server::start(1, &[]);
    let base = rss_bytes(s.pid());
    let mut wire = format!("*{}\r\n$5\r\nRPUSH\r\n$3\r\nbig\r\n", ELEMENTS + 2).into_bytes();
    wire.extend(b"$1\r\na\r\n".repeat(ELEMENTS));
    let port = s.port;
    let sender = std::thread::spawn(move || -> std::io::Result<Value> {
        let mut c = RespConn::connect(port)?;
        let mut w: &TcpStream = c.stream();
        for piece in wire.chunks(PIECE) {
            w.write_all(piece)?;
        }
        c.read_value()
    });
    // While it arrives, another client's PINGs keep being answered, each
    // within the client's read timeout (bounded in count and time).
    let mut pinger = s.conn();
    // Generous: the 1M-element RPUSH itself runs in one go when it is whole,
    // and CI machines are busy; a re-scan per read took minutes.
    pinger.set_read_timeout(Some(Duration::from_secs(20)));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pings = 0;
    while !sender.is_finished() && Instant::now() < deadline && pings < 100_000 {
        match pinger.try_cmd(&["PING"]) {
            Ok(v) => assert_eq!(v, Value::Simple("PONG".into())),
            Err(e) => panic!("PING {pings} not answered while the big request arrived: {e}"),
        }
        pings += 1;
    }
    let reply = sender.join().expect("sender thread").expect("big request's reply");
    assert_eq!(reply, Value::Int(ELEMENTS as i64));
    assert_eq!(pinger.cmd(&["LLEN", "big"]), Value::Int(ELEMENTS as i64));
    assert_eq!(pinger.cmd(&["DEL", "big"]), Value::Int(1));
    assert_healthy(&s, base, "a huge request in pieces");
}

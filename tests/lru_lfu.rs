//! LRU and LFU access clocks side by side with redis-server 7.0, on 1 and
//! 4 shards: OBJECT FREQ under allkeys-lfu with `lfu-log-factor 0` (every
//! use counts, so the counter is deterministic) after each kind of access,
//! the lfu-* options, and RESTORE's IDLETIME / FREQ.

mod common;

use common::{Server, Value};

/// Run `lines` and return each reply, printed.
fn replies(srv: &Server, setup: &[&[&str]], lines: &[&str]) -> Vec<String> {
    let mut c = srv.conn();
    c.cmd(&["FLUSHALL"]);
    for s in setup {
        assert_eq!(c.cmd(s), Value::ok(), "{}: {s:?}", srv.name);
    }
    lines
        .iter()
        .map(|l| {
            let args: Vec<&str> = l.split(' ').collect();
            format!("{l} -> {:?}", c.cmd(&args))
        })
        .collect()
}

fn compare(setup: &[&[&str]], lines: &[&str]) {
    let redis = Server::start_redis();
    let want = replies(&redis, setup, lines);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        let got = replies(&s, setup, lines);
        let diffs: Vec<String> =
            want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis {w}\nshardis {g}")).collect();
        assert!(diffs.is_empty(), "{shards} shard(s):\n{}", diffs.join("\n"));
    }
}

/// A limit far above the data (no eviction; Redis shares no integer
/// objects then, whose clock would be shared), LFU counting every use.
const LFU: &[&[&str]] = &[
    &["CONFIG", "SET", "maxmemory", "1gb"],
    &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    &["CONFIG", "SET", "lfu-log-factor", "0"],
];

#[test]
fn lfu_counts_uses_as_redis() {
    compare(
        LFU,
        &[
            "SET a x",
            "OBJECT FREQ a",
            "GET a",
            "GET a",
            "OBJECT FREQ a",
            "SET a y",
            "OBJECT FREQ a",
            "TYPE a",
            "EXISTS a",
            "TTL a",
            "OBJECT ENCODING a",
            "OBJECT FREQ a",
            "TOUCH a",
            "OBJECT FREQ a",
            "APPEND a x",
            "STRLEN a",
            "OBJECT FREQ a",
            // Redis reads and then overwrites: two uses; a new key: created.
            "GETSET a y",
            "OBJECT FREQ a",
            "GETSET newkey v",
            "OBJECT FREQ newkey",
            "RPUSH l a b",
            "LRANGE l 0 -1",
            "LLEN l",
            "LPOP l",
            "OBJECT FREQ l",
            "HSET h f v",
            "HGET h f",
            "HGETALL h",
            "OBJECT FREQ h",
            "SADD s a",
            "SMEMBERS s",
            "OBJECT FREQ s",
            "MSET a q",
            "OBJECT FREQ a",
            "COPY a a2",
            "OBJECT FREQ a2",
            "OBJECT FREQ a",
            "RENAME a a3",
            "OBJECT FREQ a3",
            "EXPIRE a3 100",
            "SETRANGE a3 0 q",
            "GETRANGE a3 0 1",
            "OBJECT FREQ a3",
            "SET a3 z KEEPTTL",
            "OBJECT FREQ a3",
            "ZADD zz 1 a",
            "ZRANGE zz 0 -1",
            "OBJECT FREQ zz",
            "XADD st 1-1 f v",
            "XLEN st",
            "OBJECT FREQ st",
            "PFADD hl a",
            "PFCOUNT hl",
            "OBJECT FREQ hl",
            "SETBIT b 1 1",
            "GETBIT b 1",
            "SETBIT b 2 1",
            "OBJECT FREQ b",
            "OBJECT FREQ none",
            "OBJECT IDLETIME a3",
            "CONFIG SET maxmemory-policy allkeys-lru",
            "OBJECT FREQ a3",
            "CONFIG GET lfu-log-factor",
            "CONFIG GET lfu-decay-time",
            "CONFIG SET lfu-log-factor -1",
            "CONFIG SET lfu-decay-time -1",
            "CONFIG SET lfu-decay-time 0",
            "CONFIG SET lfu-log-factor 100",
            "CONFIG GET lfu-log-factor",
            "CONFIG GET lfu-decay-time",
        ],
    );
}

/// RESTORE … FREQ sets the counter under LFU, IDLETIME the idle time
/// under LRU; each is ignored under the other policy (payloads from the
/// same server's DUMP).
fn restore_clock(srv: &Server) -> Vec<String> {
    let mut c = srv.conn();
    c.cmd(&["FLUSHALL"]);
    c.cmd(&["SET", "src", "hello"]);
    let Value::Bulk(payload) = c.cmd(&["DUMP", "src"]) else { panic!("{}: DUMP", srv.name) };
    let restore = |c: &mut common::RespConn, key: &str, opt: &[&str]| {
        let mut args: Vec<Vec<u8>> = vec![b"RESTORE".to_vec(), key.into(), b"0".to_vec(), payload.clone()];
        args.extend(opt.iter().map(|o| o.as_bytes().to_vec()));
        c.cmd(&args)
    };
    let mut seen = Vec::new();
    for (k, v) in [("maxmemory", "1gb"), ("maxmemory-policy", "allkeys-lfu")] {
        c.cmd(&["CONFIG", "SET", k, v]);
    }
    seen.push(format!("{:?}", restore(&mut c, "f", &["FREQ", "100"])));
    seen.push(format!("{:?}", c.cmd(&["OBJECT", "FREQ", "f"])));
    seen.push(format!("{:?}", restore(&mut c, "f2", &["IDLETIME", "1000"])));
    seen.push(format!("{:?}", c.cmd(&["OBJECT", "FREQ", "f2"])));
    seen.push(format!("{:?}", restore(&mut c, "bad", &["FREQ", "256"])));
    seen.push(format!("{:?}", restore(&mut c, "bad", &["IDLETIME", "-1"])));
    c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    seen.push(format!("{:?}", restore(&mut c, "i", &["IDLETIME", "1000"])));
    seen.push(format!("{:?}", c.cmd(&["OBJECT", "IDLETIME", "i"])));
    seen.push(format!("{:?}", restore(&mut c, "i2", &["FREQ", "100"])));
    seen.push(format!("{:?}", c.cmd(&["OBJECT", "IDLETIME", "i2"])));
    seen
}

#[test]
fn restore_idletime_and_freq() {
    let redis = Server::start_redis();
    let want = restore_clock(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        assert_eq!(restore_clock(&s), want, "{shards} shard(s)");
    }
}

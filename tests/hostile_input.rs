//! Hostile input against a live server: glob pattern bombs, RESTORE
//! payloads nested inside each other, and a huge multibulk request that
//! arrives in pieces. Each must get an answer (or an error reply) without
//! hanging or crashing a shard, and every shard answers afterwards.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{encode_command, RespConn, Server, Value};

/// A key owned by `shard` (keys route by hash slot).
fn key_on_shard(shard: usize, nshards: usize) -> String {
    (0..100_000)
        .map(|i| format!("probe:{i}"))
        .find(|k| shardis::util::key_shard(k.as_bytes(), nshards) == shard)
        .expect("a key for every shard")
}

/// Every shard's loop still runs: a GET of a key it owns is forwarded to
/// it and answered.
fn assert_every_shard_answers(s: &Server, nshards: usize) {
    let mut c = s.conn();
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    for shard in 0..nshards {
        let key = key_on_shard(shard, nshards);
        assert_eq!(c.cmd(&["GET", &key]), Value::NilBulk, "shard {shard} via {key}\n{}", s.logs());
    }
}

#[test]
fn glob_pattern_bomb_returns() {
    // The pattern: 20 stars, against a key of 40 a's. Exponential
    // matching never returned; the client's read timeout bounds the wait.
    let s = Server::start(2, &[]);
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
    assert_every_shard_answers(&s, 2);
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
    assert_eq!(c.cmd(&["CONFIG", "GET", "maxclients"]), Value::Array(vec![Value::bulk("maxclients"), Value::bulk("10000")]));
    assert_every_shard_answers(&s, 2);
}

#[test]
fn huge_multibulk_in_pieces_does_not_stall_the_shard() {
    // One shard, so the pinging client shares the loop with the big request.
    // RPUSH of 1048574 one-byte elements: 7.3 MB arriving over many reads,
    // each of which re-parsed the request from its start.
    const ELEMENTS: usize = 1024 * 1024 - 2;
    const PIECE: usize = 16 * 1024;
    let s = Server::start(1, &[]);
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
    assert_every_shard_answers(&s, 1);
}

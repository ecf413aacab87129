//! Blocking list and sorted-set commands with real clients: wake-up order,
//! timeouts, wake-ups from any shard and from MULTI/EXEC, cross-shard
//! BLMOVE, disconnects, and the AOF after serving.

mod common;

use common::resp::{RespConn, Value};
use common::server::Server;
use std::time::{Duration, Instant};

fn blocked_clients(c: &mut RespConn) -> i64 {
    let info = match c.cmd(&["INFO", "clients"]) {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {other}"),
    };
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).expect("field")
}

/// Wait (bounded) until `n` clients are blocked.
fn wait_blocked(c: &mut RespConn, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_clients(c) != n {
        assert!(Instant::now() < deadline, "expected {n} blocked clients");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn bulk(s: &str) -> Value {
    Value::bulk(s)
}

fn arr(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| bulk(s)).collect())
}

/// A connection that sends a blocking command now and reads its reply later.
fn send_blocking(srv: &Server, cmd: &[&str]) -> RespConn {
    let mut c = srv.conn();
    c.set_read_timeout(Some(Duration::from_secs(20)));
    c.send_raw(&common::resp::encode_command(cmd)).expect("send");
    c
}

fn fifo_and_wakeups(shards: usize) {
    let srv = Server::start(shards, &[]);
    let mut ctl = srv.conn();
    // Three clients block on the same key, in a known order.
    let mut a = send_blocking(&srv, &["BLPOP", "q", "0"]);
    wait_blocked(&mut ctl, 1);
    let mut b = send_blocking(&srv, &["BLPOP", "other", "q", "0"]);
    wait_blocked(&mut ctl, 2);
    let mut c = send_blocking(&srv, &["BRPOP", "q", "0"]);
    wait_blocked(&mut ctl, 3);
    // One push with two elements serves the first two, in order.
    assert_eq!(ctl.cmd(&["RPUSH", "q", "x1", "x2"]), Value::Int(2));
    assert_eq!(a.read_value().unwrap(), arr(&["q", "x1"]));
    assert_eq!(b.read_value().unwrap(), arr(&["q", "x2"]));
    wait_blocked(&mut ctl, 1);
    // A push inside MULTI/EXEC wakes it after EXEC; an EXEC that pops its
    // own push leaves nothing to serve.
    assert_eq!(ctl.cmd(&["MULTI"]), Value::ok());
    ctl.cmd(&["RPUSH", "q", "t1"]);
    ctl.cmd(&["LPOP", "q"]);
    assert_eq!(ctl.cmd(&["EXEC"]), Value::Array(vec![Value::Int(1), bulk("t1")]));
    assert_eq!(blocked_clients(&mut ctl), 1, "still waiting after an EXEC that left nothing");
    assert_eq!(ctl.cmd(&["MULTI"]), Value::ok());
    ctl.cmd(&["RPUSH", "q", "m1", "m2"]);
    assert_eq!(ctl.cmd(&["EXEC"]), Value::Array(vec![Value::Int(2)]));
    assert_eq!(c.read_value().unwrap(), arr(&["q", "m2"]), "BRPOP takes from the tail");
    assert_eq!(ctl.cmd(&["LRANGE", "q", "0", "-1"]), arr(&["m1"]));
    // Sorted sets.
    let mut z = send_blocking(&srv, &["BZPOPMIN", "z1", "z2", "0"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["ZADD", "z2", "3", "c", "1", "a"]);
    assert_eq!(z.read_value().unwrap(), arr(&["z2", "a", "1"]));
    let mut zm = send_blocking(&srv, &["BZMPOP", "0", "1", "z3", "MAX", "COUNT", "2"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["ZADD", "z3", "1", "p", "2", "q", "3", "r"]);
    let want = Value::Array(vec![bulk("z3"), Value::Array(vec![arr(&["r", "3"]), arr(&["q", "2"])])]);
    assert_eq!(zm.read_value().unwrap(), want);
    // BLMPOP with a count.
    let mut lm = send_blocking(&srv, &["BLMPOP", "0", "2", "l1", "l2", "RIGHT", "COUNT", "5"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", "l2", "a", "b"]);
    assert_eq!(lm.read_value().unwrap(), Value::Array(vec![bulk("l2"), arr(&["b", "a"])]));
    assert_eq!(blocked_clients(&mut ctl), 0);
}

#[test]
fn fifo_order_and_wakeups_1_shard() {
    fifo_and_wakeups(1);
}

#[test]
fn fifo_order_and_wakeups_4_shards() {
    fifo_and_wakeups(4);
}

#[test]
fn timeouts_with_sub_second_precision() {
    let srv = Server::start(4, &[]);
    let mut c = srv.conn();
    for (cmd, want) in [
        (vec!["BLPOP", "none1", "none2", "0.2"], Value::NilArray),
        (vec!["BLMOVE", "none1", "d", "LEFT", "RIGHT", "0.15"], Value::NilArray),
        (vec!["BZPOPMAX", "nz", "0.1"], Value::NilArray),
        (vec!["BLMPOP", "0.1", "1", "none3", "LEFT"], Value::NilArray),
    ] {
        let t0 = Instant::now();
        assert_eq!(c.cmd(&cmd), want, "{cmd:?}");
        let ms = t0.elapsed().as_millis();
        assert!(ms >= 90, "{cmd:?} returned after {ms} ms, before its timeout");
    }
    assert_eq!(c.cmd(&["BLPOP", "k", "-1"]), Value::err("ERR timeout is negative"));
    assert_eq!(c.cmd(&["BLPOP", "k", "abc"]), Value::err("ERR timeout is not a float or out of range"));
    c.cmd(&["SET", "str", "v"]);
    assert!(c.cmd(&["BLPOP", "str", "0"]).is_error(), "WRONGTYPE at once");
    // Pipelined after a blocking command: runs after it, in order.
    c.send_raw(
        &[common::resp::encode_command(&["BLPOP", "none", "0.05"]), common::resp::encode_command(&["PING"])].concat(),
    )
    .unwrap();
    assert_eq!(c.read_value().unwrap(), Value::NilArray);
    assert_eq!(c.read_value().unwrap(), Value::Simple("PONG".into()));
}

/// Keys on different shards: BLMOVE waits on the source and moves
/// atomically to a destination owned by another shard.
#[test]
fn blmove_across_shards() {
    let srv = Server::start(4, &[]);
    let mut ctl = srv.conn();
    // "a" (slot 15495) and "b" (slot 3300) live on different shards of 4.
    let mut m = send_blocking(&srv, &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut ctl, 1);
    assert_eq!(ctl.cmd(&["RPUSH", "a", "v1", "v2"]), Value::Int(2));
    assert_eq!(m.read_value().unwrap(), bulk("v1"));
    assert_eq!(ctl.cmd(&["LRANGE", "a", "0", "-1"]), arr(&["v2"]));
    assert_eq!(ctl.cmd(&["LRANGE", "b", "0", "-1"]), arr(&["v1"]));
    // And a cross-shard BLPOP over both keys.
    ctl.cmd(&["DEL", "a", "b"]);
    let mut p = send_blocking(&srv, &["BLPOP", "a", "b", "0"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", "b", "only"]);
    assert_eq!(p.read_value().unwrap(), arr(&["b", "only"]));
    // A cross-shard command times out too.
    let t0 = Instant::now();
    assert_eq!(ctl.cmd(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0.1"]), Value::NilArray);
    assert!(t0.elapsed() >= Duration::from_millis(90));
    assert_eq!(blocked_clients(&mut ctl), 0);
}

#[test]
fn disconnected_blocked_client_leaves_nothing_behind() {
    let srv = Server::start(4, &[]);
    let mut ctl = srv.conn();
    let gone = send_blocking(&srv, &["BLPOP", "dq", "0"]);
    let gone2 = send_blocking(&srv, &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut ctl, 2);
    drop(gone);
    drop(gone2);
    wait_blocked(&mut ctl, 0);
    ctl.cmd(&["RPUSH", "dq", "kept"]);
    ctl.cmd(&["RPUSH", "a", "kept"]);
    assert_eq!(ctl.cmd(&["LRANGE", "dq", "0", "-1"]), arr(&["kept"]));
    assert_eq!(ctl.cmd(&["LRANGE", "a", "0", "-1"]), arr(&["kept"]));
}

/// What a served blocked client popped is in the AOF as a pop.
#[test]
fn served_pops_survive_restart() {
    let mut srv = Server::start(2, &["--appendfsync", "always"]);
    let mut ctl = srv.conn();
    let mut a = send_blocking(&srv, &["BLPOP", "q", "0"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", "q", "1", "2", "3"]);
    assert_eq!(a.read_value().unwrap(), arr(&["q", "1"]));
    let mut m = send_blocking(&srv, &["BLMOVE", "src", "q", "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", "src", "s"]);
    assert_eq!(m.read_value().unwrap(), bulk("s"));
    let before = ctl.cmd(&["LRANGE", "q", "0", "-1"]);
    assert_eq!(before, arr(&["s", "2", "3"]));
    drop(ctl);
    srv.kill9();
    srv.restart().expect("restart");
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["LRANGE", "q", "0", "-1"]), before);
    assert_eq!(c.cmd(&["EXISTS", "src"]), Value::Int(0));
}

#[test]
fn xread_and_xreadgroup_block() {
    let srv = Server::start(4, &[]);
    let mut ctl = srv.conn();
    ctl.cmd(&["XADD", "s1", "1-1", "f", "old"]);
    // `$` means entries after the last one when the client blocked.
    let mut r = send_blocking(&srv, &["XREAD", "BLOCK", "0", "STREAMS", "s1", "$"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["XADD", "s1", "2-1", "f", "new"]);
    let entry = |id: &str, v: &str| Value::Array(vec![bulk(id), arr(&["f", v])]);
    let want = Value::Array(vec![Value::Array(vec![bulk("s1"), Value::Array(vec![entry("2-1", "new")])])]);
    assert_eq!(r.read_value().unwrap(), want);
    // Two streams on different shards ("a" and "b"): woken by the second.
    let mut r2 = send_blocking(&srv, &["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "$", "$"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["XADD", "b", "5-1", "f", "bee"]);
    let want = Value::Array(vec![Value::Array(vec![bulk("b"), Value::Array(vec![entry("5-1", "bee")])])]);
    assert_eq!(r2.read_value().unwrap(), want);
    // A consumer group reader gets new entries and they become pending.
    assert_eq!(ctl.cmd(&["XGROUP", "CREATE", "s1", "g", "$"]), Value::ok());
    let mut g = send_blocking(&srv, &["XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s1", ">"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&["XADD", "s1", "3-1", "f", "grp"]);
    let want = Value::Array(vec![Value::Array(vec![bulk("s1"), Value::Array(vec![entry("3-1", "grp")])])]);
    assert_eq!(g.read_value().unwrap(), want);
    let pending = ctl.cmd(&["XPENDING", "s1", "g"]);
    assert_eq!(pending.as_items().map(|v| v[0].clone()), Some(Value::Int(1)), "{pending}");
    // Timeouts (ms) and errors.
    assert_eq!(ctl.cmd(&["XREAD", "BLOCK", "50", "STREAMS", "s1", "$"]), Value::NilArray);
    assert_eq!(ctl.cmd(&["XREAD", "BLOCK", "-1", "STREAMS", "s1", "$"]), Value::err("ERR timeout is negative"));
    assert_eq!(blocked_clients(&mut ctl), 0);
}

/// A blocked XREADGROUP whose stream goes away (DEL, a SET over it,
/// FLUSHALL) or whose group is destroyed is answered with Redis 7's errors
/// instead of waiting forever; plain XREAD keeps waiting.
fn xreadgroup_unblocked_when_its_source_goes(shards: usize) {
    let srv = Server::start(shards, &[]);
    let mut ctl = srv.conn();
    let cases: [(&[&str], &str); 4] = [
        (&["XGROUP", "DESTROY", "s", "g"], "NOGROUP the consumer group this client was blocked on no longer exists"),
        (&["DEL", "s"], "UNBLOCKED the stream key no longer exists"),
        (&["SET", "s", "x"], "UNBLOCKED the stream key no longer exists"),
        (&["FLUSHALL"], "UNBLOCKED the stream key no longer exists"),
    ];
    for (cmd, want) in cases {
        ctl.cmd(&["DEL", "s"]);
        assert_eq!(ctl.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]), Value::ok());
        let plain = send_blocking(&srv, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
        let mut grouped = send_blocking(&srv, &["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"]);
        wait_blocked(&mut ctl, 2);
        ctl.cmd(cmd);
        assert_eq!(grouped.read_value().unwrap(), Value::Error(want.into()), "after {cmd:?}");
        // Plain XREAD still waits; gone with its connection.
        wait_blocked(&mut ctl, 1);
        drop(plain);
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn xreadgroup_unblocked_when_its_source_goes_1_shard() {
    xreadgroup_unblocked_when_its_source_goes(1);
}

#[test]
fn xreadgroup_unblocked_when_its_source_goes_4_shards() {
    xreadgroup_unblocked_when_its_source_goes(4);
}

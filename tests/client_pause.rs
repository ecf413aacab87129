//! CLIENT PAUSE / UNPAUSE: the same scenarios run against redis-server 7.0
//! and shardis on 1 and 4 shards (keys spread over the shards), with the
//! argument errors compared side by side.

mod common;

use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

/// Send a command and report whether its reply comes within `ms`.
fn replies_within(c: &mut RespConn, args: &[&str], ms: u64) -> bool {
    c.send_raw(&common::encode_command(args)).expect("send");
    c.set_read_timeout(Some(Duration::from_millis(ms)));
    let got = c.read_value().is_ok();
    c.set_read_timeout(Some(common::resp::READ_TIMEOUT));
    got
}

fn scenarios(srv: &Server, what: &str) {
    let mut admin = srv.conn();
    let mut c = srv.conn();
    let keys = ["a", "b", "c", "{x}d", "zz"];
    for k in keys {
        c.cmd(&["SET", k, "1"]);
    }
    // WRITE: reads go on; writes, PUBLISH and EVAL wait until UNPAUSE.
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]), Value::ok(), "{what}");
    for k in keys {
        assert_eq!(c.cmd(&["GET", k]), Value::bulk("1"), "{what}: GET {k} under WRITE pause");
    }
    assert!(replies_within(&mut c, &["PING"], 2000), "{what}");
    for cmd in [&["SET", "b", "2"][..], &["PUBLISH", "ch", "m"], &["EVAL", "return 1", "0"]] {
        let mut w = srv.conn();
        assert!(!replies_within(&mut w, cmd, 300), "{what}: {cmd:?} ran under a WRITE pause");
        assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), Value::ok(), "{what}");
        w.set_read_timeout(Some(Duration::from_secs(5)));
        assert!(w.read_value().is_ok(), "{what}: {cmd:?} not released by UNPAUSE");
        admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]);
    }
    // A MULTI whose EXEC would write waits at EXEC.
    let mut m = srv.conn();
    m.cmd(&["MULTI"]);
    assert_eq!(m.cmd(&["GET", "a"]), Value::Simple("QUEUED".into()));
    assert!(replies_within(&mut m, &["EXEC"], 2000), "{what}: read-only EXEC held");
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    // ALL: every command waits, CLIENT UNPAUSE's too, until the timeout.
    admin.cmd(&["CLIENT", "PAUSE", "600", "ALL"]);
    let t = Instant::now();
    assert!(!replies_within(&mut c, &["GET", "a"], 200), "{what}: GET ran under an ALL pause");
    c.set_read_timeout(Some(Duration::from_secs(5)));
    assert!(c.read_value().is_ok(), "{what}");
    c.set_read_timeout(Some(common::resp::READ_TIMEOUT));
    assert!(t.elapsed() >= Duration::from_millis(450), "{what}: released after {:?}", t.elapsed());
    // Expiry is held too: keys past their time are not deleted (DBSIZE)
    // until the pause ends, while reads see them as gone.
    c.cmd(&["FLUSHALL"]);
    for k in keys {
        c.cmd(&["SET", k, "1", "PX", "100"]);
    }
    admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.cmd(&["GET", "a"]), Value::NilBulk, "{what}");
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(5), "{what}: keys deleted during the pause");
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    let end = Instant::now() + Duration::from_secs(5);
    while c.cmd(&["DBSIZE"]) != Value::Int(0) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(0), "{what}: not expired after UNPAUSE");
}

#[test]
fn pause_as_redis() {
    let redis = Server::start_redis();
    scenarios(&redis, "redis");
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        scenarios(&s, &format!("shardis {shards}"));
    }
}

#[test]
fn pause_argument_errors_as_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(4, &["--appendonly", "no"]);
    for line in [
        "CLIENT PAUSE abc",
        "CLIENT PAUSE -1",
        "CLIENT PAUSE 10 foo",
        "CLIENT PAUSE 10 write extra",
        "CLIENT PAUSE",
        "CLIENT UNPAUSE x",
        "CLIENT PAUSE 0 WRITE",
        "CLIENT UNPAUSE",
    ] {
        let a: Vec<&str> = line.split(' ').collect();
        let want = redis.conn().cmd(&a);
        let got = shardis.conn().cmd(&a);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{line}");
    }
}

/// CLIENT UNBLOCK of clients blocked in BLPOP/BLMOVE/BZPOPMIN (one key,
/// or keys on several shards), by TIMEOUT and ERROR: every reply as
/// redis-server's.
fn unblock_replies(srv: &Server) -> Vec<String> {
    let mut admin = srv.conn();
    let mut seen = Vec::new();
    let blocking: [&[&str]; 4] = [
        &["BLPOP", "k1", "0"],
        &["BLPOP", "k1", "k2", "k3", "k4", "0"],
        &["BLMOVE", "k1", "k2", "LEFT", "RIGHT", "0"],
        &["BZPOPMIN", "z1", "z2", "0"],
    ];
    for cmd in blocking {
        for how in ["TIMEOUT", "ERROR", ""] {
            let mut b = srv.conn();
            let id = match b.cmd(&["CLIENT", "ID"]) {
                Value::Int(n) => n.to_string(),
                other => panic!("CLIENT ID: {other:?}"),
            };
            b.send_raw(&common::encode_command(cmd)).expect("send");
            // Wait until it is blocked (bounded).
            let end = Instant::now() + Duration::from_secs(5);
            let mut args = vec!["CLIENT", "UNBLOCK", id.as_str()];
            if !how.is_empty() {
                args.push(how);
            }
            let mut r = admin.cmd(&args);
            while r == Value::Int(0) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
                r = admin.cmd(&args);
            }
            seen.push(format!("{cmd:?} {how}: {r:?} -> {:?}", b.read_value().expect("unblocked reply")));
            seen.push(format!("again: {:?}", admin.cmd(&args)));
        }
    }
    for line in ["CLIENT UNBLOCK abc", "CLIENT UNBLOCK 999999", "CLIENT UNBLOCK 1 foo", "CLIENT UNBLOCK 1 timeout x"] {
        let a: Vec<&str> = line.split(' ').collect();
        seen.push(format!("{line}: {:?}", admin.cmd(&a)));
    }
    seen
}

#[test]
fn unblock_as_redis() {
    let redis = Server::start_redis();
    let want = unblock_replies(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        assert_eq!(unblock_replies(&s), want, "{shards} shard(s)");
    }
}

/// Clients blocked in BLPOP when a pause starts, or blocking during one:
/// what each gets, and whether before the pause ends, as redis-server's.
/// (Under a WRITE pause no push can run, so a blocked client is not served
/// until it ends; its timeout and CLIENT UNBLOCK still answer at once.)
fn blocked_under_pause(srv: &Server) -> Vec<String> {
    let mut admin = srv.conn();
    let mut seen = Vec::new();
    // Time for a sent BLPOP to block (its reply is what is compared).
    let wait_blocked = |_: &mut RespConn| std::thread::sleep(Duration::from_millis(200));
    for k in ["l1", "l2", "{x}l3"] {
        admin.cmd(&["DEL", k]);
    }
    // Its timeout passes during the pause: nil then, not at the end.
    let mut b = srv.conn();
    b.send_raw(&common::encode_command(&["BLPOP", "l1", "0.3"])).expect("send");
    wait_blocked(&mut admin);
    admin.cmd(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    let t = Instant::now();
    b.set_read_timeout(Some(Duration::from_secs(4)));
    seen.push(format!("timeout: {:?} early={}", b.read_value().ok(), t.elapsed() < Duration::from_secs(2)));
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    // CLIENT UNBLOCK during the pause.
    let mut b = srv.conn();
    let id = match b.cmd(&["CLIENT", "ID"]) {
        Value::Int(n) => n.to_string(),
        other => panic!("CLIENT ID: {other:?}"),
    };
    b.send_raw(&common::encode_command(&["BLPOP", "l2", "0"])).expect("send");
    wait_blocked(&mut admin);
    admin.cmd(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    seen.push(format!("unblock: {:?}", admin.cmd(&["CLIENT", "UNBLOCK", &id])));
    b.set_read_timeout(Some(Duration::from_secs(2)));
    seen.push(format!("unblocked: {:?}", b.read_value().ok()));
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    // A push queued in MULTI waits at EXEC, so the blocked client is
    // served only after the pause.
    let mut b = srv.conn();
    b.send_raw(&common::encode_command(&["BLPOP", "{x}l3", "0"])).expect("send");
    wait_blocked(&mut admin);
    let mut m = srv.conn();
    m.cmd(&["MULTI"]);
    m.cmd(&["LPUSH", "{x}l3", "v"]);
    admin.cmd(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    seen.push(format!("exec held: {}", !replies_within(&mut m, &["EXEC"], 300)));
    b.set_read_timeout(Some(Duration::from_millis(300)));
    seen.push(format!("served during pause: {}", b.read_value().is_ok()));
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    m.set_read_timeout(Some(Duration::from_secs(5)));
    seen.push(format!("exec: {:?}", m.read_value().ok()));
    b.set_read_timeout(Some(Duration::from_secs(5)));
    seen.push(format!("served after: {:?}", b.read_value().ok()));
    // BLPOP sent during a WRITE pause waits (it is a write), then pops.
    admin.cmd(&["RPUSH", "l1", "a"]);
    admin.cmd(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    let mut b = srv.conn();
    seen.push(format!("blpop held: {}", !replies_within(&mut b, &["BLPOP", "l1", "0"], 300)));
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    b.set_read_timeout(Some(Duration::from_secs(5)));
    seen.push(format!("blpop: {:?}", b.read_value().ok()));
    seen
}

#[test]
fn blocked_clients_under_pause_as_redis() {
    let redis = Server::start_redis();
    let want = blocked_under_pause(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        assert_eq!(blocked_under_pause(&s), want, "{shards} shard(s)");
    }
}

/// CLIENT PAUSE / UNPAUSE queued in MULTI, with keys on several shards:
/// EXEC's replies as Redis's, and the pause in force once EXEC is done.
fn pause_in_multi(srv: &Server) -> Vec<String> {
    let mut c = srv.conn();
    let mut out = Vec::new();
    // Keys on shards 0 and 1 of a 4-shard server: a cross-shard EXEC there.
    let (a, b) = (common::shards::key_on_shard("pm", 0, 4), common::shards::key_on_shard("pm", 1, 4));
    for cmd in [
        vec!["MULTI"],
        vec!["SET", &a, "1"],
        vec!["CLIENT", "PAUSE", "300", "WRITE"],
        vec!["CLIENT", "PAUSE", "x"],
        vec!["SET", &b, "2"],
        vec!["CLIENT", "UNPAUSE"],
        vec!["CLIENT", "PAUSE", "400", "WRITE"],
        vec!["EXEC"],
    ] {
        out.push(format!("{cmd:?} -> {:?}", c.cmd(&cmd)));
    }
    let mut w = srv.conn();
    out.push(format!("write held: {}", !replies_within(&mut w, &["SET", "pm:c", "3"], 150)));
    out.push(format!("then: {:?}", w.read_value().ok()));
    out
}

#[test]
fn pause_inside_multi_as_redis() {
    let want = pause_in_multi(&Server::start_redis());
    for shards in [1, 4] {
        assert_eq!(pause_in_multi(&Server::start(shards, &["--appendonly", "no"])), want, "{shards} shard(s)");
    }
}

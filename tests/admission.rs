//! Admission gates on every road a command can take (issue 13, item 4):
//! a refusal for a shard's AOF write error (MISCONF) or for a shard out of
//! memory under `noeviction` (OOM) must hold whether the command runs on
//! the connection's shard, is forwarded to the key's shard, is squashed
//! from a pipeline, is a cross-shard command, or runs in EXEC (local,
//! cross-shard or routed) — with the condition on one participant only.
//!
//! Keys and connections are placed on chosen shards (`common::shards`).
//! Every wait is bounded; replies have the harness's read timeout, so a
//! held reply fails the test instead of hanging it.

mod common;

use std::time::{Duration, Instant};

use common::shards::{conn_on_shard, key_on_shard};
use common::{RespConn, Server, Value};

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

fn is_err_with(v: &Value, prefix: &str) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(prefix))
}

fn info_field(c: &mut RespConn, section: &str, field: &str) -> String {
    let v = c.cmd(&["INFO", section]);
    let text = String::from_utf8_lossy(v.as_bytes().expect("INFO is a bulk string")).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}: {text}"))
}

/// Wait (bounded) until INFO persistence says the AOF's writes are `want`.
fn wait_write_status(c: &mut RespConn, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = info_field(c, "persistence", "aof_last_write_status");
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "aof_last_write_status stayed {got}, wanted {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `cmds` as one pipeline (one write) and read every reply.
fn pipeline(c: &mut RespConn, cmds: &[&[&str]]) -> Vec<Value> {
    let mut bytes = Vec::new();
    for cmd in cmds {
        bytes.extend(common::encode_command(cmd));
    }
    c.send_raw(&bytes).expect("send pipeline");
    cmds.iter().map(|_| c.read_value().expect("pipeline reply")).collect()
}

fn multi(c: &mut RespConn, cmds: &[&[&str]]) {
    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
    for cmd in cmds {
        assert_eq!(c.cmd(cmd), Value::Simple("QUEUED".into()), "queueing {cmd:?}");
    }
}

/// Three transactions writing `k0` (shard 0) left queued, for EXEC later:
/// local to shard 0, across both shards, and routed (DBSIZE takes every
/// shard).
fn queue_transactions(srv: &Server, k0: &str, k1: &str) -> [RespConn; 3] {
    let mut local = conn_on_shard(srv, 0);
    multi(&mut local, &[&["SET", k0, "tx"]]);
    let mut cross = conn_on_shard(srv, 1);
    multi(&mut cross, &[&["SET", k0, "tx"], &["SET", k1, "tx"]]);
    let mut routed = conn_on_shard(srv, 1);
    multi(&mut routed, &[&["DBSIZE"], &["SET", k1, "tx"]]);
    [local, cross, routed]
}

/// Shard 0's AOF fails (failpoint `aof-eio`); shard 1's works.
#[test]
fn misconf_refuses_writes_on_every_road() {
    let srv = Server::start_env(2, &[], &[("SHARDIS_FAILPOINT", "aof-eio")]);
    let k0 = key_on_shard("mc", 0, 2);
    let k1 = key_on_shard("mc", 1, 2);
    let mut c0 = conn_on_shard(&srv, 0);
    let mut c1 = conn_on_shard(&srv, 1);
    assert_eq!(c0.cmd(&["SET", &k0, "before"]), Value::ok());
    assert_eq!(c1.cmd(&["SET", &k1, "before"]), Value::ok());
    // Queued while the AOF still works, run after it fails.
    let [mut local_exec, mut cross_exec, mut routed_exec] = queue_transactions(&srv, &k0, &k1);

    let marker = srv.dir.join("shard-000").join("fail-writes");
    std::fs::write(&marker, b"").expect("create failpoint marker");
    // A write on shard 0 meets the error; its own reply may wait for the
    // write to succeed, so it goes on a connection nobody reads.
    let mut trigger = conn_on_shard(&srv, 0);
    trigger.send_raw(&common::encode_command(&["SET", &k0, "trigger"])).expect("send trigger");
    wait_write_status(&mut c1, "err");

    // Local, forwarded, squashed.
    assert!(is_err_with(&c0.cmd(&["SET", &k0, "x"]), "MISCONF"), "local write");
    assert!(is_err_with(&c1.cmd(&["SET", &k0, "x"]), "MISCONF"), "forwarded write");
    let r = pipeline(&mut c1, &[&["SET", &k0, "x"], &["SET", &k1, "sq"], &["GET", &k1]]);
    assert!(is_err_with(&r[0], "MISCONF"), "squashed write to the failing shard: {r:?}");
    assert_eq!(r[1..], [Value::ok(), Value::bulk("sq")], "the healthy shard's part of the pipeline");
    // A cross-shard command: nothing of it happens.
    assert!(is_err_with(&c1.cmd(&["MSET", &k0, "x", &k1, "mset"]), "MISCONF"), "cross-shard MSET");
    assert_eq!(c1.cmd(&["GET", &k1]), Value::bulk("sq"), "a refused MSET wrote nothing");
    // A keyspace-wide write (every shard takes part) and a blocking
    // command's first try.
    assert!(is_err_with(&c1.cmd(&["FLUSHALL"]), "MISCONF"), "FLUSHALL over both shards");
    assert!(is_err_with(&c1.cmd(&["BLPOP", &k0, "0.01"]), "MISCONF"), "BLPOP on the failing shard");
    assert_eq!(c1.cmd(&["GET", &k1]), Value::bulk("sq"), "a refused FLUSHALL flushed nothing");
    // EXEC: local, cross-shard, routed (every shard takes part).
    for (name, c) in [("local", &mut local_exec), ("cross-shard", &mut cross_exec), ("routed", &mut routed_exec)] {
        let r = c.cmd(&["EXEC"]);
        assert!(is_err_with(&r, "EXECABORT Transaction discarded because of: MISCONF"), "{name} EXEC replied {r}");
    }
    assert_eq!(c1.cmd(&["GET", &k1]), Value::bulk("sq"), "a refused EXEC wrote nothing");
    // Queueing a write on the failing shard is refused, as in Redis, and
    // EXEC then aborts.
    assert_eq!(c0.cmd(&["MULTI"]), Value::ok());
    assert!(is_err_with(&c0.cmd(&["SET", &k0, "q"]), "MISCONF"), "queued write");
    assert!(is_err_with(&c0.cmd(&["EXEC"]), "EXECABORT Transaction discarded because of previous errors"));
    // Reads and the healthy shard's own writes still run.
    assert_eq!(c1.cmd(&["SET", &k1, "ok"]), Value::ok());
    assert_eq!(c1.cmd(&["EXISTS", &k1]), Value::Int(1));

    // The disk recovers: writes work again on every road.
    std::fs::remove_file(&marker).expect("remove failpoint marker");
    wait_write_status(&mut c1, "ok");
    assert_eq!(trigger.read_value().expect("trigger reply"), Value::ok());
    assert_eq!(c0.cmd(&["SET", &k0, "after"]), Value::ok());
    assert_eq!(c1.cmd(&["MSET", &k0, "m0", &k1, "m1"]), Value::ok());
    assert_eq!(c0.cmd(&["MGET", &k0, &k1]), Value::Array(vec![Value::bulk("m0"), Value::bulk("m1")]));
}

/// One shard: a keyspace-wide write runs at the connection, not as a
/// transaction, and passes the same gate.
#[test]
fn misconf_refuses_a_keyspace_wide_write_on_one_shard() {
    let srv = Server::start_env(1, &[], &[("SHARDIS_FAILPOINT", "aof-eio")]);
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
    let marker = srv.dir.join("shard-000").join("fail-writes");
    std::fs::write(&marker, b"").expect("create failpoint marker");
    let mut trigger = srv.conn();
    trigger.send_raw(&common::encode_command(&["SET", "k", "trigger"])).expect("send trigger");
    wait_write_status(&mut c, "err");
    for cmd in [&["FLUSHALL"][..], &["FLUSHDB"], &["SWAPDB", "0", "1"]] {
        assert!(is_err_with(&c.cmd(cmd), "MISCONF"), "{cmd:?}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(1), "reads still run");
    std::fs::remove_file(&marker).expect("remove failpoint marker");
    wait_write_status(&mut c, "ok");
    assert_eq!(trigger.read_value().expect("trigger reply"), Value::ok());
    assert_eq!(c.cmd(&["FLUSHALL"]), Value::ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(0));
}

/// Shard 0 is over its share of maxmemory under noeviction; shard 1 is not.
#[test]
fn oom_refuses_on_every_road_with_one_participant_full() {
    let srv = Server::start(2, &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction", "--appendonly", "no"]);
    let tag = key_on_shard("fill", 0, 2);
    let k0 = key_on_shard("oom", 0, 2);
    let k1 = key_on_shard("oom", 1, 2);
    let mut c0 = conn_on_shard(&srv, 0);
    let mut c1 = conn_on_shard(&srv, 1);
    assert_eq!(c1.cmd(&["SET", &k1, "before"]), Value::ok());
    let [mut local_exec, mut cross_exec, mut routed_exec] = queue_transactions(&srv, &k0, &k1);

    // Fill shard 0 (keys with its hash tag) until it refuses.
    let value = "v".repeat(16 * 1024);
    let mut filled = false;
    for i in 0..4000 {
        match c0.cmd(&["SET", &format!("{{{tag}}}:{i}"), &value]) {
            Value::Error(e) if e == OOM => {
                filled = true;
                break;
            }
            v => assert_eq!(v, Value::ok()),
        }
    }
    assert!(filled, "shard 0 never reached its limit");

    assert_eq!(c0.cmd(&["SET", &k0, "x"]), Value::err(OOM), "local");
    assert_eq!(c1.cmd(&["SET", &k0, "x"]), Value::err(OOM), "forwarded");
    let r = pipeline(&mut c1, &[&["SET", &k0, "x"], &["SET", &k1, "sq"]]);
    assert_eq!(r, [Value::err(OOM), Value::ok()], "squashed");
    assert_eq!(c1.cmd(&["MSET", &k0, "x", &k1, "mset"]), Value::err(OOM), "cross-shard MSET");
    assert_eq!(c1.cmd(&["GET", &k1]), Value::bulk("sq"), "a refused MSET wrote nothing");
    assert_eq!(c1.cmd(&["EXISTS", &k0]), Value::Int(0));
    assert_eq!(c1.cmd(&["BLMOVE", &k0, &k0, "LEFT", "LEFT", "0.01"]), Value::err(OOM), "blocking, first try");
    for (name, c) in [("local", &mut local_exec), ("cross-shard", &mut cross_exec)] {
        let r = c.cmd(&["EXEC"]);
        assert_eq!(r, Value::err(&format!("EXECABORT Transaction discarded because of: {OOM}")), "{name} EXEC");
    }
    // Routed: DBSIZE + a write to the healthy shard only; SET may grow
    // memory and the transaction as a whole takes every shard.
    let r = routed_exec.cmd(&["EXEC"]);
    assert_eq!(r, Value::err(&format!("EXECABORT Transaction discarded because of: {OOM}")), "routed EXEC");
    assert_eq!(c1.cmd(&["GET", &k1]), Value::bulk("sq"), "a refused EXEC wrote nothing");
    // What frees or reads memory still runs, on the full shard too.
    assert_eq!(c1.cmd(&["GET", &format!("{{{tag}}}:0")]), Value::bulk(&value));
    assert_eq!(c1.cmd(&["DEL", &format!("{{{tag}}}:0"), &k1]), Value::Int(2), "cross-shard DEL");
    let st = info_field(&mut c1, "commandstats", "cmdstat_mset");
    assert!(st.contains("rejected_calls=1"), "the refused MSET counts as rejected: {st}");
}

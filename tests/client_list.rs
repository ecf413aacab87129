//! CLIENT LIST / INFO fields and filters, CLIENT KILL filters and errors:
//! the same scenario on redis-server 7.0 and shardis (1 and 4 shards, so
//! the clients sit on several shards), replies compared.

mod common;

use common::{RespConn, Server, Value};

fn text(v: &Value) -> String {
    String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned()
}

/// A line's field names, in order (shardis adds `shard=` at the end).
fn field_names(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('=').map(|(k, _)| k.to_string()))
        .filter(|k| k != "shard")
        .collect()
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace().find_map(|f| f.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string()
}

fn lines(v: &Value) -> Vec<String> {
    text(v).lines().map(str::to_string).collect()
}

fn scenario(srv: &Server) -> Vec<String> {
    let mut seen = Vec::new();
    let mut admin = srv.conn();
    admin.cmd(&["CLIENT", "SETNAME", "admin"]);
    let info = text(&admin.cmd(&["CLIENT", "INFO"]));
    seen.push(format!("info fields: {:?}", field_names(&info)));
    seen.push(format!(
        "info: name={} flags={} cmd={}",
        field(&info, "name"),
        field(&info, "flags"),
        field(&info, "cmd")
    ));
    let mut subs: Vec<RespConn> = (0..3).map(|_| srv.conn()).collect();
    for (i, s) in subs.iter_mut().enumerate() {
        s.cmd(&["SUBSCRIBE", &format!("ch{i}")]);
    }
    let mut normal: Vec<RespConn> = (0..3).map(|_| srv.conn()).collect();
    let ids: Vec<String> = normal
        .iter_mut()
        .map(|c| match c.cmd(&["CLIENT", "ID"]) {
            Value::Int(n) => n.to_string(),
            other => panic!("CLIENT ID: {other:?}"),
        })
        .collect();
    let mut m = srv.conn();
    m.cmd(&["MULTI"]);
    let all = lines(&admin.cmd(&["CLIENT", "LIST"]));
    seen.push(format!("all: {}", all.len()));
    for l in &all {
        assert_eq!(field_names(l), field_names(&info), "{l}");
    }
    let mut flags: Vec<String> = all.iter().map(|l| field(l, "flags")).collect();
    flags.sort();
    seen.push(format!("flags: {flags:?}"));
    for t in ["normal", "pubsub", "replica", "slave", "master", "NORMAL"] {
        seen.push(format!("type {t}: {}", lines(&admin.cmd(&["CLIENT", "LIST", "TYPE", t])).len()));
    }
    let listed = lines(&admin.cmd(&["CLIENT", "LIST", "ID", &ids[0], &ids[2], "999999"]));
    let mut got: Vec<String> = listed.iter().map(|l| field(l, "id")).collect();
    got.sort();
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    seen.push(format!("by id: {}", got == want));
    for line in [
        "CLIENT LIST foo",
        "CLIENT LIST TYPE",
        "CLIENT LIST TYPE foo",
        "CLIENT LIST ID abc",
        "CLIENT LIST ID 1 TYPE normal",
        "CLIENT INFO x",
        "CLIENT KILL ID abc",
        "CLIENT KILL ID 0",
        "CLIENT KILL TYPE foo",
        "CLIENT KILL USER nouser",
        "CLIENT KILL SKIPME maybe",
        "CLIENT KILL ID",
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT KILL TYPE master",
        "CLIENT KILL ADDR 1.2.3.4:5 LADDR 1.1.1.1:1",
        "CLIENT KILL ID 999999 SKIPME",
    ] {
        let a: Vec<&str> = line.split(' ').collect();
        seen.push(format!("{line}: {:?}", admin.cmd(&a)));
    }
    // Kills, across shards: by type, id, address, the old form.
    seen.push(format!("kill pubsub: {:?}", admin.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])));
    seen.push(format!("kill id: {:?}", admin.cmd(&["CLIENT", "KILL", "ID", &ids[0]])));
    let addr1 = field(&text(&normal[1].cmd(&["CLIENT", "INFO"])), "addr");
    seen.push(format!("kill addr: {:?}", admin.cmd(&["CLIENT", "KILL", "ADDR", &addr1])));
    let addr2 = field(&text(&normal[2].cmd(&["CLIENT", "INFO"])), "addr");
    seen.push(format!("kill old: {:?}", admin.cmd(&["CLIENT", "KILL", &addr2])));
    seen.push(format!("kill old again: {:?}", admin.cmd(&["CLIENT", "KILL", &addr2])));
    for c in normal.iter_mut() {
        seen.push(format!("killed one answers: {}", c.try_cmd(&["PING"]).is_err()));
    }
    let laddr = field(&info, "laddr");
    seen.push(format!("kill laddr: {:?}", admin.cmd(&["CLIENT", "KILL", "LADDR", &laddr, "USER", "default"])));
    seen.push(format!("left: {}", lines(&admin.cmd(&["CLIENT", "LIST"])).len()));
    seen.push(format!("kill me: {:?}", admin.cmd(&["CLIENT", "KILL", "USER", "default", "SKIPME", "no"])));
    seen.push(format!("me gone: {}", admin.try_cmd(&["PING"]).is_err()));
    drop(m);
    seen
}

#[test]
fn client_list_and_kill_as_redis() {
    let redis = Server::start_redis();
    let want = scenario(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        let got = scenario(&s);
        let diffs: Vec<String> =
            want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis:   {w}\nshardis: {g}")).collect();
        assert!(diffs.is_empty() && want.len() == got.len(), "{shards} shard(s):\n{}", diffs.join("\n"));
    }
}

/// CLIENT NO-TOUCH (Redis 7.2): the client's reads, on whichever shard
/// their keys live, leave OBJECT IDLETIME as it was; TOUCH still counts.
#[test]
fn no_touch_leaves_idle_times() {
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        let mut c = s.conn();
        let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        for k in &keys {
            c.cmd(&["SET", k, "v"]);
        }
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let mut quiet = s.conn();
        assert_eq!(quiet.cmd(&["CLIENT", "NO-TOUCH", "ON"]), Value::ok());
        assert!(quiet.cmd(&["CLIENT", "NO-TOUCH", "maybe"]).is_error());
        // One by one (run where they live) and pipelined (forwarded in batches).
        for k in &keys {
            quiet.cmd(&["GET", k]);
        }
        let mut pipe = Vec::new();
        for k in &keys {
            pipe.extend(common::encode_command(&["GET", k]));
        }
        quiet.send_raw(&pipe).expect("send");
        for _ in &keys {
            quiet.read_value().expect("reply");
        }
        for k in &keys {
            match c.cmd(&["OBJECT", "IDLETIME", k]) {
                Value::Int(n) => assert!(n >= 2, "{shards} shard(s): {k} touched by a NO-TOUCH client ({n})"),
                other => panic!("OBJECT IDLETIME: {other:?}"),
            }
        }
        quiet.cmd(&["TOUCH", &keys[0]]);
        c.cmd(&["GET", &keys[1]]);
        for k in &keys[..2] {
            assert_eq!(c.cmd(&["OBJECT", "IDLETIME", k]), Value::Int(0), "{shards} shard(s): {k}");
        }
    }
}

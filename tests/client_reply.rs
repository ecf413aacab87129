//! CLIENT REPLY ON | OFF | SKIP, side by side with redis-server 7.0, on a
//! 4-shard server where the muted commands run locally, forwarded to
//! another shard, squashed in a pipeline, or as cross-shard transactions.

mod common;

use common::{RespConn, Server, Value};

/// Command lines run in order; each script ends with `ECHO end`, which is
/// answered whatever came before.
const SCRIPTS: &[&[&str]] = &[
    &["CLIENT REPLY OFF", "SET k1 1", "GET k1", "GET k2", "CLIENT REPLY ON", "GET k1"],
    &["CLIENT REPLY SKIP", "SET k2 2", "GET k2", "GET k3", "PING"],
    &["CLIENT REPLY OFF", "MSET k1 a k2 b k3 c k4 d", "MGET k1 k2 k3 k4", "CLIENT REPLY ON", "MGET k1 k2 k3 k4"],
    &["CLIENT REPLY SKIP", "MGET k1 k2 k3 k4", "MGET k4 k3 k2 k1", "DEL k1 k2", "EXISTS k1 k2 k3"],
    &["CLIENT REPLY SKIP", "CLIENT REPLY ON", "PING"],
    &["CLIENT REPLY SKIP", "CLIENT REPLY OFF", "PING", "CLIENT REPLY ON", "PING"],
    &["CLIENT REPLY OFF", "CLIENT REPLY SKIP", "PING", "CLIENT REPLY ON", "PING"],
    &["CLIENT REPLY OFF", "MULTI", "INCR n", "INCR k3", "EXEC", "CLIENT REPLY ON", "GET n"],
    &["CLIENT REPLY SKIP", "BLPOP nolist 0.01", "RPUSH l x", "CLIENT REPLY SKIP", "LPOP l", "LLEN l"],
    &["CLIENT REPLY SKIP", "FLUSHALL", "DBSIZE"],
    &["CLIENT REPLY maybe", "CLIENT REPLY", "CLIENT NO-EVICT on", "CLIENT NO-EVICT maybe"],
];

/// Run `script` on `c` (all in one write when `pipelined`, else one write
/// per command) and read every reply up to the final ECHO's.
fn run(c: &mut RespConn, script: &[&str], pipelined: bool) -> Vec<Value> {
    let mut wire = Vec::new();
    for line in script.iter().chain(&["ECHO end"]) {
        let args: Vec<&str> = line.split(' ').collect();
        let cmd = common::encode_command(&args);
        if pipelined {
            wire.extend_from_slice(&cmd);
        } else {
            c.send_raw(&cmd).expect("send");
        }
    }
    if pipelined {
        c.send_raw(&wire).expect("send");
    }
    let mut replies = Vec::new();
    for _ in 0..100 {
        let v = c.read_value().expect("a reply before the final ECHO");
        if v == Value::bulk("end") {
            return replies;
        }
        replies.push(v);
    }
    panic!("no end to the replies of {script:?}");
}

#[test]
fn client_reply_matches_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(4, &["--appendonly", "no"]);
    let mut diffs = Vec::new();
    for pipelined in [true, false] {
        let (mut r, mut s) = (redis.conn(), shardis.conn());
        for script in SCRIPTS {
            let (want, got) = (run(&mut r, script, pipelined), run(&mut s, script, pipelined));
            if want != got {
                diffs.push(format!("{script:?} (pipelined: {pipelined})\n  redis:   {want:?}\n  shardis: {got:?}"));
            }
        }
    }
    assert!(diffs.is_empty(), "{} scripts differ from redis-server:\n{}", diffs.len(), diffs.join("\n"));
}

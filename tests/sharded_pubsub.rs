//! Shard channels (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB
//! SHARDCHANNELS / SHARDNUMSUB) side by side with redis-server 7.0, on a
//! 4-shard server whose subscribers and publishers sit on different
//! shards, in RESP2 and RESP3.

mod common;

use common::{RespConn, Server, Value};

/// A step: which client (0: subscriber, 1: publisher, 2: pattern
/// subscriber) sends a command, and how many replies (or pushes) it then
/// reads.
const STEPS: &[(usize, &str, usize)] = &[
    (0, "SSUBSCRIBE ch1 ch2", 2),
    (2, "PSUBSCRIBE ch*", 1),
    (1, "SPUBLISH ch1 hello", 1),
    (0, "", 1),
    (1, "PUBLISH ch1 plain", 1),
    (2, "", 1),
    (1, "SPUBLISH nobody x", 1),
    (1, "PUBSUB SHARDCHANNELS", 1),
    (1, "PUBSUB SHARDCHANNELS ch1*", 1),
    (1, "PUBSUB SHARDNUMSUB ch1 ch2 nobody", 1),
    (1, "PUBSUB CHANNELS", 1),
    (0, "GET k", 1),
    (0, "SUBSCRIBE plain", 1),
    (0, "SUNSUBSCRIBE ch1", 1),
    (1, "SPUBLISH ch2 again", 1),
    (0, "", 1),
    (0, "SUNSUBSCRIBE", 1),
    (0, "SUNSUBSCRIBE", 1),
    (0, "UNSUBSCRIBE", 1),
    (1, "PUBSUB SHARDNUMSUB ch1 ch2", 1),
    (1, "SPUBLISH ch1 gone", 1),
    (1, "SPUBLISH onlyone", 1),
];

fn run(srv: &Server, resp3: bool) -> Vec<String> {
    let mut conns: Vec<RespConn> = (0..3).map(|_| srv.conn()).collect();
    if resp3 {
        for c in &mut conns {
            assert!(matches!(c.cmd(&["HELLO", "3"]), Value::Map(_)));
        }
    }
    let mut seen = Vec::new();
    for &(who, line, replies) in STEPS {
        let c = &mut conns[who];
        if !line.is_empty() {
            let args: Vec<&str> = line.split(' ').collect();
            c.send_raw(&common::encode_command(&args)).expect("send");
        }
        for _ in 0..replies {
            let mut v = c.read_value().expect("reply");
            // Channel lists come in the server's table order.
            if let (true, Value::Array(items)) = (line.contains("CHANNELS"), &mut v) {
                items.sort_by_key(|i| format!("{i:?}"));
            }
            seen.push(format!("{who} {line}: {v:?}"));
        }
    }
    seen
}

#[test]
fn shard_channels_match_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(4, &["--appendonly", "no"]);
    for resp3 in [false, true] {
        let (want, got) = (run(&redis, resp3), run(&shardis, resp3));
        let diffs: Vec<String> =
            want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis:   {w}\nshardis: {g}")).collect();
        assert!(diffs.is_empty() && want.len() == got.len(), "RESP3 {resp3}:\n{}", diffs.join("\n"));
    }
}

//! Every redis-server 7.0 option, side by side with redis-server: CONFIG
//! GET * and CONFIG GET with patterns list the same names with the same
//! values (documented exceptions below), CONFIG SET of each option with
//! valid and invalid values (generated from its kind in
//! `shardis::config::redis_options::OPTIONS`) answers as Redis does and
//! reads back the same, and CONFIG REWRITE keeps the options shardis takes
//! without acting on them across a restart. Run on 1 and 4 shards.

mod common;

use common::{RespConn, Server, Value};
use shardis::config::redis_options::{find, Here, Kind, Mutability, RedisOption, OPTIONS};
use std::collections::BTreeMap;

/// Names shardis lists that redis-server 7.0 does not: its own options,
/// and Redis 7.2's set-max-listpack-* (shardis has listpack sets).
const SHARDIS_ONLY: &[&str] = &[
    "shards",
    "pin-threads",
    "batch-wait-us",
    "aof-segment-size",
    "rewrite-method",
    "repl-sync-ack",
    "set-max-listpack-entries",
    "set-max-listpack-value",
];

/// Options whose value differs from redis-server's on purpose, and why.
const VALUE_EXCEPTIONS: &[(&str, &str)] = &[
    ("port", "each server has a port of its own"),
    ("dir", "each server has a data directory of its own"),
    ("repl-backlog-size", "the AOF is the backlog: shardis keeps 128mb of sealed segments for replicas"),
];

/// Options whose CONFIG SET answers differently from Redis's on purpose.
const SET_EXCEPTIONS: &[(&str, &str)] = &[
    ("port", "the shards listen on one port from start to end: shardis refuses it as immutable"),
    ("bind", "likewise"),
    ("appendonly", "turning the AOF on writes files: tests/aof.rs covers it"),
    ("activedefrag", "shardis has no active defragmentation: it refuses yes with that reason (a redis-server built without Redis's jemalloc refuses it too)"),
    ("tls-port", "shardis has no TLS: it refuses a port with that reason (Redis without certificates fails too)"),
    ("tls-cluster", "shardis has no TLS: only Redis's default is taken"),
    ("tls-replication", "shardis has no TLS: only Redis's default is taken"),
];

/// CONFIG GET's answer as name -> value.
fn get_map(c: &mut RespConn, pattern: &str) -> BTreeMap<String, String> {
    let v = c.cmd(&["CONFIG", "GET", pattern]);
    let items = v.as_items().unwrap_or_else(|| panic!("CONFIG GET {pattern}: {v}")).to_vec();
    let text = |v: &Value| String::from_utf8_lossy(v.as_bytes().expect("bulk")).into_owned();
    items.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect()
}

fn start_pair(shards: usize) -> (Server, Server) {
    (Server::start_redis(), Server::start(shards, &["--appendonly", "no"]))
}

#[test]
fn config_get_lists_redis_names_and_values() {
    for shards in [1, 4] {
        let (redis, shardis) = start_pair(shards);
        let (mut r, mut s) = (redis.conn(), shardis.conn());
        let (rall, sall) = (get_map(&mut r, "*"), get_map(&mut s, "*"));
        assert_eq!(rall.len(), 192, "redis-server 7.0 lists 192 names");
        let missing: Vec<&String> = rall.keys().filter(|k| !sall.contains_key(*k)).collect();
        assert!(missing.is_empty(), "shards {shards}: shardis lacks {missing:?}");
        let extra: Vec<&String> = sall.keys().filter(|k| !rall.contains_key(*k)).collect();
        let unexpected: Vec<&&String> = extra.iter().filter(|k| !SHARDIS_ONLY.contains(&k.as_str())).collect();
        assert!(unexpected.is_empty(), "shards {shards}: names Redis does not have: {unexpected:?}");
        let mut diffs = Vec::new();
        for (name, rv) in &rall {
            if VALUE_EXCEPTIONS.iter().any(|(n, _)| n == name) {
                continue;
            }
            if sall.get(name) != Some(rv) {
                diffs.push(format!("{name}: redis {rv:?}, shardis {:?}", sall.get(name)));
            }
        }
        assert!(diffs.is_empty(), "shards {shards}: values differ:\n{}", diffs.join("\n"));
        // Patterns select the same names (shardis's own ones aside).
        for pat in ["tls-*", "cluster-*", "*slave*", "repl-*", "*max*", "lazyfree-*", "?z", "*-ziplist-*", "[ab]*"] {
            let rk: Vec<String> = get_map(&mut r, pat).into_keys().collect();
            let sk: Vec<String> =
                get_map(&mut s, pat).into_keys().filter(|k| !SHARDIS_ONLY.contains(&k.as_str())).collect();
            assert_eq!(rk, sk, "shards {shards}: CONFIG GET {pat}");
        }
    }
}

/// Valid and invalid values for an option, from its kind.
fn values_for(o: &RedisOption) -> (Vec<String>, Vec<String>) {
    let d = o.default;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match (o.name, o.kind) {
        ("save", _) => (s(&["900 1 300 10", "1 0", ""]), s(&["900", "0 1", "abc 1", " 900 1"])),
        ("notify-keyspace-events", _) => (s(&["KEA", "Ex", ""]), s(&["Q", "KEAQ"])),
        ("client-output-buffer-limit", _) => (s(&["pubsub 32mb 8mb 60", d]), s(&["abc", "pubsub 1 2"])),
        ("maxmemory-clients", _) => (s(&["10%", "1kb", "0"]), s(&["101%", "abc", "-1"])),
        ("oom-score-adj-values", _) => (s(&["0 100 200", d]), s(&["0 100 2001", "a b c", "1 2"])),
        ("latency-tracking-info-percentiles", _) => (s(&["50 99.90", "", d]), s(&["abc", "101", "-1"])),
        ("proc-title-template", _) => (s(&["{title} {port}", d]), s(&["{nope}", "", "{title"])),
        ("cluster-announce-hostname", _) => (s(&["host-1.x", ""]), s(&["a b", "a_b"])),
        // A second password would need AUTH on a new connection; this one stays authenticated.
        ("requirepass", _) => (s(&["x-1", ""]), vec![]),
        (_, Kind::Bool) => (s(&[if d == "yes" { "NO" } else { "Yes" }, d]), s(&["maybe", "1", ""])),
        (_, Kind::Int(lo, hi)) => {
            let dv: i64 = d.parse().unwrap_or(lo);
            let other = if dv > lo && dv > 0 { dv - 1 } else { dv.saturating_add(1).min(hi) };
            let mut bad = s(&["abc", "05", "+5", "1k"]);
            if hi < i64::MAX {
                bad.push((hi as i128 + 1).to_string());
            }
            if lo > i64::MIN {
                bad.push((lo as i128 - 1).to_string());
            }
            (vec![other.to_string(), d.to_string()], bad)
        }
        (_, Kind::Mem(lo, _)) => {
            let dv: i64 = d.parse().unwrap_or(lo);
            (
                vec![format!("{}k", dv.max(lo) / 1000 + 1), format!("{}MB", dv.max(lo) / (1 << 20) + 1), d.into()],
                s(&["-1", "12abc", "+5"]),
            )
        }
        (_, Kind::Enum(names)) => {
            let mut good: Vec<String> = names.iter().rev().take(2).map(|n| n.to_ascii_uppercase()).collect();
            good.push(d.into());
            (good, s(&["bogus", ""]))
        }
        (_, Kind::Flags(_)) => {
            (s(&["NOSAVE now", "now nosave force", "default now", d]), s(&["save nosave", "", "later"]))
        }
        (_, Kind::Str) => (s(&["x-1", d]), vec![]),
        (_, Kind::Special) => (vec![], s(&["abc"])),
    }
}

/// CONFIG SET of every option with valid and invalid values: the same
/// reply and the same value read back as redis-server.
#[test]
fn config_set_of_every_option_answers_as_redis() {
    for shards in [1, 4] {
        let (redis, shardis) = start_pair(shards);
        let (mut r, mut s) = (redis.conn(), shardis.conn());
        let rall = get_map(&mut r, "*");
        let mut diffs = Vec::new();
        let mut oks = 0;
        let mut check = |what: String, rv: Value, sv: Value| {
            oks += usize::from(rv == Value::ok() && what.starts_with("CONFIG SET"));
            if rv != sv {
                diffs.push(format!("{what}\n  redis:   {rv}\n  shardis: {sv}"));
            }
        };
        for o in OPTIONS {
            if SET_EXCEPTIONS.iter().any(|(n, _)| *n == o.name) {
                continue;
            }
            let names: Vec<&str> = std::iter::once(o.name).chain(o.alias).collect();
            let (good, bad) = values_for(o);
            for name in &names {
                if o.mutability != Mutability::Mutable {
                    // Both refuse it with the same text, whatever the value.
                    let cur = rall.get(*name).cloned().unwrap_or_default();
                    let cmd = ["CONFIG", "SET", name, &cur];
                    check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
                    continue;
                }
                for v in good.iter().chain(bad.iter()) {
                    let cmd = ["CONFIG", "SET", name, v.as_str()];
                    check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
                    for n in &names {
                        let get = ["CONFIG", "GET", n];
                        check(format!("{} after SET {name} {v:?}", get.join(" ")), r.cmd(&get), s.cmd(&get));
                    }
                }
            }
            // Back to where it started (what the next options' checks assume).
            if o.mutability == Mutability::Mutable {
                let cur = rall.get(o.name).cloned().unwrap_or_default();
                let cmd = ["CONFIG", "SET", o.name, &cur];
                check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
            }
        }
        // Several pairs, new options among them: all or none.
        for case in [
            &["loglevel", "warning", "tcp-keepalive", "x"][..],
            &["loglevel", "warning", "activerehashing", "no", "maxmemory", "1mb"],
            &["loglevel", "notice", "loglevel", "debug"],
            &["tcp-keepalive", "60", "daemonize", "no"],
        ] {
            let cmd: Vec<&str> = ["CONFIG", "SET"].iter().chain(case.iter()).copied().collect();
            check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
            for name in ["loglevel", "tcp-keepalive", "activerehashing", "maxmemory"] {
                let get = ["CONFIG", "GET", name];
                check(format!("{} after {}", get.join(" "), cmd.join(" ")), r.cmd(&get), s.cmd(&get));
            }
        }
        assert!(diffs.is_empty(), "shards {shards}: {} replies differ:\n{}", diffs.len(), diffs.join("\n"));
        // The generated values are mostly ones Redis takes, not only refusals.
        assert!(oks > 300, "only {oks} CONFIG SETs were taken");
        // What shardis refuses on purpose, with its reason.
        let e = s.cmd(&["CONFIG", "SET", "tls-port", "6390"]);
        assert_eq!(
            e,
            Value::Error("ERR CONFIG SET failed (possibly related to argument 'tls-port') - shardis has no TLS".into())
        );
        assert_eq!(s.cmd(&["CONFIG", "SET", "tls-port", "0"]), Value::ok());
        assert!(matches!(r.cmd(&["CONFIG", "SET", "tls-port", "6390"]), Value::Error(_)));
    }
}

/// CONFIG REWRITE writes the options shardis keeps without acting on them;
/// a restart reads them back. The command line takes Redis's start-only
/// options too.
#[test]
fn config_rewrite_keeps_redis_options() {
    for shards in [1, 4] {
        let file = common::server::config_file("config-all", "appendonly = false\n");
        let path = file.to_str().expect("utf-8 path");
        let flags = ["--config", path, "--daemonize", "no", "--io-threads", "2", "--dbfilename", "x.rdb"];
        let mut srv = Server::start(shards, &flags);
        let mut c = srv.conn();
        let set: &[(&str, &str, &str)] = &[
            ("loglevel", "WARNING", "warning"),
            ("tcp-keepalive", "60", "60"),
            ("maxmemory-clients", "10%", "10%"),
            ("shutdown-on-sigint", "now nosave", "nosave now"),
            ("hll-sparse-max-bytes", "2kb", "2048"),
            ("slave-serve-stale-data", "no", "no"),
        ];
        for (name, v, _) in set {
            assert_eq!(c.cmd(&["CONFIG", "SET", name, v]), Value::ok(), "CONFIG SET {name} {v}");
        }
        assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), Value::ok());
        let text = std::fs::read_to_string(&file).expect("rewritten file");
        assert!(text.contains("[redis-compat]"), "{text}");
        drop(c);
        srv.restart().expect("restart");
        let mut c = srv.conn();
        for (name, _, shown) in set {
            assert_eq!(get_map(&mut c, name).get(*name).map(String::as_str), Some(*shown), "{name} after restart");
        }
        assert_eq!(get_map(&mut c, "io-threads")["io-threads"], "2");
        assert_eq!(get_map(&mut c, "dbfilename")["dbfilename"], "x.rdb");
        assert_eq!(get_map(&mut c, "replica-serve-stale-data")["replica-serve-stale-data"], "no");
        // Only Redis's default for what shardis does not do.
        let out = std::process::Command::new(common::server::shardis_bin())
            .args(["--port", "1", "--daemonize", "yes"])
            .output()
            .expect("run");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not daemonize"), "{out:?}");
        assert!(find("daemonize").is_some_and(|o| o.here == Here::Unsupported));
    }
}

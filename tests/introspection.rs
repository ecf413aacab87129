//! MEMORY STATS / DOCTOR / MALLOC-STATS / PURGE, the LATENCY monitor and
//! lazy freeing, side by side with redis-server 7.0 on 1 and 4 shards
//! where Redis's replies are deterministic (field names, shapes, errors,
//! texts), and their figures checked against what the tests did.

mod common;

use common::{RespConn, Server, Value};

/// A reply's shape: types and map keys, numbers left out.
fn shape(v: &Value) -> String {
    match v {
        Value::Int(_) => "int".into(),
        Value::Double(_) => "double".into(),
        Value::Bulk(b) if std::str::from_utf8(b).is_ok_and(|s| s.parse::<f64>().is_ok()) => "num".into(),
        Value::Bulk(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::Array(items) => format!("[{}]", items.iter().map(shape).collect::<Vec<_>>().join(" ")),
        Value::Map(kv) => {
            format!(
                "{{{}}}",
                kv.iter().map(|(k, v)| format!("{}: {}", shape(k), shape(v))).collect::<Vec<_>>().join(" ")
            )
        }
        other => format!("{other:?}"),
    }
}

fn servers() -> Vec<(String, Server)> {
    let mut v = vec![("redis".to_string(), Server::start_redis_with(&["--enable-debug-command", "yes"]))];
    for shards in [1, 4] {
        v.push((format!("shardis {shards}"), Server::start(shards, &["--enable-debug-command", "yes"])));
    }
    v
}

fn int_field(v: &Value, name: &str) -> i64 {
    let items = v.as_items().expect("MEMORY STATS: an array");
    let i = items.iter().position(|x| x.as_bytes() == Some(name.as_bytes())).unwrap_or_else(|| panic!("no {name}"));
    items[i + 1].as_int().unwrap_or_else(|| panic!("{name}: {:?}", items[i + 1]))
}

#[test]
fn memory_subcommands_as_redis() {
    let lines = [
        "MEMORY DOCTOR",
        "MEMORY PURGE",
        "MEMORY STATS x",
        "MEMORY DOCTOR x",
        "MEMORY PURGE x",
        "MEMORY MALLOC-STATS x",
        "MEMORY NOPE",
    ];
    let mut want: Option<Vec<String>> = None;
    for (name, srv) in servers() {
        let mut c = srv.conn();
        let mut got: Vec<String> = lines.iter().map(|l| format!("{l} -> {:?}", c.cmd_str(l))).collect();
        // An empty instance: fields in Redis's order (no db.N), numbers
        // aside; RESP3 makes the doubles and maps visible.
        got.push(shape(&c.cmd_str("MEMORY STATS")));
        c.cmd(&["HELLO", "3"]);
        got.push(shape(&c.cmd_str("MEMORY STATS")));
        // db.0 and db.3 with keys: a nested map each, in db order.
        c.cmd_str("FLUSHALL");
        for i in 0..20 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        c.cmd_str("SELECT 3");
        c.cmd_str("SADD s a b c");
        got.push(shape(&c.cmd_str("MEMORY STATS")));
        let mut c2 = srv.conn();
        let stats = c2.cmd_str("MEMORY STATS");
        assert_eq!(int_field(&stats, "keys.count"), 21, "{name}");
        if name.starts_with("shardis") {
            assert_eq!(c2.cmd_str("MEMORY MALLOC-STATS"), Value::bulk("Stats not supported for the current allocator"));
            let total = int_field(&stats, "total.allocated");
            assert!(total > 21 * 40 && total >= int_field(&stats, "dataset.bytes"), "{name}: {stats:?}");
            assert!(int_field(&stats, "peak.allocated") >= total, "{name}");
        }
        match &want {
            None => want = Some(got),
            Some(w) => {
                let diffs: Vec<String> =
                    w.iter().zip(&got).filter(|(a, b)| a != b).map(|(a, b)| format!("redis {a}\n{name} {b}")).collect();
                assert!(diffs.is_empty(), "{}", diffs.join("\n"));
            }
        }
    }
}

/// Over 5 MB in use, with nothing amiss, DOCTOR finds no issue (as Redis).
#[test]
fn memory_doctor_of_a_filled_instance() {
    for shards in [1, 4] {
        let srv = Server::start(shards, &["--appendonly", "no"]);
        let mut c: RespConn = srv.conn();
        let big = "x".repeat(100_000);
        for i in 0..80 {
            c.cmd(&["SET", &format!("big{i}"), &big]);
        }
        let text = c.cmd_str("MEMORY DOCTOR");
        let text = String::from_utf8_lossy(text.as_bytes().expect("bulk")).to_string();
        assert!(
            text.starts_with("Hi Sam, I can't find any memory issue") || text.starts_with("Sam, I detected"),
            "{text}"
        );
    }
}

/// A reply with every run of digits as `N` (times and ms differ).
fn digits_out(v: &Value) -> String {
    let s = format!("{v:?}");
    let mut out = String::new();
    let mut in_num = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            if !in_num {
                out.push('N');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(ch);
        }
    }
    out
}

/// The latency monitor's replies around one DEBUG SLEEP, RESP2 and RESP3.
fn latency_session(srv: &Server, resp3: bool) -> Vec<String> {
    let mut c = srv.conn();
    if resp3 {
        c.cmd(&["HELLO", "3"]);
    }
    let mut out = Vec::new();
    let mut run = |c: &mut RespConn, line: &str| {
        let v = c.cmd_str(line);
        out.push(format!("{line} -> {}", digits_out(&v)));
        v
    };
    run(&mut c, "CONFIG GET latency-monitor-threshold");
    run(&mut c, "LATENCY DOCTOR");
    run(&mut c, "CONFIG SET latency-monitor-threshold 20");
    for l in ["LATENCY DOCTOR", "LATENCY LATEST", "LATENCY HISTORY command", "LATENCY GRAPH command", "LATENCY RESET"] {
        run(&mut c, l);
    }
    run(&mut c, "DEBUG SLEEP 0.03");
    let latest = run(&mut c, "LATENCY LATEST");
    let row = latest.as_items().and_then(|r| r.first()).and_then(|r| r.as_items()).expect("one event").to_vec();
    assert!(row[2].as_int().is_some_and(|ms| (30..2000).contains(&ms)), "{latest:?}");
    for l in [
        "LATENCY HISTORY command",
        "LATENCY HISTORY nope",
        "LATENCY GRAPH command",
        "LATENCY GRAPH nope",
        "LATENCY DOCTOR",
        "LATENCY HISTORY",
        "LATENCY LATEST x",
        "LATENCY GRAPH",
        "LATENCY NOPE",
        "LATENCY RESET nope",
        "LATENCY RESET command command nope",
        "LATENCY LATEST",
        "CONFIG SET latency-monitor-threshold -1",
        "CONFIG SET latency-monitor-threshold 0",
    ] {
        run(&mut c, l);
    }
    out
}

#[test]
fn latency_monitor_as_redis() {
    let redis = Server::start_redis_with(&["--enable-debug-command", "yes"]);
    for resp3 in [false, true] {
        let want = latency_session(&redis, resp3);
        for shards in [1, 4] {
            let s = Server::start(shards, &["--appendonly", "no", "--enable-debug-command", "yes"]);
            let got = latency_session(&s, resp3);
            let diffs: Vec<String> =
                want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis {w}\nshardis {g}")).collect();
            assert!(diffs.is_empty(), "{shards} shard(s), resp3 {resp3}:\n{}", diffs.join("\n"));
        }
    }
}

/// The threshold from the config file; events of every shard merged.
#[test]
fn latency_events_from_every_shard() {
    let cfg = common::server::config_file("latmon", "latency-monitor-threshold = 10\n");
    let s = Server::start(4, &["--config", cfg.to_str().expect("path"), "--enable-debug-command", "yes"]);
    // Connections land on different shards; each sleeps on its own.
    let mut conns: Vec<RespConn> = (0..4).map(|_| s.conn()).collect();
    for c in &mut conns {
        assert_eq!(
            c.cmd_str("CONFIG GET latency-monitor-threshold"),
            common::Value::Array(vec![Value::bulk("latency-monitor-threshold"), Value::bulk("10")])
        );
        c.cmd_str("DEBUG SLEEP 0.02");
    }
    let latest = conns[0].cmd_str("LATENCY LATEST");
    let rows = latest.as_items().expect("array");
    assert_eq!(rows.len(), 1, "{latest:?}");
    assert!(conns[1].cmd_str("LATENCY HISTORY command").as_items().is_some_and(|h| !h.is_empty()));
    assert_eq!(conns[2].cmd_str("LATENCY RESET"), Value::Int(1));
    assert_eq!(conns[3].cmd_str("LATENCY LATEST"), Value::Array(vec![]));
}

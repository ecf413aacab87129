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

/// A reply with every run of digits as `N`, inside long strings too (times
/// and ms differ: the DOCTOR's text quotes them).
fn digits_out(v: &Value) -> String {
    let mask = |s: &str| -> String {
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
    };
    match v {
        Value::Bulk(b) | Value::Verbatim(_, b) => format!("{:?}", mask(&String::from_utf8_lossy(b))),
        Value::Simple(t) | Value::Error(t) | Value::Double(t) => mask(t),
        Value::Int(_) => "N".into(),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let kind = match v {
                Value::Set(_) => "~",
                Value::Push(_) => ">",
                _ => "",
            };
            format!("{kind}[{}]", items.iter().map(digits_out).collect::<Vec<_>>().join(", "))
        }
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs.iter().map(|(k, v)| format!("{}: {}", digits_out(k), digits_out(v))).collect::<Vec<_>>().join(", ")
        ),
        other => mask(&format!("{other:?}")),
    }
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
    // High enough that no other command of a loaded machine (CI runs tests
    // side by side) passes it: only the DEBUG SLEEP must be an event.
    run(&mut c, "CONFIG SET latency-monitor-threshold 200");
    for l in ["LATENCY DOCTOR", "LATENCY LATEST", "LATENCY HISTORY command", "LATENCY GRAPH command", "LATENCY RESET"] {
        run(&mut c, l);
    }
    run(&mut c, "DEBUG SLEEP 0.25");
    let latest = run(&mut c, "LATENCY LATEST");
    let row = latest.as_items().and_then(|r| r.first()).and_then(|r| r.as_items()).expect("one event").to_vec();
    assert!(row[2].as_int().is_some_and(|ms| (250..5000).contains(&ms)), "{latest:?}");
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

/// An AOF rewrite whose install of its new bases (Redis 7.0's
/// `aof-rename`, the only event Redis records for a rewrite besides its
/// fork) passes the threshold is an event, with Redis's DOCTOR advice for
/// it; one under the threshold is not. A failpoint slows the install.
#[test]
fn latency_aof_rename_event() {
    for shards in [1, 4] {
        let s = Server::start_env(shards, &["--appendonly", "yes"], &[("SHARDIS_FAILPOINT", "slow-aof-rename")]);
        let mut c = s.conn();
        c.cmd_str("SET k v");
        assert_eq!(c.cmd_str("CONFIG SET latency-monitor-threshold 10"), Value::ok());
        c.cmd_str("BGREWRITEAOF");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let row = loop {
            let latest = c.cmd_str("LATENCY LATEST");
            let rows = latest.as_items().unwrap_or_default().to_vec();
            if let Some(r) = rows.iter().filter_map(|r| r.as_items()).find(|r| r[0] == Value::bulk("aof-rename")) {
                break r.to_vec();
            }
            assert!(std::time::Instant::now() < deadline, "{shards} shard(s): no aof-rename event: {latest:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(row[2].as_int().is_some_and(|ms| (30..5000).contains(&ms)), "{row:?}");
        let doctor = c.cmd_str("LATENCY DOCTOR");
        let text = String::from_utf8_lossy(doctor.as_bytes().expect("text")).to_string();
        assert!(text.contains("aof-rename: 1 latency spikes"), "{text}");
        assert!(text.contains("- Latency during the AOF atomic rename operation"), "{text}");
        // Over a threshold it does not reach: no new sample.
        assert_eq!(c.cmd_str("LATENCY RESET"), Value::Int(1));
        assert_eq!(c.cmd_str("CONFIG SET latency-monitor-threshold 5000"), Value::ok());
        c.cmd_str("BGREWRITEAOF");
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(c.cmd_str("LATENCY LATEST"), Value::Array(vec![]), "{shards} shard(s)");
    }
}

fn lazy_counters(c: &mut RespConn) -> (u64, u64) {
    let v = c.cmd_str("INFO memory");
    let text = String::from_utf8_lossy(v.as_bytes().expect("INFO text")).to_string();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (field("lazyfree_pending_objects"), field("lazyfreed_objects"))
}

/// Wait until the lazyfree thread freed `n` objects in all.
fn freed_reaches(c: &mut RespConn, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (pending, freed) = lazy_counters(c);
        if freed >= n && pending == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "lazyfreed_objects {freed} (pending {pending}), want {n}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn big_set(c: &mut RespConn, key: &str, members: usize) {
    for chunk in 0..members / 10_000 {
        let mut args = vec!["SADD".to_string(), key.to_string()];
        args.extend((0..10_000).map(|i| format!("m{}", chunk * 10_000 + i)));
        c.send_raw(&common::encode_command(&args)).expect("send");
    }
    for _ in 0..members / 10_000 {
        c.read_value().expect("SADD reply");
    }
}

/// UNLINK of a 1M-member set answers at once and the thread frees it;
/// small values are freed in place; FLUSHALL ASYNC and the lazyfree-lazy-*
/// options move the counters as Redis's do.
#[test]
fn lazy_freeing_off_the_loop() {
    for shards in [1, 4] {
        let s = Server::start(shards, &["--appendonly", "no"]);
        let mut c = s.conn();
        assert_eq!(lazy_counters(&mut c), (0, 0));
        big_set(&mut c, "big", 1_000_000);
        let t = std::time::Instant::now();
        assert_eq!(c.cmd_str("UNLINK big"), Value::Int(1));
        let unlink = t.elapsed();
        freed_reaches(&mut c, 1);
        big_set(&mut c, "big", 1_000_000);
        let t = std::time::Instant::now();
        assert_eq!(c.cmd_str("DEL big"), Value::Int(1));
        let del = t.elapsed();
        eprintln!("{shards} shard(s): UNLINK of 1M members {unlink:?}, DEL {del:?}");
        // Small values are freed in place (uncounted), as Redis's UNLINK.
        c.cmd_str("SADD small a b c");
        c.cmd_str("UNLINK small");
        assert_eq!(lazy_counters(&mut c), (0, 1));
        // DEL as UNLINK.
        c.cmd_str("CONFIG SET lazyfree-lazy-user-del yes");
        big_set(&mut c, "big", 10_000);
        c.cmd_str("DEL big");
        freed_reaches(&mut c, 2);
        // FLUSHALL ASYNC counts every key; SYNC none.
        for i in 0..50 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        c.cmd_str("FLUSHALL SYNC");
        assert_eq!(lazy_counters(&mut c), (0, 2));
        for i in 0..50 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        assert_eq!(c.cmd_str("FLUSHALL ASYNC"), Value::ok());
        assert_eq!(c.cmd_str("DBSIZE"), Value::Int(0));
        freed_reaches(&mut c, 52);
        c.cmd_str("CONFIG SET lazyfree-lazy-user-flush yes");
        for i in 0..10 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        c.cmd_str("FLUSHDB");
        freed_reaches(&mut c, 62);
    }
}

#[test]
fn lazyfree_options_and_fields_as_redis() {
    let mut want: Option<Vec<String>> = None;
    for (name, srv) in servers() {
        let mut c = srv.conn();
        let mut got = Vec::new();
        for l in [
            "CONFIG GET lazyfree-lazy-eviction",
            "CONFIG GET lazyfree-lazy-expire",
            "CONFIG GET lazyfree-lazy-server-del",
            "CONFIG GET lazyfree-lazy-user-del",
            "CONFIG GET lazyfree-lazy-user-flush",
            "CONFIG GET replica-lazy-flush",
            "CONFIG GET slave-lazy-flush",
            "CONFIG SET lazyfree-lazy-user-del maybe",
            "CONFIG SET lazyfree-lazy-expire yes",
            "CONFIG GET lazyfree-lazy-expire",
            "FLUSHALL LAZY",
            "FLUSHDB ASYNC",
        ] {
            got.push(format!("{l} -> {:?}", c.cmd_str(l)));
        }
        got.push(format!("{:?}", lazy_counters(&mut c)));
        match &want {
            None => want = Some(got),
            Some(w) => assert_eq!(w, &got, "{name}"),
        }
    }
}

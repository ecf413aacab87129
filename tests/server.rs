//! Server-level behaviour against the real binary: configuration (file,
//! flags, CONFIG GET/SET/REWRITE), INFO sections, CLIENT commands, active
//! expiry, SCAN across shards, SELECT/SWAPDB, DEBUG SLEEP and SHUTDOWN.

mod common;

use common::{Server, Value};
use std::time::{Duration, Instant};

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
        Value::Simple(s) => s.clone(),
        other => panic!("expected text, got {other}"),
    }
}

fn config_get(c: &mut common::RespConn, name: &str) -> String {
    match c.cmd(&["CONFIG", "GET", name]) {
        Value::Array(items) if items.len() == 2 => text(&items[1]),
        other => panic!("CONFIG GET {name}: {other}"),
    }
}

#[test]
fn config_file_flags_and_runtime_changes() {
    let file = common::server::config_file("cfg", "hz = 20\nmaxclients = 123\ntimeout = 0\n");
    let path = file.to_string_lossy().to_string();
    let s = Server::start(2, &["--config", &path, "--maxclients", "77"]);
    let mut c = s.conn();
    assert_eq!(config_get(&mut c, "hz"), "20", "from the file");
    assert_eq!(config_get(&mut c, "maxclients"), "77", "flags override the file");
    // redis-benchmark asks for these at start.
    assert_eq!(config_get(&mut c, "save"), "");
    assert_eq!(config_get(&mut c, "appendonly"), "yes", "the AOF is on by default");
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendfsync", "always"]), Value::ok());
    assert_eq!(config_get(&mut c, "appendfsync"), "always");
    assert_eq!(c.cmd(&["SET", "durable", "1"]), Value::ok(), "answered after its fdatasync");

    assert_eq!(c.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "2mb"]), Value::ok());
    assert_eq!(config_get(&mut c, "proto-max-bulk-len"), (2 * 1024 * 1024).to_string());
    // The new limit applies on every shard: a 3 MB bulk is refused.
    let mut big = s.conn();
    let mut wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3145728\r\n".to_vec();
    wire.extend(std::iter::repeat(b'x').take(16));
    big.send_raw(&wire).expect("send");
    assert_eq!(big.read_value().expect("reply"), Value::err("ERR Protocol error: invalid bulk length"));
    assert!(c.cmd(&["CONFIG", "SET", "port", "1"]).is_error(), "port is immutable");
    assert!(c.cmd(&["CONFIG", "SET", "nosuch", "1"]).is_error());

    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), Value::ok());
    let written = std::fs::read_to_string(&file).expect("read back");
    assert!(written.contains("proto-max-bulk-len = 2097152"), "{written}");
    assert!(written.contains("maxclients = 77"), "{written}");
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), Value::ok());
}

/// `THP_enabled` from /proc/PID/status: whether the kernel may give the
/// process transparent huge pages.
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/{pid}/status"))
}

#[test]
fn disable_thp_turns_transparent_huge_pages_off_for_the_process() {
    let on = Server::start(1, &[]);
    let mut c = on.conn();
    assert_eq!(config_get(&mut c, "disable-thp"), "yes", "Redis's default");
    assert_eq!(thp_enabled(on.pid()), "0");
    assert!(c.cmd(&["CONFIG", "SET", "disable-thp", "no"]).is_error(), "immutable, as in Redis");

    let off = Server::start(1, &["--disable-thp", "no"]);
    let mut c = off.conn();
    assert_eq!(config_get(&mut c, "disable-thp"), "no");
    assert_eq!(thp_enabled(off.pid()), "1", "left as the system sets it");
}

#[test]
fn info_sections_and_stats() {
    let s = Server::start(4, &[]);
    let mut c = s.conn();
    for i in 0..40 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    c.cmd(&["SET", "e", "v", "EX", "1000"]);
    c.cmd(&["GET", "k1"]);
    c.cmd(&["GET", "missing"]);
    let info = text(&c.cmd(&["INFO", "everything"]));
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Keyspace",
        "# Commandstats",
        "# Latencystats",
    ] {
        assert!(info.contains(section), "INFO lacks {section}:\n{info}");
    }
    assert!(info.contains("db0:keys=41,expires=1"), "{info}");
    assert!(info.contains("cmdstat_set:calls=41"), "{info}");
    assert!(info.contains("keyspace_hits:1\r\n") && info.contains("keyspace_misses:1\r\n"), "{info}");
    assert!(info.contains("latency_percentiles_usec_get:p50="), "{info}");
    assert!(info.contains("shards:4"), "{info}");
    let keyspace = text(&c.cmd(&["INFO", "keyspace"]));
    assert!(!keyspace.contains("# Server"), "only the asked section: {keyspace}");
}

#[test]
fn client_commands() {
    let s = Server::start(4, &[]);
    let mut a = s.conn();
    let mut b = s.conn();
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "alpha"]), Value::ok());
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), Value::bulk("alpha"));
    assert!(a.cmd(&["CLIENT", "SETNAME", "has space"]).is_error());
    let id_b = b.cmd(&["CLIENT", "ID"]).as_int().expect("id");
    // The harness's readiness probe may still be closing on its shard: wait
    // (bounded) until only our two clients are listed.
    let mut list = String::new();
    for _ in 0..100 {
        list = text(&a.cmd(&["CLIENT", "LIST"]));
        if list.lines().count() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("name=alpha"), "{list}");
    assert!(list.contains(&format!("id={id_b} ")), "{list}");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &id_b.to_string()]), Value::Int(1));
    assert!(b.try_cmd(&["PING"]).is_err() || b.try_cmd(&["PING"]).is_err(), "killed client is disconnected");
    let info = text(&a.cmd(&["CLIENT", "INFO"]));
    assert!(info.contains("name=alpha"), "{info}");
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let s = Server::start(4, &["--hz", "50"]);
    let mut c = s.conn();
    for i in 0..400 {
        c.cmd(&["SET", &format!("t{i}"), "v", "PX", "50"]);
    }
    for i in 0..100 {
        c.cmd(&["SET", &format!("p{i}"), "v"]);
    }
    // DBSIZE counts stored keys without touching them, so it only drops
    // when the background cycle deletes expired keys.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = c.cmd(&["DBSIZE"]).as_int().expect("dbsize");
        if n == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "expired keys still counted: {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = text(&c.cmd(&["INFO", "stats"]));
    assert!(info.contains("expired_keys:400"), "{info}");
}

#[test]
fn scan_cursor_covers_every_shard() {
    let s = Server::start(4, &[]);
    let mut c = s.conn();
    for i in 0..500 {
        c.cmd(&["SET", &format!("s{i}"), "v"]);
    }
    c.cmd(&["SET", "other", "v"]);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..10_000 {
        let r = c.cmd(&["SCAN", &cursor, "MATCH", "s*", "COUNT", "37"]);
        let Value::Array(parts) = r else { panic!("SCAN reply {r}") };
        cursor = text(&parts[0]);
        let Value::Array(keys) = &parts[1] else { panic!("keys {}", parts[1]) };
        for k in keys {
            seen.insert(text(k));
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "scan did not finish");
    assert_eq!(seen.len(), 500);
    assert!(!seen.contains("other"));
}

#[test]
fn select_and_swapdb_across_shards() {
    let s = Server::start(4, &[]);
    let mut c = s.conn();
    for i in 0..20 {
        c.cmd(&["SET", &format!("a{i}"), "zero"]);
    }
    assert_eq!(c.cmd(&["SELECT", "1"]), Value::ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(0));
    assert_eq!(c.cmd(&["SWAPDB", "0", "1"]), Value::ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(20));
    assert_eq!(c.cmd(&["GET", "a7"]), Value::bulk("zero"));
    assert_eq!(c.cmd(&["SELECT", "16"]), Value::err("ERR DB index is out of range"));
    // Redis reads DB indexes as C ints, and SWAPDB parses both before
    // range-checking either.
    let int_range = "ERR value is out of range, value must between -2147483648 and 2147483647";
    assert_eq!(c.cmd(&["SELECT", "4294967296"]), Value::err(int_range));
    assert_eq!(c.cmd(&["SELECT", "x"]), Value::err("ERR value is not an integer or out of range"));
    assert_eq!(c.cmd(&["SWAPDB", "16", "x"]), Value::err("ERR invalid second DB index"));
    assert_eq!(c.cmd(&["SWAPDB", "0", "4294967296"]), Value::err("ERR invalid second DB index"));
    assert_eq!(c.cmd(&["SWAPDB", "2147483648", "0"]), Value::err("ERR invalid first DB index"));
    assert_eq!(c.cmd(&["SWAPDB", "2147483647", "0"]), Value::err("ERR DB index is out of range"));
    assert_eq!(c.cmd(&["FLUSHALL"]), Value::ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(0));
}

#[test]
fn hello_auth_and_setname() {
    let s = Server::start(2, &["--requirepass", "pw"]);
    let mut c = s.raw_conn();
    assert!(matches!(c.cmd(&["GET", "x"]), Value::Error(e) if e.starts_with("NOAUTH")));
    let r = c.cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "me"]);
    let Value::Map(pairs) = r else { panic!("HELLO 3 reply {r}") };
    assert!(pairs.contains(&(Value::bulk("proto"), Value::Int(3))));
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Value::bulk("me"));
    assert_eq!(c.cmd(&["GET", "x"]), Value::Null, "RESP3 null");
    let mut d = s.raw_conn();
    assert!(matches!(d.cmd(&["AUTH", "bad"]), Value::Error(e) if e.starts_with("WRONGPASS")));
}

#[test]
fn debug_sleep_and_shutdown() {
    let mut s = Server::start(2, &[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.05"]), Value::ok());
    let _ = c.try_cmd(&["SHUTDOWN"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.alive() {
        assert!(Instant::now() < deadline, "server still running after SHUTDOWN");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dump_and_restore_every_type_across_shards() {
    let s = Server::start(4, &[]);
    let mut c = s.conn();
    c.cmd(&["RPUSH", "l", "a", "b"]);
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["SADD", "st", "x", "y"]);
    c.cmd(&["ZADD", "z", "2", "m"]);
    c.cmd(&["SET", "s", "str"]);
    for key in ["l", "h", "st", "z", "s"] {
        let payload = match c.cmd(&["DUMP", key]) {
            Value::Bulk(b) => b,
            other => panic!("DUMP {key}: {other}"),
        };
        // Restore under names that hash to other shards, with a TTL.
        for copy in [format!("{key}:copy1"), format!("{key}:copy2"), format!("{key}:copy3")] {
            let restore = [b"RESTORE".to_vec(), copy.as_bytes().to_vec(), b"100000".to_vec(), payload.clone()];
            assert_eq!(c.cmd(&restore), Value::ok());
            assert_eq!(c.cmd(&["TYPE", &copy]), c.cmd(&["TYPE", key]));
            assert_eq!(c.cmd(&["DUMP", &copy]), Value::Bulk(payload.clone()), "same contents");
            let ttl = c.cmd(&["PTTL", &copy]).as_int().unwrap();
            assert!(ttl > 0 && ttl <= 100000, "{ttl}");
        }
    }
    assert_eq!(c.cmd(&["RESTORE", "x", "0", "garbage"]), Value::err("ERR DUMP payload version or checksum are wrong"));
}

#[test]
fn command_list_and_its_filters() {
    let srv = Server::start(2, &[]);
    let mut c = srv.conn();
    let names = |v: Value| -> Vec<String> {
        v.as_items()
            .expect("array")
            .iter()
            .map(|n| String::from_utf8_lossy(n.as_bytes().expect("bulk")).into())
            .collect()
    };
    let all = names(c.cmd(&["COMMAND", "LIST"]));
    // LIST names subcommands too (as Redis 7 does); COUNT counts commands.
    let commands = all.iter().filter(|n| !n.contains('|')).count();
    assert_eq!(Some(commands as i64), c.cmd(&["COMMAND", "COUNT"]).as_int());
    for n in ["get", "move", "memory", "xadd", "command", "config|get", "object|encoding"] {
        assert!(all.iter().any(|a| a == n), "{n} missing from COMMAND LIST");
    }
    let zr = names(c.cmd(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "ZR*"]));
    assert!(zr.iter().all(|n| n.starts_with("zr")) && zr.iter().any(|n| n == "zrange"), "{zr:?}");
    let write = names(c.cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "write"]));
    assert!(write.iter().any(|n| n == "set") && !write.iter().any(|n| n == "get"), "{write:?}");
    assert_eq!(names(c.cmd(&["COMMAND", "LIST", "FILTERBY", "MODULE", "m"])), Vec::<String>::new());
    assert_eq!(c.cmd(&["COMMAND", "LIST", "FILTERBY", "X", "y"]), Value::Error("ERR syntax error".into()));
    // An unknown MEMORY subcommand is refused when queued, as in Redis 7.
    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
    assert!(c.cmd(&["MEMORY", "NOPE"]).is_error());
    assert!(c.cmd(&["EXEC"]).is_error());
}

#[test]
fn slowlog_keeps_slow_commands_of_every_shard() {
    let srv = Server::start(2, &["--slowlog-log-slower-than", "15000"]);
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "sleeper"]), Value::ok());
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.02"]), Value::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), Value::Int(1));
    let got = c.cmd(&["SLOWLOG", "GET"]);
    let e = &got.as_items().expect("array")[0];
    let f = e.as_items().expect("entry");
    assert_eq!(f.len(), 6);
    assert!(f[2].as_int().expect("micros") >= 20_000, "{e}");
    let args: Vec<Value> = vec![Value::bulk("DEBUG"), Value::bulk("SLEEP"), Value::bulk("0.02")];
    assert_eq!(f[3].as_items().expect("args"), &args[..]);
    assert!(String::from_utf8_lossy(f[4].as_bytes().expect("addr")).starts_with("127.0.0.1:"));
    assert_eq!(f[5], Value::bulk("sleeper"));
    // Everything is slow at 0: keys on both shards are logged, newest first,
    // long arguments cut as Redis cuts them.
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Value::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Value::ok());
    let long = "x".repeat(300);
    for i in 0..6 {
        assert_eq!(c.cmd(&["SET", &format!("key{i}"), &long]), Value::ok());
    }
    let got = c.cmd(&["SLOWLOG", "GET", "-1"]);
    let entries = got.as_items().expect("array");
    assert_eq!(entries.len(), 6);
    let ids: Vec<i64> = entries.iter().map(|e| e.as_items().expect("entry")[0].as_int().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let newest = entries[0].as_items().expect("entry")[3].as_items().expect("args").to_vec();
    let cut = format!("{}... (172 more bytes)", "x".repeat(128));
    assert_eq!(newest, vec![Value::bulk("SET"), Value::bulk("key5"), Value::bulk(cut)]);
    assert_eq!(c.cmd(&["SLOWLOG", "GET", "2"]).as_items().map(|v| v.len()), Some(2));
    // The server keeps max-len entries in all, whatever the shard count.
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-max-len", "3"]), Value::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), Value::Int(3));
    assert_eq!(c.cmd(&["SLOWLOG", "GET", "-1"]).as_items().map(|v| v.len()), Some(3));
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]), Value::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), Value::Int(0));
    assert_eq!(c.cmd(&["SLOWLOG", "GET", "x"]), Value::Error("ERR count should be greater than or equal to -1".into()));
}

#[test]
fn latency_histogram_merges_every_shard() {
    let srv = Server::start(2, &[]);
    let mut c = srv.conn();
    for i in 0..50 {
        assert_eq!(c.cmd(&["SET", &format!("key{i}"), "v"]), Value::ok());
    }
    assert_eq!(c.cmd(&["GET", "key1"]), Value::bulk("v"));
    let h = c.cmd(&["LATENCY", "HISTOGRAM", "set", "nosuch"]);
    let top = h.as_items().expect("RESP2 map as array");
    assert_eq!(top.len(), 2, "{h}");
    assert_eq!(top[0], Value::bulk("set"));
    let body = top[1].as_items().expect("map");
    assert_eq!(
        (&body[0], &body[1], &body[2]),
        (&Value::bulk("calls"), &Value::Int(50), &Value::bulk("histogram_usec"))
    );
    let buckets: Vec<i64> = body[3].as_items().expect("buckets").iter().map(|v| v.as_int().expect("int")).collect();
    let (bounds, counts): (Vec<i64>, Vec<i64>) = buckets.chunks(2).map(|p| (p[0], p[1])).unzip();
    assert!(bounds.windows(2).all(|w| w[0] < w[1]) && counts.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
    assert_eq!(counts.last(), Some(&50), "cumulative: the last bucket holds every call");
    // Every command that ran, when none is named.
    let all = c.cmd(&["LATENCY", "HISTOGRAM"]);
    let names: Vec<&Value> = all.as_items().expect("map").iter().step_by(2).collect();
    assert!(names.contains(&&Value::bulk("set")) && names.contains(&&Value::bulk("get")), "{all}");
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]), Value::Array(vec![]));
    assert_eq!(c.cmd(&["LATENCY", "RESET"]), Value::Int(0));
}

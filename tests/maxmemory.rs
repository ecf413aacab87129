//! maxmemory and eviction with real processes: -OOM under noeviction,
//! LRU keeping a hot set, volatile policies, CONFIG SET at run time on 1
//! and 4 shards, evictions logged to the AOF, and the error texts that
//! must match redis-server's.

mod common;

use common::resp::{RespConn, Value};
use common::server::Server;
use std::collections::BTreeSet;
use std::time::Duration;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

fn info_int(c: &mut RespConn, field: &str) -> i64 {
    let text = match c.cmd(&["INFO", "all"]) {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO gave {other}"),
    };
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{text}"))
}

fn keys(c: &mut RespConn) -> BTreeSet<String> {
    let v = c.cmd(&["KEYS", "*"]);
    v.as_items()
        .expect("KEYS array")
        .iter()
        .map(|k| String::from_utf8_lossy(k.as_bytes().expect("bulk key")).into_owned())
        .collect()
}

fn value(n: usize) -> String {
    "v".repeat(n)
}

/// SET `prefix{i}` for i in `range` (1 KB values); stops at the first
/// error and returns it.
fn fill(c: &mut RespConn, prefix: &str, range: std::ops::Range<usize>, extra: &[&str]) -> Option<String> {
    let v = value(1000);
    for i in range {
        let k = format!("{prefix}{i}");
        let mut args = vec!["SET", k.as_str(), v.as_str()];
        args.extend_from_slice(extra);
        match c.cmd(&args) {
            Value::Simple(_) => {}
            Value::Error(e) => return Some(e),
            other => panic!("SET gave {other}"),
        }
    }
    None
}

#[test]
fn noeviction_refuses_growth_but_reads_and_deletes_run() {
    let srv = Server::start(1, &["--maxmemory", "1mb"]);
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["CONFIG", "GET", "maxmemory-policy"]).as_items().map(|v| v.len()), Some(2));
    assert_eq!(c.cmd(&["XADD", "s", "1-1", "f", "v"]), Value::bulk("1-1"));
    let err = fill(&mut c, "k", 0..5000, &[]).expect("1 MB fills up within 5000 1 KB values");
    assert_eq!(err, OOM);
    let stored = keys(&mut c).len();
    assert!(stored > 100, "only {stored} keys before OOM");
    // Growth of any kind is refused; reads and deletes are not.
    // XSETID and XGROUP CREATE are denyoom in Redis's table too.
    for cmd in [
        &["LPUSH", "l", "x"][..],
        &["APPEND", "k0", "x"],
        &["HSET", "h", "f", "v"],
        &["INCR", "n"],
        &["XSETID", "s", "9-9"],
        &["XGROUP", "CREATE", "s", "g", "$"],
    ] {
        assert_eq!(c.cmd(cmd), Value::Error(OOM.into()), "{cmd:?}");
    }
    // Its HELP is not: a subcommand has its own flags.
    assert!(c.cmd(&["XGROUP", "HELP"]).as_items().is_some());
    assert_eq!(c.cmd(&["GET", "k0"]), Value::bulk(value(1000)));
    assert_eq!(c.cmd(&["EXISTS", "k1"]), Value::Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "k1", "100"]), Value::Int(1));
    for i in 0..50 {
        assert_eq!(c.cmd(&["DEL", &format!("k{i}")]), Value::Int(1));
    }
    // Room again.
    assert_eq!(c.cmd(&["SET", "again", "1"]), Value::ok());
    assert_eq!(info_int(&mut c, "evicted_keys"), 0);
    assert_eq!(info_int(&mut c, "maxmemory"), 1 << 20);
    let used = info_int(&mut c, "used_memory");
    assert!(used > 512 << 10 && used <= (1 << 20) + 2000, "used_memory {used}");
    assert!(info_int(&mut c, "used_memory_peak") >= used);
}

#[test]
fn big_collections_weigh_their_elements() {
    // One key of each full encoding grows by 1 KB elements until -OOM: the
    // limit must hold by the bytes they hold, not a fixed cost per element
    // (a 100k-field hash of 1 KB values once counted as 8 MB).
    let srv = Server::start(1, &["--maxmemory", "2mb"]);
    let mut c = srv.conn();
    let base = info_int(&mut c, "used_memory");
    for (kind, encoding) in [("hash", "hashtable"), ("set", "hashtable"), ("zset", "skiplist"), ("list", "quicklist")] {
        let mut stored = 0usize;
        let err = loop {
            assert!(stored < 4000, "{kind}: 4 MB of elements stored under a 2 MB limit");
            let elem = format!("{stored:04}{}", value(996));
            let n = stored.to_string();
            let args: Vec<&str> = match kind {
                "hash" => vec!["HSET", "big", &n, &elem],
                "set" => vec!["SADD", "big", &elem],
                "zset" => vec!["ZADD", "big", &n, &elem],
                _ => vec!["RPUSH", "big", &elem],
            };
            match c.cmd(&args) {
                Value::Int(_) => stored += 1,
                Value::Error(e) => break e,
                other => panic!("{kind}: {other}"),
            }
        };
        assert_eq!(err, OOM, "{kind}");
        assert_eq!(c.cmd(&["OBJECT", "ENCODING", "big"]), Value::bulk(encoding), "{kind}");
        let used = info_int(&mut c, "used_memory");
        assert!(stored > 1000 && used as usize >= stored * 1000, "{kind}: {stored} elements, used_memory {used}");
        // What the key was charged is given back when it goes.
        assert_eq!(c.cmd(&["DEL", "big"]), Value::Int(1));
        let after = info_int(&mut c, "used_memory");
        assert!(after < base + 10_000, "{kind}: used_memory {after} after DEL (started at {base})");
    }
}

#[test]
fn memory_usage_weighs_a_key_on_its_own_shard() {
    let srv = Server::start(4, &[]);
    let mut c = srv.conn();
    // Keys spread over the shards: each is weighed where it lives.
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(c.cmd(&["SET", &k, &value(100)]), Value::ok());
        let n = c.cmd(&["MEMORY", "USAGE", &k]).as_int().unwrap_or_else(|| panic!("MEMORY USAGE {k}"));
        assert!((100..1000).contains(&n), "{k}: {n}");
    }
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "missing"]), Value::NilBulk);
    for i in 0..1000 {
        assert_eq!(c.cmd(&["HSET", "h", &i.to_string(), &value(1000)]), Value::Int(1));
    }
    let n = c.cmd(&["MEMORY", "USAGE", "h", "SAMPLES", "0"]).as_int().expect("int");
    assert!(n >= 1_000_000, "a hash of 1000 1 KB values weighs {n}");
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "h", "SAMPLES"]), Value::Error("ERR syntax error".into()));
    assert_eq!(c.cmd(&["MEMORY", "PURGE"]), Value::ok());
}

#[test]
fn allkeys_lru_keeps_the_hot_set() {
    let srv =
        Server::start(1, &["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "10"]);
    let mut c = srv.conn();
    let hot: Vec<String> = (0..100).map(|i| format!("hot{i}")).collect();
    for k in &hot {
        assert_eq!(c.cmd(&["SET", k, &value(1000)]), Value::ok());
    }
    // The LRU clock counts seconds: each round, the hot keys are read a
    // second after the older cold keys were written, then more cold keys
    // push the older ones out.
    let (mut next, mut misses) = (0, 0);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        for k in &hot {
            if c.cmd(&["GET", k]) != Value::bulk(value(1000)) {
                // A cache refills what it missed.
                misses += 1;
                assert_eq!(c.cmd(&["SET", k, &value(1000)]), Value::ok());
            }
        }
        assert_eq!(fill(&mut c, "cold", next..next + 1000, &[]), None, "allkeys-lru never refuses");
        next += 1000;
    }
    // Sampling approximates LRU: an unlucky sample may take a hot key now
    // and then, while about 1300 cold keys go.
    assert!(misses <= 5, "{misses} hot-key misses");
    let present = hot.iter().filter(|k| c.cmd(&["EXISTS", k.as_str()]) == Value::Int(1)).count();
    assert!(present >= 95, "only {present} hot keys left");
    let evicted = info_int(&mut c, "evicted_keys");
    let dbsize = c.cmd(&["DBSIZE"]).as_int().expect("int");
    assert_eq!(evicted + dbsize, 3100 + misses, "every key is stored or counted as evicted");
    assert!(evicted > 1000);
    let used = info_int(&mut c, "used_memory");
    assert!(used <= (2 << 20) + 2000 && used > (3 << 20) / 2, "used_memory {used} not near the 2 MB limit");
    // IDLETIME now reports an access clock: hot keys were just read.
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "hot0"]).as_int().map(|s| s <= 1), Some(true));
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl() {
    let srv = Server::start(1, &["--maxmemory", "1mb", "--maxmemory-policy", "volatile-lru"]);
    let mut c = srv.conn();
    assert_eq!(fill(&mut c, "keep", 0..300, &[]), None);
    for (round, policy) in ["volatile-lru", "volatile-random", "volatile-lfu", "volatile-ttl"].iter().enumerate() {
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", policy]), Value::ok());
        let base = round * 10_000;
        // Rising TTLs: volatile-ttl goes for the soonest expiry first.
        let v = value(1000);
        for i in 0..1500 {
            let k = format!("tmp{}", base + i);
            let ttl = (1000 + i).to_string();
            assert_eq!(c.cmd(&["SET", &k, &v, "EX", &ttl]), Value::ok(), "{policy}");
        }
        for i in 0..300 {
            assert_eq!(c.cmd(&["EXISTS", &format!("keep{i}")]), Value::Int(1), "{policy} evicted keep{i}");
        }
        if *policy == "volatile-ttl" {
            for i in 1490..1500 {
                assert_eq!(c.cmd(&["EXISTS", &format!("tmp{}", base + i)]), Value::Int(1), "latest expiry evicted");
            }
        }
    }
    assert!(info_int(&mut c, "evicted_keys") > 1000);
    // With no key left that has a TTL, nothing can be evicted.
    let tmp: Vec<String> = keys(&mut c).into_iter().filter(|k| k.starts_with("tmp")).collect();
    for k in &tmp {
        c.cmd(&["DEL", k]);
    }
    let err = fill(&mut c, "more", 0..5000, &[]).expect("OOM once no volatile key is left");
    assert_eq!(err, OOM);
    for i in 0..300 {
        assert_eq!(c.cmd(&["EXISTS", &format!("keep{i}")]), Value::Int(1));
    }
}

#[test]
fn config_set_maxmemory_applies_to_every_shard() {
    for shards in [1, 4] {
        let srv = Server::start(shards, &[]);
        let mut c = srv.conn();
        assert_eq!(fill(&mut c, "k", 0..2000, &[]), None);
        let before = info_int(&mut c, "used_memory");
        assert!(before > 2_000_000, "{shards} shards: used_memory {before} for 2000 1 KB values");
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]), Value::ok());
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]), Value::ok());
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "maxmemory"]),
            Value::Array(vec![Value::bulk("maxmemory"), Value::bulk("1048576")])
        );
        // Every shard got under its share at once (Redis also evicts on
        // CONFIG SET): the sum is under the limit.
        let used = info_int(&mut c, "used_memory");
        assert!(used <= 1 << 20, "{shards} shards: used_memory {used} after CONFIG SET maxmemory 1mb");
        let evicted = info_int(&mut c, "evicted_keys");
        assert_eq!(evicted + c.cmd(&["DBSIZE"]).as_int().expect("int"), 2000);
        assert!(evicted > 900, "{shards} shards: only {evicted} evicted");
        // Writes keep it there, on every shard.
        assert_eq!(fill(&mut c, "n", 0..2000, &[]), None);
        assert!(info_int(&mut c, "used_memory") <= (1 << 20) + shards as i64 * 2000);
        // noeviction: writes fail once a shard is full; raising the limit
        // lets them through again.
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]), Value::ok());
        assert_eq!(fill(&mut c, "x", 0..5000, &[]).as_deref(), Some(OOM));
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]), Value::ok());
        assert_eq!(fill(&mut c, "y", 0..500, &[]), None);
    }
}

#[test]
fn evictions_are_logged_and_survive_a_restart() {
    for shards in [1, 3] {
        let mut srv = Server::start(shards, &["--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru"]);
        let mut c = srv.conn();
        assert_eq!(fill(&mut c, "k", 0..1500, &[]), None);
        assert_eq!(c.cmd(&["SELECT", "3"]), Value::ok());
        assert_eq!(fill(&mut c, "db3-", 0..500, &["EX", "1000"]), None);
        // The last write may leave a shard just over its share until its
        // next write; setting the limit again evicts that now, so the
        // restart below starts under it and evicts nothing.
        assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]), Value::ok());
        assert!(info_int(&mut c, "evicted_keys") > 500);
        let mut before = Vec::new();
        for db in ["0", "3"] {
            c.cmd(&["SELECT", db]);
            before.push(keys(&mut c));
        }
        drop(c);
        srv.restart().unwrap_or_else(|e| panic!("restart: {e}"));
        let mut c = srv.conn();
        for (i, db) in ["0", "3"].iter().enumerate() {
            c.cmd(&["SELECT", db]);
            assert_eq!(keys(&mut c), before[i], "{shards} shards: db {db} differs after restart");
        }
        assert_eq!(info_int(&mut c, "evicted_keys"), 0);
    }
}

#[test]
fn watch_sees_an_eviction() {
    let srv = Server::start(1, &["--maxmemory", "1mb", "--maxmemory-policy", "allkeys-random"]);
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["SET", "watched", "1"]), Value::ok());
    assert_eq!(c.cmd(&["WATCH", "watched"]), Value::ok());
    let mut other = srv.conn();
    // Write until the watched key is evicted (bounded).
    let mut gone = false;
    for round in 0..20 {
        fill(&mut other, &format!("r{round}-"), 0..500, &[]);
        if other.cmd(&["EXISTS", "watched"]) == Value::Int(0) {
            gone = true;
            break;
        }
    }
    assert!(gone, "random eviction never took the watched key");
    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "watched", "2"]), Value::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["EXEC"]), Value::NilArray);
}

/// Error texts where Redis's behaviour is deterministic.
#[test]
fn error_texts_match_redis() {
    // One hash tag: every key on one shard, which is then over a 1-byte
    // limit as Redis (whose baseline alone exceeds it) is.
    let script: &[&[&str]] = &[
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        &["SET", "{t}a", "1"],
        &["OBJECT", "FREQ", "{t}a"],
        &["OBJECT", "FREQ", "{t}missing"],
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        &["OBJECT", "IDLETIME", "{t}a"],
        // Not a small integer: Redis shares those, with a zero clock.
        &["SET", "{t}c", "x"],
        &["OBJECT", "FREQ", "{t}c"],
        &["CONFIG", "SET", "maxmemory-policy", "nope"],
        &["CONFIG", "SET", "maxmemory-samples", "0"],
        &["CONFIG", "SET", "maxmemory", "3x"],
        &["CONFIG", "GET", "maxmemory-samples"],
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["SET", "{t}b", "1"],
        &["LPUSH", "{t}l", "1"],
        &["INCR", "{t}n"],
        &["GET", "{t}a"],
        // Over the limit MULTI queues nothing (reads neither) and EXEC
        // aborts; DISCARD and an empty EXEC still work.
        &["MULTI"],
        &["SET", "{t}b", "1"],
        &["GET", "{t}a"],
        &["EXEC"],
        &["MULTI"],
        &["GET", "{t}a"],
        &["DISCARD"],
        &["MULTI"],
        &["EXEC"],
        &["DEL", "{t}a"],
        &["CONFIG", "SET", "maxmemory", "0"],
        &["SET", "{t}b", "1"],
        &["MULTI"],
        &["SET", "{t}b", "2"],
        &["EXEC"],
    ];
    let redis = Server::start_redis();
    let ours = Server::start(2, &[]);
    let (mut r, mut o) = (redis.conn(), ours.conn());
    for cmd in script {
        let (want, got) = (r.cmd(cmd), o.cmd(cmd));
        assert_eq!(got, want, "{cmd:?}");
    }
}

//! Keyspace notifications side by side with redis-server 7.0: per command,
//! the multiset of events a `PSUBSCRIBE __key*__:*` client receives must
//! be redis-server's, on 1 and 4 shards (where the subscriber, the client
//! and the keys sit on different shards). One test per type family, plus
//! the flag string, expiry (lazy and active) and eviction.

mod common;

use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

/// One server under test: a client and a pattern subscriber.
struct Side {
    client: RespConn,
    sub: RespConn,
    marks: u64,
    /// Inside MULTI: no marker until EXEC (it would be queued).
    queued: bool,
}

impl Side {
    fn new(srv: &Server, flags: &str) -> Side {
        let mut client = srv.conn();
        assert_eq!(client.cmd(&["CONFIG", "SET", "notify-keyspace-events", flags]), Value::ok());
        let mut sub = srv.conn();
        let r = sub.cmd(&["PSUBSCRIBE", "__key*__:*"]);
        assert!(matches!(r, Value::Array(_)), "{r:?}");
        Side { client, sub, marks: 0, queued: false }
    }

    /// Run `line` (or sleep `ms` first when it starts with `@ms `; a
    /// leading `~`: its reply is random, not compared), then return the
    /// events received until a marker published after it.
    fn step(&mut self, line: &str) -> (String, Vec<(String, String)>) {
        let (line, random) = match line.strip_prefix('~') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let line = match line.strip_prefix('@') {
            Some(rest) => {
                let (ms, rest) = rest.split_once(' ').expect("@ms command");
                std::thread::sleep(Duration::from_millis(ms.parse().expect("ms")));
                rest
            }
            None => line,
        };
        let args: Vec<&str> = line.split(' ').collect();
        let reply = format!("{:?}", self.client.cmd(&args));
        let reply = if random { "(random)".to_string() } else { reply };
        match args[0] {
            "MULTI" => self.queued = true,
            "EXEC" | "DISCARD" => self.queued = false,
            _ => {}
        }
        if self.queued {
            return (reply, Vec::new());
        }
        self.marks += 1;
        let mark = format!("__keymark__:{}", self.marks);
        self.client.cmd(&["PUBLISH", &mark, "m"]);
        let mut events = Vec::new();
        while let Ok(v) = self.sub.read_value() {
            let Some((ch, msg)) = pmessage(&v) else { continue };
            if ch == mark {
                break;
            }
            events.push((ch, msg));
        }
        events.sort();
        (reply, events)
    }

    /// Keep reading for events that arrived after the marker (a marker can
    /// overtake another shard's events), until `want` is matched or a
    /// short while passes.
    fn settle(&mut self, got: &mut Vec<(String, String)>, want: &[(String, String)]) {
        let end = Instant::now() + Duration::from_millis(600);
        self.sub.set_read_timeout(Some(Duration::from_millis(100)));
        while got.as_slice() != want && Instant::now() < end {
            if let Ok(v) = self.sub.read_value() {
                if let Some(e) = pmessage(&v) {
                    if !e.0.starts_with("__keymark__") {
                        got.push(e);
                        got.sort();
                    }
                }
            }
        }
        self.sub.set_read_timeout(Some(common::resp::READ_TIMEOUT));
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// (channel, message) of a pmessage push.
fn pmessage(v: &Value) -> Option<(String, String)> {
    let items = match v {
        Value::Array(a) | Value::Push(a) => a,
        _ => return None,
    };
    if items.len() != 4 || text(&items[0]).as_deref() != Some("pmessage") {
        return None;
    }
    Some((text(&items[2])?, text(&items[3])?))
}

/// Run `steps` on redis-server and on shardis with 1 and 4 shards; every
/// step's reply and events must be redis-server's.
fn compare(flags: &str, steps: &[&str]) {
    let redis = Server::start_redis();
    for shards in [1, 4] {
        let shardis = Server::start(shards, &["--appendonly", "no"]);
        let mut want = Side::new(&redis, flags);
        want.client.cmd(&["FLUSHALL"]);
        let mut got = Side::new(&shardis, flags);
        let mut diffs = Vec::new();
        for line in steps {
            let (wr, we) = want.step(line);
            let (gr, mut ge) = got.step(line);
            if ge != we {
                got.settle(&mut ge, &we);
            }
            if wr != gr || we != ge {
                diffs.push(format!("{line}\n  redis:   {wr} {we:?}\n  shardis: {gr} {ge:?}"));
            }
        }
        assert!(diffs.is_empty(), "{shards} shard(s), flags {flags}:\n{}", diffs.join("\n"));
    }
}

#[test]
fn flag_strings_as_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &["--appendonly", "no"]);
    for flags in ["KEA", "AKEmn", "Ex", "g$lshzxetdK", "nK$", "gmnK", "An", "Kd", "", "KEw", "KA?"] {
        let mut seen = Vec::new();
        for srv in [&redis, &shardis] {
            let mut c = srv.conn();
            let set = c.cmd(&["CONFIG", "SET", "notify-keyspace-events", flags]);
            let get = c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]);
            seen.push(format!("{set:?} {get:?}"));
        }
        assert_eq!(seen[0], seen[1], "flags {flags:?}");
    }
}

#[test]
fn generic_events() {
    compare(
        "KEA",
        &[
            "SET {g}a 1",
            "SET {g}b 2",
            "DEL {g}a {g}b {g}none",
            "SET {g}a 1",
            "EXPIRE {g}a 100",
            "PEXPIRE {g}a 100000",
            "EXPIREAT {g}a 99999999999",
            "EXPIRE {g}a 100 GT",
            "PERSIST {g}a",
            "PERSIST {g}a",
            "EXPIRE {g}missing 100",
            "EXPIRE {g}a -1",
            "SET {g}a 1",
            "RENAME {g}a {g}b",
            "SET {g}a 2",
            "RENAME {g}a {g}b",
            "RENAMENX {g}b {g}c",
            "SET {g}a 3",
            "RENAMENX {g}a {g}c",
            "COPY {g}c {g}d",
            "COPY {g}c {g}d",
            "COPY {g}c {g}d REPLACE",
            "MOVE {g}d 1",
            "SET {g}d x",
            "MOVE {g}d 1",
            "UNLINK {g}c {g}d",
            "SELECT 1",
            "DEL {g}d",
            "SET {g}one 1",
            "SELECT 0",
            "SET a 1",
            "SET b 2",
            "RENAME a b",
            "SET c 1",
            "DEL a b c",
            "MSET a 1 b 2 c 3",
            "RPUSH {g}l 3 1 2",
            "SORT {g}l STORE {g}sorted",
            "SORT {g}none STORE {g}sorted",
            "GET {g}nothing",
            "MULTI",
            "SET {g}m 1",
            "LPUSH {g}ml x",
            "DEL {g}m",
            "EXEC",
            "MULTI",
            "SET a 1",
            "SET b 1",
            "RENAME a c",
            "EXEC",
            "EVAL return(redis.call('set',KEYS[1],'v')) 1 {g}ev",
            "EVAL return(redis.call('incr',KEYS[1])) 1 n1",
            "FLUSHDB",
        ],
    );
}

#[test]
fn new_and_keymiss_classes() {
    compare(
        "KEnm",
        &[
            "SET a 1",
            "SET a 2",
            "GET none",
            "LPUSH l x",
            "DEL a",
            "HGET h f",
            "EXISTS none",
            "SET {n}a 1",
            "SET {n}b 1",
            "RENAME {n}a {n}b",
            "COPY {n}b {n}c",
            "COPY {n}b {n}c REPLACE",
            "MOVE {n}c 1",
            "RENAME {n}b {n}d",
        ],
    );
    compare("Eg", &["SET a 1", "EXPIRE a 10", "DEL a", "LPUSH l x", "DEL l"]);
}

#[test]
fn string_events() {
    compare(
        "KEA",
        &[
            "SET s 1",
            "SET s 2 EX 100",
            "SET s 3 KEEPTTL",
            "SET s 4 NX",
            "SET s 5 XX GET",
            "SET s 6 PXAT 99999999999999",
            "SETNX s 7",
            "SETNX s2 7",
            "SETEX s3 100 v",
            "PSETEX s4 100000 v",
            "GETSET s 8",
            "GETEX s EX 100",
            "GETEX s PERSIST",
            "GETEX s",
            "GETEX s PX -5",
            "GETDEL s2",
            "GETDEL s2",
            "MSET {s}a 1 {s}b 2",
            "MSETNX {s}a 1 {s}c 2",
            "MSETNX {s}d 1 {s}e 2",
            "APPEND {s}a xyz",
            "APPEND new abc",
            "SET n 10",
            "INCR n",
            "DECR n",
            "INCRBY n 5",
            "DECRBY n 5",
            "INCRBYFLOAT n 1.5",
            "INCR notanumber",
            "SET str abc",
            "INCR str",
            "SETRANGE str 1 X",
            "SETRANGE str 0 ",
            "SETRANGE empty 0 ",
            "SETRANGE empty2 3 x",
            "SETBIT {b}b 1 1",
            "SETBIT {b}b 1 1",
            "SETBIT {b}b 2 0",
            "BITFIELD {b}b SET u8 0 255",
            "BITFIELD {b}b GET u8 0",
            "BITFIELD {b}b INCRBY u8 0 1",
            "BITOP AND {b}dst {b}b {b}b",
            "BITOP AND {b}dst {b}none {b}none",
            "PFADD {h}h a b",
            "PFADD {h}h a",
            "PFMERGE {h}h2 {h}h",
            "PFCOUNT {h}h",
            "MSET x 1 y 2 z 3",
        ],
    );
}

#[test]
fn list_events() {
    compare(
        "KEA",
        &[
            "LPUSH {l}a 1 2 3",
            "RPUSH {l}a 4",
            "LPUSHX {l}none 1",
            "RPUSHX {l}a 5",
            "LINSERT {l}a BEFORE 4 x",
            "LINSERT {l}a BEFORE nothere x",
            "LSET {l}a 0 y",
            "LPOP {l}a",
            "RPOP {l}a 2",
            "LREM {l}a 0 x",
            "LREM {l}a 0 nothere",
            "RPUSH {l}a 1 2 3 4",
            "LTRIM {l}a 0 2",
            "LMOVE {l}a {l}b LEFT RIGHT",
            "RPOPLPUSH {l}a {l}b",
            "LMPOP 2 {l}none {l}b LEFT COUNT 2",
            "BLPOP {l}a 1",
            "BRPOP {l}b 1",
            "RPUSH {l}c 1",
            "BLMOVE {l}c {l}d RIGHT LEFT 1",
            "BLMPOP 1 1 {l}d RIGHT",
            "RPUSH {l}e 1 2",
            "LTRIM {l}e 5 10",
            "RPUSH {l}e 1",
            "LREM {l}e 0 1",
            "RPUSH {l}e 1 2",
            "LMOVE {l}e {l}e LEFT RIGHT",
            "RPUSH a 1",
            "LMOVE a b LEFT LEFT",
        ],
    );
}

#[test]
fn hash_events() {
    compare(
        "KEA",
        &[
            "HSET h a 1 b 2",
            "HSET h a 1",
            "HMSET h c 3",
            "HSETNX h a 9",
            "HSETNX h z 9",
            "HINCRBY h n 5",
            "HINCRBYFLOAT h f 1.5",
            "HDEL h none",
            "HDEL h a b",
            "HDEL h c n f z",
            "HGET h a",
        ],
    );
}

#[test]
fn set_events() {
    compare(
        "KEA",
        &[
            "SADD {s}a 1 2 3",
            "SADD {s}a 1",
            "SREM {s}a 9",
            "SREM {s}a 1",
            "~SPOP {s}a",
            "SADD {s}a 1 2 3",
            "~SPOP {s}a 2",
            "SADD {s}a 1 2 3",
            "SMOVE {s}a {s}b 1",
            "SMOVE {s}a {s}b 9",
            "SINTERSTORE {s}i {s}a {s}b",
            "SUNIONSTORE {s}u {s}a {s}b",
            "SDIFFSTORE {s}d {s}a {s}b",
            "SINTERSTORE {s}u {s}none {s}b",
            "~SPOP {s}b 10",
            "SADD x 1",
            "SMOVE x y 1",
        ],
    );
}

#[test]
fn zset_events() {
    compare(
        "KEA",
        &[
            "ZADD {z}a 1 x 2 y 3 z",
            "ZADD {z}a 1 x",
            "ZADD {z}a INCR 5 x",
            "ZADD {z}a NX 9 x",
            "ZINCRBY {z}a 1 y",
            "ZREM {z}a none",
            "ZREM {z}a x",
            "ZADD {z}a 1 a 2 b 3 c 4 d",
            "ZPOPMIN {z}a",
            "ZPOPMAX {z}a 2",
            "ZREMRANGEBYRANK {z}a 0 0",
            "ZREMRANGEBYSCORE {z}a 100 200",
            "ZADD {z}a 0 m 0 n 0 o",
            "ZREMRANGEBYLEX {z}a [m [n",
            "ZADD {z}b 1 x",
            "ZUNIONSTORE {z}u 2 {z}a {z}b",
            "ZINTERSTORE {z}i 2 {z}a {z}b",
            "ZDIFFSTORE {z}d 2 {z}a {z}b",
            "ZRANGESTORE {z}r {z}a 0 -1",
            "ZRANGESTORE {z}r {z}none 0 -1",
            "ZMPOP 1 {z}a MIN COUNT 2",
            "BZPOPMIN {z}b 1",
            "ZADD {z}c 1 x",
            "BZMPOP 1 1 {z}c MAX",
            "GEOADD {z}g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEOSEARCHSTORE {z}gs {z}g FROMLONLAT 15 37 BYRADIUS 200 km",
            "GEORADIUS {z}g 15 37 200 km STORE {z}gr",
            "GEOSEARCHSTORE {z}gs {z}g FROMLONLAT 0 0 BYRADIUS 1 km",
            "ZREMRANGEBYSCORE {z}u -inf +inf",
        ],
    );
}

#[test]
fn stream_events() {
    compare(
        "KEA",
        &[
            "XADD s 1-1 f v",
            "XADD s 2-1 f v",
            "XADD s MAXLEN 1 3-1 f v",
            "XADD s 4-1 f v",
            "XTRIM s MAXLEN 1",
            "XTRIM s MAXLEN 1",
            "XADD s 5-1 f v",
            "XDEL s 5-1 9-9",
            "XDEL s 9-9",
            "XSETID s 10-1",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s2 g 0 MKSTREAM",
            "XGROUP CREATECONSUMER s g c1",
            "XGROUP CREATECONSUMER s g c1",
            "XADD s 11-1 f v",
            "XREADGROUP GROUP g c2 COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g c2 COUNT 1 STREAMS s >",
            "XCLAIM s g c3 0 11-1",
            "XAUTOCLAIM s g c4 0 0",
            "XACK s g 11-1",
            "XGROUP SETID s g 0",
            "XGROUP DELCONSUMER s g c1",
            "XGROUP DESTROY s g",
            "XGROUP DESTROY s g",
            "XADD s NOMKSTREAM 12-1 f v",
            "XADD none NOMKSTREAM 12-1 f v",
        ],
    );
}

/// Times already past (the key is gone at once or at its next access),
/// repeated keys in one MSET, and PUBLISH inside MULTI: each step's events
/// as redis-server's. A past time's lazy expiry runs in the same EXEC so
/// that active expiry cannot move it to another step.
#[test]
fn past_times_repeats_and_publish_in_multi() {
    compare(
        "KEA",
        &[
            "MULTI",
            "SET a 1 EXAT 1",
            "GET a",
            "EXEC",
            "MULTI",
            "SET {p}b 1 PXAT 1",
            "SET {p}b2 1 PXAT 1 GET",
            "EXISTS {p}b {p}b2",
            "EXEC",
            "SET c 1",
            "GETEX c EXAT 1",
            "SET c 1",
            "GETEX c PXAT 1",
            "GETEX c PXAT 1",
            "SET d 1",
            "EXPIRE d -1",
            "SET d 1",
            "PEXPIREAT d 1",
            "SET d 1",
            "EXPIREAT d 1 NX",
            "EXPIRE d -1",
            "RPUSH dl a b",
            "PEXPIRE dl -5",
            "SETEX e 0 v",
            "SETEX e -1 v",
            "PSETEX e 0 v",
            "SET e 1 EX 0",
            "SET e 1 PX -1",
            "MSET x 1 x 2 y 3 x 4",
            "MSET {m}x 1 {m}x 2 {m}y 3",
            "MSETNX {m}p 1 {m}p 2",
            "MSETNX {m}q 1 {m}q 2 {m}p 3",
            "MULTI",
            "PUBLISH __keyspace@0__:fake hello",
            "SET f 1",
            "PUBLISH __keyevent@0__:fake f",
            "EXEC",
            "PUBLISH __keyspace@0__:direct m",
        ],
    );
}

#[test]
fn expiry_events() {
    compare(
        "KEA",
        &[
            "SET lazy v PX 30",
            "@120 GET lazy",
            "SET {e}a v PX 30",
            "SET {e}b v PX 30",
            "@1200 DBSIZE",
            "SET c v PX 30",
            "@120 LPUSH c x",
            "SET d v PX 30",
            "@120 DEL d",
        ],
    );
}

/// Keys over the memory limit are evicted with `evicted` events (which
/// keys differ from redis-server's choice, so only the events are checked
/// against what went missing).
#[test]
fn eviction_events() {
    for shards in [1, 4] {
        let shardis = Server::start(shards, &["--appendonly", "no"]);
        let mut side = Side::new(&shardis, "Ee");
        side.client.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
        let big = "x".repeat(10_000);
        for i in 0..40 {
            side.client.cmd(&["SET", &format!("k{i}"), &big]);
        }
        side.client.cmd(&["CONFIG", "SET", "maxmemory", "300000"]);
        let (_, events) = side.step("SET trigger 1");
        let evicted: Vec<&String> =
            events.iter().filter(|(ch, _)| ch == "__keyevent@0__:evicted").map(|(_, k)| k).collect();
        assert!(!evicted.is_empty(), "{shards} shard(s): no eviction events: {events:?}");
        for k in evicted {
            assert_eq!(side.client.cmd(&["EXISTS", k]), Value::Int(0), "{k} evicted but still there");
        }
    }
}

/// A replica publishes the events of the writes it applies (as a Redis
/// replica does), on 1 and 4 shards.
#[test]
fn replica_publishes_applied_writes() {
    for shards in [1, 4] {
        let master = Server::start(shards, &[]);
        let port = master.port.to_string();
        let replica = Server::start(shards, &["--replicaof", "127.0.0.1", &port]);
        let mut side = Side::new(&replica, "KEA");
        let mut m = master.conn();
        let want: Vec<(String, String)> = {
            let mut v = vec![
                ("__keyevent@0__:set", "a"),
                ("__keyspace@0__:a", "set"),
                ("__keyevent@0__:expire", "a"),
                ("__keyspace@0__:a", "expire"),
                ("__keyevent@0__:lpush", "l"),
                ("__keyspace@0__:l", "lpush"),
                ("__keyevent@0__:del", "a"),
                ("__keyspace@0__:a", "del"),
            ];
            v.sort();
            v.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        // The link may take a moment: write until the first events arrive.
        let end = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        side.sub.set_read_timeout(Some(Duration::from_millis(200)));
        while got.is_empty() && Instant::now() < end {
            m.cmd(&["SET", "probe", "1"]);
            if let Ok(v) = side.sub.read_value() {
                got.extend(pmessage(&v));
            }
        }
        assert!(!got.is_empty(), "{shards} shard(s): the replica published nothing");
        // Drain the probes' events, then the writes under test.
        while side.sub.read_value().is_ok() {}
        m.cmd(&["SET", "a", "1", "EX", "100"]);
        m.cmd(&["LPUSH", "l", "x"]);
        m.cmd(&["DEL", "a"]);
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while got.len() < want.len() && Instant::now() < end {
            if let Ok(v) = side.sub.read_value() {
                got.extend(pmessage(&v));
            }
        }
        got.sort();
        assert_eq!(got, want, "{shards} shard(s)");
    }
}

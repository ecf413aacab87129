//! The command table against redis-server 7.0, side by side: COMMAND INFO
//! of every command and subcommand shardis has (flags, ACL categories, key
//! specs, tips, subcommands), COMMAND DOCS's since and group, COMMAND
//! GETKEYS/GETKEYSANDFLAGS, and the errors the table decides (unknown
//! subcommand, subcommand arity, in and out of MULTI).

mod common;

use common::{RespConn, Server, Value};

/// Where shardis's table deliberately differs from Redis 7.0's.
const NEWER_THAN_7_0: &[&str] = &[
    // Redis 7.2's subcommands, which clients send on connect.
    "client|setinfo",
    "client|no-touch",
    // Redis 7.2's WAITAOF.
    "waitaof",
];

/// ZRANK/ZREVRANK take 7.2's WITHSCORE, so their arity is -3, not 3;
/// REPLICAOF/SLAVEOF NO ONE may carry a failover epoch (shardis's).
const ARITY_7_2: &[&str] = &["zrank", "zrevrank", "replicaof", "slaveof"];

fn text(v: &Value) -> String {
    String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned()
}

fn names(v: &Value) -> Vec<String> {
    v.as_items().expect("array").iter().map(text).collect()
}

/// Items of an array or a set.
fn items(v: &Value) -> &[Value] {
    match v {
        Value::Set(x) | Value::Array(x) => x,
        other => panic!("not an aggregate: {other}"),
    }
}

fn rebuild(like: &Value, items: Vec<Value>) -> Value {
    match like {
        Value::Set(_) => Value::Set(items),
        _ => Value::Array(items),
    }
}

/// A key spec without Redis's `notes` (prose shardis does not copy).
fn without_notes(spec: &Value) -> Value {
    match spec {
        Value::Map(kv) => Value::Map(kv.iter().filter(|(k, _)| text(k) != "notes").cloned().collect()),
        Value::Array(flat) => {
            let mut out = Vec::new();
            for pair in flat.chunks(2) {
                if text(&pair[0]) != "notes" {
                    out.extend_from_slice(pair);
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

/// One COMMAND INFO entry made comparable: no key-spec notes, subcommands
/// sorted and limited to `keep`, and the deliberate differences applied.
fn normalize(info: &Value, keep: &dyn Fn(&str) -> bool) -> Value {
    let Value::Array(f) = info else { return info.clone() };
    if f.len() == 1 {
        // The reply to COMMAND INFO name: one entry.
        return Value::Array(vec![normalize(&f[0], keep)]);
    }
    let mut f = f.clone();
    if ARITY_7_2.contains(&text(&f[0]).as_str()) {
        f[1] = Value::Int(3);
    }
    let specs: Vec<Value> = items(&f[8]).iter().map(without_notes).collect();
    f[8] = rebuild(&f[8], specs);
    let mut subs: Vec<Value> =
        items(&f[9]).iter().filter(|s| keep(&text(&items(s)[0]))).map(|s| normalize(s, keep)).collect();
    subs.sort();
    f[9] = rebuild(&f[9], subs);
    Value::Array(f)
}

fn top_level(c: &mut RespConn) -> Vec<String> {
    names(&c.cmd(&["COMMAND", "LIST"])).into_iter().filter(|n| !n.contains('|')).collect()
}

#[test]
fn command_info_matches_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    for resp3 in [false, true] {
        let (mut r, mut s) = (redis.conn(), shardis.conn());
        if resp3 {
            assert!(!r.cmd(&["HELLO", "3"]).is_error());
            assert!(!s.cmd(&["HELLO", "3"]).is_error());
        }
        let all = names(&s.cmd(&["COMMAND", "LIST"]));
        let ours = |n: &str| all.iter().any(|a| a == n) && !NEWER_THAN_7_0.contains(&n);
        let commands = top_level(&mut s);
        assert_eq!(s.cmd(&["COMMAND", "COUNT"]), Value::Int(commands.len() as i64));
        assert!(commands.len() > 200, "{}", commands.len());
        for name in all.iter().filter(|n| ours(n)) {
            let got = normalize(&s.cmd(&["COMMAND", "INFO", name]), &ours);
            let want = normalize(&r.cmd(&["COMMAND", "INFO", name]), &ours);
            assert_eq!(got, want, "COMMAND INFO {name} (resp3: {resp3})");
        }
        // Every command's row, and the unknown name as a null, in order.
        let got = s.cmd(&["COMMAND", "INFO", "get", "nosuch", "config|get"]);
        let want = r.cmd(&["COMMAND", "INFO", "get", "nosuch", "config|get"]);
        assert_eq!(got, want);
        let every = s.cmd(&["COMMAND"]);
        let mut listed: Vec<String> = items(&every).iter().map(|i| text(&items(i)[0])).collect();
        listed.sort();
        let mut commands = commands.clone();
        commands.sort();
        assert_eq!(listed, commands);
    }
}

#[test]
fn command_docs_say_what_redis_says() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    for c in [&mut r, &mut s] {
        assert!(!c.cmd(&["HELLO", "3"]).is_error());
    }
    let field = |doc: &Value, k: &str| -> Option<Value> {
        let Value::Map(kv) = doc else { panic!("docs entry: {doc}") };
        kv.iter().find(|(key, _)| text(key) == k).map(|(_, v)| v.clone())
    };
    for name in top_level(&mut s).into_iter().filter(|n| !NEWER_THAN_7_0.contains(&n.as_str())) {
        let (Value::Map(got), Value::Map(want)) =
            (s.cmd(&["COMMAND", "DOCS", &name]), r.cmd(&["COMMAND", "DOCS", &name]))
        else {
            panic!("COMMAND DOCS {name}: not a map")
        };
        let (got, want) = (&got[0].1, &want[0].1);
        for k in ["since", "group"] {
            assert_eq!(field(got, k), field(want, k), "COMMAND DOCS {name}: {k}");
        }
        assert!(field(got, "summary").is_some(), "{name}");
        if let Some(Value::Map(subs)) = field(got, "subcommands") {
            let Some(Value::Map(theirs)) = field(want, "subcommands") else {
                panic!("{name}: no subcommands in Redis")
            };
            for (sub, doc) in subs.iter().filter(|(n, _)| !NEWER_THAN_7_0.contains(&text(n).as_str())) {
                let (_, their) = theirs.iter().find(|(n, _)| n == sub).expect("subcommand in Redis");
                assert_eq!(field(doc, "since"), field(their, "since"), "{}", text(sub));
            }
        }
    }
    // Names that are not commands are left out.
    assert_eq!(s.cmd(&["COMMAND", "DOCS", "nosuch"]), r.cmd(&["COMMAND", "DOCS", "nosuch"]));
}

/// A docs reply with every map's entries in key order (Redis lists
/// subcommands in its hash order), and, in a `subcommands` map, only
/// those shardis has (`keep`).
fn sorted_docs(v: &Value, keep: &dyn Fn(&str) -> bool) -> Value {
    match v {
        Value::Map(kv) => {
            let mut kv: Vec<(Value, Value)> = kv
                .iter()
                .map(|(k, v)| {
                    let v = if text(k) == "subcommands" {
                        match v {
                            Value::Map(subs) => {
                                let mut subs: Vec<(Value, Value)> = subs
                                    .iter()
                                    .filter(|(n, _)| keep(&text(n)))
                                    .map(|(n, d)| (n.clone(), sorted_docs(d, keep)))
                                    .collect();
                                subs.sort_by_key(|(n, _)| text(n));
                                Value::Map(subs)
                            }
                            other => sorted_docs(other, keep),
                        }
                    } else {
                        sorted_docs(v, keep)
                    };
                    (k.clone(), v)
                })
                .collect();
            kv.sort_by_key(|(k, _)| text(k));
            Value::Map(kv)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| sorted_docs(x, keep)).collect()),
        Value::Set(items) => Value::Set(items.iter().map(|x| sorted_docs(x, keep)).collect()),
        other => other.clone(),
    }
}

/// COMMAND DOCS of every command Redis 7.0 has equals redis-server's
/// (argument specs, history, flags: what redis-cli's hints are built
/// from), RESP2 and RESP3; every name in COMMAND LIST has docs.
#[test]
fn command_docs_equal_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    for resp3 in [false, true] {
        let (mut r, mut s) = (redis.conn(), shardis.conn());
        if resp3 {
            for c in [&mut r, &mut s] {
                assert!(!c.cmd(&["HELLO", "3"]).is_error());
            }
        }
        let all = names(&s.cmd(&["COMMAND", "LIST"]));
        let ours = |n: &str| all.iter().any(|x| x == n);
        let mut compared = 0;
        // RESP2 flattens maps, so only commands without subcommands (whose
        // order is Redis's hash order) compare there as they are.
        let sample = ["get", "set", "zadd", "xadd", "georadius", "sort", "lpos", "bitfield", "migrate", "zrangestore"];
        for name in top_level(&mut s).into_iter().filter(|n| !NEWER_THAN_7_0.contains(&n.as_str())) {
            if !resp3 {
                if sample.contains(&name.as_str()) {
                    assert_eq!(s.cmd(&["COMMAND", "DOCS", &name]), r.cmd(&["COMMAND", "DOCS", &name]), "{name}");
                    compared += 1;
                }
                continue;
            }
            let want = sorted_docs(&r.cmd(&["COMMAND", "DOCS", &name]), &ours);
            let got = sorted_docs(&s.cmd(&["COMMAND", "DOCS", &name]), &|n| !NEWER_THAN_7_0.contains(&n));
            if r.cmd(&["COMMAND", "INFO", &name]).as_items().is_some_and(|i| i.first().is_some_and(|x| x.is_nil())) {
                continue; // shardis's own command
            }
            assert_eq!(got, want, "COMMAND DOCS {name} (resp3 {resp3})");
            compared += 1;
        }
        assert!(compared >= if resp3 { 200 } else { 10 }, "{compared} commands compared");
        // Every name, subcommands too, has docs with a summary.
        for name in &all {
            let v = s.cmd(&["COMMAND", "DOCS", name]);
            let doc = match &v {
                Value::Map(kv) if kv.len() == 1 => kv[0].1.clone(),
                Value::Array(a) if a.len() == 2 => a[1].clone(),
                other => panic!("COMMAND DOCS {name}: {other}"),
            };
            let has_summary = match &doc {
                Value::Map(kv) => kv.iter().any(|(k, _)| text(k) == "summary"),
                Value::Array(a) => a.iter().any(|k| text(k) == "summary"),
                _ => false,
            };
            assert!(has_summary, "COMMAND DOCS {name}: {doc}");
        }
        assert_eq!(
            s.cmd(&["COMMAND", "DOCS"]).as_items().map(|x| x.len()).unwrap_or_else(|| {
                match s.cmd(&["COMMAND", "DOCS"]) {
                    Value::Map(kv) => kv.len() * 2,
                    _ => 0,
                }
            }),
            top_level(&mut s).len() * 2
        );
    }
}

/// Requests whose keys COMMAND GETKEYS[ANDFLAGS] must find as Redis does,
/// including the malformed ones and the errors.
const GETKEYS: &[&str] = &[
    "GET k",
    "SET k v GET",
    "MSET a 1 b 2",
    "MGET a b c",
    "BITOP AND d a b",
    "RENAME a b",
    "COPY a b DB 1",
    "LMOVE a b LEFT RIGHT",
    "BLPOP a b 0",
    "BLMPOP 0 2 a b LEFT",
    "LMPOP 2 a b LEFT",
    "LMPOP 5 a b LEFT",
    "ZUNIONSTORE d 2 a b WEIGHTS 1 2",
    "ZUNIONSTORE d 5 a",
    "ZINTERCARD 2 a b",
    "SINTERCARD 1 a LIMIT 2",
    "XREAD COUNT 2 STREAMS a b 0 0",
    "XREADGROUP GROUP g c STREAMS a >",
    "XREAD STREAMS a",
    "SORT k BY w STORE d",
    "SORT_RO k",
    "GEORADIUS k 1 2 3 m STORE d",
    "GEORADIUSBYMEMBER k m 3 m STOREDIST d",
    "GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m",
    "OBJECT ENCODING k",
    "MEMORY USAGE k",
    "XGROUP CREATE s g $",
    "XINFO STREAM s",
    "PFCOUNT a b",
    "PFMERGE d a b",
    "WATCH a b",
    "ECHO a",
    "CONFIG GET x",
    "OBJECT NOSUCH k",
    "NOSUCH a",
    "GET",
    // `""`: an empty argument.
    "MIGRATE h 1 k 0 5",
    "MIGRATE h 1 \"\" 0 5 KEYS a b",
    "MIGRATE h 1 \"\" 0 5 COPY AUTH KEYS KEYS a",
    "MIGRATE h 1 \"\" 0 5 AUTH2 u KEYS KEYS a",
    "MIGRATE h 1 k 0 5 KEYS a b",
    "EVAL s 2 a b x",
    "FCALL_RO f 1 a",
    "BZMPOP 1 2 a b MAX",
    "SPUBLISH ch m",
    "SSUBSCRIBE ch",
];

#[test]
fn getkeys_finds_what_redis_finds() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
        for line in GETKEYS {
            let mut req = vec!["COMMAND", sub];
            req.extend(line.split(' ').map(|w| if w == "\"\"" { "" } else { w }));
            assert_eq!(s.cmd(&req), r.cmd(&req), "COMMAND {sub} {line}");
        }
    }
}

#[test]
fn subcommand_errors_are_redis_errors() {
    let redis = Server::start_redis();
    let shardis = Server::start(2, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    let all = names(&s.cmd(&["COMMAND", "LIST"]));
    let long = "x".repeat(200);
    let mut requests: Vec<Vec<String>> = Vec::new();
    for name in all.iter().filter(|n| !NEWER_THAN_7_0.contains(&n.as_str())) {
        let Some((container, sub)) = name.split_once('|') else { continue };
        for probe in ["nosuch", long.as_str()] {
            requests.push(vec![container.to_uppercase(), probe.into()]);
        }
        let mut arity = |name: &str| {
            let info = s.cmd(&["COMMAND", "INFO", name]);
            items(&info)[0].as_items().expect("entry")[1].as_int().expect("arity")
        };
        // COMMAND alone lists every command; the others need a subcommand.
        if arity(container) == -2 {
            requests.push(vec![container.to_uppercase()]);
        }
        // One argument too many for a fixed arity, one too few for a minimum.
        let arity = arity(name);
        let argc = if arity > 0 { arity + 1 } else { -arity - 1 };
        if argc >= 2 {
            let mut req = vec![container.to_uppercase(), sub.to_uppercase()];
            req.extend((2..argc).map(|i| format!("a{i}")));
            requests.push(req);
        }
    }
    requests.sort();
    requests.dedup();
    for req in &requests {
        assert_eq!(s.cmd(req), r.cmd(req), "{req:?}");
    }
    // Queued in MULTI, the same requests are refused and EXEC aborts.
    for req in requests.iter().take(12) {
        for c in [&mut r, &mut s] {
            assert_eq!(c.cmd(&["MULTI"]), Value::ok());
        }
        assert_eq!(s.cmd(req), r.cmd(req), "queued {req:?}");
        assert_eq!(s.cmd(&["EXEC"]), r.cmd(&["EXEC"]), "EXEC after {req:?}");
    }
}

#[test]
fn command_list_filters_by_every_acl_category() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    let ours = names(&s.cmd(&["COMMAND", "LIST"]));
    for cat in [
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
        "ADMIN",
        "@admin",
        "nosuch",
    ] {
        let req = ["COMMAND", "LIST", "FILTERBY", "ACLCAT", cat];
        let mut got = names(&s.cmd(&req));
        let mut want: Vec<String> = names(&r.cmd(&req))
            .into_iter()
            .filter(|n| ours.contains(n) && !NEWER_THAN_7_0.contains(&n.as_str()))
            .collect();
        got.retain(|n| !NEWER_THAN_7_0.contains(&n.as_str()));
        got.sort();
        want.sort();
        assert_eq!(got, want, "ACLCAT {cat}");
    }
    let mut got = names(&s.cmd(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "config*"]));
    let mut want = names(&r.cmd(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "config*"]));
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// The same requests on one connection to each server; every reply must
/// match.
fn same_replies(r: &mut RespConn, s: &mut RespConn, script: &[&str]) {
    for line in script {
        assert_eq!(s.cmd_str(line), r.cmd_str(line), "{line}");
    }
}

#[test]
fn multi_runs_watch_reset_and_quit_at_once() {
    let redis = Server::start_redis();
    let shardis = Server::start(2, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    // WATCH inside MULTI is refused without aborting the transaction.
    same_replies(&mut r, &mut s, &["MULTI", "WATCH k", "SET k v", "EXEC", "GET k"]);
    // RESET is not queued: it ends the transaction there and then.
    same_replies(&mut r, &mut s, &["MULTI", "SET k w", "RESET", "EXEC", "GET k"]);
    // Nor is QUIT: OK, and the connection closes.
    for c in [&mut r, &mut s] {
        assert_eq!(c.cmd(&["MULTI"]), Value::ok());
        assert_eq!(c.cmd(&["QUIT"]), Value::ok());
        let (rest, closed) = c.read_until_idle(std::time::Duration::from_secs(2));
        assert!(rest.is_empty() && closed, "{:?}", String::from_utf8_lossy(&rest));
    }
}

#[test]
fn exec_is_not_in_the_slowlog_its_commands_are() {
    let redis = Server::start_redis();
    let shardis = Server::start(1, &[]);
    for srv in [&redis, &shardis] {
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Value::ok());
        assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Value::ok());
        for line in ["MULTI", "SET k v", "GET k", "EXEC", "AUTH nosuch", "PING"] {
            c.cmd_str(line);
        }
        let log = c.cmd(&["SLOWLOG", "GET", "-1"]);
        let mut logged: Vec<String> = log
            .as_items()
            .expect("entries")
            .iter()
            .map(|e| text(&e.as_items().expect("entry")[3].as_items().expect("args")[0]).to_ascii_lowercase())
            .collect();
        logged.reverse();
        // Redis logs AUTH with its password redacted; shardis keeps it out.
        logged.retain(|n| n != "auth");
        assert_eq!(logged, ["slowlog", "multi", "set", "get", "ping"], "{:?}", srv.kind);
    }
}

#[test]
fn server_commands_answer_as_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(2, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    same_replies(
        &mut r,
        &mut s,
        &[
            // An odd name/value list is a syntax error, not an arity one.
            "CONFIG SET maxmemory-policy",
            "CONFIG SET maxmemory-policy noeviction maxmemory",
            "CLIENT SETNAME",
            "PING a b",
            "SELECT 99",
            "OBJECT ENCODING",
            "MEMORY USAGE",
        ],
    );
    // HELP of every container is an array of lines.
    for c in ["CONFIG", "CLIENT", "COMMAND", "SLOWLOG", "LATENCY", "PUBSUB", "OBJECT", "MEMORY", "XGROUP", "XINFO"] {
        let help = s.cmd(&[c, "HELP"]);
        let lines = help.as_items().unwrap_or_else(|| panic!("{c} HELP: {help}"));
        assert!(lines.len() > 2 && lines.iter().all(|l| matches!(l, Value::Simple(_))), "{c} HELP: {help}");
    }
}

#[test]
fn commandstats_name_subcommands() {
    let redis = Server::start_redis();
    let shardis = Server::start(2, &[]);
    for srv in [&redis, &shardis] {
        let mut c = srv.conn();
        assert!(!c.cmd(&["CONFIG", "GET", "maxmemory"]).is_error());
        assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
        assert!(!c.cmd(&["OBJECT", "ENCODING", "k"]).is_error());
        let info = text(&c.cmd(&["INFO", "commandstats"]));
        for stat in ["cmdstat_config|get:calls=1,", "cmdstat_object|encoding:calls=1,"] {
            assert!(info.contains(stat), "{stat} in {info}");
        }
        // LATENCY HISTOGRAM of a container reports its subcommands.
        let h = c.cmd(&["LATENCY", "HISTOGRAM", "config"]);
        let names: Vec<String> = h.as_items().expect("map").iter().step_by(2).map(text).collect();
        assert_eq!(names, ["config|get"]);
    }
}

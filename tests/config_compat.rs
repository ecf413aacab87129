//! CONFIG GET/SET side by side with redis-server 7.0: the pre-7.0 names
//! (`*-ziplist-*`), Redis's value forms (memory units, yes/no, enums,
//! negative list sizes), several pairs in one CONFIG SET (all or none,
//! duplicates refused), several patterns in one CONFIG GET, and Redis's
//! error texts. A 4-shard shardis-server and a redis-server get the same
//! requests in the same order; every reply must be equal.

mod common;

use common::{Server, Value};

/// Each case is the arguments after `CONFIG SET`, applied in this order.
const SETS: &[&[&str]] = &[
    &["hash-max-ziplist-value", "1k"],
    &["hash-max-ziplist-entries", "256"],
    &["zset-max-ziplist-value", "2kb"],
    &["zset-max-ziplist-entries", "64"],
    &["zset-max-ziplist-entries", "1kb"],
    &["hash-max-listpack-entries", "-1"],
    &["list-max-ziplist-size", "-3"],
    &["list-max-listpack-size", "-6"],
    &["set-max-intset-entries", "1024"],
    &["maxmemory", "64mb"],
    &["maxmemory", "1G"],
    &["maxmemory", "3Kb"],
    &["maxmemory", "-1"],
    &["maxmemory", "12abc"],
    &["maxmemory", ""],
    &["proto-max-bulk-len", "1k"],
    &["proto-max-bulk-len", "512mb"],
    &["client-query-buffer-limit", "1gb"],
    &["auto-aof-rewrite-min-size", "32mb"],
    &["protected-mode", "YES"],
    &["protected-mode", "true"],
    &["protected-mode", "1"],
    &["appendfsync", "ALWAYS"],
    &["appendfsync", "sometimes"],
    &["appendfsync", "everysec"],
    &["maxmemory-policy", "ALLKEYS-LRU"],
    &["maxmemory-policy", "bogus"],
    &["maxmemory-policy", "noeviction"],
    &["hz", "0"],
    &["hz", "1000"],
    &["hz", "x"],
    &["hz", "10"],
    &["timeout", "-1"],
    &["timeout", "300"],
    &["maxclients", "0"],
    &["maxmemory-samples", "0"],
    &["slowlog-log-slower-than", "-5"],
    &["slowlog-log-slower-than", "-1"],
    &["slowlog-max-len", "1k"],
    &["save", "900 1"],
    &["save", ""],
    // Several pairs: all or none.
    &["maxmemory", "1k", "maxmemory", "2k"],
    &["hash-max-ziplist-value", "3k", "hash-max-listpack-value", "4k"],
    &["maxmemory", "1mb", "hz", "x"],
    &["maxmemory", "2mb", "timeout", "7", "slowlog-max-len", "64"],
    &["nosuch", "1"],
    &["maxmemory", "1mb", "nosuch", "1"],
    &["maxmemory", "1", "hz"],
];

/// Each case is the arguments after `CONFIG GET`.
const GETS: &[&[&str]] = &[
    &["*ziplist*"],
    &["hash-max-*", "zset-max-*"],
    &["list-max-*"],
    &["maxmemory", "hz"],
    &["maxmemory-p*", "maxmemory-sa?ples"],
    &["set-max-intset-entries", "save", "timeout"],
    &["no-such-option"],
    &["MAXMEMORY"],
];

/// Replies as text, maps and arrays of pairs sorted (CONFIG GET's order
/// is the server's table order, which clients do not rely on).
fn normalize(v: Value) -> String {
    match v {
        Value::Map(pairs) => {
            let mut items: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
            items.sort();
            items.join("\n")
        }
        Value::Array(items) => {
            let mut pairs: Vec<String> = items.chunks(2).map(|c| format!("{c:?}")).collect();
            pairs.sort();
            pairs.join("\n")
        }
        other => format!("{other}"),
    }
}

#[test]
fn config_set_and_get_match_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(4, &["--appendonly", "no"]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    let mut diffs = Vec::new();
    let mut check = |what: String, r: Value, s: Value| {
        let (r, s) = (normalize(r), normalize(s));
        if r != s {
            diffs.push(format!("{what}\n  redis:   {r}\n  shardis: {s}"));
        }
    };
    for case in SETS {
        let cmd: Vec<&str> = ["CONFIG", "SET"].iter().chain(case.iter()).copied().collect();
        check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
        // What each named option reads back now.
        for name in case.iter().step_by(2) {
            let get = ["CONFIG", "GET", name];
            check(get.join(" "), r.cmd(&get), s.cmd(&get));
        }
    }
    for case in GETS {
        let cmd: Vec<&str> = ["CONFIG", "GET"].iter().chain(case.iter()).copied().collect();
        check(cmd.join(" "), r.cmd(&cmd), s.cmd(&cmd));
    }
    for cmd in [&["CONFIG", "SET", "maxmemory"][..], &["CONFIG", "GET"]] {
        check(cmd.join(" "), r.cmd(cmd), s.cmd(cmd));
    }
    assert!(diffs.is_empty(), "{} replies differ from redis-server's:\n{}", diffs.len(), diffs.join("\n"));
}

/// The pre-7.0 names in the config file, with Redis's value forms.
#[test]
fn config_file_takes_old_names_and_units() {
    let file = common::server::config_file(
        "compat",
        "[encoding]\nhash-max-ziplist-value = \"2kb\"\nlist-max-ziplist-size = -4\n",
    );
    let srv = Server::start(2, &["--config", file.to_str().expect("utf-8 path"), "--maxmemory", "3mb"]);
    let mut c = srv.conn();
    let get = |c: &mut common::RespConn, name: &str| match c.cmd(&["CONFIG", "GET", name]) {
        Value::Array(v) => match v.get(1) {
            Some(Value::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("CONFIG GET {name}: {other:?}"),
        },
        other => panic!("CONFIG GET {name}: {other}"),
    };
    assert_eq!(get(&mut c, "hash-max-listpack-value"), "2048");
    assert_eq!(get(&mut c, "hash-max-ziplist-value"), "2048");
    assert_eq!(get(&mut c, "list-max-listpack-size"), "-4");
    assert_eq!(get(&mut c, "maxmemory"), "3145728");
}

/// redis-server's command-line form: any option as `--name value` (or
/// `--name=value`), also those without a flag of their own; an unknown
/// one stops start-up with its name.
#[test]
fn any_option_is_taken_as_a_command_line_flag() {
    let s =
        Server::start(2, &["--hash-max-ziplist-entries", "64", "--list-max-ziplist-size=-3", "--slave-priority", "7"]);
    let mut c = s.conn();
    let get = |c: &mut common::RespConn, name: &str| {
        let v = c.cmd(&["CONFIG", "GET", name]);
        let items = v.as_items().expect("array").to_vec();
        String::from_utf8_lossy(items[1].as_bytes().expect("value")).into_owned()
    };
    assert_eq!(get(&mut c, "hash-max-listpack-entries"), "64");
    assert_eq!(get(&mut c, "list-max-listpack-size"), "-3");
    assert_eq!(get(&mut c, "replica-priority"), "7");
    let out = std::process::Command::new(common::server::shardis_bin())
        .args(["--port", "1", "--no-such-option", "1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --no-such-option"));
}

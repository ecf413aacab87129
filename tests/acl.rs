//! ACL users against live servers: SETUSER/GETUSER/LIST/DRYRUN/CAT and
//! refused commands side by side with redis-server 7 (replies equal, with
//! Redis's hash-table order of single commands and of CAT's lists set
//! aside); key and channel permissions on 4 shards, on every road (local,
//! forwarded, squashed, cross-shard) and inside MULTI; MULTI/EXEC refusals,
//! scripts' `redis.call` and ACL LOG (with `acllog-max-len`) against
//! redis-server on 1 and 4 shards; revocation while a client is connected
//! on another shard; INFO counters; and hostile rule strings.

mod common;

use common::shards::{conn_on_shard, key_on_shard};
use common::{RespConn, Server, Value};
use std::time::Duration;

const SHARDS: usize = 4;

/// How two replies are compared.
#[derive(Clone, Copy)]
enum Cmp {
    Exact,
    /// Every string's space-separated words as a set (Redis lists single
    /// command rules in its hash table's order).
    Words,
    /// An array's items as a multiset (ACL CAT <category>).
    Sorted,
}

fn words(v: &Value) -> Value {
    match v {
        Value::Bulk(b) => {
            let mut w: Vec<&[u8]> = b.split(|&c| c == b' ').collect();
            w.sort();
            Value::Bulk(w.join(&b' '))
        }
        Value::Array(items) => Value::Array(items.iter().map(words).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (words(k), words(v))).collect()),
        other => other.clone(),
    }
}

fn normal(v: &Value, how: Cmp) -> Value {
    match how {
        Cmp::Exact => v.clone(),
        Cmp::Words => words(v),
        Cmp::Sorted => match v.as_items() {
            Some(items) => {
                let mut items = items.to_vec();
                items.sort();
                Value::Array(items)
            }
            None => v.clone(),
        },
    }
}

/// Send `script` to both and compare each reply.
fn same(r: &mut RespConn, s: &mut RespConn, script: &[(Cmp, &[&str])]) {
    for (how, cmd) in script {
        let (a, b) = (r.cmd(cmd), s.cmd(cmd));
        assert_eq!(normal(&b, *how), normal(&a, *how), "{cmd:?}: shardis (left) vs redis (right)");
    }
}

const E: Cmp = Cmp::Exact;
const W: Cmp = Cmp::Words;

#[test]
fn setuser_getuser_list_dryrun_cat_match_redis() {
    let redis = Server::start_redis();
    let shardis = Server::start(SHARDS, &[]);
    let (mut r, mut s) = (redis.conn(), shardis.conn());
    let hash = "a".repeat(64);
    let script: &[(Cmp, &[&str])] = &[
        (E, &["ACL", "LIST"]),
        (E, &["ACL", "USERS"]),
        (E, &["ACL", "WHOAMI"]),
        (E, &["ACL", "SETUSER", "alice"]),
        (E, &["ACL", "GETUSER", "alice"]),
        (E, &["ACL", "GETUSER", "nobody"]),
        (
            W,
            &[
                "ACL",
                "SETUSER",
                "alice",
                "on",
                ">pw",
                "~foo*",
                "%R~bar*",
                "%W~w*",
                "&ch*",
                "+get",
                "+set",
                "+config|get",
            ],
        ),
        (W, &["ACL", "GETUSER", "alice"]),
        (W, &["ACL", "LIST"]),
        (E, &["ACL", "SETUSER", "bob", "on", "nopass", "allkeys", "allchannels", "+@all", "-@dangerous"]),
        (E, &["ACL", "GETUSER", "bob"]),
        (E, &["ACL", "SETUSER", "carol", "reset", "+@read", "~*", "resetchannels"]),
        (E, &["ACL", "GETUSER", "carol"]),
        (E, &["ACL", "SETUSER", "carol", "+@all", "-get", "#aaaa"]),
        (E, &["ACL", "SETUSER", "carol", &format!("#{hash}"), "-get"]),
        (E, &["ACL", "GETUSER", "carol"]),
        (E, &["ACL", "SETUSER", "carol", &format!("!{hash}"), "nocommands", "+select|0", "+select|2"]),
        (E, &["ACL", "GETUSER", "carol"]),
        (E, &["ACL", "SETUSER", "dave", "(+get", "~x)", "(+set ~y*)", "on"]),
        (E, &["ACL", "GETUSER", "dave"]),
        (E, &["ACL", "SETUSER", "dave", "clearselectors"]),
        (E, &["ACL", "GETUSER", "dave"]),
        (E, &["ACL", "USERS"]),
        (E, &["ACL", "GETUSER", "default"]),
        (E, &["ACL", "SETUSER", "erin", "on", "nopass", "+@all", "-@write", "+set", "%RW~x", "%R~x", "%R~y", "%W~y"]),
        (E, &["ACL", "GETUSER", "erin"]),
        (E, &["ACL", "SETUSER", "erin", "resetkeys", "~a", "~a", "%W~a", "&c", "&c", "-@all", "+@hash", "-hset"]),
        (E, &["ACL", "GETUSER", "erin"]),
        (E, &["ACL", "SETUSER", "erin", "nocommands", "+@string", "-@write", "+@list", "-@read"]),
        (W, &["ACL", "GETUSER", "erin"]),
        (E, &["ACL", "SETUSER", "erin", "allcommands", "-@keyspace", "-client", "+client|id", "skip-sanitize-payload"]),
        (W, &["ACL", "GETUSER", "erin"]),
        (E, &["ACL", "DRYRUN", "erin", "client", "id"]),
        (E, &["ACL", "DRYRUN", "erin", "client", "kill", "x"]),
        (E, &["ACL", "DRYRUN", "erin", "del", "x"]),
        (E, &["ACL", "SETUSER", "erin", "reset"]),
        (E, &["ACL", "GETUSER", "erin"]),
        (E, &["ACL", "DELUSER", "erin"]),
        // Refused rules: nothing changes.
        (E, &["ACL", "SETUSER", "alice", "+get", "bogus"]),
        (E, &["ACL", "SETUSER", "alice", "+nosuch"]),
        (E, &["ACL", "SETUSER", "alice", "+@nosuch"]),
        (E, &["ACL", "SETUSER", "alice", "<nope"]),
        (E, &["ACL", "SETUSER", "alice", "~*", "~x"]),
        (E, &["ACL", "SETUSER", "alice", "allchannels", "&x"]),
        (E, &["ACL", "SETUSER", "alice", "+config|get|x"]),
        (E, &["ACL", "SETUSER", "alice", "-config|nosuch"]),
        (E, &["ACL", "SETUSER", "a b"]),
        (E, &["ACL", "SETUSER", "alice", "(+get ~x"]),
        (E, &["ACL", "SETUSER", "alice", "(+get", "~x"]),
        (W, &["ACL", "GETUSER", "alice"]),
        // DRYRUN.
        (E, &["ACL", "DRYRUN", "alice", "get", "foo1"]),
        (E, &["ACL", "DRYRUN", "alice", "get", "zzz"]),
        (E, &["ACL", "DRYRUN", "alice", "set", "bar1", "x"]),
        (E, &["ACL", "DRYRUN", "alice", "set", "w1", "x"]),
        (E, &["ACL", "DRYRUN", "alice", "get", "w1"]),
        (E, &["ACL", "DRYRUN", "alice", "del", "foo"]),
        (E, &["ACL", "DRYRUN", "alice", "config", "set", "a", "b"]),
        (E, &["ACL", "DRYRUN", "alice", "config", "get", "a"]),
        (E, &["ACL", "DRYRUN", "alice", "nosuch"]),
        (E, &["ACL", "DRYRUN", "nobody", "get", "x"]),
        (E, &["ACL", "DRYRUN", "alice", "get"]),
        (E, &["ACL", "DRYRUN", "bob", "flushall"]),
        (E, &["ACL", "DRYRUN", "bob", "get", "x"]),
        (E, &["ACL", "DRYRUN", "carol", "select", "2"]),
        (E, &["ACL", "DRYRUN", "carol", "select", "1"]),
        (E, &["ACL", "DRYRUN", "dave", "get", "x"]),
        // CAT.
        (E, &["ACL", "CAT"]),
        (Cmp::Sorted, &["ACL", "CAT", "transaction"]),
        (Cmp::Sorted, &["ACL", "CAT", "bitmap"]),
        (E, &["ACL", "CAT", "nosuch"]),
        (E, &["ACL", "CAT", "a", "b"]),
        // DELUSER, GENPASS, LOG and the rest.
        (E, &["ACL", "DELUSER", "default"]),
        (E, &["ACL", "DELUSER", "nobody", "dave"]),
        (E, &["ACL", "USERS"]),
        (E, &["ACL", "GENPASS", "0"]),
        (E, &["ACL", "GENPASS", "4097"]),
        (E, &["ACL", "GENPASS", "x"]),
        (E, &["ACL", "LOG", "x"]),
        (E, &["ACL", "LOG", "RESET"]),
        (E, &["ACL", "LOG"]),
        (E, &["ACL", "SAVE"]),
        (E, &["ACL", "LOAD"]),
        (E, &["ACL", "HELP"]),
        (E, &["ACL", "NOSUCH"]),
        (E, &["ACL"]),
    ];
    same(&mut r, &mut s, script);
    for c in [&mut r, &mut s] {
        let p = c.cmd(&["ACL", "GENPASS"]);
        assert_eq!(p.as_bytes().map(|b| b.len()), Some(64), "{p}");
        assert_eq!(c.cmd(&["ACL", "GENPASS", "5"]).as_bytes().map(|b| b.len()), Some(2));
    }
}

#[test]
fn refused_commands_answer_redis_errors() {
    let redis = Server::start_redis();
    let shardis = Server::start(SHARDS, &[]);
    let setup: &[&str] = &[
        "ACL",
        "SETUSER",
        "alice",
        "on",
        ">pw",
        "~foo*",
        "&ch*",
        "+get",
        "+set",
        "+publish",
        "+subscribe",
        "+multi",
        "+exec",
    ];
    for srv in [&redis, &shardis] {
        assert_eq!(srv.conn().cmd(setup), Value::ok());
    }
    let (mut r, mut s) = (redis.raw_conn(), shardis.raw_conn());
    let script: &[(Cmp, &[&str])] = &[
        (E, &["AUTH", "alice", "wrong"]),
        (E, &["AUTH", "nobody", "pw"]),
        (E, &["AUTH", "alice", "pw"]),
        (E, &["ACL", "WHOAMI"]),
        (E, &["GET", "foo1"]),
        (E, &["GET", "zzz"]),
        (E, &["DEL", "foo1"]),
        (E, &["CONFIG", "GET", "x"]),
        (E, &["PUBLISH", "ch1", "m"]),
        (E, &["PUBLISH", "other", "m"]),
        (E, &["MULTI"]),
        (E, &["GET", "foo1"]),
        (E, &["GET", "zzz"]),
        (E, &["DEL", "foo1"]),
        (E, &["EXEC"]),
        (E, &["HELLO", "2", "AUTH", "alice", "nope"]),
        (E, &["AUTH", "default", "x"]),
    ];
    same(&mut r, &mut s, script);
}

/// A user allowed `~a*` keys and `&news*` channels, on a 4-shard server.
fn restricted(server: &Server) {
    let mut admin = server.conn();
    let rules = ["on", ">pw", "~a*", "%R~r*", "&news*", "+@all", "-flushall", "-acl"];
    let mut cmd = vec!["ACL", "SETUSER", "alice"];
    cmd.extend(rules);
    assert_eq!(admin.cmd(&cmd), Value::ok());
}

fn login(server: &Server, shard: usize) -> RespConn {
    let mut c = conn_on_shard(server, shard);
    assert_eq!(c.cmd(&["AUTH", "alice", "pw"]), Value::ok());
    c
}

fn noperm_key() -> Value {
    Value::err("NOPERM this user has no permissions to access one of the keys used as arguments")
}

#[test]
fn key_permissions_hold_on_every_road_of_four_shards() {
    let server = Server::start(SHARDS, &[]);
    restricted(&server);
    let mut c = login(&server, 0);
    for shard in 0..SHARDS {
        let (ok, ro, no) =
            (key_on_shard("a", shard, SHARDS), key_on_shard("r", shard, SHARDS), key_on_shard("z", shard, SHARDS));
        assert_eq!(c.cmd(&["SET", &ok, "v"]), Value::ok(), "shard {shard}");
        assert_eq!(c.cmd(&["GET", &ok]), Value::bulk("v"));
        assert_eq!(c.cmd(&["GET", &ro]), Value::NilBulk, "read allowed on r*");
        assert_eq!(c.cmd(&["SET", &ro, "v"]), noperm_key(), "shard {shard}: r* is read-only");
        assert_eq!(c.cmd(&["GET", &no]), noperm_key(), "shard {shard}");
    }
    // A pipeline squashed over every shard: each refused request gets its
    // error in order, the others run.
    let mut pipe = Vec::new();
    let mut want = Vec::new();
    for shard in 0..SHARDS {
        let (ok, no) = (key_on_shard("a", shard, SHARDS), key_on_shard("z", shard, SHARDS));
        pipe.extend(common::encode_command(&["GET", &ok]));
        want.push(Value::bulk("v"));
        pipe.extend(common::encode_command(&["GET", &no]));
        want.push(noperm_key());
    }
    c.send_raw(&pipe).expect("send");
    for w in want {
        assert_eq!(c.read_value().expect("reply"), w);
    }
    // Cross-shard commands: one key refused refuses the whole command.
    let (a0, a1, z2) = (key_on_shard("a", 0, SHARDS), key_on_shard("a", 1, SHARDS), key_on_shard("z", 2, SHARDS));
    assert_eq!(c.cmd(&["MSET", &a0, "1", &a1, "2"]), Value::ok());
    assert_eq!(c.cmd(&["MSET", &a0, "1", &z2, "2"]), noperm_key());
    assert_eq!(server.conn().cmd(&["EXISTS", &z2]), Value::Int(0), "nothing of it ran");
    assert_eq!(c.cmd(&["FLUSHALL"]), Value::err("NOPERM this user has no permissions to run the 'flushall' command"));
    // Inside MULTI: refused at queue time, and EXEC aborts.
    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
    assert_eq!(c.cmd(&["SET", &a1, "x"]), Value::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["GET", &z2]), noperm_key());
    assert_eq!(c.cmd(&["EXEC"]), Value::err("EXECABORT Transaction discarded because of previous errors."));
    assert_eq!(c.cmd(&["GET", &a1]), Value::bulk("2"), "the aborted MULTI wrote nothing");
    // The log says who was refused what.
    let log = server.conn().cmd(&["ACL", "LOG", "1"]);
    let text = format!("{log}");
    assert!(text.contains("multi") && text.contains(&z2) && text.contains("alice"), "{text}");
    let info = server.conn().cmd(&["INFO", "stats"]);
    let info = String::from_utf8_lossy(info.as_bytes().expect("info")).into_owned();
    assert!(info.contains("acl_access_denied_key:"), "{info}");
    assert!(!info.contains("acl_access_denied_key:0\r"), "{info}");
    assert!(info.contains("acl_access_denied_cmd:1\r"), "{info}");
}

#[test]
fn exec_checks_again_after_rules_change() {
    let server = Server::start(SHARDS, &[]);
    restricted(&server);
    let mut c = login(&server, 1);
    // Keys on the client's own shard (EXEC runs in place), then across
    // shards (EXEC is a cross-shard transaction).
    let (a1, a3) = (key_on_shard("a", 1, SHARDS), key_on_shard("a", 3, SHARDS));
    for cross in [false, true] {
        assert_eq!(c.cmd(&["MULTI"]), Value::ok());
        assert_eq!(c.cmd(&["SET", &a1, "x"]), Value::Simple("QUEUED".into()));
        let second = if cross { &a3 } else { &a1 };
        assert_eq!(c.cmd(&["GET", second]), Value::Simple("QUEUED".into()));
        // Another client, on another shard, takes SET away meanwhile.
        let mut admin = conn_on_shard(&server, 2);
        assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "-set"]), Value::ok());
        let got = c.cmd(&["EXEC"]);
        let items = got.as_items().unwrap_or_else(|| panic!("EXEC: {got}")).to_vec();
        assert_eq!(
            items[0],
            Value::err("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand"),
            "cross={cross}"
        );
        assert!(!items[1].is_error(), "cross={cross}: GET still runs: {}", items[1]);
        assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "+set"]), Value::ok());
    }
}

/// Who sends a step of `exec_script`: the restricted client or an admin.
#[derive(Clone, Copy, PartialEq)]
enum Who {
    Alice,
    Admin,
}

/// Run `steps` on `server` (alice logged in with `~a*`, `&ch*` and every
/// command but FLUSHALL) and return every reply, then ACL LOG's
/// (count, reason, context, object, username) of each entry.
fn exec_script(server: &Server, steps: &[(Who, &[&str])]) -> Vec<Value> {
    run_as_alice(server, &["~a*", "&ch*", "+@all", "-flushall"], steps)
}

/// `exec_script` with alice's `rules` (alice's connection is on shard 0).
fn run_as_alice(server: &Server, rules: &[&str], steps: &[(Who, &[&str])]) -> Vec<Value> {
    let mut admin = server.conn();
    let mut setup = vec!["ACL", "SETUSER", "alice", "reset", "on", ">pw"];
    setup.extend_from_slice(rules);
    assert_eq!(admin.cmd(&setup), Value::ok());
    let mut alice = conn_on_shard(server, 0);
    assert_eq!(alice.cmd(&["AUTH", "alice", "pw"]), Value::ok());
    let mut got: Vec<Value> =
        steps.iter().map(|(who, cmd)| if *who == Who::Alice { alice.cmd(cmd) } else { admin.cmd(cmd) }).collect();
    let log = admin.cmd(&["ACL", "LOG"]);
    for e in log.as_items().unwrap_or_else(|| panic!("ACL LOG: {log}")) {
        let fields = e.as_items().unwrap_or_else(|| panic!("entry: {e}"));
        let pick: Vec<Value> = fields
            .chunks(2)
            .filter(|kv| {
                let k = kv[0].as_bytes().unwrap_or_default();
                [&b"count"[..], b"reason", b"context", b"object", b"username"].contains(&k)
            })
            .map(|kv| kv[1].clone())
            .collect();
        got.push(Value::Array(pick));
    }
    got
}

#[test]
fn exec_refusals_match_redis_on_one_and_four_shards() {
    use Who::{Admin, Alice};
    let mut steps: Vec<(Who, &[&str])> = Vec::new();
    // Refused while queueing: EXEC aborts.
    steps.extend([
        (Alice, &["MULTI"][..]),
        (Alice, &["SET", "a1", "x"]),
        (Alice, &["GET", "zz"]),
        (Alice, &["FLUSHALL"]),
        (Alice, &["EXEC"]),
        (Alice, &["GET", "a1"]),
    ]);
    // Rules changed between MULTI and EXEC: each queued command is checked
    // again (EXEC and DISCARD themselves refused discard the transaction).
    let cases: &[(&[&str], &[&str])] = &[
        (&["-set"], &["+set"]),
        (&["resetkeys", "~b*"], &["resetkeys", "~a*"]),
        (&["-exec"], &["+exec"]),
        (&["-multi"], &["+multi"]),
        (&["-@all"], &["+@all", "-flushall"]),
        (&["resetchannels"], &["&ch*"]),
    ];
    for (revoke, restore) in cases {
        let mut rv = vec!["ACL", "SETUSER", "alice"];
        rv.extend_from_slice(revoke);
        let mut rs = vec!["ACL", "SETUSER", "alice"];
        rs.extend_from_slice(restore);
        let (rv, rs): (&'static [&str], &'static [&str]) = (rv.leak(), rs.leak());
        steps.extend([
            (Alice, &["MULTI"][..]),
            (Alice, &["SET", "a1", "y"]),
            (Alice, &["GET", "a1"]),
            (Alice, &["PING"]),
            (Admin, rv),
            (Alice, &["EXEC"]),
            (Alice, &["EXEC"]),
            (Alice, &["DISCARD"]),
            (Admin, rs),
            (Alice, &["GET", "a1"]),
        ]);
    }
    // The channel a queued PUBLISH names is revoked (PUBLISH is refused
    // before shardis's own limits on it inside MULTI apply).
    steps.extend([
        (Alice, &["MULTI"][..]),
        (Alice, &["PUBLISH", "ch1", "m"]),
        (Admin, &["ACL", "SETUSER", "alice", "resetchannels"]),
        (Alice, &["EXEC"]),
        (Admin, &["ACL", "SETUSER", "alice", "&ch*"]),
    ]);
    // EXEC stopped by WATCH runs nothing, so refuses (and logs) nothing,
    // in place and across shards (alice is on shard 0).
    let a3: &'static str = key_on_shard("a", 3, SHARDS).leak();
    for second in ["a1", a3] {
        steps.extend([
            (Alice, &["WATCH", "a1"][..]),
            (Alice, &["MULTI"]),
            (Alice, &["SET", "a1", "w"]),
            (Alice, vec!["GET", second].leak()),
            (Admin, &["SET", "a1", "other"]),
            (Admin, &["ACL", "SETUSER", "alice", "-set"]),
            (Alice, &["EXEC"]),
            (Admin, &["ACL", "SETUSER", "alice", "+set"]),
        ]);
    }
    // Other refusals of EXEC itself discard the transaction too.
    steps.extend([
        (Alice, &["EXEC", "x"][..]),
        (Alice, &["MULTI"]),
        (Alice, &["SET", "a1", "z"]),
        (Alice, &["EXEC", "x"]),
        (Alice, &["DISCARD"]),
        (Alice, &["GET", "a1"]),
    ]);
    let redis = Server::start_redis();
    let want = exec_script(&redis, &steps);
    for shards in [1, SHARDS] {
        let shardis = Server::start(shards, &[]);
        let got = exec_script(&shardis, &steps);
        assert_eq!(got.len(), want.len(), "{shards} shards: {got:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = steps.get(i).map_or("ACL LOG entry".to_string(), |s| format!("{:?}", s.1));
            assert_eq!(g, w, "{shards} shards, step {i} {what}: shardis (left) vs redis (right)");
        }
    }
}

/// Compare `steps` run as alice (`rules`) on redis-server and on shardis
/// with 1 and 4 shards, ACL LOG included.
fn alice_matches_redis(rules: &[&str], steps: &[(Who, &[&str])]) {
    let redis = Server::start_redis();
    let want = run_as_alice(&redis, rules, steps);
    for shards in [1, SHARDS] {
        let shardis = Server::start(shards, &[]);
        let got = run_as_alice(&shardis, rules, steps);
        assert_eq!(got.len(), want.len(), "{shards} shards: {got:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = steps.get(i).map_or("ACL LOG entry".to_string(), |s| format!("{:?}", s.1));
            assert_eq!(g, w, "{shards} shards, step {i} {what}: shardis (left) vs redis (right)");
        }
    }
}

#[test]
fn script_calls_are_checked_as_redis_checks_them() {
    use Who::Alice;
    // Alice's connection is on shard 0; these keys are on shards 0, 2, 3
    // of four, so scripts run in place, as a transaction on their
    // declared keys' shard, and again over every shard for undeclared ones.
    let (a0, a2) = (key_on_shard("a", 0, SHARDS), key_on_shard("a", 2, SHARDS));
    let (z2, r3) = (key_on_shard("z", 2, SHARDS), key_on_shard("r", 3, SHARDS));
    let (a0, a2, z2, r3) = (a0.as_str(), a2.as_str(), z2.as_str(), r3.as_str());
    let rules = ["~a*", "%R~r*", "&ch*", "+@all", "-flushall", "-del"];
    let get = "return redis.call('GET', ARGV[1])";
    let steps: Vec<(Who, Vec<&str>)> = vec![
        (Alice, vec!["EVAL", get, "0", z2]),
        (Alice, vec!["EVAL", "return redis.pcall('GET', ARGV[1])", "0", z2]),
        (Alice, vec!["EVAL", get, "0", r3]),
        (Alice, vec!["EVAL", "return redis.call('DEL', KEYS[1])", "1", a2]),
        (Alice, vec!["EVAL", "return redis.pcall('DEL', KEYS[1])", "1", a2]),
        (Alice, vec!["EVAL", "return redis.call('SET', ARGV[1], 'x')", "0", r3]),
        (Alice, vec!["EVAL", "redis.call('SET', KEYS[1], 'v') return redis.call('GET', ARGV[1])", "1", a0, r3]),
        (Alice, vec!["EVAL", "redis.call('SET', KEYS[1], 'w') return redis.call('SET', ARGV[1], 'v')", "1", a2, z2]),
        (Alice, vec!["GET", a2]),
        (Alice, vec!["EVAL", "return redis.call('PUBLISH', ARGV[1], 'm')", "0", "zz"]),
        (Alice, vec!["EVAL", "return redis.pcall('PUBLISH', ARGV[1], 'm')", "0", "zz"]),
        (Alice, vec!["EVAL", "return redis.call('FLUSHALL')", "0"]),
        (Alice, vec!["EVAL", "return redis.call('CONFIG', 'GET', 'x')", "0"]),
        (Alice, vec!["EVAL_RO", get, "0", z2]),
        // Inside MULTI: EXEC in place, then across shards.
        (Alice, vec!["MULTI"]),
        (Alice, vec!["EVAL", get, "0", z2]),
        (Alice, vec!["EXEC"]),
        (Alice, vec!["MULTI"]),
        (Alice, vec!["EVAL", get, "0", z2]),
        (Alice, vec!["EVAL", "return redis.call('GET', KEYS[1])", "1", a2]),
        (Alice, vec!["EXEC"]),
        // With a keyspace-wide command, EXEC runs command by command, the
        // script on its key's shard.
        (Alice, vec!["MULTI"]),
        (Alice, vec!["DBSIZE"]),
        (Alice, vec!["EVAL", get, "1", a2, z2]),
        (Alice, vec!["EXEC"]),
    ];
    let steps: Vec<(Who, &[&str])> = steps.iter().map(|(w, v)| (*w, v.as_slice())).collect();
    alice_matches_redis(&rules, &steps);
}

#[test]
fn acllog_max_len_bounds_the_log_as_in_redis() {
    use Who::{Admin, Alice};
    let steps: Vec<(Who, &[&str])> = vec![
        (Admin, &["CONFIG", "GET", "acllog-max-len"]),
        (Admin, &["CONFIG", "SET", "acllog-max-len", "-1"]),
        (Admin, &["CONFIG", "SET", "acllog-max-len", "x"]),
        (Admin, &["CONFIG", "SET", "acllog-max-len", "3"]),
        (Admin, &["CONFIG", "GET", "acllog-max-len"]),
        (Alice, &["GET", "b1"]),
        (Alice, &["GET", "b2"]),
        (Alice, &["GET", "b1"]),
        (Alice, &["GET", "b3"]),
        (Alice, &["SET", "a1", "v"]),
        (Alice, &["GET", "b1"]),
        // Lowered: applies when the next entry is added.
        (Admin, &["CONFIG", "SET", "acllog-max-len", "1"]),
        (Admin, &["ACL", "LOG", "RESET"]),
        (Alice, &["GET", "b7"]),
        (Alice, &["GET", "b8"]),
        (Admin, &["CONFIG", "SET", "acllog-max-len", "0"]),
        (Alice, &["GET", "b9"]),
        (Admin, &["CONFIG", "SET", "acllog-max-len", "128"]),
        (Alice, &["GET", "b9"]),
        (Alice, &["AUTH", "alice", "bad"]),
        (Alice, &["AUTH", "alice", "bad"]),
        (Alice, &["AUTH", "alice", "pw"]),
    ];
    alice_matches_redis(&["~a*", "+get", "+auth"], &steps);
    // The log keeps `acllog-max-len` entries; with Redis 7.2's entry-id and
    // timestamps beside 7.0's fields.
    let cfg = common::server::config_file("acllog", "acllog-max-len = 2\nusers = [\"u on nopass +get\"]\n");
    let server = Server::start(SHARDS, &["--config", &cfg.to_string_lossy()]);
    let mut admin = server.conn();
    assert_eq!(
        admin.cmd(&["CONFIG", "GET", "acllog-max-len"]),
        Value::Array(vec![Value::bulk("acllog-max-len"), Value::bulk("2")])
    );
    let mut u = conn_on_shard(&server, 3);
    assert_eq!(u.cmd(&["AUTH", "u", "x"]), Value::ok());
    for k in ["k1", "k2", "k1", "k3"] {
        assert!(u.cmd(&["GET", k]).is_error());
    }
    let log = admin.cmd(&["ACL", "LOG"]);
    let entries = log.as_items().unwrap_or_else(|| panic!("{log}"));
    assert_eq!(entries.len(), 2, "{log}");
    let field = |e: &Value, name: &str| {
        let f = e.as_items().expect("entry");
        f.chunks(2).find(|kv| kv[0].as_bytes() == Some(name.as_bytes())).map(|kv| kv[1].clone())
    };
    let names: Vec<Value> = entries[0].as_items().expect("entry").iter().step_by(2).cloned().collect();
    let want = [
        "count",
        "reason",
        "context",
        "object",
        "username",
        "age-seconds",
        "client-info",
        "entry-id",
        "timestamp-created",
        "timestamp-last-updated",
    ];
    assert_eq!(names, want.iter().map(Value::bulk).collect::<Vec<_>>());
    assert_eq!(field(&entries[0], "object"), Some(Value::bulk("k3")));
    assert_eq!(field(&entries[1], "object"), Some(Value::bulk("k1")));
    assert_eq!(field(&entries[1], "count"), Some(Value::Int(2)));
    assert_eq!(field(&entries[0], "entry-id"), Some(Value::Int(2)), "k1, k2, k3: the third entry");
    let (created, updated) = (field(&entries[1], "timestamp-created"), field(&entries[1], "timestamp-last-updated"));
    let ms = |v: Option<Value>| v.and_then(|v| v.as_int()).expect("ms");
    assert!(ms(created.clone()) > 1_600_000_000_000 && ms(updated) >= ms(created));
    let info = field(&entries[0], "client-info").and_then(|v| v.as_bytes().map(|b| b.to_vec())).expect("client-info");
    assert!(String::from_utf8_lossy(&info).contains("user=u"));
}

#[test]
fn a_refused_exec_without_auth_or_in_subscribe_mode_discards() {
    let redis = Server::start_redis();
    for server in [Server::start(1, &["--requirepass", "pw"]), Server::start(SHARDS, &[])] {
        let mut c = server.raw_conn();
        let mut r = redis.raw_conn();
        if server.password.is_some() {
            assert_eq!(redis.conn().cmd(&["CONFIG", "SET", "requirepass", "pw"]), Value::ok());
            let mut r = redis.raw_conn();
            same(&mut r, &mut c, &[(E, &["EXEC"]), (E, &["MULTI"])]);
            assert_eq!(r.cmd(&["AUTH", "pw"]), Value::ok());
            assert_eq!(r.cmd(&["CONFIG", "SET", "requirepass", ""]), Value::ok());
            continue;
        }
        let sub = |c: &mut RespConn| {
            c.send_raw(&common::encode_command(&["SUBSCRIBE", "ch"])).expect("send");
            c.read_value().expect("subscribed")
        };
        assert_eq!(sub(&mut c), sub(&mut r));
        same(&mut r, &mut c, &[(E, &["EXEC"]), (E, &["MULTI"])]);
    }
}

/// Read until the server closes the connection (bounded).
fn closed(c: &mut RespConn) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.send_raw(b"PING\r\n");
    for _ in 0..4 {
        match c.read_value() {
            Err(_) => return true,
            Ok(Value::Simple(s)) if s == "PONG" => return false,
            Ok(_) => continue,
        }
    }
    false
}

#[test]
fn revocation_reaches_clients_on_other_shards_at_once() {
    let server = Server::start(SHARDS, &[]);
    restricted(&server);
    let a = key_on_shard("a", 3, SHARDS);
    let mut c = login(&server, 3);
    assert_eq!(c.cmd(&["SET", &a, "v"]), Value::ok());
    let mut admin = conn_on_shard(&server, 0);
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "-get"]), Value::ok());
    assert_eq!(c.cmd(&["GET", &a]), Value::err("NOPERM this user has no permissions to run the 'get' command"));
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "+get", "resetkeys"]), Value::ok());
    assert_eq!(c.cmd(&["GET", &a]), noperm_key());
    // Disabled: its clients go.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "off"]), Value::ok());
    assert!(closed(&mut c), "a disabled user's client is closed");
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "on", "allkeys"]), Value::ok());
    // Deleted: its clients go, on every shard.
    let mut clients: Vec<RespConn> = (0..SHARDS).map(|s| login(&server, s)).collect();
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "alice"]), Value::Int(1));
    for (s, c) in clients.iter_mut().enumerate() {
        assert!(closed(c), "shard {s}: a deleted user's client is closed");
    }
    assert_eq!(admin.cmd(&["PING"]), Value::Simple("PONG".into()), "the default user's client stays");
    // A user deleting itself gets its answer, then is closed.
    restricted(&server);
    let mut admin2 = server.conn();
    assert_eq!(admin2.cmd(&["ACL", "SETUSER", "alice", "+acl"]), Value::ok());
    let mut c = login(&server, 1);
    assert_eq!(c.cmd(&["ACL", "DELUSER", "alice"]), Value::Int(1));
    assert!(closed(&mut c));
}

#[test]
fn channel_permissions_and_revoked_subscribers() {
    let server = Server::start(SHARDS, &[]);
    restricted(&server);
    let mut c = login(&server, 2);
    let noperm = Value::err("NOPERM this user has no permissions to access one of the channels used as arguments");
    assert_eq!(c.cmd(&["PUBLISH", "news.a", "m"]), Value::Int(0));
    assert_eq!(c.cmd(&["PUBLISH", "other", "m"]), noperm);
    assert_eq!(c.cmd(&["SUBSCRIBE", "news.a", "other"]), noperm);
    assert_eq!(c.cmd(&["PSUBSCRIBE", "news.a*"]), noperm, "a pattern must be allowed as it is");
    let mut sub = login(&server, 1);
    let got = sub.cmd(&["PSUBSCRIBE", "news*"]);
    assert_eq!(got.as_items().map(|v| v.len()), Some(3), "{got}");
    let mut admin = conn_on_shard(&server, 0);
    assert_eq!(admin.cmd(&["PUBLISH", "news.x", "hello"]), Value::Int(1));
    let msg = sub.read_value().expect("message");
    assert_eq!(msg.as_items().map(|v| v[3].clone()), Some(Value::bulk("hello")));
    // The pattern is no longer allowed: the subscriber is closed.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "resetchannels", "&other"]), Value::ok());
    sub.set_read_timeout(Some(Duration::from_secs(5)));
    assert!(sub.read_value().is_err(), "a subscriber whose pattern was revoked is closed");
}

#[test]
fn requirepass_is_the_default_users_password() {
    let server = Server::start(1, &["--requirepass", "secret"]);
    let mut c = server.raw_conn();
    assert_eq!(c.cmd(&["GET", "k"]), Value::err("NOAUTH Authentication required."));
    assert_eq!(c.cmd(&["AUTH", "default", "secret"]), Value::ok());
    let list = c.cmd(&["ACL", "LIST"]);
    assert!(
        format!("{list}")
            .contains("user default on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all"),
        "{list}"
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "requirepass", "other"]), Value::ok());
    let mut d = server.raw_conn();
    assert_eq!(d.cmd(&["AUTH", "secret"]), Value::err("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(d.cmd(&["AUTH", "other"]), Value::ok());
    assert!(!d.cmd(&["HELLO", "3", "AUTH", "default", "other"]).is_error());
}

#[test]
fn hostile_rules_get_errors_and_the_server_stays() {
    let server = Server::start(SHARDS, &[]);
    let mut c = server.conn();
    let huge = format!("~{}", "x".repeat(1 << 20));
    assert_eq!(c.cmd(&["ACL", "SETUSER", "h", &huge]), Value::ok());
    let huge_bad = format!("+{}", "y".repeat(1 << 20));
    assert!(c.cmd(&["ACL", "SETUSER", "h", &huge_bad]).is_error());
    let many: Vec<String> = (0..5000).map(|i| format!("~k{i}")).collect();
    let mut cmd: Vec<&str> = vec!["ACL", "SETUSER", "many"];
    cmd.extend(many.iter().map(String::as_str));
    assert_eq!(c.cmd(&cmd), Value::ok());
    for bad in [
        &["(", ")"][..],
        &["((+get))"],
        &["()"],
        &[")"],
        &["(+get", "(~x)"],
        &["(((((((("],
        &["%"],
        &["%~"],
        &["%RWX~a"],
        &["~a b"],
        &["&\0"],
        &["+@"],
        &["+|"],
        &["-|x"],
        &["+get|"],
        &["\u{ff}\u{fe}"],
        &["#"],
        &["!zz"],
        &["<"],
    ] {
        let mut cmd = vec!["ACL", "SETUSER", "g"];
        cmd.extend_from_slice(bad);
        let got = c.cmd(&cmd);
        assert!(got.is_error() || got == Value::ok(), "{bad:?}: {got}");
    }
    assert_eq!(
        c.cmd(&["ACL", "DRYRUN", "many", "GET", "k4999"]),
        Value::bulk("This user has no permissions to run the 'get' command"),
        "many has keys but no commands"
    );
    assert!(c.cmd(&["AUTH", &"u".repeat(100_000), &"p".repeat(100_000)]).is_error());
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    let list = c.cmd(&["ACL", "LIST"]);
    assert_eq!(list.as_items().map(|v| v.len()), Some(4), "default, g, h, many");
}

/// An aclfile path in a fresh directory of its own, holding `text`.
fn acl_path(tag: &str, text: &str) -> String {
    let dir = common::server::config_file(tag, "").parent().expect("dir").to_path_buf();
    let path = dir.join("users.acl");
    std::fs::write(&path, text).expect("write aclfile");
    path.to_string_lossy().into_owned()
}

fn list_words(c: &mut RespConn) -> Value {
    words(&c.cmd(&["ACL", "LIST"]))
}

#[test]
fn aclfile_written_by_redis_loads_and_ours_loads_in_redis() {
    use std::os::unix::fs::PermissionsExt;
    let redis_file = acl_path("acl-redis", "");
    let redis = Server::start_redis_with(&["--aclfile", &redis_file]);
    let mut r = redis.conn();
    for cmd in [
        &["ACL", "SETUSER", "alice", "on", ">pw", "~a*", "%R~r*", "&news*", "+get", "+set", "(+del ~d*)"][..],
        &[
            "ACL",
            "SETUSER",
            "bob",
            "off",
            "#aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "+@all",
            "-@dangerous",
        ],
        &["ACL", "SAVE"],
    ] {
        assert_eq!(r.cmd(cmd), Value::ok(), "{cmd:?}");
    }
    let redis_list = list_words(&mut r);
    let ours = acl_path("acl-ours", &std::fs::read_to_string(&redis_file).expect("redis's file"));
    let shardis = Server::start(SHARDS, &["--aclfile", &ours]);
    let mut s = shardis.conn();
    assert_eq!(list_words(&mut s), redis_list, "redis's users.acl loads as it was");
    let mut alice = login(&shardis, 1);
    let (a, d) = (key_on_shard("a", 2, SHARDS), key_on_shard("d", 3, SHARDS));
    assert_eq!(alice.cmd(&["SET", &a, "1"]), Value::ok());
    assert_eq!(alice.cmd(&["DEL", &d]), Value::Int(0), "the selector allows DEL on d*");
    // The root selector refuses DEL, the other its key: the key is named.
    assert_eq!(alice.cmd(&["DEL", &a]), noperm_key());
    assert_eq!(
        alice.cmd(&["UNLINK", &d]),
        Value::err("NOPERM this user has no permissions to run the 'unlink' command")
    );
    // Our ACL SAVE: mode 0600, and redis-server loads it.
    assert_eq!(s.cmd(&["ACL", "SETUSER", "carol", "on", "nopass", "~c*", "+@read"]), Value::ok());
    assert_eq!(s.cmd(&["ACL", "SAVE"]), Value::ok());
    let mode = std::fs::metadata(&ours).expect("saved").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved = std::fs::read_to_string(&ours).expect("saved");
    let back = acl_path("acl-back", &saved);
    let redis2 = Server::start_redis_with(&["--aclfile", &back]);
    assert_eq!(list_words(&mut redis2.conn()), list_words(&mut s), "redis-server loads our users.acl");
    // ACL LOAD of a file without alice closes alice's clients; a bad file
    // changes nothing.
    std::fs::write(&ours, "user default on nopass ~* &* +@all\nuser bogus +nosuch\n").expect("write");
    let got = s.cmd(&["ACL", "LOAD"]);
    assert!(got.is_error(), "{got}");
    assert_eq!(alice.cmd(&["GET", &a]), Value::bulk("1"), "a refused LOAD changes nothing");
    std::fs::write(&ours, "user default on nopass ~* &* +@all\n").expect("write");
    assert_eq!(s.cmd(&["ACL", "LOAD"]), Value::ok());
    assert!(closed(&mut alice), "alice is gone after LOAD");
    assert_eq!(s.cmd(&["ACL", "USERS"]), Value::Array(vec![Value::bulk("default")]));
}

#[test]
fn users_from_the_toml_config() {
    let cfg = common::server::config_file(
        "acl-users",
        "users = [\"alice on >pw ~a* +get +set\", \"ro on nopass ~* +@read\"]\nrequirepass = \"secret\"\n",
    );
    let server = Server::start(2, &["--config", &cfg.to_string_lossy()]);
    let mut c = server.raw_conn();
    assert_eq!(c.cmd(&["AUTH", "secret"]), Value::ok(), "requirepass is default's password");
    assert_eq!(
        c.cmd(&["ACL", "USERS"]),
        Value::Array(vec![Value::bulk("alice"), Value::bulk("default"), Value::bulk("ro")])
    );
    let mut ro = server.raw_conn();
    assert_eq!(ro.cmd(&["AUTH", "ro", "anything"]), Value::ok());
    assert_eq!(ro.cmd(&["GET", "x"]), Value::NilBulk);
    assert_eq!(ro.cmd(&["SET", "x", "1"]), Value::err("NOPERM this user has no permissions to run the 'set' command"));
    // Repeated failed AUTH: one log entry, counted.
    for _ in 0..3 {
        assert!(ro.cmd(&["AUTH", "alice", "bad"]).is_error());
    }
    let log = c.cmd(&["ACL", "LOG", "1"]);
    let entry = &log.as_items().expect("entries")[0];
    let text = format!("{entry}");
    assert!(text.contains("auth") && text.contains("alice") && text.contains('3'), "{text}");
}

#[test]
fn bad_acl_config_stops_start_up() {
    let path = acl_path("acl-bad", "user alice on +nosuch\n");
    let dir = std::path::Path::new(&path).parent().expect("dir").join("data");
    let mut child = std::process::Command::new(common::server::shardis_bin())
        .args(["--port", &common::free_port().to_string(), "--bind", "127.0.0.1", "--aclfile", &path])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shardis-server");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.expect("shardis-server should have refused to start");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("stderr");
    assert!(err.contains("users.acl:1") && err.contains("+nosuch"), "{err}");
}

#[test]
fn config_rewrite_keeps_acl_users() {
    let cfg = common::server::config_file("acl-rewrite", "requirepass = \"secret\"\n");
    let mut server = Server::start(2, &["--config", &cfg.to_string_lossy()]);
    let admin = |s: &Server| {
        let mut c = s.raw_conn();
        assert_eq!(c.cmd(&["AUTH", "secret"]), Value::ok());
        c
    };
    let mut c = admin(&server);
    assert_eq!(c.cmd(&["ACL", "SETUSER", "alice", "on", ">pw", "~a*", "+get", "(+set ~b*)"]), Value::ok());
    let before = list_words(&mut c);
    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), Value::ok());
    let text = std::fs::read_to_string(&cfg).expect("rewritten config");
    assert!(text.contains("alice on #") && !text.contains("default on"), "{text}");
    drop(c);
    server.restart().expect("restart");
    let mut c = admin(&server);
    assert_eq!(list_words(&mut c), before, "the users survive a restart");
}

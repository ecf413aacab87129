//! FUNCTION and FCALL, and shebang flags on EVAL scripts: replies side by
//! side with redis-server 7.0, libraries surviving restarts, rewrites and
//! re-sharding, reaching replicas, and FCALL across shards atomic.

mod common;

use common::shards::key_on_shard;
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

type Case = &'static [&'static [&'static str]];

const LIB: &str = "#!lua name=mylib\n\
    redis.register_function('f1', function(keys, args) return {keys[1], args[1]} end)\n\
    redis.register_function{function_name='f2', callback=function(k, a) return redis.call('get', k[1]) end, flags={'no-writes'}, description='desc two'}";
const LIB_F1: &str = "#!lua name=other\nredis.register_function('F1', function(keys, args) return 1 end)";
const LIB_X: &str = "#!lua name=x\n\
    redis.register_function('a', function() return redis.register_function('b', function() end) end)\n\
    redis.register_function('c', function(k, a) return {KEYS == nil} end)\n\
    redis.register_function('d', function(k, a) return redis.call('set', k[1], a[1]) end)\n\
    redis.register_function('e', function(k, a) error('oops') end)\n\
    redis.register_function('f', function(k, a) return redis.call('nosuchcmd') end)\n\
    redis.register_function{function_name='g', callback=function(k, a) return redis.call('set', k[1], 1) end, flags={'no-writes'}}\n\
    redis.register_function{function_name='h', callback=function(k, a) return {redis.call('get', k[1]), #k, #a, type(cjson)} end, flags={'no-writes', 'allow-oom'}}\n";
const ONE: &str = "#!lua name=one\nredis.register_function{function_name='only', callback=function() return 1 end, flags={'no-writes', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys', 'allow-oom'}, description='the one'}";

const CASES: &[Case] = &[
    &[&["FUNCTION", "LOAD", LIB], &["FUNCTION", "LOAD", LIB], &["FUNCTION", "LOAD", LIB_F1]],
    &[
        &["FUNCTION", "LOAD", LIB],
        &["SET", "{t}k", "v"],
        &["FCALL", "f1", "1", "{t}k", "a"],
        &["FCALL", "F1", "1", "{t}k", "a"],
    ],
    &[
        &["FUNCTION", "LOAD", LIB],
        &["SET", "{t}k", "v"],
        &["FCALL", "f2", "1", "{t}k"],
        &["FCALL_RO", "f2", "1", "{t}k"],
        &["FCALL_RO", "f1", "0"],
    ],
    &[
        &["FCALL", "nosuch", "0"],
        &["FCALL", "f", "x"],
        &["FCALL", "f", "-1"],
        &["FCALL", "f", "3", "a"],
        &["FCALL", "f"],
    ],
    &[
        &["FUNCTION", "LOAD", LIB_X],
        &["FCALL", "a", "0"],
        &["FCALL", "c", "0"],
        &["FCALL", "d", "1", "{t}k", "v"],
        &["GET", "{t}k"],
    ],
    &[
        &["FUNCTION", "LOAD", LIB_X],
        &["FCALL", "e", "0"],
        &["FCALL", "f", "0"],
        &["FCALL", "g", "1", "{t}k"],
        &["FCALL", "h", "1", "{t}k", "x", "y"],
    ],
    &[&["FUNCTION", "LOAD", LIB_X], &["FCALL_RO", "d", "1", "{t}k", "v"], &["FCALL_RO", "h", "1", "{t}k"]],
    &[
        &["FUNCTION", "LOAD", ONE],
        &["FUNCTION", "LIST"],
        &["FUNCTION", "LIST", "WITHCODE"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "o*"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "x*"],
    ],
    &[
        &["FUNCTION", "LIST", "foo"],
        &["FUNCTION", "LIST", "LIBRARYNAME"],
        &["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
    ],
    &[
        &["FUNCTION", "LOAD", ONE],
        &["FUNCTION", "STATS"],
        &["FUNCTION", "DELETE", "one"],
        &["FUNCTION", "DELETE", "one"],
        &["FUNCTION", "STATS"],
        &["FCALL", "only", "0"],
    ],
    &[
        &["FUNCTION", "LOAD", ONE],
        &["FUNCTION", "FLUSH"],
        &["FUNCTION", "FLUSH", "ASYNC"],
        &["FUNCTION", "FLUSH", "SYNC"],
        &["FUNCTION", "FLUSH", "x"],
        &["FUNCTION", "LIST"],
    ],
    &[
        &["FUNCTION", "LOAD", ONE],
        &["FUNCTION", "LOAD", "REPLACE", ONE],
        &["FUNCTION", "LOAD", "foo", ONE],
        &["FUNCTION", "LOAD", "REPLACE"],
        &["FUNCTION", "LOAD"],
    ],
    &[
        &["FUNCTION", "KILL"],
        &["FUNCTION", "STATS", "x"],
        &["FUNCTION", "DELETE"],
        &["FUNCTION", "RESTORE"],
        &["FUNCTION", "RESTORE", "junk"],
        &["FUNCTION", "RESTORE", "junk", "bad"],
    ],
    // Library headers and registration errors.
    &[
        &["FUNCTION", "LOAD", "return 1"],
        &["FUNCTION", "LOAD", "#!lua"],
        &["FUNCTION", "LOAD", "#!lua\nredis.register_function('a', function() end)"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x foo=bar\n"],
        &["FUNCTION", "LOAD", "#!lua name=\n"],
        &["FUNCTION", "LOAD", "#!lua name=a-b\n"],
        &["FUNCTION", "LOAD", "#!lua name=x name=y\n"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lub name=x\n"],
        &["FUNCTION", "LOAD", "#!LUA  name=x\nredis.register_function('a', function() end)"],
        &["FUNCTION", "LOAD", "#!lua name=y\nreturn 1"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('bad-name', function() end)"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function('f', function() end) redis.register_function('f', function() end)",
        ],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function()"],
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function(1, 2)"],
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function(1)"],
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('a', function() end, 3)"],
    ],
    &[
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function{function_name='a', callback=function() end, flags={'nope'}}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function{function_name='a', callback=function() end, foo=1}",
        ],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function{callback=function() end}"],
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function{function_name='a'}"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function{function_name='a', callback=function() end, flags='no-writes'}",
        ],
    ],
    &[
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function{function_name=1, callback=function() return 7 end, description=2}",
        ],
        &["FCALL", "1", "0"],
        &["FUNCTION", "LIST"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.call('set', 'a', 1)"],
        &["FUNCTION", "LOAD", "#!lua name=x\nreturn x +"],
        &["FUNCTION", "LOAD", "#!lua name=x\nerror('boom')"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('a', function() end)\nlocal y = foo"],
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('a', function() end)\nfoo = 1"],
    ],
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('a', function() end) return math.random()"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function('a', function() end) redis.log(redis.LOG_WARNING, 'hi')",
        ],
    ],
    // Library code that runs too long stops at Redis's 500 ms load
    // timeout (pcall cannot keep it going), and the shard goes on.
    &[
        &["FUNCTION", "LOAD", "#!lua name=x\nwhile true do end"],
        &["FUNCTION", "LOAD", "#!lua name=x\nwhile true do pcall(function() while true do end end) end"],
        &["FUNCTION", "LIST"],
        &["PING"],
    ],
    // EVAL with a shebang.
    &[
        &["EVAL", "#!lua\nreturn 1", "0"],
        &["EVAL_RO", "#!lua\nreturn 1", "0"],
        &["EVAL_RO", "#!lua flags=no-writes\nreturn 2", "0"],
    ],
    &[
        &["EVAL", "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'v')", "1", "{t}k"],
        &["EVAL", "#!lua flags=no-writes,allow-oom\nreturn 2", "0"],
    ],
    &[
        &["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        &["EVAL", "#!lua name=x\nreturn 1", "0"],
        &["EVAL", "#!lub\nreturn 1", "0"],
        &["EVAL", "#!lua flags=\nreturn 3", "0"],
        &["EVAL", "#!lua", "0"],
    ],
    &[
        &["EVAL", "#!lua\nreturn x +", "0"],
        &["EVAL", "#!lua\nerror('e')", "0"],
        &["EVAL_RO", "#!lua\nerror('e')", "0"],
        &["SCRIPT", "LOAD", "#!lua flags=bogus\nreturn 1"],
    ],
];

fn run_case(c: &mut RespConn, case: Case) -> Vec<Value> {
    c.cmd(&["FLUSHALL"]);
    c.cmd(&["FUNCTION", "FLUSH"]);
    case.iter().map(|cmd| c.cmd(cmd)).collect()
}

#[test]
fn function_replies_match_redis() {
    let redis = Server::start_redis();
    let mut r = redis.conn();
    let want: Vec<Vec<Value>> = CASES.iter().map(|case| run_case(&mut r, case)).collect();
    for shards in [1, 4] {
        let srv = Server::start(shards, &[]);
        let mut c = srv.conn();
        let mut bad = Vec::new();
        for (case, want) in CASES.iter().zip(&want) {
            let got = run_case(&mut c, case);
            if &got != want {
                bad.push(format!("{case:?}\n  redis:   {want:?}\n  shardis: {got:?}"));
            }
        }
        assert!(bad.is_empty(), "{} shards, {} differences:\n{}", shards, bad.len(), bad.join("\n"));
    }
}

/// RESP3 FUNCTION LIST / STATS shapes (maps, sets, nulls).
#[test]
fn function_resp3_replies_match_redis() {
    let case: Case = &[&["FUNCTION", "LOAD", ONE], &["FUNCTION", "LIST"], &["FUNCTION", "STATS"]];
    let redis = Server::start_redis();
    let mut r = redis.conn();
    r.cmd(&["HELLO", "3"]);
    let want = run_case(&mut r, case);
    let srv = Server::start(2, &[]);
    let mut c = srv.conn();
    c.cmd(&["HELLO", "3"]);
    assert_eq!(run_case(&mut c, case), want);
}

/// Scripts with a shebang refuse to start when out of memory, unless
/// they are `no-writes` or `allow-oom`; legacy scripts only refuse writes.
#[test]
fn shebang_oom_rules_match_redis() {
    let case: Case = &[
        &["CONFIG", "SET", "maxmemory", "1"],
        &["EVAL", "#!lua\nreturn 1", "0"],
        &["EVAL", "#!lua flags=no-writes\nreturn 1", "0"],
        &["EVAL", "#!lua flags=allow-oom\nreturn redis.call('set', KEYS[1], 'b')", "1", "{t}a"],
        &["EVAL", "return redis.call('set', KEYS[1], 'b')", "1", "{t}a"],
        &["EVAL", "return 1", "0"],
        &["CONFIG", "SET", "maxmemory", "0"],
    ];
    let redis = Server::start_redis();
    let mut r = redis.conn();
    r.cmd(&["SET", "filler", "x"]);
    let want: Vec<Value> = case.iter().map(|cmd| r.cmd(cmd)).collect();
    let srv = Server::start(1, &[]);
    let mut c = srv.conn();
    c.cmd(&["SET", "filler", "x"]);
    let got: Vec<Value> = case.iter().map(|cmd| c.cmd(cmd)).collect();
    assert_eq!(got, want);
}

const COUNTER: &str = "#!lua name=counter\n\
    redis.register_function('bump', function(k, a) return redis.call('incrby', k[1], a[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(k) return redis.call('get', k[1]) end, flags={'no-writes'}}";
const OTHER: &str = "#!lua name=other\nredis.register_function('hello', function() return 'hi' end)";

/// Libraries come back after a restart (from the AOF), after
/// BGREWRITEAOF (from the bases) and after re-sharding; a deleted one
/// stays deleted. DUMP then RESTORE gives the same libraries back.
#[test]
fn functions_survive_restart_rewrite_and_resharding() {
    for shards in [1, 4] {
        let mut srv = Server::start(shards, &[]);
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", COUNTER]), Value::bulk("counter"));
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", OTHER]), Value::bulk("other"));
        assert_eq!(c.cmd(&["FCALL", "bump", "1", "n", "5"]), Value::Int(5));
        assert_eq!(c.cmd(&["FUNCTION", "DELETE", "other"]), Value::ok());
        drop(c);
        srv.restart().expect("restart");
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["FCALL", "bump", "1", "n", "1"]), Value::Int(6), "{shards} shards, after restart");
        assert!(c.cmd(&["FCALL", "hello", "0"]).is_error());
        assert!(!c.cmd(&["BGREWRITEAOF"]).is_error());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let info = c.cmd(&["INFO", "persistence"]);
            let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
            if text.contains("aof_rewrite_in_progress:0") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(c);
        let other = if shards == 1 { "2" } else { "3" };
        srv.restart_with(|cmd| Server::set_arg(cmd, "--shards", other)).expect("restart");
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["FCALL_RO", "peek", "1", "n"]), Value::bulk("6"), "{shards} shards, after rewrite");
        // Every shard has them: keys on each shard.
        let n: usize = other.parse().unwrap_or(1);
        for s in 0..n {
            let k = key_on_shard("ctr", s, n);
            assert_eq!(c.cmd(&["FCALL", "bump", "1", &k, "2"]), Value::Int(2));
        }
        let dump = c.cmd(&["FUNCTION", "DUMP"]);
        let payload = dump.as_bytes().expect("payload").to_vec();
        assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), Value::ok());
        assert!(c.cmd(&["FCALL", "bump", "1", "n", "1"]).is_error());
        assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]), Value::ok());
        assert!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]).is_error(), "APPEND collides");
        assert_eq!(c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"REPLACE"]), Value::ok());
        assert_eq!(c.cmd(&["FCALL", "bump", "1", "n", "1"]), Value::Int(7));
    }
}

/// FCALL over keys on several shards runs as one transaction: transfers
/// by concurrent clients conserve the total, and readers never see one
/// half done.
#[test]
fn fcall_across_shards_is_atomic() {
    const LIB: &str = "#!lua name=bank\n\
        redis.register_function('transfer', function(k, a)\n\
          local n = tonumber(a[1])\n\
          if tonumber(redis.call('get', k[1])) < n then return 0 end\n\
          redis.call('decrby', k[1], n) redis.call('incrby', k[2], n) return 1 end)\n\
        redis.register_function{function_name='total', flags={'no-writes'}, callback=function(k)\n\
          local s = 0 for _, key in ipairs(k) do s = s + tonumber(redis.call('get', key)) end return s end}";
    let srv = Server::start(4, &[]);
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]), Value::bulk("bank"));
    let accounts: Vec<String> = (0..4).map(|i| key_on_shard(&format!("acct{i}"), i, 4)).collect();
    for a in &accounts {
        c.cmd(&["SET", a, "100"]);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let (port, accounts) = (srv.port, accounts.clone());
            std::thread::spawn(move || {
                let mut c = RespConn::connect(port).expect("connect");
                for i in 0..150u64 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let from = ((w + i) % 4) as usize;
                    let to = (from + 1 + (i % 3) as usize) % 4;
                    let r = c.cmd(&["FCALL", "transfer", "2", &accounts[from], &accounts[to], "7"]);
                    assert!(matches!(r, Value::Int(0 | 1)), "transfer replied {r:?}");
                    if i % 10 == 0 {
                        let mut args = vec!["FCALL_RO", "total", "4"];
                        args.extend(accounts.iter().map(String::as_str));
                        assert_eq!(c.cmd(&args), Value::Int(400), "a reader saw a transfer half done");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut args = vec!["FCALL_RO", "total", "4"];
    args.extend(accounts.iter().map(String::as_str));
    assert_eq!(c.cmd(&args), Value::Int(400));
}

/// A replica gets the master's libraries (in each shard's stream) and
/// runs their read-only functions.
#[test]
fn replica_gets_the_libraries() {
    let master = Server::start(2, &["--bind", "127.0.0.2"]);
    let mut m = RespConn::connect_to("127.0.0.2", master.port).expect("connect master");
    assert_eq!(m.cmd(&["FUNCTION", "LOAD", COUNTER]), Value::bulk("counter"));
    let port = master.port.to_string();
    let replica = Server::start(2, &["--bind", "127.0.0.3", "--replicaof", "127.0.0.2", &port]);
    let mut r = RespConn::connect_to("127.0.0.3", replica.port).expect("connect replica");
    m.cmd(&["SET", "n", "41"]);
    assert_eq!(m.cmd(&["FUNCTION", "LOAD", OTHER]), Value::bulk("other"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        last = r.cmd(&["FCALL_RO", "peek", "1", "n"]);
        if last == Value::bulk("41") && r.cmd(&["FUNCTION", "STATS"]) == m.cmd(&["FUNCTION", "STATS"]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(last, Value::bulk("41"));
    assert_eq!(r.cmd(&["FUNCTION", "STATS"]), m.cmd(&["FUNCTION", "STATS"]));
    assert!(r.cmd(&["FCALL", "bump", "1", "n", "1"]).is_error(), "a replica refuses writes");
}

fn info_field(c: &mut RespConn, section: &str, field: &str) -> Option<String> {
    let v = c.cmd(&["INFO", section]);
    let text = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|s| s.trim().to_string()))
}

/// INFO memory's script and function figures, and commandstats counting
/// the commands scripts ran, as redis-server reports them.
#[test]
fn info_reports_scripts_and_functions() {
    let steps = |c: &mut RespConn| {
        c.cmd(&["CONFIG", "RESETSTAT"]);
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", COUNTER]), Value::bulk("counter"));
        c.cmd(&["SCRIPT", "LOAD", "return 1"]);
        c.cmd(&["EVAL", "return redis.call('incrby', KEYS[1], 2)", "1", "n"]);
        c.cmd(&["FCALL", "bump", "1", "n", "3"]);
        c.cmd(&["FCALL", "bump", "1", "n", "x"]);
    };
    let redis = Server::start_redis();
    let mut r = redis.conn();
    steps(&mut r);
    for shards in [1, 4] {
        let srv = Server::start(shards, &[]);
        let mut c = srv.conn();
        steps(&mut c);
        for field in ["number_of_cached_scripts", "number_of_functions", "number_of_libraries"] {
            assert_eq!(info_field(&mut c, "memory", field), info_field(&mut r, "memory", field), "{field}");
        }
        for field in ["used_memory_vm_eval", "used_memory_vm_functions", "used_memory_scripts", "used_memory_functions"]
        {
            let v: u64 = info_field(&mut c, "memory", field).and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!(v > 0, "{field} = {v}");
        }
        let calls = |c: &mut RespConn| {
            info_field(c, "commandstats", "cmdstat_incrby").map(|v| {
                v.split(',')
                    .filter(|p| p.starts_with("calls=") || p.starts_with("failed_calls="))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        assert_eq!(calls(&mut c), calls(&mut r), "{shards} shards");
    }
}

/// FUNCTION DUMP is Redis 7.0's payload: byte for byte what redis-server
/// writes, LZF compression included (one library: Redis's order of
/// several follows its hash table); a payload from redis-server restores
/// into shardis on 1 and 4 shards, and shardis's into redis-server;
/// RESTORE's policies answer as Redis's.
#[test]
fn function_dump_is_redis_format() {
    let plain = Server::start_redis();
    let mut p = plain.conn();
    p.cmd(&["FUNCTION", "LOAD", LIB]);
    let want = p.cmd(&["FUNCTION", "DUMP"]);
    let redis = Server::start_redis();
    let mut r = redis.conn();
    r.cmd(&["FUNCTION", "LOAD", LIB]);
    r.cmd(&["FUNCTION", "LOAD", LIB_X]);
    let from_redis = r.cmd(&["FUNCTION", "DUMP"]).as_bytes().expect("redis payload").to_vec();
    let policies = |c: &mut RespConn, payload: &[u8]| -> Vec<Value> {
        let restore = |c: &mut RespConn, extra: &[&[u8]]| {
            let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", payload];
            args.extend_from_slice(extra);
            c.cmd(&args)
        };
        c.cmd(&["FUNCTION", "FLUSH"]);
        c.cmd(&["FUNCTION", "LOAD", LIB_F1]);
        vec![
            restore(c, &[]),
            c.cmd(&["FUNCTION", "LOAD", LIB]),
            restore(c, &[]),
            restore(c, &[b"APPEND"]),
            restore(c, &[b"REPLACE"]),
            restore(c, &[b"FLUSH"]),
            restore(c, &[b"bad"]),
            c.cmd(&["FCALL", "f1", "1", "{t}k", "a"]),
            c.cmd(&["FCALL", "c", "0"]),
            c.cmd(&["FCALL", "F1", "0"]),
            c.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload[..payload.len() - 1]]),
            c.cmd(&[&b"FUNCTION"[..], b"RESTORE", b"\x00\x01v\n\x00\x91\x08\xce\xb2\x198\x8a\xce"]),
        ]
    };
    let want_policies = policies(&mut r, &from_redis);
    for shards in [1, 4] {
        let srv = Server::start(shards, &[]);
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]), Value::bulk("mylib"));
        assert_eq!(c.cmd(&["FUNCTION", "DUMP"]), want, "{shards} shards: one library's DUMP");
        assert_eq!(policies(&mut c, &from_redis), want_policies, "{shards} shards: RESTORE of redis's payload");
        // shardis's payload of two libraries restores into redis-server.
        let ours = c.cmd(&["FUNCTION", "DUMP"]).as_bytes().expect("payload").to_vec();
        r.cmd(&["FUNCTION", "FLUSH"]);
        assert_eq!(r.cmd(&[&b"FUNCTION"[..], b"RESTORE", &ours]), Value::ok());
        assert_eq!(r.cmd(&["FCALL", "c", "0"]), c.cmd(&["FCALL", "c", "0"]));
    }
}

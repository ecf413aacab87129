//! Lua scripting (EVAL, EVALSHA, SCRIPT): replies compared with
//! redis-server 7, atomic scripts across shards under concurrency, script
//! effects surviving a restart from the AOF, the sandbox, hostile scripts.

mod common;

use common::shards::key_on_shard;
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

/// One differential case: commands run in order on a fresh db; every
/// reply must equal redis-server's.
type Case = &'static [&'static [&'static str]];

const CASES: &[Case] = &[
    &[&["EVAL", "return 1", "0"]],
    &[&["EVAL", "return {1,2,{3,'x'},nil,5}", "0"]],
    &[&["EVAL", "return 3.99", "0"], &["EVAL", "return -3.99", "0"], &["EVAL", "return {1e100, 0/0}", "0"]],
    &[&["EVAL", "return true", "0"], &["EVAL", "return false", "0"], &["EVAL", "return nil", "0"]],
    &[&["EVAL", "return {err='My Error'}", "0"], &["EVAL", "return {ok='FINE'}", "0"]],
    &[&["EVAL", "return redis.error_reply('boom')", "0"], &["EVAL", "return redis.error_reply('My Error')", "0"]],
    &[&["EVAL", "return redis.status_reply('FINE')", "0"], &["EVAL", "return redis.status_reply(1)", "0"]],
    &[&["EVAL", "return {1,{err='x'},{ok='y'}}", "0"], &["EVAL", "return {err=5}", "0"]],
    &[&["EVAL", "return KEYS[1]..ARGV[1]", "1", "{t}a", "b"], &["EVAL", "return {KEYS, ARGV}", "0"]],
    &[&["EVAL", "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}", "2", "{t}k1", "{t}k2", "a1", "a2"]],
    &[&["EVAL", "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])", "1", "{t}k", "v"]],
    &[&["EVAL", "redis.call('set',KEYS[1],'1'); return redis.call('incr', KEYS[1])", "1", "{t}a"]],
    &[&["EVAL", "return redis.call('set', KEYS[1], 1.1)", "1", "{t}f"], &["GET", "{t}f"]],
    &[&["EVAL", "return redis.call('set', KEYS[1], 2^53)", "1", "{t}f"], &["GET", "{t}f"]],
    &[&["EVAL", "return redis.call('get', KEYS[1])", "1", "{t}nokey"]],
    &[&["EVAL", "return type(redis.call('get', KEYS[1]))", "1", "{t}nokey"]],
    &[&["EVAL", "return redis.call('ping')", "0"], &["EVAL", "return redis.call('ping')['ok']", "0"]],
    &[&["SET", "{t}s", "x"], &["EVAL", "return redis.call('lpush', KEYS[1], 1)", "1", "{t}s"]],
    &[&["SET", "{t}s", "x"], &["EVAL", "return redis.pcall('lpush', KEYS[1], 1)", "1", "{t}s"]],
    &[&["SET", "{t}s", "x"], &["EVAL", "local ok, e = pcall(redis.call, 'lpush', KEYS[1], 1) return e", "1", "{t}s"]],
    &[&["EVAL", "return redis.call('nosuch')", "0"], &["EVAL", "return redis.pcall('nosuch')", "0"]],
    &[&["EVAL", "return redis.call('get')", "0"], &["EVAL", "return redis.call()", "0"]],
    &[&["EVAL", "return redis.call('get', {})", "0"], &["EVAL", "return redis.call('eval', 'return 1', 0)", "0"]],
    &[&["EVAL_RO", "return redis.call('set', KEYS[1], 1)", "1", "{t}k"], &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "{t}k"]],
    &[&["EVAL", "a = 5 return a", "0"], &["EVAL", "return b", "0"], &["EVAL", "os.exit()", "0"]],
    &[&["EVAL", "return loadfile", "0"], &["EVAL", "return dofile", "0"], &["EVAL", "return print", "0"]],
    &[&["EVAL", "rawset(_G, 'y', 1) return y", "0"], &["EVAL", "setmetatable(_G, nil) return 1", "0"]],
    &[&["EVAL", "error('boom')", "0"], &["EVAL", "\n\nerror('boom')", "0"], &["EVAL", "error({err='custom'})", "0"]],
    &[&["EVAL", "error()", "0"], &["EVAL", "return x +", "0"], &["EVAL", "local t = {} t.x = 1 return t.x", "0"]],
    &[&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"], &["EVALSHA", "fff", "0"]],
    &[&["EVAL", "return 1", "-1"], &["EVAL", "return 1", "3", "a"], &["EVAL", "return 1", "abc"], &["EVAL", "return 1"]],
    &[&["SCRIPT", "LOAD", "return 1"], &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]],
    &[&["SCRIPT", "LOAD", "return 1"], &["EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"]],
    &[&["SCRIPT", "LOAD", "return 1"], &["EVALSHA_RO", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]],
    &[&["SCRIPT", "FLUSH"], &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]],
    &[&["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "ffff"], &["EVAL", "return 1", "0"], &["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"]],
    &[&["SCRIPT", "FLUSH"], &["SCRIPT", "FLUSH", "ASYNC"], &["SCRIPT", "FLUSH", "SYNC"], &["SCRIPT", "FLUSH", "x"], &["SCRIPT", "FLUSH", "a", "b"]],
    &[&["SCRIPT", "LOAD", "return x +"], &["SCRIPT", "LOAD"], &["SCRIPT", "EXISTS"], &["SCRIPT", "KILL"]],
    &[&["EVAL", "return redis.sha1hex('')", "0"], &["EVAL", "return redis.sha1hex()", "0"], &["EVAL", "return redis.REDIS_VERSION", "0"]],
    &[&["EVAL", "return type(math.random())", "0"], &["EVAL", "return math.random(1)", "0"], &["EVAL", "return math.random(5, 5)", "0"]],
    &[&["EVAL", "return {redis.REPL_ALL, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_NONE, redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}", "0"]],
    &[&["EVAL", "return redis.set_repl(99)", "0"], &["EVAL", "return redis.log(99, 'hi')", "0"], &["EVAL", "return redis.log()", "0"]],
    &[&["EVAL", "return redis.replicate_commands()", "0"], &["EVAL", "return redis.breakpoint()", "0"], &["EVAL", "return redis.debug('x')", "0"]],
    &[&["EVAL", "redis.setresp(4)", "0"], &["EVAL", "return redis.setresp(3)", "0"], &["EVAL", "redis.setresp(3) return redis.call('get', KEYS[1])", "1", "{t}nokey"]],
    &[&["EVAL", "redis.setresp(3) return redis.call('hgetall', KEYS[1])", "1", "{t}nohash"], &["EVAL", "return {double=3.5}", "0"], &["EVAL", "return {map={a=1}}", "0"]],
    &[&["EVAL", "local t = {} for i=1,10 do t = {t} end return t", "0"]],
    &[&["EVAL", "local function f(n) return f(n+1)+1 end return f(1)", "0"]],
    &[&["RPUSH", "{t}l", "a", "b", "c"], &["EVAL", "return redis.call('lrange', KEYS[1], 0, -1)", "1", "{t}l"]],
    &[&["HSET", "{t}h", "f", "v"], &["EVAL", "return redis.call('hgetall', KEYS[1])", "1", "{t}h"]],
    &[&["EVAL", "return redis.call('blpop', KEYS[1], 0)", "1", "{t}empty"]],
    &[&["EVAL", "return string.format('%d %s %5.2f', 3, 'x', 1.5)", "0"], &["EVAL", "return tostring(1e100)", "0"]],
    &[&["EVAL", "return table.concat({'a','b'}, '-')", "0"], &["EVAL", "return type(unpack)", "0"], &["EVAL", "return #ARGV", "0", "a", "b"]],
];

fn run_case(c: &mut RespConn, case: Case) -> Vec<Value> {
    c.cmd(&["FLUSHALL"]);
    case.iter().map(|cmd| c.cmd(cmd)).collect()
}

/// Every case's replies, on shardis with 1 and 4 shards, equal redis-server's.
#[test]
fn eval_replies_match_redis() {
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

/// The same for a RESP3 client (HELLO 3): booleans, doubles, maps, nulls.
#[test]
fn eval_resp3_replies_match_redis() {
    let cases: Case = &[
        &["EVAL", "return true", "0"],
        &["EVAL", "return false", "0"],
        &["EVAL", "redis.setresp(3) return true", "0"],
        &["EVAL", "redis.setresp(3) return false", "0"],
        &["EVAL", "redis.setresp(3) return redis.call('get', 'nokey')", "0"],
        &["EVAL", "return {double=3.5}", "0"],
        &["EVAL", "return {map={a=1}}", "0"],
        &["EVAL", "return {set={a=true}}", "0"],
        &["EVAL", "redis.setresp(3) return redis.call('hgetall', 'nohash')", "0"],
        &["HSET", "h", "f", "1"],
        &["EVAL", "redis.setresp(3) local m = redis.call('hgetall', 'h') return m['map']['f']", "0"],
        &["EVAL", "redis.setresp(3) return redis.call('hgetall', 'h')", "0"],
        &["EVAL", "return redis.call('hgetall', 'h')", "0"],
    ];
    let redis = Server::start_redis();
    let mut r = redis.conn();
    r.cmd(&["HELLO", "3"]);
    let want = run_case(&mut r, cases);
    let srv = Server::start(1, &[]);
    let mut c = srv.conn();
    c.cmd(&["HELLO", "3"]);
    assert_eq!(run_case(&mut c, cases), want);
}

const TRANSFER: &str = "local a = tonumber(redis.call('GET', KEYS[1])) \
    local n = tonumber(ARGV[1]) \
    if a < n then return 0 end \
    redis.call('DECRBY', KEYS[1], n) \
    redis.call('INCRBY', KEYS[2], n) \
    return 1";
const SUM_DECLARED: &str =
    "local s = 0 for i, k in ipairs(KEYS) do s = s + tonumber(redis.call('GET', k)) end return s";
/// Reads keys it does not declare (named in ARGV): runs with every shard locked.
const SUM_UNDECLARED: &str =
    "local s = 0 for i, k in ipairs(ARGV) do s = s + tonumber(redis.call('GET', k)) end return s";

/// Transfers between accounts on different shards by 8 concurrent clients
/// never create or lose money, and no reader (declared keys, or undeclared
/// keys with every shard locked) sees a transfer half done.
#[test]
fn transfers_across_shards_conserve_totals() {
    const ACCOUNTS: usize = 8;
    const START: i64 = 1000;
    let srv = Server::start(4, &[]);
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| key_on_shard(&format!("acct{i}"), i, 4)).collect();
    let mut c = srv.conn();
    for a in &accounts {
        c.cmd(&["SET", a, &START.to_string()]);
    }
    let total = START * ACCOUNTS as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let port = srv.port;
        let accounts = accounts.clone();
        workers.push(std::thread::spawn(move || {
            let mut c = RespConn::connect(port).expect("connect");
            let mut rng = w.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut checks = 0;
            for i in 0..300 {
                if Instant::now() > deadline {
                    break;
                }
                let from = (next() % ACCOUNTS as u64) as usize;
                let to = (from + 1 + (next() % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                let amount = (next() % 50).to_string();
                let r = c.cmd(&["EVAL", TRANSFER, "2", &accounts[from], &accounts[to], &amount]);
                assert!(matches!(r, Value::Int(0 | 1)), "transfer replied {r:?}");
                if i % 10 == 0 {
                    let mut args: Vec<&str> = vec!["EVAL", SUM_DECLARED, "8"];
                    args.extend(accounts.iter().map(String::as_str));
                    assert_eq!(c.cmd(&args), Value::Int(total), "declared sum");
                    let mut args: Vec<&str> = vec!["EVAL", SUM_UNDECLARED, "0"];
                    args.extend(accounts.iter().map(String::as_str));
                    assert_eq!(c.cmd(&args), Value::Int(total), "undeclared sum");
                    checks += 1;
                }
            }
            checks
        }));
    }
    let checks: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert!(checks > 0);
    let mut args: Vec<&str> = vec!["MGET"];
    args.extend(accounts.iter().map(String::as_str));
    let sum: i64 = match c.cmd(&args) {
        Value::Array(items) => items
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes().expect("balance")).parse::<i64>().expect("number"))
            .sum(),
        other => panic!("MGET replied {other:?}"),
    };
    assert_eq!(sum, total);
    let info = c.cmd(&["INFO", "stats"]);
    let text = String::from_utf8_lossy(info.as_bytes().expect("info")).into_owned();
    let locked_all: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("scripts_locking_all_shards:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("scripts_locking_all_shards in INFO");
    assert!(locked_all >= checks as u64, "{locked_all} runs locked every shard, {checks} expected at least");
}

/// A script writing an undeclared key on another shard: its earlier
/// writes are undone and it runs again with every shard locked, so the
/// result is that of one whole run.
#[test]
fn undeclared_writes_on_other_shards_apply_once() {
    let srv = Server::start(4, &[]);
    let mut c = srv.conn();
    let keys: Vec<String> = (0..4).map(|s| key_on_shard("u", s, 4)).collect();
    let script = "for i, k in ipairs(ARGV) do redis.call('INCR', k) end return #ARGV";
    for _ in 0..5 {
        let mut args: Vec<&str> = vec!["EVAL", script, "0"];
        args.extend(keys.iter().map(String::as_str));
        assert_eq!(c.cmd(&args), Value::Int(4));
    }
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Value::bulk("5"), "{k}");
    }
    // Declared on one shard, writing another: the same.
    let script = "redis.call('INCR', KEYS[1]) redis.call('INCR', ARGV[1]) return 1";
    assert_eq!(c.cmd(&["EVAL", script, "1", &keys[0], &keys[3]]), Value::Int(1));
    assert_eq!(c.cmd(&["MGET", &keys[0], &keys[3]]), Value::Array(vec![Value::bulk("6"), Value::bulk("6")]));
}

/// Inside MULTI/EXEC too: an EXEC holding a script that reaches for
/// undeclared keys on other shards (and one that sorts by a pattern) runs
/// again with them, so its result is that of one whole run, as Redis's.
#[test]
fn undeclared_keys_inside_exec_apply_once() {
    let redis = Server::start_redis();
    let srv = Server::start(4, &[]);
    let keys: Vec<String> = (0..4).map(|s| key_on_shard("x", s, 4)).collect();
    let incr_all = "for i, k in ipairs(ARGV) do redis.call('INCR', k) end return #ARGV";
    let sort = "return redis.call('SORT', KEYS[1], 'BY', 'w_*', 'GET', 'o_*')";
    let session = |c: &mut RespConn| -> Vec<Value> {
        let mut out = vec![c.cmd(&["RPUSH", "l", "1", "2", "3"]), c.cmd(&["MSET", "w_1", "3", "w_2", "1", "w_3", "2"])];
        out.push(c.cmd(&["MSET", "o_1", "a", "o_2", "b", "o_3", "c"]));
        for _ in 0..3 {
            out.push(c.cmd(&["MULTI"]));
            let mut eval: Vec<&str> = vec!["EVAL", incr_all, "0"];
            eval.extend(keys.iter().map(String::as_str));
            out.push(c.cmd(&eval));
            out.push(c.cmd(&["INCR", &keys[1]]));
            out.push(c.cmd(&["EVAL", sort, "1", "l"]));
            out.push(c.cmd(&["EXEC"]));
        }
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(String::as_str));
        out.push(c.cmd(&mget));
        out
    };
    let want = session(&mut redis.conn());
    assert_eq!(session(&mut srv.conn()), want);
}

/// A script's writes (on one shard, across shards, random ones) are in
/// the AOF as their effects: after a restart the data is the same, and
/// no script text was logged.
#[test]
fn script_effects_survive_restart() {
    let mut srv = Server::start(4, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    let (a, b) = (key_on_shard("acct-a", 0, 4), key_on_shard("acct-b", 2, 4));
    c.cmd(&["SET", &a, "100"]);
    c.cmd(&["SET", &b, "100"]);
    assert_eq!(c.cmd(&["EVAL", TRANSFER, "2", &a, &b, "30"]), Value::Int(1));
    let rnd = "local t = {} for i = 1, 5 do t[i] = math.random(1000) end \
        redis.call('RPUSH', KEYS[1], unpack(t)) redis.call('EXPIRE', KEYS[1], 1000) \
        redis.call('SET', KEYS[2], redis.call('TIME')[1]) return #t";
    assert_eq!(c.cmd(&["EVAL", rnd, "2", "{r}list", "{r}time"]), Value::Int(5));
    let undeclared = "redis.call('SET', ARGV[1], 'x') redis.call('SET', ARGV[2], 'y') return 1";
    assert_eq!(c.cmd(&["EVAL", undeclared, "0", "und1", "und2"]), Value::Int(1));
    let dump = |c: &mut RespConn| {
        vec![
            c.cmd(&["MGET", &a, &b, "{r}time", "und1", "und2"]),
            c.cmd(&["LRANGE", "{r}list", "0", "-1"]),
            c.cmd(&["TTL", "{r}list"]).as_int().map(|t| Value::Int((t > 900) as i64)).unwrap_or(Value::Null),
        ]
    };
    let before = dump(&mut c);
    assert_eq!(before[0].as_items().map(|i| i.len()), Some(5));
    drop(c);
    srv.kill9();
    srv.restart().expect("restart");
    let mut c = srv.conn();
    assert_eq!(dump(&mut c), before);
    // The AOF holds commands, not the scripts.
    let mut logged = Vec::new();
    for entry in walk(&srv.dir) {
        if entry.to_string_lossy().ends_with(".aof") {
            logged.extend(std::fs::read(&entry).expect("read aof"));
        }
    }
    assert!(!logged.is_empty());
    assert!(!logged.windows(4).any(|w| w.eq_ignore_ascii_case(b"EVAL")), "a script was logged");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// What a script must not reach: the OS, files, bytecode, other scripts'
/// globals. The server answers each with an error and keeps serving.
#[test]
fn sandbox_escapes_are_refused() {
    let srv = Server::start(2, &[]);
    let mut c = srv.conn();
    for script in [
        "return os.execute('touch /tmp/shardis-escape')",
        "return io.open('/etc/passwd'):read('*a')",
        "return loadfile('/etc/passwd')",
        "return dofile('/etc/passwd')",
        "return require('os')",
        "return getfenv(0).os",
        "return debug.getinfo(1)",
        "return package.loadlib('libc.so.6', 'system')",
        "evil = 1",
        "redis = nil",
        "redis.call = function() return 'hijacked' end",
        "string.rep = nil",
        "rawset(_G, 'evil', 1)",
        "setmetatable(_G, {})",
        "local f = loadstring('evil = 1') f()",
        "return assert(loadstring(string.dump(function() return 1 end)))()",
    ] {
        let r = c.cmd(&["EVAL", script, "0"]);
        assert!(r.is_error(), "{script} replied {r:?}");
    }
    // Nothing leaked into later scripts.
    assert_eq!(c.cmd(&["EVAL", "return type(redis.call)", "0"]), Value::bulk("function"));
    assert_eq!(c.cmd(&["EVAL", "return redis.call('ping')", "0"]), Value::Simple("PONG".into()));
    assert!(c.cmd(&["EVAL", "return evil", "0"]).is_error());
    assert!(!std::path::Path::new("/tmp/shardis-escape").exists());
}

/// Deep recursion, huge tables and strings, deeply nested replies: each
/// fails with an error and the server keeps serving.
#[test]
fn hostile_scripts_fail_cleanly() {
    let srv = Server::start(2, &[]);
    let mut c = srv.conn();
    for script in [
        "local function f(n) return f(n+1)+1 end return f(1)",
        "local function f(n) return redis.call('ping') and f(n+1) end return f(1)",
        "local s = string.rep('x', 1048576) while true do s = s .. s end",
        "return unpack({}, 1, 1e8)",
    ] {
        let r = c.cmd(&["EVAL", script, "0"]);
        assert!(r.is_error(), "{script} replied {r:?}");
        assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()), "after {script}");
    }
    // A reply nested too deep ends, at the limit, in Redis's error.
    let r = c.cmd(&["EVAL", "local t = {} for i=1,100000 do t = {t} end return t", "0"]);
    assert!(format!("{r:?}").contains("reached lua stack limit"), "{r:?}");
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    // Garbage arguments.
    for args in
        [&["EVAL"][..], &["EVAL", "return 1"], &["EVAL", "return 1", "99999999999999999999"], &["EVALSHA", "", "0"]]
    {
        assert!(c.cmd(args).is_error(), "{args:?}");
    }
    assert_eq!(c.cmd(&["EVAL", "return 1", "0"]), Value::Int(1));
}

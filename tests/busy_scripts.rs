//! Scripts past busy-reply-threshold: other clients get -BUSY, SCRIPT
//! KILL / FUNCTION KILL stop a script that has not written, SHUTDOWN
//! NOSAVE stops the server when one has. The stuck script runs on shard
//! 0; the other client talks to shard 1 (clients of the stuck shard wait,
//! see `script::busy`).

mod common;

use common::shards::{conn_on_shard, key_on_shard};
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

fn start() -> Server {
    Server::start(2, &["--busy-reply-threshold", "100"])
}

/// Run `cmd` on a connection to shard 0 in a thread; its reply later.
fn run_stuck(srv: &Server, cmd: Vec<String>) -> std::thread::JoinHandle<Value> {
    let mut c = conn_on_shard(srv, 0);
    std::thread::spawn(move || {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        c.cmd(&args)
    })
}

/// Wait (bounded) until the other shard answers PING with -BUSY.
fn wait_busy(c: &mut RespConn) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.cmd(&["PING"]);
        if r.is_error() || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn busy_script_is_killed_and_others_get_busy() {
    let srv = start();
    let key = key_on_shard("loop", 0, 2);
    let mut other = conn_on_shard(&srv, 1);
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::Error("NOTBUSY No scripts in execution right now.".into()));
    let stuck = run_stuck(&srv, vec!["EVAL".into(), "local i = 0 while true do i = i + 1 end".into(), "1".into(), key]);
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()));
    assert_eq!(other.cmd(&["GET", "x"]), Value::Error(BUSY_EVAL.into()));
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), Value::Error(BUSY_EVAL.into()));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::ok());
    let r = stuck.join().expect("stuck client");
    let text = format!("{r:?}");
    assert!(
        matches!(&r, Value::Error(e) if e.starts_with("ERR Script killed by user with SCRIPT KILL... script: ") && e.ends_with(", on @user_script:1.")),
        "{text}"
    );
    assert_eq!(other.cmd(&["PING"]), Value::Simple("PONG".into()));
    // pcall cannot keep a killed script alive.
    let key = key_on_shard("loop", 0, 2);
    let stuck = run_stuck(
        &srv,
        vec!["EVAL".into(), "while true do pcall(function() while true do end end) end".into(), "1".into(), key],
    );
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::ok());
    assert!(stuck.join().expect("stuck client").is_error());
    assert_eq!(other.cmd(&["PING"]), Value::Simple("PONG".into()));
}

#[test]
fn busy_function_is_killed_with_function_kill() {
    let srv = start();
    let mut other = conn_on_shard(&srv, 1);
    let lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(other.cmd(&["FUNCTION", "LOAD", lib]), Value::bulk("spin"));
    let key = key_on_shard("spin", 0, 2);
    let stuck = run_stuck(&srv, vec!["FCALL".into(), "spin".into(), "1".into(), key]);
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_FUNCTION.into()));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::Error(BUSY_FUNCTION.into()));
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), Value::ok());
    let r = stuck.join().expect("stuck client");
    assert!(
        matches!(&r, Value::Error(e) if e.contains("Script killed by user") && e.contains("script: spin, on @user_function:2.")),
        "{r:?}"
    );
    assert_eq!(other.cmd(&["PING"]), Value::Simple("PONG".into()));
}

#[test]
fn a_script_that_wrote_is_unkillable_but_shutdown_nosave_works() {
    let mut srv = start();
    let key = key_on_shard("w", 0, 2);
    let mut other = conn_on_shard(&srv, 1);
    let _stuck =
        run_stuck(&srv, vec!["EVAL".into(), "redis.call('set', KEYS[1], 1) while true do end".into(), "1".into(), key]);
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()));
    let r = other.cmd(&["SCRIPT", "KILL"]);
    assert!(
        matches!(&r, Value::Error(e) if e.starts_with("UNKILLABLE Sorry the script already executed write commands")),
        "{r:?}"
    );
    assert_eq!(other.cmd(&["SHUTDOWN"]), Value::Error(BUSY_EVAL.into()));
    let _ = other.try_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some(), "the server did not exit");
}

/// FUNCTION STATS's reply with duration_ms zeroed (it is a time).
fn stats_shape(mut v: Value) -> (Value, i64) {
    let mut ms = -1;
    if let Value::Array(top) = &mut v {
        if let Some(Value::Array(run)) = top.get_mut(1) {
            if let Some(Value::Int(d)) = run.get_mut(5) {
                ms = *d;
                *d = 0;
            }
        }
    }
    (v, ms)
}

/// FUNCTION STATS shows a busy function (name, the command as sent, how
/// long it runs) as redis-server does, and answers BUSY while an EVAL
/// script is busy.
#[test]
fn function_stats_shows_the_busy_function_as_redis() {
    let lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    let redis = Server::start_redis_with(&["--busy-reply-threshold", "100"]);
    let srv = start();
    let key = key_on_shard("spin", 0, 2);
    let mut shapes = Vec::new();
    for (name, stuck_conn, mut other) in
        [("redis", redis.conn(), redis.conn()), ("shardis", conn_on_shard(&srv, 0), conn_on_shard(&srv, 1))]
    {
        assert_eq!(other.cmd(&["FUNCTION", "LOAD", lib]), Value::bulk("spin"));
        let run = |mut c: RespConn, cmd: Vec<String>| {
            std::thread::spawn(move || {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                c.cmd(&args)
            })
        };
        let stuck = run(stuck_conn, vec!["fcall".into(), "spin".into(), "1".into(), key.clone(), "arg".into()]);
        assert_eq!(wait_busy(&mut other), Value::Error(BUSY_FUNCTION.into()), "{name}");
        let (shape, ms) = stats_shape(other.cmd(&["FUNCTION", "STATS"]));
        assert!(ms >= 100, "{name}: duration_ms {ms}");
        shapes.push(shape);
        assert_eq!(other.cmd(&["FUNCTION", "KILL"]), Value::ok(), "{name}");
        assert!(stuck.join().expect("stuck client").is_error());
        // A busy EVAL script: FUNCTION STATS is refused.
        let stuck_conn = if name == "redis" { redis.conn() } else { conn_on_shard(&srv, 0) };
        let stuck = run(stuck_conn, vec!["EVAL".into(), "while true do end".into(), "1".into(), key.clone()]);
        assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()), "{name}");
        shapes.push(other.cmd(&["FUNCTION", "STATS"]));
        assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::ok(), "{name}");
        assert!(stuck.join().expect("stuck client").is_error());
        shapes.push(other.cmd(&["FUNCTION", "STATS"]));
    }
    assert_eq!(shapes[..3], shapes[3..]);
}

/// A new connection whose PING gets -BUSY (one the reactor accepted just
/// before the script started gets PONG, or waits: try again).
fn new_busy_conn(srv: &Server) -> RespConn {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = srv.conn();
        c.set_read_timeout(Some(Duration::from_secs(1)));
        let r = c.try_cmd(&["PING"]);
        if matches!(&r, Ok(Value::Error(e)) if e == BUSY_EVAL) {
            c.set_read_timeout(Some(Duration::from_secs(5)));
            return c;
        }
        assert!(Instant::now() < deadline, "no BUSY reply: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With one shard no other shard can answer: the stuck shard's own hook
/// serves new clients (-BUSY, SCRIPT KILL, SHUTDOWN NOSAVE), and they go
/// on as ordinary clients once the script ends.
#[test]
fn a_one_shard_server_answers_while_busy() {
    let mut srv = Server::start(1, &["--busy-reply-threshold", "100"]);
    let stuck = run_stuck(&srv, vec!["EVAL".into(), "while true do end".into(), "0".into()]);
    let mut other = new_busy_conn(&srv);
    assert_eq!(other.cmd(&["GET", "x"]), Value::Error(BUSY_EVAL.into()));
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), Value::Error(BUSY_EVAL.into()));
    let mut killer = srv.conn();
    assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), Value::ok());
    let r = stuck.join().expect("stuck client");
    assert!(
        matches!(&r, Value::Error(e) if e.starts_with("ERR Script killed by user with SCRIPT KILL... script: ") && e.ends_with(", on @user_script:1.")),
        "{r:?}"
    );
    assert_eq!(other.cmd(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(killer.cmd(&["SET", "x", "1"]), Value::ok());
    assert_eq!(other.cmd(&["GET", "x"]), Value::bulk("1"));
    // A script that wrote cannot be killed; SHUTDOWN NOSAVE ends the server.
    let _stuck = run_stuck(&srv, vec!["EVAL".into(), "redis.call('set', 'w', 1) while true do end".into(), "0".into()]);
    let mut c = new_busy_conn(&srv);
    let r = c.cmd(&["SCRIPT", "KILL"]);
    assert!(matches!(&r, Value::Error(e) if e.starts_with("UNKILLABLE")), "{r:?}");
    assert_eq!(c.cmd(&["SHUTDOWN"]), Value::Error(BUSY_EVAL.into()));
    let _ = c.try_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some(), "the server did not exit");
}

/// On 4 shards, new clients landing on the stuck shard are answered too
/// (before, only the other shards answered): every one of many new
/// connections gets -BUSY, some of them on the stuck shard.
#[test]
fn new_clients_of_the_stuck_shard_get_busy() {
    let srv = Server::start(4, &["--busy-reply-threshold", "100"]);
    let mut other = conn_on_shard(&srv, 1);
    let key = key_on_shard("loop", 0, 4);
    let stuck = run_stuck(&srv, vec!["EVAL".into(), "while true do end".into(), "1".into(), key]);
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()));
    let mut conns: Vec<RespConn> = (0..32).map(|_| srv.conn()).collect();
    for c in conns.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(3)));
        assert_eq!(c.cmd(&["PING"]), Value::Error(BUSY_EVAL.into()));
    }
    assert_eq!(conns[0].cmd(&["SCRIPT", "KILL"]), Value::ok());
    assert!(stuck.join().expect("stuck client").is_error());
    let on_stuck = conns.iter_mut().filter_map(common::shards::conn_shard).filter(|&s| s == 0).count();
    assert!(on_stuck > 0, "no new connection landed on shard 0");
    for c in conns.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    }
}

/// Where the default user needs a password the stuck shard serves no new
/// client (none could AUTH there): SCRIPT KILL without AUTH gets -NOAUTH
/// from the other shard and no answer from the stuck one.
#[test]
fn a_password_keeps_new_clients_of_the_stuck_shard_waiting() {
    let srv = Server::start(2, &["--busy-reply-threshold", "100", "--requirepass", "pw"]);
    let mut other = conn_on_shard(&srv, 1);
    let key = key_on_shard("loop", 0, 2);
    let stuck = run_stuck(&srv, vec!["EVAL".into(), "while true do end".into(), "1".into(), key]);
    assert_eq!(wait_busy(&mut other), Value::Error(BUSY_EVAL.into()));
    let mut waited = false;
    for _ in 0..40 {
        let mut c = RespConn::connect_to(&srv.host, srv.port).expect("connect");
        c.set_read_timeout(Some(Duration::from_millis(300)));
        match c.try_cmd(&["SCRIPT", "KILL"]) {
            Ok(r) => assert!(matches!(&r, Value::Error(e) if e.starts_with("NOAUTH")), "{r:?}"),
            Err(_) => {
                waited = true;
                break;
            }
        }
    }
    assert!(waited, "no new connection landed on the stuck shard");
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Value::ok());
    assert!(stuck.join().expect("stuck client").is_error());
}

/// Connections the stuck shard already had are answered too while idle;
/// a command allowed while busy (MULTI) and what follows it wait, and run
/// in order once the script ends. 1 and 4 shards.
#[test]
fn idle_clients_of_the_stuck_shard_are_answered() {
    for shards in [1, 4] {
        let srv = Server::start(shards, &["--busy-reply-threshold", "100"]);
        let mut idle = conn_on_shard(&srv, 0);
        let mut killer = conn_on_shard(&srv, 0);
        let mut held = conn_on_shard(&srv, 0);
        for c in [&mut idle, &mut killer, &mut held] {
            assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
            c.set_read_timeout(Some(Duration::from_secs(5)));
        }
        let key = key_on_shard("loop", 0, shards);
        let stuck = run_stuck(&srv, vec!["EVAL".into(), "while true do end".into(), "1".into(), key]);
        assert_eq!(wait_busy(&mut idle), Value::Error(BUSY_EVAL.into()), "{shards} shards");
        held.send_raw(b"GET x\r\nMULTI\r\nPING\r\n").expect("send");
        assert_eq!(held.read_value().expect("reply"), Value::Error(BUSY_EVAL.into()));
        assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), Value::ok(), "{shards} shards");
        assert!(stuck.join().expect("stuck client").is_error());
        assert_eq!(held.read_value().expect("reply"), Value::ok());
        assert_eq!(held.read_value().expect("reply"), Value::Simple("QUEUED".into()));
        assert_eq!(held.cmd(&["EXEC"]), Value::Array(vec![Value::Simple("PONG".into())]));
        assert_eq!(idle.cmd(&["PING"]), Value::Simple("PONG".into()));
    }
}

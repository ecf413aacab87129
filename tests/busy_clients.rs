//! Clients of a shard stuck in a busy script, whatever their state, side
//! by side with redis-server 7.0 (its replies are the spec): a pipelining
//! client, one in MULTI (EXEC after the kill answers EXECABORT; EXEC while
//! busy is refused and discards), MULTI / DISCARD / RESET while busy, RESP2 and
//! RESP3 subscribers, CLIENT REPLY OFF / SKIP, a restricted ACL user
//! (NOPERM before BUSY), a blocked client (its next request waits), one
//! with output pending when the script started, new clients that AUTH
//! under requirepass, and garbage. shardis with 1 and 4 shards; every
//! client of shardis is on the stuck shard (0), so the script's hook
//! answers them (see `script::busy_io`).

mod common;

use common::shards::{conn_on_shard, conn_shard, key_on_shard};
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

const BUSY: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// A server under test and how to reach its stuck shard.
struct Target {
    srv: Server,
    shards: usize,
}

impl Target {
    fn all(extra: &[&str]) -> Vec<Target> {
        let mut args = vec!["--busy-reply-threshold", "100"];
        args.extend_from_slice(extra);
        let mut v = vec![Target { srv: Server::start_redis_with(&args), shards: 0 }];
        for shards in [1, 4] {
            v.push(Target { srv: Server::start(shards, &args), shards });
        }
        v
    }

    fn name(&self) -> String {
        if self.shards == 0 {
            "redis".into()
        } else {
            format!("shardis/{}", self.shards)
        }
    }

    /// A connection (authenticated if the server has a password) on the
    /// shard the script will run on.
    fn conn(&self) -> RespConn {
        let c = if self.shards == 0 { self.srv.conn() } else { conn_on_shard(&self.srv, 0) };
        c.set_read_timeout(Some(Duration::from_secs(5)));
        c
    }

    /// A key the script declares (on shard 0).
    fn key(&self) -> String {
        key_on_shard("spin", 0, self.shards.max(1))
    }

    /// Start `script` from a connection of its own; its reply later.
    fn spin(&self, script: &str) -> std::thread::JoinHandle<Value> {
        self.spin_on(self.conn(), script)
    }

    /// `spin` from connection `c` (of `conn`).
    fn spin_on(&self, mut c: RespConn, script: &str) -> std::thread::JoinHandle<Value> {
        c.set_read_timeout(Some(Duration::from_secs(15)));
        let (script, key) = (script.to_string(), self.key());
        std::thread::spawn(move || c.cmd(&["EVAL", &script, "1", &key]))
    }
}

/// Wait (bounded) until `c`'s PING is refused -BUSY.
fn wait_busy(c: &mut RespConn, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.try_cmd(&["PING"]).unwrap_or_else(|e| panic!("{name}: waiting for BUSY: {e}")) {
            Value::Error(e) if e == BUSY => return,
            r => assert!(Instant::now() < deadline, "{name}: never busy: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The script was killed: its client got the kill error.
fn assert_killed(stuck: std::thread::JoinHandle<Value>, name: &str) {
    let r = stuck.join().expect("stuck client");
    assert!(matches!(&r, Value::Error(e) if e.starts_with("ERR Script killed by user")), "{name}: {r:?}");
}

fn err(s: &str) -> Value {
    Value::Error(s.into())
}

#[track_caller]
fn read(c: &mut RespConn, name: &str) -> Value {
    let at = std::panic::Location::caller();
    c.read_value().unwrap_or_else(|e| panic!("{name}: no reply at {at}: {e}"))
}

/// Nothing arrives on `c` for a while.
fn assert_silent(c: &mut RespConn, name: &str, what: &str) {
    let (bytes, eof) = c.read_until_idle(Duration::from_millis(300));
    assert!(bytes.is_empty() && !eof, "{name}: {what} answered {:?}", String::from_utf8_lossy(&bytes));
    c.set_read_timeout(Some(Duration::from_secs(5)));
}

#[test]
fn clients_in_every_state_are_answered_while_busy() {
    for t in Target::all(&[]) {
        let name = t.name();
        let name = name.as_str();
        let mut admin = t.conn();
        assert_eq!(admin.cmd(&["ACL", "SETUSER", "lim", "on", ">p", "+get", "+script|kill", "~*"]), Value::ok());
        let mut pipe = t.conn();
        let mut multi = t.conn();
        assert_eq!(multi.cmd(&["MULTI"]), Value::ok());
        let mut exec = t.conn();
        assert_eq!(exec.cmd(&["MULTI"]), Value::ok());
        assert_eq!(exec.cmd(&["SET", "x", "1"]), Value::Simple("QUEUED".into()));
        let mut sub2 = t.conn();
        assert!(!sub2.cmd(&["SUBSCRIBE", "ch"]).is_error());
        let mut sub3 = t.conn();
        assert!(!sub3.cmd(&["HELLO", "3"]).is_error());
        assert!(!sub3.cmd(&["SUBSCRIBE", "ch"]).is_error());
        let mut off = t.conn();
        off.send_raw(b"CLIENT REPLY OFF\r\n").expect("send");
        let mut skip = t.conn();
        skip.send_raw(b"CLIENT REPLY SKIP\r\n").expect("send");
        let mut lim = t.conn();
        assert_eq!(lim.cmd(&["AUTH", "lim", "p"]), Value::ok());
        let mut blocked = t.conn();
        blocked.send_raw(b"BLPOP busylist 0\r\n").expect("send");
        let blocked_key = "busylist";
        // Output pending when the script starts: a PING and the script
        // held by CLIENT PAUSE run in the same turn when it ends.
        let mut pending = t.conn();
        let stuck_conn = t.conn();
        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "300", "ALL"]), Value::ok());
        pending.send_raw(b"PING\r\n").expect("send");
        std::thread::sleep(Duration::from_millis(50));
        let stuck = t.spin_on(stuck_conn, "while true do end");
        // Past the pause (a request sent during it waits for the script on
        // redis-server: unpaused clients run only between events).
        std::thread::sleep(Duration::from_millis(400));
        wait_busy(&mut pipe, name);
        assert_eq!(read(&mut pending, name), Value::Simple("PONG".into()), "{name}");
        assert_eq!(pending.cmd(&["GET", "x"]), err(BUSY), "{name}");

        pipe.send_raw(b"GET x\r\nSET y 1\r\n*1\r\n$4\r\nPING\r\nNOSUCH\r\nGET\r\n").expect("send");
        for want in [
            err(BUSY),
            err(BUSY),
            err(BUSY),
            err("ERR unknown command 'NOSUCH', with args beginning with: "),
            err("ERR wrong number of arguments for 'get' command"),
        ] {
            assert_eq!(read(&mut pipe, name), want, "{name}");
        }
        assert_eq!(multi.cmd(&["GET", "x"]), err(BUSY), "{name}");
        assert_eq!(
            sub2.cmd(&["GET", "x"]),
            err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"),
            "{name}"
        );
        assert_eq!(sub2.cmd(&["PING"]), err(BUSY), "{name}");
        assert_eq!(sub3.cmd(&["GET", "x"]), err(BUSY), "{name}");
        off.send_raw(b"GET x\r\n").expect("send");
        assert_silent(&mut off, name, "CLIENT REPLY OFF");
        skip.send_raw(b"GET x\r\nGET y\r\n").expect("send");
        assert_eq!(read(&mut skip, name), err(BUSY), "{name}");
        assert_eq!(lim.cmd(&["SET", "x", "1"]), err("NOPERM this user has no permissions to run the 'set' command"));
        assert_eq!(lim.cmd(&["GET", "x"]), err(BUSY), "{name}");
        blocked.send_raw(b"GET x\r\n").expect("send");
        assert_silent(&mut blocked, name, "a blocked client");
        // Transactions while busy: EXEC is refused and discards; MULTI and
        // DISCARD run; FUNCTION STATS is refused during an EVAL.
        let execabort = "EXECABORT Transaction discarded because of: ".to_string() + BUSY;
        assert_eq!(exec.cmd(&["EXEC"]), err(&execabort), "{name}");
        assert_eq!(exec.cmd(&["PING"]), err(BUSY), "{name}");
        let mut tx = t.conn();
        assert_eq!(tx.cmd(&["MULTI"]), Value::ok(), "{name}");
        assert_eq!(tx.cmd(&["DISCARD"]), Value::ok(), "{name}");
        assert_eq!(tx.cmd(&["DISCARD"]), err("ERR DISCARD without MULTI"), "{name}");
        assert_eq!(tx.cmd(&["EXEC"]), err(&execabort), "{name}");
        assert_eq!(tx.cmd(&["UNWATCH"]), Value::ok(), "{name}");
        assert_eq!(tx.cmd(&["FUNCTION", "STATS"]), err(BUSY), "{name}");
        assert_eq!(tx.cmd(&["CLIENT", "REPLY", "OFF"]), err(BUSY), "{name}");
        assert_eq!(tx.cmd(&["MULTI"]), Value::ok(), "{name}");
        assert_eq!(tx.cmd(&["RESET"]), Value::Simple("RESET".into()), "{name}");
        assert_eq!(tx.cmd(&["EXEC"]), err(&execabort), "{name}");
        let mut quitter = t.conn();
        assert_eq!(quitter.cmd(&["QUIT"]), Value::ok(), "{name}");
        assert!(quitter.read_until_idle(Duration::from_millis(500)).1, "{name}: QUIT did not close");

        assert_eq!(lim.cmd(&["SCRIPT", "KILL"]), Value::ok(), "{name}");
        assert_killed(stuck, name);
        assert_eq!(multi.cmd(&["EXEC"]), err("EXECABORT Transaction discarded because of previous errors."), "{name}");
        assert_eq!(off.cmd(&["CLIENT", "REPLY", "ON"]), Value::ok(), "{name}");
        assert_eq!(off.cmd(&["PING"]), Value::Simple("PONG".into()), "{name}");
        assert_eq!(skip.cmd(&["PING"]), Value::Simple("PONG".into()), "{name}");
        assert_eq!(admin.cmd(&["LPUSH", blocked_key, "a"]), Value::Int(1), "{name}");
        assert_eq!(read(&mut blocked, name), Value::Array(vec![Value::bulk(blocked_key), Value::bulk("a")]));
        assert_eq!(read(&mut blocked, name), Value::NilBulk, "{name}");
        assert_eq!(pipe.cmd(&["PING"]), Value::Simple("PONG".into()), "{name}");
        assert_eq!(lim.cmd(&["GET", "x"]), Value::NilBulk, "{name}");
    }
}

/// Under requirepass, new clients of the stuck shard authenticate while
/// busy, with AUTH or HELLO (a wrong password counted in ACL LOG), are
/// refused -BUSY after, and
/// one of them kills the script. On 4 shards some of many new clients
/// land on the stuck shard.
#[test]
fn new_clients_authenticate_while_busy() {
    for t in Target::all(&["--requirepass", "pw"]) {
        let name = t.name();
        let name = name.as_str();
        let mut admin = t.conn();
        let stuck = t.spin("while true do end");
        wait_busy(&mut admin, name);
        let n = if t.shards == 4 { 24 } else { 3 };
        let mut conns = Vec::new();
        for _ in 0..n {
            let mut c = t.srv.raw_conn();
            c.set_read_timeout(Some(Duration::from_secs(5)));
            assert_eq!(c.cmd(&["GET", "x"]), err("NOAUTH Authentication required."), "{name}");
            assert_eq!(
                c.cmd(&["AUTH", "wrong"]),
                err("WRONGPASS invalid username-password pair or user is disabled."),
                "{name}"
            );
            assert_eq!(c.cmd(&["AUTH", "pw"]), Value::ok(), "{name}");
            assert_eq!(c.cmd(&["GET", "x"]), err(BUSY), "{name}");
            conns.push(c);
        }
        // HELLO with AUTH is allowed while busy too.
        let mut h = t.srv.raw_conn();
        h.set_read_timeout(Some(Duration::from_secs(5)));
        let wrong = h.cmd(&["HELLO", "3", "AUTH", "default", "wrong"]);
        assert_eq!(wrong, err("WRONGPASS invalid username-password pair or user is disabled."), "{name}");
        let hello = h.cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "h1"]);
        let Value::Map(fields) = &hello else { panic!("{name}: HELLO answered {hello:?}") };
        assert!(fields.contains(&(Value::bulk("proto"), Value::Int(3))), "{name}: {hello:?}");
        assert_eq!(h.cmd(&["GET", "x"]), err(BUSY), "{name}");
        assert_eq!(conns[0].cmd(&["SCRIPT", "KILL"]), Value::ok(), "{name}");
        assert_killed(stuck, name);
        for (i, c) in conns.iter_mut().enumerate() {
            let r = c.try_cmd(&["PING"]).unwrap_or_else(|e| panic!("{name}: client {i} after the kill: {e}"));
            assert_eq!(r, Value::Simple("PONG".into()), "{name}");
        }
        // Failed AUTHs are in ACL LOG (one entry, counted).
        let log = admin.cmd(&["ACL", "LOG"]);
        let denied: i64 = log
            .as_items()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let kv = e.as_items()?;
                let field = |k: &str| kv.iter().position(|v| v.as_bytes() == Some(k.as_bytes())).map(|i| &kv[i + 1]);
                (field("reason")?.as_bytes()? == b"auth").then(|| field("count")?.as_int()).flatten()
            })
            .sum();
        assert_eq!(denied, n as i64 + 1, "{name}: failed AUTHs in ACL LOG: {log:?}");
        if t.shards > 0 {
            // INFO's acl_access_denied_auth (Redis 7.2's field, not in 7.0).
            let info = admin.cmd(&["INFO", "stats"]);
            let info = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
            let field = info.lines().find_map(|l| l.strip_prefix("acl_access_denied_auth:")).map(str::trim);
            assert_eq!(field, Some((n + 1).to_string().as_str()), "{name}");
        }
        assert_eq!(h.cmd(&["CLIENT", "GETNAME"]), Value::bulk("h1"), "{name}");
        assert_eq!(h.cmd(&["PING"]), Value::Simple("PONG".into()), "{name}");
        if t.shards == 4 {
            let on_stuck = conns.iter_mut().filter_map(conn_shard).filter(|&s| s == 0).count();
            assert!(on_stuck > 0, "no new connection landed on shard 0");
        }
    }
}

/// Garbage and huge lengths sent to the stuck shard get the protocol
/// error as usual (and the connection closes), new client or old.
#[test]
fn protocol_errors_while_busy() {
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$99999999999\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*99999999999\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"GET \"unbalanced\r\n", "ERR Protocol error: unbalanced quotes in request"),
    ];
    for t in Target::all(&[]) {
        let name = t.name();
        let name = name.as_str();
        let mut olds: Vec<RespConn> = cases.iter().map(|_| t.conn()).collect();
        let mut admin = t.conn();
        let stuck = t.spin("while true do end");
        wait_busy(&mut admin, name);
        for (i, (bytes, want)) in cases.iter().enumerate() {
            for c in [&mut olds[i], &mut t.conn()] {
                c.send_raw(b"GET x\r\n").expect("send");
                c.send_raw(bytes).expect("send");
                assert_eq!(read(c, name), err(BUSY), "{name}");
                assert_eq!(read(c, name), err(want), "{name}");
                assert!(c.read_until_idle(Duration::from_millis(1000)).1, "{name}: not closed after {want}");
            }
        }
        assert_eq!(admin.cmd(&["SCRIPT", "KILL"]), Value::ok(), "{name}");
        assert_killed(stuck, name);
        assert_eq!(admin.cmd(&["PING"]), Value::Simple("PONG".into()), "{name}");
    }
}

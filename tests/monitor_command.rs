//! MONITOR side by side with redis-server 7.0: a 4-shard server shows the
//! commands of clients on every shard, local, forwarded, cross-shard and
//! queued in MULTI, in Redis's line format, without admin commands and
//! with passwords redacted.

mod common;

use common::{RespConn, Server, Value};

/// Commands one client sends while another monitors, ending with ECHO end.
const SCRIPT: &[&str] = &[
    "SET a 1",
    "GET b",
    "MSET a 1 b 2 c 3 d 4",
    "CONFIG GET hz",
    "AUTH nosuchpass",
    "MULTI",
    "SET q 1",
    "INCR q",
    "EXEC",
    "SELECT 3",
    "SET z x\ny",
    "NOSUCHCOMMAND",
    "ECHO end",
];

/// Lines MONITOR shows while a client runs SCRIPT: `[db] "arg" ...`,
/// without the time stamp and client address.
fn monitored(srv: &Server) -> Vec<String> {
    let mut m = srv.conn();
    assert_eq!(m.cmd(&["MONITOR"]), Value::ok());
    let mut c: RespConn = srv.conn();
    for line in SCRIPT {
        let args: Vec<&str> = line.split(' ').collect();
        c.cmd(&args);
    }
    let mut lines = Vec::new();
    for _ in 0..100 {
        let Value::Simple(line) = m.read_value().expect("a MONITOR line") else { panic!("not a status line") };
        // "<secs>.<micros> [<db> <addr>] <args>"
        let (stamp, rest) = line.split_once(" [").expect("time stamp");
        assert!(stamp.split_once('.').is_some_and(|(s, us)| s.parse::<u64>().is_ok() && us.len() == 6), "{line}");
        let (who, args) = rest.split_once("] ").expect("client");
        let db = who.split(' ').next().expect("db");
        lines.push(format!("[{db}] {args}"));
        if args == "\"ECHO\" \"end\"" {
            return lines;
        }
    }
    panic!("MONITOR never showed the last command: {lines:?}");
}

#[test]
fn monitor_shows_what_redis_shows() {
    let redis = Server::start_redis();
    let shardis = Server::start(4, &["--appendonly", "no"]);
    let (want, got) = (monitored(&redis), monitored(&shardis));
    assert_eq!(got, want);
    assert!(!got.iter().any(|l| l.contains("CONFIG") || l.contains("nosuchpass")), "{got:?}");
}

#[test]
fn monitor_stops_with_its_client() {
    let srv = Server::start(2, &["--appendonly", "no"]);
    for _ in 0..3 {
        let mut m = srv.conn();
        assert_eq!(m.cmd(&["MONITOR"]), Value::ok());
        drop(m);
    }
    // Nothing is left sending to closed monitors; clients work on.
    let mut c = srv.conn();
    for i in 0..50 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]), Value::ok());
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(50));
}

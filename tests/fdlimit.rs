//! Running out of file descriptors (issue 13, item 10): maxclients fits the
//! open-file limit, clients past it get Redis's error, and an accept that
//! fails for lack of descriptors backs off instead of spinning.

mod common;

use common::procfs::{cpu_seconds, soft_nofile};
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

/// Descriptors shardis keeps for itself with `shards` shards.
fn reserve(shards: u64) -> u64 {
    32 + 8 * shards
}

fn maxclients(s: &Server) -> u64 {
    let v = s.conn().cmd(&["CONFIG", "GET", "maxclients"]);
    let items = v.as_items().expect("CONFIG GET reply").to_vec();
    String::from_utf8_lossy(items[1].as_bytes().expect("value")).parse().expect("a number")
}

#[test]
fn maxclients_is_fitted_to_the_open_file_limit_and_clients_past_it_are_refused() {
    let s = Server::start_with_nofile(2, &[], 200, &[]);
    let pid = s.pid();
    let limit = soft_nofile(pid);
    let max = maxclients(&s);
    assert!(max + reserve(2) <= limit, "maxclients {max} + reserve does not fit the open file limit {limit}");
    if limit < 10_000 + reserve(2) {
        // The limit could not be raised (no CAP_SYS_RESOURCE): lowered, and said so.
        assert!(s.logs().contains("maxclients reduced to"), "{}", s.logs());
    } else {
        return; // Privileged: the limit was raised instead; nothing more to see here.
    }

    // More clients than maxclients: the rest are refused with the error,
    // and the server stays responsive and idle.
    let mut first = s.conn();
    let conns: Vec<RespConn> = (0..max + 20).map(|_| s.raw_conn()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut served = Vec::new();
    let mut refused = 0;
    for mut c in conns {
        // A refused client has the error waiting; a served one has nothing.
        c.stream().set_nonblocking(true).expect("nonblocking");
        let waiting = c.stream().peek(&mut [0u8; 1]).is_ok();
        c.stream().set_nonblocking(false).expect("blocking");
        if waiting {
            assert_eq!(c.read_value().expect("reply"), Value::Error("ERR max number of clients reached".into()));
            refused += 1;
        } else {
            assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
            served.push(c);
        }
    }
    assert!(refused >= 20, "only {refused} refused; {} served with maxclients {max}", served.len());
    assert!((served.len() as u64) < max, "{} served with maxclients {max}", served.len());
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
    assert!(cpu < wall / 4.0, "server used {cpu:.2} s of CPU in {wall:.2} s while idle at maxclients");
    assert_eq!(first.cmd(&["PING"]), Value::Simple("PONG".into()));
    // Room again once clients leave.
    drop(served);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.raw_conn().try_cmd(&["PING"]) {
            Ok(Value::Simple(p)) if p == "PONG" => break,
            other => assert!(Instant::now() < deadline, "no room after clients left: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_accept_out_of_descriptors_backs_off_and_recovers_when_clients_leave() {
    // maxclients (10000) left unfitted to a limit of 64 descriptors, so the
    // accepts run out of them.
    let s = Server::start_with_nofile(1, &[], 64, &[("SHARDIS_FAILPOINT", "fd-limit-unfitted")]);
    let pid = s.pid();
    let mut first = s.conn();
    assert_eq!(first.cmd(&["PING"]), Value::Simple("PONG".into()));
    let mut pending: Vec<RespConn> = (0..100)
        .map(|_| {
            let mut c = s.raw_conn();
            c.send_raw(b"*1\r\n$4\r\nPING\r\n").expect("send");
            c.set_read_timeout(Some(Duration::from_millis(100)));
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
    let lines = s.logs().matches("accept failed").count();
    assert!((1..=3).contains(&lines), "{lines} log lines about failed accepts (want 1..=3)");
    eprintln!("server CPU {cpu:.2} s in {wall:.2} s with accepts failing");
    assert!(cpu < wall / 8.0, "server used {cpu:.2} s of CPU in {wall:.2} s with accepts failing (spinning?)");
    assert_eq!(first.cmd(&["PING"]), Value::Simple("PONG".into()), "not responsive");

    // Clients that were served leave; the waiting ones get in, one by one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} clients never served", pending.len());
        pending.retain_mut(|c| !matches!(c.read_value(), Ok(Value::Simple(p)) if p == "PONG"));
    }
}

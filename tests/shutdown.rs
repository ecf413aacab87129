//! Stopping (issue 13, item 14): a SIGTERM under cross-shard load loses no
//! acknowledged write and leaves no transaction half applied; a shard stuck
//! in a long command does not keep the process alive; a second signal
//! exits at once.

mod common;

use common::server::debug_enabled_args;
use common::{RespConn, Server, Value};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS_PER_MSET: usize = 4;

fn mset_keys(t: usize, i: usize) -> Vec<String> {
    // Different keys hash to different shards: most MSETs span several.
    (0..KEYS_PER_MSET).map(|j| format!("t{t}:i{i}:k{j}")).collect()
}

/// What one writer saw: MSETs acknowledged, and the one in doubt (sent,
/// no reply before the server went away).
struct Seen {
    acked: Vec<usize>,
    in_doubt: Option<usize>,
}

fn writer(port: u16, t: usize, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen { acked: Vec::new(), in_doubt: None };
    let Ok(mut c) = RespConn::connect(port) else { return seen };
    // Bounded in count and time.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..200_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let value = format!("v{t}:{i}");
        let mut args = vec!["MSET".to_string()];
        for k in mset_keys(t, i) {
            args.extend([k, value.clone()]);
        }
        match c.try_cmd(&args) {
            Ok(v) if v == Value::ok() => seen.acked.push(i),
            Ok(other) => panic!("MSET answered {other:?}"),
            Err(_) => {
                seen.in_doubt = Some(i);
                break;
            }
        }
    }
    seen
}

#[test]
fn sigterm_under_cross_shard_load_keeps_every_acknowledged_transaction_whole() {
    for round in 0..3 {
        let mut s = Server::start(4, &["--appendfsync", "everysec"]);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let (port, stop) = (s.port, stop.clone());
                std::thread::spawn(move || writer(port, t, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        s.signal(libc::SIGTERM);
        let status = s.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| panic!("no exit\n{}", s.logs()));
        stop.store(true, Ordering::Relaxed);
        let seen: Vec<Seen> = writers.into_iter().map(|w| w.join().expect("writer")).collect();
        assert!(status.success(), "SIGTERM must be a clean stop: {status:?}\n{}", s.logs());
        assert!(!s.logs().contains("did not finish draining"), "the shards did not drain together\n{}", s.logs());
        let acked: usize = seen.iter().map(|x| x.acked.len()).sum();
        assert!(acked > 0, "no MSET acknowledged before the stop");

        s.restart().expect("restart");
        let mut c = s.conn();
        let mut whole = 0;
        for (t, x) in seen.iter().enumerate() {
            let check = |c: &mut RespConn, i: usize| -> usize {
                let keys = mset_keys(t, i);
                let mut args = vec!["MGET".to_string()];
                args.extend(keys);
                let v = c.cmd(&args);
                let want = Value::bulk(format!("v{t}:{i}"));
                v.as_items().expect("MGET array").iter().filter(|x| **x == want).count()
            };
            for &i in &x.acked {
                let n = check(&mut c, i);
                assert_eq!(n, KEYS_PER_MSET, "round {round}: acknowledged MSET t{t} i{i} has {n} of its keys");
                whole += 1;
            }
            if let Some(i) = x.in_doubt {
                let n = check(&mut c, i);
                assert!(n == 0 || n == KEYS_PER_MSET, "round {round}: MSET t{t} i{i} half applied ({n} keys)");
                whole += (n == KEYS_PER_MSET) as usize;
            }
        }
        // Nothing else, in particular no part of another transaction.
        let dbsize = c.cmd(&["DBSIZE"]).as_int().expect("DBSIZE");
        assert_eq!(dbsize as usize, whole * KEYS_PER_MSET, "round {round}: keys of unacknowledged transactions");
    }
}

/// A connection whose shard is `DEBUG SLEEP`ing for 30 s.
fn stick_a_shard(s: &Server) -> RespConn {
    let mut c = s.conn();
    c.send_raw(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$2\r\n30\r\n").expect("send");
    std::thread::sleep(Duration::from_millis(300));
    c
}

#[test]
fn sigterm_stops_the_process_while_a_shard_is_stuck_in_a_long_command() {
    let mut s = Server::start(2, &debug_enabled_args());
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "before", "1"]), Value::ok());
    let _stuck = stick_a_shard(&s);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(20));
    let logs = s.logs();
    let status = status.unwrap_or_else(|| panic!("still running 20 s after SIGTERM with a shard stuck\n{logs}"));
    assert_eq!(status.code(), Some(1), "an unclean stop says so: {status:?}");
    assert!(logs.contains("did not stop within"), "{logs}");
    s.restart().expect("restart");
    assert_eq!(s.conn().cmd(&["GET", "before"]), Value::bulk("1"));
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let mut s = Server::start(2, &debug_enabled_args());
    let _stuck = stick_a_shard(&s);
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.alive(), "the first SIGTERM waits for the stuck shard (up to its grace)");
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(4));
    let logs = s.logs();
    let status = status.unwrap_or_else(|| panic!("a second SIGTERM did not exit at once\n{logs}"));
    assert_eq!((status.code(), status.signal()), (Some(1), None), "{status:?}");
    assert!(logs.contains("second termination signal"), "{logs}");
}

//! A panic in one shard takes the whole process down with a crash report
//! (issue 13, item 3), and what was acknowledged before survives it.

mod common;

use common::server::debug_enabled_args;
use common::{RespConn, Server, Value};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// A connection accepted by shard `want` (SO_REUSEPORT spreads them), or
/// None after a bounded number of tries.
fn conn_on_shard(s: &Server, want: usize) -> Option<RespConn> {
    for _ in 0..400 {
        let mut c = s.conn();
        let info = c.cmd(&["CLIENT", "INFO"]);
        let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
        if text.contains(&format!(" shard={want}\n")) {
            return Some(c);
        }
    }
    None
}

#[test]
fn a_panicking_shard_takes_the_process_down_with_a_crash_report() {
    let mut args = vec!["--appendfsync", "always"];
    args.extend(debug_enabled_args());
    let mut s = Server::start(4, &args);
    // Acknowledged writes on every shard before the crash.
    let mut c = s.conn();
    for i in 0..64 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]), Value::ok());
    }
    let mut others: Vec<RespConn> = (0..4).filter(|&sh| sh != 2).filter_map(|sh| conn_on_shard(&s, sh)).collect();
    assert_eq!(others.len(), 3, "no connection on some shard");
    let mut victim = conn_on_shard(&s, 2).expect("a connection on shard 2");
    victim.send_raw(b"*2\r\n$5\r\nDEBUG\r\n$5\r\nPANIC\r\n").expect("send");

    let status = s.wait_exit(Duration::from_secs(20));
    let logs = s.logs();
    let status = status.unwrap_or_else(|| panic!("server still running 20 s after a shard panicked\n{logs}"));
    assert!(!status.success(), "exit status {status:?} must say failure");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    assert!(logs.contains("CRASH REPORT"), "{logs}");
    assert!(logs.contains("panic in thread 'shard-2'"), "{logs}");
    assert!(logs.contains("DEBUG PANIC called by client"), "{logs}");
    assert!(logs.contains("backtrace:") && logs.contains("cmd_debug"), "no backtrace in the log:\n{logs}");
    // Nobody is left serving: the other shards' clients see the end.
    for o in others.iter_mut() {
        o.set_read_timeout(Some(Duration::from_secs(5)));
        assert!(o.try_cmd(&["PING"]).is_err(), "a shard still answers after the crash");
    }

    // Recovery: the abort is a kill -9; everything acknowledged is back.
    s.restart().expect("restart after the crash");
    let mut c = s.conn();
    for i in 0..64 {
        assert_eq!(c.cmd(&["GET", &format!("k{i}")]), Value::bulk(format!("v{i}")));
    }
}

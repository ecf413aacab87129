//! Slow readers (issue 13, item 9): client-output-buffer-limit closes a
//! subscriber that does not read, and a client pipelining big replies
//! without reading is paused, so server memory stays bounded.

mod common;

use common::procfs::status_bytes;
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

const MB: u64 = 1 << 20;

fn info_field(s: &Server, section: &str, field: &str) -> Option<u64> {
    let v = s.conn().cmd(&["INFO", section]);
    let text = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))?.trim().parse().ok())
}

/// A subscriber that reads its confirmation and then nothing more.
fn silent_subscriber(s: &Server, channel: &str) -> RespConn {
    let mut sub = s.conn();
    let v = sub.cmd(&["SUBSCRIBE", channel]);
    assert_eq!(v.as_items().map(|i| i.len()), Some(3), "{v:?}");
    sub
}

/// CLIENT LIST lines of subscribers.
fn subscriber_lines(c: &mut RespConn) -> Vec<String> {
    let v = c.cmd(&["CLIENT", "LIST"]);
    String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).lines().filter(|l| l.contains(" sub=1 ")).map(String::from).collect()
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_hard_limit() {
    let s = Server::start(1, &[]);
    let pid = s.pid();
    let _sub = silent_subscriber(&s, "news");
    let mut publisher = s.conn();
    let message = vec![b'x'; MB as usize];
    // 256 MiB published; the default pubsub limit is 32 MiB hard.
    let mut delivered_after = None;
    for i in 0..256 {
        let n = publisher.cmd(&[&b"PUBLISH"[..], b"news", &message]).as_int().expect("PUBLISH count");
        if n == 0 && delivered_after.is_none() {
            delivered_after = Some(i);
        }
    }
    let hwm = status_bytes(pid, "VmHWM");
    eprintln!("peak RSS {} MiB; subscriber gone after {delivered_after:?} messages", hwm / MB);
    assert!(delivered_after.is_some(), "the subscriber was never disconnected");
    assert!(hwm < 160 * MB, "server peak RSS {} MiB after publishing 256 MiB to a silent subscriber", hwm / MB);
    assert_eq!(info_field(&s, "stats", "client_output_buffer_limit_disconnections"), Some(1));
    assert!(subscriber_lines(&mut publisher).is_empty());
    assert!(s.logs().contains("output buffer limit"), "{}", s.logs());
}

#[test]
fn a_subscriber_over_the_soft_limit_for_its_seconds_is_disconnected() {
    let s = Server::start(1, &[]);
    let mut c = s.conn();
    assert!(c.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1x 0 0"]).is_error());
    assert_eq!(c.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 1mb 1"]), Value::ok());
    let got = c.cmd(&["CONFIG", "GET", "client-output-buffer-limit"]);
    assert_eq!(
        got.as_items().and_then(|i| i.get(1)).cloned(),
        Some(Value::bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 0 1048576 1"))
    );
    let _sub = silent_subscriber(&s, "news");
    let message = vec![b'y'; 256 << 10];
    // No hard limit: only the soft one (1 MiB for over 1 s) can close it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut max_omem = 0u64;
    let mut published = 0;
    loop {
        let lines = subscriber_lines(&mut c);
        let Some(line) = lines.first() else { break };
        let omem: u64 =
            line.split(' ').find_map(|f| f.strip_prefix("omem=")).and_then(|v| v.parse().ok()).expect("omem field");
        max_omem = max_omem.max(omem);
        assert!(Instant::now() < deadline && published < 400, "never disconnected (omem {omem}, {published} published)");
        c.cmd(&[&b"PUBLISH"[..], b"news", &message]);
        published += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(max_omem >= MB, "CLIENT LIST omem never showed the unsent output (max {max_omem})");
    assert_eq!(info_field(&s, "stats", "client_output_buffer_limit_disconnections"), Some(1));
    assert!(info_field(&s, "clients", "client_recent_max_output_buffer").is_some_and(|v| v >= MB));
}

#[test]
fn a_client_pipelining_big_replies_without_reading_is_paused_then_resumes() {
    let s = Server::start(1, &[]);
    let pid = s.pid();
    let value = vec![b'v'; MB as usize];
    assert_eq!(s.conn().cmd(&[&b"SET"[..], b"big", &value]), Value::ok());
    let before = status_bytes(pid, "VmRSS");
    // 600 GETs (600 MiB of replies) in one write, then no reading for a while.
    let n = 600;
    let mut c = s.conn();
    c.send_raw(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(n)).expect("send");
    let t0 = Instant::now();
    let mut last = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        let hwm = status_bytes(pid, "VmHWM");
        if hwm == last {
            break; // stopped growing
        }
        last = hwm;
    }
    let hwm = status_bytes(pid, "VmHWM");
    eprintln!("RSS before {} MiB, peak {} MiB", before / MB, hwm / MB);
    assert!(hwm < before + 256 * MB, "server grew by {} MiB for a client that does not read", (hwm - before) / MB);
    // The client reads now: every reply arrives, and it is served again.
    c.set_read_timeout(Some(Duration::from_secs(30)));
    for i in 0..n {
        let v = c.read_value().unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert!(v.as_bytes().is_some_and(|b| b.len() == MB as usize), "reply {i}");
    }
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
}

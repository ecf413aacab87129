//! Protocol robustness over raw sockets. Malformed input is sent to both
//! redis-server and shardis-server; replies (and whether the server closed
//! the connection) are compared, and after every abuse a fresh connection
//! must still be served.

mod common;

use std::io::{self, Write};
use std::thread;
use std::time::Duration;

use common::resp::read_value;
use common::{encode_command, resp::escape, RespConn, Server, Value};
use rand::{Rng, SeedableRng};

/// How long a connection must stay silent before we conclude the server is
/// waiting for more input.
const IDLE: Duration = Duration::from_millis(300);

type Outcome = (Vec<u8>, bool);

fn show(o: &Outcome) -> String {
    format!("\"{}\" ({})", escape(&o.0), if o.1 { "closed" } else { "open" })
}

/// Send raw bytes on a new connection; collect what comes back until the
/// server closes or goes idle.
fn exchange(server: &Server, bytes: &[u8]) -> Outcome {
    let mut c = server.raw_conn();
    c.send_raw(bytes).unwrap();
    c.read_until_idle(IDLE)
}

/// The same bytes against both servers, concurrently.
fn both(redis: &Server, ours: &Server, bytes: &[u8]) -> (Outcome, Outcome) {
    thread::scope(|s| {
        let r = s.spawn(|| exchange(redis, bytes));
        let o = exchange(ours, bytes);
        (r.join().unwrap(), o)
    })
}

/// A well-behaved client must still be served.
fn assert_alive(server: &Server, after: &str) {
    let mut c = RespConn::connect(server.port)
        .unwrap_or_else(|e| panic!("{}: cannot connect after {after}: {e}\n{}", server.name, server.logs()));
    if let Some(pw) = &server.password {
        assert_eq!(c.cmd(&["AUTH", pw.as_str()]), Value::ok());
    }
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()), "{} after {after}", server.name);
    assert_eq!(c.cmd(&["SET", "alive:probe", "yes"]), Value::ok(), "{} after {after}", server.name);
    assert_eq!(c.cmd(&["GET", "alive:probe"]), Value::bulk("yes"), "{} after {after}", server.name);
}

fn servers() -> (Server, Server) {
    // Two shards so the cross-shard dispatch path sees the traffic too.
    (Server::start_redis(), Server::start(2, &[]))
}

/// (description, bytes, expected outcome as observed on redis 7.0).
/// Expectations are asserted against redis too, so a redis that behaves
/// differently is caught rather than silently redefining the contract.
fn core_cases() -> Vec<(&'static str, Vec<u8>, Option<Outcome>)> {
    let closed = |s: &str| Some((s.as_bytes().to_vec(), true));
    let open = |s: &str| Some((s.as_bytes().to_vec(), false));
    vec![
        ("inline PING", b"PING\r\n".to_vec(), open("+PONG\r\n")),
        ("inline PING with bare LF", b"PING\n".to_vec(), open("+PONG\r\n")),
        ("empty inline lines are skipped", b"\r\n\r\nPING\r\n".to_vec(), open("+PONG\r\n")),
        ("negative multibulk count is a no-op", b"*-5\r\nPING\r\n".to_vec(), open("+PONG\r\n")),
        ("zero multibulk count is a no-op", b"*0\r\nPING\r\n".to_vec(), open("+PONG\r\n")),
        (
            "multibulk count above INT_MAX",
            b"*2147483648\r\n".to_vec(),
            closed("-ERR Protocol error: invalid multibulk length\r\n"),
        ),
        (
            "non-numeric multibulk count",
            b"*abc\r\n".to_vec(),
            closed("-ERR Protocol error: invalid multibulk length\r\n"),
        ),
        ("multibulk count with sign", b"*+1\r\n".to_vec(), closed("-ERR Protocol error: invalid multibulk length\r\n")),
        (
            "huge bulk length",
            b"*1\r\n$999999999999\r\n".to_vec(),
            closed("-ERR Protocol error: invalid bulk length\r\n"),
        ),
        (
            "bulk length above proto-max-bulk-len",
            b"*1\r\n$536870913\r\n".to_vec(),
            closed("-ERR Protocol error: invalid bulk length\r\n"),
        ),
        ("negative bulk length", b"*1\r\n$-1\r\n".to_vec(), closed("-ERR Protocol error: invalid bulk length\r\n")),
        ("non-numeric bulk length", b"*1\r\n$abc\r\n".to_vec(), closed("-ERR Protocol error: invalid bulk length\r\n")),
        ("wrong type byte", b"*1\r\nx\r\n".to_vec(), closed("-ERR Protocol error: expected '$', got 'x'\r\n")),
        (
            "array nested in command",
            b"*2\r\n$3\r\nGET\r\n*1\r\n".to_vec(),
            closed("-ERR Protocol error: expected '$', got '*'\r\n"),
        ),
        (
            "unbalanced double quotes",
            b"set \"a b\r\n".to_vec(),
            closed("-ERR Protocol error: unbalanced quotes in request\r\n"),
        ),
        (
            "unbalanced single quotes",
            b"echo 'a''b'\r\n".to_vec(),
            closed("-ERR Protocol error: unbalanced quotes in request\r\n"),
        ),
        ("inline quoting and escapes", b"set pq \"b\\x41\\n\" \r\nget pq\r\n".to_vec(), open("+OK\r\n$3\r\nbA\n\r\n")),
        ("inline too big", vec![b'a'; 70_000], closed("-ERR Protocol error: too big inline request\r\n")),
        (
            "pipelined multibulk + inline",
            b"*3\r\n$3\r\nSET\r\n$2\r\npk\r\n$2\r\nvv\r\nGET pk\r\n".to_vec(),
            open("+OK\r\n$2\r\nvv\r\n"),
        ),
        ("incomplete bulk waits", b"*2\r\n$4\r\nECHO\r\n$3\r\nabcXY".to_vec(), open("$3\r\nabc\r\n")),
        (
            "unknown inline command",
            b"foo bar\r\n".to_vec(),
            open("-ERR unknown command 'foo', with args beginning with: 'bar' \r\n"),
        ),
        ("QUIT closes after +OK", b"QUIT\r\nPING\r\n".to_vec(), closed("+OK\r\n")),
    ]
}

#[test]
fn core_cases_match_redis() {
    let (redis, ours) = servers();
    let mut failures = Vec::new();
    for (what, bytes, expected) in core_cases() {
        let (r, o) = both(&redis, &ours, &bytes);
        if let Some(e) = &expected {
            assert_eq!(show(&r), show(e), "redis-server itself disagrees with the expectation for {what}");
        }
        if r != o {
            failures.push(format!("{what}:\n  redis   {}\n  shardis {}", show(&r), show(&o)));
        }
        assert_alive(&ours, what);
    }
    assert!(failures.is_empty(), "protocol differences:\n{}", failures.join("\n"));
}

/// Redis oddities that need not be reproduced bit for bit: shardis must
/// either match redis or reject with a protocol error and close.
#[test]
fn quirk_cases_are_handled_sanely() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Redis 7 only rejects counts above INT_MAX and waits for the
        // elements; rejecting early (redis 6 did above 1M) is fine too, but
        // the count must never be preallocated.
        ("large multibulk count", b"*99999999\r\n".to_vec()),
        // Redis waits for the CR before looking at the type byte.
        ("wrong type byte, incomplete line", b"*1\r\nx".to_vec()),
        ("bulk longer than declared", b"*1\r\n$3\r\nabcdef\r\n".to_vec()),
        ("bulk not followed by CRLF", b"*1\r\n$4\r\nPING\n\n".to_vec()),
        ("binary garbage line", b"\x01\x02garbage\xff\r\n".to_vec()),
        ("NUL in inline command", b"\x00\x01\x02garbage\xff\r\n".to_vec()),
        ("bulk at top level", b"$3\r\nabc\r\n".to_vec()),
        ("leading zeros", b"*01\r\n$04\r\nPING\r\n".to_vec()),
        ("space in count", b"*1 \r\n".to_vec()),
        ("plus sign in bulk length", b"*1\r\n$+4\r\nPING\r\n".to_vec()),
    ];
    let (redis, ours) = servers();
    let mut failures = Vec::new();
    for (what, bytes) in cases {
        let (r, o) = both(&redis, &ours, &bytes);
        let rejected = o.1 && o.0.starts_with(b"-ERR Protocol error");
        if r != o && !rejected {
            failures.push(format!("{what}:\n  redis   {}\n  shardis {}", show(&r), show(&o)));
        }
        assert_alive(&ours, what);
    }
    assert!(failures.is_empty(), "unacceptable handling:\n{}", failures.join("\n"));
}

/// Everything a server sends must be well-formed RESP.
fn assert_parses(what: &str, bytes: &[u8]) {
    let mut cur = io::Cursor::new(bytes);
    while (cur.position() as usize) < bytes.len() {
        if let Err(e) = read_value(&mut cur) {
            panic!("{what}: malformed reply stream ({e}): \"{}\"", escape(bytes));
        }
    }
}

#[test]
fn random_garbage_does_not_hurt() {
    let (_redis, ours) = servers();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..40 {
        let len = rng.gen_range(1..300);
        let mut blob: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Bias towards protocol-looking bytes so the parser goes deeper.
        for b in blob.iter_mut() {
            if rng.gen_bool(0.3) {
                *b = *b"*$\r\n0123456789-".get(rng.gen_range(0..15)).unwrap();
            }
        }
        if rng.gen_bool(0.5) {
            blob.extend_from_slice(b"\r\n");
        }
        let what = format!("garbage #{i}: \"{}\"", escape(&blob));
        let (out, _closed) = exchange(&ours, &blob);
        assert_parses(&what, &out);
        assert_alive(&ours, &what);
    }
}

#[test]
fn half_command_then_disconnect() {
    let (_redis, ours) = servers();
    let partials: &[&[u8]] = &[
        b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nva",
        b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n",
        b"*3\r\n$3\r\nSE",
        b"*3\r\n",
        b"*",
        b"SET half inline",
    ];
    for p in partials {
        let mut c = ours.raw_conn();
        c.send_raw(p).unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(c);
        let what = format!("partial \"{}\" then disconnect", escape(p));
        assert_alive(&ours, &what);
        assert_eq!(ours.conn().cmd(&["EXISTS", "half"]), Value::Int(0), "{what}: partial command was executed");
    }
    // Same after a reset (SO_LINGER 0) instead of an orderly close.
    let c = ours.raw_conn();
    let mut s = c.stream().try_clone().unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
    drop(c);
    assert_alive(&ours, "connection reset mid-command");
}

/// 10k commands in one write; replies must all arrive, in order.
#[test]
fn pipeline_10k_commands() {
    let (_redis, ours) = servers();
    let n = 10_000;
    let mut buf = Vec::new();
    let mut expected = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("pipe:{}", (i / 4) % 97);
        match i % 4 {
            0 => {
                buf.extend(encode_command(&["SET", &key, &i.to_string()]));
                expected.push(Value::ok());
            }
            1 => {
                buf.extend(encode_command(&["GET", &key]));
                expected.push(Value::bulk((i - 1).to_string()));
            }
            2 => {
                buf.extend(encode_command(&["INCR", &key]));
                expected.push(Value::Int(i as i64 - 1));
            }
            _ => {
                buf.extend(b"ECHO inline\r\n");
                expected.push(Value::bulk("inline"));
            }
        }
    }
    let mut c = ours.conn();
    let mut w = c.stream().try_clone().unwrap();
    // Write from another thread: the server may block on a full socket
    // buffer until we read.
    let writer = thread::spawn(move || w.write_all(&buf));
    for (i, e) in expected.iter().enumerate() {
        let got = c.read_value().unwrap_or_else(|err| panic!("reply #{i}: {err}"));
        assert_eq!(&got, e, "reply #{i}");
    }
    writer.join().unwrap().unwrap();
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
}

/// A command trickled in one byte at a time, and a large value.
#[test]
fn fragmented_and_large_requests() {
    let (_redis, ours) = servers();
    let mut c = ours.conn();
    for b in encode_command(&["SET", "frag", "hello world"]) {
        c.send_raw(&[b]).unwrap();
    }
    assert_eq!(c.read_value().unwrap(), Value::ok());
    assert_eq!(c.cmd(&["GET", "frag"]), Value::bulk("hello world"));

    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(c.cmd(&[&b"SET"[..], b"big", &big]), Value::ok());
    assert_eq!(c.cmd(&["STRLEN", "big"]), Value::Int(big.len() as i64));
    assert_eq!(c.cmd(&["GET", "big"]), Value::Bulk(big));
}

#[test]
fn many_concurrent_connections() {
    let (_redis, ours) = servers();
    thread::scope(|s| {
        for t in 0..8 {
            let ours = &ours;
            s.spawn(move || {
                let mut conns: Vec<RespConn> = (0..25).map(|_| ours.conn()).collect();
                for round in 0..20 {
                    for (i, c) in conns.iter_mut().enumerate() {
                        let key = format!("conn:{t}:{i}");
                        assert_eq!(c.cmd(&["INCR", &key]), Value::Int(round + 1));
                    }
                }
            });
        }
    });
    assert_eq!(ours.conn().cmd(&["DBSIZE"]), Value::Int(200));
}

#[test]
fn auth_matches_redis() {
    let redis = Server::start_redis_with(&["--requirepass", "pw"]);
    let ours = Server::start(2, &["--requirepass", "pw"]);
    let cases: &[(&str, &[u8])] = &[
        ("command before AUTH", b"GET a\r\n"),
        ("PING before AUTH", b"PING\r\n"),
        ("wrong password", b"AUTH nope\r\n"),
        ("right password", b"AUTH pw\r\nGET a\r\n"),
        ("HELLO before AUTH", b"HELLO 3\r\n"),
        ("unauthenticated multibulk limit", b"*11\r\n"),
        ("unauthenticated multibulk within limit", b"*10\r\n"),
        ("unauthenticated bulk limit", b"*1\r\n$16385\r\n"),
        ("unauthenticated bulk within limit", b"*1\r\n$16384\r\n"),
    ];
    let mut failures = Vec::new();
    for (what, bytes) in cases {
        let (r, o) = both(&redis, &ours, bytes);
        if r != o {
            failures.push(format!("{what}:\n  redis   {}\n  shardis {}", show(&r), show(&o)));
        }
        assert_alive(&ours, what);
    }
    assert!(failures.is_empty(), "auth differences:\n{}", failures.join("\n"));
}

/// The test client's own parser, on every RESP2/RESP3 type.
mod client_parser {
    use super::common::resp::read_value;
    use super::common::Value;
    use std::io;

    fn parse(b: &[u8]) -> Value {
        read_value(&mut io::Cursor::new(b)).unwrap()
    }

    #[test]
    fn parses_resp2_and_resp3() {
        assert_eq!(parse(b"+OK\r\n"), Value::ok());
        assert_eq!(parse(b"$-1\r\n"), Value::NilBulk);
        assert_eq!(parse(b"*-1\r\n"), Value::NilArray);
        assert_eq!(parse(b"$0\r\n\r\n"), Value::bulk(""));
        assert_eq!(parse(b"*2\r\n:1\r\n$2\r\na\n\r\n"), Value::Array(vec![Value::Int(1), Value::bulk("a\n")]));
        assert_eq!(
            parse(b"%1\r\n+k\r\n,1.5\r\n"),
            Value::Map(vec![(Value::Simple("k".into()), Value::Double("1.5".into()))])
        );
        assert_eq!(parse(b"~1\r\n#t\r\n"), Value::Set(vec![Value::Bool(true)]));
        assert_eq!(parse(b"=7\r\ntxt:abc\r\n"), Value::Verbatim("txt".into(), b"abc".to_vec()));
        assert_eq!(parse(b"!3\r\nERR\r\n"), Value::err("ERR"));
        assert_eq!(parse(b"|1\r\n+a\r\n+b\r\n:5\r\n"), Value::Int(5));
        assert_eq!(parse(b"(123\r\n"), Value::BigNum("123".into()));
        assert_eq!(parse(b">1\r\n_\r\n"), Value::Push(vec![Value::Null]));
    }
}

//! Security defaults against a live server: protected mode, who may run
//! DEBUG, AUTH, what CONFIG SET accepts, and CONFIG REWRITE's file.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::{RespConn, Server, Value};

/// An address of this (test-made) host that is not on the loopback.
const OUTSIDE: &str = "198.51.100.1";

/// Give the calling thread a network namespace of its own with the loopback
/// up and `OUTSIDE` on it, so a client can reach a server from an address
/// that is not 127.x without any traffic leaving the namespace. Processes
/// started from this thread share it. Err(why) where that is not possible.
fn private_network() -> Result<(), String> {
    // SAFETY: unshare on the calling thread only; no memory is involved.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error()));
    }
    for args in [&["link", "set", "lo", "up"][..], &["addr", "add", &format!("{OUTSIDE}/32"), "dev", "lo"]] {
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// Connect from `OUTSIDE` and read what the server says before closing,
/// without sending anything. (The line, closed by the server?)
fn first_words_to_outsider(port: u16) -> (String, bool) {
    let mut s = TcpStream::connect((OUTSIDE, port)).expect("connect from outside");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

fn outsider(port: u16) -> RespConn {
    RespConn::connect_to(OUTSIDE, port).expect("connect from outside")
}

#[test]
fn protected_mode_turns_away_outside_clients_without_a_password() {
    // In a thread of its own: the namespace is that thread's.
    let t = std::thread::spawn(|| {
        if let Err(why) = private_network() {
            eprintln!("SKIPPED protected mode over a non-loopback address: {why}");
            return;
        }
        let s = Server::start(2, &["--bind", "0.0.0.0", "--enable-debug-command", "local"]);
        // Outside, no password: DENIED with Redis's text, then closed.
        let (line, closed) = first_words_to_outsider(s.port);
        assert!(line.starts_with("-DENIED Redis is running in protected mode"), "{line}");
        assert!(line.ends_with("accepting connections from the outside.\r\n") && closed, "{line}");
        // The loopback is served as before.
        let mut local = s.conn();
        assert_eq!(local.cmd(&["PING"]), Value::Simple("PONG".into()));
        // A password lifts it: the outsider gets in and must AUTH.
        assert_eq!(local.cmd(&["CONFIG", "SET", "requirepass", "pw"]), Value::ok());
        let mut out = outsider(s.port);
        assert!(matches!(out.cmd(&["PING"]), Value::Error(e) if e.starts_with("NOAUTH")));
        assert_eq!(out.cmd(&["AUTH", "pw"]), Value::ok());
        // DEBUG `local`: refused to the outsider, fine on the loopback.
        assert!(
            matches!(out.cmd(&["DEBUG", "SLEEP", "0"]), Value::Error(e) if e.starts_with("ERR DEBUG command not allowed"))
        );
        assert_eq!(local.cmd(&["AUTH", "pw"]), Value::ok());
        assert_eq!(local.cmd(&["DEBUG", "SLEEP", "0"]), Value::ok());
        // So does turning it off.
        assert_eq!(local.cmd(&["CONFIG", "SET", "requirepass", ""]), Value::ok());
        assert_eq!(local.cmd(&["CONFIG", "SET", "protected-mode", "no"]), Value::ok());
        assert_eq!(outsider(s.port).cmd(&["PING"]), Value::Simple("PONG".into()));
    });
    t.join().expect("protected mode test thread");
}

#[test]
fn debug_is_off_by_default() {
    let s = Server::start(1, &["--enable-debug-command", "no"]);
    let mut c = s.conn();
    let want = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0"]), Value::err(want));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "enable-debug-command"]),
        Value::Array(vec![Value::bulk("enable-debug-command"), Value::bulk("no")])
    );
    assert!(c.cmd(&["CONFIG", "SET", "enable-debug-command", "yes"]).is_error(), "fixed at start, as in Redis");
    let s = Server::start(1, &["--enable-debug-command", "local"]);
    assert_eq!(s.conn().cmd(&["DEBUG", "SLEEP", "0"]), Value::ok());
}

#[test]
fn auth_and_hello_auth_check_the_password() {
    let s = Server::start(2, &["--requirepass", "s3cret"]);
    let mut c = s.raw_conn();
    for wrong in ["s3cre", "s3cret!", "S3cret", ""] {
        assert!(matches!(c.cmd(&["AUTH", wrong]), Value::Error(e) if e.starts_with("WRONGPASS")), "{wrong:?}");
        assert!(
            matches!(c.cmd(&["HELLO", "2", "AUTH", "default", wrong]), Value::Error(e) if e.starts_with("WRONGPASS"))
        );
    }
    assert!(matches!(c.cmd(&["GET", "k"]), Value::Error(e) if e.starts_with("NOAUTH")));
    assert!(c.cmd(&["HELLO", "2", "AUTH", "default", "s3cret"]).as_items().is_some());
    assert_eq!(c.cmd(&["GET", "k"]), Value::NilBulk);
    assert_eq!(s.raw_conn().cmd(&["AUTH", "s3cret"]), Value::ok());
}

#[test]
fn config_set_refuses_values_that_would_break_the_server() {
    let s = Server::start(2, &[]);
    let mut c = s.conn();
    for (name, value, why) in [
        ("client-query-buffer-limit", "-1", "argument must be a memory value"),
        ("client-query-buffer-limit", "1", "argument must be between 1048576 and 9223372036854775807 inclusive"),
        ("maxclients", "0", "argument must be between 1 and 4294967295 inclusive"),
        ("timeout", "-1", "argument must be between 0 and 2147483647 inclusive"),
        ("slowlog-max-len", "-1", "argument must be between 0 and 9223372036854775807 inclusive"),
        ("hash-max-listpack-entries", "-1", "argument must be between 0 and 9223372036854775807 inclusive"),
    ] {
        let want = format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
        assert_eq!(c.cmd(&["CONFIG", "SET", name, value]), Value::Error(want));
    }
    // Nothing changed: every client, old and new, is still served.
    let limit = c.cmd(&["CONFIG", "GET", "client-query-buffer-limit"]);
    assert_eq!(limit, Value::Array(vec![Value::bulk("client-query-buffer-limit"), Value::bulk("1073741824")]));
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
    assert_eq!(s.conn().cmd(&["GET", "k"]), Value::bulk("v"));
    // The smallest values Redis takes are taken.
    assert_eq!(c.cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb", "maxclients", "1"]), Value::ok());
}

#[test]
fn config_rewrite_keeps_the_file_mode_and_leaves_no_temp_file() {
    let file = common::server::config_file("rewrite", "slowlog-max-len = 64\n");
    let dir = file.parent().expect("config dir").to_path_buf();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = file.to_string_lossy().into_owned();
    let s = Server::start(1, &["--config", &path]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-samples", "7"]), Value::ok());
    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), Value::ok());
    let mode = std::fs::metadata(&file).expect("config file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "CONFIG REWRITE changed the mode to {mode:o}");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("maxmemory-samples = 7") && text.contains("slowlog-max-len = 64"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&dir).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("shardis.toml")]);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

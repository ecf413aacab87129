//! Per-connection commands on the monitor's port: `HELLO`, `CLIENT
//! ID|SETNAME|GETNAME`, and what a connection's protocol (RESP2/RESP3)
//! changes. Pure: the driver's connection thread keeps a `ConnState` and
//! calls `hello`/`client`; they only write a reply. Replies follow Redis
//! Sentinel 7.0's: HELLO's map has no `role` field in sentinel mode, and the
//! monitor has no password, so `HELLO .. AUTH default <anything>` is
//! accepted and any other user is refused, as Sentinel without
//! `requirepass` does.

use crate::protocol::reply::Reply;
use crate::util::parse_i64;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// What a connection to the monitor keeps between requests.
#[derive(Debug, Default)]
pub struct ConnState {
    pub id: u64,
    pub resp3: bool,
    pub name: Vec<u8>,
}

impl ConnState {
    pub fn new(id: u64) -> ConnState {
        ConnState { id, resp3: false, name: Vec::new() }
    }
}

fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| b > b' ' && b <= b'~')
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn is(a: &[u8], word: &str) -> bool {
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(c: &mut ConnState, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut proto = if c.resp3 { 3 } else { 2 };
    let mut i = 1;
    if let Some(v) = args.get(1) {
        match parse_i64(v) {
            Some(v @ (2 | 3)) => proto = v,
            Some(_) => return Reply::new(out, c.resp3).error("NOPROTO unsupported protocol version"),
            None => return Reply::new(out, c.resp3).error("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        if is(&args[i], "AUTH") && i + 2 < args.len() {
            if !is(&args[i + 1], "default") {
                return Reply::new(out, c.resp3).error(WRONGPASS);
            }
            i += 3;
        } else if is(&args[i], "SETNAME") && i + 1 < args.len() {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(&args[i]);
            return Reply::new(out, c.resp3).error(&format!("ERR Syntax error in HELLO option '{opt}'"));
        }
    }
    if let Some(n) = name {
        if !valid_name(&n) {
            return Reply::new(out, c.resp3).error(BAD_NAME);
        }
        c.name = n;
    }
    c.resp3 = proto == 3;
    let mut r = Reply::new(out, c.resp3);
    r.map(6);
    r.bulk_str("server");
    r.bulk_str("redis");
    r.bulk_str("version");
    r.bulk_str(crate::cmd::server::REDIS_VERSION);
    r.bulk_str("proto");
    r.int(proto);
    r.bulk_str("id");
    r.int(c.id as i64);
    r.bulk_str("mode");
    r.bulk_str("sentinel");
    r.bulk_str("modules");
    r.array(0);
}

/// CLIENT ID | SETNAME name | GETNAME (what Sentinel clients send).
pub fn client(c: &mut ConnState, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut r = Reply::new(out, c.resp3);
    let sub = args.get(1).map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default();
    match (sub.as_str(), args.len()) {
        ("id", 2) => r.int(c.id as i64),
        ("getname", 2) if c.name.is_empty() => r.null(),
        ("getname", 2) => r.bulk(&c.name),
        ("setname", 3) if !valid_name(&args[2]) => r.error(BAD_NAME),
        ("setname", 3) => {
            c.name = args[2].clone();
            r.ok()
        }
        ("", _) => r.error("ERR wrong number of arguments for 'client' command"),
        ("id" | "getname" | "setname", _) => {
            r.error(&format!("ERR wrong number of arguments for 'client|{sub}' command"))
        }
        _ => {
            let shown: String = sub.chars().take(64).collect();
            r.error(&format!("ERR unknown subcommand '{shown}'. Try CLIENT HELP."))
        }
    }
}

/// PING on a subscribed connection: RESP2 answers `["pong", msg]` there,
/// RESP3 as anywhere else.
pub fn ping(c: &ConnState, args: &[Vec<u8>], subscribed: bool, out: &mut Vec<u8>) {
    let mut r = Reply::new(out, c.resp3);
    match args.len() {
        1 | 2 if subscribed && !c.resp3 => {
            r.array(2);
            r.bulk_str("pong");
            r.bulk(args.get(1).map(Vec::as_slice).unwrap_or(b""));
        }
        1 => r.simple("PONG"),
        2 => r.bulk(&args[1]),
        _ => r.error("ERR wrong number of arguments for 'ping' command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &mut ConnState, line: &str) -> String {
        let args: Vec<Vec<u8>> = line.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        let mut out = Vec::new();
        hello(c, &args, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn hello_switches_protocol_and_refuses_bad_input() {
        let mut c = ConnState::new(7);
        assert!(run(&mut c, "HELLO").starts_with("*12\r\n$6\r\nserver\r\n"));
        assert!(!c.resp3);
        let r = run(&mut c, "HELLO 3 AUTH default x SETNAME app");
        assert!(r.starts_with("%6\r\n") && r.contains("$4\r\nmode\r\n$8\r\nsentinel\r\n") && r.contains(":7\r\n"));
        assert!(c.resp3 && c.name == b"app");
        assert_eq!(run(&mut c, "HELLO 4"), "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(run(&mut c, "HELLO x"), "-ERR Protocol version is not an integer or out of range\r\n");
        assert_eq!(run(&mut c, "HELLO 2 AUTH bob x"), format!("-{WRONGPASS}\r\n"));
        assert_eq!(run(&mut c, "HELLO 2 SETNAME a b"), "-ERR Syntax error in HELLO option 'b'\r\n");
        assert_eq!(run(&mut c, "HELLO 2 AUTH"), "-ERR Syntax error in HELLO option 'AUTH'\r\n");
        assert!(c.resp3, "a refused HELLO leaves the protocol as it was");
        assert!(run(&mut c, "HELLO 2").starts_with("*12\r\n"));
        assert!(!c.resp3);
    }
}

//! Connection commands: PING, ECHO, SELECT, TIME (session commands, which
//! also run inside transactions), QUIT, RESET, AUTH and HELLO.

use super::{server, session};
use crate::cmd::flags::*;
use crate::cmd::{self, err, Args, CommandDef, Session};
use crate::keyspace::NUM_DBS;
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};

/// QUIT and RESET run at once inside MULTI and in subscribe mode, before
/// authentication, while loading, on a stale replica and when busy.
const ALWAYS: Flags = NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | NEVER_QUEUED | SUBSCRIBED_OK;
/// AUTH and HELLO: before authentication; their arguments carry passwords.
const LOGIN: Flags = NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | SENTINEL | SECRET_ARGS;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

const fn conn(d: CommandDef) -> CommandDef {
    d.acl(acl::CONNECTION).group(Group::Connection)
}

pub static COMMANDS: &[CommandDef] = &[
    conn(session("ping", -1, FAST | SENTINEL | SUBSCRIBED_OK, ping))
        .since("1.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    conn(session("echo", 2, LOADING | STALE | FAST, echo)).since("1.0.0"),
    conn(session("select", 2, LOADING | STALE | FAST, select)).since("1.0.0"),
    session("time", 1, LOADING | STALE | FAST, time)
        .group(Group::Server)
        .since("2.6.0")
        .tips(&["nondeterministic_output"]),
    conn(server("quit", -1, ALWAYS, Shard::cmd_quit)).since("1.0.0"),
    conn(server("reset", 1, ALWAYS, Shard::cmd_reset)).since("6.2.0"),
    server("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, Shard::cmd_monitor).group(Group::Server).since("1.0.0"),
    conn(server("auth", -2, LOGIN, Shard::cmd_auth)).since("1.0.0"),
    conn(server("hello", -1, LOGIN, Shard::cmd_hello)).since("6.0.0"),
];

/// PING [message]
fn ping(s: &mut Session, args: &Args) {
    if args.len() > 2 {
        return cmd::arity_error(&mut s.out, "ping");
    }
    let msg = (args.len() == 2).then(|| args.get(1));
    if s.subscribed_resp2 {
        // In RESP2 subscribe mode PING answers as a push: [pong, msg].
        s.out.array(2);
        s.out.bulk(b"pong");
        s.out.bulk(msg.unwrap_or(b""));
    } else {
        match msg {
            Some(m) => s.out.bulk(m),
            None => s.out.simple("PONG"),
        }
    }
}

/// ECHO message
fn echo(s: &mut Session, args: &Args) {
    s.out.bulk(args.get(1))
}

/// SELECT index
fn select(s: &mut Session, args: &Args) {
    match cmd::parse_int_arg(args.get(1), None) {
        Ok(d) if (0..NUM_DBS as i32).contains(&d) => {
            s.db = d as usize;
            s.out.ok();
        }
        Ok(_) => s.out.error(err::DB_INDEX),
        Err(e) => s.out.error(e),
    }
}

/// TIME: seconds and microseconds.
fn time(s: &mut Session, _: &Args) {
    let us = crate::util::now_us();
    s.out.array(2);
    s.out.bulk_str(&(us / 1_000_000).to_string());
    s.out.bulk_str(&(us % 1_000_000).to_string());
}

impl Shard {
    /// QUIT: OK, then close once it is sent.
    fn cmd_quit(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).ok();
        conn.close_after_flush = true;
    }

    /// RESET: back to a fresh connection's state (no MULTI, WATCH or
    /// subscriptions, db 0, RESP2, no name, authenticated only if no
    /// password is set).
    fn cmd_reset(&mut self, conn: &mut Conn, _: &Args) {
        let ws = std::mem::take(&mut conn.watch_shards);
        self.unwatch_everywhere(conn.id, &ws);
        self.unsubscribe_all(conn);
        reset(&self.acl, conn);
    }

    /// AUTH [username] password
    fn cmd_auth(&mut self, conn: &mut Conn, args: &Args) {
        match auth(&self.acl, conn, args) {
            Ok(()) => Reply::new(&mut conn.out, conn.resp3).ok(),
            Err(e) => {
                if let Some(name) = e.failed {
                    self.log_acl(conn, "auth", "toplevel", "AUTH".into(), name);
                }
                Reply::new(&mut conn.out, conn.resp3).error(e.text)
            }
        }
    }

    /// HELLO [protover [AUTH username password] [SETNAME clientname]]
    fn cmd_hello(&mut self, conn: &mut Conn, args: &Args) {
        let mut out = std::mem::take(&mut conn.out);
        let failed = hello(&self.acl, conn, args, &mut out);
        conn.out = out;
        if let Some(name) = failed {
            self.log_acl(conn, "auth", "toplevel", "AUTH".into(), name);
        }
    }
}

/// Why AUTH failed: its error, and the user name a failed password check
/// is logged for (ACL LOG, INFO acl_access_denied_auth).
pub struct AuthFailed {
    pub text: &'static str,
    pub failed: Option<String>,
}

/// AUTH [username] password, against `users`; nothing is logged (the
/// caller logs `failed`). Also run by a busy script's hook (`busy_io`).
pub fn auth(users: &crate::acl::Users, conn: &mut Conn, args: &Args) -> Result<(), AuthFailed> {
    if args.len() > 3 {
        return Err(AuthFailed { text: err::SYNTAX, failed: None });
    }
    if args.len() == 2 && users.default_user().nopass {
        return Err(AuthFailed { text: "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", failed: None });
    }
    let user = if args.len() == 3 { args.get(1) } else { b"default" };
    if login(users, conn, user, args.get(args.len() - 1)) {
        Ok(())
    } else {
        Err(AuthFailed { text: WRONGPASS, failed: Some(String::from_utf8_lossy(user).into_owned()) })
    }
}

/// Log `conn` in as `user` with `pass` (false: it stays as it was).
fn login(users: &crate::acl::Users, conn: &mut Conn, user: &[u8], pass: &[u8]) -> bool {
    match users.get(&String::from_utf8_lossy(user)) {
        Some(u) if u.password_ok(pass) => {
            conn.user = u.clone();
            conn.acl_free = u.unrestricted();
            conn.authed = true;
            true
        }
        _ => false,
    }
}

/// HELLO against `users`, its reply (or error) into `out`; a failed
/// AUTH option returns the user name to log (the caller logs it). Also run
/// by a busy script's hook (`busy_io`).
pub fn hello(users: &crate::acl::Users, conn: &mut Conn, args: &Args, out: &mut Vec<u8>) -> Option<String> {
    let mut proto = if conn.resp3 { 3 } else { 2 };
    let mut i = 1;
    if args.len() > 1 {
        match crate::util::parse_i64(args.get(1)) {
            Some(v) if v == 2 || v == 3 => proto = v,
            Some(_) => {
                Reply::new(out, conn.resp3).error("NOPROTO unsupported protocol version");
                return None;
            }
            None => {
                Reply::new(out, conn.resp3)
                    .error("ERR Protocol version is not an integer or out of range");
                return None;
            }
        }
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        if args.is(i, "AUTH") && i + 2 < args.len() {
            let (user, pass) = (args.get(i + 1), args.get(i + 2));
            if !login(users, conn, user, pass) {
                Reply::new(out, conn.resp3).error(WRONGPASS);
                return Some(String::from_utf8_lossy(user).into_owned());
            }
            i += 3;
        } else if args.is(i, "SETNAME") && i + 1 < args.len() {
            name = Some(args.get(i + 1).to_vec());
            i += 2;
        } else {
            Reply::new(out, conn.resp3)
                .error(&format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(args.get(i))));
            return None;
        }
    }
    if !conn.authed {
        Reply::new(out, conn.resp3)
            .error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return None;
    }
    if let Some(n) = name {
        if n.iter().any(|&b| b <= b' ' || b > b'~') {
            Reply::new(out, conn.resp3)
                .error("ERR Client names cannot contain spaces, newlines or special characters.");
            return None;
        }
        conn.name = n;
    }
    conn.resp3 = proto == 3;
    let mut r = Reply::new(out, conn.resp3);
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(super::REDIS_VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(proto);
    r.bulk(b"id");
    r.int(conn.id as i64);
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
    None
}

/// RESET of a connection that WATCHes and subscribes to nothing (any
/// more), its reply in its output (also from a busy script's hook).
pub fn reset(users: &crate::acl::Users, conn: &mut Conn) {
    conn.multi = None;
    conn.db = 0;
    conn.resp3 = false;
    conn.name.clear();
    // Back to `default`, logged in only if it needs no password.
    let user = users.default_user();
    conn.authed = user.nopass && user.enabled;
    conn.acl_free = user.unrestricted();
    conn.user = user;
    conn.reply = crate::shard::core::ReplyMode::On;
    Reply::new(&mut conn.out, false).simple("RESET");
}

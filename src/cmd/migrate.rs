//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password] [AUTH2 username password] [KEYS key ...], as Redis 7.0:
//! the keys' DUMP payloads are sent to the target as RESTORE commands
//! (after AUTH and SELECT), and deleted here once the target acknowledged
//! each one, unless COPY.
//!
//! Like Redis's, it is synchronous: the command holds its shard (and, when
//! its keys span shards, the shards of its cross-shard transaction, which
//! makes it atomic for them) for up to `timeout` per network step. This is
//! the one keyspace command that performs I/O from the core; it is never
//! logged as itself (its deletions are logged as DEL) so that AOF replay
//! and replicas never reach the network.

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler};
use super::{err, Args, Ctx};
use crate::protocol::client::{encode_command, read_value, Value};
use crate::util::parse_i64;
use std::io::{BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub static COMMANDS: &[CommandDef] = &[CommandDef::new(
    "migrate",
    -6,
    WRITE | MOVABLE_KEYS,
    &[
        at(3, RW | ACCESS | DELETE),
        kw("KEYS", -2, RW | ACCESS | DELETE | INCOMPLETE).range(-1, 1, 0),
    ],
    Handler::Keyspace(migrate),
)
.acl(acl::KEYSPACE | acl::DANGEROUS)
.group(Group::Generic)
.since("2.6.0")
.tips(&["nondeterministic_output"])];

struct Opts<'a> {
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    keys: Vec<&'a [u8]>,
}

fn parse<'a>(args: &'a Args) -> Result<Opts<'a>, &'static str> {
    let mut o = Opts { copy: false, replace: false, auth: None, keys: Vec::new() };
    let mut i = 6;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args.is(i, "copy") {
            o.copy = true;
        } else if args.is(i, "replace") {
            o.replace = true;
        } else if args.is(i, "auth") {
            if more < 1 {
                return Err(err::SYNTAX);
            }
            o.auth = Some((None, &args[i + 1]));
            i += 1;
        } else if args.is(i, "auth2") {
            if more < 2 {
                return Err(err::SYNTAX);
            }
            o.auth = Some((Some(&args[i + 1]), &args[i + 2]));
            i += 2;
        } else if args.is(i, "keys") {
            if !args[3].is_empty() {
                return Err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
            }
            o.keys = (i + 1..args.len()).map(|j| &args[j]).collect();
            break;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if o.keys.is_empty() {
        o.keys.push(&args[3]);
    }
    Ok(o)
}

/// An I/O step that failed, as Redis words it.
enum Fail {
    Connect,
    Write,
    Read,
}

impl Fail {
    fn msg(&self) -> &'static str {
        match self {
            Fail::Connect => "IOERR error or timeout connecting to the client",
            Fail::Write => "IOERR error or timeout writing to target instance",
            Fail::Read => "IOERR error or timeout reading to target instance",
        }
    }
}

fn connect(host: &[u8], port: &[u8], timeout: Duration) -> Result<TcpStream, Fail> {
    let host = std::str::from_utf8(host).map_err(|_| Fail::Connect)?;
    let port: u16 = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok()).ok_or(Fail::Connect)?;
    let addr = (host, port).to_socket_addrs().map_err(|_| Fail::Connect)?.next().ok_or(Fail::Connect)?;
    // Redis connects without blocking and learns of a refused or slow
    // connection only when it writes: those are write errors.
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|_| Fail::Write)?;
    s.set_read_timeout(Some(timeout)).map_err(|_| Fail::Connect)?;
    s.set_write_timeout(Some(timeout)).map_err(|_| Fail::Connect)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password] [AUTH2 username password] [KEYS key ...]
fn migrate(ctx: &mut Ctx, args: &Args) {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => return ctx.error(e),
    };
    let Some(timeout) = parse_i64(&args[5]) else { return ctx.error(err::NOT_INT) };
    let Some(dbid) = parse_i64(&args[4]).filter(|d| i32::try_from(*d).is_ok()) else {
        return ctx.error(err::NOT_INT);
    };
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // The keys that exist, their payloads and remaining time to live.
    let (db, now) = (ctx.db, ctx.now);
    let mut items: Vec<(&[u8], Vec<u8>, i64)> = Vec::new();
    for &k in &o.keys {
        if let Some(e) = ctx.ks.lookup(db, k, now) {
            let ttl = if e.expire == 0 { 0 } else { (e.expire - now).max(1) };
            items.push((k, super::dump::serialize(&e.value), ttl));
        }
    }
    if items.is_empty() {
        ctx.propagate_nothing();
        return ctx.out.simple("NOKEY");
    }
    let mut wire = Vec::new();
    let mut expect = 0usize;
    match o.auth {
        Some((None, pw)) => wire.extend(encode_command(&[&b"AUTH"[..], pw])),
        Some((Some(user), pw)) => wire.extend(encode_command(&[&b"AUTH"[..], user, pw])),
        None => {}
    }
    expect += o.auth.is_some() as usize;
    wire.extend(encode_command(&[b"SELECT".to_vec(), dbid.to_string().into_bytes()]));
    expect += 1;
    for (k, payload, ttl) in &items {
        let ttl = ttl.to_string();
        let mut cmd: Vec<&[u8]> = vec![b"RESTORE", k, ttl.as_bytes(), payload];
        if o.replace {
            cmd.push(b"REPLACE");
        }
        wire.extend(encode_command(&cmd));
    }
    let result = (|| -> Result<Vec<Value>, Fail> {
        let mut s = connect(&args[1], &args[2], timeout)?;
        s.write_all(&wire).map_err(|_| Fail::Write)?;
        let mut r = BufReader::new(s);
        (0..expect + items.len()).map(|_| read_value(&mut r).map_err(|_| Fail::Read)).collect()
    })();
    let replies = match result {
        Ok(r) => r,
        Err(f) => {
            ctx.propagate_nothing();
            return ctx.error(f.msg());
        }
    };
    for v in &replies[..expect] {
        if let Value::Error(e) = v {
            ctx.propagate_nothing();
            return ctx.error(&format!("ERR Target instance replied with error: {e}"));
        }
    }
    // Each key the target took goes (unless COPY); the first refusal is the reply.
    let mut error = None;
    let mut deleted: Vec<&[u8]> = vec![b"DEL"];
    for ((k, _, _), v) in items.iter().zip(&replies[expect..]) {
        match v {
            Value::Error(e) => {
                error.get_or_insert_with(|| format!("ERR Target instance replied with error: {e}"));
            }
            _ if !o.copy && ctx.ks.delete(db, k, now) => {
                deleted.push(k);
                ctx.notify(crate::keyspace::notify::GENERIC, "del", k);
            }
            _ => {}
        }
    }
    if deleted.len() > 1 {
        ctx.propagate(&deleted);
    } else {
        ctx.propagate_nothing();
    }
    match error {
        Some(e) => ctx.error(&e),
        None => ctx.out.ok(),
    }
}

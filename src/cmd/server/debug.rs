//! DEBUG: the subcommands tests and client test suites use. DEBUG is a
//! plain command in Redis 7.0's table (no subcommand rows), so it is here
//! too: COMMAND INFO shows it as Redis does. Allowed per
//! `enable-debug-command` (`crate::security::debug_allowed`).
//!
//! What runs here answers as Redis 7.0 does: SLEEP, ERROR, LOG, PROTOCOL,
//! SET-ACTIVE-EXPIRE, QUICKLIST-PACKED-THRESHOLD, CHANGE-REPL-ID (no
//! effect here: the ids are per shard and changed by failover), PANIC and
//! HELP. Those over keys on any shard (OBJECT, DIGEST, DIGEST-VALUE,
//! POPULATE, LISTPACK) are in `debug_keys`. RELOAD rewrites the AOF as SAVE
//! does (memory already holds what a reload would read back).

use super::debug_keys::{DebugMerge, DebugOp};
use super::server;
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;

pub static COMMANDS: &[CommandDef] =
    &[server("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE | PROTECTED, Shard::cmd_debug)
        .group(Group::Server)
        .since("1.0.0")];

/// DEBUG HELP (the subcommands shardis has).
const HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANGE-REPL-ID",
    "    Accepted for compatibility; replication ids change on failover.",
    "DIGEST",
    "    A digest of the whole dataset (40 zeros when it is empty); equal datasets",
    "    give equal digests whatever the number of shards.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    A digest of each key's value.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LISTPACK <key>",
    "    Log a listpack-encoded value's layout.",
    "LOG <message>",
    "OBJECT <key>",
    "    Low-level details of the key's value.",
    "    Write <message> to the server log.",
    "PANIC",
    "    Crash the server simulating a panic.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named <prefix>:<num> (default key:<num>), valued",
    "    value:<num> (cut or zero-padded to <size> bytes); existing keys are kept.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Accepted for compatibility: lists have no plain nodes here.",
    "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
    "    Rewrite the AOF as SAVE does (NOSAVE: nothing; memory is what it holds).",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Accepted for compatibility: active expiry stays on.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Print this help.",
];

const PROTOCOL_TYPES: &str = "ERR Wrong protocol type name. Please use one of the following: \
                              string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false";

/// DEBUG PROTOCOL `kind`: Redis's test value of each RESP type (RESP2
/// clients get what Redis downgrades it to).
fn protocol(r: &mut Reply, resp3: bool, kind: &[u8]) {
    match kind.to_ascii_lowercase().as_slice() {
        b"string" => r.bulk(b"Hello World"),
        b"integer" => r.int(12345),
        // Redis's literal test value, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        b"double" => r.double(3.141),
        b"bignum" if resp3 => r.raw(b"(1234567999999999999999999999999999999\r\n"),
        b"bignum" => r.bulk(b"1234567999999999999999999999999999999"),
        b"null" => r.null(),
        b"array" | b"set" => {
            if kind.eq_ignore_ascii_case(b"set") {
                r.set(3)
            } else {
                r.array(3)
            }
            for j in 0..3 {
                r.int(j);
            }
        }
        b"map" => {
            r.map(3);
            for j in 0..3 {
                r.int(j);
                r.boolean(j == 1);
            }
        }
        b"attrib" => {
            if resp3 {
                r.raw(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
            }
            r.bulk(b"Some real reply following the attribute")
        }
        b"push" if !resp3 => r.error("ERR RESP2 is not supported by this command"),
        b"push" => {
            r.push(2);
            r.bulk(b"server-cpu-usage");
            r.int(42);
            r.bulk(b"Some real reply following the push reply")
        }
        b"verbatim" => r.verbatim(b"This is a verbatim\nstring"),
        b"true" => r.boolean(true),
        b"false" => r.boolean(false),
        _ => r.error(PROTOCOL_TYPES),
    }
}

/// Redis's reply to a subcommand it does not know or with the wrong
/// number of arguments.
fn unknown(r: &mut Reply, sub: &[u8]) {
    r.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
        String::from_utf8_lossy(sub)
    ))
}

impl Shard {
    fn cmd_debug(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let allowed = crate::security::debug_allowed(&self.config.enable_debug_command, &conn.addr);
        let mut r = Reply::new(&mut conn.out, resp3);
        if !allowed {
            return r.error(crate::security::DEBUG_NOT_ALLOWED);
        }
        let sub = args.get(1).to_ascii_lowercase();
        let n = args.len();
        match (sub.as_slice(), n) {
            (b"help", 2) => crate::cmd::reply_help(&mut r, HELP),
            (b"sleep", 3) => {
                // As Redis (strtod): what is not a positive number sleeps 0.
                let s = crate::util::parse_f64(args.get(2)).filter(|s| *s > 0.0 && s.is_finite()).unwrap_or(0.0);
                // Blocks this shard, as DEBUG SLEEP blocks Redis.
                std::thread::sleep(std::time::Duration::from_secs_f64(s.min(3600.0)));
                r.ok();
            }
            // Redis's ERROR replies the text as an error line, as given
            // (line breaks, which would end it early, as spaces).
            (b"error", 3) => {
                let text: Vec<u8> =
                    args.get(2).iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
                r.raw(&[b"-", &text[..], b"\r\n"].concat())
            }
            (b"log", 3) => {
                crate::log(&format!("DEBUG LOG: {}", String::from_utf8_lossy(args.get(2))));
                r.ok()
            }
            (b"protocol", 3) => protocol(&mut r, resp3, args.get(2)),
            // Redis takes any argument here.
            (b"set-active-expire", 3) | (b"change-repl-id", 2) => r.ok(),
            (b"quicklist-packed-threshold", 3) => {
                match crate::config::parse_memory(&String::from_utf8_lossy(args.get(2))) {
                    Ok(v) if (0..1 << 32).contains(&v) => r.ok(),
                    _ => r.error("ERR argument must be a memory value bigger than 1 and smaller than 4gb"),
                }
            }
            (b"panic", 2) => {
                // As Redis's DEBUG PANIC: proves the crash path (crate::crash).
                panic!("DEBUG PANIC called by client id={} addr={} on shard {}", conn.id, conn.addr, self.id);
            }
            (b"object" | b"listpack", 3) => {
                let key = args.get(2).to_vec();
                let owner = self.shared.slots.shard_of(&key);
                let op = if sub == b"object" { DebugOp::Object(key) } else { DebugOp::Listpack(key) };
                let db = conn.db as u8;
                self.fan(conn, vec![owner], FanReq::Debug { db, op }, FanOp::Debug(DebugMerge::One))
            }
            (b"digest", 2) => {
                let db = conn.db as u8;
                let req = FanReq::Debug { db, op: DebugOp::Digest };
                self.fan(conn, self.all_shards(), req, FanOp::Debug(DebugMerge::Digest))
            }
            (b"digest-value", _) => {
                let keys: Vec<(usize, Vec<u8>)> = args.iter().skip(2).map(|k| k.to_vec()).enumerate().collect();
                let (db, n) = (conn.db as u8, keys.len());
                let req = FanReq::Debug { db, op: DebugOp::DigestValue(keys) };
                self.fan(conn, self.all_shards(), req, FanOp::Debug(DebugMerge::Values(n)))
            }
            (b"populate", 3..=5) => {
                // Redis takes only positive integers for the count and size.
                let positive = |i: usize| crate::util::parse_i64(args.get(i)).filter(|n| *n >= 0);
                let (Some(count), size) = (positive(2), (n == 5).then(|| positive(4))) else {
                    return r.error("ERR value is out of range, must be positive");
                };
                let size = match size {
                    Some(None) => return r.error("ERR value is out of range, must be positive"),
                    Some(Some(0)) | None => None,
                    // Each value is allocated whole: no bigger than a client may send.
                    Some(Some(s)) if s > self.config.proto_max_bulk_len => {
                        return r.error("ERR value size exceeds proto-max-bulk-len")
                    }
                    Some(Some(s)) => Some(s as u64),
                };
                let prefix = if n >= 4 { args.get(3).to_vec() } else { b"key".to_vec() };
                let op = DebugOp::Populate { count: count as u64, prefix, size };
                let db = conn.db as u8;
                self.fan(conn, self.all_shards(), FanReq::Debug { db, op }, FanOp::Debug(DebugMerge::Ok))
            }
            (b"reload", _) => {
                let opts_ok = args.iter().skip(2).all(|o| {
                    let o = o.to_ascii_lowercase();
                    o == b"merge" || o == b"noflush" || o == b"nosave"
                });
                if !opts_ok {
                    return r.error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.");
                }
                let nosave = args.iter().skip(2).any(|o| o.eq_ignore_ascii_case(b"nosave"));
                // The AOF holds every write already: what a reload would
                // read back is what memory holds. With SAVE's rewrite the
                // base is written anew (compacted), as RELOAD saves first;
                // with NOSAVE or no AOF there is nothing to do.
                if nosave || self.aof.is_none() {
                    return r.ok();
                }
                self.rewrite(conn, super::persist::Rewrite::Wait)
            }
            _ => unknown(&mut r, args.get(1)),
        }
    }
}

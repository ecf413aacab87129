//! DEBUG's subcommands and LOLWUT side by side with redis-server 7.0 (both
//! started with DEBUG enabled), on 1 and 4 shards, in RESP2 and RESP3.

mod common;

use common::{RespConn, Server};

const LINES: &[&str] = &[
    "DEBUG HELLO",
    "DEBUG SLEEP 0",
    "DEBUG SLEEP x",
    "DEBUG SLEEP",
    "DEBUG ERROR oops",
    "DEBUG ERROR MYERR something failed",
    "DEBUG LOG hello",
    "DEBUG LOG",
    "DEBUG SET-ACTIVE-EXPIRE 1",
    "DEBUG SET-ACTIVE-EXPIRE x",
    "DEBUG CHANGE-REPL-ID",
    "DEBUG QUICKLIST-PACKED-THRESHOLD 1k",
    "DEBUG QUICKLIST-PACKED-THRESHOLD 0",
    "DEBUG QUICKLIST-PACKED-THRESHOLD 5gb",
    "DEBUG QUICKLIST-PACKED-THRESHOLD x",
    "DEBUG PROTOCOL string",
    "DEBUG PROTOCOL integer",
    "DEBUG PROTOCOL double",
    "DEBUG PROTOCOL bignum",
    "DEBUG PROTOCOL null",
    "DEBUG PROTOCOL array",
    "DEBUG PROTOCOL set",
    "DEBUG PROTOCOL map",
    "DEBUG PROTOCOL attrib",
    "DEBUG PROTOCOL push",
    "DEBUG PROTOCOL verbatim",
    "DEBUG PROTOCOL true",
    "DEBUG PROTOCOL false",
    "DEBUG PROTOCOL nope",
    "DEBUG",
    "LOLWUT",
    "LOLWUT VERSION 1",
    "LOLWUT VERSION 7",
    "LOLWUT VERSION 7 abc",
    "LOLWUT VERSION x",
    "LOLWUT VERSION",
    "LOLWUT foo",
    "LOLWUT VERSION 5 abc",
    "LOLWUT VERSION 5 10 10 1",
    "LOLWUT VERSION 6 10 10",
    "LOLWUT VERSION 6 1 x",
];

/// Each line's reply, with its RESP3 type; for LOLWUT 5 and 6 only the
/// text after the drawing.
fn replies(srv: &Server, resp3: bool) -> Vec<String> {
    let mut c: RespConn = srv.conn();
    if resp3 {
        c.cmd(&["HELLO", "3"]);
    }
    let mut out = Vec::new();
    for l in LINES {
        let args: Vec<&str> = l.split(' ').collect();
        // The DEBUG ERROR text is one argument.
        let args: Vec<String> = if args.len() > 3 && args[1] == "ERROR" {
            vec![args[0].into(), args[1].into(), args[2..].join(" ")]
        } else {
            args.iter().map(|s| s.to_string()).collect()
        };
        c.send_raw(&common::encode_command(&args)).expect("send");
        // (The client reads past an attribute to the reply it precedes.)
        let v = c.read_value().expect("reply");
        let shown = match v.as_bytes() {
            // LOLWUT: the line naming the version (after any drawing).
            Some(text) if l.starts_with("LOLWUT") => {
                let text = String::from_utf8_lossy(text);
                let line = text.lines().find(|x| x.contains("Redis ver.")).unwrap_or("").to_string();
                format!("{} {line}", if matches!(v, common::Value::Verbatim(..)) { "verbatim" } else { "bulk" })
            }
            _ => format!("{v:?}"),
        };
        out.push(format!("{l} -> {shown}"));
    }
    out
}

#[test]
fn debug_and_lolwut_as_redis() {
    let redis = Server::start_redis_with(&["--enable-debug-command", "yes"]);
    for resp3 in [false, true] {
        let want = replies(&redis, resp3);
        for shards in [1, 4] {
            let s = Server::start(shards, &["--appendonly", "no", "--enable-debug-command", "yes"]);
            let got = replies(&s, resp3);
            let diffs: Vec<String> =
                want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis {w}\nshardis {g}")).collect();
            assert!(diffs.is_empty(), "{shards} shard(s), resp3 {resp3}:\n{}", diffs.join("\n"));
        }
    }
}

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

/// DEBUG OBJECT's line with the address and clocks left out.
fn object_fields(v: &common::Value) -> String {
    let text = match v {
        common::Value::Simple(s) => s.clone(),
        other => return format!("{other:?}"),
    };
    text.split(' ').filter(|f| !f.starts_with("at:") && !f.starts_with("lru")).collect::<Vec<_>>().join(" ")
}

/// DEBUG's subcommands over keys, replies compared with redis-server.
fn key_replies(srv: &Server) -> Vec<String> {
    let mut c: RespConn = srv.conn();
    let mut out = Vec::new();
    for l in [
        "DEBUG DIGEST",
        "DEBUG DIGEST-VALUE",
        "DEBUG DIGEST-VALUE nokey",
        "DEBUG POPULATE -1",
        "DEBUG POPULATE x",
        "DEBUG POPULATE 1 k -3",
        "DEBUG POPULATE",
        "DEBUG POPULATE 1 a b c d",
        "SET key:1 mine",
        "DEBUG POPULATE 5",
        "DEBUG POPULATE 3 foo 10",
        "DEBUG POPULATE 2 bar 3",
        "DEBUG POPULATE 2 baz 0",
        "DBSIZE",
        "GET key:1",
        "GET key:4",
        "GET foo:2",
        "GET bar:1",
        "GET baz:1",
        "SET n 12345",
        "SADD s 1 2",
        // serializedlength as Redis's with rdbcompression: strings over 20
        // bytes LZF-compressed when that is smaller, integers as integers,
        // packed encodings as (compressed) blobs.
        "SET big abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
        "SET rep aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "SET rep21 abababababababababab1",
        "SET rep20 abababababababababab",
        "SET neg -5",
        "SET prose hello-world-this-is-some-prose-hello-world-this-is-some-prose",
        "RPUSH l a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a 1 2 3",
        "SADD ints 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
        "ZADD z 1 aaaaaaaaaa 2 aaaaaaaaab 3 aaaaaaaaac",
        "HSET hb field-aaaaaaaaaaaaaaaaaaaaaaaaa value-aaaaaaaaaaaaaaaaaaaaaaaaa",
        "XADD x 1-1 f aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "HSET h f v",
        "DEBUG OBJECT nokey",
        "DEBUG OBJECT",
        "DEBUG LISTPACK n",
        "DEBUG LISTPACK nokey",
        "DEBUG LISTPACK h",
        "DEBUG LISTPACK l",
        "DEBUG STRINGMATCH-LEN",
        "DEBUG RELOAD foo",
        "DEBUG RELOAD",
        "GET key:2",
    ] {
        out.push(format!("{l} -> {:?}", c.cmd_str(l)));
    }
    for k in ["key:0", "n", "s", "big", "h"] {
        out.push(format!("OBJECT {k} -> {}", object_fields(&c.cmd(&["DEBUG", "OBJECT", k]))));
    }
    // Only the length for these: a small list's (and set's) encoding
    // names differ (shardis packs them as Redis 7.2 does).
    for k in ["big", "rep", "rep21", "rep20", "neg", "prose", "l", "ints", "z", "hb", "x"] {
        let line = object_fields(&c.cmd(&["DEBUG", "OBJECT", k]));
        let len = line.split(' ').find(|f| f.starts_with("serializedlength:")).unwrap_or("none").to_string();
        out.push(format!("OBJECT {k} -> {len}"));
    }
    out
}

#[test]
fn debug_over_keys_as_redis() {
    let redis = Server::start_redis_with(&["--enable-debug-command", "yes"]);
    let want = key_replies(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--enable-debug-command", "yes"]);
        let got = key_replies(&s);
        let diffs: Vec<String> =
            want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("redis {w}\nshardis {g}")).collect();
        assert!(diffs.is_empty(), "{shards} shard(s):\n{}", diffs.join("\n"));
    }
}

/// The same dataset gives the same DIGEST and DIGEST-VALUEs on 1 and 4
/// shards; a change changes it; POPULATE's keys are in the AOF.
#[test]
fn digest_is_the_same_whatever_the_shards() {
    let fill = [
        "SET a 1",
        "SET b hello",
        "RPUSH l x y z",
        "SADD s m1 m2 m3 99",
        "HSET h f1 v1 f2 v2",
        "ZADD z 1 a 2.5 b",
        "XADD x 1-1 f v",
        "PEXPIREAT b 99999999999999",
        "SELECT 5",
        "SET other 1",
    ];
    let mut digests = Vec::new();
    for shards in [1, 4] {
        let mut s = Server::start(shards, &["--enable-debug-command", "yes"]);
        let mut c = s.conn();
        for l in fill {
            c.cmd_str(l);
        }
        // Sets and hashes built in another order digest the same.
        c.cmd_str("SELECT 0");
        if shards == 4 {
            c.cmd_str("DEL s h");
            c.cmd_str("SADD s 99 m3 m2 m1");
            c.cmd_str("HSET h f2 v2 f1 v1");
        }
        let d = c.cmd_str("DEBUG DIGEST");
        let dv = c.cmd_str("DEBUG DIGEST-VALUE s h l z nokey b");
        c.cmd_str("SADD s m4");
        assert_ne!(c.cmd_str("DEBUG DIGEST"), d);
        c.cmd_str("SREM s m4");
        assert_eq!(c.cmd_str("DEBUG DIGEST"), d);
        digests.push((d, dv));
        c.cmd_str("DEBUG POPULATE 100 p");
        assert_eq!(c.cmd_str("DBSIZE"), common::Value::Int(107));
        s.restart().expect("restart");
        let mut c = s.conn();
        assert_eq!(c.cmd_str("DBSIZE"), common::Value::Int(107), "{shards} shards: POPULATE's keys are logged");
    }
    assert_eq!(digests[0], digests[1]);
}

/// OBJECT ENCODING of a list is `quicklist` whatever its size, as Redis 7.0
/// answers (7.2 answers `listpack` for small ones), and DEBUG LISTPACK
/// refuses it.
#[test]
fn list_encoding_as_redis_7_0() {
    let lines = |s: &Server| {
        let mut c = s.conn();
        let long = "x".repeat(200);
        let mut out = Vec::new();
        for l in ["RPUSH small a b c", "OBJECT ENCODING small", "DEBUG LISTPACK small", "LPUSH one x"] {
            out.push(format!("{l} -> {:?}", c.cmd_str(l)));
        }
        for _ in 0..60 {
            c.cmd(&["RPUSH", "big", &long]);
        }
        for l in ["OBJECT ENCODING big", "OBJECT ENCODING one", "RPOP big 59", "OBJECT ENCODING big"] {
            let reply = c.cmd_str(l);
            out.push(format!("{l} -> {}", if l.starts_with("RPOP") { "-".to_string() } else { format!("{reply:?}") }));
        }
        out
    };
    let redis = Server::start_redis_with(&["--enable-debug-command", "yes"]);
    let want = lines(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &["--enable-debug-command", "yes"]);
        assert_eq!(lines(&s), want, "{shards} shard(s)");
    }
}

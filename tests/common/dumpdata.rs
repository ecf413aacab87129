//! Keys of every type and encoding Redis 7 writes, and a canonical
//! rendering of a key's contents, for the DUMP/RESTORE, import-rdb and
//! MIGRATE tests (which compare shardis with redis-server).

use super::{RespConn, Value};

/// Commands that build the keys (run on both servers).
pub fn population() -> Vec<Vec<String>> {
    let mut cmds: Vec<Vec<String>> = [
        "SET s:int 12345",
        "SET s:neg -7",
        "SET s:bigint 12345678901",
        "SET s:short hello",
        "SET s:20 aaaaaaaaaaaaaaaaaaaa",
        "SET s:long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "SET s:empty x",
        "SETRANGE s:raw 0 123",
        "RPUSH l:small a 1 -5 300 70000 5000000000",
        "HSET h:small f v a 1 b 300",
        "SADD set:int 1 5 -3 70000",
        "SADD set:small a b c",
        "ZADD z:small 1.5 m 2 n 0.1 o -3 q",
        "XADD x:nogroups 1-1 f v g w",
        "XADD x:nogroups 2-1 f v2 g w2",
        "XADD x:nogroups 3-1 other 1",
        "XADD x:groups 1-1 f v",
        "XADD x:groups 2-1 f v",
        "XADD x:groups 3-1 f v",
        "XDEL x:groups 2-1",
        "XGROUP CREATE x:groups g1 0",
        "XGROUP CREATE x:groups g2 $",
        "XREADGROUP GROUP g1 alice COUNT 1 STREAMS x:groups >",
        "XGROUP CREATECONSUMER x:groups g1 bob",
        "XADD x:empty MAXLEN 0 5-5 f v",
    ]
    .iter()
    .map(|l| l.split(' ').map(String::from).collect())
    .collect();
    if let Some(c) = cmds.iter_mut().find(|c| c[1] == "s:empty") {
        c[2] = String::new();
    }
    let push = |cmds: &mut Vec<Vec<String>>, head: &[&str], items: Vec<String>| {
        let mut c: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        c.extend(items);
        cmds.push(c);
    };
    push(&mut cmds, &["RPUSH", "l:big"], (0..3000).map(|i| format!("element-{i}")).collect());
    push(&mut cmds, &["HSET", "h:big"], (0..300).flat_map(|i| [format!("f{i}"), format!("v{i}")]).collect());
    push(&mut cmds, &["HSET", "h:longval", "f"], vec!["v".repeat(100)]);
    push(&mut cmds, &["SADD", "set:big"], (0..600).map(|i| format!("m{i}")).collect());
    push(&mut cmds, &["SADD", "set:bigint"], (0..600).map(|i| (i * 7).to_string()).collect());
    push(
        &mut cmds,
        &["ZADD", "z:big"],
        (0..300).flat_map(|i| [format!("{}", i as f64 / 7.0), format!("z{i}")]).collect(),
    );
    for i in 0..250 {
        let f = if i % 9 == 0 { "odd" } else { "f" };
        push(&mut cmds, &["XADD", "x:big"], vec![format!("{}-0", i + 1), f.into(), format!("value{i}")]);
    }
    cmds
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

pub fn keys() -> Vec<String> {
    let mut k: Vec<String> =
        population().iter().map(|c| c[if c[0] == "XGROUP" || c[0] == "XREADGROUP" { 2 } else { 1 }].clone()).collect();
    k.retain(|k| k.contains(':'));
    k.sort();
    k.dedup();
    k
}

/// A canonical rendering of a key's contents (what must survive a move).
pub fn contents(c: &mut RespConn, key: &str) -> String {
    let t = format!("{:?}", c.cmd(&["TYPE", key]));
    let sorted = |v: Value| {
        let mut items: Vec<String> = v.as_items().unwrap_or_default().iter().map(|x| format!("{x:?}")).collect();
        items.sort();
        items.join(",")
    };
    let body = match t.as_str() {
        s if s.contains("string") => format!("{:?}", c.cmd(&["GET", key])),
        s if s.contains("list") => format!("{:?}", c.cmd(&["LRANGE", key, "0", "-1"])),
        s if s.contains("hash") => {
            let v = c.cmd(&["HGETALL", key]);
            let items = v.as_items().unwrap_or_default();
            let mut pairs: Vec<String> = items.chunks(2).map(|p| format!("{:?}", p)).collect();
            pairs.sort();
            pairs.join(",")
        }
        s if s.contains("set") && !s.contains("zset") => sorted(c.cmd(&["SMEMBERS", key])),
        s if s.contains("zset") => format!("{:?}", c.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        s if s.contains("stream") => {
            let info = c.cmd(&["XINFO", "STREAM", key]);
            // Node counts depend on how the entries were packed: left out.
            let info: Vec<String> = info
                .as_items()
                .unwrap_or_default()
                .chunks(2)
                .filter(|p| !format!("{:?}", p[0]).contains("radix"))
                .map(|p| format!("{:?}", p))
                .collect();
            let mut s =
                format!("{info:?} {:?} {:?}", c.cmd(&["XRANGE", key, "-", "+"]), c.cmd(&["XINFO", "GROUPS", key]));
            if let Some(groups) = c.cmd(&["XINFO", "GROUPS", key]).as_items() {
                for g in groups {
                    let name =
                        g.as_items().and_then(|i| i.get(1)).and_then(|n| n.as_bytes()).unwrap_or_default().to_vec();
                    let name = String::from_utf8_lossy(&name).into_owned();
                    // id, consumer and count of each pending entry (idle times move).
                    let p = c.cmd(&["XPENDING", key, &name, "-", "+", "100"]);
                    let p: Vec<String> = p
                        .as_items()
                        .unwrap_or_default()
                        .iter()
                        .map(|e| {
                            let e = e.as_items().unwrap_or_default();
                            format!("{:?}{:?}{:?}", e.first(), e.get(1), e.get(3))
                        })
                        .collect();
                    let cons = c.cmd(&["XINFO", "CONSUMERS", key, &name]);
                    let cons: Vec<String> = cons
                        .as_items()
                        .unwrap_or_default()
                        .iter()
                        .map(|e| {
                            format!(
                                "{:?}",
                                &e.as_items().unwrap_or_default()[..4.min(e.as_items().map_or(0, |i| i.len()))]
                            )
                        })
                        .collect();
                    s += &format!(" {name}: {p:?} {cons:?}");
                }
            }
            s
        }
        _ => String::new(),
    };
    // The absolute expiry: an RDB file and ABSTTL carry it exactly.
    format!("{t} expire={:?} {body}", c.cmd(&["PEXPIRETIME", key]))
}

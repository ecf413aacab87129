//! Stream trimming side by side with redis-server 7.0 on 1 and 4 shards:
//! `MAXLEN ~` / `MINID ~` in XADD and XTRIM with and without LIMIT remove
//! entries only in whole nodes, so every reply (the trimmed counts, XLEN,
//! XINFO STREAM's node count, the first entry) depends on where Redis's
//! nodes close: at `stream-node-max-entries` entries (deleted ones
//! included) or `stream-node-max-bytes` of listpack, as set with CONFIG SET.

mod common;

use common::{encode_command, RespConn, Server, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One scenario's commands: node limits, a stream filled with explicit ids
/// and values of varied sizes, some XDELs, then trims of every form, each
/// followed by what shows the result.
fn scenario(seed: u64) -> Vec<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut c = |parts: &[&str]| cmds.push(parts.iter().map(|s| s.to_string()).collect());
    let entries = ["100", "100", "7", "1", "0", "25"][rng.gen_range(0..6)];
    let bytes = ["4096", "4096", "1k", "300", "0", "64kb"][rng.gen_range(0..6)];
    c(&["CONFIG", "SET", "stream-node-max-entries", entries]);
    c(&["CONFIG", "SET", "stream-node-max-bytes", bytes]);
    c(&["DEL", "st"]);
    let n = rng.gen_range(1..600u64);
    let mut ids = Vec::new();
    let mut ms = 1u64;
    for _ in 0..n {
        ms += rng.gen_range(0..3u64);
        let id = format!("{ms}-{}", ids.len());
        let v = "v".repeat(*[1usize, 5, 20, 80, 300].get(rng.gen_range(0..5)).unwrap_or(&1));
        // Mostly the same fields (Redis's SAMEFIELDS entries), now and then others.
        if rng.gen_bool(0.9) {
            c(&["XADD", "st", &id, "f", &v, "g", "12"]);
        } else {
            c(&["XADD", "st", &id, "other", &v]);
        }
        ids.push(id);
    }
    for _ in 0..rng.gen_range(0..(n as usize / 3 + 1)) {
        let id = &ids[rng.gen_range(0..ids.len())];
        c(&["XDEL", "st", id]);
    }
    c(&["XLEN", "st"]);
    for _ in 0..rng.gen_range(1..6) {
        let len = rng.gen_range(0..n + 10).to_string();
        let min = ids[rng.gen_range(0..ids.len())].clone();
        let lim = rng.gen_range(0..300u64).to_string();
        let how = rng.gen_range(0..8);
        match how {
            0 => c(&["XTRIM", "st", "MAXLEN", "~", &len]),
            1 => c(&["XTRIM", "st", "MINID", "~", &min]),
            2 => c(&["XTRIM", "st", "MAXLEN", "~", &len, "LIMIT", &lim]),
            3 => c(&["XTRIM", "st", "MINID", "~", &min, "LIMIT", &lim]),
            4 => c(&["XTRIM", "st", "MAXLEN", "=", &len, "LIMIT", &lim]),
            5 => c(&["XTRIM", "st", "MAXLEN", &len]),
            6 => {
                ms += 1;
                let id = format!("{ms}-0");
                c(&["XADD", "st", "MAXLEN", "~", &len, &id, "f", "x", "g", "12"]);
            }
            _ => {
                ms += 1;
                let id = format!("{ms}-0");
                c(&["XADD", "st", "MINID", "~", &min, "LIMIT", &lim, &id, "f", "x", "g", "12"]);
            }
        }
        c(&["XLEN", "st"]);
        c(&["XINFO", "STREAM", "st"]);
    }
    c(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
    c(&["CONFIG", "SET", "stream-node-max-bytes", "4096"]);
    cmds
}

/// XINFO STREAM without what differs for reasons other than nodes
/// (`radix-tree-nodes` counts Redis's radix tree's inner nodes).
fn shown(cmd: &[String], v: Value) -> String {
    if cmd[0] == "XINFO" {
        if let Some(items) = v.as_items() {
            let mut out = Vec::new();
            for pair in items.chunks(2) {
                let name = pair[0].as_bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                if ["length", "radix-tree-keys", "first-entry", "max-deleted-entry-id", "entries-added"]
                    .contains(&name.as_str())
                {
                    out.push(format!("{name}={:?}", pair.get(1)));
                }
            }
            return out.join(" ");
        }
    }
    format!("{v:?}")
}

/// Every command's reply, pipelined.
fn run(c: &mut RespConn, cmds: &[Vec<String>]) -> Vec<String> {
    let mut buf = Vec::new();
    for cmd in cmds {
        buf.extend(encode_command(cmd));
    }
    c.send_raw(&buf).expect("send");
    cmds.iter().map(|cmd| shown(cmd, c.read_value().expect("reply"))).collect()
}

#[test]
fn approximate_trims_match_redis() {
    let redis = Server::start_redis();
    let shardis = [Server::start(1, &["--appendonly", "no"]), Server::start(4, &["--appendonly", "no"])];
    let mut rc = redis.conn();
    let mut sc: Vec<RespConn> = shardis.iter().map(|s| s.conn()).collect();
    for seed in 0..40 {
        let cmds = scenario(seed);
        let want = run(&mut rc, &cmds);
        for (s, c) in shardis.iter().zip(sc.iter_mut()) {
            let got = run(c, &cmds);
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w, g, "{} seed {seed}: `{}`", s.name, cmds[i].join(" "));
            }
        }
    }
}

/// The LIMIT a `~` trim uses when none is given: 100 nodes' worth of
/// entries (10000 when nodes have no entry limit); and the option's forms.
#[test]
fn default_limit_and_config_forms_match_redis() {
    let lines: &[&str] = &[
        "CONFIG SET stream-node-max-entries 3",
        "CONFIG GET stream-node-max-entries",
        "CONFIG SET stream-node-max-bytes 2kb",
        "CONFIG GET stream-node-max-bytes",
        "CONFIG SET stream-node-max-bytes -1",
        "CONFIG SET stream-node-max-entries -1",
        "CONFIG SET stream-node-max-entries x",
        "CONFIG SET stream-node-max-bytes 4096",
    ];
    let redis = Server::start_redis();
    let shardis = [Server::start(1, &["--appendonly", "no"]), Server::start(4, &["--appendonly", "no"])];
    let mut rc = redis.conn();
    let args = |l: &str| l.split(' ').map(String::from).collect::<Vec<_>>();
    let cmds: Vec<Vec<String>> = lines.iter().map(|l| args(l)).collect();
    // 1000 entries in nodes of 3: the default LIMIT is 300 entries.
    let mut trim = vec![args("DEL st")];
    trim.extend((1..=1000).map(|i| args(&format!("XADD st {i}-1 f v"))));
    trim.extend([args("XTRIM st MAXLEN ~ 0"), args("XLEN st"), args("XTRIM st MINID ~ 999 LIMIT 0"), args("XLEN st")]);
    trim.push(args("CONFIG SET stream-node-max-entries 0"));
    trim.push(args("DEL st"));
    trim.extend((1..=1000).map(|i| args(&format!("XADD st {i}-1 f v"))));
    trim.extend([args("XTRIM st MAXLEN ~ 0"), args("XLEN st"), args("CONFIG SET stream-node-max-entries 100")]);
    let want = [run(&mut rc, &cmds), run(&mut rc, &trim)];
    for s in &shardis {
        let mut c = s.conn();
        let got = [run(&mut c, &cmds), run(&mut c, &trim)];
        for (part, (w, g)) in want.iter().zip(&got).enumerate() {
            let list = if part == 0 { &cmds } else { &trim };
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_eq!(w, g, "{}: `{}`", s.name, list[i].join(" "));
            }
        }
    }
}

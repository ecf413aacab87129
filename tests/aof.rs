//! The append-only file with real processes: restart and crash recovery,
//! torn tails, corruption, missing segments, bad manifests, check-aof, and
//! the all-or-nothing recovery of cross-shard transactions.

mod common;

use common::resp::{RespConn, Value};
use common::server::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn s(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other}"),
    }
}

/// Every key of every db with its type, contents and absolute expiry.
fn dump(c: &mut RespConn) -> BTreeMap<(usize, String), String> {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]), Value::ok());
        let keys = c.cmd(&["KEYS", "*"]);
        for k in keys.as_items().expect("KEYS array") {
            let k = s(k);
            let ty = s(&c.cmd(&["TYPE", &k]));
            let body = match ty.as_str() {
                "string" => s(&c.cmd(&["GET", &k])),
                "list" => format!("{}", c.cmd(&["LRANGE", &k, "0", "-1"])),
                "hash" => sorted(c.cmd(&["HGETALL", &k])),
                "set" => sorted(c.cmd(&["SMEMBERS", &k])),
                "zset" => format!("{}", c.cmd(&["ZRANGE", &k, "0", "-1", "WITHSCORES"])),
                other => other.to_string(),
            };
            let exp = c.cmd(&["PEXPIRETIME", &k]).as_int().expect("PEXPIRETIME");
            out.insert((db, k), format!("{ty} {body} exp={exp}"));
        }
    }
    assert_eq!(c.cmd(&["SELECT", "0"]), Value::ok());
    out
}

fn sorted(v: Value) -> String {
    let mut items: Vec<String> = v.as_items().unwrap_or(&[]).iter().map(s).collect();
    items.sort();
    items.join(",")
}

/// A workload touching every kind of logged effect.
fn mixed_writes(c: &mut RespConn) {
    let far =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600).to_string();
    for cmd in [
        "SET s1 hello",
        "APPEND s1 world",
        "SET n 10",
        "INCRBY n 5",
        "INCRBYFLOAT f 1.5",
        "SETRANGE r 3 abc",
        "SET ttl1 v EX 1000",
        "SET ttl2 v PX 50000",
        "SETEX ttl3 100 v",
        "SET gone v",
        "EXPIRE gone 0",
        "SET p v EX 100",
        "PERSIST p",
        "SET g v",
        "GETEX g EX 500",
        "MSET a 1 b 2 c 3 d 4 e 5 f 6",
        "DEL e f",
        "RENAME a a2",
        "COPY b b2",
        "SET mv moving EX 900",
        "MOVE mv 2",
        "MULTI",
        "SET mv2 v",
        "MOVE mv2 6",
        "MOVE c 6",
        "EXEC",
        "MSETNX x1 1 x2 2",
        "SETBIT bits 7 1",
        "SELECT 3",
        "SET in3 three",
        "MSET m1 1 m2 2 m3 3",
        "SELECT 5",
        "SET doomed 1",
        "FLUSHDB",
        "SET survivor 1",
        "SELECT 0",
        "SWAPDB 3 4",
        "MULTI",
        "SET t1 1",
        "INCR t1",
        "SET t2 2",
        "EXEC",
        "SET short v PX 1",
    ] {
        let parts: Vec<&str> = cmd.split(' ').collect();
        let r = c.cmd(&parts);
        assert!(!r.is_error(), "{cmd}: {r}");
    }
    assert_eq!(c.cmd(&["EXPIREAT", "b2", &far]), Value::Int(1));
    // MOVE (also inside a transaction over several shards) changed databases.
    assert_eq!(c.cmd(&["SELECT", "6"]), Value::ok());
    assert_eq!((c.cmd(&["GET", "mv2"]), c.cmd(&["GET", "c"])), (Value::bulk("v"), Value::bulk("3")));
    assert_eq!(c.cmd(&["SELECT", "2"]), Value::ok());
    assert_eq!(c.cmd(&["TTL", "mv"]).as_int().map(|t| t > 800), Some(true));
    assert_eq!(c.cmd(&["SELECT", "0"]), Value::ok());
    assert_eq!(c.cmd(&["EXISTS", "mv", "mv2", "c"]), Value::Int(0));
    // Let `short` expire and be removed by the active cycle (logged as DEL).
    std::thread::sleep(Duration::from_millis(300));
}

fn restart_keeps_everything(shards: usize) {
    let mut srv = Server::start(shards, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    mixed_writes(&mut c);
    let before = dump(&mut c);
    assert!(before.len() > 15, "{before:?}");
    drop(c);
    srv.kill9();
    srv.restart().expect("restart after kill -9");
    let after = dump(&mut srv.conn());
    assert_eq!(before, after, "state after kill -9 and restart ({})", srv.dir.display());
    // A clean stop and another restart change nothing either.
    srv.restart().expect("restart after SIGTERM");
    assert_eq!(before, dump(&mut srv.conn()));
}

#[test]
fn restart_keeps_everything_1_shard() {
    restart_keeps_everything(1);
}

#[test]
fn restart_keeps_everything_4_shards() {
    restart_keeps_everything(4);
}

/// Records of what clients were told: acknowledged SETs, the last
/// acknowledged value of each counter, and cross-shard MSET pairs.
#[derive(Default)]
struct Acked {
    sets: Vec<(String, String)>,
    counters: BTreeMap<String, i64>,
    pairs_acked: Vec<(String, String)>,
    pairs_tried: Vec<(String, String)>,
}

/// One client of a crash round: batches of `pipeline` commands (a SET, an
/// INCR and a cross-shard MSET in turn) sent at once; each reply read
/// counts as acknowledged.
fn writer(port: u16, t: usize, round: u64, pipeline: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let Ok(mut c) = RespConn::connect(port) else { return };
    c.set_read_timeout(Some(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let counter = format!("ctr:{t}");
    let mut i = 0u64;
    while i < 100_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        let mut batch = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..pipeline {
            let cmd: Vec<String> = match i % 3 {
                0 => vec!["SET".into(), format!("k:{round}:{t}:{i}"), format!("r{round}v{i}")],
                1 => vec!["INCR".into(), counter.clone()],
                _ => {
                    // Two keys that (with 4 shards) almost always live on different shards.
                    let (a, b) = (format!("pa:{round}:{t}:{i}"), format!("pb:{round}:{t}:{i}"));
                    acked.lock().unwrap().pairs_tried.push((a.clone(), b.clone()));
                    vec!["MSET".into(), a, "1".into(), b, "1".into()]
                }
            };
            batch.extend_from_slice(&common::resp::encode_command(&cmd));
            sent.push(cmd);
            i += 1;
        }
        if c.send_raw(&batch).is_err() {
            return;
        }
        for cmd in sent {
            let Ok(reply) = c.read_value() else { return };
            let mut a = acked.lock().unwrap();
            match (cmd[0].as_str(), reply) {
                ("SET", Value::Simple(_)) => a.sets.push((cmd[1].clone(), cmd[2].clone())),
                ("INCR", Value::Int(n)) => {
                    a.counters.insert(counter.clone(), n);
                }
                ("MSET", Value::Simple(_)) => a.pairs_acked.push((cmd[1].clone(), cmd[3].clone())),
                _ => return,
            }
        }
    }
}

/// The replies to `cmds`, sent in pipelined batches (checking a crash
/// round's many acknowledged writes one round trip each is slow).
fn pipelined<'a>(c: &mut RespConn, cmds: impl Iterator<Item = Vec<&'a str>>) -> Vec<Value> {
    let cmds: Vec<Vec<&str>> = cmds.collect();
    let mut out = Vec::with_capacity(cmds.len());
    for batch in cmds.chunks(512) {
        let bytes: Vec<u8> = batch.iter().flat_map(|cmd| common::resp::encode_command(cmd)).collect();
        c.send_raw(&bytes).expect("send a batch");
        for _ in batch {
            out.push(c.read_value().expect("a reply"));
        }
    }
    out
}

/// Clients write, unpipelined and pipelined, under `policy`; the server
/// is killed at a random moment and restarted, repeatedly. Every
/// acknowledged write must be there, and no MSET spanning shards may be
/// half applied: a kill -9 loses nothing acknowledged under `always` and,
/// as in Redis, under `everysec` and `no` too (replies wait for their
/// record's write into the page cache).
fn crash_rounds_lose_no_acknowledged_write(policy: &str) {
    let rounds: u64 = std::env::var("SHARDIS_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("SHARDIS_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut srv = Server::start(4, &["--appendfsync", policy, "--aof-segment-size", "16kb"]);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = [1, 1, 16, 64]
            .into_iter()
            .enumerate()
            .map(|(t, pipeline)| {
                let (stop, acked, port) = (stop.clone(), acked.clone(), srv.port);
                std::thread::spawn(move || writer(port, t, round, pipeline, stop, acked))
            })
            .collect();
        // Every other round a rewrite races the writers and the crash.
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..100)));
            let _ = RespConn::connect(srv.port).and_then(|mut c| c.try_cmd(&["BGREWRITEAOF"]));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..250)));
        srv.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        srv.restart().unwrap_or_else(|e| panic!("{policy} round {round} (seed {seed}): restart failed: {e}"));
        let mut c = srv.conn();
        let a = acked.lock().unwrap();
        let ctx = format!("{policy} round {round} seed {seed}");
        let gets = pipelined(&mut c, a.sets.iter().map(|(k, _)| vec!["GET", k.as_str()]));
        for ((k, v), got) in a.sets.iter().zip(gets) {
            assert_eq!(got, Value::bulk(v), "{ctx}: acknowledged SET {k} lost");
        }
        for (k, n) in &a.counters {
            let got = c.cmd(&["GET", k]);
            let v: i64 = got.as_bytes().and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
            assert!(v >= *n, "{ctx}: counter {k} = {v} < acknowledged {n}");
        }
        // One key per EXISTS: a two-shard EXISTS is a transaction, slow in bulk.
        let present = |c: &mut RespConn, pairs: &[(String, String)]| -> Vec<i64> {
            let keys = pairs.iter().flat_map(|(x, y)| [vec!["EXISTS", x.as_str()], vec!["EXISTS", y.as_str()]]);
            let n: Vec<i64> = pipelined(c, keys).iter().map(|v| v.as_int().expect("EXISTS")).collect();
            n.chunks(2).map(|p| p[0] + p[1]).collect()
        };
        for ((x, y), n) in a.pairs_acked.iter().zip(present(&mut c, &a.pairs_acked)) {
            assert_eq!(n, 2, "{ctx}: acknowledged MSET {x} {y} lost");
        }
        for ((x, y), n) in a.pairs_tried.iter().zip(present(&mut c, &a.pairs_tried)) {
            assert!(n != 1, "{ctx}: MSET {x} {y} half applied");
        }
        // Counters continue from what survived; a new round's SET values differ.
    }
    assert!(acked.lock().unwrap().sets.len() > rounds as usize, "too little load to mean anything");
}

#[test]
fn crash_rounds_lose_no_acknowledged_write_always() {
    crash_rounds_lose_no_acknowledged_write("always");
}

#[test]
fn crash_rounds_lose_no_acknowledged_write_everysec() {
    crash_rounds_lose_no_acknowledged_write("everysec");
}

#[test]
fn crash_rounds_lose_no_acknowledged_write_no() {
    crash_rounds_lose_no_acknowledged_write("no");
}

fn segments(dir: &Path, shard: usize) -> Vec<PathBuf> {
    let d = dir.join(format!("shard-{shard:03}"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    v.sort();
    v
}

/// The newest non-empty segment of a shard.
fn last_nonempty(dir: &Path, shard: usize) -> PathBuf {
    segments(dir, shard)
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a segment with data")
}

fn fill(c: &mut RespConn, n: usize) {
    for i in 0..n {
        assert_eq!(c.cmd(&["SET", &format!("key:{i}"), &format!("value-{i}-{}", "x".repeat(40))]), Value::ok());
    }
}

/// A 1-shard server killed after 50 acknowledged SETs under `always`
/// (every one of them is in the file when the process dies), its newest
/// segment and that segment's bytes.
fn crashed_after_fifty_sets() -> (Server, PathBuf, Vec<u8>) {
    let mut srv = Server::start(1, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    fill(&mut c, 50);
    drop(c);
    srv.kill9();
    let seg = last_nonempty(&srv.dir, 0);
    let bytes = std::fs::read(&seg).unwrap();
    (srv, seg, bytes)
}

#[test]
fn torn_tail_is_truncated_with_a_log_line() {
    let (mut srv, seg, mut bytes) = crashed_after_fifty_sets();
    // Past the records the segment holds zeros (padding and space prepared
    // ahead); a record ends in "\r\n", never in a zero.
    let len = bytes.iter().rposition(|&b| b != 0).expect("records") + 1;
    bytes.truncate(len);
    // Half of a record where the next write went: a header announcing 100
    // bytes, then only 30, then the zeros the write never reached.
    let mut torn = vec![100u8, 0, 0, 0, 1, 2, 3, 4];
    torn.extend_from_slice(&[7u8; 30]);
    bytes.extend_from_slice(&torn);
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &bytes).unwrap();
    srv.restart().expect("a torn tail must not stop start-up");
    assert!(srv.logs().contains("truncating a torn record"), "{}", srv.logs());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len as u64, "torn bytes cut away");
    // ... and kept next to the segment, under a name the log gives.
    let aside = PathBuf::from(format!("{}.torn-{len}", seg.display()));
    assert_eq!(std::fs::read(&aside).unwrap(), torn, "the cut bytes, kept");
    assert!(srv.logs().contains(&format!("kept in {}", aside.display())), "{}", srv.logs());
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(50));
    assert_eq!(c.cmd(&["GET", "key:49"]).as_bytes().map(|b| b.starts_with(b"value-49")), Some(true));
}

/// Under `always`, direct-I/O writes run concurrently: a crash can leave a
/// later write on disk and an earlier one not. That hole, and what follows
/// it, is a torn tail (nothing past the hole was acknowledged).
#[test]
fn a_hole_left_by_concurrent_writes_is_a_torn_tail() {
    let (mut srv, seg, mut bytes) = crashed_after_fifty_sets();
    let mut recs = Vec::new(); // (offset, end, lsn)
    let mut pos = 0;
    while let Some((rec, at, next)) = shardis::persist::record::next(&bytes, pos).expect("valid log") {
        recs.push((at, next, rec.lsn));
        pos = next;
    }
    assert!(recs.len() >= 50, "{} records", recs.len());
    let (at, end, _) = recs[recs.len() - 2];
    if !recs.windows(2).all(|w| w[1].0 % 512 == 0 && w[1].0 >= w[0].1) {
        // Buffered writes (no O_DIRECT on this filesystem): no holes.
        eprintln!("no direct I/O here: {:?}", &recs[..3]);
        return;
    }
    // The next-to-last write never reached the disk; the last one did.
    bytes[at..end].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    srv.restart().expect("a hole in the tail must not stop start-up");
    assert!(srv.logs().contains("truncating a torn record"), "{}", srv.logs());
    let cut = recs[recs.len() - 3].1;
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), cut as u64, "cut after the last record in order");
    let kept = std::fs::read(format!("{}.torn-{cut}", seg.display())).unwrap();
    let last = recs[recs.len() - 1];
    assert_eq!(&kept[last.0 - cut..], &bytes[last.0..last.1], "the record after the hole, kept");
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(48));
    assert_eq!(c.cmd(&["EXISTS", "key:47", "key:48", "key:49"]), Value::Int(1));
}

/// Under `everysec` (and `no`) one write is in flight at a time, so a
/// crash of the process cannot leave a hole with intact records after it:
/// such a hole in the tail is damage. Start-up stops naming file and
/// offset, and `check-aof --fix` cuts there.
#[test]
fn a_hole_under_everysec_is_damage_not_a_torn_tail() {
    let mut srv = Server::start(1, &["--appendfsync", "everysec"]);
    fill(&mut srv.conn(), 50);
    srv.kill9();
    let seg = last_nonempty(&srv.dir, 0);
    let good = std::fs::read(&seg).unwrap();
    let mut recs = Vec::new(); // (offset, end)
    let mut pos = 0;
    while let Some((_, at, next)) = shardis::persist::record::next(&good, pos).expect("valid log") {
        recs.push((at, next));
        pos = next;
    }
    assert_eq!(recs.len(), 50);
    let (at, end) = recs[48];
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    // The next-to-last record garbled, then missing (zeros): either way
    // the last record, written after it, is intact.
    for damage in [0x5a_u8, 0] {
        let mut bytes = good.clone();
        if damage == 0 {
            bytes[at..end].fill(0);
        } else {
            bytes[at + 40] ^= damage;
        }
        std::fs::write(&seg, &bytes).unwrap();
        let err = srv.restart().expect_err("a hole before intact records must stop start-up");
        assert!(err.contains(&name) && err.contains(&format!("offset {at}")), "names file and offset: {err}");
        assert!(err.contains("damage") && err.contains("check-aof"), "{err}");
        assert_eq!(std::fs::read(&seg).unwrap(), bytes, "files left as they were");
    }
    let out = std::process::Command::new(common::server::shardis_bin())
        .args(["check-aof", "--fix", "--yes"])
        .arg(&srv.dir)
        .output()
        .expect("run check-aof");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    srv.restart().expect("starts after check-aof --fix");
    assert_eq!(srv.conn().cmd(&["DBSIZE"]), Value::Int(48));
}

#[test]
fn corruption_in_the_middle_stops_startup_and_check_aof_repairs() {
    let mut srv = Server::start(1, &["--aof-segment-size", "4096", "--appendfsync", "always"]);
    let mut c = srv.conn();
    fill(&mut c, 300);
    drop(c);
    srv.kill9();
    let segs = segments(&srv.dir, 0);
    assert!(segs.len() >= 3, "small segments expected, got {segs:?}");
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let err = srv.restart().expect_err("corruption must stop start-up");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("offset"), "message names file and offset: {err}");
    assert!(err.contains("check-aof"), "message says what to run: {err}");
    assert_eq!(std::fs::read(victim).unwrap(), bytes, "files left as they were");

    let check = |args: &[&str]| {
        std::process::Command::new(common::server::shardis_bin())
            .arg("check-aof")
            .args(args)
            .arg(&srv.dir)
            .output()
            .expect("run check-aof")
    };
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BAD"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = check(&["--fix", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(check(&[]).status.code(), Some(0));
    srv.restart().expect("starts after check-aof --fix");
    let n = srv.conn().cmd(&["DBSIZE"]).as_int().unwrap();
    assert!(n > 0 && n < 300, "keeps what precedes the damage: {n}");
}

#[test]
fn missing_segment_and_bad_manifest_stop_startup() {
    let mut srv = Server::start(1, &["--aof-segment-size", "4096", "--appendfsync", "always"]);
    fill(&mut srv.conn(), 300);
    srv.kill9();
    let segs = segments(&srv.dir, 0);
    let moved = srv.dir.join("moved-away.seg");
    std::fs::rename(&segs[1], &moved).unwrap();
    let err = srv.restart().expect_err("a gap in the log must stop start-up");
    assert!(err.contains("segment is missing"), "{err}");
    std::fs::rename(&moved, &segs[1]).unwrap();
    srv.restart().expect("starts once the segment is back");
    assert_eq!(srv.conn().cmd(&["DBSIZE"]), Value::Int(300));
    srv.kill9();
    let manifest = srv.dir.join("MANIFEST.toml");
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"version = [oops").unwrap();
    let err = srv.restart().expect_err("a bad manifest must stop start-up");
    assert!(err.contains("MANIFEST.toml") && err.contains("not a valid manifest"), "{err}");
    std::fs::write(&manifest, good).unwrap();
    srv.restart().expect("starts with the manifest restored");
    assert_eq!(srv.conn().cmd(&["DBSIZE"]), Value::Int(300));
}

/// Shard 0 makes its part of a cross-shard MSET durable and the process
/// dies before shard 1 logs its part: recovery must drop the MSET on both.
#[test]
fn half_logged_transaction_is_dropped_everywhere() {
    let mut srv = Server::start(2, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    // Slots: "b" is 3300 (shard 0 of 2), "a" is 15495 (shard 1).
    assert_eq!(c.cmd(&["MSET", "a", "old-a", "b", "old-b"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "b-side", "kept"]), Value::ok());
    drop(c);
    srv.restart_env(&[("SHARDIS_FAILPOINT", "txn-partial")], |_| {}).expect("restart with failpoint");
    let mut c = srv.conn();
    c.set_read_timeout(Some(Duration::from_secs(10)));
    assert!(c.try_cmd(&["MSET", "a", "new-a", "b", "new-b"]).is_err(), "the server dies mid-transaction");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!srv.alive(), "failpoint aborted the server");
    srv.restart().expect("restart after the failpoint");
    assert!(srv.logs().contains("dropping records"), "{}", srv.logs());
    // What was cut is kept next to the segment, named in the log.
    let kept: Vec<PathBuf> = std::fs::read_dir(srv.dir.join("shard-000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".aof.cut-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(srv.logs().contains(&format!("kept in {}", kept[0].display())), "{}", srv.logs());
    assert!(std::fs::metadata(&kept[0]).unwrap().len() > 0);
    let mut c = srv.conn();
    let want = Value::Array(vec![Value::bulk("old-a"), Value::bulk("old-b"), Value::bulk("kept")]);
    assert_eq!(c.cmd(&["MGET", "a", "b", "b-side"]), want);
}

#[test]
fn appendonly_no_writes_nothing() {
    let mut srv = Server::start(2, &["--appendonly", "no"]);
    fill(&mut srv.conn(), 10);
    srv.restart().expect("restart");
    assert_eq!(srv.conn().cmd(&["DBSIZE"]), Value::Int(0));
    assert!(!srv.dir.join("MANIFEST.toml").exists());
}

fn info_field(c: &mut RespConn, field: &str) -> String {
    info_in(c, "persistence", field)
}

fn info_in(c: &mut RespConn, section: &str, field: &str) -> String {
    let info = s(&c.cmd(&["INFO", section]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

fn wait_rewrite_done(c: &mut RespConn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(c, "aof_last_bgrewrite_status"), "ok");
}

fn count_files(dir: &Path, ext: &str) -> usize {
    (0..4)
        .map(|s| dir.join(format!("shard-{s:03}")))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .count()
}

/// BGREWRITEAOF while clients keep writing: the new bases plus the log
/// after them give back exactly the live state, and old segments go away.
#[test]
fn rewrite_under_writes_keeps_state_and_drops_old_segments() {
    let mut srv = Server::start(2, &["--aof-segment-size", "8192", "--appendfsync", "always"]);
    let mut c = srv.conn();
    mixed_writes(&mut c);
    fill(&mut c, 400);
    let segs_before: Vec<PathBuf> = (0..2).flat_map(|s| segments(&srv.dir, s)).collect();
    assert!(segs_before.len() > 4, "{segs_before:?}");
    let before_save = c.cmd(&["LASTSAVE"]).as_int().unwrap();
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), Value::Simple("Background append only file rewriting started".into()));
    // Writes racing the rewrite, including cross-shard ones.
    for i in 0..200 {
        let (a, b) = (format!("race:a:{i}"), format!("race:b:{i}"));
        assert_eq!(c.cmd(&["MSET", &a, "1", &b, "2"]), Value::ok());
        c.cmd(&["INCR", "race:ctr"]);
        c.cmd(&["DEL", &format!("key:{i}")]);
    }
    wait_rewrite_done(&mut c);
    assert!(count_files(&srv.dir, "snap") >= 2, "one base per shard");
    // All but (at most) the segment each shard was writing are gone.
    let left = segs_before.iter().filter(|p| p.exists()).count();
    assert!(left <= 2, "old segments removed: {left} of {} left", segs_before.len());
    assert_eq!(c.cmd(&["SAVE"]), Value::ok());
    assert!(c.cmd(&["LASTSAVE"]).as_int().unwrap() >= before_save);
    let before = dump(&mut c);
    drop(c);
    srv.kill9();
    srv.restart().expect("restart after rewrite");
    assert_eq!(before, dump(&mut srv.conn()));
}

/// A 1-shard server that rewrites its AOF once it grew by 20 KB.
fn auto_rewriting_server(policy: &str) -> Server {
    Server::start(
        1,
        &["--appendfsync", policy, "--auto-aof-rewrite-min-size", "20kb", "--auto-aof-rewrite-percentage", "100"],
    )
}

/// Wait (boundedly) until the server's log says `what`.
fn wait_for_log(srv: &Server, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !srv.logs().contains(what) {
        assert!(Instant::now() < deadline, "no '{what}' in the log: {}", srv.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn automatic_rewrite_by_growth() {
    let mut srv = auto_rewriting_server("always");
    let mut c = srv.conn();
    fill(&mut c, 600);
    wait_for_log(&srv, "automatic AOF rewrite", 10);
    wait_rewrite_done(&mut c);
    let before = dump(&mut c);
    srv.kill9();
    srv.restart().expect("restart");
    assert_eq!(before, dump(&mut srv.conn()));
}

/// A failing automatic rewrite backs off (5 s, then longer) instead of
/// building another copy of the data every 100 ms; once the fault is gone
/// the next try succeeds, and INFO shows the copy it built. (`replay`
/// builds a copy; the default `snapshot` holds only what its writer has
/// not written yet, which may be nothing.)
#[test]
fn failed_automatic_rewrite_backs_off() {
    let mut srv = Server::start(
        1,
        &[
            "--appendfsync",
            "everysec",
            "--auto-aof-rewrite-min-size",
            "20kb",
            "--auto-aof-rewrite-percentage",
            "100",
            "--rewrite-method",
            "replay",
        ],
    );
    // A directory where the new manifest's temporary file goes: the
    // rewrite writes its bases but cannot commit them (root or not).
    let blocker = srv.dir.join("MANIFEST.toml.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let mut c = srv.conn();
    fill(&mut c, 600);
    wait_for_log(&srv, "AOF rewrite failed", 30);
    // Without a backoff, tries would follow every 100 ms meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    let failed = srv.logs().matches("AOF rewrite failed").count();
    assert!(failed <= 2, "{failed} failed rewrites in about 2 s: {}", srv.logs());
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "err");
    assert!(info_field(&mut c, "aof_rewrites").parse::<u64>().unwrap() <= 2);
    assert_ne!(info_field(&mut c, "aof_rewrites_consecutive_failures"), "0");
    std::fs::remove_dir(&blocker).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(&mut c, "aof_last_bgrewrite_status") != "ok" {
        assert!(Instant::now() < deadline, "no successful retry: {}", srv.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(info_field(&mut c, "aof_rewrites_consecutive_failures"), "0");
    let copy: u64 = info_in(&mut c, "memory", "mem_aof_rewrite_copy_peak").parse().unwrap();
    let used: u64 = info_in(&mut c, "memory", "used_memory").parse().unwrap();
    assert!(copy >= used / 2, "the rewrite's copy ({copy} bytes) counted, for {used} bytes of data");
    let before = dump(&mut c);
    srv.kill9();
    srv.restart().expect("restart");
    assert_eq!(before, dump(&mut srv.conn()));
}

/// The same data directory opened with 1, 2 and 4 shards gives the same
/// keyspace: records are re-routed by key into new bases.
#[test]
fn restart_with_a_different_shard_count() {
    let mut srv = Server::start(1, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    mixed_writes(&mut c);
    fill(&mut c, 100);
    let before = dump(&mut c);
    drop(c);
    for shards in ["2", "4", "1", "3"] {
        srv.kill9();
        srv.restart_with(|cl| Server::set_arg(cl, "--shards", shards)).expect("restart with other shard count");
        let mut c = srv.conn();
        assert_eq!(before, dump(&mut c), "with {shards} shards");
        assert!(srv.logs().contains("re-sharded"), "{}", srv.logs());
        // Still writable and durable in the new layout.
        assert_eq!(c.cmd(&["SET", "probe", shards]), Value::ok());
        assert_eq!(c.cmd(&["DEL", "probe"]), Value::Int(1));
    }
}

/// CONFIG SET appendonly yes writes every shard's data as a base and logs
/// from then on; appendonly no stops logging.
#[test]
fn appendonly_switched_at_run_time() {
    let mut srv = Server::start(2, &["--appendonly", "no", "--appendfsync", "always"]);
    let mut c = srv.conn();
    mixed_writes(&mut c);
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), Value::ok());
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    for i in 0..50 {
        c.cmd(&["RPUSH", "after-on", &i.to_string()]);
        c.cmd(&["MSET", &format!("x{i}"), "1", &format!("y{i}"), "2"]);
    }
    let logged = dump(&mut c);
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "no"]), Value::ok());
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    assert_eq!(c.cmd(&["SET", "after-off", "1"]), Value::ok());
    drop(c);
    srv.kill9();
    srv.restart_with(|cl| Server::set_arg(cl, "--appendonly", "yes")).expect("restart with the AOF");
    let mut c = srv.conn();
    assert_eq!(dump(&mut c), logged, "what was logged while appendonly was on, nothing after");

    // Again, over the log written above: the new bases go above its lsns
    // and replace it.
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "no"]), Value::ok());
    for i in 0..30 {
        c.cmd(&["SET", &format!("off:{i}"), "v"]);
    }
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), Value::ok());
    c.cmd(&["LPUSH", "after-second-on", "a"]);
    let logged = dump(&mut c);
    drop(c);
    srv.kill9();
    srv.restart().expect("restart after the second switch");
    assert_eq!(dump(&mut srv.conn()), logged);
    for s in 0..2 {
        // The one opened by the switch and the one opened by the restart
        // (the same file if the shard logged nothing in between).
        let n = segments(&srv.dir, s).len();
        assert!((1..=2).contains(&n), "old segments removed after the switch committed: {n} left");
    }
}

/// `CONFIG SET appendonly yes` commits on every shard or on none: one
/// shard that cannot write its base leaves all of them unlogged, and the
/// server says the AOF is off; a later try works.
#[test]
fn failed_appendonly_switch_leaves_it_off_everywhere() {
    let mut srv = Server::start(2, &["--appendonly", "no"]);
    let blocker = srv.dir.join("shard-001");
    std::fs::write(&blocker, b"a file where shard 1's directory goes").unwrap();
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["SET", "a", "1"]), Value::ok());
    let r = c.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    assert!(r.is_error(), "{r}");
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "appendonly"]),
        Value::Array(vec![Value::bulk("appendonly"), Value::bulk("no")])
    );
    assert!(!srv.dir.join("MANIFEST.toml").exists(), "nothing committed");
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), Value::ok());
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    assert_eq!(c.cmd(&["SET", "b", "2"]), Value::ok());
    drop(c);
    srv.kill9();
    srv.restart_with(|cl| Server::set_arg(cl, "--appendonly", "yes")).expect("restart with the AOF");
    assert_eq!(srv.conn().cmd(&["MGET", "a", "b"]), Value::Array(vec![Value::bulk("1"), Value::bulk("2")]));
}

/// A crash in the middle of `CONFIG SET appendonly yes` leaves a directory
/// that loads: the old log before the manifest names the new bases, the
/// new bases after.
#[test]
fn appendonly_switch_is_crash_safe() {
    for (fp, expect_new) in [("switch-before-commit", false), ("switch-after-commit", true)] {
        let mut srv = Server::start(2, &["--appendonly", "yes", "--appendfsync", "always"]);
        let mut c = srv.conn();
        mixed_writes(&mut c);
        let old = dump(&mut c);
        drop(c);
        srv.restart_env(&[("SHARDIS_FAILPOINT", fp)], |cl| Server::set_arg(cl, "--appendonly", "no"))
            .expect("restart without the AOF");
        let mut c = srv.conn();
        c.cmd(&["SET", "written-while-off", "1"]);
        let new = dump(&mut c);
        assert_ne!(old, new);
        let _ = c.try_cmd(&["CONFIG", "SET", "appendonly", "yes"]);
        drop(c);
        srv.restart_with(|cl| Server::set_arg(cl, "--appendonly", "yes")).expect(fp);
        let got = dump(&mut srv.conn());
        assert_eq!(got, if expect_new { new } else { old }, "{fp}");
    }
}

/// `appendfsync everysec`: a crash loses at most about the last second of
/// acknowledged writes (with a process crash, where the page cache
/// survives, nothing handed to the kernel is lost at all).
#[test]
fn everysec_loses_at_most_about_a_second() {
    let mut srv = Server::start(2, &["--appendfsync", "everysec"]);
    let mut c = srv.conn();
    let start = Instant::now();
    let mut acked: Vec<(usize, Instant)> = Vec::new();
    for i in 0..200_000usize {
        if start.elapsed() > Duration::from_millis(1500) {
            break;
        }
        assert_eq!(c.cmd(&["SET", &format!("e:{i}"), "v"]), Value::ok());
        acked.push((i, Instant::now()));
    }
    srv.kill9();
    let killed = Instant::now();
    srv.restart().expect("restart");
    let mut c = srv.conn();
    let old: Vec<usize> =
        acked.iter().filter(|(_, t)| killed.duration_since(*t) > Duration::from_secs(1)).map(|(i, _)| *i).collect();
    for i in &old {
        assert_eq!(
            c.cmd(&["EXISTS", &format!("e:{i}")]),
            Value::Int(1),
            "write {i}, acknowledged over 1 s before the crash, lost"
        );
    }
    let survived = c.cmd(&["DBSIZE"]).as_int().unwrap() as usize;
    assert!(survived >= old.len() && survived <= acked.len(), "{survived} of {} acknowledged", acked.len());
}

/// After a restart, a stream consumer counts as seen at load time (as with
/// Redis's AOF), not at the epoch.
#[test]
fn stream_consumers_are_seen_at_load_time() {
    let mut srv = Server::start(1, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    c.cmd(&["XADD", "s", "1-1", "f", "v"]);
    assert_eq!(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]), Value::ok());
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
    drop(c);
    srv.kill9();
    srv.restart().expect("restart");
    let info = srv.conn().cmd(&["XINFO", "CONSUMERS", "s", "g"]);
    let Value::Array(consumers) = info else { panic!("XINFO CONSUMERS: {info}") };
    let Some(Value::Array(fields)) = consumers.first() else { panic!("one consumer expected") };
    let idle =
        fields.chunks(2).find(|kv| kv[0] == Value::bulk("idle")).and_then(|kv| kv[1].as_int()).expect("idle field");
    assert!((0..60_000).contains(&idle), "idle {idle} ms after a restart");
}

/// `always` on tmpfs: before Linux 6.6 it has no O_DIRECT and writes go
/// through the page cache with RWF_DSYNC (with a log line); since, direct
/// I/O works there too. Either way nothing acknowledged is lost.
#[test]
fn always_on_tmpfs_keeps_every_acknowledged_write() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return;
    }
    let data = shm.join(format!("shardis-aof-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut srv = Server::start(2, &["--appendfsync", "always"]);
    let d = data.to_string_lossy().into_owned();
    srv.restart_with(|cl| Server::set_arg(cl, "--dir", &d)).expect("start on tmpfs");
    let mut c = srv.conn();
    mixed_writes(&mut c);
    let before = dump(&mut c);
    drop(c);
    srv.kill9();
    srv.restart().expect("restart on tmpfs");
    assert_eq!(dump(&mut srv.conn()), before);
    std::fs::remove_dir_all(&data).ok();
}

/// GEO writes (GEOADD logged as ZADD, the STORE forms, across shards when
/// there are several) replay to the same positions and search results.
fn geo_survives_restart(shards: usize) {
    let mut srv = Server::start(shards, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    for cmd in [
        "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOADD Sicily NX 12.758489 38.788135 edge1 1 1 Palermo",
        "GEOADD Sicily XX CH 17.241510 38.788135 edge2 13.5 38.2 Palermo",
        "GEOADD world -122.4194 37.7749 sf 151.2093 -33.8688 sydney 180 85.05112878 corner",
        "GEOSEARCHSTORE near Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
        "GEORADIUS Sicily 15 37 300 km COUNT 2 STORE {Sicily}two",
        "GEORADIUSBYMEMBER world sf 20000 km DESC STOREDIST far",
    ] {
        let parts: Vec<&str> = cmd.split(' ').collect();
        let r = c.cmd(&parts);
        assert!(!r.is_error(), "{cmd}: {r}");
    }
    let probe = |c: &mut RespConn| {
        [
            c.cmd(&["GEOPOS", "Sicily", "Palermo", "Catania", "edge1", "edge2"]),
            c.cmd(&["GEOPOS", "world", "sf", "sydney", "corner"]),
            c.cmd(&["GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km", "ASC", "WITHDIST"]),
            c.cmd(&["GEOHASH", "world", "sf", "sydney"]),
        ]
    };
    let before = (dump(&mut c), probe(&mut c));
    for key in ["near", "{Sicily}two", "far"] {
        assert!(before.0.contains_key(&(0, key.to_string())), "{key} was stored: {:?}", before.0);
    }
    drop(c);
    // GEOADD is replayed as the ZADD it amounted to.
    let logged: Vec<u8> =
        (0..shards).flat_map(|s| segments(&srv.dir, s)).flat_map(|p| std::fs::read(p).unwrap()).collect();
    let text = String::from_utf8_lossy(&logged).to_ascii_uppercase();
    assert!(text.contains("ZADD") && !text.contains("GEOADD"), "GEOADD logged as ZADD");
    srv.kill9();
    srv.restart().expect("restart after kill -9");
    let mut c = srv.conn();
    assert_eq!((dump(&mut c), probe(&mut c)), before, "geo state after restart ({})", srv.dir.display());
}

#[test]
fn geo_survives_restart_1_shard() {
    geo_survives_restart(1);
}

#[test]
fn geo_survives_restart_4_shards() {
    geo_survives_restart(4);
}

/// SORT ... STORE is logged as the list it stored: a replay must not look
/// its BY/GET keys up again (they changed afterwards here), across shards
/// too when there are several.
fn sort_store_survives_restart(shards: usize) {
    let mut srv = Server::start(shards, &["--appendfsync", "always"]);
    let mut c = srv.conn();
    for cmd in [
        "RPUSH {t}l c a b 10 2",
        "SADD {t}s z x y",
        "MSET {t}w_a 3 {t}w_b 1 {t}w_c 2 {t}w_10 0",
        "HSET {t}h_a f A",
        "HSET {t}h_b f B",
        "SET {t}gone x",
        "SORT {t}l BY {t}w_* GET # GET {t}h_*->f STORE {t}dst",
        "SORT {t}l BY {t}w_* ALPHA DESC LIMIT 1 3 STORE {t}lim",
        "SORT {t}s BY nosort STORE {t}set",
        "SORT {t}l ALPHA LIMIT 0 2 STORE elsewhere",
        "SORT {t}none STORE {t}gone",
        // What a replayed SORT would read differently.
        "MSET {t}w_a -1 {t}w_b 9",
        "HSET {t}h_a f changed",
    ] {
        let parts: Vec<&str> = cmd.split(' ').collect();
        let r = c.cmd(&parts);
        assert!(!r.is_error(), "{cmd}: {r}");
    }
    let before = dump(&mut c);
    let dst = c.cmd(&["LRANGE", "{t}dst", "0", "-1"]);
    let items: Vec<String> = dst.as_items().expect("list").iter().map(s).collect();
    // "2" has no weight: 0, like 10, and the tie goes by the elements.
    assert_eq!(items, ["10", "", "2", "", "b", "B", "c", "", "a", "A"]);
    assert!(!before.contains_key(&(0, "{t}gone".to_string())), "empty result deletes the destination");
    drop(c);
    let logged: Vec<u8> =
        (0..shards).flat_map(|s| segments(&srv.dir, s)).flat_map(|p| std::fs::read(p).unwrap()).collect();
    let text = String::from_utf8_lossy(&logged).to_ascii_uppercase();
    assert!(!text.contains("SORT"), "SORT ... STORE logged as its result");
    srv.kill9();
    srv.restart().expect("restart after kill -9");
    assert_eq!(dump(&mut srv.conn()), before, "state after restart ({})", srv.dir.display());
}

#[test]
fn sort_store_survives_restart_1_shard() {
    sort_store_survives_restart(1);
}

#[test]
fn sort_store_survives_restart_4_shards() {
    sort_store_survives_restart(4);
}

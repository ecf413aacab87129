//! `rewrite-method snapshot` with real processes: writes racing the
//! snapshot, a kill -9 in the middle of one, and cross-shard transactions
//! across the barrier that starts it. The `snapshot-slow` failpoint makes
//! the snapshot walk a few buckets every 2 ms, so a small keyspace keeps
//! it running for a second or two while the clients write.

mod common;

use common::repl::info_field;
use common::resp::{RespConn, Value};
use common::server::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 3000;

fn start(shards: usize) -> Server {
    Server::start_env(
        shards,
        &["--rewrite-method", "snapshot", "--appendfsync", "everysec"],
        &[("SHARDIS_FAILPOINT", "snapshot-slow")],
    )
}

fn in_progress(c: &mut RespConn) -> bool {
    info_field(c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("1")
}

/// What one client knows it was acknowledged, per key.
#[derive(Clone, Debug, PartialEq)]
enum Known {
    Str(String),
    List(Vec<String>),
    Hash(BTreeMap<String, String>),
}

/// Pipelined: send all, read all (the preload).
fn pipelined(c: &mut RespConn, cmds: &[Vec<String>]) {
    for batch in cmds.chunks(256) {
        let bytes: Vec<u8> = batch.iter().flat_map(|cmd| common::resp::encode_command(cmd)).collect();
        c.send_raw(&bytes).expect("send");
        for cmd in batch {
            let v = c.read_value().expect("reply");
            assert!(!v.is_error(), "{cmd:?}: {v:?}");
        }
    }
}

/// Strings, lists and hashes, and what they hold.
fn preload(c: &mut RespConn) -> BTreeMap<String, Known> {
    let mut known = BTreeMap::new();
    let mut cmds = Vec::new();
    for i in 0..KEYS {
        let (k, cmd, v) = match i % 3 {
            0 => (format!("s:{i}"), "SET", Known::Str(format!("v{i}"))),
            1 => (format!("l:{i}"), "RPUSH", Known::List(vec![format!("a{i}"), "b".into()])),
            _ => (format!("h:{i}"), "HSET", Known::Hash([("f".to_string(), format!("{i}"))].into())),
        };
        let mut parts = vec![cmd.to_string(), k.clone()];
        match &v {
            Known::Str(s) => parts.push(s.clone()),
            Known::List(l) => parts.extend(l.iter().cloned()),
            Known::Hash(h) => h.iter().for_each(|(f, x)| parts.extend([f.clone(), x.clone()])),
        }
        cmds.push(parts);
        known.insert(k, v);
    }
    pipelined(c, &cmds);
    known
}

/// One random write (set, overwrite, append, delete), applied to `known`
/// once acknowledged.
fn random_write(c: &mut RespConn, rng: &mut StdRng, n: usize, known: &mut BTreeMap<String, Known>) {
    let i = rng.gen_range(0..KEYS + 200);
    let kind = ["s", "l", "h"][i % 3];
    let key = format!("{kind}:{i}");
    if rng.gen_range(0..6) == 0 {
        assert!(c.cmd(&["DEL", &key]).as_int().is_some());
        known.remove(&key);
        return;
    }
    let val = format!("w{n}");
    match kind {
        "s" => {
            assert_eq!(c.cmd(&["SET", &key, &val]), Value::ok());
            known.insert(key, Known::Str(val));
        }
        "l" => {
            assert!(c.cmd(&["RPUSH", &key, &val]).as_int().is_some());
            match known.entry(key).or_insert(Known::List(Vec::new())) {
                Known::List(l) => l.push(val),
                other => panic!("model holds {other:?} for a list"),
            }
        }
        _ => {
            let field = format!("f{}", rng.gen_range(0..3));
            assert!(c.cmd(&["HSET", &key, &field, &val]).as_int().is_some());
            match known.entry(key).or_insert(Known::Hash(BTreeMap::new())) {
                Known::Hash(h) => {
                    h.insert(field, val);
                }
                other => panic!("model holds {other:?} for a hash"),
            }
        }
    }
}

/// Every key the client knows holds what it knows, and nothing else exists.
fn check(c: &mut RespConn, known: &BTreeMap<String, Known>, ctx: &str) {
    for (k, want) in known {
        let got = match want {
            Known::Str(_) => {
                Known::Str(String::from_utf8_lossy(c.cmd(&["GET", k]).as_bytes().unwrap_or(b"<nil>")).into())
            }
            Known::List(_) => Known::List(
                c.cmd(&["LRANGE", k, "0", "-1"])
                    .as_items()
                    .unwrap_or(&[])
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes().unwrap_or(b"")).into_owned())
                    .collect(),
            ),
            Known::Hash(_) => {
                let items = c.cmd(&["HGETALL", k]);
                let items = items.as_items().unwrap_or(&[]);
                Known::Hash(
                    items
                        .chunks(2)
                        .map(|p| {
                            let s = |v: &Value| String::from_utf8_lossy(v.as_bytes().unwrap_or(b"")).into_owned();
                            (s(&p[0]), s(&p[1]))
                        })
                        .collect(),
                )
            }
        };
        assert_eq!(&got, want, "{ctx}: key {k}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]).as_int(), Some(known.len() as i64), "{ctx}: no other keys");
}

/// A client writes, overwrites and deletes while the snapshot runs (most
/// writes land on keys the cursor has not reached yet); after the
/// rewrite and a restart from its bases, every key is what the client
/// was told.
fn writes_racing_a_snapshot_are_all_kept(shards: usize) {
    let mut srv = start(shards);
    let mut c = srv.conn();
    let mut known = preload(&mut c);
    let mut rng = StdRng::seed_from_u64(20 + shards as u64);
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), Value::Simple("Background append only file rewriting started".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut n, mut during) = (0, 0);
    loop {
        for _ in 0..50 {
            random_write(&mut c, &mut rng, n, &mut known);
            n += 1;
        }
        if !in_progress(&mut c) {
            break;
        }
        during += 50;
        assert!(Instant::now() < deadline, "the snapshot did not finish");
    }
    assert!(during >= 200, "only {during} writes raced the snapshot");
    assert_eq!(info_field(&mut c, "persistence", "aof_last_bgrewrite_status").as_deref(), Some("ok"), "{}", srv.logs());
    assert!(srv.logs().contains("AOF rewrite (snapshot) done"), "{}", srv.logs());
    for _ in 0..100 {
        random_write(&mut c, &mut rng, n, &mut known);
        n += 1;
    }
    check(&mut c, &known, "before the restart");
    drop(c);
    srv.kill9();
    srv.restart().expect("restart from the new bases");
    check(&mut srv.conn(), &known, "after the restart");
}

#[test]
fn writes_racing_a_snapshot_are_all_kept_1_shard() {
    writes_racing_a_snapshot_are_all_kept(1);
}

#[test]
fn writes_racing_a_snapshot_are_all_kept_4_shards() {
    writes_racing_a_snapshot_are_all_kept(4);
}

/// kill -9 in the middle of a snapshot: the old layout loads with every
/// acknowledged write; the half-written bases are ignored, and the next
/// rewrite succeeds and loads too.
#[test]
fn kill_during_a_snapshot_loses_nothing_acknowledged() {
    let mut srv = start(4);
    let mut c = srv.conn();
    let mut known = preload(&mut c);
    let mut rng = StdRng::seed_from_u64(99);
    c.cmd(&["BGREWRITEAOF"]);
    for n in 0..400 {
        random_write(&mut c, &mut rng, n, &mut known);
    }
    assert!(in_progress(&mut c), "the snapshot still runs when the process is killed");
    drop(c);
    srv.kill9();
    srv.restart().expect("restart after a kill during the snapshot");
    let mut c = srv.conn();
    check(&mut c, &known, "after the kill");
    // The next rewrite (at full speed now) commits, and loads.
    c.cmd(&["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_progress(&mut c) {
        assert!(Instant::now() < deadline, "second rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut c, "persistence", "aof_last_bgrewrite_status").as_deref(), Some("ok"));
    drop(c);
    srv.kill9();
    srv.restart().expect("restart after the second rewrite");
    check(&mut srv.conn(), &known, "after the second rewrite");
}

/// Cross-shard MSETs and MULTI/EXECs run on 4 shards while the barrier
/// starts the snapshot and the cursor walks; after a restart from the new
/// bases every transaction is all or nothing: each writes one value to
/// all of its keys, so the keys of a group always agree, and hold the
/// last value the client was told.
#[test]
fn cross_shard_transactions_across_a_snapshot_are_all_or_nothing() {
    let mut srv = start(4);
    let mut c = srv.conn();
    preload(&mut c);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = |t: usize, stop: Arc<AtomicBool>, port: u16| {
        std::thread::spawn(move || {
            let mut c = RespConn::connect(port).expect("connect");
            let mut last: BTreeMap<usize, (u64, Vec<String>)> = BTreeMap::new();
            let mut rng = StdRng::seed_from_u64(t as u64);
            let deadline = Instant::now() + Duration::from_secs(12);
            let mut v = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                v += 1;
                let g = rng.gen_range(0..40);
                // Three keys, on different shards for most groups.
                let keys: Vec<String> = (0..3).map(|j| format!("tx:{t}:{g}:{j}")).collect();
                let val = v.to_string();
                if v.is_multiple_of(2) {
                    let mut args = vec!["MSET".to_string()];
                    keys.iter().for_each(|k| args.extend([k.clone(), val.clone()]));
                    assert_eq!(c.cmd(&args), Value::ok());
                } else {
                    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
                    for k in &keys {
                        assert_eq!(c.cmd(&["SET", k, &val]), Value::Simple("QUEUED".into()));
                    }
                    let r = c.cmd(&["EXEC"]);
                    assert_eq!(r.as_items().map(|i| i.len()), Some(3), "{r:?}");
                }
                last.insert(g, (v, keys));
            }
            last
        })
    };
    let threads: Vec<_> = (0..2).map(|t| writer(t, stop.clone(), srv.port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), Value::Simple("Background append only file rewriting started".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    std::thread::sleep(Duration::from_millis(50));
    while in_progress(&mut c) {
        assert!(Instant::now() < deadline, "the snapshot did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let lasts: Vec<_> = threads.into_iter().map(|t| t.join().expect("writer")).collect();
    assert_eq!(info_field(&mut c, "persistence", "aof_last_bgrewrite_status").as_deref(), Some("ok"), "{}", srv.logs());
    drop(c);
    srv.kill9();
    srv.restart().expect("restart from the new bases");
    let mut c = srv.conn();
    let mut groups = 0;
    for last in &lasts {
        for (v, keys) in last.values() {
            for k in keys {
                assert_eq!(
                    c.cmd(&["GET", k]),
                    Value::bulk(v.to_string()),
                    "group of {k}: not the last acknowledged value"
                );
            }
            groups += 1;
        }
    }
    assert!(groups >= 40, "only {groups} groups written");
}

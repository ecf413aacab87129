//! Replication between real shardis-server processes on distinct loopback
//! addresses (127.0.0.2 is the master's host, 127.0.0.3 and .4 replicas',
//! .5 a fault-injecting proxy's). Every wait is bounded; every load loop
//! is bounded in count.

mod common;

use common::repl::{
    converge, info_field, info_u64, master, replica_of, snapshot, until, write_load, write_load_with, Proxy,
    MASTER_HOST,
};
use common::{Server, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn converge_case(master_shards: usize, replica_shards: usize) {
    let m = master(master_shards);
    let mut mc = m.conn();
    write_load(&mut mc, 1, 1500, 200);
    let r1 = replica_of(replica_shards, "127.0.0.3", (MASTER_HOST, m.port));
    let r2 = replica_of(replica_shards, "127.0.0.4", (MASTER_HOST, m.port));
    write_load(&mut mc, 2, 3000, 200);
    converge(&m, &r1);
    converge(&m, &r2);
    // The master lists both replicas under their own addresses.
    let info = String::from_utf8_lossy(mc.cmd(&["INFO", "replication"]).as_bytes().unwrap_or_default()).into_owned();
    assert!(info.contains("connected_slaves:2"), "{info}");
    for host in ["127.0.0.3", "127.0.0.4"] {
        assert!(info.contains(&format!("ip={host},")), "{host} missing from {info}");
    }
}

#[test]
fn two_replicas_converge_one_shard() {
    converge_case(1, 1);
}

#[test]
fn two_replicas_converge_four_shards() {
    converge_case(4, 4);
}

#[test]
fn replicas_with_other_shard_counts_converge() {
    converge_case(4, 2);
    converge_case(1, 3);
}

/// Writes over keys of several slots on a one-shard master reach replicas
/// with more shards whole: the master logs them so that each logged
/// command's keys share a slot (MSET and DEL are cut by key on the replica).
#[test]
fn multi_key_writes_reach_replicas_with_more_shards() {
    let m = master(1);
    let mut mc = m.conn();
    write_load_with(&mut mc, 7, 1000, 150, true);
    let r3 = replica_of(3, "127.0.0.3", (MASTER_HOST, m.port));
    let r1 = replica_of(1, "127.0.0.4", (MASTER_HOST, m.port));
    write_load_with(&mut mc, 8, 3000, 150, true);
    assert_eq!(mc.cmd(&["SET", "s1", "x"]), Value::ok());
    assert_eq!(mc.cmd(&["RENAME", "s1", "s77"]), Value::ok());
    converge(&m, &r3);
    converge(&m, &r1);
    // Every key is where the replica's own routing looks for it.
    let mut rc = r3.conn();
    for key in snapshot(&mut mc).keys() {
        assert_eq!(rc.cmd(&[&b"EXISTS"[..], key]), Value::Int(1), "{}", String::from_utf8_lossy(key));
    }
}

/// FLUSHDB, FLUSHALL and SWAPDB, which each master shard logs for its own
/// keys in its own stream, leave a replica with another shard count with
/// what the master has in every db, whatever order the streams arrive in.
#[test]
fn flushes_and_swaps_reach_replicas_with_other_shard_counts() {
    let m = master(4);
    let mut mc = m.conn();
    let select = |c: &mut common::RespConn, db: &str| assert_eq!(c.cmd(&["SELECT", db]), Value::ok());
    write_load(&mut mc, 11, 600, 100);
    select(&mut mc, "1");
    write_load(&mut mc, 12, 600, 100);
    let r1 = replica_of(1, "127.0.0.3", (MASTER_HOST, m.port));
    let r3 = replica_of(3, "127.0.0.4", (MASTER_HOST, m.port));
    assert_eq!(mc.cmd(&["SWAPDB", "0", "1"]), Value::ok());
    write_load(&mut mc, 13, 600, 100);
    assert_eq!(mc.cmd(&["FLUSHDB"]), Value::ok());
    write_load(&mut mc, 14, 600, 100);
    select(&mut mc, "0");
    assert_eq!(mc.cmd(&["FLUSHALL"]), Value::ok());
    write_load(&mut mc, 15, 1500, 100);
    select(&mut mc, "1");
    write_load(&mut mc, 18, 600, 100);
    select(&mut mc, "2");
    write_load(&mut mc, 16, 600, 100);
    assert_eq!(mc.cmd(&["SWAPDB", "2", "0"]), Value::ok());
    write_load(&mut mc, 17, 600, 100);
    for r in [&r1, &r3] {
        converge(&m, r);
        let (mut a, mut b) = (m.conn(), r.conn());
        for db in ["1", "2"] {
            select(&mut a, db);
            select(&mut b, db);
            let want = snapshot(&mut a);
            assert!(!want.is_empty(), "db {db} has keys on the master");
            let what = format!("{}'s db {db} to match the master's", r.name);
            until(&what, 10, || snapshot(&mut b) == want);
        }
    }
}

#[test]
fn a_replica_refuses_writes_and_says_what_it_is() {
    // No master listens there (no test binds 127.0.0.254): the replica is
    // down but still read-only.
    let dead = common::free_port().to_string();
    let r = Server::start(2, &["--bind", "127.0.0.3", "--replicaof", "127.0.0.254", &dead]);
    let mut c = r.conn();
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::Error("READONLY You can't write against a read only replica.".into()));
    assert_eq!(c.cmd(&["GET", "k"]), Value::NilBulk);
    // Queued writes are refused too, and EXEC aborts.
    assert_eq!(c.cmd(&["MULTI"]), Value::ok());
    assert!(c.cmd(&["INCR", "n"]).is_error());
    assert!(matches!(c.cmd(&["EXEC"]), Value::Error(e) if e.starts_with("EXECABORT")));
    let role = c.cmd(&["ROLE"]);
    let items = role.as_items().expect("ROLE array").to_vec();
    assert_eq!(items[0], Value::bulk("slave"));
    assert_eq!(items[1], Value::bulk("127.0.0.254"));
    assert_eq!(info_field(&mut c, "replication", "role").as_deref(), Some("slave"));
    assert_eq!(info_field(&mut c, "replication", "master_link_status").as_deref(), Some("down"));
    assert_eq!(info_field(&mut c, "replication", "slave_read_only").as_deref(), Some("1"));
    // Promoted: writes work.
    assert_eq!(c.cmd(&["REPLICAOF", "NO", "ONE"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
    assert_eq!(info_field(&mut c, "replication", "role").as_deref(), Some("master"));
    assert!(c.cmd(&["REPLICAOF", "somewhere", "notaport"]).is_error());
}

#[test]
fn a_killed_replica_resumes_with_a_partial_sync() {
    let shards = 2;
    let m = master(shards);
    let mut mc = m.conn();
    write_load(&mut mc, 3, 1000, 100);
    let mut r = replica_of(shards, "127.0.0.3", (MASTER_HOST, m.port));
    converge(&m, &r);
    // Each master shard's position reaches every replica shard once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let full = info_u64(&mut mc, "stats", "sync_full");
    let partial = info_u64(&mut mc, "stats", "sync_partial_ok");
    assert_eq!(full, shards as u64, "one full sync per shard at first");
    r.kill9();
    write_load(&mut mc, 4, 1000, 100);
    r.restart().expect("replica restarts");
    converge(&m, &r);
    assert_eq!(info_u64(&mut mc, "stats", "sync_full"), full, "no full sync after the restart");
    assert_eq!(info_u64(&mut mc, "stats", "sync_partial_ok"), partial + shards as u64);
}

/// The link cut (by a fault-injecting proxy standing for the master) for
/// `cut` while the master takes writes: every shard continues with a
/// partial sync, none does a full one, and the replica converges.
fn cut_case(cut: Duration) {
    let shards = 3;
    let m = master(shards);
    let mut mc = m.conn();
    // The proxy stands for the master on 127.0.0.5.
    let proxy = Proxy::for_master(&m, "127.0.0.5");
    write_load(&mut mc, 5, 1000, 100);
    let r = replica_of(shards, "127.0.0.3", ("127.0.0.5", m.port));
    converge(&m, &r);
    let full = info_u64(&mut mc, "stats", "sync_full");
    let partial = info_u64(&mut mc, "stats", "sync_partial_ok");
    std::thread::scope(|s| {
        let cutter = s.spawn(|| proxy.cut_for(cut));
        // Writes during the cut (bounded: 200 batches at most).
        let mut seed = 100;
        while !cutter.is_finished() && seed < 300 {
            write_load(&mut mc, seed, 200, 100);
            seed += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    write_load(&mut mc, 6, 500, 100);
    converge(&m, &r);
    until("every shard to continue", 20, || info_u64(&mut mc, "stats", "sync_partial_ok") >= partial + shards as u64);
    assert_eq!(info_u64(&mut mc, "stats", "sync_full"), full, "no full sync after the cut");
}

#[test]
fn a_link_cut_for_a_second_resyncs_partially_on_every_shard() {
    cut_case(Duration::from_secs(1));
}

#[test]
fn a_link_cut_for_ten_seconds_resyncs_partially_on_every_shard() {
    cut_case(Duration::from_secs(10));
}

#[test]
fn hostile_peers_on_the_replication_port_are_refused() {
    let m = master(2);
    let mut mc = m.conn();
    mc.cmd(&["SET", "k", "v"]);
    let hello = mc.cmd(&["REPLCONF", "SHARDIS-HELLO"]);
    let items = hello.as_items().expect("hello").to_vec();
    let repl_port = items[0].as_int().expect("port") as u16;
    let replid = String::from_utf8_lossy(items[2].as_bytes().expect("replid")).into_owned();
    let answer = |bytes: &[u8]| -> String {
        let mut s = TcpStream::connect((MASTER_HOST, repl_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let sync = |shard: &str, replid: &str, lsn: &str| {
        common::encode_command(&["SYNC", shard, replid, lsn, "127.0.0.9", "1", "", ""])
    };
    assert!(answer(b"GET / HTTP/1.1\r\n\r\n").starts_with("-ERR bad replication handshake"));
    assert!(answer(&sync("7", "?", "0")).starts_with("-ERR no shard 7"));
    assert!(answer(&sync("0", &replid, "99999999")).contains("ahead of this master's log"));
    assert!(answer(&sync("x", &replid, "1")).starts_with("-ERR"));
    let mut huge = b"*1\r\n$99999999\r\n".to_vec();
    huge.resize(5000, b'a');
    assert!(answer(&huge).starts_with("-ERR"));
    // A peer that sends half a handshake and goes away harms nothing.
    drop(TcpStream::connect((MASTER_HOST, repl_port)).and_then(|mut s| s.write_all(b"*7\r\n$4\r\nSY")));
    assert_eq!(mc.cmd(&["GET", "k"]), Value::bulk("v"));
    let logs = m.logs();
    assert!(logs.contains("replication: refused"), "refusals are logged:\n{logs}");
    assert_eq!(info_u64(&mut mc, "replication", "connected_slaves"), 0);
}

/// Two keys on different shards of both an n-shard and an m-shard server.
fn keys_apart(n: usize, m: usize) -> (String, String) {
    let (a, b) = (shardis::shard::router::SlotMap::contiguous(n), shardis::shard::router::SlotMap::contiguous(m));
    let cands: Vec<String> = (0..1000).map(|i| format!("pair{i}")).collect();
    for x in &cands {
        for y in &cands {
            let (x_, y_) = (x.as_bytes(), y.as_bytes());
            if a.shard_of(x_) != a.shard_of(y_) && b.shard_of(x_) != b.shard_of(y_) {
                return (x.clone(), y.clone());
            }
        }
    }
    panic!("no two keys apart");
}

fn cross_shard_case(master_shards: usize, replica_shards: usize) {
    let m = master(master_shards);
    let r = replica_of(replica_shards, "127.0.0.3", (MASTER_HOST, m.port));
    let (k1, k2) = keys_apart(master_shards, replica_shards);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut c, stop, k1, k2) = (m.conn(), stop.clone(), k1.clone(), k2.clone());
        std::thread::spawn(move || {
            for i in 0..600 {
                let v = i.to_string();
                assert_eq!(c.cmd(&["MSET", &k1, &v, &k2, &v]), Value::ok());
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut rc = r.conn();
    let mut reads = 0;
    let mut seen_new = 0;
    while !stop.load(Ordering::SeqCst) && reads < 100_000 {
        let v = rc.cmd(&["MGET", &k1, &k2]);
        let items = v.as_items().expect("MGET array").to_vec();
        assert_eq!(items[0], items[1], "a reader on the replica saw half of an MSET: {v:?}");
        if items[0] != Value::NilBulk {
            seen_new += 1;
        }
        reads += 1;
    }
    writer.join().expect("writer");
    converge(&m, &r);
    assert!(seen_new > 0, "the replica applied transactions while read ({reads} reads)");
}

#[test]
fn a_reader_on_a_replica_never_sees_half_of_a_cross_shard_mset() {
    cross_shard_case(4, 4);
    cross_shard_case(2, 3);
}

/// The replica authenticates as its `masteruser` with `masterauth` (an ACL
/// user of the master other than `default`); a wrong password is refused
/// with a log line on both sides and replicates nothing.
#[test]
fn a_replica_authenticates_as_its_masteruser() {
    let m = Server::start(2, &["--bind", MASTER_HOST, "--requirepass", "adminpw"]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd(&["ACL", "SETUSER", "repl", "on", ">replpw", "+@all", "~*"]), Value::ok());
    mc.cmd(&["SET", "k", "v"]);
    let port = m.port.to_string();
    let bad = Server::start(
        1,
        &["--bind", "127.0.0.4", "--replicaof", MASTER_HOST, &port, "--masteruser", "repl", "--masterauth", "nope"],
    );
    let r = Server::start(
        1,
        &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &port, "--masteruser", "repl", "--masterauth", "replpw"],
    );
    converge(&m, &r);
    assert_eq!(r.conn().cmd(&["GET", "k"]), Value::bulk("v"));
    until("the refusal to be logged", 20, || bad.logs().contains("invalid"));
    assert_eq!(bad.conn().cmd(&["GET", "k"]), Value::NilBulk);
}

/// A replica of a replica: the middle one streams what it applied (its own
/// log) on, with its own shard count; all three converge.
#[test]
fn chained_replicas_forward_what_they_receive() {
    let m = master(2);
    let mut mc = m.conn();
    write_load(&mut mc, 21, 1000, 100);
    let r1 = replica_of(3, "127.0.0.3", (MASTER_HOST, m.port));
    let r2 = replica_of(1, "127.0.0.4", ("127.0.0.3", r1.port));
    write_load(&mut mc, 22, 1000, 100);
    converge(&m, &r1);
    // r2's offsets count r1's own log, not m's: compare the data.
    let want = snapshot(&mut mc);
    until("r2 to hold the master's keyspace", 30, || snapshot(&mut r2.conn()) == want);
}

/// A shard thread composes at most 256 KB per turn; it used to wait its
/// idle 100 ms between turns when a chunk went out whole, so a full sync
/// crawled at ~2.5 MB/s (30 MB here: ~12 s). Now well under the bound.
#[test]
fn a_full_sync_is_not_paced_by_the_idle_wait() {
    let m = master(1);
    let mut mc = m.conn();
    let value = "v".repeat(10_000);
    for b in 0..30 {
        let mut batch = Vec::new();
        for i in 0..100 {
            batch.extend(common::encode_command(&["SET".to_string(), format!("big{}", b * 100 + i), value.clone()]));
        }
        mc.send_raw(&batch).expect("send");
        for _ in 0..100 {
            assert!(!mc.read_value().expect("reply").is_error());
        }
    }
    let want = info_u64(&mut mc, "replication", "master_repl_offset");
    let t0 = Instant::now();
    let r = replica_of(1, "127.0.0.3", (MASTER_HOST, m.port));
    let mut rc = r.conn();
    until("the replica to apply 30 MB", 6, || info_u64(&mut rc, "replication", "slave_repl_offset") >= want);
    eprintln!("full sync of 30 MB took {:?}", t0.elapsed());
}

/// `replica-lazy-flush yes`: a replica's full resync drops its old keys on
/// the lazyfree thread, each counted in INFO `lazyfreed_objects` (as
/// Redis's asynchronous empty of its dbs counts them); with `no` they are
/// freed in place and not counted. Both end with the master's data only.
#[test]
fn replica_lazy_flush_frees_old_keys_off_the_loop() {
    const OLD: usize = 2000;
    for shards in [1, 4] {
        let m = master(shards);
        let mut mc = m.conn();
        for i in 0..50 {
            assert_eq!(mc.cmd(&["SET", &format!("m{i}"), "v"]), Value::ok());
        }
        for lazy in ["yes", "no"] {
            let r = Server::start(shards, &["--bind", "127.0.0.3", "--replica-lazy-flush", lazy]);
            let mut rc = r.conn();
            for chunk in 0..OLD / 500 {
                let mut args = vec!["MSET".to_string()];
                for i in chunk * 500..(chunk + 1) * 500 {
                    args.push(format!("old{i}"));
                    args.push("x".into());
                }
                assert_eq!(rc.cmd(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>()), Value::ok());
            }
            assert_eq!(info_u64(&mut rc, "memory", "lazyfreed_objects"), 0);
            let port = m.port.to_string();
            assert_eq!(rc.cmd(&["REPLICAOF", MASTER_HOST, &port]), Value::ok());
            converge(&m, &r);
            assert_eq!(rc.cmd(&["DBSIZE"]), Value::Int(50), "{shards} shard(s), lazy {lazy}");
            let freed = || info_u64(&mut r.conn(), "memory", "lazyfreed_objects");
            if lazy == "yes" {
                until("the old keys freed on the lazyfree thread", 10, || freed() >= OLD as u64);
                assert_eq!(freed(), OLD as u64, "{shards} shard(s)");
            } else {
                assert_eq!(freed(), 0, "{shards} shard(s)");
            }
        }
    }
}

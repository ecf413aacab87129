//! What a writer can ask of replication: WAIT and WAITAOF counts,
//! `min-replicas-to-write` refusing writes on a master cut off from its
//! replicas, and `repl-sync-ack`, under which an acknowledged write is on
//! a replica's disk before the client hears OK. Real processes on distinct
//! loopback addresses; every wait bounded.

mod common;

use common::repl::{info_u64, master, replica_of, until, Proxy, MASTER_HOST};
use common::{RespConn, Server, Value};
use std::time::{Duration, Instant};

fn linked(mc: &mut RespConn, n: u64) {
    until("replicas to link", 30, || info_u64(mc, "replication", "connected_slaves") == n);
}

fn int(v: Value) -> i64 {
    v.as_int().unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

#[test]
fn wait_and_waitaof_count_the_replicas_that_have_the_writes() {
    let shards = 2;
    let m = master(shards);
    let mut mc = m.conn();
    let proxy = Proxy::for_master(&m, "127.0.0.5");
    let r1 = replica_of(shards, "127.0.0.3", (MASTER_HOST, m.port));
    let r2 = replica_of(1, "127.0.0.4", ("127.0.0.5", m.port));
    linked(&mut mc, 2);
    for i in 0..200 {
        mc.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    let t = Instant::now();
    assert_eq!(int(mc.cmd(&["WAIT", "2", "10000"])), 2);
    // Acknowledged at once when asked, not at the next 1 s ack.
    assert!(t.elapsed() < Duration::from_secs(5), "WAIT took {:?}", t.elapsed());
    assert_eq!(int(mc.cmd(&["WAIT", "0", "0"])), 2, "numreplicas 0 answers at once");
    let v = mc.cmd(&["WAITAOF", "1", "2", "10000"]);
    let items: Vec<i64> = v.as_items().expect("array").iter().filter_map(|x| x.as_int()).collect();
    assert_eq!(items, vec![1, 2], "local AOF and both replicas' AOFs hold the writes");
    // The replicas really have them.
    for r in [&r1, &r2] {
        assert_eq!(r.conn().cmd(&["GET", "k199"]), Value::bulk("v199"));
    }
    // More than exist: the timeout answers with how many did.
    let t = Instant::now();
    assert_eq!(int(mc.cmd(&["WAIT", "3", "300"])), 2);
    assert!(t.elapsed() >= Duration::from_millis(250));
    // One replica cut off: a new write reaches only the other.
    proxy.cut();
    mc.cmd(&["SET", "after-cut", "1"]);
    assert_eq!(int(mc.cmd(&["WAIT", "2", "500"])), 1);
    proxy.restore();
    until("the cut replica to catch up", 30, || int(mc.cmd(&["WAIT", "2", "200"])) == 2);
    // Errors as Redis's.
    assert!(mc.cmd(&["WAIT", "1", "-1"]).is_error());
    assert!(mc.cmd(&["WAIT", "x", "1"]).is_error());
    let e = r1.conn().cmd(&["WAIT", "1", "10"]);
    assert!(format!("{e:?}").contains("cannot be used with replica instances"), "{e:?}");
    let plain = Server::start(1, &["--appendonly", "no"]);
    let e = plain.conn().cmd(&["WAITAOF", "1", "0", "10"]);
    assert!(format!("{e:?}").contains("appendonly is disabled"), "{e:?}");
}

#[test]
fn a_master_cut_off_from_its_replicas_refuses_writes() {
    let shards = 2;
    let m =
        Server::start(shards, &["--bind", MASTER_HOST, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]);
    let mut mc = m.conn();
    let e = mc.cmd(&["SET", "a", "1"]);
    assert_eq!(e, Value::err("NOREPLICAS Not enough good replicas to write."), "no replica yet");
    assert_eq!(mc.cmd(&["GET", "a"]), Value::NilBulk, "reads go on");
    let proxy = Proxy::for_master(&m, "127.0.0.5");
    let r = replica_of(shards, "127.0.0.3", ("127.0.0.5", m.port));
    until("writes accepted with a replica", 30, || mc.cmd(&["SET", "a", "1"]) == Value::ok());
    assert_eq!(info_u64(&mut mc, "replication", "min_slaves_good_slaves"), 1);
    proxy.cut();
    until("NOREPLICAS once the replica lags", 30, || mc.cmd(&["SET", "b", "1"]).is_error());
    assert_eq!(mc.cmd(&["GET", "a"]), Value::bulk("1"));
    // Inside MULTI the write is refused at queue time and EXEC aborts.
    assert_eq!(mc.cmd(&["MULTI"]), Value::ok());
    assert!(mc.cmd(&["SET", "c", "1"]).is_error());
    let e = mc.cmd(&["EXEC"]);
    assert!(format!("{e:?}").contains("EXECABORT"), "{e:?}");
    // A cross-shard write too.
    assert!(mc.cmd(&["MSET", "{x}1", "1", "{y}2", "2", "{z}3", "3"]).is_error());
    proxy.restore();
    until("writes accepted again", 30, || mc.cmd(&["SET", "b", "2"]) == Value::ok());
    until("the replica to have b", 30, || r.conn().cmd(&["GET", "b"]) == Value::bulk("2"));
    // CONFIG SET turns it off.
    proxy.cut();
    until("NOREPLICAS again", 30, || mc.cmd(&["SET", "b", "3"]).is_error());
    assert_eq!(mc.cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]), Value::ok());
    until("writes without replicas", 5, || mc.cmd(&["SET", "b", "3"]) == Value::ok());
}

/// With `repl-sync-ack yes` an acknowledged write is durable on a replica:
/// kill the master right after the acknowledgement (and the replica as
/// well, which restarts from its own AOF) and every acknowledged write is
/// there. Seeded rounds with different write counts and shard counts.
#[test]
fn repl_sync_ack_loses_no_acknowledged_write_when_the_master_dies() {
    let seed: u64 = std::env::var("SHARDIS_SYNC_ACK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..3 {
        let (ms, rs) = (1 + next(3) as usize, 1 + next(3) as usize);
        let flags = ["--bind", MASTER_HOST, "--min-replicas-to-write", "1", "--repl-sync-ack", "yes"];
        let mut m = Server::start(ms, &flags);
        let mut r = Server::start(
            rs,
            &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &m.port.to_string(), "--appendfsync", "no"],
        );
        let mut mc = m.conn();
        until("the replica to count", 30, || mc.cmd(&["SET", "warm", "1"]) == Value::ok());
        let n = 50 + next(200);
        let mut acked = Vec::new();
        // A pipeline: replies come back only once the replica holds them.
        for i in 0..n {
            mc.send_raw(&common::encode_command(&["SET", &format!("r{round}-{i}"), &format!("{seed}-{i}")]))
                .expect("send");
        }
        for i in 0..n {
            if mc.read_value().expect("reply") == Value::ok() {
                acked.push(i);
            }
        }
        m.kill9();
        r.kill9();
        r.restart().expect("replica restarts");
        let mut rc = r.conn();
        for &i in &acked {
            assert_eq!(
                rc.cmd(&["GET", &format!("r{round}-{i}")]),
                Value::bulk(format!("{seed}-{i}")),
                "round {round} (seed {seed}, {ms}->{rs} shards): acknowledged write {i} of {n} lost"
            );
        }
        assert_eq!(acked.len() as u64, n, "every write was acknowledged");
    }
}

/// Under `repl-sync-ack` a master whose replica stops acknowledging holds
/// the reply of a write it ran (and what could reveal it); the operator's
/// `CONFIG SET repl-sync-ack no` lets it go at once (it used to wait
/// forever: the config change never reached the other shards).
#[test]
fn turning_repl_sync_ack_off_releases_what_waited_for_a_gone_replica() {
    let flags = ["--bind", MASTER_HOST, "--min-replicas-to-write", "1", "--repl-sync-ack", "yes"];
    let m = Server::start(2, &flags);
    let r = Server::start(2, &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &m.port.to_string()]);
    let mut mc = m.conn();
    until("the replica to count", 30, || mc.cmd(&["SET", "warm", "1"]) == Value::ok());
    r.signal(libc::SIGSTOP);
    mc.send_raw(&common::encode_command(&["SET", "b", "2"])).expect("send");
    // A stopped replica acknowledges nothing: no reply can come.
    mc.set_read_timeout(Some(Duration::from_millis(500)));
    assert!(mc.read_value().is_err(), "a write was answered before a replica held it");
    mc.set_read_timeout(Some(Duration::from_secs(10)));
    let mut admin = m.conn();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "repl-sync-ack", "no"]), Value::ok());
    assert_eq!(mc.read_value().expect("the held reply"), Value::ok());
    assert_eq!(admin.cmd(&["GET", "b"]), Value::bulk("2"));
    r.signal(libc::SIGCONT);
    let mut rc = r.conn();
    until("the replica to catch up", 30, || rc.cmd(&["GET", "b"]) == Value::bulk("2"));
}

/// A master under `repl-sync-ack` demoted while it holds replies for writes
/// no replica acknowledged (a monitor re-points it after a partition): no
/// client hears those writes acknowledged, since the old master sets them
/// aside when it follows its new master. Clients on every shard, with keys
/// on every shard (replies forwarded between shards), are closed instead.
#[test]
fn a_demoted_sync_ack_master_acknowledges_none_of_its_unreplicated_writes() {
    let flags = ["--bind", MASTER_HOST, "--min-replicas-to-write", "1", "--repl-sync-ack", "yes"];
    let m = Server::start(4, &flags);
    let r = Server::start(2, &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &m.port.to_string()]);
    let other = Server::start(2, &["--bind", "127.0.0.4"]);
    let mut mc = m.conn();
    until("the replica to count", 30, || mc.cmd(&["SET", "warm", "1"]) == Value::ok());
    r.signal(libc::SIGSTOP);
    // Several clients (spread over the shards), each with writes to keys
    // of every shard, none of which the stopped replica can acknowledge.
    let mut clients: Vec<RespConn> = (0..8).map(|_| m.conn()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for k in 0..8 {
            c.send_raw(&common::encode_command(&["SET", &format!("lost-{i}-{k}"), "v"])).expect("send");
        }
        c.set_read_timeout(Some(Duration::from_millis(100)));
        assert!(c.read_value().is_err(), "a write was answered before a replica held it");
        c.set_read_timeout(Some(Duration::from_secs(10)));
    }
    // The demotion (its own reply may be lost with the connection).
    mc.send_raw(&common::encode_command(&["REPLICAOF", "127.0.0.4", &other.port.to_string()])).expect("send");
    let _ = mc.read_value();
    for (i, c) in clients.iter_mut().enumerate() {
        if let Ok(v) = c.read_value() {
            panic!("client {i} heard {v:?} for a write no replica acknowledged");
        }
    }
    // Connections opened meanwhile may still be closed by a shard that
    // hears of the demotion later: ask on fresh ones.
    let ask = |cmd: &[&str]| {
        let mut c = m.conn();
        c.send_raw(&common::encode_command(cmd)).ok()?;
        c.read_value().ok()
    };
    until("the old master to follow", 30, || {
        ask(&["INFO", "replication"])
            .and_then(|v| v.as_bytes().map(|b| String::from_utf8_lossy(b).contains("master_link_status:up")))
            .unwrap_or(false)
    });
    assert_eq!(ask(&["GET", "lost-0-0"]), Some(Value::NilBulk), "the unacknowledged tail was set aside");
    r.signal(libc::SIGCONT);
}

/// A replica running with `repl-sync-ack` and promoted answers at once
/// (PING, INFO: what a monitor needs before it re-points the replicas):
/// the data it had from its old master needs no replica's ack. A write
/// after the promotion waits for a replica again.
#[test]
fn a_promoted_replica_under_repl_sync_ack_answers_at_once() {
    let sync_ack = ["--min-replicas-to-write", "1", "--repl-sync-ack", "yes"];
    let m = Server::start(2, &[&["--bind", MASTER_HOST][..], &sync_ack[..]].concat());
    let mp = m.port.to_string();
    let b = Server::start(2, &[&["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &mp][..], &sync_ack[..]].concat());
    let mut mc = m.conn();
    until("the replica to count", 30, || mc.cmd(&["SET", "k", "1"]) == Value::ok());
    let mut bc = b.conn();
    until("the write to reach the replica", 30, || bc.cmd(&["GET", "k"]) == Value::bulk("1"));
    drop(m);
    bc.set_read_timeout(Some(Duration::from_secs(5)));
    assert_eq!(bc.try_cmd(&["REPLICAOF", "NO", "ONE", "EPOCH", "1"]).expect("REPLICAOF answered"), Value::ok());
    let mut fresh = b.conn();
    fresh.set_read_timeout(Some(Duration::from_secs(5)));
    assert_eq!(fresh.try_cmd(&["PING"]).expect("PING answered"), Value::Simple("PONG".into()));
    assert!(fresh.try_cmd(&["INFO", "replication"]).expect("INFO answered").as_bytes().is_some());
    assert_eq!(fresh.try_cmd(&["GET", "k"]).expect("GET answered"), Value::bulk("1"));
    // A new write is answered once a replica holds it.
    let bp = b.port.to_string();
    let _c = Server::start(1, &["--bind", "127.0.0.4", "--replicaof", "127.0.0.3", &bp]);
    let mut w = b.conn();
    w.set_read_timeout(Some(Duration::from_secs(30)));
    until("a write on the promoted replica to be acknowledged", 30, || {
        w.try_cmd(&["SET", "k2", "2"]).is_ok_and(|v| v == Value::ok())
    });
}

/// A master running with `repl-sync-ack`, killed and restarted while no
/// replica follows it (they follow a new master by then), answers at once
/// (PING, INFO, reads of what it had): what its AOF held at start-up needs
/// no replica's ack. Before, it held every reply until a replica
/// acknowledged its whole log, so monitors saw it down for good and never
/// re-pointed it (found by scripts/chaos).
#[test]
fn a_restarted_master_under_repl_sync_ack_answers_at_once() {
    let sync_ack = ["--min-replicas-to-write", "1", "--repl-sync-ack", "yes"];
    let mut m = Server::start(2, &[&["--bind", MASTER_HOST][..], &sync_ack[..]].concat());
    let mp = m.port.to_string();
    let b = Server::start(2, &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &mp]);
    let mut mc = m.conn();
    until("the replica to count", 30, || mc.cmd(&["SET", "k", "1"]) == Value::ok());
    drop(b);
    m.kill9();
    m.restart().expect("the master restarts");
    let mut c = m.conn();
    c.set_read_timeout(Some(Duration::from_secs(5)));
    assert_eq!(c.try_cmd(&["PING"]).expect("PING answered"), Value::Simple("PONG".into()));
    assert!(c.try_cmd(&["INFO", "replication"]).expect("INFO answered").as_bytes().is_some());
    assert_eq!(c.try_cmd(&["GET", "k"]).expect("GET answered"), Value::bulk("1"));
}

/// A master under `repl-sync-ack` whose replica is stopped, and
/// the connection whose write (SET k 2) it holds: the stopped replica stays
/// linked and counted (max-lag 100 s) but acknowledges nothing.
fn master_holding_an_unacknowledged_write(shards: usize) -> (Server, Server, RespConn) {
    let sync_ack = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "100", "--repl-sync-ack", "yes"];
    let m = Server::start(shards, &[&["--bind", MASTER_HOST][..], &sync_ack[..]].concat());
    let mp = m.port.to_string();
    let b = Server::start(1, &["--bind", "127.0.0.3", "--replicaof", MASTER_HOST, &mp]);
    let mut mc = m.conn();
    until("the replica to count", 30, || mc.cmd(&["SET", "k", "1"]) == Value::ok());
    unsafe { libc::kill(b.pid() as i32, libc::SIGSTOP) };
    let mut w = m.conn();
    w.send_raw(&common::encode_command(&["SET", "k", "2"])).expect("send SET");
    w.set_read_timeout(Some(Duration::from_millis(500)));
    assert!(w.read_value().is_err(), "the write was answered without a replica");
    (m, b, w)
}

/// A master under `repl-sync-ack` holding a write that no replica has
/// acknowledged (its replica is stopped) still answers what reveals no
/// data at once on other connections: PING, INFO, ROLE, PUBLISH (what a
/// monitor sends) and REPLCONF (a replica's handshake). Before, they were
/// held with everything else: a master cut off while a client wrote was
/// never seen again by the monitors, nor demoted, and no replica could
/// link to a promoted master that took writes before one linked (found by
/// scripts/chaos). A read that could show the unacknowledged write is
/// still held.
#[test]
fn a_master_holding_an_unacknowledged_write_still_answers_ping_and_info() {
    // On several shards INFO, PUBLISH and CONFIG go to every shard: those
    // messages overtake what a shard holds (`FanReq::reveals_nothing`).
    for shards in [1, 4] {
        answers_what_reveals_nothing(shards);
    }
}

fn answers_what_reveals_nothing(shards: usize) {
    let (m, b, _w) = master_holding_an_unacknowledged_write(shards);
    let mut mon = m.conn();
    mon.set_read_timeout(Some(Duration::from_secs(2)));
    let t = Instant::now();
    assert_eq!(mon.try_cmd(&["PING"]).expect("PING answered"), Value::Simple("PONG".into()));
    assert!(mon.try_cmd(&["INFO", "replication"]).expect("INFO answered").as_bytes().is_some());
    assert!(mon.try_cmd(&["ROLE"]).expect("ROLE answered").as_items().is_some());
    assert_eq!(mon.try_cmd(&["PUBLISH", "__sentinel__:hello", "x"]).expect("PUBLISH answered"), Value::Int(0));
    // A replica's handshake: a new replica can link.
    assert!(mon.try_cmd(&["REPLCONF", "SHARDIS-HELLO"]).expect("REPLCONF answered").as_items().is_some());
    assert_eq!(mon.try_cmd(&["CONFIG", "SET", "maxmemory-samples", "6"]).expect("CONFIG SET answered"), Value::ok());
    assert!(mon.try_cmd(&["CLIENT", "LIST"]).expect("CLIENT LIST answered").as_bytes().is_some());
    assert!(t.elapsed() < Duration::from_secs(1), "answers took {:?}", t.elapsed());
    let mut r = m.conn();
    r.set_read_timeout(Some(Duration::from_millis(500)));
    r.send_raw(&common::encode_command(&["GET", "k"])).expect("send GET");
    assert!(r.read_value().is_err(), "a read showed a write no replica holds");
    unsafe { libc::kill(b.pid() as i32, libc::SIGCONT) };
}

/// A master under `repl-sync-ack` holding a write no replica acknowledged
/// is demoted (REPLICAOF, as a monitor does when it returns after a
/// failover): the write's client gets its connection closed, not an OK
/// for a write the new master's history discards. Before, demotion lifted
/// the gate and sent the held +OK (found by scripts/chaos, seed 3).
#[test]
fn a_demoted_master_does_not_acknowledge_a_held_write() {
    let (m, b, mut w) = master_holding_an_unacknowledged_write(1);
    // Demoted toward another server (the new master of a failover).
    let other = Server::start(1, &["--bind", "127.0.0.4"]);
    let mut admin = m.conn();
    admin.set_read_timeout(Some(Duration::from_secs(5)));
    let op = other.port.to_string();
    assert_eq!(admin.try_cmd(&["REPLICAOF", "127.0.0.4", &op]).expect("REPLICAOF answered"), Value::ok());
    w.set_read_timeout(Some(Duration::from_secs(5)));
    match w.read_value() {
        Ok(v) => panic!("the held write was answered after the demotion: {v:?}"),
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the held write's connection stayed open: {e}"
        ),
    }
    unsafe { libc::kill(b.pid() as i32, libc::SIGCONT) };
}

/// A shard locked by a cross-shard transaction, whose next message for
/// that transaction waits behind a write no replica has acknowledged yet,
/// must hear the acknowledgement when it comes. It used to be deferred
/// with the rest of the shard's work until the unlock, which that very
/// message had to bring: the shard, and every client reading through it,
/// hung for good (found by scripts/chaos on 4 shards: the monitors then
/// failed over from a master that answered PING but no INFO).
#[test]
fn a_shard_locked_by_a_transaction_hears_its_replicas_acknowledge() {
    let shards = 4;
    let (m, b, mut w) = master_holding_an_unacknowledged_write(shards);
    // k's shard holds SET k 2: the transaction locks it and, from there,
    // must send on to the other key's shard.
    let ks = common::shards::shard_of("k", shards);
    let x = common::shards::key_on_shard("x", ks, shards);
    let y = common::shards::key_on_shard("y", ks + 1, shards);
    let mut t = m.conn();
    t.send_raw(&common::encode_command(&["MSET", &x, "1", &y, "2"])).expect("send MSET");
    std::thread::sleep(Duration::from_millis(300));
    b.signal(libc::SIGCONT);
    w.set_read_timeout(Some(Duration::from_secs(10)));
    t.set_read_timeout(Some(Duration::from_secs(10)));
    assert_eq!(w.read_value().expect("the held SET's reply once the replica acknowledged"), Value::ok());
    assert_eq!(t.read_value().expect("the transaction's reply once the replica acknowledged"), Value::ok());
    let mut c = m.conn();
    c.set_read_timeout(Some(Duration::from_secs(10)));
    assert_eq!(
        c.try_cmd(&["MGET", "k", &x, &y]).expect("MGET across the shards"),
        Value::Array(vec![Value::bulk("2"), Value::bulk("1"), Value::bulk("2")])
    );
}

//! Promotion and what follows it: the other replica and the old master
//! continue partially from the promoted replica (PSYNC2-style: it holds
//! the old master's history as its replid2), an old master's records the
//! new master never had are set aside in a file, and epoch fencing keeps a
//! replica from following a master of an older failover epoch. Real
//! processes on distinct loopback addresses; every wait bounded.

mod common;

use common::repl::{converge, info_field, info_u64, master, replica_of, until, write_load, Proxy, MASTER_HOST};
use common::{Server, Value};

fn repoint(s: &Server, to: &Server, host: &str) {
    let v = s.conn().cmd(&["REPLICAOF", host, &to.port.to_string()]);
    assert!(!v.is_error(), "{v:?}");
}

#[test]
fn after_a_promotion_the_other_replica_and_the_old_master_continue_partially() {
    let shards = 2;
    let a = master(shards);
    let mut ac = a.conn();
    let old_replid = info_field(&mut ac, "replication", "master_replid").expect("replid");
    let mut b = replica_of(1, "127.0.0.3", (MASTER_HOST, a.port));
    let c = replica_of(shards, "127.0.0.4", (MASTER_HOST, a.port));
    write_load(&mut ac, 1, 2000, 200);
    converge(&a, &b);
    converge(&a, &c);
    // A planned failover: writes stopped, then c promoted.
    let mut cc = c.conn();
    assert_eq!(cc.cmd(&["REPLICAOF", "NO", "ONE", "EPOCH", "3"]), Value::ok());
    assert_eq!(info_field(&mut cc, "replication", "master_replid2").as_deref(), Some(old_replid.as_str()));
    assert_eq!(info_u64(&mut cc, "replication", "failover_epoch"), 3);
    assert_ne!(info_field(&mut cc, "replication", "master_replid").as_deref(), Some(old_replid.as_str()));
    repoint(&b, &c, "127.0.0.4");
    repoint(&a, &c, "127.0.0.4");
    write_load(&mut cc, 2, 1000, 200);
    converge(&c, &b);
    converge(&c, &a);
    assert_eq!(info_u64(&mut cc, "stats", "sync_full"), 0, "no full sync:\n{}", c.logs());
    assert!(info_u64(&mut cc, "stats", "sync_partial_ok") >= 2 * shards as u64, "both continued on every shard");
    // Both follow the new history from now on: a restart of b resumes it.
    b.kill9();
    let port = c.port.to_string();
    b.restart_with(|cmd| {
        if let Some(i) = cmd.iter().position(|a| a == "--replicaof") {
            cmd[i + 1] = "127.0.0.4".into();
            cmd[i + 2] = port;
        }
    })
    .expect("b restarts");
    write_load(&mut cc, 3, 300, 50);
    converge(&c, &b);
    assert_eq!(info_u64(&mut cc, "stats", "sync_full"), 0, "still no full sync:\n{}", b.logs());
    // The old master took the epoch it now follows.
    assert_eq!(info_u64(&mut a.conn(), "replication", "failover_epoch"), 3);
}

#[test]
fn an_old_masters_unreplicated_writes_are_set_aside() {
    let shards = 2;
    let a = master(shards);
    let mut ac = a.conn();
    let proxy = Proxy::for_master(&a, "127.0.0.5");
    let c = replica_of(shards, "127.0.0.4", ("127.0.0.5", a.port));
    write_load(&mut ac, 4, 500, 50);
    converge(&a, &c);
    // c loses a; a takes writes c never sees; c is promoted.
    proxy.cut();
    for i in 0..50 {
        assert_eq!(ac.cmd(&["SET", &format!("lost{i}"), "x"]), Value::ok());
    }
    assert_eq!(c.conn().cmd(&["REPLICAOF", "NO", "ONE"]), Value::ok());
    repoint(&a, &c, "127.0.0.4");
    let mut cc = c.conn();
    write_load(&mut cc, 5, 300, 50);
    converge(&c, &a);
    assert_eq!(ac.cmd(&["EXISTS", "lost0", "lost1", "lost2"]), Value::Int(0), "a now holds c's history");
    let logs = a.logs();
    assert!(logs.contains("set aside in"), "the tail's file is named in the log:\n{logs}");
    let aside = std::fs::read_dir(a.dir.join("diverged")).expect("diverged dir").count();
    assert!(aside >= 1, "a file per diverged shard");
}

#[test]
fn a_replica_refuses_a_master_of_an_older_epoch() {
    let a = master(1);
    let c = replica_of(1, "127.0.0.4", (MASTER_HOST, a.port));
    a.conn().cmd(&["SET", "k", "1"]);
    converge(&a, &c);
    assert_eq!(c.conn().cmd(&["REPLICAOF", "NO", "ONE", "EPOCH", "7"]), Value::ok());
    let b = replica_of(1, "127.0.0.3", ("127.0.0.4", c.port));
    converge(&c, &b);
    assert_eq!(info_u64(&mut b.conn(), "replication", "failover_epoch"), 7);
    // a (epoch 0) is the old master: b must not follow it.
    repoint(&b, &a, MASTER_HOST);
    let mut bc = b.conn();
    until("the refusal to be logged", 20, || b.logs().contains("refusing its stream"));
    assert_eq!(info_field(&mut bc, "replication", "master_link_status").as_deref(), Some("down"));
    // A bad epoch argument is an error.
    assert!(bc.cmd(&["REPLICAOF", "NO", "ONE", "EPOCH", "x"]).is_error());
    assert!(bc.cmd(&["REPLICAOF", "NO", "ONE", "NOW"]).is_error());
}

//! The `redis` crate (a client library Redis users already have) against
//! shardis: plain commands, pipelines, an atomic pipeline (MULTI/EXEC)
//! across shards, WATCH-based optimistic locking, and pub/sub.

mod common;

use common::Server;
use redis::Commands;

fn client(s: &Server) -> redis::Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{}/", s.port)).expect("client");
    let con = c.get_connection().expect("connect");
    con.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    con
}

#[test]
fn redis_crate_commands_pipelines_and_transactions() {
    for shards in [1, 4] {
        let s = Server::start(shards, &[]);
        let mut con = client(&s);
        let _: () = con.set("user:1", "ada").expect("set");
        let name: String = con.get("user:1").expect("get");
        assert_eq!(name, "ada");
        let n: i64 = con.incr("hits", 5).expect("incr");
        assert_eq!(n, 5);
        let _: () = con.set_ex("tmp", "v", 100).expect("setex");
        let ttl: i64 = con.ttl("tmp").expect("ttl");
        assert!((99..=100).contains(&ttl), "ttl {ttl}");

        // Plain pipeline over keys of every shard.
        let mut p = redis::pipe();
        for i in 0..50 {
            p.set(format!("k{i}"), i).ignore();
        }
        for i in 0..50 {
            p.get(format!("k{i}"));
        }
        let got: Vec<i64> = p.query(&mut con).expect("pipeline");
        assert_eq!(got, (0..50).collect::<Vec<i64>>());

        // Atomic pipeline = MULTI/EXEC spanning shards.
        let (a, b): (i64, i64) =
            redis::pipe().atomic().incr("acct:a", 10).decr("acct:b", 10).query(&mut con).expect("transaction");
        assert_eq!((a, b), (10, -10));

        // WATCH / MULTI / EXEC retry loop (redis::transaction).
        let key = "counter";
        let _: () = con.set(key, 41).expect("set");
        let (v,): (i64,) = redis::transaction(&mut con, &[key], |c, pipe| {
            let cur: i64 = c.get(key)?;
            pipe.set(key, cur + 1).ignore().get(key).query(c)
        })
        .expect("watch transaction");
        assert_eq!(v, 42, "{shards} shard(s)");
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
        assert_eq!(size, 56);
    }
}

#[test]
fn redis_crate_pubsub() {
    let s = Server::start(4, &[]);
    let mut sub_con = client(&s);
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("events").expect("subscribe");
    pubsub.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let mut publisher = client(&s);
    let receivers: i64 = publisher.publish("events", "hello").expect("publish");
    assert_eq!(receivers, 1);
    let msg = pubsub.get_message().expect("message");
    assert_eq!(msg.get_channel_name(), "events");
    let payload: String = msg.get_payload().expect("payload");
    assert_eq!(payload, "hello");
}

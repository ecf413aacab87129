//! shardis-monitor against real processes: three monitors watching a real
//! redis-server master and two replicas, each "host" on its own loopback
//! address (127.0.0.x). The master is SIGKILLed and a replica must be
//! promoted; a monitor restarted from its state file keeps its epoch and
//! its votes; hostile input to the monitor port harms nothing.
//! (Failover of shardis-server: tests/monitor_shardis.rs.)

mod common;

use common::monitor::*;
use common::{RespConn, Value};
use std::time::{Duration, Instant};

fn redis(host: &str, replica_of: Option<&Proc>) -> Proc {
    redis_with(host, replica_of, &[])
}

/// `redis`, with `extra` appended to its command line.
fn redis_with(host: &str, replica_of: Option<&Proc>, extra: &[&str]) -> Proc {
    let port = free_port_on(host);
    let dir = new_dir("redis");
    let mut cmd: Vec<String> =
        ["redis-server", "--bind", host, "--port", &port.to_string(), "--save", "", "--appendonly", "no"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
    cmd.extend(["--dir".into(), dir.to_string_lossy().into_owned()]);
    if let Some(m) = replica_of {
        // The master would list it under the connection's source address
        // (127.0.0.1): announce its own.
        cmd.extend([
            "--replicaof".into(),
            m.host.clone(),
            m.port.to_string(),
            "--replica-announce-ip".into(),
            host.into(),
        ]);
    }
    Proc::spawn(host, port, dir, cmd)
}

#[test]
fn sigkill_of_the_master_promotes_a_replica_and_the_old_master_rejoins() {
    let mut master = redis("127.0.0.2", None);
    let replicas = [redis("127.0.0.3", Some(&master)), redis("127.0.0.4", Some(&master))];
    let mons: Vec<Proc> =
        ["127.0.0.5", "127.0.0.6", "127.0.0.7"].iter().map(|h| monitor(h, (&master.host, master.port))).collect();
    wait_discovery(&mons);
    let mut mc = master.conn();
    assert_eq!(mc.cmd(&["SET", "k", "before"]), Value::ok());
    assert_eq!(mc.cmd(&["WAIT", "2", "5000"]), Value::Int(2));

    let old = (master.host.clone(), master.port);
    master.kill9();
    let killed = Instant::now();
    // Promotion as a client sees it: the monitor names a new master and a
    // write there succeeds.
    let (new_host, new_port) =
        wait_for("a new master", Duration::from_secs(15), || master_addr(&mons[0]).filter(|a| *a != old));
    let promoted = replicas
        .iter()
        .find(|r| (r.host.clone(), r.port) == (new_host.clone(), new_port))
        .expect("a replica was promoted");
    wait_for("a write on the new master", Duration::from_secs(10), || {
        let mut c = promoted.try_conn().ok()?;
        (c.try_cmd(&["SET", "k", "after"]).ok()? == Value::ok()).then_some(())
    });
    let took = killed.elapsed();
    eprintln!(
        "SIGKILL of the master to the first write on the new master: {} ms (down-after {DOWN_AFTER} ms)",
        took.as_millis()
    );
    assert_eq!(promoted.conn().cmd(&["GET", "k"]), Value::bulk("after"), "the promoted replica had the data");

    for m in &mons {
        wait_for("every monitor names the new master", Duration::from_secs(10), || {
            (master_addr(m)? == (new_host.clone(), new_port)).then_some(())
        });
    }
    let other = replicas.iter().find(|r| r.port != new_port || r.host != new_host).expect("the other replica");
    wait_for("the other replica re-pointed", Duration::from_secs(10), || {
        let r = role(other)?;
        (r.first()?.as_bytes()? == b"slave"
            && r.get(1)?.as_bytes()? == new_host.as_bytes()
            && r.get(2)?.as_int()? == new_port as i64)
            .then_some(())
    });

    // The old master comes back as a master with stale data; it must be
    // made a replica of the new one, and not stay a second master.
    master.start();
    wait_for("the old master rejoined as a replica", Duration::from_secs(15), || {
        let r = role(&master)?;
        (r.first()?.as_bytes()? == b"slave" && r.get(2)?.as_int()? == new_port as i64).then_some(())
    });
    wait_for("the old master caught up", Duration::from_secs(10), || {
        (master.try_conn().ok()?.try_cmd(&["GET", "k"]).ok()? == Value::bulk("after")).then_some(())
    });
    let info = mons[1].conn().cmd(&["INFO"]);
    let text = String::from_utf8_lossy(info.as_bytes().expect("INFO is a bulk")).into_owned();
    assert!(text.contains(&format!("address={new_host}:{new_port}")), "{text}");
}

/// One monitor on the port, with a master to watch (a real redis-server).
#[test]
fn a_restarted_monitor_keeps_its_epoch_and_votes_and_hostile_input_is_refused() {
    let master = redis("127.0.0.8", None);
    let mut mon = monitor("127.0.0.9", (&master.host, master.port));
    let mut c = mon.conn();
    let id = c.cmd(&["SENTINEL", "myid"]);
    let vote = |c: &mut RespConn, epoch: &str, run_id: &str| {
        c.cmd(&["SENTINEL", "is-master-down-by-addr", &master.host, &master.port.to_string(), epoch, run_id])
    };
    // A vote in epoch 5 for "cand-a".
    let v = vote(&mut c, "5", "cand-a");
    assert_eq!(v, Value::Array(vec![Value::Int(0), Value::bulk("cand-a"), Value::Int(5)]));
    // Another candidate in the same epoch, or an older one, gets the same answer.
    assert_eq!(vote(&mut c, "5", "cand-b"), v);
    assert_eq!(vote(&mut c, "3", "cand-b"), v);

    mon.kill9();
    mon.start();
    let mut c = mon.conn();
    assert_eq!(c.cmd(&["SENTINEL", "myid"]), id, "the run id survives a restart");
    assert_eq!(vote(&mut c, "5", "cand-b"), v, "no second vote in epoch 5 after a restart");
    let info = c.cmd(&["INFO"]);
    let text = String::from_utf8_lossy(info.as_bytes().expect("bulk")).into_owned();
    assert!(text.contains("sentinel_current_epoch:5"), "{text}");
    // A later epoch gets a new vote.
    assert_eq!(vote(&mut c, "6", "cand-b"), Value::Array(vec![Value::Int(0), Value::bulk("cand-b"), Value::Int(6)]));

    // Forged and malformed votes.
    assert!(vote(&mut c, "18446744073709551615", "evil").is_error());
    assert!(vote(&mut c, "-1", "evil").is_error());
    assert!(vote(&mut c, "x", "evil").is_error());
    assert!(c.cmd(&["SENTINEL", "is-master-down-by-addr", "h"]).is_error());
    assert_eq!(vote(&mut c, "2", "evil"), Value::Array(vec![Value::Int(0), Value::bulk("cand-b"), Value::Int(6)]));
    assert!(c.cmd(&["SENTINEL", "nope"]).is_error());
    assert!(c.cmd(&["SENTINEL", "set", "mymaster", "quorum", "0"]).is_error());
    assert!(c.cmd(&["SENTINEL", "monitor", "bad,name", "h", "1", "1"]).is_error());
    assert!(c.cmd(&["FLUSHALL"]).is_error());

    // Garbage, a huge bulk header, deep nesting, a request cut short: each
    // answered with an error or a close, and the monitor carries on.
    let hostile: &[&[u8]] = &[
        b"\x00\x01\x02garbage\r\n",
        b"*2\r\n$999999999999\r\n",
        b"*99999999999\r\n",
        b"*1\r\n*1\r\n*1\r\n$4\r\nPING\r\n",
        b"*3\r\n$8\r\nSENTINEL\r\n$4\r\nmyid",
        &[b'*'; 70_000],
    ];
    for h in hostile {
        let mut raw = mon.conn();
        let _ = raw.send_raw(h);
        raw.shutdown_write();
        let _ = raw.read_until_idle(Duration::from_millis(300));
    }
    let mut c = mon.conn();
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(master_addr(&mon), Some((master.host.clone(), master.port)));
    assert_eq!(vote(&mut c, "6", "evil"), Value::Array(vec![Value::Int(0), Value::bulk("cand-b"), Value::Int(6)]));
    // The API answers in Sentinel's shapes.
    assert_eq!(
        c.cmd(&["ROLE"]),
        Value::Array(vec![Value::bulk("sentinel"), Value::Array(vec![Value::bulk("mymaster")])])
    );
    assert!(c.cmd(&["SENTINEL", "ckquorum", "mymaster"]).is_error(), "one monitor cannot reach quorum 2");
    assert_eq!(c.cmd(&["SENTINEL", "set", "mymaster", "quorum", "1"]), Value::ok());
    assert!(matches!(c.cmd(&["SENTINEL", "ckquorum", "mymaster"]), Value::Simple(s) if s.starts_with("OK 1 usable")));
    assert_eq!(c.cmd(&["SENTINEL", "replicas", "mymaster"]), Value::Array(vec![]));
    assert_eq!(c.cmd(&["SENTINEL", "sentinels", "mymaster"]), Value::Array(vec![]));
    assert!(matches!(c.cmd(&["SENTINEL", "failover", "mymaster"]), Value::Error(e) if e.starts_with("NOGOODSLAVE")));
    assert_eq!(c.cmd(&["SENTINEL", "reset", "*"]), Value::Int(1));

    // Events reach subscribers: a new master to watch publishes +monitor.
    let mut sub = mon.conn();
    let r = sub.cmd(&["PSUBSCRIBE", "*"]);
    assert_eq!(r, Value::Array(vec![Value::bulk("psubscribe"), Value::bulk("*"), Value::Int(1)]));
    assert_eq!(c.cmd(&["SENTINEL", "monitor", "other", "127.0.0.8", "1", "1"]), Value::ok());
    let ev = sub.read_value().expect("an event");
    let items = ev.as_items().expect("pmessage").to_vec();
    assert_eq!(items[2], Value::bulk("+monitor"));
    assert_eq!(items[3], Value::bulk("master other 127.0.0.8 1 quorum 1"));
    assert_eq!(c.cmd(&["SENTINEL", "remove", "other"]), Value::ok());
}

/// The monitor authenticates as an ACL user of the watched server
/// (`auth-user` / `auth-pass`, Sentinel's): with the right password it
/// reads INFO (the master's run id) and sees it up; with a wrong one it
/// cannot, and the master is subjectively down to it.
#[test]
fn a_monitor_authenticates_as_an_acl_user() {
    let master = redis_with(
        "127.0.0.2",
        None,
        &["--requirepass", "adminpw", "--user", "mon", "on", ">monpw", "+@all", "~*", "&*"],
    );
    let (host, port) = (master.host.clone(), master.port);
    let start = |pass: &str| {
        let mport = free_port_on("127.0.0.6");
        let mdir = new_dir("monitor-acl");
        let file = mdir.join("monitor.toml");
        let text = format!(
            "down-after-milliseconds = {DOWN_AFTER}\n[[master]]\nname = \"mymaster\"\nhost = \"{host}\"\nport = {port}\nquorum = 1\nauth-user = \"mon\"\nauth-pass = \"{pass}\"\n"
        );
        std::fs::write(&file, text).expect("monitor config");
        let cmd = vec![
            env!("CARGO_BIN_EXE_shardis-monitor").to_string(),
            "--config".into(),
            file.to_string_lossy().into_owned(),
            "--bind".into(),
            "127.0.0.6".into(),
            "--port".into(),
            mport.to_string(),
            "--dir".into(),
            mdir.to_string_lossy().into_owned(),
        ];
        Proc::spawn("127.0.0.6", mport, mdir, cmd)
    };
    let master_fields = |m: &Proc| m.try_conn().ok()?.try_cmd(&["SENTINEL", "master", "mymaster"]).ok();
    let good = start("monpw");
    wait_for("the master's run id through AUTH mon", Duration::from_secs(20), || {
        let v = master_fields(&good)?;
        (field(&v, "runid").is_some_and(|r| r.len() == 40) && field(&v, "flags")? == "master").then_some(())
    });
    let bad = start("wrong");
    wait_for("s_down with a wrong password", Duration::from_secs(20), || {
        let v = master_fields(&bad)?;
        field(&v, "flags")?.contains("s_down").then_some(())
    });
    drop(master);
}

/// A reply with what differs between two processes by nature (HELLO's
/// client id) blanked.
fn normalized(v: Value) -> Value {
    match v {
        Value::Map(kv) => Value::Map(
            kv.into_iter()
                .map(|(k, v)| if k.as_bytes() == Some(b"id") { (k, Value::Int(0)) } else { (k, normalized(v)) })
                .collect(),
        ),
        Value::Array(a) if a.len() == 12 && a[0].as_bytes() == Some(b"server") => {
            Value::Array(a.into_iter().enumerate().map(|(i, v)| if i == 7 { Value::Int(0) } else { v }).collect())
        }
        other => other,
    }
}

/// The shape of a reply: its type, and the keys of a map; for replies
/// whose values differ by nature (run ids, addresses, timings).
fn shape(v: &Value) -> String {
    match v {
        Value::Map(kv) => {
            let keys: Vec<String> = kv.iter().filter_map(|(k, _)| k.as_bytes()).map(escape).collect();
            format!(
                "map[{}]",
                keys.iter()
                    .filter(|k| ["name", "ip", "port", "flags"].contains(&k.as_str()))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        // A RESP2 field list: Sentinel has more fields than the monitor.
        Value::Array(a) if !a.is_empty() && a.iter().all(|v| matches!(v, Value::Bulk(_))) => "fields".into(),
        Value::Array(a) => format!("array[{}]", a.iter().map(shape).collect::<Vec<_>>().join(",")),
        Value::Bulk(_) => "bulk".into(),
        other => format!("{other:?}"),
    }
}

fn escape(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// HELLO (RESP2 and RESP3), CLIENT SETNAME/GETNAME, PING and pub/sub in
/// both protocols on the monitor port, side by side with a real
/// redis-sentinel 7.0 watching the same (unreachable) master: replies are
/// equal but for client ids, and for replies that carry addresses or
/// timings their types (RESP3 maps) are.
#[test]
fn hello_and_resp3_replies_match_redis_sentinel() {
    let host = "127.0.0.20";
    let dead = free_port_on(host);
    let mon = {
        let port = free_port_on(host);
        let dir = new_dir("monitor-hello");
        let cmd = [
            monitor_bin().as_str(),
            "--bind",
            host,
            "--port",
            &port.to_string(),
            "--dir",
            &dir.to_string_lossy(),
            "--monitor",
            &format!("mymaster {host} {dead} 2"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(host, port, dir, cmd)
    };
    let sentinel = {
        let port = free_port_on(host);
        let dir = new_dir("redis-sentinel-hello");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!("bind {host}\nport {port}\ndir {}\nsentinel monitor mymaster {host} {dead} 2\n", dir.display()),
        )
        .expect("sentinel.conf");
        let cmd = vec!["redis-sentinel".to_string(), conf.to_string_lossy().into_owned()];
        Proc::spawn(host, port, dir, cmd)
    };
    // Compared exactly (ids blanked).
    let exact: &[&[&str]] = &[
        &["HELLO"],
        &["HELLO", "4"],
        &["HELLO", "0"],
        &["HELLO", "x"],
        &["HELLO", "3", "AUTH", "bob", "pw"],
        &["HELLO", "3", "SETNAME", "a", "b"],
        &["HELLO", "3", "AUTH"],
        &["HELLO", "3", "foo"],
        &["PING"],
        &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"],
        &["CLIENT", "GETNAME"],
        &["PING"],
        &["PING", "hi"],
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        &["SENTINEL", "get-master-addr-by-name", "nope"],
        &["SENTINEL", "replicas", "mymaster"],
        &["SENTINEL", "master", "nope"],
        &["ROLE"],
        &["SUBSCRIBE", "+sdown", "+odown"],
        &["PING"],
        // RESP3 lets a subscribed connection run any command.
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        &["UNSUBSCRIBE"],
        &["HELLO", "2"],
        &["CLIENT", "SETNAME", "bad name"],
        &["CLIENT", "SETNAME", "app2"],
        &["CLIENT", "GETNAME"],
        &["SENTINEL", "get-master-addr-by-name", "nope"],
        &["PSUBSCRIBE", "+*"],
        &["PING"],
        &["PING", "hi"],
        &["HELLO", "3"],
        &["PUNSUBSCRIBE"],
    ];
    let (mut a, mut b) = (mon.conn(), sentinel.conn());
    for cmd in exact {
        // UNSUBSCRIBE without arguments answers one frame per channel.
        let frames = match cmd[0] {
            "SUBSCRIBE" => cmd.len() - 1,
            "UNSUBSCRIBE" => 2,
            _ => 1,
        };
        let req = shardis::protocol::client::encode_command(cmd);
        a.send_raw(&req).expect("send to shardis-monitor");
        b.send_raw(&req).expect("send to redis-sentinel");
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..frames {
            xs.push(normalized(a.read_value().expect("shardis-monitor reply")));
            ys.push(normalized(b.read_value().expect("redis-sentinel reply")));
        }
        if cmd[0] == "UNSUBSCRIBE" {
            // Sentinel walks its channels in its dict's order (a per-process
            // hash seed): the channels compare as a set, the counts in order.
            let split = |vs: &[Value]| {
                let mut chans = Vec::new();
                let mut rest = Vec::new();
                for v in vs {
                    let items = v.as_items().expect("an unsubscribe frame").to_vec();
                    chans.push(format!("{:?}", items.get(1)));
                    rest.push(format!("{:?} {:?}", items.first(), items.get(2)));
                }
                chans.sort();
                (chans, rest)
            };
            assert_eq!(split(&xs), split(&ys), "{cmd:?}: shardis-monitor vs redis-sentinel");
        } else {
            assert_eq!(xs, ys, "{cmd:?}: shardis-monitor vs redis-sentinel");
        }
    }
    // Replies with addresses, run ids and timings: the same types (maps in
    // RESP3) and fields.
    for proto in ["3", "2"] {
        let (mut a, mut b) = (mon.conn(), sentinel.conn());
        a.cmd(&["HELLO", proto]);
        b.cmd(&["HELLO", proto]);
        for cmd in [
            &["SENTINEL", "master", "mymaster"][..],
            &["SENTINEL", "masters"],
            &["SENTINEL", "config", "get", "announce-port"],
        ] {
            let (x, y) = (a.cmd(cmd), b.cmd(cmd));
            assert_eq!(shape(&x), shape(&y), "RESP{proto} {cmd:?}: {x:?} vs {y:?}");
        }
    }
}

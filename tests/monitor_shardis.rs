//! shardis-monitor failing over shardis-server: three monitors, a master
//! and two replicas, each on its own loopback address. The master is
//! SIGKILLed under writes from two clients that find it through the
//! monitors (one in Rust through `SENTINEL get-master-addr-by-name`, one
//! redis-py `Sentinel` client, tests/sentinel_client.py, and the `redis`
//! crate over RESP3 before and after); a replica is
//! promoted with the failover epoch, the other follows it by partial
//! resync, and the old master restarted from its AOF rejoins as a replica.

mod common;

use common::monitor::*;
use common::repl::{converge, info_field, info_u64, replica_of};
use common::{RespConn, Server, Value};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHARDS: usize = 1;

fn shardis(host: &str) -> Server {
    Server::start(SHARDS, &["--bind", host])
}

/// A client that writes to whichever master the monitors name, as a
/// Sentinel-aware client does.
struct Follower<'a> {
    mons: &'a [Proc],
    conn: Option<((String, u16), RespConn)>,
}

impl<'a> Follower<'a> {
    fn new(mons: &'a [Proc]) -> Follower<'a> {
        Follower { mons, conn: None }
    }

    /// One SET; the address that acknowledged it, None if it failed.
    fn set(&mut self, key: &str, val: &str) -> Option<(String, u16)> {
        let addr = self.mons.iter().find_map(master_addr)?;
        if self.conn.as_ref().map(|c| &c.0) != Some(&addr) {
            let sa: SocketAddr = format!("{}:{}", addr.0, addr.1).parse().ok()?;
            // Short timeouts: a dead master must not hold the client long.
            let c = RespConn::connect_addr(sa, Duration::from_millis(300), Duration::from_millis(500)).ok()?;
            self.conn = Some((addr.clone(), c));
        }
        let c = &mut self.conn.as_mut()?.1;
        match c.try_cmd(&["SET", key, val]) {
            Ok(v) if v == Value::ok() => Some(addr),
            _ => {
                self.conn = None;
                None
            }
        }
    }
}

/// The `redis` crate's way to the master: ask a monitor `SENTINEL
/// get-master-addr-by-name`, over RESP3 (the crate opens with `HELLO 3`).
fn redis_crate_master(mons: &[Proc]) -> Option<(String, u16)> {
    mons.iter().find_map(|m| {
        let c = redis::Client::open(format!("redis://{}:{}/?protocol=resp3", m.host, m.port)).ok()?;
        let mut con = c.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
        con.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("mymaster").query(&mut con).ok()
    })
}

/// A SET through the `redis` crate on `addr`; whether it was acknowledged.
fn redis_crate_set(addr: &(String, u16), key: &str, val: &str) -> bool {
    let Ok(c) = redis::Client::open(format!("redis://{}:{}/", addr.0, addr.1)) else { return false };
    let Ok(mut con) = c.get_connection_with_timeout(Duration::from_millis(500)) else { return false };
    if con.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
        return false;
    }
    redis::cmd("SET").arg(key).arg(val).query::<()>(&mut con).is_ok()
}

/// redis-py's Sentinel client (tests/sentinel_client.py) writing through
/// the monitors until it made `after` writes on a second master.
fn start_python_client(mons: &[Proc], after: usize, secs: u64) -> std::process::Child {
    let have = Command::new("python3").args(["-c", "import redis.sentinel"]).status();
    assert!(
        have.is_ok_and(|s| s.success()),
        "python3 with the redis package is needed (scripts/test installs it: pip install redis)"
    );
    let list: Vec<String> = mons.iter().map(|m| format!("{}:{}", m.host, m.port)).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sentinel_client.py");
    Command::new("python3")
        .args([script, &list.join(","), "mymaster", &after.to_string(), &secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3")
}

/// Wait (bounded) for the client's exit; its status and output. Killed by
/// pid if it overstays.
fn finish(mut child: std::process::Child, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    let ok = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                let _ = child.wait();
                break false;
            }
        }
    };
    let out = child
        .wait_with_output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    (ok, out.unwrap_or_default())
}

fn role_of(s: &Server) -> Option<(String, String, i64)> {
    let r = s.conn().try_cmd(&["ROLE"]).ok()?;
    let items = r.as_items()?;
    let text = |i: usize| items.get(i).and_then(|v| v.as_bytes()).map(|b| String::from_utf8_lossy(b).into_owned());
    Some((text(0)?, text(1).unwrap_or_default(), items.get(2).and_then(Value::as_int).unwrap_or(0)))
}

#[test]
fn sigkill_of_a_shardis_master_promotes_a_replica_with_its_epoch() {
    let mut master = shardis("127.0.0.2");
    let replicas = [
        replica_of(SHARDS, "127.0.0.3", (&master.host, master.port)),
        replica_of(SHARDS, "127.0.0.4", (&master.host, master.port)),
    ];
    let mons: Vec<Proc> =
        ["127.0.0.5", "127.0.0.6", "127.0.0.7"].iter().map(|h| monitor(h, (&master.host, master.port))).collect();
    wait_discovery(&mons);
    let old = (master.host.clone(), master.port);

    let py = start_python_client(&mons, 20, 40);
    let mut client = Follower::new(&mons);
    let mut acked = Vec::new();
    for i in 0..100 {
        if client.set(&format!("w{i}"), &i.to_string()).is_some() {
            acked.push(i);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(acked.len(), 100, "every write before the failover acknowledged");
    let rc = redis_crate_master(&mons).expect("the redis crate finds the master through a monitor");
    assert_eq!(rc, (master.host.clone(), master.port));
    assert!(redis_crate_set(&rc, "rc:before", "1"), "the redis crate writes to the master");
    // Both clients write before the master dies.
    wait_for("redis-py writes on the first master", Duration::from_secs(15), || {
        let v = master.conn().try_cmd(&["GET", "py:count"]).ok()?;
        let n: u64 = std::str::from_utf8(v.as_bytes()?).ok()?.parse().ok()?;
        (n >= 20).then_some(())
    });

    master.kill9();
    let killed = Instant::now();
    let mut i = 100;
    let new = loop {
        assert!(killed.elapsed() < Duration::from_secs(20), "no write acknowledged by a new master in 20 s");
        i += 1;
        match client.set(&format!("w{i}"), &i.to_string()) {
            Some(a) if a != old => {
                acked.push(i);
                break a;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let took = killed.elapsed();
    eprintln!("SIGKILL of the shardis master to the first write on the new master: {} ms", took.as_millis());
    assert!(
        took <= Duration::from_millis(DOWN_AFTER + 2000),
        "writes resumed after {took:?}, beyond down-after ({DOWN_AFTER} ms) + 2 s"
    );
    for j in i + 1..i + 100 {
        assert_eq!(client.set(&format!("w{j}"), &j.to_string()), Some(new.clone()), "writes go on");
        acked.push(j);
    }
    // The redis crate asks again and follows.
    let rc = wait_for("the redis crate names the new master", Duration::from_secs(5), || {
        redis_crate_master(&mons).filter(|a| *a != old)
    });
    assert_eq!(rc, new, "the redis crate and the Rust follower agree on the new master");
    assert!(redis_crate_set(&rc, "rc:after", "2"), "the redis crate writes to the new master");
    let promoted = replicas.iter().find(|r| (r.host.clone(), r.port) == new).expect("a replica was promoted");
    let other = replicas.iter().find(|r| r.port != new.1).expect("the other replica");
    let mut pc = promoted.conn();
    // Promoted with the epoch of the election, not plainly.
    let epoch = info_u64(&mut pc, "replication", "failover_epoch");
    assert!(epoch >= 1, "promoted without a failover epoch");
    assert_eq!(pc.cmd(&["GET", "rc:after"]), Value::bulk("2"));
    let lost = acked.iter().filter(|k| pc.cmd(&["EXISTS", &format!("w{k}")]) != Value::Int(1)).count();
    eprintln!("acknowledged writes lost in the failover (asynchronous replication): {lost}");

    let (py_ok, py_out) = finish(py, Duration::from_secs(45));
    assert!(py_ok, "redis-py's Sentinel client did not follow the failover: {py_out}");
    eprintln!("redis-py: {}", py_out.trim());

    wait_for("the other replica follows the new master", Duration::from_secs(15), || {
        let (r, h, p) = role_of(other)?;
        (r == "slave" && (h, p) == (new.0.clone(), new.1 as i64)).then_some(())
    });
    converge(promoted, other);
    assert_eq!(info_u64(&mut other.conn(), "replication", "failover_epoch"), epoch, "the replica took the epoch");
    assert_eq!(info_u64(&mut pc, "stats", "sync_full"), 0, "no full sync:\n{}", promoted.logs());
    assert!(info_u64(&mut pc, "stats", "sync_partial_ok") >= SHARDS as u64, "the other replica continued partially");

    // The old master comes back from its AOF as a master of epoch 0; it is
    // re-pointed and follows the new history.
    master.restart().expect("the old master restarts");
    wait_for("the old master rejoins as a replica", Duration::from_secs(15), || {
        let (r, _, p) = role_of(&master)?;
        (r == "slave" && p == new.1 as i64).then_some(())
    });
    converge(promoted, &master);
    let mut oc = master.conn();
    assert_eq!(info_u64(&mut oc, "replication", "failover_epoch"), epoch);
    assert_eq!(info_field(&mut oc, "replication", "master_link_status").as_deref(), Some("up"));
}

/// What one write got from one server.
#[derive(Clone, Debug, PartialEq)]
enum Got {
    Ok,
    Refused(String),
    NoAnswer,
}

fn set_on(c: &mut Option<RespConn>, s: &Server, key: &str) -> Got {
    if c.is_none() {
        let Ok(sa) = format!("{}:{}", s.host, s.port).parse::<SocketAddr>() else { return Got::NoAnswer };
        *c = RespConn::connect_addr(sa, Duration::from_millis(300), Duration::from_millis(500)).ok();
    }
    let Some(conn) = c.as_mut() else { return Got::NoAnswer };
    match conn.try_cmd(&["SET", key, "x"]) {
        Ok(v) if v == Value::ok() => Got::Ok,
        Ok(Value::Error(e)) => Got::Refused(e),
        _ => {
            *c = None;
            Got::NoAnswer
        }
    }
}

/// The master is cut off from both replicas and all three monitors (they
/// reach it only through a proxy that is cut); a client still reaches it
/// directly. With `min-replicas-to-write 1` it refuses writes, the
/// majority promotes a replica, and after healing the old master is
/// demoted. A client writing to all three servers in turn never sees two
/// of them accept writes in the same stretch: every success of the old
/// master comes before the first success of the new one.
#[test]
fn a_master_cut_off_from_the_majority_stops_writes_and_is_demoted() {
    let gate = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"];
    let master = Server::start(SHARDS, &[&["--bind", "127.0.0.2"][..], &gate].concat());
    // Everyone else knows the master by the proxy's address.
    let via = "127.0.0.8";
    let proxy = common::repl::Proxy::for_master(&master, via);
    let mport = master.port.to_string();
    let replicas: Vec<Server> = ["127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|h| Server::start(SHARDS, &[&["--bind", h, "--replicaof", via, &mport][..], &gate].concat()))
        .collect();
    let mons: Vec<Proc> =
        ["127.0.0.5", "127.0.0.6", "127.0.0.7"].iter().map(|h| monitor(h, (via, master.port))).collect();
    wait_discovery(&mons);

    let mut conns: Vec<Option<RespConn>> = vec![None, None, None];
    let servers: [&Server; 3] = [&master, &replicas[0], &replicas[1]];
    // (round, server index) of every acknowledged write.
    let mut oks: Vec<(usize, usize)> = Vec::new();
    let mut refused_old = false;
    let mut round = 0;
    let mut write_round = |conns: &mut Vec<Option<RespConn>>, oks: &mut Vec<(usize, usize)>, refused: &mut bool| {
        round += 1;
        for (i, s) in servers.iter().enumerate() {
            match set_on(&mut conns[i], s, &format!("p{round}")) {
                Got::Ok => oks.push((round, i)),
                Got::Refused(e) if i == 0 && e.starts_with("NOREPLICAS") => *refused = true,
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(10));
        round
    };
    for _ in 0..20 {
        write_round(&mut conns, &mut oks, &mut refused_old);
    }
    assert!(oks.iter().filter(|o| o.1 == 0).count() == 20, "the master took writes before the cut: {oks:?}");

    proxy.cut();
    let cut = Instant::now();
    // Until a replica takes writes (promoted and followed by the other).
    let new = loop {
        assert!(cut.elapsed() < Duration::from_secs(20), "no replica took writes within 20 s of the cut");
        let r = write_round(&mut conns, &mut oks, &mut refused_old);
        if let Some(&(_, i)) = oks.iter().find(|o| o.0 == r && o.1 != 0) {
            break i;
        }
    };
    eprintln!("cut to the first write on the new master: {} ms", cut.elapsed().as_millis());
    assert!(refused_old, "the cut-off master never refused a write (NOREPLICAS)");

    proxy.restore();
    let healed = Instant::now();
    loop {
        assert!(healed.elapsed() < Duration::from_secs(20), "the old master was not demoted within 20 s of healing");
        write_round(&mut conns, &mut oks, &mut refused_old);
        let r = role_of(&master);
        if r.as_ref().is_some_and(|(role, _, p)| role == "slave" && *p == replicas[new - 1].port as i64) {
            break;
        }
    }
    for _ in 0..20 {
        write_round(&mut conns, &mut oks, &mut refused_old);
    }
    let first_new = oks.iter().find(|o| o.1 != 0).map(|o| o.0).expect("the new master took writes");
    let last_old = oks.iter().filter(|o| o.1 == 0).map(|o| o.0).max().unwrap_or(0);
    assert!(last_old < first_new, "old and new masters both took writes: last old {last_old}, first new {first_new}");
    assert!(oks.iter().all(|o| o.1 == 0 || o.1 == new), "only one replica was ever a master: {oks:?}");
    converge(&replicas[new - 1], &master);
}

/// What a monitor's state file says: (current epoch, leader it voted for,
/// the epoch of that vote).
fn state_of(m: &Proc) -> (u64, String, u64) {
    let path = m.dir.join("monitor-state.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let int = |v: Option<&toml::Value>| v.and_then(toml::Value::as_integer).unwrap_or(0) as u64;
    let master = v.get("master").and_then(|m| m.as_array()).and_then(|a| a.first()).cloned();
    let master = master.unwrap_or_else(|| panic!("no master in {text}"));
    let leader = master.get("leader").and_then(toml::Value::as_str).unwrap_or("").to_string();
    (int(v.get("current-epoch")), leader, int(master.get("leader-epoch")))
}

/// `SENTINEL get-master-addr-by-name` on the monitor at `host:port`.
fn master_addr_at(host: &str, port: u16) -> Option<(String, u16)> {
    let sa: SocketAddr = format!("{host}:{port}").parse().ok()?;
    let mut c = RespConn::connect_addr(sa, Duration::from_millis(300), Duration::from_millis(1000)).ok()?;
    let v = c.try_cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"]).ok()?;
    let items = v.as_items()?;
    let host = String::from_utf8_lossy(items.first()?.as_bytes()?).into_owned();
    let port = std::str::from_utf8(items.get(1)?.as_bytes()?).ok()?.parse().ok()?;
    Some((host, port))
}

/// A PSUBSCRIBE to every event of a monitor, read without blocking long.
fn events(m: &Proc) -> RespConn {
    let mut c = m.conn();
    c.cmd(&["PSUBSCRIBE", "*"]);
    c.set_read_timeout(Some(Duration::from_millis(10)));
    c
}

/// Three monitors fail over a shardis-server master under writes; the
/// monitor that starts the election (the first to publish `+try-failover`)
/// is SIGKILLed at once. The other two still promote exactly one replica.
/// The killed monitor restarted from its state file goes on from the epoch
/// it had (never back), keeps the vote it gave (a forged vote request for
/// that epoch by another candidate gets the old answer), and converges on
/// the new master with the others.
#[test]
fn a_monitor_killed_in_its_election_and_restarted_keeps_epoch_and_vote() {
    let mut master = shardis("127.0.0.21");
    let replicas = [
        replica_of(SHARDS, "127.0.0.22", (&master.host, master.port)),
        replica_of(SHARDS, "127.0.0.23", (&master.host, master.port)),
    ];
    let mut mons: Vec<Proc> =
        ["127.0.0.24", "127.0.0.25", "127.0.0.26"].iter().map(|h| monitor(h, (&master.host, master.port))).collect();
    wait_discovery(&mons);
    let old = (master.host.clone(), master.port);
    let mut subs: Vec<RespConn> = mons.iter().map(events).collect();

    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Writes all along, through the monitors.
        let addrs: Vec<(String, u16)> = mons.iter().map(|m| (m.host.clone(), m.port)).collect();
        let stop = &stop;
        let writer = s.spawn(move || {
            let mut acked = Vec::new();
            let mut conn: Option<((String, u16), RespConn)> = None;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
                let Some(addr) = addrs.iter().find_map(|(h, p)| master_addr_at(h, *p)) else { continue };
                if conn.as_ref().map(|c| &c.0) != Some(&addr) {
                    let Ok(sa) = format!("{}:{}", addr.0, addr.1).parse::<SocketAddr>() else { continue };
                    let Ok(c) = RespConn::connect_addr(sa, Duration::from_millis(300), Duration::from_millis(500))
                    else {
                        continue;
                    };
                    conn = Some((addr.clone(), c));
                }
                let Some((_, c)) = conn.as_mut() else { continue };
                match c.try_cmd(&["SET", &format!("e{i}"), "x"]) {
                    Ok(v) if v == Value::ok() => acked.push(addr),
                    _ => conn = None,
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(200));
        master.kill9();
        let killed = Instant::now();
        // The first monitor to try a failover is the victim.
        let victim = 'found: loop {
            assert!(killed.elapsed() < Duration::from_secs(10), "no monitor tried a failover within 10 s");
            for (i, c) in subs.iter_mut().enumerate() {
                while let Ok(v) = c.read_value() {
                    let items = v.as_items().map(|v| v.to_vec()).unwrap_or_default();
                    if items.get(2).and_then(Value::as_bytes) == Some(b"+try-failover") {
                        break 'found i;
                    }
                }
            }
        };
        mons[victim].kill9();
        let before = state_of(&mons[victim]);
        eprintln!("killed monitor {victim} in its election at {} ms: state {before:?}", killed.elapsed().as_millis());
        assert!(before.0 >= 1, "the candidate persisted its new epoch before asking for votes");

        let others: Vec<&Proc> = mons.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, m)| m).collect();
        let new = wait_for("the two monitors left fail over", Duration::from_secs(20), || {
            let a = master_addr(others[0])?;
            (a != old && master_addr(others[1]) == Some(a.clone())).then_some(a)
        });
        eprintln!("failover by the two monitors left after {} ms", killed.elapsed().as_millis());
        let promoted: Vec<&Server> = replicas.iter().filter(|r| (r.host.clone(), r.port) == new).collect();
        assert_eq!(promoted.len(), 1, "the new master {new:?} is one of the replicas");
        let other = replicas.iter().find(|r| r.port != new.1).expect("the other replica");
        wait_for("the other replica follows the new master", Duration::from_secs(15), || {
            let (r, h, p) = role_of(other)?;
            (r == "slave" && (h, p) == (new.0.clone(), new.1 as i64)).then_some(())
        });
        assert_eq!(role_of(promoted[0]).map(|r| r.0).as_deref(), Some("master"));

        // The killed monitor comes back from its state file.
        mons[victim].start();
        let after = state_of(&mons[victim]);
        assert!(after.0 >= before.0, "epoch went back: {before:?} -> {after:?}");
        if after.2 == before.2 {
            assert_eq!(after.1, before.1, "two votes in epoch {}", before.2);
        }
        assert!(after.2 >= before.2, "vote epoch went back: {before:?} -> {after:?}");
        // A forged request for the vote it gave: the same answer, not a new vote.
        if before.2 > 0 {
            let forged = "f".repeat(40);
            let v = mons[victim].conn().cmd(&[
                "SENTINEL",
                "is-master-down-by-addr",
                &new.0,
                &new.1.to_string(),
                &before.2.to_string(),
                &forged,
            ]);
            let leader = v.as_items().and_then(|i| i.get(1)).and_then(Value::as_bytes).map(|b| b.to_vec());
            assert_ne!(leader.as_deref(), Some(forged.as_bytes()), "voted twice in epoch {}: {v:?}", before.2);
        }
        wait_for("all three monitors name the new master", Duration::from_secs(15), || {
            mons.iter().all(|m| master_addr(m) == Some(new.clone())).then_some(())
        });
        let last = state_of(&mons[victim]);
        assert!(last.0 >= after.0, "epoch went back after convergence: {after:?} -> {last:?}");

        // Writes resumed on the new master.
        let resumed = Instant::now();
        loop {
            let mut c = promoted[0].conn();
            if c.try_cmd(&["SET", "after", "1"]).is_ok_and(|v| v == Value::ok()) {
                break;
            }
            assert!(resumed.elapsed() < Duration::from_secs(5), "the new master takes no writes");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = writer.join().expect("writer");
        assert!(acked.contains(&new), "the writer followed the failover");
    });
}

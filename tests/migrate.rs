//! MIGRATE side by side with redis-server 7.0: keys of every type move
//! from shardis (1 and 4 shards, KEYS spanning shards) to redis-server and
//! to another shardis, and from redis-server to shardis; COPY, REPLACE,
//! AUTH/AUTH2, NOKEY, BUSYKEY from the target and IOERR answer as Redis's.

mod common;

use common::dumpdata::{contents, keys, population, strs};
use common::{RespConn, Server, Value};

fn populate(c: &mut RespConn) {
    for cmd in population() {
        assert!(!c.cmd(&strs(&cmd)).is_error(), "{cmd:?}");
    }
    c.cmd(&["SET", "ttl:key", "v", "PX", "100000000"]);
}

fn all_keys() -> Vec<String> {
    let mut k = keys();
    k.push("ttl:key".into());
    k
}

/// Move every key from `src` to `dst` (one MIGRATE per key, or one KEYS
/// form), checking contents against a reference server holding the same.
fn move_all(src: &Server, dst: &Server, reference: &mut RespConn, keys_form: bool) {
    let (mut s, mut d) = (src.conn(), dst.conn());
    let want: Vec<String> = all_keys().iter().map(|k| contents(reference, k)).collect();
    let port = dst.port.to_string();
    if keys_form {
        let mut cmd = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        let ks = all_keys();
        cmd.extend(ks.iter().map(|k| k.as_str()));
        assert_eq!(s.cmd(&cmd), Value::ok(), "{} -> {}", src.name, dst.name);
    } else {
        for k in all_keys() {
            assert_eq!(s.cmd(&["MIGRATE", "127.0.0.1", &port, &k, "0", "5000"]), Value::ok(), "{k}");
        }
    }
    for (k, w) in all_keys().iter().zip(&want) {
        let mut got = contents(&mut d, k);
        let mut w = w.clone();
        // The expiry is sent as a relative TTL: allow the milliseconds it took.
        if k == "ttl:key" {
            got = got.split(" expire=").next().unwrap_or_default().into();
            w = w.split(" expire=").next().unwrap_or_default().into();
        }
        assert_eq!(got, w, "{k} moved {} -> {}", src.name, dst.name);
        assert_eq!(s.cmd(&["EXISTS", k]), Value::Int(0), "{k} left on {}", src.name);
    }
}

#[test]
fn moves_every_type_between_redis_and_shardis() {
    let reference = Server::start_redis();
    let mut rc = reference.conn();
    populate(&mut rc);
    for shards in [1, 4] {
        for keys_form in [false, true] {
            // shardis -> redis-server
            let (src, dst) = (Server::start(shards, &["--appendonly", "no"]), Server::start_redis());
            populate(&mut src.conn());
            move_all(&src, &dst, &mut rc, keys_form);
            // redis-server -> shardis
            let (src, dst) = (Server::start_redis(), Server::start(shards, &["--appendonly", "no"]));
            populate(&mut src.conn());
            move_all(&src, &dst, &mut rc, keys_form);
            // shardis -> shardis
            let (src, dst) =
                (Server::start(shards, &["--appendonly", "no"]), Server::start(5 - shards, &["--appendonly", "no"]));
            populate(&mut src.conn());
            move_all(&src, &dst, &mut rc, keys_form);
        }
    }
}

#[test]
fn options_and_errors_as_redis() {
    // The same sequence from a redis-server and from a 4-shard shardis,
    // each to its own redis-server target with a password.
    let mut transcripts = Vec::new();
    for src in [Server::start_redis(), Server::start(4, &["--appendonly", "no"])] {
        let dst = Server::start_redis_with(&["--requirepass", "pw"]);
        let mut d = dst.conn();
        d.cmd(&["SELECT", "2"]);
        d.cmd(&["SET", "{a}busy", "there"]);
        let mut s = src.conn();
        for (k, v) in [("{a}1", "one"), ("{a}2", "two"), ("b3", "three"), ("{a}busy", "here"), ("c4", "four")] {
            s.cmd(&["SET", k, v]);
        }
        let p = dst.port.to_string();
        let dead = common::free_port().to_string();
        let cmds: Vec<Vec<&str>> = vec![
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000"],
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000", "AUTH", "wrong"],
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000", "AUTH", "pw", "COPY"],
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000", "AUTH", "pw"],
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000", "AUTH2", "default", "pw", "REPLACE"],
            vec!["MIGRATE", "127.0.0.1", &p, "{a}1", "2", "2000", "AUTH2", "default", "pw", "REPLACE"],
            vec!["MIGRATE", "127.0.0.1", &p, "", "2", "2000", "AUTH", "pw", "KEYS", "{a}2", "b3", "{a}busy", "nokey"],
            vec!["EXISTS", "{a}2", "b3", "{a}busy"],
            vec!["MIGRATE", "127.0.0.1", &p, "", "2", "2000", "AUTH", "pw", "KEYS", "nokey", "other"],
            vec!["MIGRATE", "127.0.0.1", &p, "c4", "2", "2000", "AUTH", "pw", "KEYS", "c4"],
            vec!["MIGRATE", "127.0.0.1", &p, "c4", "2", "2000", "AUTH"],
            vec!["MIGRATE", "127.0.0.1", &p, "c4", "2", "2000", "BOGUS"],
            vec!["MIGRATE", "127.0.0.1", &p, "c4", "notadb", "2000"],
            vec!["MIGRATE", "127.0.0.1", &dead, "c4", "0", "300"],
            vec!["MIGRATE", "127.0.0.1", &p],
            vec!["EXISTS", "c4"],
        ];
        let shown = |c: &[&str]| -> Vec<String> {
            c.iter()
                .map(|a| {
                    if *a == p {
                        "PORT".into()
                    } else if *a == dead {
                        "DEAD".into()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let mut t: Vec<String> = cmds.iter().map(|c| format!("{:?} -> {:?}", shown(c), s.cmd(c))).collect();
        let mut d = dst.conn();
        d.cmd(&["AUTH", "pw"]);
        d.cmd(&["SELECT", "2"]);
        for k in ["{a}1", "{a}2", "b3", "{a}busy", "c4"] {
            t.push(format!("target {k}: {:?}", d.cmd(&["GET", k])));
        }
        transcripts.push(t);
    }
    for (r, s) in transcripts[0].iter().zip(&transcripts[1]) {
        assert_eq!(s, r, "shardis vs redis");
    }
}

/// MIGRATE waits for its target off the shard's core: while one waits on
/// a target that accepts and never answers, another client of the same
/// shard is served at once; the MIGRATE then answers Redis's IOERR after
/// its timeout and keeps its key.
#[test]
fn a_slow_target_does_not_stop_the_shard() {
    use common::shards::{conn_on_shard, key_on_shard};
    use std::time::{Duration, Instant};
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port().to_string();
    // Accepts (the kernel does, from the backlog) and never answers.
    for shards in [1, 4] {
        let server = Server::start(shards, &["--appendonly", "no"]);
        let mut m = conn_on_shard(&server, 0);
        let mut other = conn_on_shard(&server, 0);
        let key = key_on_shard("mig", 0, shards);
        let near = key_on_shard("near", 0, shards);
        assert_eq!(m.cmd(&["SET", &key, "v"]), Value::ok());
        let args = ["MIGRATE", "127.0.0.1", &port, &key, "0", "1500"];
        m.send_raw(&common::encode_command(&args)).expect("send MIGRATE");
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        for i in 0..20 {
            assert_eq!(other.cmd(&["SET", &near, &i.to_string()]), Value::ok());
            assert_eq!(other.cmd(&["GET", &key]), Value::Bulk(b"v".to_vec()));
        }
        let served = t0.elapsed();
        assert!(served < Duration::from_millis(700), "{shards} shard(s): the other client waited {served:?}");
        let reply = m.read_value().expect("MIGRATE's reply");
        assert_eq!(
            reply,
            Value::Error("IOERR error or timeout reading to target instance".into()),
            "{shards} shard(s)"
        );
        assert!(t0.elapsed() >= Duration::from_millis(1000), "answered before its timeout");
        assert_eq!(m.cmd(&["EXISTS", &key]), Value::Int(1));
    }
    drop(silent);
}

/// A MIGRATE whose keys live on other shards (one other, and spanning
/// shards) waits for its target off every core too: while it waits on a
/// target that never answers, clients on every shard are served at once,
/// including reads of the keys it moves; it then answers Redis's IOERR
/// and keeps its keys. Against a real target the keys move and are
/// deleted here.
#[test]
fn a_cross_shard_migrate_does_not_stop_any_shard() {
    use common::shards::{conn_on_shard, key_on_shard};
    use std::time::{Duration, Instant};
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port().to_string();
    let dst = Server::start_redis();
    let server = Server::start(4, &["--appendonly", "no"]);
    let mut m = conn_on_shard(&server, 0);
    let mut others: Vec<RespConn> = (0..4).map(|s| conn_on_shard(&server, s)).collect();
    let (k1, k2, k3) = (key_on_shard("x", 1, 4), key_on_shard("x", 2, 4), key_on_shard("x", 3, 4));
    for k in [&k1, &k2, &k3] {
        assert_eq!(m.cmd(&["SET", k, "v"]), Value::ok());
    }
    let one_other = vec!["MIGRATE", "127.0.0.1", &port, &k1, "0", "1500"];
    let spanning = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "1500", "KEYS", &k1, &k2, &k3];
    for args in [&one_other, &spanning] {
        m.send_raw(&common::encode_command(args)).expect("send MIGRATE");
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        for (s, c) in others.iter_mut().enumerate() {
            let near = key_on_shard("near", s, 4);
            for i in 0..5 {
                assert_eq!(c.cmd(&["SET", &near, &i.to_string()]), Value::ok());
            }
            assert_eq!(c.cmd(&["MGET", &k1, &k2, &k3]), Value::Array(vec![Value::Bulk(b"v".to_vec()); 3]));
        }
        let served = t0.elapsed();
        assert!(served < Duration::from_millis(700), "{args:?}: the other clients waited {served:?}");
        let reply = m.read_value().expect("MIGRATE's reply");
        assert_eq!(reply, Value::Error("IOERR error or timeout reading to target instance".into()), "{args:?}");
        assert!(t0.elapsed() >= Duration::from_millis(1000), "answered before its timeout");
        assert_eq!(m.cmd(&["EXISTS", &k1, &k2, &k3]), Value::Int(3));
    }
    // A real target: the keys move, and are gone here.
    let dport = dst.port.to_string();
    assert_eq!(m.cmd(&["MIGRATE", "127.0.0.1", &dport, &k1, "0", "2000"]), Value::ok());
    assert_eq!(m.cmd(&["MIGRATE", "127.0.0.1", &dport, "", "0", "2000", "KEYS", &k2, &k3]), Value::ok());
    assert_eq!(m.cmd(&["EXISTS", &k1, &k2, &k3]), Value::Int(0));
    assert_eq!(dst.conn().cmd(&["EXISTS", &k1, &k2, &k3]), Value::Int(3));
    drop(silent);
}

/// A client that leaves while its cross-shard MIGRATE waits for the
/// target: the keys the target took are deleted all the same (each owner
/// DELs them), so they are moved, not copied. The target answers through
/// a proxy that holds its replies back for 500 ms.
#[test]
fn a_cross_shard_migrate_whose_client_left_still_moves() {
    use common::shards::{conn_on_shard, key_on_shard};
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dst = Server::start_redis();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let pport = proxy.local_addr().expect("addr").port().to_string();
    let target = format!("127.0.0.1:{}", dst.port);
    std::thread::spawn(move || {
        // One connection (MIGRATE caches its socket): forward requests at
        // once, replies after a delay.
        let Ok((mut c, _)) = proxy.accept() else { return };
        let Ok(mut t) = std::net::TcpStream::connect(&target) else { return };
        let (Ok(mut c2), Ok(mut t2)) = (c.try_clone(), t.try_clone()) else { return };
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = c2.read(&mut buf) {
                if n == 0 || t2.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut buf = [0u8; 65536];
        while let Ok(n) = t.read(&mut buf) {
            std::thread::sleep(Duration::from_millis(500));
            if n == 0 || c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let server = Server::start(4, &["--appendonly", "no"]);
    let mut m = conn_on_shard(&server, 0);
    let (k1, k2) = (key_on_shard("gone", 1, 4), key_on_shard("gone", 2, 4));
    for k in [&k1, &k2] {
        assert_eq!(m.cmd(&["SET", k, "v"]), Value::ok());
    }
    let args = ["MIGRATE", "127.0.0.1", &pport, "", "0", "5000", "KEYS", &k1, &k2];
    m.send_raw(&common::encode_command(&args)).expect("send MIGRATE");
    std::thread::sleep(Duration::from_millis(100));
    drop(m);
    let mut c = server.conn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.cmd(&["EXISTS", &k1, &k2]) != Value::Int(0) {
        assert!(Instant::now() < deadline, "the keys the target took were not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dst.conn().cmd(&["EXISTS", &k1, &k2]), Value::Int(2));
}

/// One cached socket per target: MIGRATEs to the same target reuse one
/// connection (the target counts one client connection for all).
#[test]
fn sockets_to_a_target_are_cached() {
    let dst = Server::start_redis();
    let mut d = dst.conn();
    for shards in [1, 4] {
        let src = Server::start(shards, &["--appendonly", "no"]);
        let mut s = src.conn();
        let before = connections(&mut d);
        for i in 0..5 {
            let k = format!("cached{shards}:{i}");
            s.cmd(&["SET", &k, "v"]);
            let r = s.cmd(&["MIGRATE", "127.0.0.1", &dst.port.to_string(), &k, "0", "2000", "REPLACE"]);
            assert_eq!(r, Value::ok(), "{shards} shard(s)");
        }
        assert_eq!(connections(&mut d) - before, 1, "{shards} shard(s): five MIGRATEs, one connection");
    }
}

fn connections(c: &mut RespConn) -> i64 {
    let info = c.cmd(&["INFO", "stats"]);
    let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received")
}

//! `shardis-server import-rdb`: redis-server 7.0 writes a dump.rdb (every
//! type and encoding, expiries, several databases, a function library),
//! shardis imports it, starts on the result with 1 and 4 shards, and
//! every key reads as it does on redis-server. Damaged files are refused
//! with the file's name and an offset, and leave no data behind.

mod common;

use common::dumpdata::{contents, keys, population, strs};
use common::{RespConn, Server, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const LIB: &str = "#!lua name=importlib\nredis.register_function('imported', function() return 42 end)";

/// Populate a redis-server and SAVE; its dump.rdb path.
fn redis_dump(r: &Server) -> PathBuf {
    let mut c = r.conn();
    for cmd in population() {
        assert!(!c.cmd(&strs(&cmd)).is_error(), "{cmd:?}");
    }
    c.cmd(&["SET", "ttl:long", "v", "PX", "100000000"]);
    c.cmd(&["SET", "ttl:gone", "v", "PX", "1"]);
    c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["SET", "db3:key", "in db 3"]);
    c.cmd(&["RPUSH", "db3:list", "a", "b"]);
    c.cmd(&["SELECT", "0"]);
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]), Value::bulk("importlib"));
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(c.cmd(&["SAVE"]), Value::ok());
    r.dir.join("dump.rdb")
}

fn import(file: &Path, dir: &Path, shards: usize) -> std::process::Output {
    Command::new(common::server::shardis_bin())
        .args(["import-rdb", "--shards", &shards.to_string()])
        .arg(file)
        .arg(dir)
        .output()
        .expect("run import-rdb")
}

/// Stop `s`, replace its data with `file` imported, start it again.
fn import_into(s: &mut Server, file: &Path, import_shards: usize) -> String {
    s.stop_keep();
    let _ = std::fs::remove_file(s.dir.join("MANIFEST.toml"));
    for e in std::fs::read_dir(&s.dir).expect("dir").flatten() {
        if e.file_name().to_string_lossy().starts_with("shard-") {
            std::fs::remove_dir_all(e.path()).expect("remove shard dir");
        }
    }
    let out = import(file, &s.dir, import_shards);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "import-rdb failed: {err}");
    s.restart().expect("starts on the imported data");
    err
}

fn compare(r: &mut RespConn, s: &mut RespConn) {
    let mut all = keys();
    all.push("ttl:long".into());
    for k in &all {
        assert_eq!(contents(s, k), contents(r, k), "key {k}");
    }
    assert_eq!(s.cmd(&["EXISTS", "ttl:gone"]), Value::Int(0));
    assert_eq!(s.cmd(&["DBSIZE"]), Value::Int(all.len() as i64));
    for c in [&mut *r, &mut *s] {
        c.cmd(&["SELECT", "3"]);
    }
    for k in ["db3:key", "db3:list"] {
        assert_eq!(contents(s, k), contents(r, k), "key {k} in db 3");
    }
    assert_eq!(s.cmd(&["DBSIZE"]), Value::Int(2));
    assert_eq!(s.cmd(&["FCALL", "imported", "0"]), Value::Int(42));
}

#[test]
fn imports_a_redis_dump() {
    let redis = Server::start_redis();
    let file = redis_dump(&redis);
    // ttl:gone expired before SAVE: Redis writes it (active expiry is
    // off), the import drops it.
    for (import_shards, shards) in [(1, 1), (4, 4), (1, 4)] {
        let mut s = Server::start(shards, &[]);
        let log = import_into(&mut s, &file, import_shards);
        assert!(log.contains("import-rdb:") && log.contains("RDB version 10"), "{log}");
        let (mut r, mut c) = (redis.conn(), s.conn());
        compare(&mut r, &mut c);
        // And it survives a restart from its own AOF.
        s.restart().expect("restarts");
        let (mut r, mut c) = (redis.conn(), s.conn());
        compare(&mut r, &mut c);
    }
}

#[test]
fn damaged_files_are_refused() {
    let redis = Server::start_redis();
    redis.conn().cmd(&["SET", "k", "v"]);
    let file = redis_dump(&redis);
    let good = std::fs::read(&file).expect("dump.rdb");
    let dir = common::server::test_data_root().join(format!("import-bad-{}", std::process::id()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped", {
            let mut b = good.clone();
            let at = b.len() / 2;
            b[at] ^= 0x55;
            b
        }),
        ("not rdb", b"hello world".to_vec()),
        ("huge length", {
            let mut b = b"REDIS0010\xfe\x00\x00\x01k\x81\xff\xff\xff\xff\xff\xff\xff\xff".to_vec();
            b.extend_from_slice(&[0xff; 9]);
            b
        }),
    ];
    for (what, bytes) in cases {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.rdb");
        std::fs::write(&path, &bytes).expect("write");
        let out = import(&path, &dir.join("data"), 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(err.contains("bad.rdb") && err.contains("offset"), "{what}: {err}");
        assert!(!dir.join("data").join("MANIFEST.toml").exists(), "{what}: left a manifest");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Which shard a key or a connection lives on, for tests that must drive a
//! particular road (local, forwarded, cross-shard).

use super::resp::RespConn;
use super::server::Server;

/// The shard owning `key` among `nshards` (the server's own slot map).
pub fn shard_of(key: &str, nshards: usize) -> usize {
    shardis::shard::router::SlotMap::contiguous(nshards).shard_of(key.as_bytes())
}

/// First key `prefix:<i>` owned by `shard`.
pub fn key_on_shard(prefix: &str, shard: usize, nshards: usize) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| shard_of(k, nshards) == shard % nshards)
        .expect("no key found for shard")
}

/// The `shard=` field of CLIENT INFO (shardis only).
pub fn conn_shard(c: &mut RespConn) -> Option<usize> {
    let info = c.try_cmd(&["CLIENT", "INFO"]).ok()?;
    let s = String::from_utf8_lossy(info.as_bytes()?).into_owned();
    s.split_whitespace().find_map(|f| f.strip_prefix("shard=")).and_then(|v| v.parse().ok())
}

/// A connection accepted by `shard` (connections land on shards as the
/// kernel's SO_REUSEPORT hashing decides, so try a bounded number of times).
/// Falls back to any connection if the server does not say.
pub fn conn_on_shard(server: &Server, shard: usize) -> RespConn {
    let mut last = None;
    for _ in 0..400 {
        let mut c = server.conn();
        match conn_shard(&mut c) {
            Some(s) if s == shard => return c,
            None => return c,
            _ => last = Some(c),
        }
    }
    eprintln!("{}: no connection landed on shard {shard} after 400 tries; using another", server.name);
    last.expect("at least one connection")
}

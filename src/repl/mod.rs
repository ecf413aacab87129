//! Replication: every shard's AOF shipped to replicas on other hosts
//! (DESIGN.md "Replication").
//!
//! - `wire`: the link's handshake and frames (pure).
//! - `master`: the replication listener and one thread per shard that
//!   streams the shard's log (`persist::logread`) to its replicas.
//! - `replica`: one link thread per master shard that applies the stream
//!   through this server's shards (`Msg::ReplApply`, `Road::Replica`).
//! - `route`: which of this server's shards a master record's commands go
//!   to (pure).
//! - `info`: INFO replication and ROLE from both sides' state.

pub mod history;
pub mod info;
pub mod master;
pub mod replica;
pub mod route;
pub mod wire;

/// A fresh replication id: 40 hex digits, as Redis's.
pub fn new_replid() -> String {
    let seed = crate::util::now_us() as u64 ^ ((std::process::id() as u64) << 32);
    let mut rng = crate::cmd::Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..40).map(|_| format!("{:x}", rng.next_u64() % 16)).collect()
}

/// The node's replication id: kept in MANIFEST.toml so that replicas
/// continue across a restart of the master; a new one for a new data
/// directory (or with appendonly off, per process).
pub fn node_replid(dir: &std::path::Path, appendonly: bool) -> Result<String, String> {
    if !appendonly {
        return Ok(new_replid());
    }
    let Some(m) = crate::persist::manifest::Manifest::read(dir)? else { return Ok(new_replid()) };
    if m.replid.is_empty() {
        let fresh = new_replid();
        return crate::persist::manifest::Manifest::update(dir, |m| m.replid = fresh).map(|m| m.replid);
    }
    Ok(m.replid)
}

//! Persistence: the per-shard append-only file.
//!
//! Files under `dir` (see README "Persistence"):
//! ```text
//! MANIFEST.toml                 shard count and each shard's base image
//! shard-000/base-<lsn>.snap     the shard's keyspace as of <lsn> (records)
//! shard-000/<first-lsn>.aof     log segments, records with lsn > base lsn
//! ```
//! `record` is the on-disk format, `rebuild` turns a stored value back into
//! commands, `writer` is a shard's log writer (the shard loop submits its
//! writes and fdatasyncs through io_uring), `load` is recovery,
//! `logread` reads a shard's log from an lsn while it grows (replication)
//! and `check` the `check-aof` tool.

pub mod check;
pub mod crc32c;
pub mod import_rdb;
pub mod load;
pub mod logread;
pub mod manifest;
pub mod rebuild;
pub mod record;
pub mod rewrite;
pub mod snapshot;
pub mod switch;
pub mod writer;

use std::path::{Path, PathBuf};

pub fn shard_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{:03}", shard))
}

/// Segment file name: the lsn of its first record, zero-padded so names sort.
pub fn segment_name(first_lsn: u64) -> String {
    format!("{:020}.aof", first_lsn)
}

pub fn base_name(lsn: u64) -> String {
    format!("base-{:020}.snap", lsn)
}

/// The first lsn of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".aof")?.parse().ok()
}

/// Test-only fault injection, named by `SHARDIS_FAILPOINT` (read once).
/// `txn-partial`: on a cross-shard transaction, shard 0 makes its record
/// durable and the process aborts before the other participants log
/// theirs (they wait first), proving recovery drops the transaction.
/// `switch-before-commit` / `switch-after-commit`: `CONFIG SET appendonly
/// yes` aborts the process once every shard wrote its new base, before /
/// right after the manifest names them (`switch`). `aof-eio`: AOF writes
/// fail with EIO while the shard's directory holds a `fail-writes` file.
/// `slow-aof-rename`: an AOF rewrite's install of its bases takes 30 ms
/// more (the latency monitor's `aof-rename` event).
/// `snapshot-slow`: a snapshot rewrite walks 4 buckets per 2 ms, so that
/// tests can race writes and crashes with it.
pub fn failpoint(name: &str) -> bool {
    static FP: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FP.get_or_init(|| std::env::var("SHARDIS_FAILPOINT").ok()).as_deref() == Some(name)
}

/// fsync a directory so a file created or renamed in it survives a crash.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

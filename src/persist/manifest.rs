//! MANIFEST.toml: which shard count the data was written with and each
//! shard's base image. Segments are not listed: a shard's log is every
//! `<lsn>.aof` in its directory, checked for contiguous lsns at load, so
//! rotating a segment never rewrites the manifest. Replaced atomically
//! (write temp, fsync, rename, fsync dir).

use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "MANIFEST.toml";
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    pub version: u32,
    pub shards: usize,
    /// The node's replication id (empty until replication first asks).
    #[serde(default)]
    pub replid: String,
    /// The replication id this node's data continues (its master's before
    /// it was promoted), and per shard the lsn of that history the data
    /// holds: replicas of the old master continue from there (PSYNC2).
    #[serde(default)]
    pub replid2: String,
    #[serde(default)]
    pub second_offsets: Vec<u64>,
    /// The highest failover epoch this node has seen (it was promoted in
    /// it, or followed a master of it); it only grows.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub shard: Vec<ShardEntry>,
}

/// Read-modify-write of the manifest is serialised in the process: a
/// rewrite and a promotion may both change it.
static UPDATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ShardEntry {
    /// Records with lsn <= base_lsn are in the base image.
    pub base_lsn: u64,
    /// File name of the base image in the shard's directory; empty = none.
    #[serde(default)]
    pub base: String,
}

impl Manifest {
    pub fn new(shards: usize) -> Manifest {
        Manifest {
            version: VERSION,
            shards,
            replid: String::new(),
            replid2: String::new(),
            second_offsets: Vec::new(),
            epoch: 0,
            shard: vec![ShardEntry::default(); shards],
        }
    }

    /// Change the current manifest of `dir` with `f` and write it, under
    /// the process's manifest lock (so two writers do not lose each other's
    /// change). Err if there is none.
    pub fn update(dir: &Path, f: impl FnOnce(&mut Manifest)) -> Result<Manifest, String> {
        let _g = UPDATE.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = Manifest::read(dir)?.ok_or_else(|| format!("{}: no manifest", dir.display()))?;
        f(&mut m);
        m.write(dir)?;
        Ok(m)
    }

    /// Every shard with a base image at `lsn` (named `base_name(lsn)`).
    pub fn with_bases(shards: usize, lsn: u64) -> Manifest {
        let mut m = Manifest::new(shards);
        for e in m.shard.iter_mut() {
            *e = ShardEntry { base_lsn: lsn, base: super::base_name(lsn) };
        }
        m
    }

    /// Read the manifest; Ok(None) if the directory has none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, String> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {}", path.display(), e)),
        };
        let m: Manifest = toml::from_str(&text).map_err(|e| {
            format!(
                "{}: not a valid manifest ({}); restore it from a backup or move the directory away",
                path.display(),
                e.message()
            )
        })?;
        if m.version != VERSION {
            return Err(format!(
                "{}: manifest version {} is not supported (expected {})",
                path.display(),
                m.version,
                VERSION
            ));
        }
        if m.shards == 0 || m.shard.len() != m.shards {
            return Err(format!(
                "{}: manifest says {} shards but lists {}; restore it from a backup",
                path.display(),
                m.shards,
                m.shard.len()
            ));
        }
        Ok(Some(m))
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| format!("encoding manifest: {}", e))?;
        let tmp = dir.join("MANIFEST.toml.tmp");
        let ctx = |e: std::io::Error| format!("writing {}: {}", tmp.display(), e);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(ctx)?;
            f.write_all(text.as_bytes()).map_err(ctx)?;
            f.sync_all().map_err(ctx)?;
        }
        std::fs::rename(&tmp, dir.join(FILE)).map_err(|e| format!("renaming {}: {}", tmp.display(), e))?;
        super::fsync_dir(dir).map_err(|e| format!("fsync {}: {}", dir.display(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("shardis-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut m = Manifest::new(2);
        m.shard[1] = ShardEntry { base_lsn: 42, base: super::super::base_name(42) };
        m.write(&dir).expect("write");
        assert_eq!(Manifest::read(&dir).expect("read"), Some(m));
        std::fs::write(dir.join(FILE), "shards = [").expect("write garbage");
        assert!(Manifest::read(&dir).unwrap_err().contains("not a valid manifest"));
        std::fs::remove_dir_all(&dir).ok();
    }
}

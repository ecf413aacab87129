//! `shardis-server import-rdb [--shards N] FILE DIR`: turn a redis-server
//! RDB file into a shardis data directory the server then starts from
//! (one base image per shard and a MANIFEST). This is how users move
//! their data over. Keys already expired are dropped (as a Redis master
//! loading the file does); databases keep their numbers (shardis has
//! `NUM_DBS`); function libraries go to every shard; aux fields and
//! LRU/LFU hints are read and dropped. A file it cannot read is refused
//! with its name and the offset where it went wrong, and DIR is left
//! without a manifest.

use super::manifest::{Manifest, ShardEntry};
use super::rewrite::write_base;
use crate::keyspace::{Keyspace, NUM_DBS};
use crate::rdb::file::{Item, RdbFile};
use std::path::Path;
use std::time::{Duration, Instant};

/// What was imported.
#[derive(Debug, Default)]
pub struct Summary {
    pub keys: u64,
    pub expired: u64,
    pub empty: u64,
    pub functions: usize,
    pub version: u16,
}

/// Import `file` into `dir` (which must hold no data yet) as `shards`
/// shards; `progress` gets a line at least once a second.
pub fn run(file: &Path, dir: &Path, shards: usize, mut progress: impl FnMut(&str)) -> Result<Summary, String> {
    let name = file.display();
    if Manifest::read(dir)?.is_some() {
        return Err(format!("{}: already holds shardis data; import into an empty directory", dir.display()));
    }
    let f = std::fs::File::open(file).map_err(|e| format!("{name}: {e}"))?;
    // SAFETY: the file is only read; a concurrent writer could change what
    // is read, which the checksum then catches.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("{name}: {e}"))?;
    let buf: &[u8] = &map;
    let mut p = RdbFile::new(buf).map_err(|e| format!("{name}: offset {}: {}", e.offset, e.what))?;
    let mut out: Vec<Keyspace> = (0..shards.max(1)).map(|_| Keyspace::new()).collect();
    let slots = crate::shard::router::SlotMap::contiguous(out.len());
    let now = crate::util::now_ms();
    let mut sum = Summary { version: p.version, ..Summary::default() };
    let (t0, mut last) = (Instant::now(), Instant::now());
    loop {
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let at = p.offset();
            progress(&format!(
                "import-rdb: {} of {} MB ({:.0}%), {} keys, {:.0} keys/s",
                at >> 20,
                buf.len() >> 20,
                at as f64 * 100.0 / buf.len().max(1) as f64,
                sum.keys,
                sum.keys as f64 / t0.elapsed().as_secs_f64().max(1e-3)
            ));
        }
        let at = p.offset();
        let item = p.next_item().map_err(|e| format!("{name}: offset {}: {}", e.offset, e.what))?;
        match item {
            Item::End => break,
            Item::Aux(..) => {}
            Item::Db(db) => {
                if db >= NUM_DBS as u64 {
                    return Err(format!("{name}: offset {at}: database {db}, but shardis has {NUM_DBS}"));
                }
            }
            Item::Function(code) => {
                let (lib, _) = crate::script::functions::parse_library(&code)
                    .map_err(|e| format!("{name}: offset {at}: function library: {e}"))?;
                let code: std::sync::Arc<[u8]> = code.into_owned().into();
                for ks in out.iter_mut() {
                    ks.functions.insert(lib.clone(), code.clone());
                    ks.functions.touch();
                }
                sum.functions += 1;
            }
            Item::Key { db, key, value, expire_ms } => match value {
                None => sum.empty += 1,
                Some(_) if expire_ms != 0 && expire_ms <= now => sum.expired += 1,
                Some(v) => {
                    out[slots.shard_of(&key)].set(db as usize, &key, v, expire_ms);
                    sum.keys += 1;
                }
            },
        }
    }
    let lsn = 1;
    let mut m = Manifest::new(out.len());
    for (s, ks) in out.iter_mut().enumerate() {
        ks.dirty = 0;
        let sd = super::shard_dir(dir, s);
        std::fs::create_dir_all(&sd).map_err(|e| format!("{}: {e}", sd.display()))?;
        let (base, _) = write_base(&sd, ks, lsn)?;
        m.shard[s] = ShardEntry { base_lsn: lsn, base };
    }
    m.write(dir)?;
    progress(&format!(
        "import-rdb: {name} (RDB version {}): {} keys, {} already expired and {} empty skipped, {} function libraries, in {:.2}s",
        sum.version,
        sum.keys,
        sum.expired,
        sum.empty,
        sum.functions,
        t0.elapsed().as_secs_f64()
    ));
    Ok(sum)
}

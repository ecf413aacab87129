//! Compaction (BGREWRITEAOF, SAVE/BGSAVE, automatic by growth) and
//! re-sharding, both by writing new base images. Two ways to build the
//! bases (`rewrite-method`); both end in the same commit: the manifest
//! switch names every shard's new base, segments wholly below them are
//! deleted after it, and a crash at any moment leaves either the old
//! layout or the new one, both loadable (stray files are ignored).
//!
//! `snapshot` (the default; DESIGN.md's scheme, `persist::snapshot`,
//! `shard::snap`):
//! each shard serialises its live keyspace in bounded steps between
//! requests, copy-before-write (a write to a key the cursor may not have
//! reached first writes its old value, as Dragonfly's snapshots do),
//! straight into `base-<lsn>.snap` through a writer thread with a bounded
//! queue. No second copy of the data: memory beyond the keyspace is the
//! keys written during the snapshot and about 1 MiB of queued records.
//! Cross-shard consistency: every shard's snapshot starts inside one
//! all-shards barrier, a lock taken on every shard in shard order like a
//! cross-shard transaction's (`shard::snap`). Under whole-shard locks a
//! transaction is therefore entirely before the barrier (its record is at
//! or below every participant's base lsn: in every base) or entirely
//! after it (above every participant's base lsn: in no base, replayed
//! from the log), so recovery's all-or-nothing cut over the log records
//! above the bases holds exactly as for the replayed bases.
//! Where it departs from Dragonfly's snapshots: the cursor is the keyspace's public SCAN cursor, not bucket
//! versions, so the keys written during the snapshot are remembered in a
//! set (freed per db as it finishes), and a key may be written twice (the
//! later copy replaces the earlier; see `persist::snapshot`). A
//! collection past 4096 items is written a batch per step, but a write to
//! one the snapshot has not finished copies all of its rest at once (as
//! Dragonfly copies a bucket), and a stream is written whole: those hold
//! the shard for about 0.2 s per million items (the `aof-snapshot-step`
//! latency event and the command's latency show it). Steps take at most
//! a fifth of a busy shard's time and half of an idle one's.
//!
//! `replay` (kept as an option, e.g. should a workload's big collections
//! make the snapshot's copies stall; nothing else needs it): every shard first starts a new segment and reports the lsn it
//! has appended up to (`upto`). A background thread waits until those
//! records are durable, then replays the shards' own files up to there
//! into scratch keyspaces, exactly as recovery would — with the same
//! all-or-nothing cut for cross-shard transactions, so the bases are
//! mutually consistent — and writes each keyspace out. It needs no hook on
//! the hot path and is trivially point-in-time, at the price of a second
//! copy of the data (peak RSS 1.3–1.5x Redis's fork rewrite under load,
//! benches/RESULTS.md) and CPU for the replay.
//!
//! Re-sharding at start-up (`reshard`) needs neither: the data is loaded
//! and no client is served yet, so it writes the loaded keyspaces out.

use super::load::{self, Loaded};
use super::manifest::{Manifest, ShardEntry};
use super::record;
use crate::keyspace::Keyspace;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Rewrite state shared by all shards (INFO persistence, LASTSAVE).
pub struct Status {
    pub in_progress: AtomicBool,
    /// Completed rewrites; SAVE waits for this to move.
    pub generation: AtomicU64,
    pub last_ok: AtomicBool,
    /// Unix seconds of the last successful rewrite (or of start-up).
    pub last_save: AtomicI64,
    pub last_error: Mutex<String>,
    /// Bytes of all bases after the last rewrite (auto-rewrite baseline).
    pub base_size: AtomicU64,
    /// Per shard: last durable lsn, published by the shard's loop.
    pub durable: Vec<AtomicU64>,
    /// Per shard: log bytes written since start-up.
    pub log_bytes: Vec<AtomicU64>,
    /// Sum of `log_bytes` when the last successful rewrite started.
    pub log_mark: AtomicU64,
    /// Rewrites started (INFO aof_rewrites).
    pub started: AtomicU64,
    /// Failed rewrites since the last success.
    pub consecutive_failures: AtomicU64,
    /// After a failure: no automatic rewrite before this time (ms).
    pub auto_not_before_ms: AtomicI64,
    /// Per shard: bytes of the running rewrite's copy of its data.
    pub copy_bytes: Vec<AtomicU64>,
    /// Largest total copy a rewrite has built.
    pub copy_peak: AtomicU64,
    /// Per shard: the lowest lsn a replica has not acknowledged yet
    /// (u64::MAX: none needs anything); compaction keeps the segments
    /// from there on, up to `backlog` bytes (`logread::removable`).
    pub retain_floor: Vec<AtomicU64>,
    /// repl-backlog-size, in bytes.
    pub backlog: AtomicU64,
}

/// Delay before the next automatic rewrite after `failures` failed ones in
/// a row: 5 s, doubling, at most an hour (Redis also waits longer and
/// longer, up to an hour). Each try builds a second copy of the data, so a
/// persistent fault (full disk) must not turn into a copy every 100 ms.
pub fn retry_delay_ms(failures: u64) -> i64 {
    const FIRST_MS: i64 = 5_000;
    const MAX_MS: i64 = 3_600_000;
    if failures == 0 {
        return 0;
    }
    FIRST_MS.saturating_mul(1 << (failures - 1).min(20)).min(MAX_MS)
}

/// Whether an automatic rewrite may start now (not backing off after a
/// failure). BGREWRITEAOF is never held back.
pub fn auto_allowed(now_ms: i64) -> bool {
    status().is_none_or(|st| now_ms >= st.auto_not_before_ms.load(Ordering::Relaxed))
}

/// Bytes of the running rewrite's copy (INFO, memory).
pub fn copy_bytes() -> u64 {
    status().map_or(0, |st| st.copy_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum())
}

static STATUS: std::sync::OnceLock<Status> = std::sync::OnceLock::new();

/// The process's rewrite state (set up once at start-up).
pub fn status() -> Option<&'static Status> {
    STATUS.get()
}

pub fn init_status(nshards: usize) -> &'static Status {
    STATUS.get_or_init(|| Status::new(nshards))
}

/// Claim the right to run a rewrite; false if one is running.
pub fn try_begin() -> bool {
    status().is_some_and(|s| s.in_progress.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok())
}

/// Run a rewrite (claimed with `try_begin`) on its own thread.
pub fn spawn(root: std::path::PathBuf, upto: Vec<u64>) {
    let Some(st) = status() else { return };
    let mark: u64 = st.log_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
    let res = std::thread::Builder::new().name("aof-rewrite".into()).spawn(move || {
        // The shards keep serving on the same cores: let them go first
        // (the threads this one starts inherit it).
        crate::util::lower_thread_priority();
        crate::log(&format!("AOF rewrite started (up to lsns {:?})", upto));
        st.started.fetch_add(1, Ordering::Relaxed);
        let r = rewrite_all(&root, st, &upto);
        for b in &st.copy_bytes {
            b.store(0, Ordering::Relaxed);
        }
        finish(st, mark, r);
    });
    if let Err(e) = res {
        crate::log(&format!("cannot start the AOF rewrite thread: {}", e));
        st.last_ok.store(false, Ordering::Relaxed);
        st.in_progress.store(false, Ordering::Release);
    }
}

/// A rewrite (of either method) ended with `r` (the new bases' total
/// size); `mark`: the log bytes when it started. Lets the next one start.
pub(super) fn finish(st: &Status, mark: u64, r: Result<u64, String>) {
    match &r {
        Ok(size) => {
            st.base_size.store(*size, Ordering::Relaxed);
            st.log_mark.store(mark, Ordering::Relaxed);
            st.last_save.store(crate::util::now_ms() / 1000, Ordering::Relaxed);
            st.last_ok.store(true, Ordering::Relaxed);
            st.consecutive_failures.store(0, Ordering::Relaxed);
            st.auto_not_before_ms.store(0, Ordering::Relaxed);
        }
        Err(e) => {
            let failures = st.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            let delay = retry_delay_ms(failures);
            st.auto_not_before_ms.store(crate::util::now_ms() + delay, Ordering::Relaxed);
            crate::log(&format!(
                "AOF rewrite failed: {}; {} failure(s) in a row, no automatic rewrite for {} s",
                e,
                failures,
                delay / 1000
            ));
            if let Ok(mut le) = st.last_error.lock() {
                *le = e.clone();
            }
            st.last_ok.store(false, Ordering::Relaxed);
        }
    }
    st.generation.fetch_add(1, Ordering::AcqRel);
    st.in_progress.store(false, Ordering::Release);
}

/// Log bytes written since the last rewrite started.
pub fn growth() -> u64 {
    status().map_or(0, |st| {
        let total: u64 = st.log_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        total.saturating_sub(st.log_mark.load(Ordering::Relaxed))
    })
}

impl Status {
    pub fn new(nshards: usize) -> Status {
        Status {
            in_progress: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            last_ok: AtomicBool::new(true),
            last_save: AtomicI64::new(crate::util::now_ms() / 1000),
            last_error: Mutex::new(String::new()),
            base_size: AtomicU64::new(0),
            durable: (0..nshards).map(|_| AtomicU64::new(0)).collect(),
            log_bytes: (0..nshards).map(|_| AtomicU64::new(0)).collect(),
            log_mark: AtomicU64::new(0),
            started: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            auto_not_before_ms: AtomicI64::new(0),
            copy_bytes: (0..nshards).map(|_| AtomicU64::new(0)).collect(),
            copy_peak: AtomicU64::new(0),
            retain_floor: (0..nshards).map(|_| AtomicU64::new(u64::MAX)).collect(),
            backlog: AtomicU64::new(0),
        }
    }
}

/// Payload bytes after which a base image ends a record and goes on in
/// the next: one record per key would make a collection whose commands
/// pass `record::MAX_PAYLOAD` (2 GiB) unloadable, and a bounded record
/// keeps the writer's buffer and the loader's steps small.
pub const RECORD_SPLIT: usize = 16 << 20;

/// Write `ks` as a base image in `dir`, named for `lsn`; returns the file
/// name and its size. Written to a temporary name, synced, then renamed.
pub fn write_base(dir: &Path, ks: &Keyspace, lsn: u64) -> Result<(String, u64), String> {
    write_base_split(dir, ks, lsn, RECORD_SPLIT)
}

/// Base records being written: a key's commands go into its record until
/// it holds `split` payload bytes, then into a new one (same lsn; a base
/// is replayed whole or not at all, so nothing needs them together).
/// Filled buffers (about `FLUSH_AT` bytes, whole records) go to `file`.
pub(crate) struct BaseRecords<W: std::io::Write> {
    pub(crate) file: W,
    buf: Vec<u8>,
    /// Where the open record starts in `buf`.
    start: usize,
    lsn: u64,
    db: u8,
    split: usize,
    pub(crate) size: u64,
    pub(crate) error: Option<String>,
    /// A key may be written twice (a snapshot's copy-before-write and its
    /// cursor): rebuilds that are not idempotent (lists, streams) then
    /// start with a DEL, so the later copy replaces the earlier.
    pub(crate) dedup: bool,
}

/// Buffered bytes handed to the file at once.
pub(crate) const FLUSH_AT: usize = 60 * 1024;

impl<W: std::io::Write> BaseRecords<W> {
    pub(crate) fn new(file: W, lsn: u64, split: usize) -> Self {
        BaseRecords {
            file,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            lsn,
            db: 0,
            split,
            size: 0,
            error: None,
            dedup: false,
        }
    }

    fn begin(&mut self, db: u8) {
        self.db = db;
        self.start = record::begin(&mut self.buf, self.lsn, 0, 0, db, 0);
    }

    /// Close the open record (dropping it if a cut left it empty); hand
    /// full buffers to the file.
    fn finish(&mut self) {
        if self.buf.len() == self.start + record::HEADER_LEN {
            self.buf.truncate(self.start);
        } else if record::finish(&mut self.buf, self.start) > record::MAX_PAYLOAD && self.error.is_none() {
            // One command past the bound: better no new base than one the
            // loader refuses after the old segments are gone.
            self.error = Some(format!("a record of {} bytes in a base image", self.buf.len() - self.start));
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            self.error.get_or_insert(e.to_string());
        }
        self.size += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Bytes buffered, not yet handed to the file.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Commands `f` writes, in records of this base (split as usual).
    pub(crate) fn with_record(&mut self, db: u8, f: impl FnOnce(&mut Self)) {
        self.begin(db);
        f(self);
        self.finish();
    }

    /// One key's records.
    pub(crate) fn key(&mut self, db: u8, key: &[u8], value: &crate::keyspace::Value, expire: i64) {
        self.begin(db);
        if self.dedup && matches!(value, crate::keyspace::Value::List(_) | crate::keyspace::Value::Stream(_)) {
            crate::keyspace::effects::encode_array(&mut self.buf, [&b"DEL"[..], key].into_iter(), 2);
        }
        super::rebuild::value_commands(self, key, value, expire);
        self.finish();
    }

    /// What a base carries besides keys: FUNCTION libraries (every shard's
    /// base carries them all) and a replica's positions (see
    /// `repl::replica`), which go with its data.
    pub(crate) fn extras(&mut self, ks: &Keyspace) {
        for code in ks.functions.libs.values() {
            self.begin(0);
            let parts: [&[u8]; 4] = [b"FUNCTION", b"LOAD", b"REPLACE", code];
            crate::keyspace::effects::encode_array(&mut self.buf, parts.into_iter(), 4);
            self.finish();
        }
        for (m, (replid, lsn)) in &ks.repl_pos {
            self.begin(0);
            let (ms, ls) = (m.to_string(), lsn.to_string());
            let parts: [&[u8]; 4] = [b"REPLPOS", ms.as_bytes(), ls.as_bytes(), replid.as_bytes()];
            crate::keyspace::effects::encode_array(&mut self.buf, parts.into_iter(), 4);
            self.finish();
        }
    }
}

impl<W: std::io::Write> super::rebuild::Sink for BaseRecords<W> {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn command_done(&mut self) {
        if self.buf.len() - self.start - record::HEADER_LEN >= self.split {
            self.finish();
            self.begin(self.db);
        }
    }

    fn piece(&self) -> Option<usize> {
        Some(self.split)
    }
}

/// `write_base` with records cut after `split` payload bytes.
fn write_base_split(dir: &Path, ks: &Keyspace, lsn: u64, split: usize) -> Result<(String, u64), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {}", dir.display(), e))?;
    let name = super::base_name(lsn);
    let tmp = dir.join(format!("{}.tmp", name));
    let ctx = |e: String| format!("writing {}: {}", tmp.display(), e);
    let f = std::fs::File::create(&tmp).map_err(|e| ctx(e.to_string()))?;
    let file = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut out = BaseRecords::new(file, lsn, split);
    for (db, d) in ks.dbs.iter().enumerate() {
        for e in d.dict.iter() {
            out.key(db as u8, e.key(), &e.value, e.expire());
            if let Some(err) = out.error.take() {
                return Err(ctx(err));
            }
        }
    }
    out.extras(ks);
    out.flush();
    if let Some(err) = out.error.take() {
        return Err(ctx(err));
    }
    let f = out.file.into_inner().map_err(|e| ctx(e.into_error().to_string()))?;
    f.sync_all().map_err(|e| ctx(e.to_string()))?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(|e| format!("renaming {}: {}", tmp.display(), e))?;
    super::fsync_dir(dir).map_err(|e| format!("fsync {}: {}", dir.display(), e))?;
    Ok((name, out.size))
}

/// After `CONFIG SET appendonly yes` committed a shard's new base
/// (`entry`, as the manifest names it): every segment and other base in
/// its directory is older.
pub fn clean_shard_after_switch(dir: &Path, entry: &ShardEntry) {
    for (_, path) in load::list_segments(dir).unwrap_or_default() {
        remove_logged(&path);
    }
    clean_bases(dir, entry);
}

fn remove_logged(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        crate::log(&format!("could not remove {}: {}", p.display(), e));
    }
}

/// Remove base images other than the manifest's, and temporary files.
fn clean_bases(dir: &Path, entry: &ShardEntry) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let stale_base = name.starts_with("base-") && name != entry.base;
        if stale_base || name.ends_with(".tmp") {
            remove_logged(&ent.path());
        }
    }
}

/// After the manifest switched to `m`: remove what it no longer needs —
/// other base images, segments whose records are all in the base, the
/// directories of shards beyond its count, temporary files.
fn clean_up(root: &Path, m: &Manifest, old_shards: usize) {
    for (s, entry) in m.shard.iter().enumerate() {
        let dir = super::shard_dir(root, s);
        clean_bases(&dir, entry);
        let segs = load::list_segments(&dir).unwrap_or_default();
        // A segment ends where the next begins; the newest always stays.
        // Segments a replica still needs stay within the backlog size.
        let sizes: Vec<(u64, u64)> =
            segs.iter().map(|(first, p)| (*first, std::fs::metadata(p).map_or(0, |m| m.len()))).collect();
        let (floor, backlog) = status().map_or((u64::MAX, 0), |st| {
            (st.retain_floor.get(s).map_or(u64::MAX, |f| f.load(Ordering::Acquire)), st.backlog.load(Ordering::Relaxed))
        });
        for i in super::logread::removable(&sizes, entry.base_lsn, floor, backlog) {
            remove_logged(&segs[i].1);
        }
    }
    for s in m.shards..old_shards {
        let dir = super::shard_dir(root, s);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            crate::log(&format!("could not remove {}: {}", dir.display(), e));
        }
    }
}

/// Compact every shard up to `upto[s]`. Blocks until done (run it on its
/// own thread). Returns the total size of the new bases.
pub fn rewrite_all(root: &Path, status: &Status, upto: &[u64]) -> Result<u64, String> {
    // Only durable records may go into a base.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for (s, &u) in upto.iter().enumerate() {
        while status.durable[s].load(Ordering::Acquire) < u {
            if std::time::Instant::now() > deadline {
                return Err(format!("shard {} did not make lsn {} durable within 30s", s, u));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let t0 = std::time::Instant::now();
    let (old, snaps) = load::snapshot(root, upto, &status.copy_bytes)?;
    let copy: u64 = status.copy_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
    status.copy_peak.fetch_max(copy, Ordering::Relaxed);
    let mut entries = Vec::new();
    let mut total = 0;
    for (s, (ks, lsn)) in snaps.iter().enumerate() {
        let (name, size) = write_base(&super::shard_dir(root, s), ks, *lsn)?;
        entries.push(ShardEntry { base_lsn: *lsn, base: name });
        total += size;
    }
    drop(snaps);
    commit(root, entries, old.shards)?;
    crate::log(&format!("AOF rewrite done: {} MB of bases in {:.2}s", total / (1 << 20), t0.elapsed().as_secs_f64()));
    Ok(total)
}

/// The commit point of a rewrite: the manifest names the new bases
/// (`entries`, one per shard); then what it no longer needs goes.
pub(super) fn commit(root: &Path, entries: Vec<ShardEntry>, old_shards: usize) -> Result<(), String> {
    // Only the bases change: replication may have changed the rest since.
    let install = std::time::Instant::now();
    if super::failpoint("slow-aof-rename") {
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    let m = Manifest::update(root, |m| m.shard = entries)?;
    // Redis's `aof-rename` (its new base taking the AOF's place).
    crate::shard::latmon::note_background("aof-rename", install.elapsed());
    clean_up(root, &m, old_shards);
    Ok(())
}

/// Start-up with a different shard count than the data was written with:
/// route every key to its new shard and write a base for each.
pub fn reshard(root: &Path, old: &Manifest, loaded: Vec<Loaded>, nshards: usize) -> Result<Vec<Loaded>, String> {
    let t0 = std::time::Instant::now();
    // New bases take an lsn above every old record, so nothing old is
    // replayed on top of them; the manifest switch makes them current.
    let g = loaded.iter().map(|l| l.next_lsn).max().unwrap_or(1);
    let max_txid = loaded.iter().map(|l| l.max_txid).max().unwrap_or(0);
    let mut out: Vec<Keyspace> = (0..nshards).map(|_| Keyspace::new()).collect();
    let slots = crate::shard::router::SlotMap::contiguous(nshards);
    let mut keys = 0usize;
    // Every shard held the same libraries; each new one gets them.
    if let Some(first) = loaded.first() {
        for ks in out.iter_mut() {
            ks.functions = first.ks.functions.clone();
        }
    }
    for l in loaded {
        for (db, d) in l.ks.dbs.iter().enumerate() {
            for e in d.dict.iter() {
                let s = slots.shard_of(e.key());
                out[s].set(db, e.key(), e.value.deep_clone(), e.expire());
                keys += 1;
            }
        }
    }
    let mut m = Manifest::new(nshards);
    // The node stays the node (replid, epoch); its old history's offsets
    // (replid2) are per old shard and no longer apply.
    m.replid = old.replid.clone();
    m.epoch = old.epoch;
    for (s, ks) in out.iter_mut().enumerate() {
        ks.dirty = 0;
        let (name, _) = write_base(&super::shard_dir(root, s), ks, g)?;
        m.shard[s] = ShardEntry { base_lsn: g, base: name };
    }
    m.write(root)?;
    clean_up(root, &m, old.shards);
    for s in 0..nshards {
        // Segments of the old layout are all below the new base.
        let dir = super::shard_dir(root, s);
        for (_, path) in load::list_segments(&dir).unwrap_or_default() {
            let _ = std::fs::remove_file(path);
        }
    }
    crate::log(&format!(
        "re-sharded {} keys from {} to {} shard(s) in {:.2}s",
        keys,
        old.shards,
        nshards,
        t0.elapsed().as_secs_f64()
    ));
    Ok(out.into_iter().map(|ks| Loaded { ks, next_lsn: g + 1, max_txid }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::effects::encode_array;
    use crate::keyspace::Value;

    /// What a key holds, comparable across keyspaces built differently.
    fn canon(ks: &Keyspace, key: &[u8]) -> (String, Vec<Vec<u8>>, i64) {
        let e = ks.peek(0, key, 0).expect("key present");
        let mut items: Vec<Vec<u8>> = Vec::new();
        let mut sb = [0u8; 24];
        let kind = match &e.value {
            v if v.str_bytes(&mut sb).is_some() => {
                items.push(v.str_bytes(&mut sb).unwrap_or_default().to_vec());
                "string"
            }
            Value::List(l) => {
                l.for_each(|x| items.push(x.to_vec()));
                "list"
            }
            Value::Hash(h) => {
                h.for_each(|f, v| items.push([f, b"=", v].concat()));
                items.sort();
                "hash"
            }
            Value::Set(st) => {
                st.for_each(|x| items.push(x.to_vec()));
                items.sort();
                "set"
            }
            Value::ZSet(z) => {
                z.for_each(|m, score| items.push([m, score.to_string().as_bytes()].concat()));
                "zset"
            }
            _ => "other",
        };
        (kind.to_string(), items, e.expire())
    }

    /// A base image cuts a key's commands into records of about `split`
    /// bytes (a big string into SET + APPENDs), and they replay to the
    /// same value. With the real `RECORD_SPLIT`, a collection past 2 GiB
    /// is loadable; here the bound is lowered to keep the test small.
    #[test]
    fn big_values_are_split_over_records_that_replay_to_them() {
        let mut log = Vec::new();
        let mut cmd = |parts: &[&[u8]]| {
            record::append(&mut log, 1, 0, 0, 0, |b| encode_array(b, parts.iter().copied(), parts.len()))
        };
        let big: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        cmd(&[b"SET", b"str", &big]);
        cmd(&[b"SET", b"small", b"v"]);
        for i in 0..3000 {
            let (f, v, id) = (format!("f{i}"), format!("v{i}"), format!("{}-1", i + 1));
            cmd(&[b"HSET", b"hash", f.as_bytes(), v.as_bytes()]);
            cmd(&[b"RPUSH", b"list", v.as_bytes()]);
            cmd(&[b"SADD", b"set", f.as_bytes()]);
            cmd(&[b"ZADD", b"zset", i.to_string().as_bytes(), f.as_bytes()]);
            cmd(&[b"XADD", b"stream", id.as_bytes(), f.as_bytes(), v.as_bytes()]);
        }
        cmd(&[b"PEXPIREAT", b"hash", b"99999999999999"]);
        let (orig, _, err) = super::load::replay_buffer(&log);
        assert_eq!(err, None);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/base-split-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let split = 4096;
        let (name, size) = write_base_split(&dir, &orig, 7, split).expect("base written");
        let data = std::fs::read(dir.join(&name)).expect("read base");
        assert_eq!(size, data.len() as u64);
        let (mut pos, mut records) = (0, 0);
        while pos < data.len() {
            let (rec, used) = record::decode(&data[pos..]).expect("a valid record");
            // A record ends after the command that reaches `split`.
            assert!(rec.payload.len() < 2 * split, "a record of {} bytes", rec.payload.len());
            assert_eq!(rec.lsn, 7);
            (pos, records) = (pos + used, records + 1);
        }
        assert!(records > 100, "big values span many records: {records}");
        let (copy, _, err) = super::load::replay_buffer(&data);
        assert_eq!(err, None);
        for key in [&b"str"[..], b"small", b"hash", b"list", b"set", b"zset"] {
            assert_eq!(canon(&copy, key), canon(&orig, key), "{}", String::from_utf8_lossy(key));
        }
        let stream = |ks: &Keyspace| match &ks.peek(0, b"stream", 0).expect("stream").value {
            Value::Stream(st) => st.clone(),
            _ => panic!("not a stream"),
        };
        assert!(stream(&copy).same_as(&stream(&orig)));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn failed_rewrites_are_retried_later_and_later_up_to_an_hour() {
        assert_eq!(retry_delay_ms(0), 0);
        let delays: Vec<i64> = (1..=6).map(retry_delay_ms).collect();
        assert_eq!(delays, vec![5_000, 10_000, 20_000, 40_000, 80_000, 160_000]);
        assert_eq!(retry_delay_ms(12), 3_600_000);
        assert_eq!(retry_delay_ms(u64::MAX), 3_600_000);
    }
}

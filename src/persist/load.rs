//! Recovery at start-up: rebuild every shard's keyspace from its base image
//! and log segments.
//!
//! Two passes, each with one thread per shard:
//! 1. Scan: check every record's CRC and the lsn sequence across segments,
//!    decide what to do with a bad tail, and collect the cross-shard
//!    transaction records (txid, participants).
//! 2. Replay the records with the ordinary command code onto a fresh
//!    keyspace, stopping at the shard's cut.
//!
//! Between them, all-or-nothing for transactions: a txid with fewer records
//! than its participant count was not durable everywhere, so it is dropped
//! on every shard, and with it everything logged after it on those shards
//! (later records may depend on it). That can make other transactions
//! incomplete; repeat until nothing changes. Under `appendfsync always` a
//! participant logs nothing after a transaction until every participant
//! has it durable, so the cut drops only unacknowledged work.

use super::manifest::Manifest;
use super::record::{self, DecodeError};
use crate::cmd::flags::RECORDS_NOW;
use crate::cmd::{self, Args, Ctx, Handler, Rng};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One shard's recovered state.
pub struct Loaded {
    pub ks: Keyspace,
    /// lsn for the shard's next record.
    pub next_lsn: u64,
    /// Highest transaction id in the log: new ones must not repeat it.
    pub max_txid: u64,
}

struct Segment {
    path: PathBuf,
    first_lsn: u64,
    map: Option<Mmap>,
    /// Bytes of valid records.
    valid_len: usize,
}

struct Scanned {
    segments: Vec<Segment>,
    base: Option<Segment>,
    base_lsn: u64,
    last_lsn: u64,
    /// Cross-shard transaction records: (lsn, txid, participants).
    txns: Vec<(u64, u64, u16)>,
    /// The newest segment has a torn tail to cut at `valid_len`.
    torn: Option<(PathBuf, usize, u64)>,
    bytes: u64,
}

fn map_file(path: &Path) -> Result<Option<Mmap>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let len = f.metadata().map_err(|e| format!("{}: {}", path.display(), e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the files are only read here, before any shard writes; a
    // concurrent truncation by another process is outside the contract.
    let m = unsafe { Mmap::map(&f) }.map_err(|e| format!("mmap {}: {}", path.display(), e))?;
    Ok(Some(m))
}

/// The segments of a shard directory, ordered by first lsn.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(format!("{}: {}", dir.display(), e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| format!("{}: {}", dir.display(), e))?;
        let name = ent.file_name();
        if let Some(lsn) = name.to_str().and_then(super::parse_segment_name) {
            v.push((lsn, ent.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// How to fix a bad spot, for error messages.
fn fix_hint(dir: &Path) -> String {
    format!(
        "inspect with `shardis-server check-aof {}`; `check-aof --fix` truncates the log at the first bad record (losing what follows)",
        dir.display()
    )
}

/// Why a shard's files cannot be loaded; `bad` is the file and offset of
/// the first bad record, when there is one (what `check-aof --fix` cuts).
#[derive(Debug)]
pub struct ScanError {
    pub msg: String,
    pub bad: Option<(PathBuf, usize)>,
}

impl From<String> for ScanError {
    fn from(msg: String) -> Self {
        ScanError { msg, bad: None }
    }
}

/// Check a shard's files without loading them: Ok((records after the
/// base, bytes, torn tail if any)).
pub fn verify_shard(
    root: &Path,
    shard: usize,
    m: &Manifest,
) -> Result<(u64, u64, Option<(PathBuf, usize)>), ScanError> {
    let sc = scan_shard(root, shard, m)?;
    Ok((sc.last_lsn - sc.base_lsn, sc.bytes, sc.torn.map(|(p, at, _)| (p, at))))
}

fn scan_shard(root: &Path, shard: usize, m: &Manifest) -> Result<Scanned, ScanError> {
    let dir = super::shard_dir(root, shard);
    let entry = &m.shard[shard];
    let base_lsn = entry.base_lsn;
    let mut bytes = 0u64;
    let base = if entry.base.is_empty() {
        None
    } else {
        let path = dir.join(&entry.base);
        if !path.exists() {
            return Err(format!("{}: base image named in {} is missing", path.display(), super::manifest::FILE).into());
        }
        let map = map_file(&path)?;
        let data: &[u8] = map.as_deref().unwrap_or(&[]);
        let mut pos = 0;
        while pos < data.len() {
            match record::decode(&data[pos..]) {
                Ok((_, used)) => pos += used,
                Err(e) => {
                    let msg = format!("{}: {} at offset {}; {}", path.display(), e, pos, fix_hint(root));
                    return Err(ScanError { msg, bad: Some((path.clone(), pos)) });
                }
            }
        }
        bytes += data.len() as u64;
        Some(Segment { path, first_lsn: 0, valid_len: data.len(), map })
    };
    let files = list_segments(&dir)?;
    let mut segments = Vec::new();
    let mut txns = Vec::new();
    let mut last_lsn = base_lsn;
    let mut torn = None;
    let nfiles = files.len();
    for (i, (first_lsn, path)) in files.into_iter().enumerate() {
        let newest = i + 1 == nfiles;
        let map = map_file(&path)?;
        let data: &[u8] = map.as_deref().unwrap_or(&[]);
        bytes += data.len() as u64;
        // Segments wholly below the base are leftovers of a compaction.
        let mut pos = 0;
        let mut expect = first_lsn;
        if first_lsn > last_lsn + 1 {
            return Err(ScanError::from(format!(
                "{}: log starts at lsn {} but the previous data ends at lsn {}: a segment is missing (restore it; \
                 otherwise move this and later segments away to start from what precedes the gap)",
                path.display(),
                first_lsn,
                last_lsn,
            )));
        }
        loop {
            match record::next(data, pos) {
                Ok(None) => break,
                Ok(Some((rec, at, next))) => {
                    if rec.lsn > expect && newest && in_torn_window(data, pos) {
                        // A later write landed, an earlier one did not:
                        // possible only with concurrent writes.
                        if rec.flags & record::FLAG_SERIAL != 0 {
                            return Err(hole_is_damage(&path, pos, "missing records", expect, (&rec, at), root));
                        }
                        torn = Some((path.clone(), pos, (data.len() - pos) as u64));
                        break;
                    }
                    if rec.lsn != expect {
                        let msg = format!(
                            "{}: record at offset {} has lsn {}, expected {}; {}",
                            path.display(),
                            at,
                            rec.lsn,
                            expect,
                            fix_hint(root)
                        );
                        return Err(ScanError { msg, bad: Some((path.clone(), at)) });
                    }
                    if rec.lsn > last_lsn {
                        if rec.txid != 0 {
                            txns.push((rec.lsn, rec.txid, rec.participants));
                        }
                        last_lsn = rec.lsn;
                    }
                    expect += 1;
                    pos = next;
                }
                Err((at, e)) => {
                    // A write cut short by a crash can only be at the very
                    // end of the newest segment: its record runs to the end
                    // of the file, or only zeros (never written) follow
                    // what it claims. Anything else is damage.
                    let rest = &data[at..];
                    let claimed = if rest.len() >= 4 {
                        u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize + record::HEADER_LEN
                    } else {
                        usize::MAX
                    };
                    let at_tail = e == DecodeError::Truncated
                        || (matches!(e, DecodeError::BadCrc | DecodeError::BadLength)
                            && (claimed >= rest.len() || rest[claimed..].iter().all(|&b| b == 0)));
                    if newest && (at_tail || in_torn_window(data, pos)) {
                        // Unless something written after it is intact.
                        if let Some((later, later_at, _)) = record::next_intact(data, at, expect) {
                            if later.flags & record::FLAG_SERIAL != 0 {
                                let what = e.to_string();
                                return Err(hole_is_damage(&path, pos, &what, expect, (&later, later_at), root));
                            }
                        }
                        torn = Some((path.clone(), pos, (data.len() - pos) as u64));
                        break;
                    }
                    let msg = format!(
                        "{}: {} at offset {} (lsn {} expected there){}; start-up stopped, files left as they are; {}",
                        path.display(),
                        e,
                        at,
                        expect,
                        if newest { "" } else { " in a segment that is not the newest" },
                        fix_hint(root)
                    );
                    return Err(ScanError { msg, bad: Some((path.clone(), at)) });
                }
            }
        }
        segments.push(Segment { path, first_lsn, valid_len: pos, map });
    }
    Ok(Scanned { segments, base, base_lsn, last_lsn, txns, torn, bytes })
}

/// A hole (`what`, from offset `pos`, where lsn `expect` belongs) with an
/// intact record after it that was written serially: that record's write
/// began after every earlier one had completed, so a crash of the process
/// cannot have left the hole (a power loss under everysec/no can, in
/// its unsynced last second: still not a tail to cut silently). The fix
/// cuts at the hole.
fn hole_is_damage(
    path: &Path,
    pos: usize,
    what: &str,
    expect: u64,
    (later, later_at): (&record::Record, usize),
    root: &Path,
) -> ScanError {
    let msg = format!(
        "{}: {} at offset {} (lsn {} expected there), yet the record written after it (lsn {} at offset {}) is \
         intact; it was written one write at a time (appendfsync everysec/no), so this is damage, not an \
         interrupted write; start-up stopped, files left as they are; {}",
        path.display(),
        what,
        pos,
        expect,
        later.lsn,
        later_at,
        fix_hint(root)
    );
    ScanError { msg, bad: Some((path.to_path_buf(), pos)) }
}

/// Whether everything past `pos` (the end of the last record in order)
/// could be what writes in flight at a crash left behind: all of it within
/// `record::TORN_WINDOW` (the writer never has more in flight at once).
fn in_torn_window(data: &[u8], pos: usize) -> bool {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    end.saturating_sub(pos) <= record::TORN_WINDOW
}

/// Per shard, the first lsn that must not be replayed (u64::MAX = all),
/// so that every cross-shard transaction is applied everywhere or nowhere.
pub fn compute_cuts(txns: &[Vec<(u64, u64, u16)>]) -> Vec<u64> {
    let n = txns.len();
    let mut cuts = vec![u64::MAX; n];
    loop {
        // Records of each txid that survive the current cuts.
        let mut seen: HashMap<u64, (u16, u16)> = HashMap::new();
        for (s, list) in txns.iter().enumerate() {
            for &(lsn, txid, parts) in list {
                if lsn < cuts[s] {
                    let e = seen.entry(txid).or_insert((0, parts));
                    e.0 += 1;
                }
            }
        }
        let mut changed = false;
        for (s, list) in txns.iter().enumerate() {
            for &(lsn, txid, _) in list {
                if lsn >= cuts[s] {
                    continue;
                }
                if let Some(&(have, want)) = seen.get(&txid) {
                    if have < want {
                        cuts[s] = lsn;
                        changed = true;
                        break;
                    }
                }
            }
        }
        if !changed {
            return cuts;
        }
    }
}

/// Not a command but a record of a replica's position, logged in the same
/// AOF record as what it applied (`shard::replica`):
/// `REPLPOS <master shard> <lsn> <replid>`.
pub const REPLPOS: &[u8] = b"REPLPOS";

use crate::repl::route::OwnedChange;

/// A REPLPOS entry: master shard, (replid, lsn).
pub fn parse_replpos(args: &Args) -> Option<(u16, (Box<str>, u64))> {
    if args.len() != 4 {
        return None;
    }
    let num = |i: usize| std::str::from_utf8(args.get(i)).ok().and_then(|s| s.parse::<u64>().ok());
    let m = u16::try_from(num(1)?).ok()?;
    let replid: Box<str> = std::str::from_utf8(args.get(3)).ok()?.into();
    Some((m, (replid, num(2)?)))
}

/// Replay state: the db commands run in, scratch buffers, error count.
pub struct Replayer {
    pub db: usize,
    ranges: Vec<std::ops::Range<usize>>,
    out: Vec<u8>,
    rng: Rng,
    pub failed: u64,
    pub commands: u64,
    /// A command that can create stream consumers ran (they then need
    /// their seen time set, see `consumers_seen_at_load`).
    pub made_consumers: bool,
    /// Rebuilding one value (a RESTORE payload): only the commands that
    /// build values run (`rebuild::builds_value`); anything else counts as
    /// failed. A payload could otherwise carry a RESTORE of another
    /// payload, nested until the shard's stack overflows.
    pub values_only: bool,
    /// How the commands arrived: `Admitted` for a load, `Replica` for a
    /// replica applying its master's stream.
    pub road: crate::cmd::admission::Road,
}

impl Default for Replayer {
    fn default() -> Self {
        Replayer {
            db: 0,
            ranges: Vec::new(),
            out: Vec::new(),
            rng: Rng::new(1),
            failed: 0,
            commands: 0,
            made_consumers: false,
            values_only: false,
            road: crate::cmd::admission::Road::Admitted,
        }
    }
}

impl Replayer {
    /// A replayer for commands arriving by `road`.
    pub fn on_road(road: crate::cmd::admission::Road) -> Replayer {
        Replayer { road, ..Default::default() }
    }

    /// Apply one record's commands to `ks`.
    pub fn apply(&mut self, ks: &mut Keyspace, rec: &record::Record) -> Result<(), String> {
        // The checksum vouches for the bytes, not for what a (crafted or
        // buggy) record says: a db past the last one is damage, not a panic.
        if rec.db as usize >= ks.dbs.len() {
            return Err(format!("lsn {}: db {} does not exist (there are {})", rec.lsn, rec.db, ks.dbs.len()));
        }
        self.apply_payload(ks, rec.db as usize, rec.payload)
            .map_err(|pos| format!("lsn {}: malformed command at payload offset {}", rec.lsn, pos))
    }

    /// Apply RESP commands starting in `db`; Err(offset) of a malformed one.
    pub fn apply_payload(&mut self, ks: &mut Keyspace, db: usize, payload: &[u8]) -> Result<(), usize> {
        self.db = db;
        let mut pos = 0;
        while pos < payload.len() {
            let used = record::parse_command_ranges(&payload[pos..], &mut self.ranges).ok_or(pos)?;
            let buf = &payload[pos..pos + used];
            pos += used;
            if self.ranges.is_empty() {
                continue;
            }
            let ranges = std::mem::take(&mut self.ranges);
            self.apply_command(ks, &Args::new(buf, &ranges));
            self.ranges = ranges;
            // Nobody waits on a load: a resize done at once is cheaper
            // than one spread over the following inserts (a replica's
            // clients do wait: its cron rehashes bit by bit).
            if let Some(d) = ks.dbs.get_mut(self.db).filter(|_| self.road == crate::cmd::admission::Road::Admitted) {
                if d.dict.rehashing() {
                    d.dict.rehash_for(usize::MAX);
                }
            }
        }
        Ok(())
    }

    fn apply_command(&mut self, ks: &mut Keyspace, args: &Args) {
        self.commands += 1;
        let name = args.get(0);
        if self.values_only && !super::rebuild::builds_value(name) {
            self.failed += 1;
            return;
        }
        if name.eq_ignore_ascii_case(REPLPOS) {
            // A replica's own position: loaded from its own AOF; in a
            // stream from a master (that was once a replica) it is that
            // master's business, not this replica's.
            match parse_replpos(args) {
                Some((m, pos)) if self.road == cmd::admission::Road::Admitted => {
                    ks.repl_pos.insert(m, pos);
                }
                Some(_) => {}
                None => self.failed += 1,
            }
            return;
        }
        if let Some(change) = crate::repl::route::parse_owned_change(args, ks.dbs.len()) {
            // A replica's part of one master shard's FLUSHDB/FLUSHALL/SWAPDB
            // (`repl::route`), from its master's stream or its own AOF.
            let Ok((map, m, change)) = change else {
                self.failed += 1;
                return;
            };
            let owned = |k: &[u8]| map.shard_of(k) == m;
            match change {
                OwnedChange::Flush { db: Some(db) } => {
                    ks.flush_db_where(db, owned);
                }
                OwnedChange::Flush { db: None } => {
                    for db in 0..ks.dbs.len() {
                        ks.flush_db_where(db, owned);
                    }
                }
                OwnedChange::Swap { a, b } => ks.swap_db_where(a, b, owned),
            }
            if ks.effects.enabled {
                ks.effects.push_iter(self.db, args.len(), args.iter());
            }
            return;
        }
        let Some((id, def)) = cmd::find(args).filter(|(_, d)| cmd::arity_ok(d, args.len())) else {
            self.failed += 1;
            return;
        };
        // Consumers created here were last seen at clock 0 (fixed up after
        // the load, see `consumers_seen_at_load`).
        self.made_consumers |= def.has(RECORDS_NOW);
        self.out.clear();
        // now = 0: nothing expires during replay (expiries were logged as
        // DELs when they happened, and relative times as absolute ones).
        let mut ctx = Ctx::new(ks, self.db, 0, Reply::new(&mut self.out, false), &mut self.rng);
        let ran = match def.handler {
            // Each shard logged a keyspace-wide command for itself: apply
            // this shard's part.
            Handler::EveryShard { here, .. } => {
                here(&mut ctx, args);
                // A live shard logs these itself (`log_global`); on a
                // replica's road they go to its AOF from here.
                if ctx.ks.effects.enabled {
                    ctx.ks.effects.push_iter(ctx.db, args.len(), args.iter());
                }
                true
            }
            // Keyspace commands, and SELECT, which moves the replay to
            // another db. Logged commands were admitted when they first ran.
            Handler::Keyspace(_) | Handler::Session(_) => {
                let unchecked = &mut cmd::admission::Unchecked;
                let _ = cmd::call::call(&mut ctx, self.road, unchecked, &mut (), (id, def), args);
                true
            }
            // Nothing else is ever logged.
            Handler::Help(_) | Handler::Server(_) | Handler::Container => false,
        };
        self.db = ctx.db;
        if !ran {
            self.failed += 1;
        }
        if self.out.first() == Some(&b'-') {
            self.failed += 1;
        }
    }
}

/// Stream consumers created by the replay (its clock reads 0) were last
/// seen now, as far as anyone can tell: as Redis, whose AOF load recreates
/// them at load time.
fn consumers_seen_at_load(ks: &mut Keyspace) {
    let now = crate::util::now_ms();
    for d in ks.dbs.iter_mut() {
        let keys: Vec<Box<[u8]>> = d
            .dict
            .iter()
            .filter(|e| matches!(e.value, crate::keyspace::value::Value::Stream(_)))
            .map(|e| Box::<[u8]>::from(e.key()))
            .collect();
        for k in keys {
            let Some(st) = d.dict.get_mut(&k).and_then(|e| e.value.as_stream_mut()) else { continue };
            for c in st.groups.values_mut().flat_map(|g| g.consumers.values_mut()) {
                if c.seen_time == 0 {
                    c.seen_time = now;
                }
            }
        }
    }
}

/// Replay a buffer of records onto a fresh keyspace, stopping at the first
/// bad one: the loader's core without files (fuzz target, tests).
pub fn replay_buffer(data: &[u8]) -> (Keyspace, u64, Option<(usize, String)>) {
    let mut ks = Keyspace::new();
    let mut rp = Replayer::default();
    let mut pos = 0;
    let mut records = 0;
    while pos < data.len() {
        match record::decode(&data[pos..]) {
            Ok((rec, used)) => {
                if let Err(e) = rp.apply(&mut ks, &rec) {
                    return (ks, records, Some((pos, e)));
                }
                records += 1;
                pos += used;
            }
            Err(e) => return (ks, records, Some((pos, e.to_string()))),
        }
    }
    (ks, records, None)
}

/// Replay one shard up to `cut`; `mem`, if given, follows the size of the
/// keyspace being built (a rewrite's copy counts as memory in use).
fn replay_shard(shard: usize, sc: &Scanned, cut: u64, label: &str, mem: Option<&AtomicU64>) -> Result<Loaded, String> {
    let total_bytes = sc.bytes;
    let mut ks = Keyspace::new();
    let mut rp = Replayer::default();
    let start = std::time::Instant::now();
    let mut last_report = start;
    let mut done_bytes = 0u64;
    let mut records = 0u64;
    let mut last_lsn = sc.base_lsn;
    let mut report = |done: u64, records: u64, force: bool| {
        let now = std::time::Instant::now();
        if force || now.duration_since(last_report).as_secs_f64() >= 1.0 {
            last_report = now;
            let secs = now.duration_since(start).as_secs_f64().max(1e-6);
            crate::log(&format!(
                "shard {}: {} {} of {} MB ({:.0}%), {:.0} records/s",
                shard,
                label,
                done / (1 << 20),
                total_bytes / (1 << 20),
                if total_bytes > 0 { done as f64 * 100.0 / total_bytes as f64 } else { 100.0 },
                records as f64 / secs
            ));
        }
    };
    let sources = sc.base.iter().map(|b| (b, true)).chain(sc.segments.iter().map(|s| (s, false)));
    'files: for (seg, is_base) in sources {
        let data: &[u8] = seg.map.as_deref().unwrap_or(&[]);
        let data = &data[..seg.valid_len];
        let mut pos = 0;
        while let Some((rec, _, next)) = record::next(data, pos)
            .map_err(|(at, e)| format!("{}: {} at offset {} on second read", seg.path.display(), e, at))?
        {
            pos = next;
            if !is_base {
                if rec.lsn <= sc.base_lsn {
                    continue;
                }
                if rec.lsn >= cut {
                    break 'files;
                }
                last_lsn = rec.lsn;
            }
            rp.apply(&mut ks, &rec).map_err(|e| format!("{}: {}", seg.path.display(), e))?;
            records += 1;
            if records.is_multiple_of(65536) {
                report(done_bytes + pos as u64, records, false);
            }
            if let Some(m) = mem.filter(|_| records.is_multiple_of(1024)) {
                m.store(ks.used as u64, Ordering::Relaxed);
            }
        }
        done_bytes += data.len() as u64;
    }
    // A last line for loads long enough to have reported progress.
    if start.elapsed().as_secs() >= 1 {
        report(done_bytes, records, true);
    }
    if rp.failed > 0 {
        crate::log(&format!("shard {}: {} logged commands failed on replay (ignored)", shard, rp.failed));
    }
    let max_txid = sc.txns.iter().map(|t| t.1).max().unwrap_or(0);
    if rp.made_consumers {
        consumers_seen_at_load(&mut ks);
    }
    if let Some(m) = mem {
        m.store(ks.used as u64, Ordering::Relaxed);
    }
    Ok(Loaded { ks, next_lsn: last_lsn + 1, max_txid })
}

/// Load `dir` for `nshards` shards, creating a fresh layout if it is empty.
/// Scan every shard of `m` and replay each up to its cut. `upto` (per
/// shard) ignores records past it, as if the log ended there: the rewrite
/// uses it to fold only durable records into new bases. `label` names the
/// activity in progress lines; `mem` (per shard) follows the keyspaces'
/// sizes as they are built.
fn load_all(
    root: &Path,
    m: &Manifest,
    upto: Option<&[u64]>,
    label: &str,
    mem: Option<&[AtomicU64]>,
) -> Result<(Vec<Scanned>, Vec<u64>, Vec<Loaded>), String> {
    let scanned: Vec<Result<Scanned, ScanError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..m.shards).map(|i| s.spawn(move || scan_shard(root, i, m))).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(ScanError::from("scan thread panicked".to_string()))))
            .collect()
    });
    let scanned: Vec<Scanned> = scanned.into_iter().collect::<Result<_, _>>().map_err(|e| e.msg)?;
    let limit = |i: usize| upto.map_or(u64::MAX, |u| u[i]);
    let txns: Vec<Vec<(u64, u64, u16)>> = scanned
        .iter()
        .enumerate()
        .map(|(i, sc)| sc.txns.iter().copied().filter(|t| t.0 <= limit(i)).collect())
        .collect();
    let mut cuts = compute_cuts(&txns);
    for (i, sc) in scanned.iter().enumerate() {
        if cuts[i] != u64::MAX && upto.is_none() {
            crate::log(&format!(
                "shard {}: dropping records from lsn {} to {}: a cross-shard transaction there is not on every participant",
                i, cuts[i], sc.last_lsn
            ));
        }
        cuts[i] = cuts[i].min(limit(i).saturating_add(1));
    }
    let loaded: Vec<Result<Loaded, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = scanned
            .iter()
            .enumerate()
            .map(|(i, sc)| {
                let cut = cuts[i];
                let mem = mem.and_then(|m| m.get(i));
                s.spawn(move || replay_shard(i, sc, cut, label, mem))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("replay thread panicked".into()))).collect()
    });
    let loaded: Vec<Loaded> = loaded.into_iter().collect::<Result<_, _>>()?;
    Ok((scanned, cuts, loaded))
}

/// The keyspaces of `root` as of at most `upto[s]` per shard (durable
/// records only), closed under cross-shard transactions: for the rewrite.
/// Returns each shard's keyspace and the lsn it reflects; `mem[s]` follows
/// the size of shard s's copy while it is built.
pub fn snapshot(root: &Path, upto: &[u64], mem: &[AtomicU64]) -> Result<(Manifest, Vec<(Keyspace, u64)>), String> {
    let m = Manifest::read(root)?.ok_or_else(|| format!("{}: no manifest", root.display()))?;
    if m.shards != upto.len() {
        return Err(format!("manifest has {} shards, expected {}", m.shards, upto.len()));
    }
    let (_, _, loaded) = load_all(root, &m, Some(upto), "rewriting", Some(mem))?;
    Ok((m, loaded.into_iter().map(|l| (l.ks, l.next_lsn - 1)).collect()))
}

/// Load `dir` for `nshards` shards, creating a fresh layout if it is empty.
/// Data written with another shard count is re-routed by key and written
/// back as new bases for `nshards` shards.
pub fn recover(root: &Path, nshards: usize) -> Result<Vec<Loaded>, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("creating {}: {}", root.display(), e))?;
    let m = match Manifest::read(root)? {
        Some(m) => m,
        None => {
            let stray = (0..nshards.max(64)).any(|s| super::shard_dir(root, s).exists());
            if stray {
                return Err(format!(
                    "{}: shard directories but no {}; restore the manifest or move the directory away",
                    root.display(),
                    super::manifest::FILE
                ));
            }
            let m = Manifest::new(nshards);
            for s in 0..nshards {
                let d = super::shard_dir(root, s);
                std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {}", d.display(), e))?;
            }
            m.write(root)?;
            crate::log(&format!("created an empty data directory in {} for {} shard(s)", root.display(), nshards));
            return Ok((0..nshards).map(|_| Loaded { ks: Keyspace::new(), next_lsn: 1, max_txid: 0 }).collect());
        }
    };
    let t0 = std::time::Instant::now();
    let (scanned, cuts, loaded) = load_all(root, &m, None, "loading", None)?;
    // Only now change files: cut torn tails and records past the cuts.
    for (i, sc) in scanned.iter().enumerate() {
        if let Some((path, at, len)) = &sc.torn {
            let aside = set_aside(path, *at as u64, "torn")?;
            crate::log(&format!(
                "shard {}: {}: truncating a torn record at offset {} ({} bytes, an interrupted write); the cut \
                 bytes are kept in {}",
                i,
                path.display(),
                at,
                len,
                aside.display()
            ));
            truncate(path, *at as u64)?;
        }
        if cuts[i] != u64::MAX {
            cut_log(i, sc, cuts[i])?;
        }
    }
    let keys: usize = loaded.iter().map(|l| l.ks.dbs.iter().map(|d| d.dict.len()).sum::<usize>()).sum();
    let bytes: u64 = scanned.iter().map(|s| s.bytes).sum();
    if bytes > 0 {
        crate::log(&format!(
            "loaded {} keys from {} MB of AOF in {:.2}s",
            keys,
            bytes / (1 << 20),
            t0.elapsed().as_secs_f64()
        ));
    }
    drop(scanned);
    if m.shards != nshards {
        return super::rewrite::reshard(root, &m, loaded, nshards);
    }
    Ok(loaded)
}

/// Cut a file to `len` bytes and sync it.
pub fn truncate(path: &Path, len: u64) -> Result<(), String> {
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    f.set_len(len).map_err(|e| format!("truncating {}: {}", path.display(), e))?;
    f.sync_all().map_err(|e| format!("fsync {}: {}", path.display(), e))
}

/// Remove records with lsn >= cut from a shard's log, so the next start
/// (which logs new records after them) does not see them again. What is
/// removed is kept aside (`set_aside`), named in the log.
fn cut_log(shard: usize, sc: &Scanned, cut: u64) -> Result<(), String> {
    for seg in &sc.segments {
        let data: &[u8] = seg.map.as_deref().unwrap_or(&[]);
        let mut pos = 0;
        while let Ok(Some((rec, at, next))) = record::next(&data[..seg.valid_len], pos) {
            if rec.lsn >= cut {
                let at = if seg.first_lsn >= cut { 0 } else { at as u64 };
                let aside = set_aside(&seg.path, at, "cut")?;
                crate::log(&format!(
                    "shard {}: {}: cut at offset {} (records from lsn {}); the cut bytes are kept in {}",
                    shard,
                    seg.path.display(),
                    at,
                    rec.lsn,
                    aside.display()
                ));
                if at == 0 {
                    std::fs::remove_file(&seg.path).map_err(|e| format!("removing {}: {}", seg.path.display(), e))?;
                } else {
                    truncate(&seg.path, at)?;
                }
                break;
            }
            pos = next;
        }
    }
    Ok(())
}

/// Copy the bytes of `path` from offset `at` on (to its last non-zero
/// byte: zeros after it are space prepared ahead) into a new file next to
/// it, `<segment>.<tag>-<at>` (`torn`: an interrupted write; `cut`:
/// records of an incomplete transaction and what followed them), synced
/// with its name before the caller cuts
/// them: recovery never destroys bytes it could not read; an operator can
/// inspect them (or append them back and run check-aof). Not a segment
/// name, so loading and compaction leave it alone.
pub fn set_aside(path: &Path, at: u64, tag: &str) -> Result<PathBuf, String> {
    use std::io::{Read, Seek, Write};
    let ctx = |e: std::io::Error| format!("keeping the cut bytes of {}: {}", path.display(), e);
    let mut f = std::fs::File::open(path).map_err(ctx)?;
    f.seek(std::io::SeekFrom::Start(at)).map_err(ctx)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(ctx)?;
    bytes.truncate(bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut dest = path.with_file_name(format!("{}.{}-{}", name, tag, at));
    for n in 2.. {
        if !dest.exists() {
            break;
        }
        dest = path.with_file_name(format!("{}.{}-{}.{}", name, tag, at, n));
    }
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(&dest).map_err(ctx)?;
    out.write_all(&bytes).map_err(ctx)?;
    out.sync_all().map_err(ctx)?;
    if let Some(dir) = path.parent() {
        super::fsync_dir(dir).map_err(ctx)?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::compute_cuts;

    #[test]
    fn replay_applies_commands_dbs_and_keyspace_wide_ones() {
        use crate::keyspace::effects::encode_array;
        use crate::persist::record::append;
        let mut buf = Vec::new();
        let cmds: &[(u8, &[&str])] = &[
            (0, &["SET", "a", "1"]),
            (0, &["INCRBY", "a", "41"]),
            (2, &["SET", "b", "x"]),
            (3, &["SET", "gone", "x"]),
            (3, &["FLUSHDB"]),
            (0, &["SWAPDB", "2", "4"]),
            (0, &["PEXPIREAT", "a", "1"]),
        ];
        for (lsn, (db, parts)) in cmds.iter().enumerate() {
            append(&mut buf, lsn as u64 + 1, 0, 0, *db, |out| {
                encode_array(out, parts.iter().map(|p| p.as_bytes()), parts.len())
            });
        }
        let (mut ks, n, err) = super::replay_buffer(&buf);
        assert_eq!((n, err), (cmds.len() as u64, None));
        // Replay expires nothing itself: `a` keeps its (past) expiry.
        assert_eq!(ks.peek(0, b"a", 0).map(|e| e.expire()), Some(1));
        assert!(ks.lookup(4, b"b", 0).is_some() && ks.lookup(2, b"b", 0).is_none());
        assert_eq!(ks.dbs[3].dict.len(), 0);
        // A cut record stops the replay with its offset.
        let (_, n, err) = super::replay_buffer(&buf[..buf.len() - 3]);
        assert_eq!(n, cmds.len() as u64 - 1);
        assert!(err.is_some());
    }

    #[test]
    fn replica_positions_load_from_the_log_but_not_from_a_stream() {
        let mut buf = Vec::new();
        crate::persist::record::append(&mut buf, 1, 0, 0, 0, |out| {
            crate::keyspace::effects::encode_array(out, [&b"SET"[..], b"k", b"v"].into_iter(), 3);
            crate::keyspace::effects::encode_array(out, [&b"REPLPOS"[..], b"2", b"41", b"abc"].into_iter(), 4);
            crate::keyspace::effects::encode_array(out, [&b"REPLPOS"[..], b"x"].into_iter(), 2);
        });
        let (ks, n, err) = super::replay_buffer(&buf);
        assert_eq!((n, err), (1, None));
        assert_eq!(ks.repl_pos.get(&2).map(|(r, l)| (&**r, *l)), Some(("abc", 41)));
        let (rec, _) = crate::persist::record::decode(&buf).expect("record");
        let mut ks = crate::keyspace::Keyspace::new();
        let mut rp = super::Replayer::on_road(crate::cmd::admission::Road::Replica);
        rp.apply(&mut ks, &rec).expect("applies");
        assert!(ks.repl_pos.is_empty(), "a master's own position is not the replica's");
        assert!(ks.peek(0, b"k", 0).is_some());
        assert_eq!(rp.failed, 1, "a malformed position counts as failed");
    }

    #[test]
    fn replica_flushes_and_swaps_act_on_one_master_shards_keys() {
        let map = crate::shard::router::SlotMap::contiguous(2);
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let ours = |k: &String| map.shard_of(k.as_bytes()) == 1;
        let mut buf = Vec::new();
        fn rec(buf: &mut Vec<u8>, db: u8, cmds: &[Vec<&str>]) {
            let lsn = buf.len() as u64 + 1;
            crate::persist::record::append(buf, lsn, 0, 0, db, |out| {
                for c in cmds {
                    crate::keyspace::effects::encode_array(out, c.iter().map(|p| p.as_bytes()), c.len());
                }
            });
        }
        for db in [0, 1, 2] {
            let sets: Vec<Vec<&str>> =
                keys.iter().map(|k| vec!["SET", k.as_str(), ["a", "b", "c"][db as usize]]).collect();
            rec(&mut buf, db, &sets);
        }
        rec(&mut buf, 0, &[vec!["REPLSWAP", "1", "2", "0", "1"], vec!["REPLFLUSH", "1", "2", "2"]]);
        let (ks, _, err) = super::replay_buffer(&buf);
        assert_eq!(err, None);
        // Master shard 1's keys swapped dbs 0 and 1 and left db 2; the
        // others stayed.
        let val = |db: usize, k: &String| {
            ks.peek(db, k.as_bytes(), 0).and_then(|e| e.value.str_bytes(&mut [0; 24]).map(|b| b.to_vec()))
        };
        let owned = keys.iter().find(|k| ours(k)).expect("a key of master shard 1");
        let other = keys.iter().find(|k| !ours(k)).expect("a key of master shard 0");
        assert_ne!(val(0, other), val(1, other));
        for k in &keys {
            if ours(k) {
                assert_eq!((val(0, k), val(1, k), val(2, k)), (val(1, other), val(0, other), None), "{k}");
            } else {
                assert_eq!((val(0, k), val(1, k), val(2, k)), (val(0, other), val(1, other), val(2, other)), "{k}");
            }
        }
        assert!(val(2, other).is_some() && val(0, owned).is_some());
        // FLUSHALL's form removes master shard 1's keys from every db.
        rec(&mut buf, 0, &[vec!["REPLFLUSH", "1", "2", "ALL"]]);
        let (ks, _, _) = super::replay_buffer(&buf);
        assert_eq!(ks.total_keys(), 3 * keys.iter().filter(|k| !ours(k)).count());
    }

    #[test]
    fn a_record_naming_a_db_that_does_not_exist_is_refused() {
        // Found by the aof_loader fuzz target: it indexed past the dbs.
        let mut buf = Vec::new();
        crate::persist::record::append(&mut buf, 1, 0, 0, 39, |out| {
            crate::keyspace::effects::encode_array(out, [&b"SET"[..], b"k", b"v"].into_iter(), 3)
        });
        let (_, n, err) = super::replay_buffer(&buf);
        assert_eq!(n, 0);
        assert!(err.is_some_and(|(at, e)| at == 0 && e.contains("db 39 does not exist")));
    }

    #[test]
    fn complete_transactions_are_kept() {
        let t = vec![vec![(5, 100, 2)], vec![(9, 100, 2)]];
        assert_eq!(compute_cuts(&t), vec![u64::MAX, u64::MAX]);
    }

    #[test]
    fn incomplete_transaction_cuts_and_cascades() {
        // txid 100 reached shard 0 only; shard 0 then took part in 200 with
        // shard 1, which must go too (it was logged after 100 on shard 0).
        let t = vec![vec![(5, 100, 2), (7, 200, 2)], vec![(3, 200, 2), (4, 300, 2)], vec![(8, 300, 2)]];
        assert_eq!(compute_cuts(&t), vec![5, 3, 8]);
    }
}

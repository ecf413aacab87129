//! Reading a shard's log from a position while the shard keeps writing it:
//! what the replication thread streams to a replica.
//!
//! A `LogReader` starts either after a given lsn (`after`: a replica that
//! continues) or at the shard's base image (`full`: a replica that needs
//! everything: the base's records, then the log from the base's lsn). It
//! reads base images and segments through memmap2, and returns records
//! only up to the lsn the caller says is safe to reveal (the durable or
//! released lsn the shard published), so a record still being written is
//! never read. A segment ends where the next one begins (`<first-lsn>.aof`);
//! when the current map has no more records the reader remaps it (the live
//! segment grows) or moves to the next segment. A rewrite may delete
//! segments below a new base: a mapped one stays readable until dropped,
//! and one the reader has not reached yet is reported as `Gone` (the
//! caller falls back to a full sync).

use super::manifest::Manifest;
use super::record;
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// Why a reader cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The records after `lsn` are no longer in the log (compacted away):
    /// only a full sync can continue.
    Gone { lsn: u64 },
    /// Asked to continue after an lsn the shard has not (durably) written.
    Future { lsn: u64, durable: u64 },
    /// A file could not be read, or holds a bad record below the durable
    /// lsn: damage, named by file and offset.
    Damaged(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Gone { lsn } => write!(f, "records after lsn {} are no longer in the log", lsn),
            ReadError::Future { lsn, durable } => {
                write!(f, "lsn {} is ahead of the log (durable up to {})", lsn, durable)
            }
            ReadError::Damaged(e) => f.write_str(e),
        }
    }
}

/// What `LogReader::next` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A record of the base image (every one carries the base's lsn).
    Base,
    /// The base image is done: the replica now holds the shard as of `lsn`.
    BaseEnd { lsn: u64 },
    /// A log record with this lsn.
    Log { lsn: u64 },
    /// Nothing more up to the safe lsn: wait for it to advance.
    Idle,
}

struct Mapped {
    path: PathBuf,
    map: Option<Mmap>,
    pos: usize,
}

fn map_file(path: &Path) -> Result<Option<Mapped>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {}", path.display(), e)),
    };
    let len = f.metadata().map_err(|e| format!("{}: {}", path.display(), e))?.len();
    let map = if len == 0 {
        None
    } else {
        // SAFETY: the shard only appends to its segments and never
        // truncates one it still writes; a rewrite unlinks whole files,
        // which leaves this mapping valid.
        Some(unsafe { Mmap::map(&f) }.map_err(|e| format!("mmap {}: {}", path.display(), e))?)
    };
    Ok(Some(Mapped { path: path.to_path_buf(), map, pos: 0 }))
}

pub struct LogReader {
    dir: PathBuf,
    /// lsn of the next log record to return.
    next: u64,
    /// The base image being streamed, and its lsn.
    base: Option<(Mapped, u64)>,
    /// The segment holding `next` (or where it will appear).
    seg: Option<Mapped>,
}

impl LogReader {
    /// While a base image streams: (bytes read, its size).
    pub fn base_progress(&self) -> Option<(usize, usize)> {
        let (b, _) = self.base.as_ref()?;
        let len = b.map.as_ref().map_or(0, |m| m.len());
        (b.pos < len).then_some((b.pos, len))
    }

    /// Continue after `lsn` in the shard whose files are in `dir`; `safe`
    /// is the highest lsn that may be read now.
    pub fn after(dir: &Path, lsn: u64, safe: u64) -> Result<LogReader, ReadError> {
        if lsn > safe {
            return Err(ReadError::Future { lsn, durable: safe });
        }
        let mut r = LogReader { dir: dir.to_path_buf(), next: lsn + 1, base: None, seg: None };
        let segs = super::load::list_segments(dir).map_err(ReadError::Damaged)?;
        // The newest segment starting at or before the wanted lsn.
        let Some((first, path)) = segs.iter().rev().find(|(f, _)| *f <= lsn + 1) else {
            // No segment reaches back that far; fine only if nothing was
            // written after `lsn` yet (a new segment will start at it).
            if lsn == safe && segs.iter().all(|(f, _)| *f > lsn) {
                return Ok(r);
            }
            return Err(ReadError::Gone { lsn });
        };
        let m = map_file(path).map_err(ReadError::Damaged)?.ok_or(ReadError::Gone { lsn })?;
        r.seg = Some(m);
        if *first <= lsn {
            // Seek into the segment: skip the records up to `lsn`.
            r.next = *first;
            loop {
                match r.read_log(safe)? {
                    Some((_, _, l)) if l < lsn => continue,
                    Some((_, _, _)) => break,
                    None => return Err(ReadError::Gone { lsn }),
                }
            }
        }
        Ok(r)
    }

    /// Everything the shard holds: its base image (as named by the
    /// manifest in `root`), then the log after the base's lsn.
    pub fn full(root: &Path, shard: usize, safe: u64) -> Result<LogReader, ReadError> {
        let dir = super::shard_dir(root, shard);
        let m = Manifest::read(root).map_err(ReadError::Damaged)?;
        let entry = m.and_then(|m| m.shard.get(shard).cloned()).unwrap_or_default();
        let base = if entry.base.is_empty() {
            None
        } else {
            let path = dir.join(&entry.base);
            // A rewrite may have replaced it since the manifest was read:
            // the caller tries again.
            let mapped = map_file(&path).map_err(ReadError::Damaged)?.ok_or(ReadError::Gone { lsn: 0 })?;
            Some((mapped, entry.base_lsn))
        };
        let mut r = LogReader::after(&dir, entry.base_lsn, safe.max(entry.base_lsn))?;
        r.base = base;
        if r.base.is_none() {
            // No image: an empty shard as of lsn 0 (the log holds it all).
            r.base = Some((Mapped { path: PathBuf::new(), map: None, pos: 0 }, entry.base_lsn));
        }
        Ok(r)
    }

    /// lsn of the next log record this reader returns.
    pub fn position(&self) -> u64 {
        self.next - 1
    }

    /// Append the next record's bytes (header and payload, as on disk) to
    /// `out`, reading only records with lsn <= `safe`.
    pub fn next(&mut self, safe: u64, out: &mut Vec<u8>) -> Result<Step, ReadError> {
        if let Some((b, lsn)) = self.base.as_mut() {
            let data: &[u8] = b.map.as_deref().unwrap_or(&[]);
            if b.pos < data.len() {
                let (_, used) = record::decode(&data[b.pos..])
                    .map_err(|e| ReadError::Damaged(format!("{}: {} at offset {}", b.path.display(), e, b.pos)))?;
                out.extend_from_slice(&data[b.pos..b.pos + used]);
                b.pos += used;
                return Ok(Step::Base);
            }
            let lsn = *lsn;
            self.base = None;
            return Ok(Step::BaseEnd { lsn });
        }
        match self.read_log(safe)? {
            Some((start, end, lsn)) => {
                let data: &[u8] = self.seg.as_ref().and_then(|s| s.map.as_deref()).unwrap_or(&[]);
                out.extend_from_slice(&data[start..end]);
                Ok(Step::Log { lsn })
            }
            None => Ok(Step::Idle),
        }
    }

    /// The next log record (its range in the current map and its lsn), if
    /// one with lsn <= `safe` is there.
    fn read_log(&mut self, safe: u64) -> Result<Option<(usize, usize, u64)>, ReadError> {
        if self.next > safe {
            return Ok(None);
        }
        // At most: this map, a fresh map of the same file (it grew), the
        // next segment.
        for _ in 0..3 {
            if self.seg.is_none() {
                self.open_next_segment()?;
            }
            let Some(seg) = self.seg.as_mut() else { break };
            let data: &[u8] = seg.map.as_deref().unwrap_or(&[]);
            match record::next(data, seg.pos) {
                Ok(Some((rec, at, end))) => {
                    if rec.lsn != self.next {
                        return Err(ReadError::Damaged(format!(
                            "{}: record at offset {} has lsn {}, expected {}",
                            seg.path.display(),
                            at,
                            rec.lsn,
                            self.next
                        )));
                    }
                    seg.pos = end;
                    self.next += 1;
                    return Ok(Some((at, end, rec.lsn)));
                }
                // The end of what this map shows, or a record still being
                // written past it: remap, or go on in the next segment.
                Ok(None) | Err((_, record::DecodeError::Truncated)) => {
                    let next_seg = self.dir.join(super::segment_name(self.next));
                    let pos = seg.pos;
                    if next_seg != seg.path && next_seg.exists() {
                        self.seg = None;
                        continue;
                    }
                    let path = seg.path.clone();
                    let mut fresh =
                        map_file(&path).map_err(ReadError::Damaged)?.ok_or(ReadError::Gone { lsn: self.next - 1 })?;
                    fresh.pos = pos;
                    self.seg = Some(fresh);
                }
                Err((at, e)) => {
                    return Err(ReadError::Damaged(format!(
                        "{}: {} at offset {} (lsn {} expected, durable up to {})",
                        seg.path.display(),
                        e,
                        at,
                        self.next,
                        safe
                    )))
                }
            }
        }
        // Safe records that are nowhere to be found were compacted away
        // (or never made it to a file we can see).
        let next_seg = self.dir.join(super::segment_name(self.next));
        if self.seg.is_none() && !next_seg.exists() {
            return Err(ReadError::Gone { lsn: self.next - 1 });
        }
        Ok(None)
    }

    fn open_next_segment(&mut self) -> Result<(), ReadError> {
        let path = self.dir.join(super::segment_name(self.next));
        self.seg = map_file(&path).map_err(ReadError::Damaged)?;
        Ok(())
    }
}

/// Which segments a compaction may delete: those wholly at or below the
/// new base (`base_lsn`) unless a replica still needs them (`floor`: the
/// lowest lsn a connected replica has not yet acknowledged, u64::MAX if
/// none), while what is kept for replicas stays within `backlog` bytes
/// (the oldest go first past it). `segs` are (first lsn, bytes), oldest
/// first; the newest is never deleted. Returns the indexes to delete.
pub fn removable(segs: &[(u64, u64)], base_lsn: u64, floor: u64, backlog: u64) -> Vec<usize> {
    let mut kept_bytes = 0u64;
    let mut out = Vec::new();
    // Newest first, so the backlog keeps the most recent segments.
    for i in (0..segs.len().saturating_sub(1)).rev() {
        let last = segs[i + 1].0.saturating_sub(1);
        if last > base_lsn {
            continue; // holds records the base does not
        }
        let needed = last >= floor;
        if needed && kept_bytes.saturating_add(segs[i].1) <= backlog {
            kept_bytes += segs[i].1;
            continue;
        }
        out.push(i);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::effects::encode_array;

    fn dir(name: &str) -> PathBuf {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/logread-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("test dir");
        d
    }

    fn rec(lsn: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let v = lsn.to_string();
        record::append(&mut out, lsn, 0, 0, 0, |b| encode_array(b, [&b"SET"[..], b"k", v.as_bytes()].into_iter(), 3));
        out
    }

    /// A segment file starting at `first` with records `first..=last`,
    /// followed by `zeros` bytes of prepared space.
    fn segment(d: &Path, first: u64, last: u64, zeros: usize) {
        let mut data: Vec<u8> = (first..=last).flat_map(rec).collect();
        data.resize(data.len() + zeros, 0);
        std::fs::write(d.join(super::super::segment_name(first)), data).expect("write segment");
    }

    fn drain(r: &mut LogReader, safe: u64) -> Result<Vec<u64>, ReadError> {
        let mut lsns = Vec::new();
        let mut out = Vec::new();
        loop {
            out.clear();
            match r.next(safe, &mut out)? {
                Step::Log { lsn } => {
                    let (got, used) = record::decode(&out).expect("a whole record");
                    assert_eq!((got.lsn, used), (lsn, out.len()));
                    lsns.push(lsn)
                }
                Step::Idle => return Ok(lsns),
                s => panic!("unexpected {:?}", s),
            }
        }
    }

    #[test]
    fn seeks_into_a_segment_and_crosses_into_the_next() {
        let d = dir("seek");
        segment(&d, 1, 10, 700);
        segment(&d, 11, 15, 0);
        let mut r = LogReader::after(&d, 4, 15).expect("opens");
        assert_eq!(drain(&mut r, 15).expect("reads"), (5..=15).collect::<Vec<_>>());
        // Exactly at a boundary.
        let mut r = LogReader::after(&d, 10, 15).expect("opens");
        assert_eq!(drain(&mut r, 12).expect("reads"), vec![11, 12]);
        assert_eq!(r.position(), 12);
        assert_eq!(drain(&mut r, 15).expect("reads"), vec![13, 14, 15]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn follows_a_growing_tail_and_stops_at_the_safe_lsn() {
        let d = dir("tail");
        segment(&d, 1, 3, 0);
        let mut r = LogReader::after(&d, 0, 3).expect("opens");
        assert_eq!(drain(&mut r, 2).expect("reads"), vec![1, 2], "nothing past the safe lsn");
        assert_eq!(drain(&mut r, 3).expect("reads"), vec![3]);
        // The shard appends (and its torn last record is not safe yet).
        let mut data: Vec<u8> = (1..=6).flat_map(rec).collect();
        let torn = rec(7);
        data.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(d.join(super::super::segment_name(1)), &data).expect("grow");
        assert_eq!(drain(&mut r, 6).expect("reads"), vec![4, 5, 6]);
        // Said to be safe while cut short: not returned, waits for the rest.
        assert_eq!(drain(&mut r, 7).expect("waits"), Vec::<u64>::new());
        data.truncate(data.len() - torn.len() / 2);
        data.extend_from_slice(&torn);
        std::fs::write(d.join(super::super::segment_name(1)), &data).expect("complete");
        assert_eq!(drain(&mut r, 7).expect("reads"), vec![7]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn refuses_the_future_and_reports_compacted_records_gone() {
        let d = dir("gone");
        segment(&d, 21, 25, 0);
        assert_eq!(LogReader::after(&d, 26, 25).err(), Some(ReadError::Future { lsn: 26, durable: 25 }));
        assert_eq!(LogReader::after(&d, 5, 25).err(), Some(ReadError::Gone { lsn: 5 }));
        assert!(LogReader::after(&d, 20, 25).is_ok(), "the segment starts right after");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_reader_survives_a_rewrite_that_deletes_its_segment() {
        let d = dir("rewrite");
        segment(&d, 1, 5, 0);
        segment(&d, 6, 8, 0);
        let mut r = LogReader::after(&d, 2, 8).expect("opens");
        assert_eq!(drain(&mut r, 3).expect("reads"), vec![3]);
        // A rewrite folds lsns up to 5 into a base and deletes the segment
        // the reader is in: its map stays valid, and the next one is there.
        std::fs::remove_file(d.join(super::super::segment_name(1))).expect("delete");
        assert_eq!(drain(&mut r, 8).expect("reads"), vec![4, 5, 6, 7, 8]);
        // A reader that had not reached a deleted segment learns it is gone.
        std::fs::remove_file(d.join(super::super::segment_name(6))).expect("delete");
        segment(&d, 9, 9, 0);
        let mut late = LogReader::after(&d, 8, 9).expect("opens at the new segment");
        assert_eq!(drain(&mut late, 9).expect("reads"), vec![9]);
        assert_eq!(LogReader::after(&d, 6, 9).err(), Some(ReadError::Gone { lsn: 6 }));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn damage_below_the_safe_lsn_is_reported_with_file_and_offset() {
        let d = dir("damage");
        let mut data: Vec<u8> = (1..=3).flat_map(rec).collect();
        let one = rec(1).len();
        data[one + 20] ^= 0x40; // lsn 2's payload
        std::fs::write(d.join(super::super::segment_name(1)), &data).expect("write");
        let mut r = LogReader::after(&d, 0, 3).expect("opens");
        let mut out = Vec::new();
        assert_eq!(r.next(3, &mut out), Ok(Step::Log { lsn: 1 }));
        match r.next(3, &mut out) {
            Err(ReadError::Damaged(e)) => {
                assert!(e.contains("checksum") && e.contains(&format!("offset {}", one)), "{e}")
            }
            other => panic!("{:?}", other),
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn full_streams_the_base_then_the_log_after_it() {
        let root = dir("full");
        let sd = super::super::shard_dir(&root, 0);
        std::fs::create_dir_all(&sd).expect("shard dir");
        let mut base = Vec::new();
        for _ in 0..3 {
            record::append(&mut base, 4, 0, 0, 0, |b| encode_array(b, [&b"SET"[..], b"a", b"1"].into_iter(), 3));
        }
        std::fs::write(sd.join(super::super::base_name(4)), &base).expect("base");
        Manifest::with_bases(1, 4).write(&root).expect("manifest");
        segment(&sd, 1, 6, 0); // a leftover below the base, then 5 and 6
        let mut r = LogReader::full(&root, 0, 6).expect("opens");
        let mut out = Vec::new();
        let steps: Vec<Step> = (0..6).map(|_| r.next(6, &mut out).expect("reads")).collect();
        assert_eq!(
            steps,
            vec![
                Step::Base,
                Step::Base,
                Step::Base,
                Step::BaseEnd { lsn: 4 },
                Step::Log { lsn: 5 },
                Step::Log { lsn: 6 }
            ]
        );
        assert_eq!(&out[..base.len()], &base[..]);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn compaction_keeps_what_replicas_need_within_the_backlog() {
        // Segments 1.., 11.., 21.., 31.. (newest); base at 30.
        let segs = [(1, 100), (11, 100), (21, 100), (31, 100)];
        assert_eq!(removable(&segs, 30, u64::MAX, 1 << 20), vec![0, 1, 2], "no replica: all below the base");
        assert_eq!(removable(&segs, 30, 15, 1 << 20), vec![0], "a replica at 15 needs 11.. and 21..");
        assert_eq!(removable(&segs, 30, 15, 150), vec![0, 1], "backlog keeps only the newest 100 bytes");
        assert_eq!(removable(&segs, 20, u64::MAX, 0), vec![0, 1], "21.. holds records above the base");
        assert_eq!(removable(&segs[..1], 30, u64::MAX, 0), Vec::<usize>::new(), "the newest stays");
    }
}

//! One shard's AOF writer: frames records into a buffer and tracks what is
//! written and what is durable. It does no I/O on the hot path itself: the
//! shard loop asks `next_write` for the bytes to hand to io_uring and
//! reports completions back. Records appended while writes are in flight
//! go out together in the next one, which is what makes `always` a group
//! commit: one write per turn for every waiting client.
//!
//! Under `always`, where the filesystem allows it, writes use O_DIRECT
//! (DESIGN.md §Persistence), each padded with zeros to whole blocks
//! (`record::next` skips the padding). Writes then never share a block, so
//! several can be in flight at once; each carries RWF_DSYNC, so one
//! operation both writes and makes durable, and the durable lsn advances
//! over the writes completed in order. `everysec` and `no` write through
//! the page cache, one write at a time: measured, direct I/O cost them a
//! fifth of their pipelined throughput (benches/RESULTS.md, Notes) and buys
//! them nothing, as they do not wait for the disk.
//!
//! Why the segment is zero-filled ahead of the data (`next_extend`): a
//! durable write that allocates blocks or grows the file must also commit
//! filesystem metadata (an ext4 journal commit), which made `always` writes
//! much slower than overwriting blocks that are already allocated and
//! synced. So the writer keeps up to `PREFILL_CHUNK` of zeros allocated and
//! synced past the data, written by the ring in the background.

use super::record;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// Largest direct-I/O block we handle (and the buffers' alignment).
const MAX_BLOCK: usize = 4096;
/// Zeroed space prepared per background extension.
const PREFILL_CHUNK: u64 = 2 << 20;
/// Start the next extension when less than this is prepared past the data.
const PREFILL_MARGIN: u64 = 1 << 20;
/// Writes in flight at once (direct I/O; buffered writes go one at a time).
const MAX_INFLIGHT: usize = 8;
/// Most bytes one write() moves (Linux's MAX_RW_COUNT, a multiple of
/// every block size); a longer write goes out in several.
const MAX_WRITE: usize = 0x7fff_f000;

/// A write to submit: `len` bytes at `ptr` to `fd` at `offset`; `dsync`
/// makes it durable before it completes (RWF_DSYNC). `seq` identifies it
/// in the completion.
pub struct WriteOp {
    pub fd: RawFd,
    pub ptr: *const u8,
    pub len: u32,
    pub offset: u64,
    pub dsync: bool,
    pub seq: u64,
}

/// Syncs a segment rotation waits for; see `Writer::rotation`.
struct Rotation {
    cap: u64,
    pending: u32,
    /// What fdatasyncs of the new segment covered meanwhile: it counts
    /// only once the old segment is synced too.
    later_synced: u64,
    /// Syncs to hand to the ring.
    to_submit: Vec<RawFd>,
    keep_open: Vec<File>,
}

/// A write handed to the kernel (or waiting for a retry after failing).
struct InFlight {
    seq: u64,
    data: AlignedBuf,
    offset: u64,
    /// Bytes of `data` already written (the kernel wrote part of it).
    written: usize,
    /// Record bytes in `data` (the rest is padding).
    records: usize,
    last_lsn: u64,
    dsync: bool,
    /// In the ring now.
    submitted: bool,
    done: bool,
    /// When it was composed (ms): its latency, for the latency monitor.
    started_ms: i64,
}

pub struct Writer {
    pub shard: usize,
    dir: PathBuf,
    pub policy: Fsync,
    segment_size: u64,
    file: File,
    seg_path: PathBuf,
    /// Smallest direct-I/O write the segment's filesystem takes; 0 if it
    /// has no O_DIRECT.
    dio_block: usize,
    /// Block size of the current mode: `dio_block` under direct I/O, 1
    /// when buffered.
    block: usize,
    /// Where the next write goes: past everything composed so far.
    file_end: u64,
    /// Record bytes in the segment (written or in flight).
    file_len: u64,
    /// lsn the next record gets.
    next_lsn: u64,
    /// Records appended, not yet handed to the kernel.
    buf: Vec<u8>,
    /// The slowest write completed since the shard last took it (ms, and
    /// whether it synced: appendfsync always), for the latency monitor.
    pub write_took: Option<(u64, bool)>,
    /// Writes not yet completed, oldest first.
    inflight: VecDeque<InFlight>,
    next_seq: u64,
    /// Buffers of completed writes, for reuse.
    spare: Vec<AlignedBuf>,
    /// Standalone fdatasyncs in flight (everysec, or catching up after a
    /// switch to `always`).
    pub fsyncs_inflight: u32,
    /// End of the zeroed, allocated and synced space in the segment.
    prepared_end: u64,
    /// Background extension (zeros + fdatasync) in flight: its range.
    extend: Option<(u64, u64)>,
    extend_failed: bool,
    zeros: Option<AlignedBuf>,
    /// Highest lsn handed to the kernel with everything before it
    /// (survives a process crash).
    pub written_lsn: u64,
    /// Highest lsn the data syncs (RWF_DSYNC writes, fdatasyncs) cover.
    synced_lsn: u64,
    /// Highest lsn known to be on disk (survives a power loss): `synced_lsn`,
    /// capped while a rotation's syncs run.
    pub durable_lsn: u64,
    /// A rotation's syncs in flight (the old segment's fdatasync, the
    /// directory's fsync for the new name), the files they need kept open,
    /// and the last lsn of the old segment: nothing past it counts as
    /// durable until they complete.
    rotation: Option<Rotation>,
    pub last_fsync_ms: i64,
    /// Someone waits for what is written to be on disk (WAITAOF, a
    /// replica's durable acknowledgement): sync at once, whatever the policy.
    pub sync_soon: bool,
    /// everysec: times an fsync was due while the previous one still ran.
    pub delayed_fsync: u64,
    /// Bytes of records of all segments since start-up, for INFO
    /// aof_current_size and the automatic rewrite.
    pub total_bytes: u64,
    pub last_write_error: Option<String>,
    /// Start a new segment before the next write (a rewrite asked).
    rotate_requested: bool,
    /// After a failed write: not before this time.
    retry_at_ms: i64,
}

impl Writer {
    /// Open a fresh segment starting at `next_lsn` in the shard's directory.
    pub fn open(dir: &Path, shard: usize, next_lsn: u64, policy: Fsync, segment_size: u64) -> Result<Writer, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {}", dir.display(), e))?;
        let (file, seg_path, dio_block) = create_segment(dir, next_lsn)?;
        if dio_block == 0 {
            crate::log(&format!(
                "shard {}: {} does not support O_DIRECT (tmpfs?); appendfsync always writes go through the page cache",
                shard,
                dir.display()
            ));
        }
        Ok(Writer {
            shard,
            dir: dir.to_path_buf(),
            policy,
            segment_size,
            file,
            seg_path,
            dio_block,
            block: 1,
            file_end: 0,
            file_len: 0,
            next_lsn,
            buf: Vec::with_capacity(64 * 1024),
            write_took: None,
            inflight: VecDeque::new(),
            next_seq: 1,
            spare: Vec::new(),
            fsyncs_inflight: 0,
            prepared_end: 0,
            extend: None,
            extend_failed: false,
            zeros: None,
            written_lsn: next_lsn - 1,
            synced_lsn: next_lsn - 1,
            durable_lsn: next_lsn - 1,
            rotation: None,
            last_fsync_ms: crate::util::now_ms(),
            sync_soon: false,
            delayed_fsync: 0,
            total_bytes: 0,
            last_write_error: None,
            rotate_requested: false,
            retry_at_ms: 0,
        })
    }

    /// lsn of the last record appended.
    /// Record bytes appended and not yet handed to the kernel (MEMORY
    /// STATS aof.buffer).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn appended_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Writes in the ring now.
    fn submitted(&self) -> usize {
        self.inflight.iter().filter(|w| w.submitted).count()
    }

    /// Any operation of this writer still in the ring.
    pub fn busy(&self) -> bool {
        self.submitted() > 0 || self.fsyncs_inflight > 0 || self.extend.is_some() || self.rotation.is_some()
    }

    /// The highest lsn output may reveal (output stamped past it waits,
    /// see shard/aof.rs). `always`: what is on disk. `everysec` and `no`:
    /// what a completed write() handed to the kernel, which survives a
    /// kill -9 of the process (Redis's promise for them). While writes
    /// fail (everysec/no only: under `always` a write error is fatal)
    /// nothing is held, as in Redis: new writes are refused with MISCONF
    /// instead of every client of the shard hanging until the disk
    /// recovers, and what was executed waits in memory for the retry.
    #[inline]
    pub fn release_lsn(&self) -> u64 {
        match self.policy {
            Fsync::Always => self.durable_lsn,
            _ if self.last_write_error.is_some() => self.appended_lsn(),
            _ => self.written_lsn,
        }
    }

    /// Output that may reveal what was appended last must wait.
    #[inline]
    pub fn must_hold_replies(&self) -> bool {
        self.release_lsn() < self.appended_lsn()
    }

    /// Append a record; `payload` writes its commands. Returns its lsn.
    pub fn append(&mut self, txid: u64, participants: u16, db: u8, payload: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        // Tells recovery whether a hole before this record can be a crash's
        // doing (see record::FLAG_SERIAL). Records appended just before a
        // switch to `always` go out in its first direct write, which waits
        // for every buffered one: serial still holds for them.
        let flags = if self.policy == Fsync::Always && self.dio_block > 0 { 0 } else { record::FLAG_SERIAL };
        record::append_flagged(&mut self.buf, lsn, txid, participants, db, flags, payload);
        lsn
    }

    /// The next write to submit, if records wait and the ring may take
    /// another write.
    pub fn next_write(&mut self, now_ms: i64) -> Option<WriteOp> {
        // A failed write goes out again first, once its retry time came (a
        // full disk must not turn into a busy loop).
        if let Some(i) = self.inflight.iter().position(|w| !w.submitted && !w.done) {
            if now_ms < self.retry_at_ms {
                return None;
            }
            self.inflight[i].submitted = true;
            return Some(self.op(i));
        }
        if self.buf.is_empty() {
            return None;
        }
        if !self.inflight.is_empty() {
            // Concurrent writes only with direct I/O, and within the window
            // recovery treats as a torn tail.
            let bytes: usize = self.inflight.iter().map(|w| w.data.len()).sum::<usize>() + self.buf.len();
            if self.block == 1 || self.inflight.len() >= MAX_INFLIGHT || bytes > record::TORN_WINDOW {
                return None;
            }
        }
        let want_rotate = self.file_len >= self.segment_size || (self.rotate_requested && self.file_len > 0);
        if want_rotate
            && self.inflight.is_empty()
            && self.fsyncs_inflight == 0
            && self.extend.is_none()
            && self.rotation.is_none()
        {
            self.rotate_requested = false;
            if let Err(e) = self.rotate() {
                crate::log(&format!(
                    "shard {}: AOF segment rotation failed: {}; continuing in {}",
                    self.shard,
                    e,
                    self.seg_path.display()
                ));
            }
        }
        // Direct I/O under `always` only; switch between writes.
        let want = if self.policy == Fsync::Always && self.dio_block > 0 { self.dio_block } else { 1 };
        if want != self.block {
            if !self.inflight.is_empty() {
                return None;
            }
            if let Err(e) = set_direct(&self.file, want > 1) {
                crate::log(&format!(
                    "shard {}: {}: {}; writing through the page cache",
                    self.shard,
                    self.seg_path.display(),
                    e
                ));
                self.dio_block = 0;
            } else {
                self.block = want;
                // Direct writes start on a block; readers skip the gap.
                self.file_end = self.padded(self.file_end as usize);
            }
        }
        // Never write into zeros still being written by an extension.
        if let Some((start, _)) = self.extend {
            if self.file_end + self.padded(self.buf.len()) > start {
                return None;
            }
        }
        self.compose();
        if let Some(w) = self.inflight.back_mut() {
            w.started_ms = now_ms;
        }
        Some(self.op(self.inflight.len() - 1))
    }

    fn padded(&self, n: usize) -> u64 {
        (n.div_ceil(self.block) * self.block) as u64
    }

    /// Move the appended records into a new write at the end of the file.
    fn compose(&mut self) {
        let mut data = self.spare.pop().unwrap_or_else(|| AlignedBuf::with_capacity(64 * 1024));
        data.clear();
        data.extend_from_slice(&self.buf);
        data.pad_to(self.block);
        let w = InFlight {
            seq: self.next_seq,
            offset: self.file_end,
            written: 0,
            records: self.buf.len(),
            last_lsn: self.next_lsn - 1,
            dsync: self.policy == Fsync::Always,
            submitted: true,
            done: false,
            started_ms: 0,
            data,
        };
        self.next_seq += 1;
        self.file_end += w.data.len() as u64;
        self.file_len += w.records as u64;
        self.total_bytes += w.records as u64;
        self.inflight.push_back(w);
        self.buf.clear();
    }

    /// The write of what is left of in-flight write `i`.
    fn op(&self, i: usize) -> WriteOp {
        let w = &self.inflight[i];
        let rest = &w.data.as_slice()[w.written..];
        WriteOp {
            fd: self.file.as_raw_fd(),
            // SAFETY (for the submitter): an in-flight write's buffer is not
            // touched until it completes (only `on_write` retires it).
            ptr: rest.as_ptr(),
            len: rest.len().min(MAX_WRITE) as u32,
            offset: w.offset + w.written as u64,
            dsync: w.dsync,
            seq: w.seq,
        }
    }

    /// Write `seq` completed with `res` bytes (or -errno). Returns the write
    /// to submit next if it fell short: the rest, from where it stopped.
    pub fn on_write(&mut self, seq: u64, res: i32, now_ms: i64) -> Option<WriteOp> {
        let i = self.inflight.iter().position(|w| w.seq == seq)?;
        let block = self.block;
        let w = &self.inflight[i];
        let end = w.written + res.max(0) as usize;
        // Direct I/O goes on from a block boundary (rewriting at most the
        // start of a block, same bytes at the same place).
        let resume = end / block * block;
        let failed = if res < 0 {
            Some(std::io::Error::from_raw_os_error(-res).to_string())
        } else if end < w.data.len() && resume <= w.written {
            Some("a write made no progress".to_string())
        } else {
            None
        };
        if let Some(e) = failed {
            if self.last_write_error.is_none() {
                crate::log(&format!(
                    "shard {}: AOF write to {} failed: {}; retrying every 100 ms (writes are refused \
                     meanwhile)",
                    self.shard,
                    self.seg_path.display(),
                    e
                ));
            }
            self.last_write_error = Some(e);
            self.inflight[i].submitted = false;
            self.retry_at_ms = now_ms + 100;
            return None;
        }
        if end < self.inflight[i].data.len() {
            // Short (a write past MAX_WRITE, or a nearly full disk): the
            // part written is in place (and durable, with RWF_DSYNC).
            self.inflight[i].written = resume;
            return Some(self.op(i));
        }
        if self.last_write_error.is_some() && self.inflight.iter().all(|w| w.submitted || w.done) {
            crate::log(&format!("shard {}: AOF writes work again", self.shard));
            self.last_write_error = None;
        }
        self.inflight[i].submitted = false;
        self.inflight[i].done = true;
        let took = (now_ms - self.inflight[i].started_ms).max(0) as u64;
        let dsync = self.inflight[i].dsync;
        self.write_took = Some(self.write_took.map_or((took, dsync), |(t, d)| (t.max(took), d || dsync)));
        self.retire();
        None
    }

    /// Account for the writes completed in order from the oldest.
    fn retire(&mut self) {
        while self.inflight.front().is_some_and(|w| w.done) {
            let Some(w) = self.inflight.pop_front() else { break };
            // RWF_DSYNC syncs this write; it covers earlier ones only if
            // they were durable already (after a switch from everysec they
            // may not be: `due_fsync` catches up).
            if w.dsync && self.synced_lsn >= self.written_lsn {
                self.synced_lsn = w.last_lsn;
            }
            self.written_lsn = w.last_lsn;
            // A burst (a huge pipeline) must not pin its buffer for good.
            if w.data.capacity() <= 4 << 20 && self.spare.len() < MAX_INFLIGHT {
                self.spare.push(w.data);
            }
        }
        if self.policy == Fsync::No {
            // Nothing more is promised than handing the bytes to the kernel.
            self.synced_lsn = self.written_lsn;
        }
        self.refresh_durable();
    }

    fn refresh_durable(&mut self) {
        self.durable_lsn = match &self.rotation {
            Some(r) => self.synced_lsn.min(r.cap),
            None => self.synced_lsn,
        };
    }

    /// An fdatasync completed. Any error is fatal: after a failed fsync the
    /// page cache can no longer be trusted (as Redis and PostgreSQL
    /// conclude), so the process stops rather than acknowledge.
    pub fn on_fsync(&mut self, res: i32, upto: u64, now_ms: i64) -> Result<(), String> {
        self.fsyncs_inflight = self.fsyncs_inflight.saturating_sub(1);
        if res < 0 {
            return Err(self.sync_failed("fdatasync of", res));
        }
        match self.rotation.as_mut() {
            Some(r) => r.later_synced = r.later_synced.max(upto),
            None => self.synced_lsn = self.synced_lsn.max(upto),
        }
        self.refresh_durable();
        self.last_fsync_ms = now_ms;
        Ok(())
    }

    /// The fatal error for a failed sync (`what` names it, before the path).
    fn sync_failed(&self, what: &str, res: i32) -> String {
        format!(
            "shard {}: {} {} failed: {}",
            self.shard,
            what,
            self.seg_path.display(),
            std::io::Error::from_raw_os_error(-res)
        )
    }

    /// A rotation's sync to submit (fdatasync of the old segment or fsync
    /// of the directory), if any waits.
    pub fn next_rotation_sync(&mut self) -> Option<RawFd> {
        self.rotation.as_mut()?.to_submit.pop()
    }

    /// One of the rotation's syncs completed; an error is as fatal as a
    /// failed fdatasync (see `on_fsync`).
    pub fn on_rotation_sync(&mut self, res: i32) -> Result<(), String> {
        if res < 0 {
            return Err(self.sync_failed("syncing the AOF segment rotation to", res));
        }
        if let Some(r) = self.rotation.as_mut() {
            r.pending = r.pending.saturating_sub(1);
            if r.pending == 0 {
                // The old segment is synced through its last record.
                self.synced_lsn = self.synced_lsn.max(r.cap).max(r.later_synced);
                self.rotation = None;
                self.refresh_durable();
            }
        }
        Ok(())
    }

    /// An fdatasync to submit now (standalone, covering every completed
    /// write) and the lsn it covers, if one is due: once a second under
    /// everysec; under `always` only to catch up on writes made before a
    /// switch to it.
    pub fn due_fsync(&mut self, now_ms: i64) -> Option<(RawFd, u64)> {
        if self.synced_lsn >= self.written_lsn {
            return None;
        }
        match self.policy {
            _ if self.sync_soon && self.fsyncs_inflight == 0 => self.sync_soon = false,
            Fsync::EverySec if now_ms - self.last_fsync_ms >= 1000 => {
                if self.fsyncs_inflight > 0 {
                    self.delayed_fsync += 1;
                    return None;
                }
            }
            Fsync::Always if self.fsyncs_inflight == 0 => {}
            _ => return None,
        }
        self.fsyncs_inflight += 1;
        Some((self.file.as_raw_fd(), self.written_lsn))
    }

    /// Direct I/O: zeros to write (and then fdatasync) past the data, if
    /// the prepared space runs low. Returns fd, buffer, length, offset.
    pub fn next_extend(&mut self) -> Option<(RawFd, *const u8, u32, u64)> {
        if self.block == 1 || self.extend.is_some() || self.extend_failed {
            return None;
        }
        // Past everything written, in flight or about to be written.
        let reserved = self.file_end + self.padded(self.buf.len());
        if reserved + PREFILL_MARGIN <= self.prepared_end {
            return None;
        }
        let start = self.prepared_end.max(reserved);
        let limit = self.padded(self.segment_size as usize);
        if start >= limit {
            return None;
        }
        let len = PREFILL_CHUNK.min(limit - start);
        let zeros = self.zeros.get_or_insert_with(|| AlignedBuf::zeroed(PREFILL_CHUNK as usize));
        self.extend = Some((start, start + len));
        Some((self.file.as_raw_fd(), zeros.as_slice().as_ptr(), len as u32, start))
    }

    /// The extension's zeros were written (`res` bytes or -errno). Its
    /// linked fdatasync completes next (cancelled if this failed).
    pub fn on_extend_write(&mut self, res: i32) {
        let want = self.extend.map_or(0, |(s, e)| e - s);
        if res < 0 || (res as u64) < want {
            // Only a speed-up: data writes still work (and are just as
            // durable) without it. Stop trying in this segment.
            crate::log(&format!(
                "shard {}: preparing space in {} failed ({}); continuing without",
                self.shard,
                self.seg_path.display(),
                if res < 0 { std::io::Error::from_raw_os_error(-res).to_string() } else { "short write".into() }
            ));
            self.extend_failed = true;
        }
    }

    /// The extension's fdatasync completed: the space is ready.
    pub fn on_extend_sync(&mut self, res: i32) {
        if let Some((_, end)) = self.extend.take() {
            if res >= 0 && !self.extend_failed {
                self.prepared_end = self.prepared_end.max(end);
            }
        }
    }

    /// Start a new segment. The loop never waits for the disk here: the
    /// old segment's fdatasync (what everysec has not synced yet) and the
    /// directory's fsync (the new name) go through the ring, and until both
    /// complete nothing past the old segment's last record counts as
    /// durable, so durability never depends on a file we no longer track.
    fn rotate(&mut self) -> Result<(), String> {
        let (file, path) = create_segment_file(&self.dir, self.written_lsn + 1)?;
        let dir = File::open(&self.dir).map_err(|e| format!("opening {}: {}", self.dir.display(), e))?;
        let old = std::mem::replace(&mut self.file, file);
        let mut r = Rotation {
            cap: self.written_lsn,
            pending: 0,
            later_synced: 0,
            to_submit: Vec::new(),
            keep_open: Vec::new(),
        };
        r.to_submit.push(dir.as_raw_fd());
        r.keep_open.push(dir);
        if self.policy != Fsync::No && self.synced_lsn < self.written_lsn {
            r.to_submit.push(old.as_raw_fd());
            r.keep_open.push(old);
        }
        r.pending = r.to_submit.len() as u32;
        self.rotation = Some(r);
        self.refresh_durable();
        self.seg_path = path;
        self.block = 1;
        self.file_end = 0;
        self.file_len = 0;
        self.prepared_end = 0;
        self.extend_failed = false;
        Ok(())
    }

    /// Start a new segment before the next write, so a rewrite can delete
    /// the current one once its records are in a base.
    pub fn request_rotation(&mut self) {
        self.rotate_requested = true;
    }

    /// Write and sync everything synchronously (shutdown; nothing may be
    /// in the ring).
    pub fn flush_sync(&mut self) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        if self.submitted() > 0 {
            return Err("a write is still in flight".into());
        }
        if !self.buf.is_empty() {
            self.compose();
        }
        // Failed ring writes still pending, then the rest, in order.
        for w in self.inflight.iter_mut().filter(|w| !w.done) {
            self.file
                .write_all_at(w.data.as_slice(), w.offset)
                .map_err(|e| format!("{}: {}", self.seg_path.display(), e))?;
            w.done = true;
        }
        self.retire();
        self.file.sync_data().map_err(|e| format!("{}: {}", self.seg_path.display(), e))?;
        if let Some(r) = self.rotation.take() {
            // Its syncs never ran (shutdown or failpoint): do them here.
            for f in &r.keep_open {
                f.sync_all().map_err(|e| format!("{}: {}", self.seg_path.display(), e))?;
            }
        }
        self.synced_lsn = self.written_lsn;
        self.refresh_durable();
        Ok(())
    }

    pub fn segment_path(&self) -> &Path {
        &self.seg_path
    }
}

/// Create a segment (buffered) and make its name durable. Returns the
/// smallest direct-I/O write its filesystem takes, 0 if it has no O_DIRECT.
fn create_segment(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf, usize), String> {
    use std::os::unix::fs::FileExt;
    let (file, path) = create_segment_file(dir, first_lsn)?;
    let mut dio_block = 0;
    if set_direct(&file, true).is_ok() {
        // Probe with zeros (readers skip them; the first records overwrite
        // them).
        let zeros = AlignedBuf::zeroed(MAX_BLOCK);
        dio_block = [record::PAD, MAX_BLOCK]
            .into_iter()
            .find(|&b| file.write_all_at(&zeros.as_slice()[..b], 0).is_ok())
            .unwrap_or(0);
        set_direct(&file, false).map_err(|e| format!("{}: {}", path.display(), e))?;
    }
    // The new name must survive a crash before records in it are acknowledged.
    super::fsync_dir(dir).map_err(|e| format!("fsync {}: {}", dir.display(), e))?;
    Ok((file, path, dio_block))
}

fn create_segment_file(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf), String> {
    let path = dir.join(super::segment_name(first_lsn));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {}", path.display(), e))?;
    Ok((file, path))
}

/// Turn O_DIRECT on or off for an open file.
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A byte buffer whose memory is aligned to `MAX_BLOCK` (O_DIRECT needs it).
struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer owns its allocation outright, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn layout(cap: usize) -> std::alloc::Layout {
        // MAX_BLOCK is a power of two and cap is rounded to it: always valid.
        std::alloc::Layout::from_size_align(cap, MAX_BLOCK).unwrap_or(std::alloc::Layout::new::<u8>())
    }

    fn with_capacity(cap: usize) -> AlignedBuf {
        let cap = cap.max(MAX_BLOCK).div_ceil(MAX_BLOCK) * MAX_BLOCK;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(Self::layout(cap)) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else { std::alloc::handle_alloc_error(Self::layout(cap)) };
        AlignedBuf { ptr, cap, len: 0 }
    }

    /// `len` zero bytes.
    fn zeroed(len: usize) -> AlignedBuf {
        let mut b = AlignedBuf::with_capacity(len);
        // with_capacity allocates zeroed memory.
        b.len = len;
        b
    }

    fn len(&self) -> usize {
        self.len
    }

    fn capacity(&self) -> usize {
        self.cap
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised (allocated zeroed).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn reserve(&mut self, more: usize) {
        if self.len + more <= self.cap {
            return;
        }
        let mut bigger = AlignedBuf::with_capacity((self.len + more).max(self.cap * 2));
        bigger.extend_from_slice(self.as_slice());
        *self = bigger;
    }

    fn extend_from_slice(&mut self, s: &[u8]) {
        self.reserve(s.len());
        // SAFETY: reserved above; the regions cannot overlap (we own ours).
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.as_ptr().add(self.len), s.len()) };
        self.len += s.len();
    }

    /// Zero-pad to a multiple of `align`.
    fn pad_to(&mut self, align: usize) {
        let want = self.len.div_ceil(align) * align;
        self.reserve(want - self.len);
        // SAFETY: reserved above.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, want - self.len) };
        self.len = want;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record;

    fn records(path: &Path) -> Vec<u64> {
        let data = std::fs::read(path).expect("read segment");
        let mut pos = 0;
        let mut lsns = Vec::new();
        while let Some((rec, _, next)) = record::next(&data, pos).expect("valid records") {
            lsns.push(rec.lsn);
            pos = next;
        }
        lsns
    }

    /// Under target/: O_DIRECT needs a real filesystem, /tmp may be tmpfs.
    fn test_dir(name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "target/shardis-writer-{}-{}",
            name,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// What the ring does with a write: pwrite at the given offset.
    fn perform(op: &WriteOp) -> i32 {
        // SAFETY: the op points into a buffer the writer keeps until on_write.
        unsafe { libc::pwrite(op.fd, op.ptr as *const libc::c_void, op.len as usize, op.offset as i64) as i32 }
    }

    fn ping(w: &mut Writer) {
        w.append(0, 0, 0, |b| b.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"));
    }

    /// Records written through the ring (explicit offsets) and then by the
    /// shutdown flush land one after another, buffered or direct.
    #[test]
    fn shutdown_flush_appends_after_ring_writes() {
        for policy in [Fsync::No, Fsync::Always] {
            let dir = test_dir("flush");
            let mut w = Writer::open(&dir, 0, 1, policy, 1 << 20).expect("open");
            for _ in 0..3 {
                ping(&mut w);
            }
            let op = w.next_write(0).expect("a write");
            assert!(w.on_write(op.seq, perform(&op), 0).is_none());
            assert_eq!(w.written_lsn, 3);
            ping(&mut w);
            w.flush_sync().expect("flush");
            assert_eq!(records(w.segment_path()), vec![1, 2, 3, 4], "{policy:?}");
            assert_eq!(w.durable_lsn, 4);
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// With direct I/O several writes are in flight; the durable lsn only
    /// moves over writes completed in order.
    #[test]
    fn durable_lsn_advances_in_order_over_concurrent_writes() {
        let dir = test_dir("order");
        let mut w = Writer::open(&dir, 0, 1, Fsync::Always, 1 << 20).expect("open");
        if w.dio_block == 0 {
            return; // no O_DIRECT here: one write at a time, nothing to test
        }
        ping(&mut w);
        let first = w.next_write(0).expect("first write");
        ping(&mut w);
        ping(&mut w);
        let second = w.next_write(0).expect("second write while the first is in flight");
        assert_eq!(second.offset % w.dio_block as u64, 0, "writes start on a block");
        assert!(w.on_write(second.seq, perform(&second), 0).is_none());
        assert_eq!(w.durable_lsn, 0, "the first write is not done yet");
        assert!(w.next_write(0).is_none(), "a completed write is never submitted again");
        assert!(w.must_hold_replies());
        assert!(w.on_write(first.seq, perform(&first), 0).is_none());
        assert_eq!((w.written_lsn, w.durable_lsn), (3, 3));
        assert!(!w.must_hold_replies());
        assert_eq!(records(w.segment_path()), vec![1, 2, 3]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A rotation never blocks: the old segment's and the directory's syncs
    /// are handed out, and until they complete nothing past the old
    /// segment's last record is durable.
    #[test]
    fn rotation_syncs_go_through_the_ring_and_cap_durability() {
        let dir = test_dir("rotate");
        let mut w = Writer::open(&dir, 0, 1, Fsync::EverySec, 1).expect("open");
        ping(&mut w);
        let op = w.next_write(0).expect("first write");
        assert!(w.on_write(op.seq, perform(&op), 0).is_none());
        let first = w.segment_path().to_path_buf();
        ping(&mut w);
        let op = w.next_write(0).expect("second write, in a new segment");
        assert_ne!(w.segment_path(), first.as_path());
        assert!(w.on_write(op.seq, perform(&op), 0).is_none());
        assert!(w.busy(), "the rotation's syncs are pending");
        // An everysec fsync of the new segment alone does not make lsn 1
        // (in the old segment) durable.
        let later = crate::util::now_ms() + 2000;
        let (fd, upto) = w.due_fsync(later).expect("due");
        // SAFETY: an fd the writer owns.
        assert_eq!(unsafe { libc::fdatasync(fd) }, 0);
        w.on_fsync(0, upto, later).expect("fsync");
        assert_eq!(w.durable_lsn, 0, "lsn 1, in the old segment, is not synced yet");
        let mut n = 0;
        while let Some(fd) = w.next_rotation_sync() {
            // SAFETY: fds the writer keeps open until the syncs complete.
            assert_eq!(unsafe { libc::fsync(fd) }, 0);
            n += 1;
        }
        assert_eq!(n, 2, "the directory and the old segment");
        assert_eq!(w.durable_lsn, 0);
        w.on_rotation_sync(0).expect("sync");
        w.on_rotation_sync(0).expect("sync");
        assert_eq!(w.durable_lsn, 2);
        assert!(!w.busy());
        assert_eq!(records(&first), vec![1]);
        assert_eq!(records(w.segment_path()), vec![2]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// everysec and no: output may reveal a record once its write()
    /// completed (the page cache survives a kill -9), not before, and long
    /// before its fsync; while writes fail nothing is held (new writes get
    /// MISCONF instead).
    #[test]
    fn everysec_and_no_release_output_when_the_write_completes() {
        for policy in [Fsync::EverySec, Fsync::No] {
            let dir = test_dir("release");
            let mut w = Writer::open(&dir, 0, 1, policy, 1 << 20).expect("open");
            ping(&mut w);
            assert!(w.must_hold_replies(), "{policy:?}");
            let op = w.next_write(0).expect("a write");
            ping(&mut w);
            assert_eq!(w.release_lsn(), 0, "{policy:?}: nothing written yet");
            assert!(w.on_write(op.seq, -libc::ENOSPC, 0).is_none());
            assert_eq!(w.release_lsn(), 2, "{policy:?}: a failing disk holds nothing");
            let op = w.next_write(200).expect("the retry");
            assert!(w.on_write(op.seq, perform(&op), 200).is_none());
            assert_eq!(w.release_lsn(), 1, "{policy:?}: the retried write completed");
            let op = w.next_write(200).expect("the second record");
            assert!(w.on_write(op.seq, perform(&op), 200).is_none());
            assert_eq!(w.release_lsn(), 2);
            assert!(!w.must_hold_replies());
            if policy == Fsync::EverySec {
                assert_eq!(w.durable_lsn, 0, "not synced yet, released all the same");
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// A write the kernel cuts short (past MAX_WRITE, a nearly full disk)
    /// goes on from where it stopped, never from its start again; direct
    /// I/O from the block boundary below.
    #[test]
    fn a_short_write_resumes_where_it_stopped() {
        for policy in [Fsync::EverySec, Fsync::Always] {
            let dir = test_dir("short");
            let mut w = Writer::open(&dir, 0, 1, policy, 1 << 20).expect("open");
            for _ in 0..100 {
                ping(&mut w);
            }
            let op = w.next_write(0).expect("a write");
            let block = w.block;
            // The kernel wrote the first blocks and says it wrote 100 bytes
            // more (only possible buffered; rounded down under direct I/O).
            let written = (op.len as usize / 2) / block * block;
            let part = WriteOp { len: written as u32, ..op };
            assert_eq!(perform(&part), written as i32);
            let claimed = written + if block == 1 { 0 } else { 100 };
            let rest = w.on_write(op.seq, claimed as i32, 0).expect("the rest of the write");
            assert_eq!((rest.offset, rest.len), (op.offset + written as u64, op.len - written as u32), "{policy:?}");
            // SAFETY: both point into the write's buffer.
            assert_eq!(rest.ptr, unsafe { op.ptr.add(written) });
            assert_eq!(w.written_lsn, 0, "not written until all of it is");
            assert!(w.on_write(rest.seq, perform(&rest), 0).is_none());
            assert_eq!(w.written_lsn, 100);
            assert_eq!(records(w.segment_path()), (1..=100).collect::<Vec<u64>>(), "{policy:?}");
            // No progress at all is a failure, retried later, not a loop.
            ping(&mut w);
            let op = w.next_write(0).expect("a write");
            assert!(w.on_write(op.seq, 0, 0).is_none());
            assert!(w.last_write_error.is_some());
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// Without O_DIRECT, `always` writes through the page cache with
    /// RWF_DSYNC: unpadded, one write at a time.
    #[test]
    fn always_without_direct_io_writes_buffered_one_at_a_time() {
        let dir = test_dir("buffered");
        let mut w = Writer::open(&dir, 0, 1, Fsync::Always, 1 << 20).expect("open");
        w.dio_block = 0; // as on a filesystem without O_DIRECT
        ping(&mut w);
        let first = w.next_write(0).expect("a write");
        assert!(first.dsync);
        ping(&mut w);
        assert!(w.next_write(0).is_none(), "one buffered write at a time");
        assert!(w.on_write(first.seq, perform(&first), 0).is_none());
        assert_eq!(w.durable_lsn, 1);
        let second = w.next_write(0).expect("the next write");
        assert_eq!(second.offset, first.len as u64, "no padding between buffered writes");
        assert!(w.on_write(second.seq, perform(&second), 0).is_none());
        assert_eq!(w.durable_lsn, 2);
        assert_eq!(records(w.segment_path()), vec![1, 2]);
        std::fs::remove_dir_all(&dir).ok();
    }
}

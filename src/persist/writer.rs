//! One shard's AOF writer: frames records into a buffer and tracks what is
//! written and what is durable. It does no I/O on the hot path itself: the
//! shard loop asks `next_write` for the bytes to hand to io_uring (a write,
//! linked with an fdatasync under `always`), and reports completions back.
//! Two buffers alternate so records keep being appended while a write is in
//! flight; everything appended meanwhile goes out in the next write, which
//! is what makes `always` a group commit.

use super::record;
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

/// A write to submit: `len` bytes at `ptr` to `fd` at `offset`; `fsync`
/// links an fdatasync after it.
pub struct WriteOp {
    pub fd: RawFd,
    pub ptr: *const u8,
    pub len: u32,
    pub offset: u64,
    pub fsync: bool,
    /// The lsn the linked fdatasync makes durable.
    pub upto: u64,
}

pub struct Writer {
    pub shard: usize,
    dir: PathBuf,
    pub policy: Fsync,
    segment_size: u64,
    file: File,
    seg_path: PathBuf,
    /// Bytes in the current segment (written or in flight).
    file_len: u64,
    /// lsn the next record gets.
    next_lsn: u64,
    /// Records appended, not yet handed to the kernel.
    buf: Vec<u8>,
    /// The write in flight (never touched until it completes) and how
    /// much of it the kernel has taken.
    writing: Vec<u8>,
    writing_done: usize,
    writing_last_lsn: u64,
    pub write_inflight: bool,
    /// fdatasyncs in flight. Under `always` a new write + fdatasync pair
    /// may go out while earlier fdatasyncs run: writes never overlap, so an
    /// fdatasync that completes covers every write finished before it was
    /// issued, and durable = the highest lsn any completed one covered.
    pub fsyncs_inflight: u32,
    /// Highest lsn handed to the kernel (survives a process crash).
    pub written_lsn: u64,
    /// Highest lsn known to be on disk (survives a power loss).
    pub durable_lsn: u64,
    pub last_fsync_ms: i64,
    /// everysec: times an fsync was due while the previous one still ran.
    pub delayed_fsync: u64,
    /// Bytes of all segments since start-up, for INFO aof_current_size.
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
        let (file, seg_path) = create_segment(dir, next_lsn)?;
        Ok(Writer {
            shard,
            dir: dir.to_path_buf(),
            policy,
            segment_size,
            file,
            seg_path,
            file_len: 0,
            next_lsn,
            buf: Vec::with_capacity(64 * 1024),
            writing: Vec::with_capacity(64 * 1024),
            writing_done: 0,
            writing_last_lsn: 0,
            write_inflight: false,
            fsyncs_inflight: 0,
            written_lsn: next_lsn - 1,
            durable_lsn: next_lsn - 1,
            last_fsync_ms: crate::util::now_ms(),
            delayed_fsync: 0,
            total_bytes: 0,
            last_write_error: None,
            rotate_requested: false,
            retry_at_ms: 0,
        })
    }

    /// lsn of the last record appended.
    pub fn appended_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Under `always`, replies must wait while anything appended is not
    /// yet durable.
    #[inline]
    pub fn must_hold_replies(&self) -> bool {
        self.policy == Fsync::Always && self.durable_lsn < self.next_lsn - 1
    }

    /// Append a record; `payload` writes its commands. Returns its lsn.
    pub fn append(&mut self, txid: u64, participants: u16, db: u8, payload: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        record::append(&mut self.buf, lsn, txid, participants, db, payload);
        lsn
    }

    /// The next write to submit, if records wait and no write is in flight.
    pub fn next_write(&mut self, now_ms: i64) -> Option<WriteOp> {
        if self.write_inflight {
            return None;
        }
        if self.writing_done < self.writing.len() {
            // A failed write waits for its retry time (a full disk must not
            // turn into a busy loop), then goes out again from where it stopped.
            if now_ms < self.retry_at_ms {
                return None;
            }
            self.write_inflight = true;
            return Some(self.write_op(self.policy == Fsync::Always));
        }
        if self.buf.is_empty() {
            return None;
        }
        let want_rotate = self.file_len >= self.segment_size || (self.rotate_requested && self.file_len > 0);
        if want_rotate && self.fsyncs_inflight == 0 {
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
        std::mem::swap(&mut self.buf, &mut self.writing);
        self.writing_done = 0;
        self.writing_last_lsn = self.next_lsn - 1;
        self.write_inflight = true;
        Some(self.write_op(self.policy == Fsync::Always))
    }

    fn write_op(&mut self, fsync: bool) -> WriteOp {
        if fsync {
            self.fsyncs_inflight += 1;
        }
        let rest = &self.writing[self.writing_done..];
        WriteOp {
            fd: self.file.as_raw_fd(),
            // SAFETY (for the submitter): `writing` is not touched until the
            // write completes (`on_write` is the only place that changes it).
            ptr: rest.as_ptr(),
            len: rest.len().min(u32::MAX as usize) as u32,
            offset: self.file_len,
            fsync,
            upto: self.writing_last_lsn,
        }
    }

    /// A write completed with `res` bytes (or -errno). Returns a follow-up
    /// write for the rest of the buffer, if any.
    pub fn on_write(&mut self, res: i32, now_ms: i64) -> Option<WriteOp> {
        if res < 0 {
            let e = std::io::Error::from_raw_os_error(-res);
            if self.last_write_error.is_none() {
                crate::log(&format!(
                    "shard {}: AOF write to {} failed: {}; retrying every 100 ms (replies under \
                     appendfsync always wait)",
                    self.shard,
                    self.seg_path.display(),
                    e
                ));
            }
            self.last_write_error = Some(e.to_string());
            // A linked fsync is cancelled with it (its -ECANCELED completion
            // is counted off there); `next_write` retries.
            self.write_inflight = false;
            self.retry_at_ms = now_ms + 100;
            return None;
        }
        if self.last_write_error.is_some() {
            crate::log(&format!("shard {}: AOF writes work again", self.shard));
        }
        self.last_write_error = None;
        self.writing_done += res as usize;
        self.file_len += res as u64;
        self.total_bytes += res as u64;
        if self.writing_done < self.writing.len() {
            // Short write: the linked fsync was cancelled; send the rest.
            return Some(self.write_op(self.policy == Fsync::Always));
        }
        self.written_lsn = self.writing_last_lsn;
        self.writing.clear();
        // A burst (a huge pipeline) must not pin its buffer for good.
        if self.writing.capacity() > 4 << 20 {
            self.writing = Vec::with_capacity(64 * 1024);
        }
        self.write_inflight = false;
        if self.policy == Fsync::No {
            // Nothing more is promised than handing the bytes to the kernel.
            self.durable_lsn = self.written_lsn;
        }
        None
    }

    /// An fdatasync completed. -ECANCELED means its linked write fell short
    /// and a new pair was submitted. Any other error is fatal: after a
    /// failed fsync the page cache can no longer be trusted (as Redis and
    /// PostgreSQL conclude), so the process stops rather than acknowledge.
    pub fn on_fsync(&mut self, res: i32, upto: u64, now_ms: i64) -> Result<(), String> {
        self.fsyncs_inflight = self.fsyncs_inflight.saturating_sub(1);
        if res == -libc::ECANCELED {
            return Ok(());
        }
        if res < 0 {
            return Err(format!(
                "shard {}: fdatasync of {} failed: {}",
                self.shard,
                self.seg_path.display(),
                std::io::Error::from_raw_os_error(-res)
            ));
        }
        self.durable_lsn = self.durable_lsn.max(upto);
        self.last_fsync_ms = now_ms;
        Ok(())
    }

    /// everysec: an fdatasync to submit now (standalone, covering every
    /// completed write) and the lsn it covers, if one is due.
    pub fn due_fsync(&mut self, now_ms: i64) -> Option<(RawFd, u64)> {
        if self.policy != Fsync::EverySec || self.durable_lsn >= self.written_lsn {
            return None;
        }
        if now_ms - self.last_fsync_ms < 1000 {
            return None;
        }
        if self.fsyncs_inflight > 0 {
            self.delayed_fsync += 1;
            return None;
        }
        self.fsyncs_inflight += 1;
        Some((self.file.as_raw_fd(), self.written_lsn))
    }

    /// Start a new segment. The old one is synced first (rare: every
    /// `segment_size` bytes), so durability never depends on a file we
    /// no longer track.
    fn rotate(&mut self) -> Result<(), String> {
        self.file.sync_data().map_err(|e| format!("fdatasync {}: {}", self.seg_path.display(), e))?;
        self.durable_lsn = self.written_lsn;
        let (file, path) = create_segment(&self.dir, self.written_lsn + 1)?;
        self.file = file;
        self.seg_path = path;
        self.file_len = 0;
        Ok(())
    }

    /// Start a new segment before the next write, so a rewrite can delete
    /// the current one once its records are in a base.
    pub fn request_rotation(&mut self) {
        self.rotate_requested = true;
    }

    /// Write and sync everything synchronously (shutdown).
    pub fn flush_sync(&mut self) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        if self.write_inflight {
            return Err("a write is still in flight".into());
        }
        let ctx = |e: std::io::Error| format!("{}: {}", self.seg_path.display(), e);
        // A failed ring write still pending goes first.
        if self.writing_done < self.writing.len() {
            self.file.write_all_at(&self.writing[self.writing_done..], self.file_len).map_err(ctx)?;
            self.file_len += (self.writing.len() - self.writing_done) as u64;
            self.writing.clear();
            self.writing_done = 0;
        }
        // At the end of what was written (the ring writes with explicit
        // offsets: the file's own cursor is still at 0).
        self.file.write_all_at(&self.buf, self.file_len).map_err(ctx)?;
        self.file_len += self.buf.len() as u64;
        self.buf.clear();
        self.file.sync_data().map_err(ctx)?;
        self.written_lsn = self.next_lsn - 1;
        self.durable_lsn = self.written_lsn;
        Ok(())
    }

    pub fn segment_path(&self) -> &Path {
        &self.seg_path
    }
}

fn create_segment(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf), String> {
    let path = dir.join(super::segment_name(first_lsn));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {}", path.display(), e))?;
    // The new name must survive a crash before records in it are acknowledged.
    super::fsync_dir(dir).map_err(|e| format!("fsync {}: {}", dir.display(), e))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record;

    fn records(path: &Path) -> Vec<u64> {
        let data = std::fs::read(path).expect("read segment");
        let mut pos = 0;
        let mut lsns = Vec::new();
        while pos < data.len() {
            let (rec, used) = record::decode(&data[pos..]).expect("valid record");
            lsns.push(rec.lsn);
            pos += used;
        }
        lsns
    }

    /// Records written through the ring (explicit offsets) and then by the
    /// shutdown flush land one after another.
    #[test]
    fn shutdown_flush_appends_after_ring_writes() {
        let dir = std::env::temp_dir().join(format!("shardis-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = Writer::open(&dir, 0, 1, Fsync::No, 1 << 20).expect("open");
        for _ in 0..3 {
            w.append(0, 0, 0, |b| b.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"));
        }
        let op = w.next_write(0).expect("a write");
        // What the ring does: pwrite at the given offset.
        // SAFETY: the op points into the writer's `writing` buffer, untouched until on_write.
        let n = unsafe { libc::pwrite(op.fd, op.ptr as *const libc::c_void, op.len as usize, op.offset as i64) };
        assert!(w.on_write(n as i32, 0).is_none());
        w.append(0, 0, 0, |b| b.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"));
        w.flush_sync().expect("flush");
        assert_eq!(records(w.segment_path()), vec![1, 2, 3, 4]);
        std::fs::remove_dir_all(&dir).ok();
    }
}

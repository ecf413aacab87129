//! The shard's side of the AOF: turning the keyspace's effects log into
//! records, submitting writes and fdatasyncs through the shard's own ring,
//! and holding back replies until what they reveal is durable.
//!
//! Output is gated by lsn: when a connection gets output, it is stamped
//! with the shard's last appended lsn; it is sent only once that lsn is
//! released (`Writer::release_lsn`): on disk under `always`, written into
//! the page cache under `everysec` and `no`. Messages to other shards
//! (replies of forwarded commands, transaction acks) are held the same
//! way, in order. So no reply can reveal a write before it is as durable
//! as the policy promises, whichever connection or shard made it. The
//! cost per request is one lsn comparison; per turn with writes, replies
//! wait for that turn's write completion.

use super::core::{AofIo, Shard};
use super::Msg;
use crate::net::{OP_AOF_EXTEND, OP_AOF_EXTEND_SYNC, OP_AOF_FSYNC, OP_AOF_ROTATE_SYNC, OP_AOF_WRITE};
use crate::persist::manifest::ShardEntry;
use crate::persist::rewrite;
use crate::persist::writer::Fsync;
use std::sync::atomic::Ordering;

impl Shard {
    /// Turn what the commands just did into a record, unless a transaction
    /// or MULTI is collecting them into one.
    #[inline]
    pub fn log_pending(&mut self) {
        if self.aof.is_some() && !self.ks.effects.is_empty() && !self.txn.locked() && self.aof_group == 0 {
            self.log_effects(0, 0);
        }
    }

    /// Write everything in the effects log as one record. An empty record
    /// is still written when `txid` is set: every counted participant of a
    /// transaction must have one.
    pub fn log_effects(&mut self, txid: u64, participants: u16) {
        let Some(w) = self.aof.as_mut() else { return };
        let effects = &mut self.ks.effects;
        if effects.is_empty() && txid == 0 {
            return;
        }
        let first_db = effects.first_db().unwrap_or(0);
        w.append(txid, participants, first_db, |out| {
            let mut cur = first_db;
            effects.drain_each(|db, cmd| {
                if db != cur {
                    let mut nb = [0u8; 24];
                    let n = crate::protocol::reply::fmt_i64(&mut nb, db as i64);
                    crate::keyspace::effects::encode_array(out, [&b"SELECT"[..], n].into_iter(), 2);
                    cur = db;
                }
                out.extend_from_slice(cmd);
            });
        });
    }

    /// Log a keyspace-wide command (FLUSHDB, FLUSHALL, SWAPDB) this shard
    /// just carried out.
    pub fn log_global(&mut self, db: usize, parts: &[&[u8]]) {
        if self.ks.effects.enabled {
            self.ks.effects.push(db, parts);
            self.log_pending();
        }
    }

    /// See `persist::failpoint`.
    pub fn failpoint_txn_partial(&mut self, txid: u64, participants: u16) {
        if self.id != 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
            return;
        }
        self.log_effects(txid, participants);
        if let Some(w) = self.aof.as_mut() {
            let _ = w.flush_sync();
        }
        crate::log("failpoint txn-partial: aborting after shard 0 logged its part of a transaction");
        std::process::abort();
    }

    /// Stamp a connection's new output with the lsn it may reveal.
    #[inline]
    pub fn stamp_output(&self) -> u64 {
        self.aof.as_ref().map_or(0, |w| w.appended_lsn())
    }

    /// The lsn output is held against (output stamped past it waits);
    /// None when nothing is ever held (no AOF).
    #[inline]
    pub fn release_gate(&self) -> Option<u64> {
        self.aof.as_ref().map(|w| w.release_lsn().min(self.sync_ack_gate()))
    }

    /// Hold a message to another shard while writes it may reveal are not
    /// durable; returns it back if it can go now.
    pub fn hold_message(&mut self, to: usize, msg: Msg) -> Option<Msg> {
        let Some(w) = &self.aof else { return Some(msg) };
        let gate = w.release_lsn().min(self.sync_ack_gate());
        if gate >= w.appended_lsn() && self.held_msgs.is_empty() {
            return Some(msg);
        }
        self.held_msgs.push_back((w.appended_lsn(), to, msg));
        None
    }

    /// Hand the records appended this turn to the kernel, and prepare
    /// space ahead of them.
    pub fn submit_aof(&mut self) {
        if self.aof_closing {
            return;
        }
        let now = self.now;
        let Some(w) = self.aof.as_mut() else { return };
        let mut writes = [None, None];
        // Two per turn at most: what came in since the last turn, and a
        // retried one.
        for slot in writes.iter_mut() {
            *slot = w.next_write(now);
        }
        let extend = w.next_extend();
        let fsync = if w.policy == Fsync::Always || w.sync_soon { w.due_fsync(now) } else { None };
        let mut rotation_syncs = [None, None];
        for slot in rotation_syncs.iter_mut() {
            *slot = w.next_rotation_sync();
        }
        let io = &mut self.io.aof;
        io.extend(rotation_syncs.into_iter().flatten().map(|fd| AofIo::RotationSync { fd }));
        io.extend(writes.into_iter().flatten().map(AofIo::Write));
        if let Some((fd, ptr, len, offset)) = extend {
            io.push(AofIo::Extend { fd, ptr, len, offset });
        }
        if let Some((fd, upto)) = fsync {
            io.push(AofIo::Fsync { fd, upto });
        }
    }

    fn on_aof_rotate_sync(&mut self, res: i32) {
        let Some(w) = self.aof.as_mut() else { return };
        if let Err(e) = w.on_rotation_sync(res) {
            crate::log(&format!("fatal: {}; exiting so that nothing unsynced is acknowledged", e));
            std::process::exit(1);
        }
        self.publish_aof_state();
        self.release_held();
        self.maybe_finish_disable();
    }

    fn on_aof_extend(&mut self, res: i32) {
        if let Some(w) = self.aof.as_mut() {
            w.on_extend_write(res);
        }
    }

    fn on_aof_extend_sync(&mut self, res: i32) {
        if let Some(w) = self.aof.as_mut() {
            w.on_extend_sync(res);
        }
        self.maybe_finish_disable();
    }

    /// A completion of one of the AOF's operations (`op`, with the
    /// argument it was submitted with: a write's sequence number, the lsn
    /// an fdatasync covers).
    pub fn on_aof_cqe(&mut self, op: u64, arg: u64, res: i32) {
        match op {
            OP_AOF_WRITE => self.on_aof_write(arg, res),
            OP_AOF_FSYNC => self.on_aof_fsync(res, arg),
            OP_AOF_EXTEND => self.on_aof_extend(res),
            OP_AOF_EXTEND_SYNC => self.on_aof_extend_sync(res),
            OP_AOF_ROTATE_SYNC => self.on_aof_rotate_sync(res),
            _ => {}
        }
    }

    fn on_aof_write(&mut self, seq: u64, res: i32) {
        let Some(w) = self.aof.as_mut() else { return };
        let res = if res >= 0 && injected_write_error(w) { -libc::EIO } else { res };
        if res < 0 && w.policy == Fsync::Always {
            // As Redis: with `always` a write error cannot be papered over.
            crate::log(&format!(
                "fatal: shard {}: AOF write to {} failed ({}) under appendfsync always; exiting",
                self.id,
                w.segment_path().display(),
                std::io::Error::from_raw_os_error(-res)
            ));
            std::process::exit(1);
        }
        let op = w.on_write(seq, res, self.now);
        let took = w.write_took.take();
        if let Some(op) = op {
            self.io.aof.push(AofIo::Write(op));
        }
        // A write's time from composing to completion (io_uring: the loop
        // went on meanwhile); under `always` it is the synced write.
        if let Some((ms, dsync)) = took {
            self.latmon.note(if dsync { "aof-fsync-always" } else { "aof-write" }, ms, self.now);
        }
        self.publish_aof_state();
        self.release_held();
        self.maybe_finish_disable();
    }

    fn on_aof_fsync(&mut self, res: i32, upto: u64) {
        let now = self.now;
        let Some(w) = self.aof.as_mut() else { return };
        if let Err(e) = w.on_fsync(res, upto, now) {
            // Acknowledging anything after this would be a lie.
            crate::log(&format!("fatal: {}; exiting so that nothing unsynced is acknowledged", e));
            std::process::exit(1);
        }
        self.publish_aof_state();
        self.release_held();
        self.maybe_finish_disable();
    }

    fn maybe_finish_disable(&mut self) {
        let idle = self.aof.as_ref().is_some_and(|w| !w.busy());
        if self.aof_closing && idle {
            self.finish_disable_aof();
        }
    }

    /// Send what was waiting for the released lsn to advance (all of it
    /// once the AOF is off).
    pub fn release_held(&mut self) {
        self.check_repl_fences();
        let released = self.release_gate().unwrap_or(u64::MAX);
        while let Some((lsn, _, _)) = self.held_msgs.front() {
            if *lsn > released {
                break;
            }
            if let Some((_, to, msg)) = self.held_msgs.pop_front() {
                self.send_now(to, msg);
            }
        }
        let held = std::mem::take(&mut self.held_conns);
        for idx in held {
            let gate = match self.conns.get(idx as usize) {
                Some(Some(c)) => c.out_gate,
                _ => continue,
            };
            if gate <= released {
                if let Some(Some(c)) = self.conns.get_mut(idx as usize) {
                    c.out_held = false;
                }
                self.mark_dirty_unstamped(idx);
            } else {
                self.held_conns.push(idx);
            }
        }
    }

    /// Every cron tick: the everysec fdatasync, and (shard 0) the
    /// automatic rewrite when the log has grown enough.
    pub fn aof_cron(&mut self) {
        let now = self.now;
        let Some(w) = self.aof.as_mut() else { return };
        if let Some((fd, upto)) = w.due_fsync(now) {
            self.io.aof.push(AofIo::Fsync { fd, upto });
        }
        self.publish_aof_state();
        if self.id == 0 && self.config.auto_aof_rewrite_percentage > 0 {
            let Some(st) = rewrite::status() else { return };
            let growth = rewrite::growth();
            let base = st.base_size.load(Ordering::Relaxed);
            let min = self.config.auto_aof_rewrite_min_size.max(0) as u64;
            let pct = self.config.auto_aof_rewrite_percentage as u64;
            let due = growth >= min && growth * 100 >= base * pct;
            if due && rewrite::auto_allowed(now) && self.start_rewrite() {
                crate::log(&format!(
                    "starting an automatic AOF rewrite: {} MB logged since the last one",
                    growth >> 20
                ));
            }
        }
    }

    /// Tell the rewrite machinery how far this shard's log is durable.
    fn publish_aof_state(&self) {
        let (Some(w), Some(st)) = (&self.aof, rewrite::status()) else { return };
        st.durable[self.id].store(w.durable_lsn, Ordering::Release);
        st.log_bytes[self.id].store(w.total_bytes, Ordering::Relaxed);
        // Replicas may read what this shard's clients may read.
        crate::repl::master::notify(self.id, w.release_lsn().min(w.written_lsn));
    }

    /// Begin a rewrite coordinated by this shard; false if one is running
    /// (or the AOF is off).
    pub fn start_rewrite(&mut self) -> bool {
        if self.aof.is_none() || !rewrite::try_begin() {
            return false;
        }
        if self.config.rewrite_method == "snapshot" {
            self.start_snapshot_rewrite();
            return true;
        }
        self.rewrite_lsns = Some(vec![None; self.shared.nshards]);
        for s in 0..self.shared.nshards {
            self.send(s, Msg::RewriteStart { coord: self.id });
        }
        true
    }

    pub fn on_rewrite_lsn(&mut self, shard: usize, lsn: u64) {
        let Some(v) = self.rewrite_lsns.as_mut() else { return };
        v[shard] = Some(lsn);
        if v.iter().all(|x| x.is_some()) {
            let upto: Vec<u64> = v.iter().map(|x| x.unwrap_or(0)).collect();
            self.rewrite_lsns = None;
            rewrite::spawn(std::path::PathBuf::from(&self.config.dir), upto);
        }
    }

    /// CONFIG SET appendonly yes: write this shard's keyspace as its base
    /// (the shard pauses meanwhile, as Redis pauses for its fork), wait for
    /// every shard to commit the new layout (`persist::switch`), then log
    /// from there on.
    pub fn enable_aof(
        &mut self,
        c: &crate::config::Config,
        switch: &crate::persist::switch::AofSwitch,
    ) -> Result<(), String> {
        let root = std::path::Path::new(&c.dir);
        let dir = crate::persist::shard_dir(root, self.id);
        let base = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("creating {}: {}", dir.display(), e))
            .and_then(|()| crate::persist::switch::lsn_above_old_files(&dir))
            .and_then(|lsn| rewrite::write_base(&dir, &self.ks, lsn).map(|(name, _)| (name, lsn)));
        let entry = base.as_ref().ok().map(|(name, lsn)| ShardEntry { base: name.clone(), base_lsn: *lsn });
        // The other shards must see the request before this one blocks.
        let doorbells = std::mem::replace(&mut self.io.doorbells, vec![false; self.shared.nshards]);
        crate::net::ring_doorbells_now(&self.shared, &doorbells);
        switch.base_written(root, self.id, base)?;
        // Committed means every shard, this one included, wrote its base.
        let Some(entry) = entry else { return Err("no base written".into()) };
        let lsn = entry.base_lsn;
        // Committed: what was in the directory before is garbage now.
        rewrite::clean_shard_after_switch(&dir, &entry);
        let policy = Fsync::parse(&c.appendfsync);
        let w = crate::persist::writer::Writer::open(&dir, self.id, lsn + 1, policy, c.aof_segment_size as u64)?;
        self.aof = Some(w);
        self.ks.effects.enabled = true;
        let st = rewrite::init_status(self.shared.nshards);
        st.durable[self.id].store(lsn, Ordering::Release);
        Ok(())
    }

    /// CONFIG SET appendonly no: stop logging. A write still in flight
    /// finishes first (the kernel holds its buffer); held replies go out.
    pub fn disable_aof(&mut self) {
        self.abort_snapshot("the AOF was turned off");
        self.ks.effects.enabled = false;
        self.ks.effects.clear();
        let busy = self.aof.as_ref().is_some_and(|w| w.busy());
        if busy {
            self.aof_closing = true;
            return;
        }
        self.finish_disable_aof();
    }

    fn finish_disable_aof(&mut self) {
        self.aof_closing = false;
        self.aof_shutdown();
        self.aof = None;
        // Nothing is held for durability any more.
        self.release_held();
    }

    /// Shutdown: write and sync what is buffered (no write may be in
    /// flight: called after the ring drained).
    pub fn aof_shutdown(&mut self) {
        if let Some(w) = self.aof.as_mut() {
            if let Err(e) = w.flush_sync() {
                crate::log(&format!("shard {}: final AOF flush failed: {}", self.id, e));
            }
        }
    }
}

/// Failpoint `aof-eio` (see `persist::failpoint`): while a file named
/// `fail-writes` exists in the shard's AOF directory, its writes report
/// EIO, so tests can drive the MISCONF gate and its recovery.
fn injected_write_error(w: &crate::persist::writer::Writer) -> bool {
    crate::persist::failpoint("aof-eio") && w.segment_path().parent().is_some_and(|d| d.join("fail-writes").exists())
}

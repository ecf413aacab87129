//! The shard's side of a snapshot rewrite (`persist::snapshot`): the
//! all-shards barrier that starts it, and the cursor's steps between
//! requests.
//!
//! The barrier: `SnapLock` travels the shards in ascending order, as a
//! cross-shard transaction's lock does; each shard locks itself for the
//! barrier's id, starts its snapshot as of its last appended lsn, and
//! passes it on; the last one unlocks every shard. A shard locked by a
//! transaction defers `SnapLock` until that transaction has logged and
//! unlocked there, and a transaction reaching a shard the barrier holds
//! waits for the unlock. So each cross-shard transaction is before the
//! barrier on every participant (its records are in every participant's
//! base) or after it on every one (in no base): the same all-or-nothing
//! cut recovery applies to log records holds for the bases.

use super::core::Shard;
use super::Msg;
use crate::persist::snapshot::{self, Run, Snapshot};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Shard {
    /// Coordinator: start a snapshot rewrite of every shard (a rewrite was
    /// claimed with `rewrite::try_begin`).
    pub fn start_snapshot_rewrite(&mut self) {
        let id = self.shared.next_txid.fetch_add(1, Ordering::Relaxed);
        let run = Arc::new(Run::new(std::path::PathBuf::from(&self.config.dir), self.shared.nshards));
        if let Some(st) = crate::persist::rewrite::status() {
            st.started.fetch_add(1, Ordering::Relaxed);
        }
        crate::log("AOF rewrite started (snapshot of every shard's live keyspace)");
        self.send_unheld(0, Msg::SnapLock { id, run });
    }

    /// The barrier reached this shard (it is not locked by anything else).
    pub fn on_snap_lock(&mut self, id: u64, run: Arc<Run>) {
        // Everything done so far is in the log before the cut.
        self.log_pending();
        self.txn.lock_for(id);
        self.begin_snapshot(&run);
        let next = self.id + 1;
        if next < self.shared.nshards {
            self.send_unheld(next, Msg::SnapLock { id, run });
        } else {
            for s in 0..self.shared.nshards {
                self.send_unheld(s, Msg::Unlock { txid: id });
            }
        }
    }

    fn begin_snapshot(&mut self, run: &Arc<Run>) {
        let fail = |e: String| run.shard_done(self.id, Err(e));
        if self.ks.snap.is_some() {
            return fail(format!("shard {}: a snapshot is already running", self.id));
        }
        let Some(w) = self.aof.as_mut() else {
            return fail(format!("shard {}: the AOF is off", self.id));
        };
        // Segments before the cut become removable once the base commits.
        w.request_rotation();
        let lsn = w.appended_lsn();
        match snapshot::spawn_writer(run.clone(), self.id, lsn) {
            Ok(tx) => {
                let s = Snapshot::new(lsn, self.id, run.clone(), tx, &self.ks);
                self.ks.snap = Some(Box::new(s));
            }
            Err(e) => fail(e),
        }
    }

    /// Between turns: one bounded step of the running snapshot, if any.
    /// `idle`: the turn had no completions (the step need not yield).
    pub fn snapshot_step(&mut self, idle: bool) {
        let ks = &mut self.ks;
        let Some(snap) = ks.snap.as_deref_mut() else { return };
        let t0 = super::ticks::now();
        let r = snap.step(&ks.dbs, idle);
        // A step is bounded by `snapshot::STEP` plus the last key's
        // value: a big collection shows here (LATENCY, threshold in ms).
        let ms = super::ticks::to_ns(super::ticks::now().wrapping_sub(t0)) / 1_000_000;
        let over = snap.overhead() as u64;
        if let Some(st) = crate::persist::rewrite::status() {
            st.copy_bytes[self.id].store(over, Ordering::Relaxed);
            let total: u64 = st.copy_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
            st.copy_peak.fetch_max(total, Ordering::Relaxed);
        }
        self.latmon.note("aof-snapshot-step", ms, self.now);
        if !matches!(r, Ok(false)) {
            self.ks.snap = None;
        }
    }

    /// How soon the loop should come back for `snapshot_step` (µs, 0 = at
    /// once); None: no snapshot running.
    pub fn snapshot_wait_us(&self) -> Option<u32> {
        self.ks.snap.as_deref().and_then(|s| s.wait_us())
    }

    /// The AOF is being turned off: a running snapshot fails.
    pub fn abort_snapshot(&mut self, why: &str) {
        if let Some(mut s) = self.ks.snap.take() {
            s.fail(why.to_string());
        }
    }
}

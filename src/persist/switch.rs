//! Turning the AOF on at run time (`CONFIG SET appendonly yes`) without a
//! moment where a crash leaves an unloadable or wrong directory.
//!
//! Each shard writes its keyspace as a new base at an lsn above anything in
//! the old files (`lsn_above_old_files`), then waits here until every shard
//! has; the last one to arrive writes the manifest naming the new bases,
//! which is the commit point. Only after it does any shard delete old files
//! or start a new segment. A crash before the commit loads the old layout
//! (new bases are stray files, ignored); after it, the new one (old
//! segments lie wholly below the new bases and are skipped).
//!
//! The shards block while they wait, as Redis pauses for its fork; the
//! wait is bounded so a stuck shard cannot hang the others forever. The
//! outcome is one for all: a shard that gives up waiting aborts the switch
//! for every shard, so one arriving later does not commit a manifest
//! naming a base whose shard has stopped waiting and will never log.

use super::manifest::{Manifest, ShardEntry};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct AofSwitch {
    state: Mutex<State>,
    cv: Condvar,
    /// How long a shard waits for the others before aborting.
    wait: Duration,
}

#[derive(Debug)]
struct State {
    /// Per shard: its new base (file name, lsn) or why it failed.
    bases: Vec<Option<Result<(String, u64), String>>>,
    committed: Option<Result<(), String>>,
}

impl AofSwitch {
    pub fn new(nshards: usize) -> AofSwitch {
        AofSwitch::with_timeout(nshards, WAIT)
    }

    pub fn with_timeout(nshards: usize, wait: Duration) -> AofSwitch {
        AofSwitch { state: Mutex::new(State { bases: vec![None; nshards], committed: None }), cv: Condvar::new(), wait }
    }

    /// Shard `shard` wrote its base (or failed to). Blocks until every
    /// shard has reported and the manifest is written, or the switch is
    /// aborted; Ok means the new layout is committed.
    pub fn base_written(&self, root: &Path, shard: usize, base: Result<(String, u64), String>) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = st.bases.get_mut(shard) {
            *slot = Some(base);
        }
        if st.committed.is_none() && st.bases.iter().all(|b| b.is_some()) {
            if super::failpoint("switch-before-commit") {
                crate::log("failpoint switch-before-commit: aborting");
                std::process::abort();
            }
            let result = commit(root, &st.bases);
            if super::failpoint("switch-after-commit") {
                crate::log("failpoint switch-after-commit: aborting");
                std::process::abort();
            }
            st.committed = Some(result);
            self.cv.notify_all();
        }
        let deadline = std::time::Instant::now() + self.wait;
        while st.committed.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                // Decided for everyone: a shard arriving later must not
                // commit a layout this one will not log in.
                st.committed = Some(Err(format!(
                    "shard {} gave up after {}s waiting for the other shards to write their bases",
                    shard,
                    self.wait.as_secs()
                )));
                self.cv.notify_all();
                break;
            }
            st = self.cv.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        st.committed.clone().unwrap_or_else(|| Err("no outcome".into()))
    }
}

/// Write the manifest naming every shard's new base, if all succeeded.
fn commit(root: &Path, bases: &[Option<Result<(String, u64), String>>]) -> Result<(), String> {
    let mut m = Manifest::new(bases.len());
    for (s, b) in bases.iter().enumerate() {
        match b {
            Some(Ok((name, lsn))) => m.shard[s] = ShardEntry { base_lsn: *lsn, base: name.clone() },
            Some(Err(e)) => return Err(format!("shard {}: {}", s, e)),
            None => return Err(format!("shard {} did not report", s)),
        }
    }
    m.write(root)
}

/// An lsn above every record in a shard directory's old files: above each
/// base's lsn and, for a segment starting at lsn F with B bytes, above
/// F + B (a record takes at least one byte, so it holds fewer than B).
pub fn lsn_above_old_files(dir: &Path) -> Result<u64, String> {
    let mut top = 0u64;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(1),
        Err(e) => return Err(format!("reading {}: {}", dir.display(), e)),
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let size = ent.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some(first) = super::parse_segment_name(&name) {
            top = top.max(first.saturating_add(size));
        } else if let Some(lsn) =
            name.strip_prefix("base-").and_then(|r| r.split('.').next()).and_then(|n| n.parse::<u64>().ok())
        {
            top = top.max(lsn);
        }
    }
    Ok(top + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_shard_commits_and_everyone_learns_the_outcome() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/switch-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("mkdir");
        let sw = std::sync::Arc::new(AofSwitch::new(3));
        let threads: Vec<_> = (0..3)
            .map(|s| {
                let (sw, root) = (sw.clone(), root.clone());
                std::thread::spawn(move || {
                    sw.base_written(&root, s, Ok((super::super::base_name(10 + s as u64), 10 + s as u64)))
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Ok(()));
        }
        let m = Manifest::read(&root).expect("read").expect("a manifest");
        assert_eq!(m.shard.iter().map(|e| e.base_lsn).collect::<Vec<_>>(), vec![10, 11, 12]);
        // One failure: nobody commits, the old manifest stays.
        let sw = AofSwitch::new(1);
        assert!(sw.base_written(&root, 0, Err("disk full".into())).unwrap_err().contains("disk full"));
        assert_eq!(Manifest::read(&root).expect("read").expect("still there").shard.len(), 3);
        std::fs::remove_dir_all(&root).ok();
    }

    /// A shard that gives up waiting aborts the switch for all: a shard
    /// reporting after it does not commit, and the old manifest stays.
    #[test]
    fn a_shard_that_gives_up_aborts_the_switch_for_every_shard() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/switch-abort-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("mkdir");
        Manifest::new(2).write(&root).expect("old manifest");
        let sw = AofSwitch::with_timeout(2, Duration::from_millis(1));
        let base = || Ok((super::super::base_name(10), 10));
        let early = sw.base_written(&root, 0, base());
        assert!(early.as_ref().is_err_and(|e| e.contains("gave up")), "{early:?}");
        let late = sw.base_written(&root, 1, base());
        assert_eq!(late, early, "the late shard learns the same outcome and commits nothing");
        assert_eq!(Manifest::read(&root).expect("read"), Some(Manifest::new(2)), "old layout kept");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn new_lsn_is_above_old_segments_and_bases() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/switch-lsn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(lsn_above_old_files(&dir), Ok(1));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(super::super::segment_name(100)), [1u8; 50]).expect("write");
        std::fs::write(dir.join(super::super::base_name(400)), [1u8; 5]).expect("write");
        assert_eq!(lsn_above_old_files(&dir), Ok(401));
        std::fs::write(dir.join(super::super::segment_name(390)), [1u8; 50]).expect("write");
        assert_eq!(lsn_above_old_files(&dir), Ok(441));
        std::fs::remove_dir_all(&dir).ok();
    }
}

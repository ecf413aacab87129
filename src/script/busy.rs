//! Scripts that run too long (`busy-reply-threshold`).
//!
//! A shard running a script cannot run its loop, so what other shards
//! need to know is in atomics they read and write directly: per shard,
//! whether a script runs there (and which run), whether it is past the
//! threshold, whether it wrote, and a kill request. The running
//! interpreter's count hook (`Watch::tick`) marks the run busy once past
//! the threshold and stops it when a kill names its run. Other shards
//! answer -BUSY while any run is busy, and take SCRIPT KILL / FUNCTION
//! KILL and SHUTDOWN NOSAVE. The busy shard's own clients, new and old,
//! are answered from the hook (see `busy_io`, which lists the few that
//! wait until the script ends).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

/// One shard's running script, as other shards see it.
#[derive(Default)]
pub struct Slot {
    /// The run under way (0: none).
    pub run: AtomicU64,
    /// The run past the threshold.
    pub busy: AtomicBool,
    /// The run is a library function (else an EVAL script).
    pub function: AtomicBool,
    /// The run has written: it can no longer be killed.
    pub wrote: AtomicBool,
    /// A kill request for this run id.
    pub kill: AtomicU64,
    /// The busy function, for FUNCTION STATS: set when a function is
    /// marked busy (so a call that ends in time never takes the lock).
    pub running: Mutex<Option<Running>>,
}

/// A busy function as FUNCTION STATS shows it.
#[derive(Clone)]
pub struct Running {
    pub name: Vec<u8>,
    pub command: Vec<Vec<u8>>,
    pub start: Instant,
}

/// Every shard's slot and the threshold.
pub struct Busy {
    pub threshold_ms: AtomicI64,
    /// Runs past the threshold right now (any shard).
    pub count: AtomicUsize,
    pub shards: Vec<Slot>,
    next_run: AtomicU64,
}

/// How SCRIPT KILL / FUNCTION KILL went.
pub fn kill(b: &Busy, function: bool) -> Result<(), &'static str> {
    let Some(slot) = b.shards.iter().find(|s| s.run.load(Ordering::Acquire) != 0) else {
        return Err(NOTBUSY);
    };
    if slot.wrote.load(Ordering::Acquire) {
        return Err(UNKILLABLE);
    }
    let is_function = slot.function.load(Ordering::Acquire);
    if is_function != function {
        return Err(if is_function { BUSY_FUNCTION } else { BUSY_EVAL });
    }
    let run = slot.run.load(Ordering::Acquire);
    if run == 0 {
        return Err(NOTBUSY);
    }
    slot.kill.store(run, Ordering::Release);
    Ok(())
}

impl Busy {
    pub fn new(nshards: usize, threshold_ms: i64) -> Busy {
        Busy {
            threshold_ms: AtomicI64::new(threshold_ms),
            count: AtomicUsize::new(0),
            shards: (0..nshards).map(|_| Slot::default()).collect(),
            next_run: AtomicU64::new(1),
        }
    }

    /// The BUSY reply for other clients, if a script is past the threshold.
    #[inline]
    pub fn busy_reply(&self) -> Option<&'static str> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let f = self.shards.iter().any(|s| s.busy.load(Ordering::Relaxed) && s.function.load(Ordering::Relaxed));
        Some(if f { BUSY_FUNCTION } else { BUSY_EVAL })
    }

    /// The busy function FUNCTION STATS shows (Err: an EVAL script is
    /// busy, which FUNCTION STATS answers with BUSY, as Redis).
    pub fn running_function(&self) -> Result<Option<Running>, &'static str> {
        if self.count.load(Ordering::Acquire) == 0 {
            return Ok(None);
        }
        for s in &self.shards {
            if let Some(r) = s.running.lock().ok().and_then(|r| r.clone()) {
                return Ok(Some(r));
            }
        }
        Err(BUSY_EVAL)
    }

    /// Start watching a run on shard `idx`.
    pub fn start(self: &Arc<Busy>, idx: usize, function: bool) -> Watch {
        let run = self.next_run.fetch_add(1, Ordering::Relaxed);
        let slot = &self.shards[idx];
        slot.function.store(function, Ordering::Release);
        slot.wrote.store(false, Ordering::Release);
        slot.run.store(run, Ordering::Release);
        Watch {
            busy: self.clone(),
            idx,
            run,
            start: Instant::now(),
            n: 0,
            marked: false,
            killed: false,
            describe: None,
            io: None,
        }
    }
}

/// The running script's side: checked from the interpreter's count hook.
pub struct Watch {
    busy: Arc<Busy>,
    idx: usize,
    run: u64,
    start: Instant,
    n: u32,
    marked: bool,
    pub killed: bool,
    /// A function's name and command (None for EVAL scripts), published
    /// in the slot when the run turns busy.
    pub describe: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    /// This shard's new clients, answered while the run is busy.
    pub io: Option<std::rc::Rc<super::busy_io::BusyIo>>,
}

impl Watch {
    /// Called every `sandbox::HOOK_COUNT` VM instructions; false: stop the
    /// script. Acts on every 16th call (about every 16,000 instructions).
    #[inline]
    pub fn tick(&mut self) -> bool {
        self.n = self.n.wrapping_add(1);
        if !self.n.is_multiple_of(16) && !self.killed {
            return true;
        }
        let slot = &self.busy.shards[self.idx];
        if !self.marked {
            let limit = self.busy.threshold_ms.load(Ordering::Relaxed).max(0) as u128;
            if self.start.elapsed().as_millis() >= limit {
                self.marked = true;
                if let Some((name, command)) = self.describe.take() {
                    if let Ok(mut r) = slot.running.lock() {
                        *r = Some(Running { name, command, start: self.start });
                    }
                }
                slot.busy.store(true, Ordering::Release);
                self.busy.count.fetch_add(1, Ordering::AcqRel);
            }
        }
        if self.marked {
            if let Some(io) = &self.io {
                io.poll(&self.busy);
            }
        }
        if self.killed || slot.kill.load(Ordering::Acquire) == self.run {
            self.killed = true;
            return false;
        }
        true
    }

    /// The script wrote: it can no longer be killed.
    pub fn wrote(&self) {
        self.busy.shards[self.idx].wrote.store(true, Ordering::Release);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(io) = &self.io {
            io.script_ended();
        }
        let slot = &self.busy.shards[self.idx];
        if self.marked {
            if let Ok(mut r) = slot.running.lock() {
                *r = None;
            }
            slot.busy.store(false, Ordering::Release);
            self.busy.count.fetch_sub(1, Ordering::AcqRel);
        }
        slot.run.store(0, Ordering::Release);
    }
}

//! Stopping the server (SIGTERM/SIGINT or SHUTDOWN) without cutting work
//! in half, and without waiting forever for a shard that is stuck.
//!
//! The shards drain together: each stops taking requests and connections,
//! but keeps handling messages from the others, so transactions already
//! under way finish on every participant (pushes, unlocks, acks) and
//! forwarded requests get their replies. A shard leaves its loop only when
//! every shard is draining and nothing is left in flight anywhere (no
//! message posted and unhandled, no shard locked, coordinating or holding
//! a message), then writes and fsyncs its AOF. Each shard gives up waiting
//! for the others after `DRAIN_GRACE`; the process gives up on a shard
//! that does not stop (stuck in a long command) after `PROCESS_GRACE` and
//! exits without it: its acknowledged writes were written before their
//! replies, so this is no worse than a kill -9. A second SIGTERM/SIGINT
//! exits at once, as Redis does.

use super::core::Shard;
use super::Shared;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a draining shard waits for the others to drain.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long the process waits for every shard thread after a stop request.
const PROCESS_GRACE: Duration = Duration::from_secs(8);

/// Set by SIGTERM/SIGINT; every shard checks it each loop turn (its timer
/// wakes it at least `hz` times a second).
pub static SIGNALLED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // Only async-signal-safe calls here: write(2) and _exit(2).
        let msg = b"shardis: second termination signal: exiting now, without waiting for the shards\n";
        // SAFETY: writing a static buffer to a descriptor, then exiting.
        unsafe {
            libc::write(crate::log_fd(), msg.as_ptr() as *const libc::c_void, msg.len());
            libc::_exit(1);
        }
    }
    SIGNALLED.store(true, Ordering::SeqCst);
}

pub fn install_signal_handlers() {
    // SAFETY: the handler only touches atomics and async-signal-safe calls.
    unsafe {
        let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, h);
        libc::signal(libc::SIGINT, h);
    }
}

/// A shard's part in stopping.
#[derive(Default)]
pub struct Drain {
    pub active: bool,
    deadline: Option<Instant>,
}

impl Shared {
    /// Count shard `id` as draining (once), so the others stop waiting for it.
    pub fn enter_drain(&self, id: usize) {
        if !self.in_drain[id].swap(true, Ordering::SeqCst) {
            self.draining.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A shard thread ended: nothing of it is left to wait for.
    pub fn shard_exited(&self, id: usize) {
        self.idle[id].store(true, Ordering::SeqCst);
        self.enter_drain(id);
    }

    /// Every shard drains and nothing is in flight. Read twice around the
    /// idle flags: a message handled between the reads changes `handled`,
    /// one posted and not yet handled shows in `inflight`.
    fn all_drained(&self) -> bool {
        if self.draining.load(Ordering::SeqCst) < self.nshards {
            return false;
        }
        let (h0, f0) = (self.handled.load(Ordering::SeqCst), self.inflight.load(Ordering::SeqCst));
        let idle = self.idle.iter().all(|i| i.load(Ordering::SeqCst));
        let (h1, f1) = (self.handled.load(Ordering::SeqCst), self.inflight.load(Ordering::SeqCst));
        idle && f0 == 0 && f1 == 0 && h0 == h1
    }
}

impl Shard {
    /// A stop was asked for (SHUTDOWN here or on another shard, a signal).
    pub fn stop_requested(&self) -> bool {
        self.stop || self.shared.shutdown.load(Ordering::Relaxed) || SIGNALLED.load(Ordering::Relaxed)
    }

    /// Stop taking requests and connections; keep handling messages.
    pub fn begin_drain(&mut self) {
        self.drain.active = true;
        self.drain.deadline = Some(Instant::now() + DRAIN_GRACE);
        self.stop = true;
        self.shared.enter_drain(self.id);
    }

    /// Called once per turn while draining: may this shard leave its loop?
    pub fn drain_finished(&mut self) -> bool {
        let idle = self.held_msgs.is_empty() && self.self_msgs.is_empty() && self.txn.is_quiet();
        self.shared.idle[self.id].store(idle, Ordering::SeqCst);
        if idle && self.shared.all_drained() {
            return true;
        }
        if self.drain.deadline.is_some_and(|d| Instant::now() >= d) {
            crate::log(&format!(
                "shard {}: other shards did not finish draining within {} s; stopping anyway",
                self.id,
                DRAIN_GRACE.as_secs()
            ));
            return true;
        }
        false
    }
}

/// Wait for the shard threads; once a stop is requested, give up on those
/// still running after `PROCESS_GRACE` and exit the process.
pub fn wait_for_shards(shared: &Shared, handles: Vec<std::thread::JoinHandle<()>>) {
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    let mut stop_seen: Option<Instant> = None;
    loop {
        for h in handles.iter_mut() {
            if h.as_ref().is_some_and(|h| h.is_finished()) {
                if let Some(h) = h.take() {
                    let _ = h.join();
                }
            }
        }
        let running: Vec<String> =
            handles.iter().flatten().map(|h| h.thread().name().unwrap_or("shard").to_string()).collect();
        if running.is_empty() {
            return;
        }
        if stop_seen.is_none() && (SIGNALLED.load(Ordering::SeqCst) || shared.shutdown.load(Ordering::SeqCst)) {
            stop_seen = Some(Instant::now());
        }
        if stop_seen.is_some_and(|t| t.elapsed() >= PROCESS_GRACE) {
            crate::log(&format!(
                "{} did not stop within {} s of the stop request (stuck in a long command?); exiting without \
                 waiting: what it acknowledged was written before the reply",
                running.join(", "),
                PROCESS_GRACE.as_secs()
            ));
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

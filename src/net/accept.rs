//! Arming the listener's multishot accept, and backing off when the process
//! is out of file descriptors.
//!
//! An accept that fails with EMFILE/ENFILE ends the multishot request.
//! Re-arming it at once fails again at once: every shard spun at 100 % CPU
//! with a log line per failure, while the pending connections waited in the
//! backlog anyway. So the accept stays disarmed until a descriptor is freed
//! on this shard, or `BACKOFF_MS` has passed (another shard may have freed
//! one), and the failure is logged at most once per `LOG_EVERY_MS`.

use super::{Net, OP_ACCEPT};
use crate::shard::core::Shard;
use io_uring::{cqueue, opcode, types};

/// Retry a failed accept after this long (checked on the cron tick).
const BACKOFF_MS: i64 = 100;
/// At most one log line per this long about failing accepts.
const LOG_EVERY_MS: i64 = 10_000;

#[derive(Default)]
pub struct AcceptGate {
    /// A multishot accept is in the ring.
    armed: bool,
    /// Out of descriptors: do not re-arm before this time (ms).
    paused_until: Option<i64>,
    /// Failures not logged yet, and when the last line was written.
    unlogged: u64,
    last_log_ms: i64,
}

/// Errors that mean "no descriptor or memory for a new socket now".
fn out_of_resources(res: i32) -> bool {
    [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&-res)
}

impl Net {
    /// Arm the multishot accept unless it is armed, paused or stopping.
    pub(super) fn arm_accept(&mut self, core: &Shard) {
        if self.accept.armed || self.accept.paused_until.is_some() || core.stop {
            return;
        }
        self.accept.armed = true;
        self.push_sqe(opcode::AcceptMulti::new(types::Fd(self.listen_fd)).build().user_data(OP_ACCEPT));
    }

    /// A completion of the multishot accept.
    pub(super) fn on_accept_cqe(&mut self, core: &mut Shard, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.accept.armed = false;
        }
        if res >= 0 && core.drain.active {
            // Stopping: accepted before the accept was disarmed.
            // SAFETY: closing a descriptor we were just given.
            unsafe {
                libc::close(res);
            }
        } else if res >= 0 {
            self.on_accept(core, res);
        } else if out_of_resources(res) {
            self.accept.paused_until = Some(core.now + BACKOFF_MS);
            self.note_accept_failure(core.now, res);
            if more {
                // Still armed: stop it, or the kernel keeps failing for us.
                self.push_sqe(opcode::AsyncCancel::new(OP_ACCEPT).build().user_data(0));
            }
        } else if res != -libc::EAGAIN && res != -libc::EINTR && res != -libc::ECANCELED {
            self.note_accept_failure(core.now, res);
        }
        if !more {
            self.arm_accept(core);
        }
    }

    fn note_accept_failure(&mut self, now: i64, res: i32) {
        let g = &mut self.accept;
        g.unlogged += 1;
        if g.last_log_ms != 0 && now - g.last_log_ms < LOG_EVERY_MS {
            return;
        }
        let n = std::mem::take(&mut g.unlogged);
        g.last_log_ms = now;
        crate::log(&format!(
            "shard {}: accept failed ({} time(s) since the last such line): {}{}",
            self.id,
            n,
            std::io::Error::from_raw_os_error(-res),
            if out_of_resources(res) { "; pausing accepts until a descriptor is freed" } else { "" }
        ));
    }

    /// Cron tick: the backoff is over; try again.
    pub(super) fn accept_tick(&mut self, core: &Shard) {
        if self.accept.paused_until.is_some_and(|t| core.now >= t) {
            self.accept.paused_until = None;
            self.arm_accept(core);
        }
    }

    /// A client's descriptor was closed here: room for a pending one.
    pub(super) fn accept_fd_freed(&mut self, core: &Shard) {
        if self.accept.paused_until.take().is_some() {
            self.arm_accept(core);
        }
    }
}

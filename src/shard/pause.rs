//! CLIENT PAUSE / UNPAUSE, as Redis 7.0 has them.
//!
//! The pause is one state shared by every shard (`Pause` in `Shared`):
//! its end (unix ms) and whether it holds every command (ALL) or only
//! those that may write (WRITE: write commands, the may-replicate ones such
//! as EVAL and PUBLISH, and an EXEC whose queue holds one). A held client's
//! request is put back and the connection waits in `Wait::Paused`; the
//! cron and the UNPAUSE message run it again, and it waits again if the
//! pause still holds it. While paused, keys are not expired (a logically
//! expired key reads as absent, as on a replica) and nothing is evicted.
//! With no pause the cost is one atomic load per request that leaves the
//! hot path.

use super::core::{Conn, Shard, Wait};
use super::Msg;
use crate::cmd::flags::{MAY_REPLICATE, RUNS_QUEUE, WRITE};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

#[derive(Default)]
pub struct Pause {
    /// End of the pause, unix ms (0: none).
    until: AtomicI64,
    /// ALL (every command) rather than WRITE.
    all: AtomicBool,
}

impl Pause {
    /// Whether a pause holds at `now`, and if so whether it is ALL.
    #[inline]
    pub fn active(&self, now: i64) -> Option<bool> {
        let until = self.until.load(Ordering::Acquire);
        (until > now).then(|| self.all.load(Ordering::Acquire))
    }

    /// Pause until `until`; as in Redis a pause already in force is only
    /// extended (its end and mode never shrink).
    fn start(&self, until: i64, all: bool, now: i64) {
        let running = self.active(now).is_some();
        if all || !running {
            self.all.store(all || (running && self.all.load(Ordering::Acquire)), Ordering::Release);
        }
        self.until.fetch_max(until, Ordering::AcqRel);
    }

    fn stop(&self) {
        self.until.store(0, Ordering::Release);
        self.all.store(false, Ordering::Release);
    }
}

impl Shard {
    /// Whether the pause holds this request now (the caller makes it wait).
    #[inline]
    pub fn pause_holds(&self, conn: &Conn, def: &CommandDef) -> bool {
        match self.shared.pause.active(self.now) {
            None => false,
            Some(true) => true,
            Some(false) => {
                let writes = |d: &CommandDef| d.has(WRITE | MAY_REPLICATE);
                writes(def)
                    || (def.has(RUNS_QUEUE)
                        && conn.multi.as_ref().is_some_and(|m| {
                            m.cmds.iter().any(|c| crate::cmd::find(&c.args()).is_some_and(|(_, d)| writes(d)))
                        }))
            }
        }
    }

    /// Put the request back and wait until the pause ends.
    pub fn wait_paused(&mut self, conn: &mut Conn, args: &Args) {
        conn.rpos -= args.buf_len();
        conn.wait = Wait::Paused;
        self.paused.push(conn.conn_ref(self.id));
    }

    /// Run the held clients again (those the pause still holds wait
    /// again), and make the keyspace follow the pause (no expiry, no
    /// eviction while it lasts).
    pub fn wake_paused(&mut self) {
        let paused = self.shared.pause.active(crate::util::now_ms()).is_some();
        self.ks.expire_paused = paused;
        // A pause's mode never narrows while it lasts: whoever it held, it
        // still holds.
        if paused {
            return;
        }
        for r in std::mem::take(&mut self.paused) {
            if let Some(c) = self.conn_mut(r.idx, r.gen) {
                if matches!(c.wait, Wait::Paused) {
                    c.wait = Wait::None;
                    self.runnable.push_back(r.idx);
                }
            }
        }
    }

    /// Tell every shard the pause changed.
    fn announce_pause(&mut self) {
        self.wake_paused();
        let me = self.id;
        for s in (0..self.shared.nshards).filter(|&s| s != me) {
            self.send_now(s, Msg::PauseChanged);
        }
    }

    /// CLIENT PAUSE timeout [WRITE|ALL]
    pub fn cmd_client_pause(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if args.len() > 4 {
            return r.error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(args.get(1))
            ));
        }
        let ms = match crate::util::parse_i64(args.get(2)) {
            Some(ms) if ms < 0 => return r.error("ERR timeout is negative"),
            Some(ms) => ms,
            None => return r.error("ERR timeout is not an integer or out of range"),
        };
        let all = if args.len() == 4 {
            if args.is(3, "all") {
                true
            } else if args.is(3, "write") {
                false
            } else {
                return r.error("ERR CLIENT PAUSE mode must be WRITE or ALL");
            }
        } else {
            true
        };
        let now = crate::util::now_ms();
        self.shared.pause.start(now.saturating_add(ms), all, now);
        r.ok();
        self.announce_pause();
    }

    /// CLIENT UNPAUSE
    pub fn cmd_client_unpause(&mut self, conn: &mut Conn, _: &Args) {
        self.shared.pause.stop();
        Reply::new(&mut conn.out, conn.resp3).ok();
        self.announce_pause();
    }
}

//! A log line when a shard has been stuck for a while: locked by one
//! cross-shard transaction, or holding output and messages for the AOF or
//! for replicas' acknowledgements. Nothing is changed; the line says what
//! the shard waits for, so an operator (or a chaos run) can tell a slow
//! replica from a lost message.

use super::core::Shard;

/// How long a state lasts before it is logged, and how often after that.
const STUCK_MS: i64 = 2_000;
const REPEAT_MS: i64 = 5_000;

#[derive(Default)]
pub struct Watchdog {
    /// The transaction holding the shard and since when (unix ms).
    locked: Option<(u64, i64)>,
    /// Since when something has been held without a pause.
    held_since: Option<i64>,
    last_log: i64,
}

impl Shard {
    /// From `cron`: note what the shard waits for; log it once it lasts.
    pub fn watch_stuck(&mut self) {
        let now = self.now;
        let holder = self.txn.holder();
        let locked_for = match (holder, self.watchdog.locked) {
            (Some(t), Some((was, since))) if t == was => now - since,
            (Some(t), _) => {
                self.watchdog.locked = Some((t, now));
                0
            }
            (None, _) => {
                self.watchdog.locked = None;
                0
            }
        };
        let holding = !self.held_msgs.is_empty() || !self.held_conns.is_empty();
        let held_for = match (holding, self.watchdog.held_since) {
            (true, Some(since)) => now - since,
            (true, None) => {
                self.watchdog.held_since = Some(now);
                0
            }
            (false, _) => {
                self.watchdog.held_since = None;
                0
            }
        };
        if locked_for.max(held_for) < STUCK_MS || now - self.watchdog.last_log < REPEAT_MS {
            return;
        }
        self.watchdog.last_log = now;
        let (appended, durable, release) =
            self.aof.as_ref().map_or((0, 0, 0), |w| (w.appended_lsn(), w.durable_lsn, w.release_lsn()));
        let front =
            self.held_msgs.front().map(|(lsn, to, m)| format!(" (first: lsn {} to shard {}: {})", lsn, to, m.kind()));
        crate::log(&format!(
            "shard {}: stuck: {}; holding {} message(s){} and {} connection(s)' output for {} ms; aof appended {} durable {} released {}; replicas acknowledged {}",
            self.id,
            match holder {
                Some(t) => format!("locked by transaction {} for {} ms, {}", t, locked_for, self.txn.describe()),
                None => format!("not locked, {}", self.txn.describe()),
            },
            self.held_msgs.len(),
            front.unwrap_or_default(),
            self.held_conns.len(),
            held_for,
            appended,
            durable,
            release,
            self.sync_ack_gate(),
        ));
    }
}

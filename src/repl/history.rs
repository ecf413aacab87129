//! What a replica's own log holds of its master's history: per shard, the
//! master's lsn of the same shard number and the replica's own lsn of the
//! record that brought it. After a promotion, replicas of the old master
//! ask to continue from a position in the old master's lsns; this table
//! turns it into one in the new master's own log (PSYNC2-style), where
//! the shard counts of the two are equal (so the old master's shard s is
//! the new master's shard s). In memory and bounded: an older position,
//! or one after a restart, falls back to a full sync of that shard.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

/// Positions kept per shard.
const KEEP: usize = 1 << 16;

#[derive(Default)]
struct Shard {
    replid: String,
    /// (master lsn, own lsn), both increasing.
    points: VecDeque<(u64, u64)>,
}

static HISTORY: OnceLock<Vec<Mutex<Shard>>> = OnceLock::new();

fn shards(n: usize) -> &'static [Mutex<Shard>] {
    HISTORY.get_or_init(|| (0..n).map(|_| Mutex::new(Shard::default())).collect())
}

/// Shard `shard` logged, at its own lsn `own`, master `replid`'s record
/// `lsn` of the same shard number (the last of it).
pub fn note(nshards: usize, shard: usize, replid: &str, lsn: u64, own: u64) {
    let Some(m) = shards(nshards).get(shard) else { return };
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    if g.replid != replid {
        g.replid = replid.to_string();
        g.points.clear();
    }
    if g.points.back().is_some_and(|&(l, o)| l >= lsn || o > own) {
        return;
    }
    if g.points.len() >= KEEP {
        g.points.pop_front();
    }
    g.points.push_back((lsn, own));
}

/// Forget shard `shard`'s history (a full sync replaces its data).
pub fn clear(nshards: usize, shard: usize) {
    if let Some(m) = shards(nshards).get(shard) {
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        g.replid.clear();
        g.points.clear();
    }
}

/// The own lsn after which the log holds exactly `replid`'s history of
/// this shard past `lsn`; None if it is not known (too old, another
/// history, or never seen).
pub fn own_lsn(shard: usize, replid: &str, lsn: u64) -> Option<u64> {
    let m = HISTORY.get()?.get(shard)?;
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    if g.replid != replid {
        return None;
    }
    let i = g.points.binary_search_by_key(&lsn, |&(l, _)| l).ok()?;
    Some(g.points[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_translate_and_reset_with_a_new_history() {
        note(3, 2, "a", 5, 10);
        note(3, 2, "a", 7, 12);
        note(3, 2, "a", 6, 13); // out of order: ignored
        assert_eq!(own_lsn(2, "a", 5), Some(10));
        assert_eq!(own_lsn(2, "a", 7), Some(12));
        assert_eq!(own_lsn(2, "a", 6), None);
        assert_eq!(own_lsn(2, "b", 7), None);
        note(3, 2, "b", 1, 20);
        assert_eq!(own_lsn(2, "a", 7), None);
        assert_eq!(own_lsn(2, "b", 1), Some(20));
        clear(3, 2);
        assert_eq!(own_lsn(2, "b", 1), None);
    }
}

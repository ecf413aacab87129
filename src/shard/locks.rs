//! A shard's lock table for cross-shard transactions (VLL: "VLL: a lock
//! manager redesign for main memory database systems" is the model).
//!
//! A transaction holds either the whole shard (routed MULTI, WATCHed
//! EXEC, a replica applying a master's transaction, a snapshot's cut) or
//! exactly its keys here, all taken at once. Keys are held by the hash of
//! (db, key): two keys whose hashes collide just wait for each other.
//! Locks are exclusive (a read-only key is locked as a written one).
//!
//! Work that cannot run now waits in one FIFO with what it needs. An item
//! may run once nothing held conflicts with it and no item queued *ahead*
//! of it conflicts either, so work on disjoint keys overtakes, work on the
//! same keys keeps its arrival order, and a keyspace-wide request
//! (`Need::All`) lets nothing queued behind it overtake: it cannot starve.
//!
//! Pure logic: `txn` decides what each piece of work needs and runs it.

use std::collections::{HashMap, VecDeque};

/// What a piece of work needs from the lock table to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// The whole keyspace: waits until nothing is held, and nothing queued
    /// behind it overtakes it (keyspace-wide commands, whole-shard locks,
    /// anything whose keys are not known).
    All,
    /// These key hashes (`key_hash`), sorted and deduplicated.
    Keys(Vec<u64>),
    /// No key, but it must stay in order with everything queued (it only
    /// waits for a whole-shard lock): UNWATCH after an EXEC.
    Order,
}

impl Need {
    /// The need of keys `keys` (hashed, sorted, deduplicated).
    pub fn keys<'a>(keys: impl Iterator<Item = (u8, &'a [u8])>) -> Need {
        let mut v: Vec<u64> = keys.map(|(db, k)| key_hash(db, k)).collect();
        v.sort_unstable();
        v.dedup();
        Need::Keys(v)
    }
}

/// The lock table's hash of a key of db `db`.
#[inline]
pub fn key_hash(db: u8, key: &[u8]) -> u64 {
    const SEEDS: ahash::RandomState = ahash::RandomState::with_seeds(0x5348, 0x4152, 0x4449, 0x5320);
    SEEDS.hash_one((db, key))
}

pub struct Locks<T> {
    /// The transaction holding the whole shard.
    whole: Option<u64>,
    /// Held key hashes and the transaction holding each.
    held: HashMap<u64, u64>,
    /// Per transaction holding keys: its key hashes.
    grants: HashMap<u64, Vec<u64>>,
    queue: VecDeque<(T, Need)>,
}

impl<T> Default for Locks<T> {
    fn default() -> Self {
        Locks { whole: None, held: HashMap::new(), grants: HashMap::new(), queue: VecDeque::new() }
    }
}

fn queued_conflict(a: &Need, b: &Need) -> bool {
    match (a, b) {
        (Need::Keys(x), Need::Keys(y)) => sorted_intersect(x, y),
        _ => true,
    }
}

fn sorted_intersect(x: &[u64], y: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

impl<T> Locks<T> {
    /// Anything held or waiting: the one check single-shard work pays.
    #[inline]
    pub fn busy(&self) -> bool {
        self.whole.is_some() || !self.held.is_empty() || !self.queue.is_empty()
    }

    /// A transaction holds the whole shard.
    #[inline]
    pub fn whole(&self) -> Option<u64> {
        self.whole
    }

    /// Some transaction holds keys or the whole shard.
    pub fn any_held(&self) -> bool {
        self.whole.is_some() || !self.held.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn key_locks(&self) -> usize {
        self.held.len()
    }

    fn held_conflict(&self, need: &Need) -> bool {
        if self.whole.is_some() {
            return true;
        }
        match need {
            Need::All => !self.held.is_empty(),
            Need::Keys(ks) => !self.held.is_empty() && ks.iter().any(|k| self.held.contains_key(k)),
            Need::Order => false,
        }
    }

    /// May new work needing `need` run now? Nothing held conflicts with it
    /// and nothing queued does (it would overtake).
    pub fn admits(&self, need: &Need) -> bool {
        !self.held_conflict(need) && !self.queue.iter().any(|(_, q)| queued_conflict(q, need))
    }

    /// `admits` for work that already waited its turn in the queue.
    pub fn admits_held(&self, need: &Need) -> bool {
        !self.held_conflict(need)
    }

    pub fn defer(&mut self, item: T, need: Need) {
        self.queue.push_back((item, need));
    }

    /// Remove and return the first queued item at or after `from` that may
    /// run now, with its position (pass it back as `from`: running an item
    /// only takes locks, so the items before it stay blocked).
    pub fn next_ready(&mut self, from: usize) -> Option<(usize, T)> {
        let i = (from..self.queue.len()).find(|&i| {
            let need = &self.queue[i].1;
            !self.held_conflict(need) && !self.queue.iter().take(i).any(|(_, q)| queued_conflict(q, need))
        })?;
        self.queue.remove(i).map(|(t, _)| (i, t))
    }

    /// Lock the whole shard for `txid` (it was admitted with `Need::All`).
    pub fn lock_whole(&mut self, txid: u64) {
        debug_assert!(self.held.is_empty());
        self.whole = Some(txid);
    }

    /// Lock the keys of `need` for `txid` (admitted with that need).
    pub fn lock_keys(&mut self, txid: u64, need: Need) {
        match need {
            Need::Keys(ks) => {
                for &k in &ks {
                    let prev = self.held.insert(k, txid);
                    debug_assert!(prev.is_none() || prev == Some(txid));
                }
                self.grants.entry(txid).or_default().extend(ks);
            }
            Need::All => self.lock_whole(txid),
            Need::Order => {}
        }
    }

    /// Transaction `txid` holds something here (an empty key set counts).
    pub fn holds(&self, txid: u64) -> bool {
        self.whole == Some(txid) || self.grants.contains_key(&txid)
    }

    /// Release whatever `txid` holds; false if it held nothing.
    pub fn release(&mut self, txid: u64) -> bool {
        let whole = self.whole == Some(txid);
        if whole {
            self.whole = None;
        }
        let Some(ks) = self.grants.remove(&txid) else { return whole };
        for k in ks {
            if self.held.get(&k) == Some(&txid) {
                self.held.remove(&k);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ks: &[&str]) -> Need {
        Need::keys(ks.iter().map(|k| (0u8, k.as_bytes())))
    }

    #[test]
    fn disjoint_keys_run_together_overlapping_wait() {
        let mut l: Locks<u32> = Locks::default();
        assert!(!l.busy());
        assert!(l.admits(&keys(&["a", "b"])));
        l.lock_keys(1, keys(&["a", "b"]));
        assert!(l.busy());
        assert!(l.admits(&keys(&["c"])));
        assert!(!l.admits(&keys(&["b", "c"])));
        assert!(!l.admits(&Need::All));
        assert!(l.admits(&Need::Order));
        assert!(l.release(1));
        assert!(!l.release(1));
        assert!(!l.busy());
    }

    #[test]
    fn queue_keeps_order_of_conflicting_work_and_all_blocks_later_work() {
        let mut l: Locks<u32> = Locks::default();
        l.lock_keys(1, keys(&["a"]));
        l.defer(10, keys(&["a", "x"]));
        // Not held, but queued ahead: "x" must not overtake item 10.
        assert!(!l.admits(&keys(&["x"])));
        assert!(l.admits(&keys(&["y"])));
        l.defer(11, Need::All);
        assert!(!l.admits(&keys(&["y"])), "nothing overtakes a waiting keyspace-wide request");
        l.defer(12, keys(&["z"]));
        assert_eq!(l.next_ready(0), None);
        l.release(1);
        assert_eq!(l.next_ready(0), Some((0, 10)));
        l.lock_keys(2, keys(&["a", "x"]));
        // 11 waits for 2's keys; 12 waits behind 11.
        assert_eq!(l.next_ready(0), None);
        l.release(2);
        assert_eq!(l.next_ready(0), Some((0, 11)));
        assert_eq!(l.next_ready(0), Some((0, 12)));
        assert!(!l.busy());
    }

    #[test]
    fn whole_shard_lock_blocks_everything() {
        let mut l: Locks<u32> = Locks::default();
        l.lock_whole(7);
        assert!(l.holds(7));
        assert!(!l.admits(&keys(&["a"])));
        assert!(!l.admits(&Need::Order));
        l.defer(1, Need::Order);
        l.release(7);
        assert_eq!(l.next_ready(0), Some((0, 1)));
    }

    #[test]
    fn empty_key_set_is_held_and_released() {
        let mut l: Locks<u32> = Locks::default();
        l.lock_keys(3, Need::Keys(Vec::new()));
        assert!(l.holds(3));
        assert!(l.release(3));
        assert!(!l.holds(3));
    }
}

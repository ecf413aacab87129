//! Where a command runs: the slot map (which shard serves each of Redis
//! Cluster's 16384 hash slots) and the one routing decision made from a
//! command's table row and its arguments.
//!
//! Every key-to-shard question in the server goes through a `SlotMap`, so
//! when slots move (cluster mode, resharding) one object changes. Routing
//! decides by the table's flags and key specs, never by command name.
//! Later outcomes (a slot served by another node: MOVED / ASK; keys of one
//! command in different slots under cluster rules: CROSSSLOT) join `Route`
//! here.

use crate::cmd::{self, flags::*, Args, CommandDef};
use crate::util::{key_slot, SLOTS};

/// Which shard serves each hash slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMap {
    shards: usize,
    owner: Box<[u16]>,
}

impl SlotMap {
    /// `shards` contiguous slot ranges of (almost) equal size, in order:
    /// the layout every shardis node starts with.
    pub fn contiguous(shards: usize) -> SlotMap {
        let shards = shards.max(1);
        let owner = (0..SLOTS as usize).map(|slot| (slot * shards / SLOTS as usize) as u16).collect();
        SlotMap { shards, owner }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    #[inline]
    pub fn shard_of_slot(&self, slot: u16) -> usize {
        self.owner[(slot & (SLOTS - 1)) as usize] as usize
    }

    /// The shard serving `key` (its `{hash tag}` honoured).
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> usize {
        if self.shards == 1 {
            return 0;
        }
        self.shard_of_slot(key_slot(key))
    }
}

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// No keys, or every key served here.
    Here,
    /// Every key served by one other shard.
    Shard(usize),
    /// Keys on several shards (ascending, deduplicated): a transaction.
    Shards(Vec<usize>),
    /// Work on every shard's keyspace (DBSIZE, KEYS, FLUSHALL, ...).
    AllShards,
}

/// Route a command that passed lookup and arity.
#[inline]
pub fn route(map: &SlotMap, here: usize, def: &CommandDef, args: &Args) -> Route {
    if def.has(EVERY_SHARD) && map.shards > 1 {
        return Route::AllShards;
    }
    if map.shards == 1 || !def.takes_keys() {
        return Route::Here;
    }
    if def.reach.is_some_and(|f| f(args).is_some()) {
        // Its pattern keys may live elsewhere: a transaction even over one
        // shard, which pulls what the command turns out to read.
        return Route::Shards(key_shards(map, def, args));
    }
    let mut it = cmd::key_positions(def, args);
    let Some(first) = it.next() else { return Route::Here };
    let s0 = map.shard_of(args.get(first));
    for i in it {
        if map.shard_of(args.get(i)) != s0 {
            return Route::Shards(key_shards(map, def, args));
        }
    }
    if s0 == here {
        Route::Here
    } else {
        Route::Shard(s0)
    }
}

/// Shards serving the keys of a command (and those its patterns may
/// reach), ascending, deduplicated.
pub fn key_shards(map: &SlotMap, def: &CommandDef, args: &Args) -> Vec<usize> {
    let mut v: Vec<usize> = cmd::key_positions(def, args).map(|i| map.shard_of(args.get(i))).collect();
    match def.reach.and_then(|f| f(args)) {
        Some(cmd::Reach::Anywhere) if map.shards > 1 => v.extend(0..map.shards),
        Some(cmd::Reach::Slots(slots)) if map.shards > 1 => v.extend(slots.iter().map(|&s| map.shard_of_slot(s))),
        _ => {}
    }
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::OwnedArgs;

    fn routed(map: &SlotMap, here: usize, parts: &[&str]) -> Route {
        let owned = OwnedArgs::from_slices(parts);
        let args = owned.args();
        let (_, def) = cmd::lookup(args.get(0)).expect("known command");
        route(map, here, def, &args)
    }

    /// A key served by `shard`.
    fn key_on(map: &SlotMap, shard: usize, tag: &str) -> String {
        (0..100_000).map(|i| format!("{tag}{i}")).find(|k| map.shard_of(k.as_bytes()) == shard).expect("a key")
    }

    #[test]
    fn contiguous_ranges_cover_every_slot_in_order() {
        for n in [1, 2, 3, 4, 7, 64] {
            let m = SlotMap::contiguous(n);
            let mut last = 0;
            for slot in 0..SLOTS {
                let s = m.shard_of_slot(slot);
                assert!(s == last || s == last + 1, "{n} shards: slot {slot} jumps to {s}");
                // The arithmetic the server has always used.
                assert_eq!(s, slot as usize * n / SLOTS as usize);
                last = s;
            }
            assert_eq!(last, n - 1);
        }
        assert_eq!(SlotMap::contiguous(0).shards(), 1);
    }

    #[test]
    fn hash_tags_keep_keys_together() {
        let m = SlotMap::contiguous(4);
        assert_eq!(m.shard_of(b"{user1}:a"), m.shard_of(b"{user1}:b"));
        assert_eq!(m.shard_of(b"{user1}:a"), m.shard_of(b"user1"));
    }

    #[test]
    fn routes_by_keys_and_flags() {
        let m = SlotMap::contiguous(4);
        let (a0, b0, a2) = (key_on(&m, 0, "a"), key_on(&m, 0, "b"), key_on(&m, 2, "a"));
        assert_eq!(routed(&m, 0, &["GET", &a0]), Route::Here);
        assert_eq!(routed(&m, 1, &["GET", &a0]), Route::Shard(0));
        assert_eq!(routed(&m, 0, &["MSET", &a0, "1", &b0, "2"]), Route::Here);
        assert_eq!(routed(&m, 3, &["MSET", &a2, "1", &a0, "2"]), Route::Shards(vec![0, 2]));
        assert_eq!(routed(&m, 3, &["DEL", &a2, &a0, &a2]), Route::Shards(vec![0, 2]));
        assert_eq!(routed(&m, 1, &["PING"]), Route::Here);
        assert_eq!(routed(&m, 1, &["DBSIZE"]), Route::AllShards);
        // SORT patterns outside the key's slot: a transaction over the
        // shards they may reach (all without a hash tag); inside it, here.
        assert_eq!(routed(&m, 0, &["SORT", &a0, "BY", "w_*"]), Route::Shards(vec![0, 1, 2, 3]));
        assert_eq!(routed(&m, 0, &["SORT", &a0, "BY", "nosort", "GET", "#"]), Route::Here);
        let tag_on_2 = format!("{{{a2}}}w_*");
        assert_eq!(routed(&m, 1, &["SORT_RO", &a0, "GET", &tag_on_2]), Route::Shards(vec![0, 2]));
        assert_eq!(routed(&m, 1, &["SORT", "{x}l", "BY", "{x}w_*"]), Route::Shard(m.shard_of(b"x")));
        // One shard: everything is here.
        let one = SlotMap::contiguous(1);
        assert_eq!(routed(&one, 0, &["MSET", &a2, "1", &a0, "2"]), Route::Here);
        assert_eq!(routed(&one, 0, &["DBSIZE"]), Route::Here);
    }
}

//! Size thresholds at which a compact collection converts to its full
//! structure (Redis's `*-max-listpack-*` / `set-max-intset-entries`).
//! Process-wide because CONFIG SET changes them for every shard at once;
//! a relaxed atomic load is all a command pays.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

pub struct Limit {
    pub name: &'static str,
    value: AtomicI64,
}

impl Limit {
    const fn new(name: &'static str, v: i64) -> Self {
        Limit { name, value: AtomicI64::new(v) }
    }

    #[inline]
    pub fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }

    pub fn set(&self, v: i64) {
        self.value.store(v, Relaxed)
    }
}

pub static HASH_MAX_LISTPACK_ENTRIES: Limit = Limit::new("hash-max-listpack-entries", 512);
pub static HASH_MAX_LISTPACK_VALUE: Limit = Limit::new("hash-max-listpack-value", 64);
pub static SET_MAX_INTSET_ENTRIES: Limit = Limit::new("set-max-intset-entries", 512);
pub static SET_MAX_LISTPACK_ENTRIES: Limit = Limit::new("set-max-listpack-entries", 128);
pub static SET_MAX_LISTPACK_VALUE: Limit = Limit::new("set-max-listpack-value", 64);
pub static ZSET_MAX_LISTPACK_ENTRIES: Limit = Limit::new("zset-max-listpack-entries", 128);
pub static ZSET_MAX_LISTPACK_VALUE: Limit = Limit::new("zset-max-listpack-value", 64);
/// Positive: entries per list node; negative: node size class (-2 = 8 KiB).
pub static LIST_MAX_LISTPACK_SIZE: Limit = Limit::new("list-max-listpack-size", -2);
pub static LIST_COMPRESS_DEPTH: Limit = Limit::new("list-compress-depth", 0);
/// A stream node (Redis's listpack per radix-tree key) closes at this
/// many bytes (0: Redis's 1 GiB cap) or entries (0: no limit).
pub static STREAM_NODE_MAX_BYTES: Limit = Limit::new("stream-node-max-bytes", 4096);
pub static STREAM_NODE_MAX_ENTRIES: Limit = Limit::new("stream-node-max-entries", 100);

/// Every threshold, for CONFIG GET/SET.
pub static ALL: &[&Limit] = &[
    &HASH_MAX_LISTPACK_ENTRIES,
    &HASH_MAX_LISTPACK_VALUE,
    &SET_MAX_INTSET_ENTRIES,
    &SET_MAX_LISTPACK_ENTRIES,
    &SET_MAX_LISTPACK_VALUE,
    &ZSET_MAX_LISTPACK_ENTRIES,
    &ZSET_MAX_LISTPACK_VALUE,
    &LIST_MAX_LISTPACK_SIZE,
    &LIST_COMPRESS_DEPTH,
    &STREAM_NODE_MAX_BYTES,
    &STREAM_NODE_MAX_ENTRIES,
];

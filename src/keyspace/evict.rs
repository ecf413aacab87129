//! `maxmemory` and key eviction, per shard.
//!
//! Each shard enforces its share of `maxmemory` (the limit divided by the
//! shard count) on its own keyspace, so no shard ever waits for another.
//! What a key costs is an estimate kept up to date by the keyspace
//! (`Keyspace::used`); what to evict is chosen as Redis does, by sampling:
//! a few keys per step are scored (idle time, rarity of use, nearness of
//! expiry) and kept in a small pool of the best candidates seen so far,
//! and the best one still present is evicted. The access clock each key
//! carries is Redis's 24-bit `lru` field: seconds for LRU, or minutes and
//! a logarithmic use counter for LFU.
//!
//! Everything here is pure: time comes in as Unix milliseconds and
//! randomness from the caller.

use super::dict::{Dict, Entry};
use super::value::Value;
use super::Keyspace;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

/// Policy names in the order Redis lists them in its CONFIG SET error.
pub const POLICY_NAMES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s.to_ascii_lowercase().as_str() {
            "noeviction" => Policy::NoEviction,
            "allkeys-lru" => Policy::AllkeysLru,
            "allkeys-lfu" => Policy::AllkeysLfu,
            "allkeys-random" => Policy::AllkeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllkeysLru => "allkeys-lru",
            Policy::AllkeysLfu => "allkeys-lfu",
            Policy::AllkeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Only keys with an expiry may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }

    /// The access clock holds an LFU counter rather than an LRU time.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    fn is_random(self) -> bool {
        matches!(self, Policy::AllkeysRandom | Policy::VolatileRandom)
    }

    /// Whether a key may be evicted under this policy at all.
    pub fn eligible(self, e: &Entry) -> bool {
        match self {
            Policy::NoEviction => false,
            p if p.volatile_only() => e.expire() != 0,
            _ => true,
        }
    }
}

/// One shard's share of the memory settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemLimit {
    /// Bytes this shard may use; 0 = no limit.
    pub maxmemory: usize,
    pub policy: Policy,
    /// Keys sampled per eviction step (`maxmemory-samples`).
    pub samples: usize,
    pub lfu: Lfu,
}

impl Default for MemLimit {
    fn default() -> Self {
        MemLimit { maxmemory: 0, policy: Policy::NoEviction, samples: 5, lfu: Lfu::default() }
    }
}

/// The LFU counter's tuning, as Redis's options of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lfu {
    /// `lfu-log-factor`: how slowly the counter grows (default 10: about a
    /// million hits saturate it).
    pub log_factor: u32,
    /// `lfu-decay-time`: minutes per step of an idle key's decay (0: none).
    pub decay_time: u32,
}

impl Default for Lfu {
    fn default() -> Self {
        Lfu { log_factor: 10, decay_time: 1 }
    }
}

// ---- the access clock -------------------------------------------------

/// Largest value of the 24-bit clock.
pub const CLOCK_MAX: u32 = (1 << 24) - 1;
/// LRU clock resolution (Redis's LRU_CLOCK_RESOLUTION).
const LRU_RESOLUTION_MS: i64 = 1000;
/// Counter a new key starts with under LFU, so it is not evicted at once.
pub const LFU_INIT_VAL: u8 = 5;

/// The LRU clock at `now_ms`: seconds, wrapping at 24 bits (194 days).
#[inline]
pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / LRU_RESOLUTION_MS) as u64 & CLOCK_MAX as u64) as u32
}

/// Milliseconds since a key with LRU clock `clock` was last used.
pub fn lru_idle_ms(clock: u32, now_ms: i64) -> u64 {
    let now = lru_clock(now_ms);
    let ticks = if now >= clock { now - clock } else { CLOCK_MAX - clock + now };
    ticks as u64 * LRU_RESOLUTION_MS as u64
}

/// The LFU time at `now_ms`: minutes, wrapping at 16 bits.
#[inline]
fn lfu_minutes(now_ms: i64) -> u32 {
    ((now_ms / 60_000) as u64 & 0xffff) as u32
}

/// An LFU clock: last decrement time (minutes) above an 8-bit counter.
#[inline]
pub fn lfu_pack(now_ms: i64, counter: u8) -> u32 {
    (lfu_minutes(now_ms) << 8) | counter as u32
}

/// The counter of LFU clock `clock` after decay for the minutes since it
/// was last updated (Redis's LFUDecrAndReturn): one step per
/// `decay_time` minutes, none when it is 0.
pub fn lfu_decayed(clock: u32, now_ms: i64, decay_time: u32) -> u8 {
    let last = (clock >> 8) & 0xffff;
    let counter = (clock & 0xff) as u8;
    let now = lfu_minutes(now_ms);
    let elapsed = if now >= last { now - last } else { 0xffff - last + now };
    let periods = elapsed.checked_div(decay_time).unwrap_or(0);
    counter.saturating_sub(periods.min(255) as u8)
}

/// Count one access: the counter grows with probability
/// 1 / ((counter - LFU_INIT_VAL) * log_factor + 1), so it is
/// logarithmic in the number of accesses (Redis's LFULogIncr). `r` is
/// uniform in [0, 1).
pub fn lfu_log_incr(counter: u8, r: f64, log_factor: u32) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// Clock of a key created at `now_ms`.
#[inline]
pub fn new_clock(policy: Policy, now_ms: i64) -> u32 {
    if policy.is_lfu() {
        lfu_pack(now_ms, LFU_INIT_VAL)
    } else {
        lru_clock(now_ms)
    }
}

/// Clock of a key with clock `clock` just used at `now_ms`.
#[inline]
pub fn touched_clock(limit: &MemLimit, clock: u32, now_ms: i64, rnd: &mut u64) -> u32 {
    if limit.policy.is_lfu() {
        let c = lfu_decayed(clock, now_ms, limit.lfu.decay_time);
        lfu_pack(now_ms, lfu_log_incr(c, unit_f64(rnd), limit.lfu.log_factor))
    } else {
        lru_clock(now_ms)
    }
}

/// xorshift64 step mapped to [0, 1): LFU increments need a coin, not a
/// good generator.
fn unit_f64(state: &mut u64) -> f64 {
    let mut x = *state | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// How good a candidate for eviction an entry is: higher goes first.
/// Pool entries keep the score they were sampled with, so scores must
/// not drift with time: LRU scores by when the key was last used (an
/// idle time grows while it waits in the pool, which would rank keys
/// sampled earlier as fresher than they are).
pub fn score(limit: &MemLimit, e: &Entry, now_ms: i64) -> u64 {
    match limit.policy {
        Policy::AllkeysLru | Policy::VolatileLru => {
            let last_use = (now_ms.max(0) as u64).saturating_sub(lru_idle_ms(e.clock(), now_ms));
            u64::MAX - last_use
        }
        Policy::AllkeysLfu | Policy::VolatileLfu => 255 - lfu_decayed(e.clock(), now_ms, limit.lfu.decay_time) as u64,
        // The sooner it expires, the better.
        Policy::VolatileTtl => u64::MAX - e.expire().max(0) as u64,
        _ => 0,
    }
}

// ---- memory estimate ----------------------------------------------------

/// What a typical entry costs besides its value's own allocations: a
/// 16-byte key's entry in a 64-byte size class plus its bucket slot (for
/// MEMORY STATS; `entry_mem` counts each entry's real size class).
pub const ENTRY_OVERHEAD: usize = 64 + 8;
/// An entry's bucket slot.
const BUCKET_SLOT: usize = 8;
/// Malloc overhead of a separately allocated key or string.
const ALLOC_OVERHEAD: usize = 16;

/// Bytes counted for a value, in O(1): every type keeps its own byte count
/// current (big collections count their elements' bytes as they change,
/// so a hash of 1 KB values weighs what it holds, not a fixed cost per
/// field).
pub fn value_mem(v: &Value) -> usize {
    match v {
        Value::Int(_) | Value::Inline { .. } => 0,
        Value::Str { data, .. } => data.capacity() + ALLOC_OVERHEAD,
        other => other.mem_usage() + ALLOC_OVERHEAD,
    }
}

/// Bytes counted for a whole entry.
#[inline]
pub fn entry_mem(e: &Entry) -> usize {
    e.alloc_size() + BUCKET_SLOT + value_mem(&e.value)
}

// ---- the eviction pool -------------------------------------------------

/// Candidates kept between eviction steps (Redis's EVPOOL_SIZE).
pub const POOL_SIZE: usize = 16;

pub struct PoolEntry {
    pub score: u64,
    pub db: u8,
    pub key: Box<[u8]>,
}

/// The best candidates sampled so far, by ascending score.
#[derive(Default)]
pub struct Pool {
    entries: Vec<PoolEntry>,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Consider a sampled key; keeps the `POOL_SIZE` best.
    pub fn offer(&mut self, score: u64, db: u8, key: &[u8]) {
        // A key sampled again replaces its older score.
        if let Some(i) = self.entries.iter().position(|p| p.db == db && &*p.key == key) {
            self.entries.remove(i);
        }
        let full = self.entries.len() >= POOL_SIZE;
        if full && score <= self.entries[0].score {
            return;
        }
        let mut at = self.entries.partition_point(|p| p.score < score);
        if full {
            self.entries.remove(0);
            at -= 1;
        }
        self.entries.insert(at, PoolEntry { score, db, key: key.into() });
    }

    pub fn best_score(&self) -> Option<u64> {
        self.entries.last().map(|e| e.score)
    }

    /// Take the best candidate.
    pub fn pop_best(&mut self) -> Option<PoolEntry> {
        self.entries.pop()
    }
}

/// Sample `samples` eligible keys of `dict` (database `db`) into the pool.
/// Volatile policies look further when keys with a TTL are rare, up to
/// the whole table, so that "no candidate" really means none.
pub fn populate(
    pool: &mut Pool,
    dict: &Dict,
    db: usize,
    limit: &MemLimit,
    now_ms: i64,
    rnd: &mut impl FnMut() -> u64,
) -> usize {
    let policy = limit.policy;
    let samples = limit.samples.max(1);
    let offer = |pool: &mut Pool, e: &Entry| {
        let ok = policy.eligible(e);
        if ok {
            pool.offer(score(limit, e, now_ms), db as u8, e.key());
        }
        ok
    };
    let mut found = 0;
    dict.sample(samples, samples * 10, &mut *rnd, |e| {
        let ok = offer(pool, e);
        found += ok as usize;
        ok
    });
    if found == 0 && policy.volatile_only() {
        dict.sample(samples, usize::MAX, &mut *rnd, |e| {
            let ok = offer(pool, e);
            found += ok as usize;
            ok
        });
    }
    found
}

/// A random eligible key of `dict`, for the random policies.
pub fn pick_random(dict: &Dict, policy: Policy, rnd: &mut impl FnMut() -> u64) -> Option<Box<[u8]>> {
    if !policy.volatile_only() {
        return dict.random(rnd).map(|e| (*e.key()).into());
    }
    let mut pick = None;
    dict.sample(1, usize::MAX, rnd, |e| {
        if e.expire() == 0 {
            return false;
        }
        pick = Some((*e.key()).into());
        true
    });
    pick
}

// ---- the keyspace side ---------------------------------------------------

/// Rounds of sampling one eviction may take when the pool holds only keys
/// deleted since they were sampled.
const MAX_ROUNDS: usize = 64;

impl Keyspace {
    /// Over this shard's share of `maxmemory`.
    #[inline]
    pub fn over_limit(&self) -> bool {
        self.limit.maxmemory != 0 && self.used > self.limit.maxmemory
    }

    pub fn mem_limit(&self) -> MemLimit {
        self.limit
    }

    pub fn set_mem_limit(&mut self, limit: MemLimit) {
        if limit.policy != self.limit.policy {
            // Scores of another policy mean nothing under this one.
            self.pool.clear();
        }
        self.limit = limit;
    }

    /// Evict keys until under the limit; false if the policy allows no
    /// (more) evictions. Evicted keys are logged as DEL and invalidate
    /// WATCHes like any deletion.
    pub fn free_memory(&mut self, now_ms: i64) -> bool {
        if self.expire_paused {
            // CLIENT PAUSE holds evictions too (as Redis's does).
            return true;
        }
        if self.total_keys() == 0 {
            // Nothing stored: whatever the estimate drifted to is wrong.
            self.used = 0;
        }
        if !self.over_limit() {
            return true;
        }
        let start = std::time::Instant::now();
        let freed = self.evict_until_under(now_ms);
        let ms = start.elapsed().as_millis() as u64;
        self.evict_cycle_ms = Some(self.evict_cycle_ms.map_or(ms, |m| m.max(ms)));
        freed
    }

    fn evict_until_under(&mut self, now_ms: i64) -> bool {
        while self.over_limit() {
            let Some((db, key)) = self.eviction_candidate(now_ms) else { return false };
            let mark = self.notify.touched_len();
            if let Some(e) = self.remove(db, &key) {
                if self.lazy.eviction {
                    crate::lazyfree::release(e);
                }
                // Not the running command's change: an event of its own.
                self.notify.cut_touched(mark);
                self.notify.emit(super::notify::EVICTED, "evicted", db, &key);
                self.evicted_keys += 1;
                if self.effects.enabled {
                    self.effects.push(db, &[&b"DEL"[..], &key]);
                }
            }
        }
        true
    }

    fn eviction_candidate(&mut self, now_ms: i64) -> Option<(usize, Box<[u8]>)> {
        let limit = self.limit;
        let policy = limit.policy;
        if policy == Policy::NoEviction {
            return None;
        }
        let mut seed = self.evict_rand;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let usable = |d: &super::Db| if policy.volatile_only() { d.volatile > 0 } else { !d.dict.is_empty() };
        let mut pick = None;
        if policy.is_random() {
            // Databases in turn, as Redis does, so one cannot starve.
            for i in 0..self.dbs.len() {
                let db = (self.evict_next_db + i) % self.dbs.len();
                if usable(&self.dbs[db]) {
                    self.evict_next_db = db + 1;
                    pick = pick_random(&self.dbs[db].dict, policy, &mut rnd).map(|k| (db, k));
                    break;
                }
            }
        } else {
            'rounds: for _ in 0..MAX_ROUNDS {
                let mut found = 0;
                for (db, d) in self.dbs.iter().enumerate() {
                    if usable(d) {
                        found += populate(&mut self.pool, &d.dict, db, &limit, now_ms, &mut rnd);
                    }
                }
                if found == 0 && self.pool.is_empty() {
                    break;
                }
                while let Some(c) = self.pool.pop_best() {
                    let db = c.db as usize;
                    let Some(e) = self.dbs[db].dict.get(&c.key).filter(|e| policy.eligible(e)) else { continue };
                    // Used (or its counter decayed) since it was sampled:
                    // rank it again by what it is now.
                    let now_score = score(&self.limit, e, now_ms);
                    if now_score < c.score && self.pool.best_score().is_some_and(|b| b > now_score) {
                        self.pool.offer(now_score, c.db, &c.key);
                        continue;
                    }
                    pick = Some((db, c.key));
                    break 'rounds;
                }
            }
        }
        self.evict_rand = rnd();
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Keyspace;

    const MIN: i64 = 60_000;

    #[test]
    fn lfu_counter_grows_logarithmically() {
        // Below LFU_INIT_VAL every access counts.
        assert_eq!(lfu_log_incr(0, 0.99, 10), 1);
        assert_eq!(lfu_log_incr(5, 0.99, 10), 6);
        // At 6 the chance is 1/11.
        assert_eq!(lfu_log_incr(6, 0.05, 10), 7);
        assert_eq!(lfu_log_incr(6, 0.1, 10), 6);
        assert_eq!(lfu_log_incr(255, 0.0, 10), 255);
        // Many accesses: about 100 reach ~10, a million stay below 255
        // (Redis's table for lfu-log-factor 10: 100 hits → 10, 1M → 255).
        let mut s = 42u64;
        let mut c = LFU_INIT_VAL;
        for _ in 0..100 {
            c = lfu_log_incr(c, unit_f64(&mut s), 10);
        }
        assert!((8..=13).contains(&c), "100 hits gave {c}");
        for _ in 0..100_000 {
            c = lfu_log_incr(c, unit_f64(&mut s), 10);
        }
        assert!((100..255).contains(&c), "100k hits gave {c}");
    }

    #[test]
    fn lfu_counter_decays_per_minute() {
        let t0 = 28_333_333 * MIN;
        let clock = lfu_pack(t0, 10);
        assert_eq!(lfu_decayed(clock, t0, 1), 10);
        assert_eq!(lfu_decayed(clock, t0 + 59_000, 1), 10);
        assert_eq!(lfu_decayed(clock, t0 + 3 * MIN, 1), 7);
        assert_eq!(lfu_decayed(clock, t0 + 30 * MIN, 1), 0);
        // The 16-bit minute clock wraps (one minute short across the wrap,
        // as Redis's LFUTimeElapsed computes it).
        let late = ((t0 / MIN) | 0xffff) * MIN;
        assert_eq!(lfu_decayed(lfu_pack(late, 9), late + 2 * MIN, 1), 8);
        assert_eq!(lfu_decayed(lfu_pack(late, 9), late + 5 * MIN, 1), 5);
        // Touching decays first, then counts, and restamps the time.
        let mut s = 1;
        let c =
            touched_clock(&MemLimit { policy: Policy::AllkeysLfu, ..Default::default() }, clock, t0 + 3 * MIN, &mut s);
        assert_eq!(c >> 8, lfu_minutes(t0 + 3 * MIN));
        assert!((7..=8).contains(&(c & 0xff)));
    }

    #[test]
    fn lru_idle_wraps() {
        let t = 5_000_000i64;
        assert_eq!(lru_idle_ms(lru_clock(t), t + 10_000), 10_000);
        let clock = CLOCK_MAX - 1;
        let now = (CLOCK_MAX as i64 + 3) * 1000;
        assert_eq!(lru_idle_ms(clock, now), 3 * 1000);
    }

    #[test]
    fn pool_keeps_the_best() {
        let mut p = Pool::default();
        for i in 0..40u64 {
            p.offer(i * 7 % 41, 0, format!("k{i}").as_bytes());
        }
        assert_eq!(p.len(), POOL_SIZE);
        let mut prev = u64::MAX;
        let mut n = 0;
        while let Some(e) = p.pop_best() {
            assert!(e.score <= prev);
            prev = e.score;
            n += 1;
        }
        assert_eq!(n, POOL_SIZE);
        // The 16 best of 0..40 scores are 24..=40 minus the one missing.
        assert!(prev >= 24);
        // Re-offering a key replaces it.
        p.offer(1, 0, b"a");
        p.offer(9, 0, b"a");
        assert_eq!(p.len(), 1);
        assert_eq!(p.pop_best().map(|e| e.score), Some(9));
    }

    fn ks_with(n: usize, volatile_every: usize, now: i64) -> Keyspace {
        let mut ks = Keyspace::new();
        for i in 0..n {
            let exp = if volatile_every > 0 && i % volatile_every == 0 { now + 1000 + i as i64 } else { 0 };
            ks.set(0, format!("k{i}").as_bytes(), Value::from_bytes(b"v"), exp);
        }
        ks
    }

    #[test]
    fn policy_filters_volatile_keys() {
        let now = 1_000_000;
        let mut ks = ks_with(200, 50, now);
        let mut rnd = {
            let mut x = 99u64;
            move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            }
        };
        for p in [Policy::VolatileLru, Policy::VolatileLfu, Policy::VolatileTtl] {
            let limit = MemLimit { maxmemory: 1, policy: p, samples: 5, ..Default::default() };
            let mut pool = Pool::default();
            for _ in 0..20 {
                populate(&mut pool, &ks.dbs[0].dict, 0, &limit, now, &mut rnd);
            }
            while let Some(e) = pool.pop_best() {
                let key = std::str::from_utf8(&e.key).expect("ascii");
                let i: usize = key[1..].parse().expect("number");
                assert_eq!(i % 50, 0, "{key} has no TTL but was a {p:?} candidate");
            }
        }
        // Random volatile picks only volatile keys too.
        for _ in 0..20 {
            let k = pick_random(&ks.dbs[0].dict, Policy::VolatileRandom, &mut rnd).expect("some volatile");
            assert!(ks.peek(0, &k, now).is_some_and(|e| e.expire() != 0));
        }
        // Without volatile keys, nothing can go.
        let mut plain = ks_with(50, 0, now);
        plain.set_mem_limit(MemLimit { maxmemory: 1, policy: Policy::VolatileLru, samples: 5, ..Default::default() });
        assert!(!plain.free_memory(now));
        assert_eq!(plain.total_keys(), 50);
        ks.set_mem_limit(MemLimit { maxmemory: 1, policy: Policy::NoEviction, samples: 5, ..Default::default() });
        assert!(!ks.free_memory(now));
    }

    #[test]
    fn volatile_ttl_evicts_soonest_expiry_first() {
        let now = 1_000_000;
        let mut ks = Keyspace::new();
        // Few enough keys that sampling sees them all.
        for (k, ttl) in [("late", 90_000), ("soon", 1_000), ("mid", 50_000), ("never", 0)] {
            ks.set(0, k.as_bytes(), Value::from_bytes(b"v"), if ttl == 0 { 0 } else { now + ttl });
        }
        let per_key = ks.used / 4;
        ks.set_mem_limit(MemLimit {
            maxmemory: per_key * 3,
            policy: Policy::VolatileTtl,
            samples: 10,
            ..Default::default()
        });
        assert!(ks.free_memory(now));
        assert!(ks.peek(0, b"soon", now).is_none());
        assert_eq!(ks.total_keys(), 3);
        ks.set_mem_limit(MemLimit {
            maxmemory: per_key * 2,
            policy: Policy::VolatileTtl,
            samples: 10,
            ..Default::default()
        });
        assert!(ks.free_memory(now));
        assert!(ks.peek(0, b"mid", now).is_none() && ks.peek(0, b"late", now).is_some());
        assert_eq!(ks.evicted_keys, 2);
    }

    #[test]
    fn lru_evicts_idle_keys_and_logs_dels() {
        let t0 = 10_000_000;
        let mut ks = ks_with(100, 0, t0);
        ks.effects.enabled = true;
        // Keep k0..k9 hot.
        for i in 0..10 {
            ks.lookup(0, format!("k{i}").as_bytes(), t0 + 60_000);
        }
        ks.watch(0, b"k50", 7);
        let full = ks.used;
        ks.set_mem_limit(MemLimit {
            maxmemory: full / 2,
            policy: Policy::AllkeysLru,
            samples: 10,
            ..Default::default()
        });
        assert!(ks.free_memory(t0 + 61_000));
        assert!(ks.used <= full / 2);
        for i in 0..10 {
            assert!(ks.peek(0, format!("k{i}").as_bytes(), t0).is_some(), "hot k{i} evicted");
        }
        let evicted = ks.evicted_keys as usize;
        assert_eq!(ks.total_keys(), 100 - evicted);
        let mut dels = 0;
        ks.effects.drain_each(|_, b| {
            assert!(b.starts_with(b"*2\r\n$3\r\nDEL\r\n"));
            dels += 1;
        });
        assert_eq!(dels, evicted);
        if ks.peek(0, b"k50", t0).is_none() {
            assert!(ks.watch_dirty(7));
        }
    }

    fn recount(ks: &Keyspace) -> usize {
        ks.dbs.iter().flat_map(|d| d.dict.iter()).map(entry_mem).sum()
    }

    /// A client's command, through its admission gates as a shard runs it.
    fn run(ks: &mut Keyspace, parts: &[&str], now: i64) -> String {
        use crate::cmd::admission::{check, Local, Road};
        let (_, def) = crate::cmd::lookup(parts[0].as_bytes()).expect("known command");
        if let Err(refusal) = check(Road::Client, def.flags, &mut Local { now, aof_error: None, read_only: false }, ks)
        {
            return format!("-{}\r\n", refusal.message());
        }
        let args = crate::cmd::OwnedArgs::from_slices(parts);
        let mut out = Vec::new();
        let mut rng = crate::cmd::Rng::new(1);
        let mut ctx = crate::cmd::Ctx::new(ks, 0, now, crate::protocol::reply::Reply::new(&mut out, false), &mut rng);
        crate::cmd::exec(def, &mut ctx, &args.args());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn accounting_follows_changes_in_place() {
        let now = 1_000_000;
        let mut ks = Keyspace::new();
        let big = "x".repeat(100);
        let mut script: Vec<Vec<String>> = Vec::new();
        for i in 0..300 {
            let k = format!("k{}", i % 7);
            let cmd = match i % 10 {
                0 => vec!["APPEND".into(), format!("s{}", i % 3), big.clone()],
                1 => vec!["RPUSH".into(), format!("l{}", i % 2), big.clone(), "a".into()],
                2 => vec!["HSET".into(), format!("h{}", i % 2), format!("f{i}"), big.clone()],
                3 => vec!["SADD".into(), "set".into(), format!("m{i}")],
                4 => vec!["ZADD".into(), "z".into(), i.to_string(), format!("m{i}")],
                5 => vec!["SET".into(), k, big.clone()],
                6 => vec!["LPOP".into(), format!("l{}", i % 2)],
                7 => vec!["DEL".into(), format!("s{}", i % 3), k],
                8 => vec!["SETRANGE".into(), format!("s{}", i % 3), "150".into(), "y".into()],
                _ => vec!["RENAME".into(), "set".into(), "set2".into()],
            };
            script.push(cmd);
        }
        script.push(vec!["COPY".into(), "h0".into(), "h9".into()]);
        script.push(vec!["MSET".into(), "a".into(), "1".into(), "a".into(), big.clone()]);
        for c in &script {
            let parts: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
            run(&mut ks, &parts, now);
            assert_eq!(ks.used, recount(&ks), "after {parts:?}");
        }
        assert!(ks.used_peak >= ks.used);
        ks.flush_db(0);
        assert_eq!(ks.used, 0);
    }

    #[test]
    fn denyoom_commands_get_oom_and_others_run() {
        let now = 1_000_000;
        let mut ks = ks_with(10, 0, now);
        ks.set_mem_limit(MemLimit { maxmemory: 1, policy: Policy::NoEviction, samples: 5, ..Default::default() });
        let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        assert_eq!(run(&mut ks, &["SET", "new", "v"], now), oom);
        assert_eq!(run(&mut ks, &["LPUSH", "l", "v"], now), oom);
        assert_eq!(run(&mut ks, &["GET", "k1"], now), "$1\r\nv\r\n");
        assert_eq!(run(&mut ks, &["DEL", "k1"], now), ":1\r\n");
        // allkeys-random frees what it must, then runs the command.
        ks.set_mem_limit(MemLimit {
            maxmemory: ks.used - 1,
            policy: Policy::AllkeysRandom,
            samples: 5,
            ..Default::default()
        });
        assert_eq!(run(&mut ks, &["SET", "new", "v"], now), "+OK\r\n");
        assert_eq!(ks.evicted_keys, 1);
    }

    #[test]
    fn lfu_counts_accesses_and_object_reports_them() {
        let t = 28_333_333 * 60_000;
        let mut ks = Keyspace::new();
        ks.set_mem_limit(MemLimit { maxmemory: 0, policy: Policy::AllkeysLfu, samples: 5, ..Default::default() });
        run(&mut ks, &["SET", "a", "1"], t);
        assert_eq!(run(&mut ks, &["OBJECT", "FREQ", "a"], t), ":5\r\n");
        for _ in 0..10 {
            run(&mut ks, &["GET", "a"], t);
        }
        // Below ten accesses past LFU_INIT_VAL the counter rises fast.
        let f = run(&mut ks, &["OBJECT", "FREQ", "a"], t);
        assert!(f.as_str() >= ":6\r\n" && f.as_str() <= ":9\r\n", "{f}");
        assert!(run(&mut ks, &["OBJECT", "IDLETIME", "a"], t).starts_with("-ERR An LFU maxmemory policy is selected"));
        ks.set_mem_limit(MemLimit { maxmemory: 0, policy: Policy::AllkeysLru, samples: 5, ..Default::default() });
        run(&mut ks, &["GET", "a"], t);
        assert_eq!(run(&mut ks, &["OBJECT", "IDLETIME", "a"], t + 12_000), ":12\r\n");
        // Looking at a key is not using it (Redis's LOOKUP_NOTOUCH); TOUCH is.
        for cmd in ["TYPE", "TTL", "PTTL", "EXISTS", "OBJECT ENCODING"] {
            let mut parts: Vec<&str> = cmd.split(' ').collect();
            parts.push("a");
            run(&mut ks, &parts, t + 13_000);
        }
        assert_eq!(run(&mut ks, &["OBJECT", "IDLETIME", "a"], t + 14_000), ":14\r\n");
        run(&mut ks, &["TOUCH", "a"], t + 14_000);
        assert_eq!(run(&mut ks, &["OBJECT", "IDLETIME", "a"], t + 15_000), ":1\r\n");
    }

    #[test]
    fn lru_keeps_a_hot_set_while_time_passes() {
        for seed in 1..20u64 {
            let mut ks = Keyspace::new();
            ks.evict_rand = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let big = "v".repeat(1000);
            let mut t = 1_000_000_000;
            for i in 0..100 {
                run(&mut ks, &["SET", &format!("hot{i}"), &big], t);
            }
            let (mut next, mut misses) = (0, 0);
            for round in 0..4 {
                t += 1100;
                for i in 0..100 {
                    let k = format!("hot{i}");
                    if run(&mut ks, &["GET", &k], t).len() < 100 {
                        // A cache refills what it missed.
                        misses += 1;
                        run(&mut ks, &["SET", &k, &big], t);
                    }
                }
                for _ in 0..1000 {
                    // Slow writes: the clock moves on during the round.
                    t += 3;
                    run(&mut ks, &["SET", &format!("cold{next}"), &big], t);
                    next += 1;
                }
                if round == 0 {
                    ks.set_mem_limit(MemLimit {
                        maxmemory: 2 << 20,
                        policy: Policy::AllkeysLru,
                        samples: 10,
                        ..Default::default()
                    });
                }
            }
            // Sampling is an approximation (an unlucky sample of ten may
            // hold no older key), but hot keys almost always stay while
            // over 1500 cold ones go.
            assert!(ks.evicted_keys > 1500);
            assert!(misses <= 5, "seed {seed}: {misses} hot-key misses");
        }
    }

    #[test]
    fn policies_parse_by_name() {
        for n in POLICY_NAMES {
            assert_eq!(Policy::parse(n).map(|p| p.name()), Some(*n));
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllkeysLru));
        assert_eq!(Policy::parse("lru"), None);
    }
}

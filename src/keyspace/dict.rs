//! A chained hash table with Redis's reverse-binary SCAN cursor.
//!
//! std's HashMap cannot say "resume iteration here" in a way that survives
//! a resize, and SCAN promises that every key present for the whole scan is
//! returned at least once. A power-of-two table of bucket chains, scanned
//! by incrementing the cursor's reversed bits, keeps that promise across
//! growth and shrinking, exactly as Redis's dict does.
//!
//! Resizing is incremental, also as in Redis: a grow or shrink allocates
//! the new table and entries move over a bucket per write (and in batches
//! from the shard's cron), so a table of millions of keys never stalls the
//! event loop for the whole move. Lookups check both tables meanwhile.

pub use super::entry::{size_class, Entry, EntryBox};
use super::value::Value;

/// The table. While it grows or shrinks, entries move from `buckets` to
/// `target` a few buckets at a time (Redis's incremental rehashing), so no
/// single operation pays for moving the whole keyspace: every mutating
/// call moves one bucket and the shard's cron moves more within a time
/// budget (`rehash_step`). Outside a rehash `target` is empty.
pub struct Dict {
    /// The table; the old one while rehashing.
    buckets: Vec<Option<EntryBox>>,
    /// The table being rehashed into; empty when not rehashing.
    target: Vec<Option<EntryBox>>,
    /// While rehashing: buckets of `buckets` below this were moved (are
    /// empty). Always < `buckets.len()` then: the last move completes it.
    rehash_idx: usize,
    len: usize,
    hasher: ahash::RandomState,
}

const MIN_BUCKETS: usize = 4;

/// Empty buckets a rehash step may skip per bucket it is asked to move,
/// so a step over a sparse table stays bounded (Redis uses the same 10).
const EMPTY_VISITS_PER_BUCKET: usize = 10;

impl Default for Dict {
    fn default() -> Self {
        Self::new()
    }
}

/// A table of `n` (> 0) empty buckets. Allocated zeroed rather than
/// written: a large allocation then comes as fresh pages the kernel zeroes
/// on first touch, so starting a rehash of a big table does not memset
/// megabytes in the event loop.
fn empty_table(n: usize) -> Vec<Option<EntryBox>> {
    // Only fails for sizes beyond the address space, as Vec would.
    let layout = std::alloc::Layout::array::<Option<EntryBox>>(n).expect("table size overflows");
    debug_assert!(layout.size() > 0);
    // SAFETY: the layout has non-zero size (n > 0); the pointer comes from
    // the global allocator with exactly the layout Vec uses for n elements
    // of capacity n; std guarantees `None::<Box<T>>` is the null pointer,
    // so all-zero memory is n valid `None`s.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut Option<EntryBox>;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

/// Free a table whose buckets are all empty without reading them all.
fn free_empty_table(mut t: Vec<Option<EntryBox>>) {
    debug_assert!(t.iter().all(Option::is_none));
    // SAFETY: shrinking the length is always sound (at worst it leaks the
    // elements cut off); here every element is `None`, which owns nothing.
    unsafe { t.set_len(0) };
}

#[inline(always)]
fn find<'a>(mut cur: Option<&'a Entry>, key: &[u8]) -> Option<&'a Entry> {
    while let Some(e) = cur {
        if e.key() == key {
            return Some(e);
        }
        cur = e.next.as_deref();
    }
    None
}

#[inline(always)]
fn find_mut<'a>(mut cur: Option<&'a mut Entry>, key: &[u8]) -> Option<&'a mut Entry> {
    while let Some(e) = cur {
        if e.key() == key {
            return Some(e);
        }
        cur = e.next.as_deref_mut();
    }
    None
}

/// Unlink and return the entry for `key` from the chain at `link`.
fn unlink(mut link: &mut Option<EntryBox>, key: &[u8]) -> Option<EntryBox> {
    loop {
        match link {
            None => return None,
            Some(e) if e.key() == key => {
                let mut removed = link.take()?;
                *link = removed.next.take();
                return Some(removed);
            }
            Some(e) => link = &mut e.next,
        }
    }
}

/// The link (bucket head or an entry's `next`) holding `key`'s entry.
fn link_of<'a>(link: &'a mut Option<EntryBox>, key: &[u8]) -> Option<&'a mut Option<EntryBox>> {
    let mut p: *mut Option<EntryBox> = link;
    // SAFETY: `p` always points at a link of the chain `link` borrows
    // exclusively for 'a; each step reborrows the next one.
    unsafe {
        loop {
            match &mut *p {
                None => return None,
                Some(e) if e.key() == key => return Some(&mut *p),
                Some(e) => p = &mut e.next,
            }
        }
    }
}

fn visit_chain<F: FnMut(&Entry)>(mut cur: Option<&Entry>, f: &mut F) {
    while let Some(e) = cur {
        f(e);
        cur = e.next.as_deref();
    }
}

/// Drop a chain iteratively: a long chain must not recurse deeply.
fn drop_chain(mut cur: Option<EntryBox>) {
    while let Some(mut e) = cur {
        cur = e.next.take();
    }
}

/// The SCAN cursor after `v` for a table of mask `mask`: increment the
/// reversed bits within the mask.
#[inline]
pub(crate) fn next_cursor(v: u64, mask: u64) -> u64 {
    (v | !mask).reverse_bits().wrapping_add(1).reverse_bits()
}

impl Dict {
    pub fn new() -> Self {
        Dict {
            buckets: Vec::new(),
            target: Vec::new(),
            rehash_idx: 0,
            len: 0,
            hasher: ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a rehash is in progress.
    #[inline]
    pub fn rehashing(&self) -> bool {
        !self.target.is_empty()
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    #[inline]
    fn target_mask(&self) -> usize {
        self.target.len().wrapping_sub(1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key) as usize;
        // A moved bucket of the old table is empty, so looking there first
        // is right in both states; the new table only matters on a miss.
        if let Some(e) = find(self.buckets[h & self.mask()].as_deref(), key) {
            return Some(e);
        }
        if self.rehashing() {
            return find(self.target[h & self.target_mask()].as_deref(), key);
        }
        None
    }

    /// Start loading the bucket and first entry for `key` into cache. Used
    /// on a pipeline before running it, so the misses of many requests
    /// overlap instead of being paid one after another.
    #[inline]
    pub fn prefetch(&self, key: &[u8]) {
        if self.len == 0 {
            return;
        }
        let h = self.hash(key) as usize;
        let idx = h & self.mask();
        let mut slot = &self.buckets[idx];
        if self.rehashing() && idx < self.rehash_idx {
            slot = &self.target[h & self.target_mask()];
        }
        if let Some(e) = slot.as_deref() {
            prefetch_read(e as *const Entry as *const u8);
        }
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        if self.len == 0 {
            return None;
        }
        // Lookups for writing (and the keyspace's reads) help the rehash
        // along, as Redis's dictFind does.
        if self.rehashing() {
            self.rehash_buckets(1);
        }
        self.find_mut(key)
    }

    #[inline]
    fn find_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let h = self.hash(key) as usize;
        let (mask, tmask) = (self.mask(), self.target_mask());
        if let Some(e) = find_mut(self.buckets[h & mask].as_deref_mut(), key) {
            return Some(e);
        }
        if !self.target.is_empty() {
            return find_mut(self.target[h & tmask].as_deref_mut(), key);
        }
        None
    }

    /// Insert or replace. Returns the previous value and expiry if any.
    pub fn insert(&mut self, key: &[u8], value: Value, expire: i64) -> Option<(Value, i64)> {
        // `get_mut` did this call's rehash step; `insert_absent` adds none.
        if let Some(e) = self.get_mut(key) {
            let old_v = std::mem::replace(&mut e.value, value);
            let old_e = e.expire();
            if !e.try_set_expire(expire) {
                self.set_expire(key, expire);
            }
            return Some((old_v, old_e));
        }
        self.insert_absent(key, value, expire);
        None
    }

    /// Insert a key known to be absent.
    pub fn insert_new(&mut self, key: &[u8], value: Value, expire: i64) -> &mut Entry {
        if self.rehashing() {
            self.rehash_buckets(1);
        }
        self.insert_absent(key, value, expire)
    }

    fn insert_absent(&mut self, key: &[u8], value: Value, expire: i64) -> &mut Entry {
        if self.len >= self.buckets.len() || self.rehashing() {
            self.expand_if_needed();
        }
        let h = self.hash(key) as usize;
        // During a rehash new keys go to the new table, so the old one
        // only ever empties.
        let table = if self.target.is_empty() { &mut self.buckets } else { &mut self.target };
        let idx = h & (table.len() - 1);
        let slot = &mut table[idx];
        let next = slot.take();
        let mut new = EntryBox::new(key, value, expire);
        new.next = next;
        let e = slot.insert(new);
        self.len += 1;
        e
    }

    /// Before an insert: start growing when full. A rehash already running
    /// is left to finish first, unless the table it fills is over twice
    /// loaded (inserts outpacing a shrink): then it is finished now.
    #[cold]
    fn expand_if_needed(&mut self) {
        if self.rehashing() {
            if self.len < 2 * self.target.len() {
                return;
            }
            while self.rehash_buckets(usize::MAX) {}
        }
        if self.buckets.is_empty() {
            self.buckets = empty_table(MIN_BUCKETS);
        } else if self.len >= self.buckets.len() {
            self.start_rehash(self.buckets.len() * 2);
        }
    }

    /// Set `key`'s expiry (0 = none). An entry without the expiry slot is
    /// reallocated to get one, so it MOVES: returns it at its address now
    /// (None if the key is absent).
    pub fn set_expire(&mut self, key: &[u8], expire: i64) -> Option<&mut Entry> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key) as usize;
        let idx = h & self.mask();
        let mut link = link_of(&mut self.buckets[idx], key).map(|l| l as *mut Option<EntryBox>);
        if link.is_none() && self.rehashing() {
            let idx = h & self.target_mask();
            link = link_of(&mut self.target[idx], key).map(|l| l as *mut Option<EntryBox>);
        }
        // SAFETY: the link lives in this dict, borrowed exclusively here.
        let link = unsafe { &mut *link? };
        if !link.as_mut()?.try_set_expire(expire) {
            let e = link.take()?;
            *link = Some(e.grow_expire(expire));
        }
        link.as_deref_mut()
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<EntryBox> {
        if self.len == 0 {
            return None;
        }
        if self.rehashing() {
            self.rehash_buckets(1);
        }
        let h = self.hash(key) as usize;
        let idx = h & self.mask();
        let mut removed = unlink(&mut self.buckets[idx], key);
        if removed.is_none() && self.rehashing() {
            let idx = h & self.target_mask();
            removed = unlink(&mut self.target[idx], key);
        }
        let removed = removed?;
        self.len -= 1;
        self.maybe_shrink();
        Some(removed)
    }

    pub fn clear(&mut self) {
        for b in self.buckets.iter_mut().chain(self.target.iter_mut()) {
            drop_chain(b.take());
        }
        free_empty_table(std::mem::take(&mut self.buckets));
        free_empty_table(std::mem::take(&mut self.target));
        self.rehash_idx = 0;
        self.len = 0;
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len * 8 < n && !self.rehashing() {
            self.start_rehash((self.len.next_power_of_two() * 2).max(MIN_BUCKETS));
        }
    }

    fn start_rehash(&mut self, new_size: usize) {
        debug_assert!(!self.rehashing() && !self.buckets.is_empty());
        self.target = empty_table(new_size);
        self.rehash_idx = 0;
    }

    /// Move up to `n` non-empty buckets of the old table to the new one,
    /// skipping at most `10 * n` empty ones. Returns whether the rehash is
    /// still in progress (false once done, or if none was running; true
    /// if a shrink follows at once).
    fn rehash_buckets(&mut self, n: usize) -> bool {
        if !self.rehashing() {
            return false;
        }
        let tmask = self.target_mask();
        let mut moved = 0;
        let mut empty_left = n.saturating_mul(EMPTY_VISITS_PER_BUCKET);
        while moved < n && self.rehash_idx < self.buckets.len() {
            let mut cur = self.buckets[self.rehash_idx].take();
            self.rehash_idx += 1;
            if cur.is_none() {
                empty_left -= 1;
                if empty_left == 0 {
                    break;
                }
                continue;
            }
            while let Some(mut e) = cur {
                cur = e.next.take();
                let idx = (self.hasher.hash_one(e.key()) as usize) & tmask;
                e.next = self.target[idx].take();
                self.target[idx] = Some(e);
            }
            moved += 1;
        }
        if self.rehash_idx < self.buckets.len() {
            return true;
        }
        // Done: the new table becomes the table and the old one is freed.
        let old = std::mem::replace(&mut self.buckets, std::mem::take(&mut self.target));
        free_empty_table(old);
        self.rehash_idx = 0;
        // Removals that came during the rehash may call for a smaller table
        // still; with no removal to come, nothing else would notice. (A grow
        // is left to the next insert.)
        self.maybe_shrink();
        self.rehashing()
    }

    /// Move up to `max_buckets` non-empty buckets of a running rehash.
    /// Returns whether it is still in progress.
    pub fn rehash_for(&mut self, max_buckets: usize) -> bool {
        self.rehash_buckets(max_buckets.max(1))
    }

    /// Work on a running rehash for about `budget` (at least one batch of
    /// 100 buckets), for the shard's cron. Returns whether it is still in
    /// progress.
    pub fn rehash_step(&mut self, budget: std::time::Duration) -> bool {
        if !self.rehashing() {
            return false;
        }
        let start = std::time::Instant::now();
        while self.rehash_buckets(100) {
            if start.elapsed() >= budget {
                return true;
            }
        }
        false
    }

    /// Visit the bucket at `cursor` and return the next cursor (0 = done).
    /// Reverse-binary increment: elements present throughout a full scan are
    /// visited at least once even if the table is resized between calls.
    pub fn scan<F: FnMut(&Entry)>(&self, cursor: u64, mut f: F) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        if !self.rehashing() {
            let mask = self.mask() as u64;
            visit_chain(self.buckets[(cursor & mask) as usize].as_deref(), &mut f);
            return next_cursor(cursor, mask);
        }
        // Two tables: visit the small table's bucket for the cursor, then
        // every bucket of the large table that expands it (those whose low
        // bits equal the cursor's), so whichever table holds an entry now,
        // its bucket is covered; then continue from the small table's next
        // cursor.
        let (small, large) = if self.buckets.len() <= self.target.len() {
            (&self.buckets, &self.target)
        } else {
            (&self.target, &self.buckets)
        };
        let m0 = (small.len() - 1) as u64;
        let m1 = (large.len() - 1) as u64;
        let mut v = cursor;
        visit_chain(small[(v & m0) as usize].as_deref(), &mut f);
        loop {
            visit_chain(large[(v & m1) as usize].as_deref(), &mut f);
            v = next_cursor(v, m1);
            // Stop once the bits only the large mask has wrapped to zero.
            if v & (m0 ^ m1) == 0 {
                return v;
            }
        }
    }

    /// Bucket count, for the active expiry walk. During a rehash this
    /// counts both tables: indexes below the old table's size are its
    /// buckets, the rest the new table's (see `bucket_keys`).
    pub fn buckets(&self) -> usize {
        self.buckets.len() + self.target.len()
    }

    /// The chain of bucket `idx` in the numbering of `buckets()`.
    #[inline]
    fn bucket(&self, idx: usize) -> Option<&Entry> {
        match self.buckets.get(idx) {
            Some(b) => b.as_deref(),
            None => self.target.get(idx - self.buckets.len()).and_then(|b| b.as_deref()),
        }
    }

    /// The range of `buckets()` indexes that can hold entries: during a
    /// rehash the old table's moved buckets are empty.
    #[inline]
    fn live_buckets(&self) -> (usize, usize) {
        let lo = if self.rehashing() { self.rehash_idx } else { 0 };
        (lo, self.buckets() - lo)
    }

    /// Keys in bucket `idx` (numbered as in `buckets()`), for walks that
    /// may delete while iterating.
    pub fn bucket_keys(&self, idx: usize, out: &mut Vec<(Box<[u8]>, i64)>) {
        let mut cur = self.bucket(idx);
        while let Some(e) = cur {
            out.push((e.key().into(), e.expire()));
            cur = e.next.as_deref();
        }
    }

    /// A random entry: pick random buckets until a non-empty one, then a
    /// random element of its chain (the same bias Redis accepts). During a
    /// rehash the buckets are those of both tables not yet moved.
    pub fn random(&self, mut rnd: impl FnMut() -> u64) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        // len > 0, so some bucket in the live range is non-empty.
        let (lo, span) = self.live_buckets();
        loop {
            let idx = lo + (rnd() % span as u64) as usize;
            if let Some(head) = self.bucket(idx) {
                let mut n = 0;
                let mut cur = Some(head);
                while let Some(e) = cur {
                    n += 1;
                    cur = e.next.as_deref();
                }
                let mut pick = (rnd() % n) as usize;
                let mut cur = head;
                while pick > 0 {
                    cur = cur.next.as_deref().expect("counted chain");
                    pick -= 1;
                }
                return Some(cur);
            }
        }
    }

    /// Walk consecutive buckets from a random one, calling `f` on each
    /// entry until it has accepted `count` of them (it returns whether it
    /// took the entry) or `max_buckets` buckets were visited: cheap,
    /// roughly random samples for eviction, as Redis's dictGetSomeKeys.
    pub fn sample(
        &self,
        count: usize,
        max_buckets: usize,
        mut rnd: impl FnMut() -> u64,
        mut f: impl FnMut(&Entry) -> bool,
    ) {
        if self.len == 0 || count == 0 {
            return;
        }
        let (lo, span) = self.live_buckets();
        let mut i = (rnd() % span as u64) as usize;
        let mut taken = 0;
        for _ in 0..max_buckets.min(span) {
            let mut cur = self.bucket(lo + i);
            while let Some(e) = cur {
                if f(e) {
                    taken += 1;
                    if taken >= count {
                        return;
                    }
                }
                cur = e.next.as_deref();
            }
            i += 1;
            if i == span {
                i = 0;
            }
        }
    }

    /// Every entry exactly once (both tables during a rehash).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().chain(self.target.iter()).flat_map(|b| {
            let mut cur = b.as_deref();
            std::iter::from_fn(move || {
                let e = cur?;
                cur = e.next.as_deref();
                Some(e)
            })
        })
    }
}

#[inline(always)]
fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Drop for Dict {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn sv(s: &str) -> Value {
        Value::from_bytes(s.as_bytes())
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000 {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
        }
        assert_eq!(d.len(), 1000);
        assert!(d.get(b"k500").is_some());
        for i in 0..990 {
            assert!(d.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.get(b"k995").is_some());
        assert!(d.get(b"k5").is_none());
    }

    #[test]
    fn setting_an_expiry_moves_the_entry_and_keeps_the_chain() {
        let mut d = Dict::new();
        for i in 0..64 {
            d.insert(format!("key:{i:012}").as_bytes(), sv("v"), 0);
        }
        for i in (0..64).step_by(3) {
            let k = format!("key:{i:012}");
            let e = d.set_expire(k.as_bytes(), 1000 + i).expect("present");
            assert_eq!((e.key(), e.expire()), (k.as_bytes(), 1000 + i));
        }
        assert!(d.set_expire(b"nope", 5).is_none());
        for i in 0..64 {
            let e = d.get(format!("key:{i:012}").as_bytes()).expect("present");
            assert_eq!(e.expire(), if i % 3 == 0 { 1000 + i } else { 0 });
        }
        // Replacing with insert sets or clears it too.
        assert_eq!(d.insert(b"key:000000000001", sv("w"), 9).map(|p| p.1), Some(0));
        assert_eq!(d.insert(b"key:000000000001", sv("w"), 0).map(|p| p.1), Some(9));
        assert_eq!(d.get(b"key:000000000001").map(|e| e.expire()), Some(0));
        assert_eq!(d.len(), 64);
    }

    #[test]
    fn sample_visits_entries() {
        let mut d = Dict::new();
        for i in 0..100 {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
        }
        let mut n = 0;
        let mut x = 7u64;
        d.sample(
            5,
            50,
            || {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                x >> 20
            },
            |_| {
                n += 1;
                true
            },
        );
        assert!(n > 0 && n <= 5);
    }

    #[test]
    fn scan_survives_resize() {
        let mut d = Dict::new();
        for i in 0..500 {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut steps = 0;
        loop {
            cursor = d.scan(cursor, |e| {
                seen.insert(e.key().to_vec());
            });
            steps += 1;
            // Grow the table mid-scan with keys that may or may not be seen.
            if steps == 50 {
                for i in 500..3000 {
                    d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(&format!("k{i}").into_bytes()), "k{i} missed");
        }
    }

    /// Deterministic pseudo-random numbers for the tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 16
        }
    }

    /// Insert until a rehash has started (the dict stays mid-rehash).
    fn dict_mid_rehash(n: usize) -> (Dict, usize) {
        let mut d = Dict::new();
        let mut i = 0;
        while i < n || !d.rehashing() {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
            i += 1;
        }
        (d, i)
    }

    fn keys_of(d: &Dict) -> Vec<Vec<u8>> {
        d.iter().map(|e| e.key().to_vec()).collect()
    }

    #[test]
    fn matches_a_hashmap_model_across_growth_and_shrinking() {
        use std::collections::HashMap;
        let mut d = Dict::new();
        let mut model: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut rng = Lcg(42);
        let (mut saw_grow, mut saw_shrink) = (false, false);
        // Phases: grow to ~30k keys, shrink to ~1.5k, grow again, thin out.
        let phases: [(usize, u64); 4] = [(100_000, 75), (150_000, 2), (100_000, 70), (60_000, 0)];
        let mut op = 0u64;
        for (ops, insert_pct) in phases {
            for _ in 0..ops {
                op += 1;
                let space = 40_000;
                // Key lengths 5..50: some size classes give the expiry slot free.
                let name = |n: u64| format!("key:{n}{}", "x".repeat((n % 41) as usize)).into_bytes();
                let k = name(rng.next() % space);
                let r = rng.next() % 100;
                if r < insert_pct {
                    let exp = if rng.next().is_multiple_of(4) { op as i64 } else { 0 };
                    let prev = model.insert(k.clone(), exp);
                    if prev.is_none() && rng.next().is_multiple_of(2) {
                        let e = d.insert_new(&k, sv("v"), exp);
                        assert_eq!(e.key(), &k[..]);
                    } else {
                        assert_eq!(d.insert(&k, sv("v"), exp).map(|p| p.1), prev);
                    }
                } else if r < insert_pct + 5 {
                    // Set or clear an expiry: entries without the slot move.
                    let exp = if rng.next().is_multiple_of(3) { 0 } else { op as i64 + 7 };
                    let present = model.get_mut(&k).map(|v| *v = exp).is_some();
                    assert_eq!(d.set_expire(&k, exp).map(|e| e.expire()), present.then_some(exp));
                } else {
                    assert_eq!(d.remove(&k).map(|e| e.expire()), model.remove(&k));
                }
                if d.rehashing() {
                    if d.target.len() > d.buckets.len() {
                        saw_grow = true;
                    } else {
                        saw_shrink = true;
                    }
                }
                assert_eq!(d.len(), model.len());
                let probe = name(rng.next() % space);
                assert_eq!(d.get(&probe).map(|e| e.expire()), model.get(&probe).copied());
                if rng.next().is_multiple_of(4) {
                    assert_eq!(d.get_mut(&probe).map(|e| e.expire()), model.get(&probe).copied());
                }
                if op.is_multiple_of(20_000) {
                    let keys = keys_of(&d);
                    assert_eq!(keys.len(), model.len());
                    let set: HashSet<Vec<u8>> = keys.into_iter().collect();
                    assert_eq!(set.len(), model.len());
                    assert!(model.keys().all(|k| set.contains(k)));
                    // A full scan sees every key.
                    let mut seen = HashSet::new();
                    let mut c = 0;
                    loop {
                        c = d.scan(c, |e| {
                            seen.insert(e.key().to_vec());
                        });
                        if c == 0 {
                            break;
                        }
                    }
                    assert_eq!(seen, set);
                }
            }
        }
        assert!(saw_grow && saw_shrink, "grow {saw_grow} shrink {saw_shrink}");
        for k in model.keys() {
            assert!(d.remove(k).is_some());
        }
        assert!(d.is_empty());
        while d.rehash_for(1000) {}
        assert_eq!(d.buckets(), MIN_BUCKETS);
    }

    /// Run a full scan calling `between` after every call; returns what it saw.
    fn scan_all(d: &mut Dict, mut between: impl FnMut(&mut Dict, usize)) -> HashSet<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = d.scan(cursor, |e| {
                seen.insert(e.key().to_vec());
            });
            if cursor == 0 {
                return seen;
            }
            between(d, step);
            step += 1;
        }
    }

    #[test]
    fn scan_during_growth_returns_every_key_present_throughout() {
        let (mut d, n) = dict_mid_rehash(3000);
        let mut next = n;
        let mut rehashing_calls = 0;
        let seen = scan_all(&mut d, |d, step| {
            // Inserts keep growth (and rehashes) happening mid-scan; only
            // for a while, or the scan of an ever-growing table never ends.
            if step >= 400 {
                return;
            }
            for _ in 0..40 {
                d.insert(format!("k{next}").as_bytes(), sv("v"), 0);
                next += 1;
            }
            rehashing_calls += d.rehashing() as usize;
        });
        assert!(rehashing_calls > 10, "scan should overlap rehashes");
        assert!(next > 4 * n, "the table grew several times");
        for i in 0..n {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn scan_during_shrinking_returns_every_key_present_throughout() {
        let mut d = Dict::new();
        for i in 0..20_000 {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
        }
        // Keys k0..k99 stay; the rest go while the scan runs.
        let mut victim = 100;
        let mut rehashing_calls = 0;
        let seen = scan_all(&mut d, |d, _| {
            for _ in 0..200 {
                if victim < 20_000 {
                    assert!(d.remove(format!("k{victim}").as_bytes()).is_some());
                    victim += 1;
                }
            }
            rehashing_calls += d.rehashing() as usize;
        });
        assert!(rehashing_calls > 0, "scan should overlap a shrink");
        for i in 0..100 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn scan_with_mixed_churn_keeps_its_guarantee() {
        let mut rng = Lcg(7);
        for round in 0..20 {
            let mut d = Dict::new();
            let stable = 500 + round * 300;
            for i in 0..stable {
                d.insert(format!("s{i}").as_bytes(), sv("v"), 0);
            }
            let mut next = 0usize;
            let seen = scan_all(&mut d, |d, step| {
                // Churn keys of another prefix: grows and shrinks at random
                // (for a while: a scan of an ever-growing table never ends).
                if step >= 300 {
                    return;
                }
                for _ in 0..(rng.next() % 300) as usize {
                    if rng.next().is_multiple_of(3) && next > 0 {
                        let k = rng.next() as usize % next;
                        d.remove(format!("c{k}").as_bytes());
                    } else {
                        d.insert(format!("c{next}").as_bytes(), sv("v"), 0);
                        next += 1;
                    }
                }
                if rng.next().is_multiple_of(5) {
                    for k in 0..next {
                        d.remove(format!("c{k}").as_bytes());
                    }
                }
            });
            for i in 0..stable {
                assert!(seen.contains(format!("s{i}").as_bytes()), "round {round}: s{i} missed");
            }
        }
    }

    #[test]
    fn iter_and_bucket_walk_see_each_key_once_during_a_rehash() {
        let (mut d, n) = dict_mid_rehash(5000);
        // Move part of the old table so both tables hold entries.
        d.rehash_for(d.buckets.len() / 4);
        assert!(d.rehashing());
        assert!(d.target.iter().any(Option::is_some) && d.buckets.iter().any(Option::is_some));
        let keys = keys_of(&d);
        assert_eq!(keys.len(), n);
        let set: HashSet<Vec<u8>> = keys.into_iter().collect();
        assert_eq!(set.len(), n);
        let mut walked = Vec::new();
        for idx in 0..d.buckets() {
            d.bucket_keys(idx, &mut walked);
        }
        assert_eq!(walked.len(), n);
        for i in 0..n {
            assert!(d.get(format!("k{i}").as_bytes()).is_some());
            d.prefetch(format!("k{i}").as_bytes());
        }
        // Random picks and samples come from the live keys.
        let mut rng = Lcg(3);
        for _ in 0..100 {
            let e = d.random(|| rng.next()).expect("non-empty");
            assert!(set.contains(e.key()));
        }
        let mut sampled = 0;
        d.sample(
            20,
            1000,
            || rng.next(),
            |e| {
                assert!(set.contains(e.key()));
                sampled += 1;
                true
            },
        );
        assert_eq!(sampled, 20);
    }

    #[test]
    fn rehash_step_finishes_a_rehash_and_frees_the_old_table() {
        let (mut d, n) = dict_mid_rehash(1 << 16);
        assert!(d.rehashing());
        let old = d.buckets.len();
        assert!(!d.rehash_step(std::time::Duration::from_secs(10)));
        assert!(!d.rehashing());
        assert_eq!(d.buckets(), old * 2);
        assert!(d.target.capacity() == 0);
        for i in 0..n {
            assert!(d.get(format!("k{i}").as_bytes()).is_some(), "k{i}");
        }
        // A zero budget still makes progress.
        let (mut d, _) = dict_mid_rehash(1 << 12);
        let mut calls = 0;
        while d.rehash_step(std::time::Duration::ZERO) {
            calls += 1;
        }
        assert!(calls > 0 && !d.rehashing());
    }

    #[test]
    fn inserts_outpacing_a_shrink_finish_it_first() {
        let mut d = Dict::new();
        for i in 0..100_000 {
            d.insert(format!("k{i}").as_bytes(), sv("v"), 0);
        }
        while d.rehash_for(usize::MAX) {}
        for i in 0..99_000 {
            d.remove(format!("k{i}").as_bytes());
        }
        // Removals never let a rehash lag far behind.
        assert!(d.len() * 8 >= d.buckets.len() || d.rehashing());
        for i in 0..200_000 {
            d.insert(format!("n{i}").as_bytes(), sv("v"), 0);
            if d.rehashing() {
                assert!(d.len() <= 2 * d.target.len(), "target table over twice loaded");
            } else {
                assert!(d.len() <= d.buckets.len());
            }
        }
        assert_eq!(d.len(), 201_000);
    }

    #[test]
    fn clear_and_drop_during_a_rehash() {
        let (mut d, _) = dict_mid_rehash(10_000);
        d.rehash_for(100);
        d.clear();
        assert!(d.is_empty() && !d.rehashing() && d.buckets() == 0);
        assert!(d.get(b"k1").is_none());
        d.insert(b"a", sv("v"), 0);
        assert!(d.get(b"a").is_some());
        let (d, _) = dict_mid_rehash(10_000);
        drop(d);
    }
}

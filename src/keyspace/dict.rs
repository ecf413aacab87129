//! A chained hash table with Redis's reverse-binary SCAN cursor.
//!
//! std's HashMap cannot say "resume iteration here" in a way that survives
//! a resize, and SCAN promises that every key present for the whole scan is
//! returned at least once. A power-of-two table of bucket chains, scanned
//! by incrementing the cursor's reversed bits, keeps that promise across
//! growth and shrinking, exactly as Redis's dict does.

use super::value::Value;

/// Longest key stored inside its entry.
pub const INLINE_KEY_MAX: usize = 19;

/// A key stored inline in its entry when short (most keys are), so a
/// lookup touches one allocation instead of two. Each variant also holds
/// the entry's 24-bit access clock (Redis's `lru` field: LRU seconds or
/// LFU minutes + counter) in bytes that would otherwise be padding, so
/// the entry stays 72 bytes (an 80-byte malloc chunk).
pub enum Key {
    Inline { len: u8, clock: [u8; 3], buf: [u8; INLINE_KEY_MAX] },
    Heap { clock: [u8; 3], bytes: Box<[u8]> },
}

impl Key {
    pub fn new(b: &[u8]) -> Key {
        if b.len() <= INLINE_KEY_MAX {
            let mut buf = [0u8; INLINE_KEY_MAX];
            buf[..b.len()].copy_from_slice(b);
            Key::Inline { len: b.len() as u8, clock: [0; 3], buf }
        } else {
            Key::Heap { clock: [0; 3], bytes: b.into() }
        }
    }

    /// Heap bytes the key uses beyond its entry.
    #[inline]
    pub fn heap_bytes(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap { bytes, .. } => bytes.len(),
        }
    }

    #[inline]
    pub fn clock(&self) -> u32 {
        let (Key::Inline { clock, .. } | Key::Heap { clock, .. }) = self;
        u32::from_le_bytes([clock[0], clock[1], clock[2], 0])
    }

    /// Store the low 24 bits of `v`.
    #[inline]
    pub fn set_clock(&mut self, v: u32) {
        let (Key::Inline { clock, .. } | Key::Heap { clock, .. }) = self;
        let b = v.to_le_bytes();
        *clock = [b[0], b[1], b[2]];
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf, .. } => &buf[..*len as usize],
            Key::Heap { bytes, .. } => bytes,
        }
    }
}

pub struct Entry {
    pub key: Key,
    pub value: Value,
    /// Absolute expiry in Unix ms; 0 = never. A stored expiry is always in
    /// the future at the time it was set (past ones delete the key).
    pub expire: i64,
    next: Option<Box<Entry>>,
}

pub struct Dict {
    buckets: Vec<Option<Box<Entry>>>,
    len: usize,
    hasher: ahash::RandomState,
}

const MIN_BUCKETS: usize = 4;

impl Default for Dict {
    fn default() -> Self {
        Self::new()
    }
}

impl Dict {
    pub fn new() -> Self {
        Dict {
            buckets: Vec::new(),
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

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let idx = (self.hash(key) as usize) & self.mask();
        let mut cur = self.buckets[idx].as_deref();
        while let Some(e) = cur {
            if &*e.key == key {
                return Some(e);
            }
            cur = e.next.as_deref();
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
        let idx = (self.hash(key) as usize) & self.mask();
        if let Some(e) = self.buckets[idx].as_deref() {
            prefetch_read(e as *const Entry as *const u8);
        }
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        if self.len == 0 {
            return None;
        }
        let idx = (self.hash(key) as usize) & self.mask();
        let mut cur = self.buckets[idx].as_deref_mut();
        while let Some(e) = cur {
            if &*e.key == key {
                return Some(e);
            }
            cur = e.next.as_deref_mut();
        }
        None
    }

    /// Insert or replace. Returns the previous value and expiry if any.
    pub fn insert(&mut self, key: &[u8], value: Value, expire: i64) -> Option<(Value, i64)> {
        if let Some(e) = self.get_mut(key) {
            let old_v = std::mem::replace(&mut e.value, value);
            let old_e = std::mem::replace(&mut e.expire, expire);
            return Some((old_v, old_e));
        }
        self.insert_new(key, value, expire);
        None
    }

    /// Insert a key known to be absent.
    pub fn insert_new(&mut self, key: &[u8], value: Value, expire: i64) -> &mut Entry {
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = (self.hash(key) as usize) & self.mask();
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Entry { key: Key::new(key), value, expire, next }));
        self.len += 1;
        self.buckets[idx].as_deref_mut().expect("just inserted")
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Box<Entry>> {
        if self.len == 0 {
            return None;
        }
        let idx = (self.hash(key) as usize) & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(e) if &*e.key == key => {
                    let mut removed = link.take().expect("matched Some");
                    *link = removed.next.take();
                    self.len -= 1;
                    self.maybe_shrink();
                    return Some(removed);
                }
                Some(e) => link = &mut e.next,
            }
        }
    }

    pub fn clear(&mut self) {
        // Drop chains iteratively: a long chain must not recurse deeply.
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut e) = cur {
                cur = e.next.take();
            }
        }
        self.buckets = Vec::new();
        self.len = 0;
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len * 8 < n {
            self.resize((self.len.next_power_of_two() * 2).max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, new_size: usize) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets.resize_with(new_size, || None);
        let mask = new_size - 1;
        for mut b in old {
            while let Some(mut e) = b {
                b = e.next.take();
                let idx = (self.hasher.hash_one(&*e.key) as usize) & mask;
                e.next = self.buckets[idx].take();
                self.buckets[idx] = Some(e);
            }
        }
    }

    /// Visit the bucket at `cursor` and return the next cursor (0 = done).
    /// Reverse-binary increment: elements present throughout a full scan are
    /// visited at least once even if the table is resized between calls.
    pub fn scan<F: FnMut(&Entry)>(&self, cursor: u64, mut f: F) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(e) = cur {
            f(e);
            cur = e.next.as_deref();
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Bucket count, for the active expiry walk.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Keys in bucket `idx` (for walks that may delete while iterating).
    pub fn bucket_keys(&self, idx: usize, out: &mut Vec<(Box<[u8]>, i64)>) {
        let mut cur = self.buckets.get(idx).and_then(|b| b.as_deref());
        while let Some(e) = cur {
            out.push(((*e.key).into(), e.expire));
            cur = e.next.as_deref();
        }
    }

    /// A random entry: pick random buckets until a non-empty one, then a
    /// random element of its chain (the same bias Redis accepts).
    pub fn random(&self, mut rnd: impl FnMut() -> u64) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        loop {
            let idx = (rnd() & mask) as usize;
            if let Some(head) = self.buckets[idx].as_deref() {
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
        let mask = self.mask();
        let mut idx = (rnd() as usize) & mask;
        let mut taken = 0;
        for _ in 0..max_buckets.min(self.buckets.len()) {
            let mut cur = self.buckets[idx].as_deref();
            while let Some(e) = cur {
                if f(e) {
                    taken += 1;
                    if taken >= count {
                        return;
                    }
                }
                cur = e.next.as_deref();
            }
            idx = (idx + 1) & mask;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| {
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
    fn entry_keeps_its_size_class() {
        // 72 bytes = an 80-byte glibc chunk; the access clock lives in
        // the key's padding, so it must not grow the entry.
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 72);
        let mut k = Key::new(b"0123456789012345678");
        k.set_clock(0x00ab_cdef);
        assert_eq!(k.clock(), 0x00ab_cdef);
        assert_eq!(&*k, b"0123456789012345678");
        let mut k = Key::new(&[b'x'; 40]);
        k.set_clock(0x0123_4567);
        assert_eq!(k.clock(), 0x0023_4567);
        assert_eq!(k.len(), 40);
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
                seen.insert(e.key.to_vec());
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
}

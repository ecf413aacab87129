//! A Redis hash: field -> value; `listpack` while small, `hashtable` past
//! `hash-max-listpack-entries` / `hash-max-listpack-value`.
//!
//! The compact form is one byte string of length-prefixed entries
//! (field, value, field, value, ...) in insertion order, as a listpack keeps
//! them; while it is short it lives inside the `Hash` itself, so a small
//! hash costs one allocation besides its key's entry. Lookups walk it, which
//! is as fast as hashing for the few entries it holds. Past a threshold it
//! becomes a chained hash table with Redis's reverse-binary SCAN cursor;
//! like Redis, it never converts back.
//!
//! `SmallBytes`, the entry walk and `Table` are shared with `set.rs`.

use super::limits;

pub struct Hash(HRepr);

enum HRepr {
    Pack(SmallBytes),
    // Boxed: the small form is what most hashes are, and `Hash` stays
    // 24 bytes so it lives inside `Value` with no allocation of its own.
    Table(Box<Table<Box<[u8]>>>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash(HRepr::Pack(SmallBytes::new()))
    }
}

fn max_value() -> usize {
    usize::try_from(limits::HASH_MAX_LISTPACK_VALUE.get()).unwrap_or(0)
}

fn max_entries() -> usize {
    usize::try_from(limits::HASH_MAX_LISTPACK_ENTRIES.get()).unwrap_or(0)
}

/// Where a field's pair sits in the packed bytes.
struct Found {
    /// Start of the field's length prefix.
    start: usize,
    /// Start of the value's length prefix.
    value: usize,
    /// End of the value.
    end: usize,
}

fn pack_find(b: &[u8], field: &[u8]) -> Option<Found> {
    let mut it = PackIter::new(b);
    loop {
        let start = it.pos;
        let f = it.next()?;
        let value = it.pos;
        it.next()?;
        if f == field {
            return Some(Found { start, value, end: it.pos });
        }
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            HRepr::Pack(b) => PackIter::new(b.as_slice()).count() / 2,
            HRepr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            HRepr::Pack(b) => b.as_slice().is_empty(),
            HRepr::Table(t) => t.len() == 0,
        }
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.0 {
            HRepr::Pack(_) => "listpack",
            HRepr::Table(_) => "hashtable",
        }
    }

    pub fn deep_clone(&self) -> Hash {
        Hash(match &self.0 {
            HRepr::Pack(b) => HRepr::Pack(b.clone()),
            HRepr::Table(t) => HRepr::Table(Box::new((**t).clone())),
        })
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        std::mem::size_of::<Hash>()
            + match &self.0 {
                HRepr::Pack(b) => b.mem_usage(),
                HRepr::Table(t) => t.mem_usage(),
            }
    }

    /// Visit the (field, value) pairs: the AOF rebuilds the value from them.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a [u8], &'a [u8])) {
        match &self.0 {
            HRepr::Pack(b) => {
                let mut it = PackIter::new(b.as_slice());
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    f(k, v);
                }
            }
            HRepr::Table(t) => t.for_each(|k, v| f(k, v)),
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            HRepr::Pack(b) => {
                let s = b.as_slice();
                pack_find(s, field).map(|f| PackIter::new(&s[f.value..]).next().unwrap_or_default())
            }
            HRepr::Table(t) => t.get(field).map(|v| &**v),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Set a field; true if it is new. Converts to a hash table first when
    /// the field or value is too long for the compact form, and after when
    /// there are too many entries (as Redis's hashTypeSet does).
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        if matches!(self.0, HRepr::Pack(_)) && (field.len() > max_value() || value.len() > max_value()) {
            self.convert();
        }
        match &mut self.0 {
            HRepr::Pack(b) => {
                let mut h = LenBuf::default();
                match pack_find(b.as_slice(), field) {
                    Some(f) => {
                        b.splice(f.value, f.end - f.value, &[h.encode(value.len()), value]);
                        false
                    }
                    None => {
                        let mut h2 = LenBuf::default();
                        let at = b.len();
                        b.splice(at, 0, &[h.encode(field.len()), field, h2.encode(value.len()), value]);
                        if self.len() > max_entries() {
                            self.convert();
                        }
                        true
                    }
                }
            }
            HRepr::Table(t) => t.insert(field, value.into()).is_none(),
        }
    }

    /// Remove a field; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            HRepr::Pack(b) => match pack_find(b.as_slice(), field) {
                Some(f) => {
                    b.splice(f.start, f.end - f.start, &[]);
                    true
                }
                None => false,
            },
            HRepr::Table(t) => t.remove(field).is_some(),
        }
    }

    fn convert(&mut self) {
        let mut t = Table::with_capacity(self.len());
        self.for_each(|k, v| {
            t.insert(k, v.into());
        });
        self.0 = HRepr::Table(Box::new(t));
    }

    /// A uniformly chosen pair for the compact form, a bucket-sampled one
    /// (Redis's bias) for the table; None when empty.
    pub fn random(&self, rnd: &mut impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match &self.0 {
            HRepr::Pack(b) => {
                let n = self.len();
                if n == 0 {
                    return None;
                }
                let i = (rnd() % n as u64) as usize;
                let mut it = PackIter::new(b.as_slice());
                for _ in 0..i {
                    it.next();
                    it.next();
                }
                Some((it.next()?, it.next()?))
            }
            HRepr::Table(t) => t.random(rnd).map(|n| (&*n.key, &*n.val)),
        }
    }

    /// All pairs in iteration order (HRANDFIELD's sampling works on these).
    pub fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        let mut v = Vec::with_capacity(self.len());
        match &self.0 {
            HRepr::Pack(b) => {
                let mut it = PackIter::new(b.as_slice());
                while let (Some(k), Some(x)) = (it.next(), it.next()) {
                    v.push((k, x));
                }
            }
            HRepr::Table(t) => t.for_each(|k, x| v.push((k, &**x))),
        }
        v
    }

    /// One HSCAN step from `cursor`: the compact form returns everything and
    /// cursor 0 (as Redis does); the table visits buckets until `count`
    /// items (fields and values both count, as in Redis 7.0) or 10*count
    /// buckets. Returns the next cursor.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], &'a [u8])) -> u64 {
        match &self.0 {
            HRepr::Pack(_) => {
                self.for_each(f);
                0
            }
            HRepr::Table(t) => {
                let mut items = 0usize;
                t.scan_steps(cursor, count, |n| {
                    f(&n.key, &n.val);
                    items += 2;
                    items
                })
            }
        }
    }
}

// ---- shared with set.rs ----------------------------------------------------

/// Bytes kept inside their owner while short (most small collections), on
/// the heap past that, with capacity kept exact: the compact encodings
/// trade a reallocation per write for memory, as Redis's listpacks do.
#[derive(Clone)]
pub(crate) enum SmallBytes {
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    /// Exactly sized (no spare capacity), one allocation.
    Heap(Box<[u8]>),
}

/// Sized so a `Hash`/`Set` is 24 bytes and sits inside the 32-byte `Value`:
/// a small collection then costs its key entry and at most one exact-size
/// allocation, as a listpack does in Redis.
pub(crate) const INLINE: usize = 22;

impl SmallBytes {
    pub(crate) fn new() -> Self {
        SmallBytes::Inline { len: 0, buf: [0; INLINE] }
    }

    pub(crate) fn from_slice(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            SmallBytes::Inline { len: b.len() as u8, buf }
        } else {
            SmallBytes::Heap(b.into())
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Heap(v) => v,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn mem_usage(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(v) => v.len(),
        }
    }

    /// Replace `remove` bytes at `at` with the concatenation of `with`.
    pub(crate) fn splice(&mut self, at: usize, remove: usize, with: &[&[u8]]) {
        let old = self.len();
        let ins: usize = with.iter().map(|p| p.len()).sum();
        let new_len = old - remove + ins;
        if let SmallBytes::Inline { len, buf } = self {
            if new_len <= INLINE {
                buf.copy_within(at + remove..old, at + ins);
                write_pieces(&mut buf[at..at + ins], with);
                *len = new_len as u8;
                return;
            }
        }
        // Rebuild exactly sized: one allocation per write, like a listpack.
        let cur = self.as_slice();
        let mut v = Vec::with_capacity(new_len);
        v.extend_from_slice(&cur[..at]);
        for p in with {
            v.extend_from_slice(p);
        }
        v.extend_from_slice(&cur[at + remove..old]);
        *self = if new_len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..new_len].copy_from_slice(&v);
            SmallBytes::Inline { len: new_len as u8, buf }
        } else {
            SmallBytes::Heap(v.into_boxed_slice())
        };
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

fn write_pieces(dst: &mut [u8], with: &[&[u8]]) {
    let mut o = 0;
    for p in with {
        dst[o..o + p.len()].copy_from_slice(p);
        o += p.len();
    }
}

/// An entry's length prefix: LEB128, so entries under 128 bytes pay one byte.
#[derive(Default)]
pub(crate) struct LenBuf([u8; 10]);

impl LenBuf {
    pub(crate) fn encode(&mut self, mut n: usize) -> &[u8] {
        let mut i = 0;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0[i] = b;
                return &self.0[..=i];
            }
            self.0[i] = b | 0x80;
            i += 1;
        }
    }
}

/// Walks length-prefixed entries; `pos` is where the next one starts.
pub(crate) struct PackIter<'a> {
    b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> PackIter<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        PackIter { b, pos: 0 }
    }

    /// Entries starting at byte `pos` (after a header).
    pub(crate) fn at(b: &'a [u8], pos: usize) -> Self {
        PackIter { b, pos }
    }
}

impl<'a> Iterator for PackIter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let mut n = 0usize;
        let mut shift = 0;
        loop {
            let c = *self.b.get(self.pos)?;
            self.pos += 1;
            n |= ((c & 0x7f) as usize) << shift;
            if c & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let s = self.b.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
}

/// Per-process random hash seeds: element hashes are not predictable by
/// clients, so a crafted set of fields cannot degrade a table to lists.
fn hasher() -> &'static ahash::RandomState {
    static S: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    S.get_or_init(ahash::RandomState::new)
}

pub(crate) struct Node<V> {
    next: Option<Box<Node<V>>>,
    /// Inline up to 22 bytes: a chain step then compares within the node's
    /// own cache line instead of chasing a second allocation (HSET on a
    /// 100k-field hash spent 31% of its CPU in that walk and its memcmp).
    pub(crate) key: SmallBytes,
    pub(crate) val: V,
}

/// A chained hash table over byte-string keys with Redis's reverse-binary
/// SCAN cursor (elements present for a whole scan are returned at least
/// once across resizes), the full encoding of hashes and sets.
pub(crate) struct Table<V> {
    buckets: Vec<Option<Box<Node<V>>>>,
    len: usize,
    /// Heap bytes the nodes own besides themselves (long keys, values),
    /// kept current so `mem_usage` is O(1): maxmemory asks on every write.
    heap: usize,
}

/// Bytes a table value owns on the heap (for `Table::mem_usage`).
pub(crate) trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for () {
    fn heap_size(&self) -> usize {
        0
    }
}

impl HeapSize for Box<[u8]> {
    fn heap_size(&self) -> usize {
        self.len()
    }
}

/// Heap bytes of a node's key: up to INLINE bytes live in the node itself.
fn key_heap(k: &[u8]) -> usize {
    if k.len() > INLINE {
        k.len()
    } else {
        0
    }
}

impl<V: Clone + HeapSize> Clone for Table<V> {
    fn clone(&self) -> Self {
        let mut t = Table::with_capacity(self.len);
        self.for_each(|k, v| {
            t.insert(k, v.clone());
        });
        t
    }
}

impl<V> Drop for Table<V> {
    fn drop(&mut self) {
        // Unlink chains iteratively so a long chain cannot recurse deeply.
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
    }
}

impl<V: HeapSize> Table<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let mut t = Table { buckets: Vec::new(), len: 0, heap: 0 };
        if n > 0 {
            t.resize(n.next_power_of_two().max(4));
        }
        t
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn slot(&self, key: &[u8]) -> usize {
        (hasher().hash_one(key) as usize) & (self.buckets.len() - 1)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let mut cur = self.buckets[self.slot(key)].as_deref();
        while let Some(n) = cur {
            if &*n.key == key {
                return Some(&n.val);
            }
            cur = n.next.as_deref();
        }
        None
    }

    /// Insert or replace; returns the previous value.
    pub(crate) fn insert(&mut self, key: &[u8], val: V) -> Option<V> {
        if self.len > 0 {
            let i = self.slot(key);
            let mut cur = self.buckets[i].as_deref_mut();
            while let Some(n) = cur {
                if &*n.key == key {
                    self.heap = self.heap + val.heap_size() - n.val.heap_size();
                    return Some(std::mem::replace(&mut n.val, val));
                }
                cur = n.next.as_deref_mut();
            }
        }
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(4));
        }
        let i = self.slot(key);
        let next = self.buckets[i].take();
        self.heap += key_heap(key) + val.heap_size();
        self.buckets[i] = Some(Box::new(Node { next, key: SmallBytes::from_slice(key), val }));
        self.len += 1;
        None
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let i = self.slot(key);
        let mut link = &mut self.buckets[i];
        loop {
            match link {
                None => return None,
                Some(n) if &*n.key == key => {
                    let mut removed = link.take()?;
                    *link = removed.next.take();
                    self.len -= 1;
                    self.heap -= key_heap(key) + removed.val.heap_size();
                    let nb = self.buckets.len();
                    if nb > 4 && self.len * 8 < nb {
                        self.resize((self.len.next_power_of_two() * 2).max(4));
                    }
                    return Some(removed.val);
                }
                Some(n) => link = &mut n.next,
            }
        }
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets.resize_with(size, || None);
        for mut b in old {
            while let Some(mut n) = b {
                b = n.next.take();
                let i = self.slot(&n.key);
                n.next = self.buckets[i].take();
                self.buckets[i] = Some(n);
            }
        }
    }

    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a [u8], &'a V)) {
        for b in &self.buckets {
            let mut cur = b.as_deref();
            while let Some(n) = cur {
                f(&n.key, &n.val);
                cur = n.next.as_deref();
            }
        }
    }

    /// A random element: random buckets until a non-empty one, then a
    /// random element of its chain (the bias Redis accepts). The table is
    /// at least 1/8 full, so few tries are needed.
    pub(crate) fn random(&self, rnd: &mut impl FnMut() -> u64) -> Option<&Node<V>> {
        if self.len == 0 {
            return None;
        }
        let mask = (self.buckets.len() - 1) as u64;
        loop {
            if let Some(head) = self.buckets[(rnd() & mask) as usize].as_deref() {
                let mut n = 0u64;
                let mut cur = Some(head);
                while let Some(e) = cur {
                    n += 1;
                    cur = e.next.as_deref();
                }
                let mut cur = head;
                for _ in 0..rnd() % n {
                    cur = cur.next.as_deref()?;
                }
                return Some(cur);
            }
        }
    }

    /// Visit bucket `cursor`; return the next cursor (0 = done).
    fn scan_bucket<'a>(&'a self, cursor: u64, mut f: impl FnMut(&'a Node<V>)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(n) = cur {
            f(n);
            cur = n.next.as_deref();
        }
        super::dict::next_cursor(cursor, mask)
    }

    /// Redis's scan loop: buckets from `cursor` until `f` reports `count`
    /// items or 10*count buckets were visited; returns the next cursor.
    pub(crate) fn scan_steps<'a>(
        &'a self,
        mut cursor: u64,
        count: usize,
        mut f: impl FnMut(&'a Node<V>) -> usize,
    ) -> u64 {
        let count = count.max(1);
        let mut budget = count.saturating_mul(10);
        let mut items = 0;
        loop {
            cursor = self.scan_bucket(cursor, |n| items = f(n));
            budget -= 1;
            if cursor == 0 || budget == 0 || items >= count {
                return cursor;
            }
        }
    }

    /// Bytes of the bucket array, the nodes (with malloc's overhead) and
    /// what they own, in O(1).
    pub(crate) fn mem_usage(&self) -> usize {
        self.buckets.capacity() * 8 + self.len * (std::mem::size_of::<Node<V>>() + 16) + self.heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd() -> impl FnMut() -> u64 {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Hash>(), 24);
    }

    #[test]
    fn pack_set_get_remove_keeps_order() {
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1"));
        assert!(h.set(b"b", b"2"));
        assert!(!h.set(b"a", b"one, now longer than the inline buffer holds"));
        assert_eq!(h.get(b"a"), Some(&b"one, now longer than the inline buffer holds"[..]));
        assert!(h.set(b"", b""));
        assert_eq!(h.get(b""), Some(&b""[..]));
        assert_eq!(h.len(), 3);
        assert_eq!(h.encoding(), "listpack");
        let mut seen = vec![];
        h.for_each(|k, _| seen.push(k.to_vec()));
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec(), b"".to_vec()]);
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.get(b"b"), Some(&b"2"[..]));
        assert!(h.remove(b"b") && h.remove(b""));
        assert!(h.is_empty());
    }

    #[test]
    fn converts_at_thresholds() {
        let mut h = Hash::new();
        for i in 0..512 {
            h.set(format!("f{i}").as_bytes(), b"v");
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f5", b"w");
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f512", b"v");
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 513);
        assert_eq!(h.get(b"f5"), Some(&b"w"[..]));
        // Removing never converts back.
        for i in 0..504 {
            h.remove(format!("f{i}").as_bytes());
        }
        assert_eq!((h.encoding(), h.len()), ("hashtable", 9));

        let mut h = Hash::new();
        h.set(b"f", &[b'x'; 64]);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"g", &[b'x'; 65]);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.set(&[b'x'; 65], b"v");
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn long_entries_use_multibyte_prefix() {
        let mut h = Hash::new();
        let big = vec![b'z'; 300];
        h.set(b"k", &big);
        h.set(b"k2", b"x");
        assert_eq!(h.get(b"k"), Some(&big[..]));
        assert_eq!(h.get(b"k2"), Some(&b"x"[..]));
    }

    #[test]
    fn table_scan_visits_everything_across_resizes() {
        let mut t: Table<()> = Table::with_capacity(0);
        for i in 0..300 {
            t.insert(format!("m{i}").as_bytes(), ());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut steps = 0;
        loop {
            cursor = t.scan_steps(cursor, 5, |n| {
                seen.insert(n.key.to_vec());
                seen.len()
            });
            steps += 1;
            if steps == 10 {
                for i in 300..2000 {
                    t.insert(format!("m{i}").as_bytes(), ());
                }
            }
            if steps == 40 {
                for i in 1000..2000 {
                    t.remove(format!("m{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..300 {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i}");
        }
    }

    #[test]
    fn random_and_scan() {
        let mut r = rnd();
        let mut h = Hash::new();
        assert!(h.random(&mut r).is_none());
        h.set(b"a", b"1");
        assert_eq!(h.random(&mut r), Some((&b"a"[..], &b"1"[..])));
        let mut n = 0;
        assert_eq!(h.scan(12345, 1, |_, _| n += 1), 0);
        assert_eq!(n, 1);
        for i in 0..600 {
            h.set(format!("f{i}").as_bytes(), b"v");
        }
        let (k, v) = h.random(&mut r).expect("non-empty");
        assert_eq!(h.get(k), Some(v));
        let copy = h.deep_clone();
        assert_eq!(copy.len(), 601);
        assert_eq!(copy.encoding(), "hashtable");
    }
}

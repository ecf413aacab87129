//! A Redis set: `intset` for small all-integer sets, `listpack` for small
//! sets, `hashtable` otherwise (Redis 7.2's encodings; 7.0 has no set
//! listpack and uses a hash table for small non-integer sets, which costs
//! several times the memory).
//!
//! The intset is a sorted array of little-endian integers of one width (2,
//! 4 or 8 bytes, widened when a larger value arrives), behind a width byte;
//! the listpack is length-prefixed members in insertion order. Both live in
//! a `SmallBytes`, inside the `Set` while short. Conversions follow Redis:
//! a non-integer or too many integers leave the intset, too many or too
//! long members leave the listpack, and nothing converts back.

use super::hash::{LenBuf, PackIter, SmallBytes, Table};
use super::limits;
use crate::protocol::reply::fmt_i64;
use crate::util::parse_i64;

pub struct Set(SRepr);

/// Intset and listpack share one variant (a third would make `Set` a
/// malloc size class bigger): listpack bytes start with `PACK`, intset
/// bytes with their width (2, 4 or 8), an empty intset has none.
enum SRepr {
    Compact(SmallBytes),
    // Boxed so `Set` stays 24 bytes, inside `Value` (see hash.rs SmallBytes).
    Table(Box<Table<()>>),
}

const PACK: u8 = 0;

fn is_pack(b: &[u8]) -> bool {
    b.first() == Some(&PACK)
}

fn pack_iter(b: &[u8]) -> PackIter<'_> {
    PackIter::at(b, 1)
}

fn new_pack() -> SmallBytes {
    let mut sb = SmallBytes::new();
    sb.splice(0, 0, &[&[PACK]]);
    sb
}

impl Default for Set {
    fn default() -> Self {
        Set(SRepr::Compact(SmallBytes::new()))
    }
}

fn limit(l: &limits::Limit) -> usize {
    usize::try_from(l.get()).unwrap_or(0)
}

// ---- intset helpers: bytes = [width, v0, v1, ...] ----

fn width_for(v: i64) -> u8 {
    if v >= i16::MIN as i64 && v <= i16::MAX as i64 {
        2
    } else if v >= i32::MIN as i64 && v <= i32::MAX as i64 {
        4
    } else {
        8
    }
}

fn ints_width(b: &[u8]) -> usize {
    b.first().map_or(2, |&w| w as usize)
}

fn ints_len(b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        (b.len() - 1) / ints_width(b)
    }
}

fn ints_get(b: &[u8], i: usize) -> i64 {
    let w = ints_width(b);
    let s = &b[1 + i * w..1 + (i + 1) * w];
    match w {
        2 => i16::from_le_bytes([s[0], s[1]]) as i64,
        4 => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64,
        _ => i64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
    }
}

/// Ok(index) if present, Err(insertion index) if not.
fn ints_search(b: &[u8], v: i64) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0, ints_len(b));
    while lo < hi {
        let mid = (lo + hi) / 2;
        match ints_get(b, mid).cmp(&v) {
            std::cmp::Ordering::Equal => return Ok(mid),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    Err(lo)
}

fn ints_encode(v: i64, w: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..w].copy_from_slice(&v.to_le_bytes()[..w]);
    out
}

/// Insert `v` (absent, at index `at`) into the intset, widening if needed.
fn ints_insert(sb: &mut SmallBytes, v: i64, at: usize) {
    let b = sb.as_slice();
    let w = ints_width(b);
    let need = width_for(v) as usize;
    if b.is_empty() || need > w {
        let nw = need.max(w);
        let n = ints_len(b);
        let mut nb = SmallBytes::new();
        let mut out = Vec::with_capacity(1 + (n + 1) * nw);
        out.push(nw as u8);
        let mut pushed = false;
        for i in 0..n {
            let x = ints_get(b, i);
            if !pushed && v < x {
                out.extend_from_slice(&ints_encode(v, nw)[..nw]);
                pushed = true;
            }
            out.extend_from_slice(&ints_encode(x, nw)[..nw]);
        }
        if !pushed {
            out.extend_from_slice(&ints_encode(v, nw)[..nw]);
        }
        nb.splice(0, 0, &[&out]);
        *sb = nb;
        return;
    }
    sb.splice(1 + at * w, 0, &[&ints_encode(v, w)[..w]]);
}

fn pack_find(b: &[u8], m: &[u8]) -> Option<(usize, usize)> {
    let mut it = pack_iter(b);
    loop {
        let start = it.pos;
        let e = it.next()?;
        if e == m {
            return Some((start, it.pos));
        }
    }
}

/// A member handed out by value: intsets hold numbers, not bytes.
pub enum Member<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Member<'_> {
    /// The member's bytes; integers are formatted into `buf`.
    pub fn bytes<'b>(&'b self, buf: &'b mut [u8; 24]) -> &'b [u8] {
        match self {
            Member::Bytes(b) => b,
            Member::Int(n) => fmt_i64(buf, *n),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut b = [0u8; 24];
        self.bytes(&mut b).to_vec()
    }
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    /// An empty set in the encoding Redis 7.2 picks for a set about to
    /// receive `size_hint` members, the first being `first`.
    pub fn for_members(first: &[u8], size_hint: usize) -> Set {
        if parse_i64(first).is_some() && size_hint <= limit(&limits::SET_MAX_INTSET_ENTRIES) {
            Set(SRepr::Compact(SmallBytes::new()))
        } else if size_hint <= limit(&limits::SET_MAX_LISTPACK_ENTRIES) {
            Set(SRepr::Compact(new_pack()))
        } else {
            Set(SRepr::Table(Box::new(Table::with_capacity(size_hint))))
        }
    }

    /// The intset's element width in bytes (2, 4 or 8; it only grows, as
    /// Redis's does), if the set is an intset.
    pub fn intset_width(&self) -> Option<usize> {
        match &self.0 {
            SRepr::Compact(b) if !is_pack(b.as_slice()) => Some(b.as_slice().first().map_or(2, |&w| w as usize)),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => pack_iter(b.as_slice()).count(),
            SRepr::Compact(b) => ints_len(b.as_slice()),
            SRepr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            SRepr::Compact(b) => b.len() <= 1,
            SRepr::Table(t) => t.len() == 0,
        }
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => "listpack",
            SRepr::Compact(_) => "intset",
            SRepr::Table(_) => "hashtable",
        }
    }

    pub fn deep_clone(&self) -> Set {
        Set(match &self.0 {
            SRepr::Compact(b) => SRepr::Compact(b.clone()),
            SRepr::Table(t) => SRepr::Table(Box::new((**t).clone())),
        })
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        std::mem::size_of::<Set>()
            + match &self.0 {
                SRepr::Compact(b) => b.mem_usage(),
                SRepr::Table(t) => t.mem_usage(),
            }
    }

    /// Visit the members: the AOF rebuilds the value from them.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.for_each_member(|m| {
            let mut buf = [0u8; 24];
            f(m.bytes(&mut buf))
        });
    }

    pub fn for_each_member<'a>(&'a self, mut f: impl FnMut(Member<'a>)) {
        match &self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => pack_iter(b.as_slice()).for_each(|m| f(Member::Bytes(m))),
            SRepr::Compact(b) => {
                let b = b.as_slice();
                for i in 0..ints_len(b) {
                    f(Member::Int(ints_get(b, i)));
                }
            }
            SRepr::Table(t) => t.for_each(|k, _| f(Member::Bytes(k))),
        }
    }

    /// Every member, copied (for set algebra and sampling).
    pub fn members(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|m| v.push(m.to_vec()));
        v
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => pack_find(b.as_slice(), m).is_some(),
            SRepr::Compact(b) => parse_i64(m).is_some_and(|v| ints_search(b.as_slice(), v).is_ok()),
            SRepr::Table(t) => t.get(m).is_some(),
        }
    }

    /// Add a member; true if it is new.
    pub fn add(&mut self, m: &[u8]) -> bool {
        match &mut self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => {
                if pack_find(b.as_slice(), m).is_some() {
                    return false;
                }
                let n = pack_iter(b.as_slice()).count();
                if n < limit(&limits::SET_MAX_LISTPACK_ENTRIES) && m.len() <= limit(&limits::SET_MAX_LISTPACK_VALUE) {
                    let mut h = LenBuf::default();
                    let at = b.len();
                    b.splice(at, 0, &[h.encode(m.len()), m]);
                    return true;
                }
                self.convert_to_table(n + 1);
                self.add(m)
            }
            SRepr::Compact(b) => {
                if let Some(v) = parse_i64(m) {
                    let at = match ints_search(b.as_slice(), v) {
                        Ok(_) => return false,
                        Err(at) => at,
                    };
                    ints_insert(b, v, at);
                    let n = ints_len(b.as_slice());
                    if n > limit(&limits::SET_MAX_INTSET_ENTRIES).min(1 << 30) {
                        self.convert_to_table(n);
                    }
                    return true;
                }
                // A non-integer: listpack if everything would fit one, as
                // Redis 7.2 decides from the intset's extremes.
                let s = b.as_slice();
                let n = ints_len(s);
                let digits = |v: i64| fmt_i64(&mut [0u8; 24], v).len();
                let longest = if n == 0 { 0 } else { digits(ints_get(s, 0)).max(digits(ints_get(s, n - 1))) };
                let maxlen = limit(&limits::SET_MAX_LISTPACK_VALUE);
                if n < limit(&limits::SET_MAX_LISTPACK_ENTRIES) && m.len() <= maxlen && longest <= maxlen {
                    self.convert_to_pack();
                } else {
                    self.convert_to_table(n + 1);
                }
                self.add(m)
            }
            SRepr::Table(t) => t.insert(m, ()).is_none(),
        }
    }

    /// Remove a member; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => match pack_find(b.as_slice(), m) {
                Some((s, e)) => {
                    b.splice(s, e - s, &[]);
                    true
                }
                None => false,
            },
            SRepr::Compact(b) => {
                let Some(v) = parse_i64(m) else { return false };
                match ints_search(b.as_slice(), v) {
                    Ok(i) => {
                        let w = ints_width(b.as_slice());
                        b.splice(1 + i * w, w, &[]);
                        if b.len() == 1 {
                            // Empty: drop the width byte too.
                            b.splice(0, 1, &[]);
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            SRepr::Table(t) => t.remove(m).is_some(),
        }
    }

    fn convert_to_pack(&mut self) {
        let mut sb = new_pack();
        let mut h = LenBuf::default();
        self.for_each(|m| {
            let at = sb.len();
            sb.splice(at, 0, &[h.encode(m.len()), m]);
        });
        self.0 = SRepr::Compact(sb);
    }

    fn convert_to_table(&mut self, hint: usize) {
        let mut t = Table::with_capacity(hint);
        self.for_each(|m| {
            t.insert(m, ());
        });
        self.0 = SRepr::Table(Box::new(t));
    }

    /// A random member (uniform for the compact forms, bucket-sampled for
    /// the table as in Redis); None when empty.
    pub fn random(&self, rnd: &mut impl FnMut() -> u64) -> Option<Member<'_>> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        match &self.0 {
            SRepr::Compact(b) if is_pack(b.as_slice()) => {
                pack_iter(b.as_slice()).nth((rnd() % n as u64) as usize).map(Member::Bytes)
            }
            SRepr::Compact(b) => Some(Member::Int(ints_get(b.as_slice(), (rnd() % n as u64) as usize))),
            SRepr::Table(t) => t.random(rnd).map(|n| Member::Bytes(&n.key)),
        }
    }

    /// Remove and return a random member.
    pub fn pop_random(&mut self, rnd: &mut impl FnMut() -> u64) -> Option<Vec<u8>> {
        let m = self.random(rnd)?.to_vec();
        self.remove(&m);
        Some(m)
    }

    /// One SSCAN step: compact forms return everything and cursor 0; the
    /// table visits buckets as Redis does. Returns the next cursor.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8])) -> u64 {
        match &self.0 {
            SRepr::Table(t) => {
                let mut items = 0;
                t.scan_steps(cursor, count, |n| {
                    f(&n.key);
                    items += 1;
                    items
                })
            }
            _ => {
                self.for_each(f);
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members_sorted(s: &Set) -> Vec<Vec<u8>> {
        let mut v = s.members();
        v.sort();
        v
    }

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Set>(), 24);
    }

    #[test]
    fn intset_widens_and_stays_sorted() {
        let mut s = Set::new();
        for v in ["5", "-3", "100", "5"] {
            s.add(v.as_bytes());
        }
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.len(), 3);
        s.add(b"70000");
        s.add(b"-9223372036854775808");
        assert_eq!(s.encoding(), "intset");
        let mut seen = vec![];
        s.for_each(|m| seen.push(String::from_utf8_lossy(m).into_owned()));
        assert_eq!(seen, ["-9223372036854775808", "-3", "5", "100", "70000"]);
        assert!(s.contains(b"70000") && !s.contains(b"007") && !s.contains(b"x"));
        assert!(s.remove(b"-3") && !s.remove(b"-3") && !s.remove(b"abc"));
        assert_eq!(s.len(), 4);
        for m in ["-9223372036854775808", "5", "100", "70000"] {
            assert!(s.remove(m.as_bytes()));
        }
        assert!(s.is_empty());
    }

    #[test]
    fn conversions_follow_redis() {
        let mut s = Set::new();
        s.add(b"1");
        s.add(b"abc");
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(members_sorted(&s), vec![b"1".to_vec(), b"abc".to_vec()]);
        s.add(&[b'x'; 65]);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 3);

        let mut s = Set::new();
        for i in 0..512 {
            s.add(i.to_string().as_bytes());
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"512");
        assert_eq!(s.encoding(), "hashtable");

        // An intset too big for a listpack goes straight to a table.
        let mut s = Set::new();
        for i in 0..200 {
            s.add(i.to_string().as_bytes());
        }
        s.add(b"x");
        assert_eq!((s.encoding(), s.len()), ("hashtable", 201));

        let mut s = Set::for_members(b"a", 1);
        for i in 0..128 {
            s.add(format!("m{i}").as_bytes());
        }
        assert_eq!(s.encoding(), "listpack");
        s.add(b"m0");
        assert_eq!(s.encoding(), "listpack");
        s.add(b"one more");
        assert_eq!((s.encoding(), s.len()), ("hashtable", 129));
        assert_eq!(Set::for_members(b"a", 129).encoding(), "hashtable");
        assert_eq!(Set::for_members(b"7", 3).encoding(), "intset");
    }

    #[test]
    fn random_pop_and_scan() {
        let mut x = 88172645463325252u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for first in ["1", "a"] {
            let mut s = Set::new();
            s.add(first.as_bytes());
            for i in 0..300 {
                s.add(format!("{i}").as_bytes());
            }
            let n = s.len();
            let mut popped = std::collections::HashSet::new();
            while let Some(m) = s.pop_random(&mut rnd) {
                assert!(popped.insert(m));
            }
            assert_eq!(popped.len(), n);
        }
        let mut s = Set::new();
        s.add(b"1");
        s.add(b"2");
        let mut n = 0;
        assert_eq!(s.scan(99, 1, |_| n += 1), 0);
        assert_eq!(n, 2);
    }
}

//! The packed entries of one stream node: one byte buffer per node, as
//! Redis keeps one listpack per radix-tree node (see stream.rs for when a
//! node opens). One allocation per ~100 entries instead of one per field.
//!
//! Layout (numbers are LEB128 varints):
//!
//! ```text
//! node:   master-count, (len, field) x master-count, entry...
//! entry:  len, body, len with its bytes reversed
//! body:   flags, ms - base.ms, seq (- base.seq when ms == base.ms),
//!         SAME:  (len, value) x master-count
//!         else:  count, (len, field, len, value) x count
//! ```
//!
//! The master fields are the node's first entry's field names; an entry
//! with exactly those fields (flag SAME) stores only its values. Ids are
//! deltas from the node's first id (`base`), which stay small. The length
//! on both sides of an entry lets iteration step over it from either end.
//! Deleting sets the DELETED flag in place; the bytes stay until the whole
//! node goes, as in Redis.
//!
//! The buffer is only ever written by this module, so a decoding failure
//! means a bug; readers then stop instead of panicking.

use super::stream::StreamId;

const DELETED: u8 = 1;
const SAME: u8 = 2;

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint bytes in reverse order, to be read backwards from the end.
fn put_varint_rev(out: &mut Vec<u8>, v: u64) {
    let at = out.len();
    put_varint(out, v);
    out[at..].reverse();
}

/// The varint at `at`: (value, position after it).
fn get_varint(b: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let c = *b.get(at)?;
        at += 1;
        v |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some((v, at));
        }
    }
    None
}

/// The reversed varint ending just before `end`: (value, its start).
fn get_varint_rev(b: &[u8], mut end: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        end = end.checked_sub(1)?;
        let c = *b.get(end)?;
        v |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some((v, end));
        }
    }
    None
}

/// A length-prefixed byte string at `at`: (bytes, position after).
fn get_bytes(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (n, at) = get_varint(b, at)?;
    let end = at.checked_add(usize::try_from(n).ok()?)?;
    Some((b.get(at..end)?, end))
}

fn bytes_len(v: &[u8]) -> usize {
    varint_len(v.len() as u64) + v.len()
}

fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// The packed entries of one node.
#[derive(Debug)]
pub struct Pack {
    buf: Vec<u8>,
    /// Where the first entry starts (after the master fields).
    entries_at: usize,
}

impl Clone for Pack {
    /// Keeps the capacity, so the stream's byte count stays exact.
    fn clone(&self) -> Pack {
        let mut buf = Vec::with_capacity(self.buf.capacity());
        buf.extend_from_slice(&self.buf);
        Pack { buf, entries_at: self.entries_at }
    }
}

impl Pack {
    /// The master field names (DUMP writes them into Redis's listpack).
    pub fn master_fields(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let Some((n, mut at)) = get_varint(&self.buf, 0) else { return out };
        for _ in 0..n {
            match get_bytes(&self.buf, at) {
                Some((f, next)) => {
                    out.push(f);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// An empty node whose master fields are the field names of `pairs`
    /// (flattened field/value list).
    pub fn new(pairs: &[&[u8]]) -> Pack {
        let count = pairs.len() / 2;
        let fields = pairs.chunks_exact(2).map(|p| p[0]);
        let size = varint_len(count as u64) + fields.clone().map(bytes_len).sum::<usize>();
        let mut buf = Vec::with_capacity(size);
        put_varint(&mut buf, count as u64);
        for f in fields {
            put_bytes(&mut buf, f);
        }
        let entries_at = buf.len();
        Pack { buf, entries_at }
    }

    /// Allocated bytes.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Move into an allocation of exactly the used size (once the node is
    /// full). A fresh allocation, because shrinking in place may keep the
    /// allocator's larger block.
    pub fn compact(&mut self) {
        if self.buf.capacity() > self.buf.len() {
            let mut buf = Vec::with_capacity(self.buf.len());
            buf.extend_from_slice(&self.buf);
            self.buf = buf;
        }
    }

    /// (count, field bytes) of the master fields.
    fn master(&self) -> (usize, &[u8]) {
        let head = self.buf.get(..self.entries_at).unwrap_or_default();
        match get_varint(head, 0) {
            Some((n, at)) => (n as usize, head.get(at..).unwrap_or_default()),
            None => (0, &[]),
        }
    }

    /// Whether the field names of `pairs` are exactly the master fields
    /// (Redis's SAMEFIELDS test).
    pub fn master_matches(&self, pairs: &[&[u8]]) -> bool {
        let (count, mut b) = self.master();
        if count != pairs.len() / 2 {
            return false;
        }
        for p in pairs.chunks_exact(2) {
            match get_bytes(b, 0) {
                Some((f, at)) if f == p[0] => b = &b[at..],
                _ => return false,
            }
        }
        true
    }

    /// Append entry `id` (not below `base`, above every id already here),
    /// `same` as told by `master_matches`.
    pub fn push(&mut self, base: StreamId, id: StreamId, pairs: &[&[u8]], same: bool) {
        let ms = id.ms.wrapping_sub(base.ms);
        let seq = if ms == 0 { id.seq.wrapping_sub(base.seq) } else { id.seq };
        let mut body = 1 + varint_len(ms) + varint_len(seq);
        if same {
            body += pairs.iter().skip(1).step_by(2).map(|v| bytes_len(v)).sum::<usize>();
        } else {
            body += varint_len((pairs.len() / 2) as u64);
            body += pairs.chunks_exact(2).flatten().map(|v| bytes_len(v)).sum::<usize>();
        }
        let frame = varint_len(body as u64);
        self.buf.reserve(body + 2 * frame);
        put_varint(&mut self.buf, body as u64);
        let start = self.buf.len();
        self.buf.push(if same { SAME } else { 0 });
        put_varint(&mut self.buf, ms);
        put_varint(&mut self.buf, seq);
        if same {
            for p in pairs.chunks_exact(2) {
                put_bytes(&mut self.buf, p[1]);
            }
        } else {
            put_varint(&mut self.buf, (pairs.len() / 2) as u64);
            for v in pairs.chunks_exact(2).flatten() {
                put_bytes(&mut self.buf, v);
            }
        }
        debug_assert_eq!(self.buf.len() - start, body);
        put_varint_rev(&mut self.buf, body as u64);
    }

    /// All entries, deleted ones included, from either end.
    pub fn entries(&self, base: StreamId) -> Entries<'_> {
        let (master_count, master) = self.master();
        Entries { buf: &self.buf, master, master_count, base, lo: self.entries_at, hi: self.buf.len() }
    }

    /// Live entry `id` if it is here. Scans the whole node: after an
    /// XSETID back, a deleted entry may precede a lower id, or even an
    /// entry with its own id.
    pub fn find(&self, base: StreamId, id: StreamId) -> Option<Raw<'_>> {
        self.entries(base).find(|e| e.id == id && !e.deleted)
    }

    /// Drop all entries, keeping the master fields.
    pub fn clear(&mut self) {
        self.buf.truncate(self.entries_at);
    }

    /// Flag the entry whose flags are at `at` (a `Raw::at`) deleted.
    pub fn mark_deleted(&mut self, at: usize) {
        if let Some(f) = self.buf.get_mut(at) {
            *f |= DELETED;
        }
    }

    /// From the first entry on, mark live entries deleted while `doom`
    /// says so; returns how many were marked.
    pub fn delete_while(&mut self, base: StreamId, mut doom: impl FnMut(StreamId) -> bool) -> u32 {
        let mut marked = Vec::new();
        for e in self.entries(base) {
            if e.deleted {
                continue;
            }
            if !doom(e.id) {
                break;
            }
            marked.push(e.at);
        }
        for &at in &marked {
            self.mark_deleted(at);
        }
        marked.len() as u32
    }
}

/// One decoded entry.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// Offset of its flags byte, for `Pack::mark_deleted`.
    pub at: usize,
    pub entry: EntryRef<'a>,
}

/// Double-ended walk over a node's entries.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    buf: &'a [u8],
    master: &'a [u8],
    master_count: usize,
    base: StreamId,
    /// The entries not yet walked are buf[lo..hi].
    lo: usize,
    hi: usize,
}

impl<'a> Entries<'a> {
    /// Decode the body at buf[at..end].
    fn decode(&self, at: usize, end: usize) -> Option<Raw<'a>> {
        let body = self.buf.get(..end)?;
        let flags = *body.get(at)?;
        let (ms, p) = get_varint(body, at + 1)?;
        let (seq, p) = get_varint(body, p)?;
        let id =
            StreamId::new(self.base.ms.checked_add(ms)?, if ms == 0 { self.base.seq.checked_add(seq)? } else { seq });
        let entry = if flags & SAME != 0 {
            EntryRef { fields: Some(self.master), data: body.get(p..)?, count: self.master_count }
        } else {
            let (count, p) = get_varint(body, p)?;
            EntryRef { fields: None, data: body.get(p..)?, count: usize::try_from(count).ok()? }
        };
        Some(Raw { id, deleted: flags & DELETED != 0, at, entry })
    }

    fn stop(&mut self) -> Option<Raw<'a>> {
        debug_assert!(false, "corrupt stream node");
        self.lo = self.hi;
        None
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        if self.lo >= self.hi {
            return None;
        }
        let Some((n, at)) = get_varint(self.buf, self.lo) else { return self.stop() };
        let Some(end) = at.checked_add(n as usize).filter(|&e| e <= self.hi) else { return self.stop() };
        let Some(raw) = self.decode(at, end) else { return self.stop() };
        self.lo = end + varint_len(n);
        Some(raw)
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.lo >= self.hi {
            return None;
        }
        let Some((n, end)) = get_varint_rev(self.buf, self.hi) else { return self.stop() };
        let Some(at) = end.checked_sub(n as usize).filter(|&a| a >= self.lo) else { return self.stop() };
        let Some(raw) = self.decode(at, end) else { return self.stop() };
        self.hi = at.saturating_sub(varint_len(n));
        Some(raw)
    }
}

/// A borrowed view of one entry's field/value pairs.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    /// The master field names when the entry stores only values.
    fields: Option<&'a [u8]>,
    data: &'a [u8],
    /// Field/value pairs.
    count: usize,
}

impl<'a> EntryRef<'a> {
    /// Whether the entry stores only values, its fields being the master's.
    pub fn same_fields(&self) -> bool {
        self.fields.is_some()
    }

    /// Fields plus values (the reply's array length).
    pub fn len(&self) -> usize {
        self.count * 2
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fields and values, alternating: f1, v1, f2, v2, ...
    pub fn iter(&self) -> Items<'a> {
        Items { fields: self.fields, data: self.data, left: self.len() }
    }

    /// (field, value) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let mut it = self.iter();
        std::iter::from_fn(move || Some((it.next()?, it.next()?)))
    }

    /// Owned copy (tests, comparisons).
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(|b| b.to_vec()).collect()
    }
}

/// Iterator over an entry's fields and values.
pub struct Items<'a> {
    fields: Option<&'a [u8]>,
    data: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // With master fields, field names come from there (even steps).
        let from = match &mut self.fields {
            Some(f) if self.left.is_multiple_of(2) => f,
            _ => &mut self.data,
        };
        match get_bytes(from, 0) {
            Some((b, at)) => {
                *from = &from[at..];
                self.left -= 1;
                Some(b)
            }
            None => {
                debug_assert!(false, "corrupt stream entry");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    /// Push like the stream does: SAME when the fields match the master.
    fn push(p: &mut Pack, base: StreamId, at: StreamId, pairs: &[&[u8]]) {
        let same = p.master_matches(pairs);
        p.push(base, at, pairs, same);
    }

    fn owned(pairs: &[&[u8]]) -> Vec<Vec<u8>> {
        pairs.iter().map(|b| b.to_vec()).collect()
    }

    fn all(p: &Pack, base: StreamId) -> Vec<(StreamId, bool, Vec<Vec<u8>>)> {
        p.entries(base).map(|e| (e.id, e.deleted, e.entry.to_vec())).collect()
    }

    #[test]
    fn varints_round_trip_both_ways() {
        for v in [0, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = vec![9];
            put_varint(&mut b, v);
            assert_eq!(b.len() - 1, varint_len(v));
            assert_eq!(get_varint(&b, 1), Some((v, b.len())));
            let mut r = vec![9];
            put_varint_rev(&mut r, v);
            assert_eq!(get_varint_rev(&r, r.len()), Some((v, 1)));
        }
        assert_eq!(get_varint(&[0x80, 0x80], 0), None);
        assert_eq!(get_varint_rev(&[0x80], 1), None);
    }

    #[test]
    fn round_trip_same_and_other_fields() {
        let base = id(1000, 5);
        let mut p = Pack::new(&[b"a", b"1", b"b", b"2"]);
        let rows: Vec<(StreamId, Vec<&[u8]>)> = vec![
            (base, vec![b"a", b"1", b"b", b"2"]),
            (id(1000, 6), vec![b"a", b"x", b"b", b""]),
            (id(1000, 7), vec![b"b", b"1", b"a", b"2"]),
            (id(1001, 0), vec![b"a", b"1"]),
            (id(1001, 1), vec![b"", b""]),
            (id(1002, 0), vec![b"a", b"3", b"b", b"4"]),
        ];
        for (i, pairs) in &rows {
            push(&mut p, base, *i, pairs);
        }
        let want: Vec<_> = rows.iter().map(|(i, f)| (*i, false, owned(f))).collect();
        assert_eq!(all(&p, base), want);
        // Backwards gives the same entries reversed.
        let back: Vec<_> = p.entries(base).rev().map(|e| (e.id, e.deleted, e.entry.to_vec())).collect();
        assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
        // Entries with the master fields stored only their values.
        let e = p.find(base, id(1000, 6)).map(|e| e.entry);
        assert!(matches!(e, Some(EntryRef { fields: Some(_), .. })));
        let e = p.find(base, id(1000, 7)).map(|e| e.entry);
        assert!(matches!(e, Some(EntryRef { fields: None, .. })));
        assert_eq!(
            p.find(base, id(1000, 6)).map(|e| e.entry.pairs().collect::<Vec<_>>()),
            Some(vec![(&b"a"[..], &b"x"[..]), (b"b", b"")])
        );
        assert!(p.find(base, id(1000, 8)).is_none());
        assert!(p.find(base, id(9999, 0)).is_none());
    }

    #[test]
    fn walking_from_both_ends_meets_once() {
        let base = id(1, 0);
        let mut p = Pack::new(&[b"f", b"v"]);
        for i in 0..7 {
            push(&mut p, base, id(1, i), &[b"f", b"v"]);
        }
        let mut it = p.entries(base);
        let mut seen = Vec::new();
        loop {
            match (it.next(), it.next_back()) {
                (Some(a), Some(b)) => seen.extend([a.id.seq, b.id.seq]),
                (Some(a), None) | (None, Some(a)) => seen.push(a.id.seq),
                (None, None) => break,
            }
        }
        seen.sort();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn deletes_flag_in_place() {
        let base = id(5, 0);
        let mut p = Pack::new(&[b"f", b"v"]);
        for i in 0..5 {
            push(&mut p, base, id(5, i), &[b"f", b"v"]);
        }
        let len = p.buf.len();
        if let Some(e) = p.find(base, id(5, 2)) {
            p.mark_deleted(e.at);
        }
        assert_eq!(p.buf.len(), len);
        assert!(p.find(base, id(5, 2)).is_none());
        let e = p.entries(base).nth(2).map(|e| (e.id, e.deleted, e.entry.to_vec()));
        assert_eq!(e, Some((id(5, 2), true, owned(&[b"f", b"v"]))));
        // delete_while skips deleted entries and stops at the first kept.
        assert_eq!(p.delete_while(base, |i| i < id(5, 4)), 3);
        let flags: Vec<_> = p.entries(base).map(|e| e.deleted).collect();
        assert_eq!(flags, [true, true, true, true, false]);
        assert_eq!(p.delete_while(base, |_| false), 0);
    }

    #[test]
    fn many_fields_empty_and_huge_values() {
        let base = id(7, 7);
        let names: Vec<Vec<u8>> = (0..300).map(|i| format!("field{i}").into_bytes()).collect();
        let huge = vec![b'h'; 70_000];
        let mut pairs: Vec<&[u8]> = Vec::new();
        for (i, n) in names.iter().enumerate() {
            pairs.push(n);
            pairs.push(if i % 3 == 0 {
                &b""[..]
            } else if i == 1 {
                &huge
            } else {
                n
            });
        }
        let mut p = Pack::new(&pairs);
        push(&mut p, base, base, &pairs);
        push(&mut p, base, id(7, 8), &[b"", &huge]);
        push(&mut p, base, id(8, 0), &pairs);
        let want = vec![
            (base, false, owned(&pairs)),
            (id(7, 8), false, owned(&[b"", &huge])),
            (id(8, 0), false, owned(&pairs)),
        ];
        assert_eq!(all(&p, base), want);
        let back: Vec<_> = p.entries(base).rev().map(|e| e.entry.len()).collect();
        assert_eq!(back, [600, 2, 600]);
    }

    #[test]
    fn large_id_deltas() {
        let base = id(1, u64::MAX - 1);
        let mut p = Pack::new(&[b"f", b"v"]);
        let ids = [base, id(1, u64::MAX), id(2, 0), id(u64::MAX - 1, 3), id(u64::MAX, u64::MAX)];
        for i in ids {
            push(&mut p, base, i, &[b"f", b"v"]);
        }
        let got: Vec<_> = p.entries(base).map(|e| e.id).collect();
        assert_eq!(got, ids);
        let got: Vec<_> = p.entries(base).rev().map(|e| e.id).collect();
        assert_eq!(got, ids.iter().rev().copied().collect::<Vec<_>>());
    }

    #[test]
    fn compact_and_clone_keep_contents() {
        let base = id(1, 0);
        let mut p = Pack::new(&[b"f", b"v"]);
        for i in 0..10 {
            push(&mut p, base, id(1, i), &[b"f", b"0123456789abcdef"]);
        }
        let before = all(&p, base);
        let c = p.clone();
        assert_eq!(c.capacity(), p.capacity());
        p.compact();
        assert_eq!(p.capacity(), p.buf.len());
        assert_eq!(all(&p, base), before);
        assert_eq!(all(&c, base), before);
        // SAME entries cost framing, flags, ids and the value: 22 bytes.
        assert_eq!(p.buf.len() - p.entries_at, 10 * 22);
    }
}

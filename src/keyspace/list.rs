//! A Redis list: a deque of packed chunks (Redis's quicklist), or a single
//! packed chunk while the whole list fits in one (Redis 7.2's `listpack`
//! list encoding), so a small list costs one allocation for its elements.
//!
//! A chunk (`Pack`) stores its elements back to back in one `Vec<u8>`, each
//! framed by its length on both sides so it can be walked from either end:
//! one byte when the length is below 255, else `0xFF` + 4 bytes (before) and
//! 4 bytes + `0xFF` (after). Chunk size follows `list-max-listpack-size`
//! exactly as Redis sizes quicklist nodes (negative: byte size class;
//! positive: element count, with an 8 KiB safety cap). Pushes and pops at
//! either end touch one chunk: O(1) in the list length, O(chunk) memmove at
//! the head, as in Redis. Index access walks chunks from the nearer end.

use super::limits::LIST_MAX_LISTPACK_SIZE;
use std::collections::VecDeque;

/// Marks a 4-byte length in an element frame.
const LONG: u8 = 0xFF;

/// Redis's SIZE_SAFETY_LIMIT: a count-limited chunk stays under this size.
const SIZE_SAFETY: usize = 8192;

/// Byte limits of `list-max-listpack-size` -1 .. -5.
const SIZE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// Which end of a list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    Head,
    Tail,
}

/// (byte limit, count limit) of one chunk under the current setting.
fn node_limits() -> (usize, usize) {
    let fill = LIST_MAX_LISTPACK_SIZE.get().clamp(-5, 32767);
    if fill >= 0 {
        (SIZE_SAFETY, fill as usize)
    } else {
        (SIZE_CLASSES[(-fill - 1) as usize], usize::MAX)
    }
}

fn frame_len(n: usize) -> usize {
    if n < LONG as usize {
        1
    } else {
        5
    }
}

/// Bytes an element of `n` bytes takes in a chunk.
fn entry_size(n: usize) -> usize {
    n + 2 * frame_len(n)
}

fn write_entry(out: &mut Vec<u8>, v: &[u8]) {
    let at = out.len();
    out.resize(at + entry_size(v.len()), 0);
    write_entry_at(&mut out[at..], v);
}

/// Frame `v` into `dst`, which is exactly `entry_size(v.len())` bytes.
fn write_entry_at(dst: &mut [u8], v: &[u8]) {
    let (n, end) = (v.len(), dst.len());
    let f = frame_len(n);
    if f == 1 {
        dst[0] = n as u8;
        dst[end - 1] = n as u8;
    } else {
        let l = (n as u32).to_le_bytes();
        dst[0] = LONG;
        dst[1..5].copy_from_slice(&l);
        dst[end - 5..end - 1].copy_from_slice(&l);
        dst[end - 1] = LONG;
    }
    dst[f..f + n].copy_from_slice(v);
}

fn entry_bytes(v: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entry_size(v.len()));
    write_entry(&mut b, v);
    b
}

/// The element starting at `pos`: (data start, data end, next entry).
#[inline]
fn read_fwd(buf: &[u8], pos: usize) -> (usize, usize, usize) {
    let b = buf[pos];
    if b != LONG {
        let s = pos + 1;
        let e = s + b as usize;
        (s, e, e + 1)
    } else {
        let n = u32::from_le_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]) as usize;
        let s = pos + 5;
        (s, s + n, s + n + 5)
    }
}

/// The element ending at `end`: (entry start, data start, data end).
#[inline]
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let b = buf[end - 1];
    if b != LONG {
        let e = end - 1;
        let s = e - b as usize;
        (s - 1, s, e)
    } else {
        let n = u32::from_le_bytes([buf[end - 5], buf[end - 4], buf[end - 3], buf[end - 2]]) as usize;
        let e = end - 5;
        let s = e - n;
        (s - 5, s, e)
    }
}

/// One packed chunk of elements: `buf[start..]`. Popping or dropping at
/// the head only moves `start`, and a head push fills the gap before it, so
/// both are O(1) rather than a memmove of the chunk (LPUSH/LPOP on a long
/// list). The gap is given back when a tail push would otherwise grow the
/// allocation.
#[derive(Clone, Default)]
struct Pack {
    buf: Vec<u8>,
    start: usize,
    count: usize,
}

impl Pack {
    /// Bytes of the elements (without the gap).
    fn bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Would this chunk stay within `limits` after adding `add` bytes and `n` elements?
    fn fits(&self, limits: (usize, usize), add: usize, n: usize) -> bool {
        self.bytes() + add <= limits.0 && self.count + n <= limits.1
    }

    /// Whether a chunk may take one more element of `n` bytes: an empty
    /// chunk always may (a huge element gets a chunk of its own).
    fn accepts(&self, limits: (usize, usize), n: usize) -> bool {
        self.count == 0 || self.fits(limits, entry_size(n), 1)
    }

    /// Add `v` at `end`. When the allocation must grow, it grows to `room`
    /// bytes of elements at once (0: by the usual doubling at the tail,
    /// exactly at the head), so a chunk of a long list is allocated once
    /// rather than reallocated and copied as it fills.
    fn push(&mut self, end: End, v: &[u8], room: usize) {
        let need = entry_size(v.len());
        match end {
            End::Tail => {
                if self.buf.capacity() - self.buf.len() < need {
                    self.compact();
                    let want = room.max(self.buf.len() + need);
                    if room > 0 && self.buf.capacity() < want {
                        self.buf.reserve_exact(want - self.buf.len());
                    }
                }
                write_entry(&mut self.buf, v);
            }
            End::Head => {
                if self.start < need {
                    // New allocation with the elements at its end and the
                    // gap before them.
                    let bytes = self.bytes();
                    let total = room.max(bytes + need);
                    let mut next = Vec::with_capacity(total);
                    next.resize(total - bytes, 0);
                    next.extend_from_slice(&self.buf[self.start..]);
                    self.start = total - bytes;
                    self.buf = next;
                }
                // Frame in place: the bytes before `start` are free.
                let at = self.start - need;
                write_entry_at(&mut self.buf[at..self.start], v);
                self.start = at;
            }
        }
        self.count += 1;
    }

    /// Give the gap before the elements back (they move to offset 0).
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Remove the element at `end`, handing it to `f` first.
    fn pop<R>(&mut self, end: End, f: impl FnOnce(&[u8]) -> R) -> R {
        let r;
        match end {
            End::Head => {
                let (s, e, next) = read_fwd(&self.buf, self.start);
                r = f(&self.buf[s..e]);
                self.start = next;
            }
            End::Tail => {
                let (start, s, e) = read_back(&self.buf, self.buf.len());
                r = f(&self.buf[s..e]);
                self.buf.truncate(start);
            }
        }
        self.count -= 1;
        self.reset_if_empty();
        r
    }

    /// Byte offset in `buf` of element `i` (`i == count` gives the end).
    fn offset(&self, i: usize) -> usize {
        if i <= self.count / 2 {
            let mut pos = self.start;
            for _ in 0..i {
                pos = read_fwd(&self.buf, pos).2;
            }
            pos
        } else {
            let mut end = self.buf.len();
            for _ in i..self.count {
                end = read_back(&self.buf, end).0;
            }
            end
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let (s, e, _) = read_fwd(&self.buf, self.offset(i));
        &self.buf[s..e]
    }

    fn replace(&mut self, i: usize, v: &[u8]) {
        let pos = self.offset(i);
        let next = read_fwd(&self.buf, pos).2;
        self.buf.splice(pos..next, entry_bytes(v));
    }

    fn insert(&mut self, i: usize, v: &[u8]) {
        let pos = self.offset(i);
        self.buf.splice(pos..pos, entry_bytes(v));
        self.count += 1;
    }

    /// Drop `n` elements from `end`.
    fn drop_n(&mut self, end: End, n: usize) {
        match end {
            End::Head => self.start = self.offset(n),
            End::Tail => {
                let pos = self.offset(self.count - n);
                self.buf.truncate(pos);
            }
        }
        self.count -= n;
        self.reset_if_empty();
    }

    /// An emptied chunk starts again at offset 0 (no gap to carry).
    fn reset_if_empty(&mut self) {
        if self.count == 0 {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn iter(&self) -> PackIter<'_> {
        PackIter { buf: &self.buf, front: self.start, back: self.buf.len() }
    }

    #[cfg(test)]
    fn from_entries<'a>(items: impl Iterator<Item = &'a [u8]>) -> Pack {
        let mut p = Pack::default();
        for v in items {
            p.push(End::Tail, v, 0);
        }
        p
    }

    /// Cut into chunks that each satisfy `limits` (one element at least).
    fn split_to_fit(self, limits: (usize, usize)) -> Vec<Pack> {
        if self.fits(limits, 0, 0) {
            return vec![self];
        }
        let mut out = vec![Pack::default()];
        for v in self.iter() {
            if !out.last().is_some_and(|p| p.accepts(limits, v.len())) {
                out.push(Pack::default());
            }
            if let Some(p) = out.last_mut() {
                p.push(End::Tail, v, 0);
            }
        }
        out
    }
}

/// Elements of a chunk, from either end.
struct PackIter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (s, e, next) = read_fwd(self.buf, self.front);
        self.front = next;
        Some(&self.buf[s..e])
    }
}

impl<'a> DoubleEndedIterator for PackIter<'a> {
    #[inline]
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (start, s, e) = read_back(self.buf, self.back);
        self.back = start;
        Some(&self.buf[s..e])
    }
}

#[derive(Clone)]
enum Repr {
    /// The whole list in one chunk.
    Small(Pack),
    /// Chunks from head to tail, none empty; `len` is the element total,
    /// `heap` the chunks' allocated bytes (kept current: maxmemory asks for
    /// it on every write, and summing it walks every chunk).
    Big { nodes: VecDeque<Pack>, len: usize, heap: usize },
}

#[derive(Clone)]
pub struct List {
    repr: Repr,
}

impl Default for List {
    fn default() -> Self {
        List { repr: Repr::Small(Pack::default()) }
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(p) => p.count,
            Repr::Big { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Small(_) => "listpack",
            Repr::Big { .. } => "quicklist",
        }
    }

    pub fn deep_clone(&self) -> List {
        self.clone()
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Small(p) => p.buf.capacity(),
            Repr::Big { nodes, heap, .. } => nodes.capacity() * std::mem::size_of::<Pack>() + heap,
        }
    }

    /// Visit the elements from head to tail: the AOF rebuilds the value from them.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for v in self.iter() {
            f(v)
        }
    }

    fn packs(&self) -> std::iter::Chain<std::slice::Iter<'_, Pack>, std::slice::Iter<'_, Pack>> {
        let (a, b) = match &self.repr {
            Repr::Small(p) => (std::slice::from_ref(p), &[][..]),
            Repr::Big { nodes, .. } => nodes.as_slices(),
        };
        a.iter().chain(b.iter())
    }

    /// The elements node by node, head first (DUMP writes one quicklist
    /// node per node).
    pub fn nodes(&self) -> impl Iterator<Item = impl Iterator<Item = &[u8]> + '_> + '_ {
        self.packs().map(Pack::iter)
    }

    /// Elements head to tail (`.rev()` for tail to head).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.packs().flat_map(Pack::iter)
    }

    /// Elements from index `start` (0-based, must be < len) towards the tail.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut skip_nodes = 0;
        let mut off = start;
        for p in self.packs() {
            if off < p.count {
                break;
            }
            off -= p.count;
            skip_nodes += 1;
        }
        self.packs().skip(skip_nodes).flat_map(Pack::iter).skip(off)
    }

    pub fn push(&mut self, end: End, v: &[u8]) {
        let limits = node_limits();
        match &mut self.repr {
            Repr::Small(p) => {
                if p.accepts(limits, v.len()) {
                    p.push(end, v, 0);
                    return;
                }
                let p = std::mem::take(p);
                let (len, heap) = (p.count, p.buf.capacity());
                self.repr = Repr::Big { nodes: VecDeque::from([p]), len, heap };
                self.push(end, v);
            }
            Repr::Big { nodes, len, heap } => {
                *len += 1;
                // A chunk at the end of a long list will likely fill up:
                // size it for that once (byte-limited chunks only).
                let room = if limits.1 == usize::MAX { limits.0 } else { 0 };
                let node = match end {
                    End::Head => nodes.front_mut(),
                    End::Tail => nodes.back_mut(),
                };
                if let Some(n) = node.filter(|n| n.accepts(limits, v.len())) {
                    let before = n.buf.capacity();
                    n.push(end, v, room);
                    *heap = *heap + n.buf.capacity() - before;
                    return;
                }
                let mut n = Pack::default();
                n.push(end, v, room);
                *heap += n.buf.capacity();
                match end {
                    End::Head => nodes.push_front(n),
                    End::Tail => nodes.push_back(n),
                }
            }
        }
    }

    /// Remove the element at `end`, handing it to `f`; None if empty.
    pub fn pop_with<R>(&mut self, end: End, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let r = match &mut self.repr {
            Repr::Small(p) => {
                if p.count == 0 {
                    return None;
                }
                return Some(p.pop(end, f));
            }
            Repr::Big { nodes, len, heap } => {
                let node = match end {
                    End::Head => nodes.front_mut()?,
                    End::Tail => nodes.back_mut()?,
                };
                let before = node.buf.capacity();
                let r = node.pop(end, f);
                *heap = *heap + node.buf.capacity() - before;
                if node.count == 0 {
                    *heap -= node.buf.capacity();
                    match end {
                        End::Head => nodes.pop_front(),
                        End::Tail => nodes.pop_back(),
                    };
                }
                *len -= 1;
                r
            }
        };
        self.maybe_shrink();
        Some(r)
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        self.pop_with(end, |v| v.to_vec())
    }

    /// Back to one chunk when a shrinking list fits in half a chunk
    /// (the hysteresis stops a list at the boundary from flapping).
    fn maybe_shrink(&mut self) {
        if let Repr::Big { nodes, .. } = &mut self.repr {
            if nodes.len() > 1 {
                return;
            }
            let (bytes, count) = node_limits();
            let small = match nodes.front() {
                None => true,
                Some(p) => p.bytes() <= bytes / 2 && p.count <= count / 2,
            };
            if small {
                let p = nodes.pop_front().unwrap_or_default();
                self.repr = Repr::Small(p);
            }
        }
    }

    /// (chunk index, index in chunk) of element `i` < len.
    fn locate(nodes: &VecDeque<Pack>, len: usize, i: usize) -> (usize, usize) {
        if i < len / 2 {
            let mut off = i;
            for (n, p) in nodes.iter().enumerate() {
                if off < p.count {
                    return (n, off);
                }
                off -= p.count;
            }
        } else {
            let mut from_end = len - i; // >= 1
            for (n, p) in nodes.iter().enumerate().rev() {
                if from_end <= p.count {
                    return (n, p.count - from_end);
                }
                from_end -= p.count;
            }
        }
        (nodes.len().saturating_sub(1), 0)
    }

    /// Element `i` (0-based from the head), if it exists.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        match &self.repr {
            Repr::Small(p) => Some(p.get(i)),
            Repr::Big { nodes, len, .. } => {
                let (n, off) = Self::locate(nodes, *len, i);
                Some(nodes[n].get(off))
            }
        }
    }

    /// Replace element `i`; false if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len() {
            return false;
        }
        match &mut self.repr {
            Repr::Small(p) => p.replace(i, v),
            Repr::Big { nodes, len, .. } => {
                let (n, off) = Self::locate(nodes, *len, i);
                nodes[n].replace(off, v);
                Self::refit(nodes, n);
            }
        }
        self.check_grow();
        self.recount_heap();
        true
    }

    /// Insert `v` so that it becomes element `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        let len = self.len();
        if i == 0 {
            return self.push(End::Head, v);
        }
        if i >= len {
            return self.push(End::Tail, v);
        }
        match &mut self.repr {
            Repr::Small(p) => p.insert(i, v),
            Repr::Big { nodes, len, .. } => {
                let (n, off) = Self::locate(nodes, *len, i);
                nodes[n].insert(off, v);
                *len += 1;
                Self::refit(nodes, n);
            }
        }
        self.check_grow();
        self.recount_heap();
    }

    /// Recount `heap` after an operation that may have touched many chunks
    /// (all of them already walk the chunk list).
    fn recount_heap(&mut self) {
        if let Repr::Big { nodes, heap, .. } = &mut self.repr {
            *heap = nodes.iter().map(|p| p.buf.capacity()).sum();
        }
    }

    /// A chunk that grew past the limits is split.
    fn refit(nodes: &mut VecDeque<Pack>, n: usize) {
        let limits = node_limits();
        if nodes[n].count > 1 && !nodes[n].fits(limits, 0, 0) {
            let p = std::mem::take(&mut nodes[n]);
            let parts = p.split_to_fit(limits);
            nodes.remove(n);
            for (k, part) in parts.into_iter().enumerate() {
                nodes.insert(n + k, part);
            }
        }
    }

    /// A single chunk that grew past the limits becomes a chunk list.
    fn check_grow(&mut self) {
        if let Repr::Small(p) = &mut self.repr {
            let limits = node_limits();
            if p.count > 1 && !p.fits(limits, 0, 0) {
                let p = std::mem::take(p);
                let len = p.count;
                let nodes: VecDeque<Pack> = p.split_to_fit(limits).into();
                let heap = nodes.iter().map(|p| p.buf.capacity()).sum();
                self.repr = Repr::Big { nodes, len, heap };
            }
        }
    }

    /// Index of the first element equal to `v`.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == v)
    }

    /// Keep only elements `start..=end` (already clamped; `start > end`
    /// empties the list).
    pub fn trim(&mut self, start: usize, end: usize) {
        let len = self.len();
        if start > end || start >= len {
            self.drop_n(End::Head, len);
            return;
        }
        let tail = len - 1 - end.min(len - 1);
        self.drop_n(End::Head, start);
        self.drop_n(End::Tail, tail);
    }

    /// Remove `n` (<= len) elements from `end`.
    fn drop_n(&mut self, end: End, mut n: usize) {
        if n == 0 {
            return;
        }
        match &mut self.repr {
            Repr::Small(p) => p.drop_n(end, n),
            Repr::Big { nodes, len, heap } => {
                *len -= n;
                // Only the chunks touched change `heap`: LTRIM keeping a
                // capped list's length must not walk the whole list.
                while n > 0 {
                    let node = match end {
                        End::Head => nodes.front_mut(),
                        End::Tail => nodes.back_mut(),
                    };
                    let Some(node) = node else { break };
                    let before = node.buf.capacity();
                    if node.count <= n {
                        n -= node.count;
                        *heap -= before;
                        match end {
                            End::Head => nodes.pop_front(),
                            End::Tail => nodes.pop_back(),
                        };
                    } else {
                        node.drop_n(end, n);
                        *heap = *heap + node.buf.capacity() - before;
                        n = 0;
                    }
                }
            }
        }
        self.maybe_shrink();
    }

    /// LREM: remove elements equal to `v`: all of them (`count` 0), the
    /// first `count` from the head (> 0) or from the tail (< 0).
    pub fn remove_matching(&mut self, v: &[u8], count: i64) -> usize {
        let len = self.len();
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs().try_into().unwrap_or(usize::MAX) };
        // Indexes to remove, ascending.
        let mut idx: Vec<usize> = if count >= 0 {
            self.iter().enumerate().filter(|(_, e)| *e == v).map(|(i, _)| i).take(limit).collect()
        } else {
            self.iter().rev().enumerate().filter(|(_, e)| *e == v).map(|(i, _)| len - 1 - i).take(limit).collect()
        };
        if idx.is_empty() {
            return 0;
        }
        if count < 0 {
            idx.reverse();
        }
        let removed = idx.len();
        let rebuild = |p: &mut Pack, base: usize, k: &mut usize| {
            let stop = base + p.count;
            if *k >= idx.len() || idx[*k] >= stop {
                return;
            }
            let mut kept = Pack::default();
            for (j, e) in p.iter().enumerate() {
                if *k < idx.len() && idx[*k] == base + j {
                    *k += 1;
                } else {
                    kept.push(End::Tail, e, 0);
                }
            }
            *p = kept;
        };
        let mut k = 0;
        match &mut self.repr {
            Repr::Small(p) => rebuild(p, 0, &mut k),
            Repr::Big { nodes, len, .. } => {
                let mut base = 0;
                for p in nodes.iter_mut() {
                    let c = p.count;
                    rebuild(p, base, &mut k);
                    base += c;
                }
                nodes.retain(|p| p.count > 0);
                *len -= removed;
            }
        }
        self.recount_heap();
        self.maybe_shrink();
        removed
    }

    /// A list of the given elements, head first.
    pub fn from_elements<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> List {
        let mut l = List::new();
        for v in items {
            l.push(End::Tail, v);
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own seeded PRNG, deterministic for the model test.
    use crate::cmd::Rng as Prng;

    fn value(r: &mut Prng) -> Vec<u8> {
        // Mostly short, sometimes at the 254/255 frame boundary, sometimes big.
        let n = match r.below(20) {
            0 => 254 + r.below(3) as usize,
            1 => 3000 + r.below(10000) as usize,
            _ => r.below(12) as usize,
        };
        let c = b'a' + r.below(4) as u8;
        vec![c; n]
    }

    fn check(l: &List, m: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), m.len());
        let fwd: Vec<&[u8]> = l.iter().collect();
        let want: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
        assert_eq!(fwd, want);
        let rev: Vec<&[u8]> = l.iter().rev().collect();
        assert_eq!(rev, want.iter().rev().copied().collect::<Vec<_>>());
        if let Repr::Big { nodes, len, heap } = &l.repr {
            assert_eq!(*len, nodes.iter().map(|p| p.count).sum::<usize>());
            assert_eq!(*heap, nodes.iter().map(|p| p.buf.capacity()).sum::<usize>(), "heap kept current");
            assert!(nodes.iter().all(|p| p.count > 0));
        }
    }

    fn model_run(fill: i64, seed: u64, steps: usize) {
        LIST_MAX_LISTPACK_SIZE.set(fill);
        let mut r = Prng::new(seed);
        let mut l = List::new();
        let mut m: VecDeque<Vec<u8>> = VecDeque::new();
        for step in 0..steps {
            match r.below(12) {
                0..=2 => {
                    let v = value(&mut r);
                    l.push(End::Head, &v);
                    m.push_front(v);
                }
                3..=5 => {
                    let v = value(&mut r);
                    l.push(End::Tail, &v);
                    m.push_back(v);
                }
                6 => assert_eq!(l.pop(End::Head), m.pop_front()),
                7 => assert_eq!(l.pop(End::Tail), m.pop_back()),
                8 if !m.is_empty() => {
                    let i = r.below(m.len() as u64) as usize;
                    let v = value(&mut r);
                    assert!(l.set(i, &v));
                    m[i] = v;
                    assert_eq!(l.get(i), Some(m[i].as_slice()));
                }
                9 => {
                    let i = r.below(m.len() as u64 + 1) as usize;
                    let v = value(&mut r);
                    l.insert(i, &v);
                    m.insert(i, v);
                }
                10 => {
                    let v = value(&mut r);
                    let count = r.below(5) as i64 - 2;
                    let want = {
                        let n = m.iter().filter(|e| **e == v).count();
                        if count == 0 {
                            n
                        } else {
                            n.min(count.unsigned_abs() as usize)
                        }
                    };
                    assert_eq!(l.remove_matching(&v, count), want);
                    let mut left = want;
                    if count >= 0 {
                        let mut out = VecDeque::new();
                        for e in m.drain(..) {
                            if e == v && left > 0 {
                                left -= 1;
                            } else {
                                out.push_back(e);
                            }
                        }
                        m = out;
                    } else {
                        let mut out = VecDeque::new();
                        for e in m.drain(..).rev() {
                            if e == v && left > 0 {
                                left -= 1;
                            } else {
                                out.push_front(e);
                            }
                        }
                        m = out;
                    }
                }
                _ if step % 50 == 0 && !m.is_empty() => {
                    let s = r.below(m.len() as u64) as usize;
                    let e = s + r.below(m.len() as u64) as usize;
                    l.trim(s, e);
                    let e = e.min(m.len() - 1);
                    m = m.drain(s..=e).collect();
                }
                _ => {
                    if !m.is_empty() {
                        let i = r.below(m.len() as u64) as usize;
                        assert_eq!(l.get(i), Some(m[i].as_slice()));
                        let got: Vec<&[u8]> = l.iter_from(i).take(3).collect();
                        let want: Vec<&[u8]> = m.iter().skip(i).take(3).map(|v| v.as_slice()).collect();
                        assert_eq!(got, want);
                    }
                }
            }
            check(&l, &m);
        }
        LIST_MAX_LISTPACK_SIZE.set(-2);
    }

    // One test drives every fill setting: the limit is process-wide.
    #[test]
    fn list_matches_vecdeque_model() {
        for (i, fill) in [-2i64, -1, 1, 2, 5, 0, -5].into_iter().enumerate() {
            model_run(fill, 0x9e3779b97f4a7c15 ^ i as u64, 3000);
        }
        encoding_converts_both_ways();
    }

    #[test]
    fn head_gap_is_reused_and_bounded() {
        // A queue (push at the tail, pop at the head) on a one-chunk list:
        // the gap left by pops is given back, so the chunk stays small.
        let mut l = List::new();
        for i in 0..100_000u32 {
            l.push(End::Tail, &i.to_le_bytes());
            if i >= 10 {
                assert_eq!(l.pop(End::Head), Some((i - 10).to_le_bytes().to_vec()));
            }
        }
        assert_eq!(l.len(), 10);
        assert!(l.mem_usage() < 256, "{}", l.mem_usage());
        // Head pushes on a long list fill the chunk's gap: one allocation
        // per chunk, each sized to the chunk limit (8 KiB at -2).
        let mut l = List::new();
        let v = [b'y'; 256];
        for _ in 0..1000 {
            l.push(End::Head, &v);
        }
        if let Repr::Big { nodes, .. } = &l.repr {
            // (The tail chunk is the one-chunk list it started as.)
            assert!(nodes.iter().take(nodes.len() - 1).all(|p| p.buf.capacity() == 8192), "chunks sized once");
            assert!(nodes.iter().all(|p| p.bytes() <= 8192));
        } else {
            panic!("1000 x 256 B is a chunk list");
        }
        assert!(l.iter().all(|e| e == v));
        // Dropping from the head of a chunk only moves its start.
        l.trim(5, 994);
        assert_eq!(l.len(), 990);
        assert_eq!(l.get(0), Some(&v[..]));
    }

    fn encoding_converts_both_ways() {
        let mut l = List::new();
        assert_eq!(l.encoding(), "listpack");
        let v = [b'x'; 100];
        while l.encoding() == "listpack" {
            l.push(End::Tail, &v);
        }
        // 8 KiB / 102 bytes per element.
        assert_eq!(l.len(), 8192 / 102 + 1);
        // Popping the lone tail chunk leaves one chunk, which converts
        // back once it is half full.
        while l.len() > 40 {
            l.pop(End::Tail);
        }
        assert_eq!(l.encoding(), "listpack");
        let p = Pack::from_entries([&b"a"[..], b"bb"].into_iter());
        assert_eq!(p.get(1), b"bb");
    }
}

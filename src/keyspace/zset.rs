//! A Redis sorted set: `listpack` while small, a ranked tree (O(log n))
//! otherwise, reported as `skiplist` as Redis names its big form.
//!
//! The small form is one packed byte buffer of (score, member) entries kept
//! in (score, member) order, as Redis's listpack is: a few bytes of overhead
//! per member and one allocation per set. Past `zset-max-listpack-entries`
//! members or `zset-max-listpack-value` bytes in one member it converts to
//! an order-statistic B+tree with a member hash table (zset_tree.rs).
//!
//! Every range query is answered as a rank: "first/last rank in this score
//! or lex range", then a walk from a rank. Commands never see the encoding.

use super::hash::SmallBytes;
use super::limits::{ZSET_MAX_LISTPACK_ENTRIES, ZSET_MAX_LISTPACK_VALUE};
use super::zset_tree::{Tree, TreeIter};
use std::cmp::Ordering;

/// A score interval, `(` exclusive ends as in ZRANGEBYSCORE.
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    #[inline]
    pub fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    #[inline]
    pub fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lex range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

impl LexBound {
    /// `-` and `+` count as exclusive, as Redis parses them.
    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Incl(_))
    }

    fn cmp_bound(&self, other: &LexBound) -> Ordering {
        use LexBound::*;
        match (self, other) {
            (NegInf, NegInf) | (PosInf, PosInf) => Ordering::Equal,
            (NegInf, _) | (_, PosInf) => Ordering::Less,
            (PosInf, _) | (_, NegInf) => Ordering::Greater,
            (Incl(a) | Excl(a), Incl(b) | Excl(b)) => a.cmp(b),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    pub fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= &b[..],
            LexBound::Excl(b) => m > &b[..],
        }
    }

    pub fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }

    pub fn is_empty(&self) -> bool {
        match self.min.cmp_bound(&self.max) {
            Ordering::Greater => true,
            Ordering::Equal => self.min.exclusive() || self.max.exclusive(),
            Ordering::Less => false,
        }
    }
}

/// (score, member) order: ties on score are broken by member bytes.
#[inline]
fn before(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

pub struct ZSet {
    repr: Repr,
}

/// 24 bytes: a `ZSet` lives inside `Value` with no allocation of its own.
enum Repr {
    Pack(Pack),
    Tree(Box<Tree>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet { repr: Repr::Pack(Pack::default()) }
    }

    /// An empty set in the encoding Redis would pick for about `n` members
    /// whose longest is `max_member_len` bytes (STORE commands).
    pub fn with_hint(n: usize, max_member_len: usize) -> ZSet {
        if fits_pack(n, max_member_len) {
            ZSet::new()
        } else {
            ZSet { repr: Repr::Tree(Box::new(Tree::new())) }
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len(),
            Repr::Tree(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Tree(_) => "skiplist",
        }
    }

    pub fn deep_clone(&self) -> ZSet {
        let repr = match &self.repr {
            Repr::Pack(p) => Repr::Pack(p.clone()),
            Repr::Tree(t) => Repr::Tree(t.clone()),
        };
        ZSet { repr }
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.buf.mem_usage(),
            Repr::Tree(t) => t.mem_usage(),
        }
    }

    /// Visit the (member, score) pairs in rank order: the AOF rebuilds the value from them.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        self.walk(0, false, |m, s| {
            f(m, s);
            true
        });
    }

    /// (member, score) pairs in rank order, borrowed from the set.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Pack(p) => IterInner::Pack(p.iter()),
            Repr::Tree(t) => IterInner::Tree(t.iter()),
        })
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Pack(p) => p.find(member).map(|(_, s)| s),
            Repr::Tree(t) => t.find(member).map(|id| t.score_of(id)),
        }
    }

    /// Add `member` or move it to `score`; true if it was added.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        if let Repr::Pack(p) = &mut self.repr {
            if let Some((pos, old)) = p.find(member) {
                if old != score {
                    p.remove_at(pos);
                    p.insert(member, score);
                }
                return false;
            }
            if fits_pack(p.len() + 1, member.len()) {
                p.insert(member, score);
                return true;
            }
            self.convert_to_tree();
        }
        let Repr::Tree(t) = &mut self.repr else { unreachable!("converted above") };
        match t.find(member) {
            Some(id) => {
                if t.score_of(id) != score {
                    t.set_score(id, score);
                }
                false
            }
            None => {
                t.insert(member, score);
                true
            }
        }
    }

    /// Remove `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Pack(p) => {
                let (pos, s) = p.find(member)?;
                p.remove_at(pos);
                Some(s)
            }
            Repr::Tree(t) => {
                let id = t.find(member)?;
                Some(t.remove(id).1)
            }
        }
    }

    /// 0-based ascending rank and score of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match &self.repr {
            Repr::Pack(p) => p.iter().enumerate().find(|(_, (_, m, _))| *m == member).map(|(i, (_, _, s))| (i, s)),
            Repr::Tree(t) => {
                let id = t.find(member)?;
                Some((t.rank_of(id), t.score_of(id)))
            }
        }
    }

    /// Visit members from 0-based `rank` towards the tail (or the head if
    /// `rev`) while `f` returns true.
    pub fn walk(&self, rank: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        if rank >= self.len() {
            return;
        }
        match &self.repr {
            Repr::Pack(p) => {
                if rev {
                    let pos: Vec<usize> = p.iter().take(rank + 1).map(|(pos, _, _)| pos).collect();
                    for &at in pos.iter().rev() {
                        let (m, s, _) = p.entry(at);
                        if !f(m, s) {
                            return;
                        }
                    }
                } else {
                    for (_, m, s) in p.iter().skip(rank) {
                        if !f(m, s) {
                            return;
                        }
                    }
                }
            }
            Repr::Tree(t) => t.walk(rank, rev, f),
        }
    }

    /// Member and score at a 0-based rank.
    pub fn at_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        if rank >= self.len() {
            return None;
        }
        match &self.repr {
            Repr::Pack(p) => p.iter().nth(rank).map(|(_, m, s)| (m, s)),
            Repr::Tree(t) => t.at_rank(rank),
        }
    }

    /// Rank of the first member in the score range, if any.
    pub fn score_first(&self, r: &ScoreRange) -> Option<usize> {
        if !self.score_range_overlaps(r) {
            return None;
        }
        let (rank, score) = match &self.repr {
            Repr::Pack(p) => p.iter().enumerate().find(|(_, (_, _, s))| r.gte_min(*s)).map(|(i, (_, _, s))| (i, s))?,
            Repr::Tree(t) => {
                let rank = t.count_score_while(|s| !r.gte_min(s));
                (rank, t.at_rank(rank)?.1)
            }
        };
        r.lte_max(score).then_some(rank)
    }

    /// Rank of the last member in the score range, if any.
    pub fn score_last(&self, r: &ScoreRange) -> Option<usize> {
        if !self.score_range_overlaps(r) {
            return None;
        }
        let (rank, score) = match &self.repr {
            Repr::Pack(p) => {
                let mut last = None;
                for (i, (_, _, s)) in p.iter().enumerate() {
                    if !r.lte_max(s) {
                        break;
                    }
                    last = Some((i, s));
                }
                last?
            }
            Repr::Tree(t) => {
                let rank = t.count_score_while(|s| r.lte_max(s)).checked_sub(1)?;
                (rank, t.at_rank(rank)?.1)
            }
        };
        r.gte_min(score).then_some(rank)
    }

    fn score_range_overlaps(&self, r: &ScoreRange) -> bool {
        if r.is_empty() || self.is_empty() {
            return false;
        }
        let (Some((_, lo)), Some((_, hi))) = (self.at_rank(0), self.at_rank(self.len() - 1)) else { return false };
        r.gte_min(hi) && r.lte_max(lo)
    }

    fn lex_range_overlaps(&self, r: &LexRange) -> bool {
        if r.is_empty() || self.is_empty() {
            return false;
        }
        let (Some((lo, _)), Some((hi, _))) = (self.at_rank(0), self.at_rank(self.len() - 1)) else { return false };
        r.gte_min(hi) && r.lte_max(lo)
    }

    /// Rank of the first member in the lex range (meaningful when all
    /// scores are equal; otherwise as unspecified as Redis's answer).
    pub fn lex_first(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_range_overlaps(r) {
            return None;
        }
        match &self.repr {
            Repr::Pack(p) => {
                let (i, m) = p.iter().enumerate().find(|(_, (_, m, _))| r.gte_min(m)).map(|(i, (_, m, _))| (i, m))?;
                r.lte_max(m).then_some(i)
            }
            Repr::Tree(t) => {
                let rank = t.count_member_while(|m| !r.gte_min(m));
                r.lte_max(t.at_rank(rank)?.0).then_some(rank)
            }
        }
    }

    /// Rank of the last member in the lex range.
    pub fn lex_last(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_range_overlaps(r) {
            return None;
        }
        match &self.repr {
            Repr::Pack(p) => {
                // From the tail backwards, as a listpack is walked.
                let all: Vec<(usize, &[u8])> = p.iter().enumerate().map(|(i, (_, m, _))| (i, m)).collect();
                let &(i, m) = all.iter().rev().find(|(_, m)| r.lte_max(m))?;
                r.gte_min(m).then_some(i)
            }
            Repr::Tree(t) => {
                let rank = t.count_member_while(|m| r.lte_max(m)).checked_sub(1)?;
                r.gte_min(t.at_rank(rank)?.0).then_some(rank)
            }
        }
    }

    /// ZLEXCOUNT: a listpack counts forward from the first member in range
    /// while members stay under max; the big form subtracts ranks, as Redis's
    /// skiplist does. Both are Redis's ways, and they differ only when
    /// scores are not all equal.
    pub fn lex_count(&self, r: &LexRange) -> usize {
        let Some(first) = self.lex_first(r) else { return 0 };
        match &self.repr {
            Repr::Pack(_) => {
                let mut n = 0;
                self.walk(first, false, |m, _| {
                    let ok = r.lte_max(m);
                    n += ok as usize;
                    ok
                });
                n
            }
            Repr::Tree(_) => self.lex_last(r).map_or(0, |last| (last + 1).saturating_sub(first)),
        }
    }

    /// Remove the members of 0-based ranks `start..=end` (clamped),
    /// handing each to `f`; returns how many were removed.
    pub fn remove_ranks(&mut self, start: usize, end: usize, mut f: impl FnMut(&[u8], f64)) -> usize {
        let len = self.len();
        if start >= len || start > end {
            return 0;
        }
        let n = end.min(len - 1) - start + 1;
        match &mut self.repr {
            Repr::Pack(p) => {
                let Some((from, _, _)) = p.iter().nth(start) else { return 0 };
                let mut to = from;
                for _ in 0..n {
                    let (m, s, next) = p.entry(to);
                    f(m, s);
                    to = next;
                }
                p.buf.splice(from, to - from, &[]);
            }
            Repr::Tree(t) => t.remove_ranks(start, n, f),
        }
        n
    }

    /// ZSCAN step: visit some members starting at `cursor`, return the next
    /// cursor (0 when done). A listpack is returned whole, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Pack(_) => {
                self.for_each(f);
                0
            }
            Repr::Tree(t) => {
                let mut cursor = cursor;
                let mut visited = 0;
                let mut budget = count.saturating_mul(10);
                loop {
                    cursor = t.scan_bucket(cursor, |m, sc| {
                        visited += 1;
                        f(m, sc)
                    });
                    if cursor == 0 || budget == 0 || visited >= count {
                        return cursor;
                    }
                    budget -= 1;
                }
            }
        }
    }

    /// Switch to the skiplist form whatever the size: Redis's SORT does
    /// this to the sets it sorts (and they stay so).
    pub fn force_skiplist(&mut self) {
        self.convert_to_tree();
    }

    fn convert_to_tree(&mut self) {
        if let Repr::Pack(p) = &self.repr {
            let mut t = Tree::new();
            for (_, m, sc) in p.iter() {
                t.insert(m, sc);
            }
            self.repr = Repr::Tree(Box::new(t));
        }
    }
}

pub struct Iter<'a>(IterInner<'a>);

enum IterInner<'a> {
    Pack(PackIter<'a>),
    Tree(TreeIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Pack(it) => it.next().map(|(_, m, s)| (m, s)),
            IterInner::Tree(it) => it.next(),
        }
    }
}

fn fits_pack(n: usize, max_member_len: usize) -> bool {
    let max_entries = ZSET_MAX_LISTPACK_ENTRIES.get();
    let max_value = ZSET_MAX_LISTPACK_VALUE.get();
    max_entries > 0 && (n as i64) <= max_entries && (max_member_len as i64) <= max_value
}

// ---- listpack: packed (score, len, member) entries ----------------------

/// Entry layout: the score — tag 1 + zigzag LEB128 when it is an integer
/// of at most 2^53 in magnitude (most scores: 2 bytes for small ones, as a
/// listpack stores them), else tag 0 + 8 little-endian bytes — then the
/// member length as LEB128 and the member bytes. Entries are in (score,
/// member) order. The bytes are exactly sized and live inside the `ZSet`
/// while short (hash.rs `SmallBytes`).
#[derive(Clone)]
struct Pack {
    buf: SmallBytes,
}

impl Default for Pack {
    fn default() -> Self {
        Pack { buf: SmallBytes::new() }
    }
}

/// Read a LEB128 number at `i`; returns it and the next offset.
#[inline]
fn leb(b: &[u8], mut i: usize) -> (u64, usize) {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let c = b[i];
        i += 1;
        n |= ((c & 0x7f) as u64) << shift;
        if c < 0x80 {
            return (n, i);
        }
        shift += 7;
    }
}

fn push_leb(e: &mut Vec<u8>, mut n: u64) {
    loop {
        let c = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            e.push(c);
            return;
        }
        e.push(c | 0x80);
    }
}

impl Pack {
    fn len(&self) -> usize {
        self.iter().count()
    }

    /// (member, score, next entry's offset) of the entry at `pos`.
    #[inline]
    fn entry(&self, pos: usize) -> (&[u8], f64, usize) {
        let b = self.buf.as_slice();
        let (score, i) = if b[pos] == 1 {
            let (z, i) = leb(b, pos + 1);
            let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
            (v as f64, i)
        } else {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[pos + 1..pos + 9]);
            (f64::from_le_bytes(raw), pos + 9)
        };
        let (n, i) = leb(b, i);
        let n = n as usize;
        (&b[i..i + n], score, i + n)
    }

    fn iter(&self) -> PackIter<'_> {
        PackIter { p: self, pos: 0 }
    }

    fn find(&self, member: &[u8]) -> Option<(usize, f64)> {
        self.iter().find(|(_, m, _)| *m == member).map(|(pos, _, s)| (pos, s))
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        // Redis's listpack stores "-0" as the integer 0: a small set never keeps -0.
        let score = if score == 0.0 { 0.0 } else { score };
        let at = self.iter().find(|(_, m, s)| before(score, member, *s, m)).map(|(pos, _, _)| pos);
        let mut e = Vec::with_capacity(member.len() + 12);
        if score.fract() == 0.0 && score.abs() <= (1u64 << 53) as f64 {
            let v = score as i64;
            e.push(1);
            push_leb(&mut e, ((v << 1) ^ (v >> 63)) as u64);
        } else {
            e.push(0);
            e.extend_from_slice(&score.to_le_bytes());
        }
        push_leb(&mut e, member.len() as u64);
        e.extend_from_slice(member);
        let at = at.unwrap_or(self.buf.len());
        self.buf.splice(at, 0, &[&e]);
    }

    fn remove_at(&mut self, pos: usize) {
        let (_, _, end) = self.entry(pos);
        self.buf.splice(pos, end - pos, &[]);
    }
}

struct PackIter<'a> {
    p: &'a Pack,
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    /// (offset, member, score)
    type Item = (usize, &'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.p.buf.len() {
            return None;
        }
        let at = self.pos;
        let (m, s, next) = self.p.entry(at);
        self.pos = next;
        Some((at, m, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own seeded PRNG, deterministic for the property tests.
    use crate::cmd::Rng as Prng;

    /// The naive model: a vector kept sorted by (score, member).
    fn model_sorted(m: &std::collections::HashMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = m.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
        v
    }

    fn contents(z: &ZSet) -> Vec<(Vec<u8>, f64)> {
        let mut v = Vec::new();
        z.for_each(|m, s| v.push((m.to_vec(), s)));
        v
    }

    fn check(z: &ZSet, model: &std::collections::HashMap<Vec<u8>, f64>, rng: &mut Prng) {
        if let Repr::Tree(t) = &z.repr {
            t.check();
        }
        let want = model_sorted(model);
        assert_eq!(z.len(), want.len());
        assert_eq!(contents(z), want);
        for (i, (m, s)) in want.iter().enumerate() {
            assert_eq!(z.rank(m), Some((i, *s)));
            assert_eq!(z.at_rank(i).map(|(m, s)| (m.to_vec(), s)), Some((m.clone(), *s)));
        }
        // Reverse walk from a random rank.
        if !want.is_empty() {
            let r = rng.below(want.len() as u64) as usize;
            let mut got = Vec::new();
            z.walk(r, true, |m, _| {
                got.push(m.to_vec());
                true
            });
            let exp: Vec<Vec<u8>> = want[..=r].iter().rev().map(|(m, _)| m.clone()).collect();
            assert_eq!(got, exp);
        }
        // Score ranges.
        for _ in 0..5 {
            let a = rng.below(40) as f64 / 2.0 - 2.0;
            let b = a + rng.below(20) as f64 / 2.0;
            let r = ScoreRange { min: a, max: b, minex: rng.below(2) == 0, maxex: rng.below(2) == 0 };
            let inr: Vec<usize> = (0..want.len()).filter(|&i| r.gte_min(want[i].1) && r.lte_max(want[i].1)).collect();
            assert_eq!(z.score_first(&r), inr.first().copied(), "{r:?}");
            assert_eq!(z.score_last(&r), inr.last().copied(), "{r:?}");
        }
    }

    fn run_model(seed: u64, ops: usize, members: u64) {
        let mut rng = Prng::new(seed);
        let mut z = ZSet::new();
        let mut model = std::collections::HashMap::new();
        for step in 0..ops {
            let m = format!("m{}", rng.below(members)).into_bytes();
            match rng.below(10) {
                0..=5 => {
                    let s = rng.below(30) as f64 / 2.0;
                    let added = z.insert(&m, s);
                    assert_eq!(added, model.insert(m, s).is_none());
                }
                6 | 7 => assert_eq!(z.remove(&m), model.remove(&m)),
                8 => {
                    // Pop the minimum or maximum.
                    let len = z.len();
                    if len > 0 {
                        let r = if rng.below(2) == 0 { 0 } else { len - 1 };
                        let mut got = None;
                        z.remove_ranks(r, r, |m, s| got = Some((m.to_vec(), s)));
                        let (gm, gs) = got.unwrap();
                        assert_eq!(model.remove(&gm), Some(gs));
                    }
                }
                _ => assert_eq!(z.score(&m), model.get(&m).copied()),
            }
            if step % 37 == 0 {
                check(&z, &model, &mut rng);
            }
        }
        check(&z, &model, &mut rng);
    }

    #[test]
    fn zset_matches_model_small_and_large() {
        for seed in 1..6 {
            run_model(seed, 2000, 60); // stays or goes around the listpack limit
            run_model(seed + 100, 6000, 700); // skiplist
        }
    }

    /// The tree form under heavy use: many equal scores, score moves both
    /// small (in place) and large, range removals and pops at both ends,
    /// checked against the model and the tree's own invariants.
    fn run_tree_model(seed: u64, ops: usize, members: u64, scores: u64) {
        let mut rng = Prng::new(seed);
        let mut z = ZSet::with_hint(1000, 10);
        let mut model = std::collections::HashMap::new();
        let mut max_len = 0;
        for step in 0..ops {
            let m = format!("m{:05}", rng.below(members)).into_bytes();
            // Per mille: removals are rare enough for the set to hover around half of `members`.
            match rng.below(1000) {
                0..=449 => {
                    let s = rng.below(scores) as f64;
                    assert_eq!(z.insert(&m, s), model.insert(m, s).is_none());
                }
                450..=599 => {
                    // ZINCRBY-like nudge: often keeps the order (in place).
                    if let Some(&old) = model.get(&m) {
                        let s = old + (rng.below(5) as f64 - 2.0) / 8.0;
                        assert!(!z.insert(&m, s));
                        model.insert(m, s);
                    }
                }
                600..=699 => assert_eq!(z.remove(&m), model.remove(&m)),
                700..=703 => {
                    // ZPOPMIN/ZPOPMAX with a count.
                    let len = z.len();
                    let k = rng.below(50) as usize + 1;
                    let want = model_sorted(&model);
                    let (start, end) = if rng.below(2) == 0 { (0, k - 1) } else { (len.saturating_sub(k), len) };
                    let mut got = Vec::new();
                    let n = z.remove_ranks(start, end, |m, s| got.push((m.to_vec(), s)));
                    let exp: Vec<_> = want.iter().skip(start).take(n).cloned().collect();
                    assert_eq!(got, exp);
                    assert_eq!(n, len.min(end + 1).saturating_sub(start));
                    for (m, _) in &got {
                        model.remove(m);
                    }
                }
                704 => {
                    // ZREMRANGEBYRANK over an arbitrary span.
                    let len = z.len().max(1);
                    let a = rng.below(len as u64) as usize;
                    let b = a + rng.below(200) as usize;
                    let want = model_sorted(&model);
                    let mut got = Vec::new();
                    z.remove_ranks(a, b, |m, s| got.push((m.to_vec(), s)));
                    let exp: Vec<_> = want.iter().skip(a).take(b + 1 - a).cloned().collect();
                    assert_eq!(got, exp);
                    for (m, _) in &got {
                        model.remove(m);
                    }
                }
                705..=729 => {
                    let want = model_sorted(&model);
                    if !want.is_empty() {
                        let r = rng.below(want.len() as u64) as usize;
                        let k = rng.below(200) as usize;
                        let mut got = Vec::new();
                        z.walk(r, false, |m, s| {
                            got.push((m.to_vec(), s));
                            got.len() < k
                        });
                        let exp: Vec<_> = want.iter().skip(r).take(k.max(1)).cloned().collect();
                        assert_eq!(got, exp);
                    }
                }
                730..=779 => {
                    let probe = format!("m{:05}", rng.below(members)).into_bytes();
                    let want = model_sorted(&model);
                    let r = want.iter().position(|(m, _)| *m == probe);
                    assert_eq!(z.rank(&probe), r.map(|i| (i, want[i].1)));
                }
                _ => assert_eq!(z.score(&m), model.get(&m).copied()),
            }
            if step % 997 == 0 {
                max_len = max_len.max(z.len());
                check(&z, &model, &mut rng);
                let it: Vec<_> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
                assert_eq!(it, model_sorted(&model));
                assert_eq!(contents(&z.deep_clone()), it);
            }
        }
        check(&z, &model, &mut rng);
        // The set really was large (several tree levels), not emptied by the pops.
        assert!(max_len > members as usize / 3, "{max_len}");
    }

    #[test]
    fn zset_tree_matches_model() {
        for seed in 1..4 {
            run_tree_model(seed, 40_000, 5000, 4); // mostly equal scores
            run_tree_model(seed + 10, 40_000, 3000, 1000);
            run_tree_model(seed + 20, 20_000, 200, 3); // small sets: root leaf, splits and merges
        }
    }

    #[test]
    fn zset_tree_pops_leave_no_sparse_leaves() {
        let mut z = ZSet::new();
        for i in 0..20_000 {
            z.insert(format!("m{i}").as_bytes(), (i % 7) as f64);
        }
        let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
        t.check();
        // Ascending-ish inserts: leaves are mostly full.
        assert!(t.leaf_count() < 20_000 / 32 + 2, "{}", t.leaf_count());
        // Pop from both ends one at a time, and in the middle, down to 300.
        let mut k = 0;
        while z.len() > 300 {
            let len = z.len();
            let r = match k % 3 {
                0 => 0,
                1 => len - 1,
                _ => len / 2,
            };
            assert_eq!(z.remove_ranks(r, r, |_, _| ()), 1);
            k += 1;
        }
        let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
        t.check();
        // Under-quarter-full leaves are merged: at most 300 / 16 leaves plus the edges.
        assert!(t.leaf_count() <= 300 / 16 + 2, "{}", t.leaf_count());
        while !z.is_empty() {
            z.remove_ranks(0, 0, |_, _| ());
        }
        let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
        t.check();
        assert_eq!(t.leaf_count(), 1);
        assert_eq!(z.encoding(), "skiplist");
        // Still usable after emptying.
        z.insert(b"a", 1.0);
        assert_eq!(z.rank(b"a"), Some((0, 1.0)));
    }

    #[test]
    fn zset_tree_three_levels_fill_and_drain() {
        let mut rng = Prng::new(3);
        let mut z = ZSet::new();
        let mut model = std::collections::HashMap::new();
        for _ in 0..200_000 {
            let m = format!("{:x}", rng.next_u64() % 1_000_000).into_bytes();
            let s = rng.below(100) as f64;
            z.insert(&m, s);
            model.insert(m, s);
        }
        let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
        assert!(t.height() >= 3, "{}", t.height());
        t.check();
        assert_eq!(contents(&z), model_sorted(&model));
        // Drain: random removals, then range removals from the middle and pops.
        let mut keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        keys.sort();
        for (i, m) in keys.iter().enumerate() {
            if i % 3 != 0 {
                assert_eq!(z.remove(m), model.remove(m));
            }
        }
        let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
        t.check();
        while !z.is_empty() {
            let len = z.len();
            let want = model_sorted(&model);
            let a = if len > 5000 { len / 3 } else { 0 };
            let b = a + 1000 + rng.below(3000) as usize;
            let mut got = Vec::new();
            z.remove_ranks(a, b, |m, s| got.push((m.to_vec(), s)));
            assert_eq!(got[..], want[a..want.len().min(b + 1)]);
            for (m, _) in &got {
                model.remove(m);
            }
            let Repr::Tree(t) = &z.repr else { panic!("expected the tree form") };
            t.check();
        }
    }

    #[test]
    fn zset_tree_lex_on_equal_scores() {
        let mut z = ZSet::with_hint(1000, 10);
        for i in 0..3000 {
            z.insert(format!("{:05}", i * 3).as_bytes(), 0.0);
        }
        let b = |i: usize| format!("{i:05}").into_bytes();
        let mut rng = Prng::new(7);
        for _ in 0..2000 {
            let (x, y) = (rng.below(9100) as usize, rng.below(9100) as usize);
            let bound = |v: usize, kind: u64| match kind {
                0 => LexBound::Incl(b(v)),
                1 => LexBound::Excl(b(v)),
                2 => LexBound::NegInf,
                _ => LexBound::PosInf,
            };
            let r = LexRange { min: bound(x, rng.below(5).min(2)), max: bound(y, [0, 1, 3][rng.below(3) as usize]) };
            let inr: Vec<usize> = (0..3000).filter(|&i| r.gte_min(&b(i * 3)) && r.lte_max(&b(i * 3))).collect();
            assert_eq!(z.lex_first(&r), inr.first().copied(), "{r:?}");
            assert_eq!(z.lex_last(&r), inr.last().copied(), "{r:?}");
            assert_eq!(z.lex_count(&r), inr.len(), "{r:?}");
        }
    }

    #[test]
    fn zset_tree_scan_across_shrinks_and_growth() {
        let mut rng = Prng::new(11);
        for round in 0..6 {
            let mut z = ZSet::new();
            for i in 0..4000 {
                z.insert(format!("k{i}").as_bytes(), (i % 3) as f64);
            }
            // Members 0..1000 stay for the whole scan; the rest come and go.
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            let mut steps = 0;
            loop {
                cursor = z.scan(cursor, 1 + rng.below(20) as usize, |m, _| {
                    seen.insert(m.to_vec());
                });
                steps += 1;
                match (steps + round) % 7 {
                    // Shrink hard (the table halves several times)...
                    2 => {
                        for i in 1000..7000 {
                            z.remove(format!("k{i}").as_bytes());
                        }
                    }
                    // ...and grow again.
                    5 => {
                        for i in 1000..7000 {
                            z.insert(format!("k{i}").as_bytes(), 1.0);
                        }
                    }
                    _ => {}
                }
                if cursor == 0 {
                    break;
                }
            }
            assert!((0..1000).all(|i| seen.contains(format!("k{i}").as_bytes())), "round {round}");
            if let Repr::Tree(t) = &z.repr {
                t.check();
            }
        }
    }

    #[test]
    fn zset_converts_at_thresholds() {
        let mut z = ZSet::new();
        let max = ZSET_MAX_LISTPACK_ENTRIES.get() as usize;
        for i in 0..max {
            z.insert(format!("{i}").as_bytes(), i as f64);
        }
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"one more", 0.0);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.len(), max + 1);
        let mut z = ZSet::new();
        z.insert(&vec![b'x'; ZSET_MAX_LISTPACK_VALUE.get() as usize], 1.0);
        assert_eq!(z.encoding(), "listpack");
        z.insert(&vec![b'y'; ZSET_MAX_LISTPACK_VALUE.get() as usize + 1], 1.0);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(ZSet::with_hint(10, 10).encoding(), "listpack");
        assert_eq!(ZSet::with_hint(1000, 10).encoding(), "skiplist");
    }

    #[test]
    fn zset_lex_ranges() {
        for n in [10usize, 300] {
            let mut z = ZSet::new();
            for i in 0..n {
                z.insert(format!("{:04}", i * 2).as_bytes(), 0.0);
            }
            let b = |s: &str| s.as_bytes().to_vec();
            let r = LexRange { min: LexBound::Incl(b("0003")), max: LexBound::Excl(b("0010")) };
            assert_eq!(z.lex_first(&r), Some(2));
            assert_eq!(z.lex_last(&r), Some(4));
            let r = LexRange { min: LexBound::NegInf, max: LexBound::PosInf };
            assert_eq!((z.lex_first(&r), z.lex_last(&r)), (Some(0), Some(n - 1)));
            let r = LexRange { min: LexBound::Excl(b("0004")), max: LexBound::Incl(b("0004")) };
            assert!(r.is_empty());
            assert_eq!(z.lex_first(&r), None);
            let r = LexRange { min: LexBound::NegInf, max: LexBound::NegInf };
            assert!(r.is_empty());
        }
    }

    #[test]
    fn zset_scan_visits_everything_across_resizes() {
        let mut z = ZSet::new();
        for i in 0..1000 {
            z.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = z.scan(cursor, 10, |m, _| {
                seen.insert(m.to_vec());
            });
            step += 1;
            // Grow the table mid-scan: the original members must still all be seen.
            if step == 5 {
                for i in 1000..3000 {
                    z.insert(format!("m{i}").as_bytes(), i as f64);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        assert!((0..1000).all(|i| seen.contains(format!("m{i}").as_bytes())));
    }
}

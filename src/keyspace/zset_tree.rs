//! The big form of a sorted set: an order-statistic B+tree over (score,
//! member), plus a member hash table.
//!
//! Members live in an arena of `Item`s (member bytes, score, hash chain)
//! addressed by u32 ids. The tree's leaves hold sorted (score, id) pairs in
//! contiguous arrays and are linked both ways for range walks; inner nodes
//! hold, per child, its subtree size (rank in O(log n)) and its smallest key
//! as (score, id). Comparisons read the scores from the node arrays and
//! fetch member bytes only on equal scores, so a descent touches a few cache
//! lines per level instead of one node per skiplist step.
//!
//! A separator is always the exact minimum of its child (kept up to date on
//! insert and delete), so it names a live item and never a freed id.
//!
//! Deletion merges a node that falls under a quarter full with a neighbour
//! (or evens the two out), so pops from either end do not leave chains of
//! near-empty leaves. Inserting past the end of the rightmost node starts a
//! new node instead of splitting in half: ascending inserts fill nodes.
//!
//! The member table is ours rather than std's so ZSCAN can use Redis's
//! reverse-binary cursor, which survives resizes between calls.

use std::ops::Range;

/// Entries per leaf and children per inner node.
const LCAP: usize = 64;
const FAN: usize = 64;
/// Under this a non-root node is merged with or evened out with a neighbour.
const LMIN: usize = LCAP / 4;
const FMIN: usize = FAN / 4;
const NIL: u32 = u32::MAX;
const MIN_BUCKETS: usize = 4;

static HASHER: ahash::RandomState = ahash::RandomState::with_seeds(
    0x5851_f42d_4c95_7f2d,
    0x1405_7b7e_f767_814f,
    0x9e37_79b9_7f4a_7c15,
    0x2545_f491_4f6c_dd1d,
);

#[derive(Clone)]
struct Item {
    member: Box<[u8]>,
    score: f64,
    /// Next item in the same hash bucket.
    chain: u32,
}

#[derive(Clone)]
struct Leaf {
    n: u32,
    prev: u32,
    next: u32,
    scores: [f64; LCAP],
    ids: [u32; LCAP],
}

#[derive(Clone)]
struct Inner {
    n: u32,
    /// Entries in each child's subtree.
    counts: [u32; FAN],
    child: [u32; FAN],
    /// Each child's smallest key.
    scores: [f64; FAN],
    ids: [u32; FAN],
}

impl Leaf {
    fn new() -> Leaf {
        Leaf { n: 0, prev: NIL, next: NIL, scores: [0.0; LCAP], ids: [NIL; LCAP] }
    }
}

impl Inner {
    fn new() -> Inner {
        Inner { n: 0, counts: [0; FAN], child: [NIL; FAN], scores: [0.0; FAN], ids: [NIL; FAN] }
    }
}

/// The entry arrays of a node, so split/merge/shift are written once.
trait Entries {
    fn n(&self) -> usize;
    fn set_n(&mut self, n: usize);
    /// `copy_within` on every array.
    fn shift(&mut self, src: Range<usize>, dst: usize);
    /// Copy entries `src` of `from` to `dst..` of self.
    fn copy_from(&mut self, from: &Self, src: Range<usize>, dst: usize);
}

impl Entries for Leaf {
    fn n(&self) -> usize {
        self.n as usize
    }
    fn set_n(&mut self, n: usize) {
        self.n = n as u32;
    }
    fn shift(&mut self, src: Range<usize>, dst: usize) {
        self.scores.copy_within(src.clone(), dst);
        self.ids.copy_within(src, dst);
    }
    fn copy_from(&mut self, from: &Self, src: Range<usize>, dst: usize) {
        let k = src.len();
        self.scores[dst..dst + k].copy_from_slice(&from.scores[src.clone()]);
        self.ids[dst..dst + k].copy_from_slice(&from.ids[src]);
    }
}

impl Entries for Inner {
    fn n(&self) -> usize {
        self.n as usize
    }
    fn set_n(&mut self, n: usize) {
        self.n = n as u32;
    }
    fn shift(&mut self, src: Range<usize>, dst: usize) {
        self.counts.copy_within(src.clone(), dst);
        self.child.copy_within(src.clone(), dst);
        self.scores.copy_within(src.clone(), dst);
        self.ids.copy_within(src, dst);
    }
    fn copy_from(&mut self, from: &Self, src: Range<usize>, dst: usize) {
        let k = src.len();
        self.counts[dst..dst + k].copy_from_slice(&from.counts[src.clone()]);
        self.child[dst..dst + k].copy_from_slice(&from.child[src.clone()]);
        self.scores[dst..dst + k].copy_from_slice(&from.scores[src.clone()]);
        self.ids[dst..dst + k].copy_from_slice(&from.ids[src]);
    }
}

/// Open a one-entry gap at `at`.
fn open_gap<T: Entries>(x: &mut T, at: usize) {
    let n = x.n();
    x.shift(at..n, at + 1);
    x.set_n(n + 1);
}

/// Remove entries `at..at + k`.
fn close<T: Entries>(x: &mut T, at: usize, k: usize) {
    let n = x.n();
    x.shift(at + k..n, at);
    x.set_n(n - k);
}

/// Move a's entries from `from` on into the empty node b.
fn split_off<T: Entries>(a: &mut T, b: &mut T, from: usize) {
    let n = a.n();
    b.copy_from(a, from..n, 0);
    b.set_n(n - from);
    a.set_n(from);
}

/// Append all of b (a's right neighbour) to a.
fn append<T: Entries>(a: &mut T, b: &mut T) {
    let (an, bn) = (a.n(), b.n());
    a.copy_from(b, 0..bn, an);
    a.set_n(an + bn);
    b.set_n(0);
}

/// Even out a and its right neighbour b.
fn balance<T: Entries>(a: &mut T, b: &mut T) {
    let (an, bn) = (a.n(), b.n());
    let want = (an + bn) / 2;
    if an > want {
        let k = an - want;
        b.shift(0..bn, k);
        b.copy_from(a, want..an, 0);
        b.set_n(bn + k);
        a.set_n(want);
    } else if an < want {
        let k = want - an;
        a.copy_from(b, 0..k, an);
        a.set_n(want);
        b.shift(k..bn, 0);
        b.set_n(bn - k);
    }
}

/// The child of `n` holding 0-based rank `r` of its subtree, and the rank
/// within that child (the last child takes any overflow).
fn child_at_rank(n: &Inner, mut r: usize) -> (usize, usize) {
    let mut i = 0;
    while i + 1 < n.n() && r >= n.counts[i] as usize {
        r -= n.counts[i] as usize;
        i += 1;
    }
    (i, r)
}

/// Merge b (a's right neighbour) into a if both fit in `cap`, else even
/// them out; whether they merged.
fn merge_or_balance<T: Entries>(a: &mut T, b: &mut T, cap: usize) -> bool {
    if a.n() + b.n() <= cap {
        append(a, b);
        true
    } else {
        balance(a, b);
        false
    }
}

/// Two distinct elements of one slice, mutably.
fn pair<T>(v: &mut [T], a: u32, b: u32) -> (&mut T, &mut T) {
    let (a, b) = (a as usize, b as usize);
    debug_assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

/// First index in `0..n` where `pred` is false (`pred` holds for a prefix).
#[inline]
fn first_false(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Is key (s, id) strictly before (ts, tid) in (score, member) order?
/// Member bytes are read only on equal scores.
#[inline]
fn key_lt(items: &[Item], s: f64, id: u32, ts: f64, tid: u32) -> bool {
    s < ts || (s == ts && id != tid && items[id as usize].member < items[tid as usize].member)
}

/// Is key (s, id) before or at (ts, tid)? Ids are unique, so equal keys are the same item.
#[inline]
fn key_le(items: &[Item], s: f64, id: u32, ts: f64, tid: u32) -> bool {
    id == tid || key_lt(items, s, id, ts, tid)
}

/// Where a removal starts: a 0-based rank in the subtree, or a present key.
#[derive(Clone, Copy)]
enum Target {
    Rank(usize),
    Key(f64, u32),
}

/// Ids taken out of one leaf by a removal.
struct Taken {
    ids: [u32; LCAP],
    n: usize,
}

impl Taken {
    fn new() -> Taken {
        Taken { ids: [NIL; LCAP], n: 0 }
    }
}

#[derive(Clone)]
pub(super) struct Tree {
    items: Vec<Item>,
    free_items: Vec<u32>,
    buckets: Vec<u32>,
    len: usize,
    /// Bytes of all members, kept current so `mem_usage` is O(1).
    member_bytes: usize,
    leaves: Vec<Leaf>,
    free_leaves: Vec<u32>,
    inners: Vec<Inner>,
    free_inners: Vec<u32>,
    root: u32,
    /// 0: the root is a leaf.
    height: u32,
}

impl Tree {
    pub(super) fn new() -> Tree {
        Tree {
            items: Vec::new(),
            free_items: Vec::new(),
            buckets: vec![NIL; MIN_BUCKETS],
            len: 0,
            member_bytes: 0,
            leaves: vec![Leaf::new()],
            free_leaves: Vec::new(),
            inners: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn mem_usage(&self) -> usize {
        self.member_bytes
            + self.items.capacity() * std::mem::size_of::<Item>()
            + self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
            + (self.buckets.capacity()
                + self.free_items.capacity()
                + self.free_leaves.capacity()
                + self.free_inners.capacity())
                * 4
    }

    // ---- arena --------------------------------------------------------

    fn alloc_item(&mut self, member: Box<[u8]>, score: f64) -> u32 {
        self.member_bytes += member.len();
        slab_alloc(&mut self.items, &mut self.free_items, Item { member, score, chain: NIL })
    }

    fn alloc_leaf(&mut self) -> u32 {
        slab_alloc(&mut self.leaves, &mut self.free_leaves, Leaf::new())
    }

    fn alloc_inner(&mut self) -> u32 {
        slab_alloc(&mut self.inners, &mut self.free_inners, Inner::new())
    }

    /// Unlink a leaf from its neighbours and free it.
    fn free_leaf(&mut self, x: u32) {
        let (prev, next) = (self.leaves[x as usize].prev, self.leaves[x as usize].next);
        if prev != NIL {
            self.leaves[prev as usize].next = next;
        }
        if next != NIL {
            self.leaves[next as usize].prev = prev;
        }
        self.leaves[x as usize].n = 0;
        self.free_leaves.push(x);
    }

    fn free_inner(&mut self, x: u32) {
        self.inners[x as usize].n = 0;
        self.free_inners.push(x);
    }

    /// Free a node at height `h`.
    fn free_node(&mut self, x: u32, h: u32) {
        if h == 0 {
            self.free_leaf(x);
        } else {
            self.free_inner(x);
        }
    }

    // ---- node helpers ---------------------------------------------------

    /// Entries of a node at height `h` (children for an inner node).
    fn entries(&self, x: u32, h: u32) -> usize {
        if h == 0 {
            self.leaves[x as usize].n()
        } else {
            self.inners[x as usize].n()
        }
    }

    /// Members under a node at height `h`.
    fn size(&self, x: u32, h: u32) -> usize {
        if h == 0 {
            self.leaves[x as usize].n()
        } else {
            let n = &self.inners[x as usize];
            n.counts[..n.n()].iter().map(|&c| c as usize).sum()
        }
    }

    /// Smallest key under a non-empty node at height `h`.
    fn min_key(&self, x: u32, h: u32) -> (f64, u32) {
        if h == 0 {
            let l = &self.leaves[x as usize];
            (l.scores[0], l.ids[0])
        } else {
            let n = &self.inners[x as usize];
            (n.scores[0], n.ids[0])
        }
    }

    /// Set entry `i` of inner node `p` from its child's current size and minimum.
    fn refresh(&mut self, p: u32, i: usize, h: u32) {
        let c = self.inners[p as usize].child[i];
        let size = self.size(c, h - 1) as u32;
        let key = (self.entries(c, h - 1) > 0).then(|| self.min_key(c, h - 1));
        let x = &mut self.inners[p as usize];
        x.counts[i] = size;
        if let Some((s, id)) = key {
            x.scores[i] = s;
            x.ids[i] = id;
        }
    }

    // ---- lookups ------------------------------------------------------

    /// (leaf, index) of a 0-based rank.
    fn pos_at(&self, rank: usize) -> Option<(u32, usize)> {
        if rank >= self.len {
            return None;
        }
        let (mut x, mut h, mut r) = (self.root, self.height, rank);
        while h > 0 {
            let n = &self.inners[x as usize];
            let (i, sub) = child_at_rank(n, r);
            (x, r) = (n.child[i], sub);
            h -= 1;
        }
        (r < self.leaves[x as usize].n()).then_some((x, r))
    }

    /// How many leading entries satisfy `pred(score, id)`, which must hold
    /// for a prefix of the order (otherwise some rank in 0..=len).
    fn count_while(&self, pred: impl Fn(f64, u32) -> bool) -> usize {
        let (mut x, mut h, mut rank) = (self.root, self.height, 0usize);
        while h > 0 {
            let n = &self.inners[x as usize];
            let i = first_false(n.n(), |j| pred(n.scores[j], n.ids[j]));
            if i == 0 {
                return rank;
            }
            rank += n.counts[..i - 1].iter().map(|&c| c as usize).sum::<usize>();
            x = n.child[i - 1];
            h -= 1;
        }
        let l = &self.leaves[x as usize];
        rank + first_false(l.n(), |j| pred(l.scores[j], l.ids[j]))
    }

    /// Leading entries whose score satisfies `pred`.
    pub(super) fn count_score_while(&self, pred: impl Fn(f64) -> bool) -> usize {
        self.count_while(|s, _| pred(s))
    }

    /// Leading entries whose member satisfies `pred`.
    pub(super) fn count_member_while(&self, pred: impl Fn(&[u8]) -> bool) -> usize {
        self.count_while(|_, id| pred(&self.items[id as usize].member))
    }

    #[inline]
    fn bucket_of(&self, member: &[u8]) -> usize {
        HASHER.hash_one(member) as usize & (self.buckets.len() - 1)
    }

    /// Id of `member`, if present.
    pub(super) fn find(&self, member: &[u8]) -> Option<u32> {
        let mut x = self.buckets[self.bucket_of(member)];
        while x != NIL {
            let it = &self.items[x as usize];
            if &*it.member == member {
                return Some(x);
            }
            x = it.chain;
        }
        None
    }

    pub(super) fn score_of(&self, id: u32) -> f64 {
        self.items[id as usize].score
    }

    /// 0-based rank of a present item.
    pub(super) fn rank_of(&self, id: u32) -> usize {
        let ts = self.items[id as usize].score;
        self.count_while(|s, k| key_le(&self.items, s, k, ts, id)).saturating_sub(1)
    }

    pub(super) fn at_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        let (x, i) = self.pos_at(rank)?;
        let l = &self.leaves[x as usize];
        Some((&self.items[l.ids[i] as usize].member, l.scores[i]))
    }

    /// Visit members from 0-based `rank` towards the tail (or the head if
    /// `rev`) while `f` returns true.
    pub(super) fn walk(&self, rank: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        let Some((mut x, mut i)) = self.pos_at(rank) else { return };
        loop {
            let l = &self.leaves[x as usize];
            if !f(&self.items[l.ids[i] as usize].member, l.scores[i]) {
                return;
            }
            if rev {
                if i > 0 {
                    i -= 1;
                } else {
                    x = l.prev;
                    if x == NIL {
                        return;
                    }
                    i = self.leaves[x as usize].n() - 1;
                }
            } else {
                i += 1;
                if i == l.n() {
                    x = l.next;
                    i = 0;
                    if x == NIL {
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn iter(&self) -> TreeIter<'_> {
        let (leaf, at) = self.pos_at(0).unwrap_or((NIL, 0));
        TreeIter { t: self, leaf, at }
    }

    // ---- insertion ------------------------------------------------------

    /// Add a member that is not present.
    pub(super) fn insert(&mut self, member: &[u8], score: f64) {
        let id = self.alloc_item(member.into(), score);
        self.tree_insert(score, id);
        self.len += 1;
        let b = self.bucket_of(member);
        self.items[id as usize].chain = self.buckets[b];
        self.buckets[b] = id;
        if self.len > self.buckets.len() {
            self.rehash(self.len.next_power_of_two());
        }
    }

    /// Move a present item to `score`: in place when its neighbours in the
    /// leaf still bracket it, else out of the tree and back in.
    pub(super) fn set_score(&mut self, id: u32, score: f64) {
        let old = self.items[id as usize].score;
        if let Some((x, i)) = self.locate(old, id) {
            let l = &self.leaves[x as usize];
            let items = &self.items;
            // Not the leaf's first entry: that one is also its ancestors' separator.
            if i > 0
                && i + 1 < l.n()
                && key_lt(items, l.scores[i - 1], l.ids[i - 1], score, id)
                && key_lt(items, score, id, l.scores[i + 1], l.ids[i + 1])
            {
                self.leaves[x as usize].scores[i] = score;
                self.items[id as usize].score = score;
                return;
            }
        }
        let mut t = Taken::new();
        self.remove_from_tree(Target::Key(old, id), 1, &mut t);
        self.items[id as usize].score = score;
        self.tree_insert(score, id);
    }

    /// (leaf, index) of a present key.
    fn locate(&self, s: f64, id: u32) -> Option<(u32, usize)> {
        let (mut x, mut h) = (self.root, self.height);
        while h > 0 {
            let n = &self.inners[x as usize];
            let i = first_false(n.n(), |j| key_le(&self.items, n.scores[j], n.ids[j], s, id));
            x = n.child[i.saturating_sub(1)];
            h -= 1;
        }
        let l = &self.leaves[x as usize];
        let i = first_false(l.n(), |j| key_lt(&self.items, l.scores[j], l.ids[j], s, id));
        (i < l.n() && l.ids[i] == id).then_some((x, i))
    }

    fn tree_insert(&mut self, s: f64, id: u32) {
        let Some(right) = self.ins(self.root, self.height, true, s, id) else { return };
        let (left, h) = (self.root, self.height);
        let root = self.alloc_inner();
        self.inners[root as usize].n = 2;
        self.inners[root as usize].child[0] = left;
        self.inners[root as usize].child[1] = right;
        self.height += 1;
        self.refresh(root, 0, h + 1);
        self.refresh(root, 1, h + 1);
        self.root = root;
    }

    /// Insert under node `x` at height `h`; returns a new right sibling if `x` split.
    /// `rightmost`: `x` is the last node of its level.
    fn ins(&mut self, x: u32, h: u32, rightmost: bool, s: f64, id: u32) -> Option<u32> {
        if h == 0 {
            return self.leaf_ins(x, rightmost, s, id);
        }
        let n = &self.inners[x as usize];
        let nn = n.n();
        let i = first_false(nn, |j| key_le(&self.items, n.scores[j], n.ids[j], s, id)).saturating_sub(1);
        let child = n.child[i];
        let Some(right) = self.ins(child, h - 1, rightmost && i + 1 == nn, s, id) else {
            // The common case: one more member below, maybe a new minimum.
            let (ms, mid) = self.min_key(child, h - 1);
            let n = &mut self.inners[x as usize];
            n.counts[i] += 1;
            n.scores[i] = ms;
            n.ids[i] = mid;
            return None;
        };
        self.refresh(x, i, h);
        let at = i + 1;
        let (dst, split) = if nn < FAN {
            ((x, at), None)
        } else {
            let new = self.alloc_inner();
            let keep = if rightmost && at == FAN { FAN } else { FAN / 2 };
            let (a, b) = pair(&mut self.inners, x, new);
            split_off(a, b, keep);
            (if at <= keep && keep < FAN { (x, at) } else { (new, at - keep) }, Some(new))
        };
        open_gap(&mut self.inners[dst.0 as usize], dst.1);
        self.inners[dst.0 as usize].child[dst.1] = right;
        self.refresh(dst.0, dst.1, h);
        split
    }

    fn leaf_ins(&mut self, x: u32, rightmost: bool, s: f64, id: u32) -> Option<u32> {
        let l = &self.leaves[x as usize];
        let n = l.n();
        let at = first_false(n, |j| key_lt(&self.items, l.scores[j], l.ids[j], s, id));
        let (dst, split) = if n < LCAP {
            ((x, at), None)
        } else {
            let new = self.alloc_leaf();
            let keep = if rightmost && at == LCAP { LCAP } else { LCAP / 2 };
            let (a, b) = pair(&mut self.leaves, x, new);
            split_off(a, b, keep);
            b.prev = x;
            b.next = a.next;
            a.next = new;
            let after = b.next;
            if after != NIL {
                self.leaves[after as usize].prev = new;
            }
            (if at <= keep && keep < LCAP { (x, at) } else { (new, at - keep) }, Some(new))
        };
        let l = &mut self.leaves[dst.0 as usize];
        open_gap(l, dst.1);
        l.scores[dst.1] = s;
        l.ids[dst.1] = id;
        split
    }

    // ---- removal ------------------------------------------------------

    /// Remove a present item; returns its member and score.
    pub(super) fn remove(&mut self, id: u32) -> (Box<[u8]>, f64) {
        let mut t = Taken::new();
        self.remove_from_tree(Target::Key(self.items[id as usize].score, id), 1, &mut t);
        let out = self.drop_item(id);
        self.maybe_shrink();
        out
    }

    /// Remove `n` members from 0-based rank `start` on (the caller clamps),
    /// handing each to `f` in rank order. One descent per leaf touched.
    pub(super) fn remove_ranks(&mut self, start: usize, n: usize, mut f: impl FnMut(&[u8], f64)) {
        let mut left = n;
        while left > 0 {
            let mut t = Taken::new();
            let k = self.remove_from_tree(Target::Rank(start), left, &mut t);
            if k == 0 {
                // Past the end: the caller clamped, so this is only a guard.
                break;
            }
            for &id in &t.ids[..t.n] {
                let (m, s) = self.drop_item(id);
                f(&m, s);
            }
            left -= k;
        }
        self.maybe_shrink();
    }

    /// Out of the hash table and the arena; the tree no longer holds it.
    fn drop_item(&mut self, id: u32) -> (Box<[u8]>, f64) {
        let member = std::mem::take(&mut self.items[id as usize].member);
        let (score, chain) = (self.items[id as usize].score, self.items[id as usize].chain);
        let b = self.bucket_of(&member);
        if self.buckets[b] == id {
            self.buckets[b] = chain;
        } else {
            let mut y = self.buckets[b];
            while y != NIL {
                if self.items[y as usize].chain == id {
                    self.items[y as usize].chain = chain;
                    break;
                }
                y = self.items[y as usize].chain;
            }
        }
        self.items[id as usize].chain = NIL;
        self.free_items.push(id);
        self.len -= 1;
        self.member_bytes -= member.len();
        (member, score)
    }

    /// Shrink the member table once it is under 1/8 full. Not inside
    /// `drop_item`: the rehash walks the tree, and ids taken from it but not
    /// yet dropped must still be in their chains when they are unlinked.
    fn maybe_shrink(&mut self) {
        if self.buckets.len() > MIN_BUCKETS && self.len * 8 < self.buckets.len() {
            self.rehash(self.len.max(MIN_BUCKETS).next_power_of_two());
        }
    }

    /// Remove up to `max` consecutive entries of one leaf starting at
    /// `target`; their ids go to `out`. Returns how many.
    fn remove_from_tree(&mut self, target: Target, max: usize, out: &mut Taken) -> usize {
        let k = self.rem(self.root, self.height, target, max, out);
        // A root with one child (or none) hands over to it.
        while self.height > 0 {
            let r = self.root;
            match self.inners[r as usize].n {
                0 => {
                    self.free_inner(r);
                    self.root = self.alloc_leaf();
                    self.height = 0;
                }
                1 => {
                    self.root = self.inners[r as usize].child[0];
                    self.free_inner(r);
                    self.height -= 1;
                }
                _ => break,
            }
        }
        k
    }

    fn rem(&mut self, x: u32, h: u32, target: Target, max: usize, out: &mut Taken) -> usize {
        if h == 0 {
            let items = &self.items;
            let l = &mut self.leaves[x as usize];
            let n = l.n();
            let at = match target {
                Target::Rank(r) => r,
                Target::Key(s, id) => first_false(n, |j| key_lt(items, l.scores[j], l.ids[j], s, id)),
            };
            if at >= n {
                return 0;
            }
            debug_assert!(matches!(target, Target::Rank(_)) || matches!(target, Target::Key(_, id) if l.ids[at] == id));
            let k = max.min(n - at);
            out.ids[..k].copy_from_slice(&l.ids[at..at + k]);
            out.n = k;
            close(l, at, k);
            return k;
        }
        let n = &self.inners[x as usize];
        let (i, sub) = match target {
            Target::Rank(r) => {
                let (i, sub) = child_at_rank(n, r);
                (i, Target::Rank(sub))
            }
            Target::Key(s, id) => {
                (first_false(n.n(), |j| key_le(&self.items, n.scores[j], n.ids[j], s, id)).saturating_sub(1), target)
            }
        };
        let child = n.child[i];
        let k = self.rem(child, h - 1, sub, max, out);
        if k > 0 {
            let key = (self.entries(child, h - 1) > 0).then(|| self.min_key(child, h - 1));
            let n = &mut self.inners[x as usize];
            n.counts[i] -= k as u32;
            if let Some((s, id)) = key {
                n.scores[i] = s;
                n.ids[i] = id;
            }
            self.fix_child(x, h, i);
        }
        k
    }

    /// After a removal under child `i` of `p` (height `h`): merge the child
    /// with a neighbour, or even the two out, if it fell under a quarter full.
    fn fix_child(&mut self, p: u32, h: u32, i: usize) {
        let ch = h - 1;
        let child = self.inners[p as usize].child[i];
        let cn = self.entries(child, ch);
        if cn >= if ch == 0 { LMIN } else { FMIN } {
            return;
        }
        let pn = self.inners[p as usize].n();
        if pn < 2 {
            // An only child (right edge after appends): drop it when empty;
            // p's own parent then merges p away.
            if cn == 0 {
                self.free_node(child, ch);
                self.inners[p as usize].n = 0;
            }
            return;
        }
        let li = if i + 1 < pn { i } else { i - 1 };
        let (a, b) = (self.inners[p as usize].child[li], self.inners[p as usize].child[li + 1]);
        let merged = if ch == 0 {
            let (x, y) = pair(&mut self.leaves, a, b);
            merge_or_balance(x, y, LCAP)
        } else {
            let (x, y) = pair(&mut self.inners, a, b);
            merge_or_balance(x, y, FAN)
        };
        if merged {
            self.free_node(b, ch);
            close(&mut self.inners[p as usize], li + 1, 1);
        } else {
            self.refresh(p, li + 1, h);
        }
        self.refresh(p, li, h);
    }

    // ---- member table -----------------------------------------------------

    fn rehash(&mut self, n: usize) {
        self.buckets = vec![NIL; n];
        let Some((mut x, _)) = self.pos_at(0) else { return };
        while x != NIL {
            let l = &self.leaves[x as usize];
            for &id in &l.ids[..l.n()] {
                let b = self.bucket_of(&self.items[id as usize].member);
                self.items[id as usize].chain = self.buckets[b];
                self.buckets[b] = id;
            }
            x = l.next;
        }
    }

    /// Visit one bucket and advance a reverse-binary cursor, as Redis's
    /// dictScan does: every member present for a whole scan is visited
    /// even if the table is resized in between.
    pub(super) fn scan_bucket(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut x = self.buckets[(cursor & mask) as usize];
        while x != NIL {
            let it = &self.items[x as usize];
            f(&it.member, it.score);
            x = it.chain;
        }
        super::dict::next_cursor(cursor, mask)
    }

    /// Structure check for tests: order, counts, separators, links, fill.
    #[cfg(test)]
    pub(super) fn check(&self) {
        fn walk(t: &Tree, x: u32, h: u32, rightmost: bool, is_root: bool, leaves: &mut Vec<u32>) -> usize {
            let n = t.entries(x, h);
            let min = if h == 0 { LMIN } else { FMIN };
            if !is_root {
                assert!(n > 0, "empty non-root node");
                assert!(rightmost || n >= min, "underfull node off the right edge: {n} at height {h}");
            }
            if h == 0 {
                leaves.push(x);
                return n;
            }
            let node = &t.inners[x as usize];
            let mut total = 0;
            for i in 0..n {
                let c = node.child[i];
                let size = walk(t, c, h - 1, rightmost && i + 1 == n, false, leaves);
                assert_eq!(node.counts[i] as usize, size);
                let (s, id) = t.min_key(c, h - 1);
                assert_eq!((node.scores[i].to_bits(), node.ids[i]), (s.to_bits(), id), "stale separator");
                total += size;
            }
            total
        }
        let mut leaves = Vec::new();
        assert_eq!(walk(self, self.root, self.height, true, true, &mut leaves), self.len);
        for (k, &x) in leaves.iter().enumerate() {
            let l = &self.leaves[x as usize];
            assert_eq!(l.prev, if k == 0 { NIL } else { leaves[k - 1] });
            assert_eq!(l.next, leaves.get(k + 1).copied().unwrap_or(NIL));
        }
        let mut prev: Option<(f64, u32)> = None;
        for &x in &leaves {
            let l = &self.leaves[x as usize];
            for j in 0..l.n() {
                let (s, id) = (l.scores[j], l.ids[j]);
                assert_eq!(self.items[id as usize].score.to_bits(), s.to_bits());
                assert_eq!(self.find(&self.items[id as usize].member), Some(id));
                if let Some((ps, pid)) = prev {
                    assert!(key_lt(&self.items, ps, pid, s, id), "out of order");
                }
                prev = Some((s, id));
            }
        }
        let live = self.items.len() - self.free_items.len();
        assert_eq!(live, self.len);
        assert_eq!(self.leaves.len() - self.free_leaves.len(), leaves.len().max(1));
    }

    #[cfg(test)]
    pub(super) fn height(&self) -> u32 {
        self.height
    }

    /// Leaves in use, for tests.
    #[cfg(test)]
    pub(super) fn leaf_count(&self) -> usize {
        self.leaves.len() - self.free_leaves.len()
    }
}

/// (member, score) pairs in rank order.
pub(super) struct TreeIter<'a> {
    t: &'a Tree,
    leaf: u32,
    at: usize,
}

impl<'a> Iterator for TreeIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.leaf == NIL {
            return None;
        }
        let l = &self.t.leaves[self.leaf as usize];
        let out = (&*self.t.items[l.ids[self.at] as usize].member, l.scores[self.at]);
        self.at += 1;
        if self.at == l.n() {
            self.leaf = l.next;
            self.at = 0;
        }
        Some(out)
    }
}

/// Put `v` in a freed slot of `slab` if there is one, else at its end; its index.
fn slab_alloc<T>(slab: &mut Vec<T>, free: &mut Vec<u32>, v: T) -> u32 {
    match free.pop() {
        Some(i) => {
            slab[i as usize] = v;
            i
        }
        None => {
            slab.push(v);
            (slab.len() - 1) as u32
        }
    }
}

//! A Redis stream: entries ordered by id, consumer groups with their
//! pending entries lists (PELs).
//!
//! Redis stores entries in listpack nodes of a radix tree, and that layout
//! is visible: approximate trimming (`MAXLEN ~`) only drops whole nodes, an
//! exact trim marks entries deleted inside a node, and XINFO reports the
//! node count. So entries live in nodes too (a `BTreeMap` keyed by each
//! node's first id), each node packing its entries into one buffer
//! (stream_node.rs), and a node opens when Redis's would: we keep its
//! listpack size in bytes as Redis would have it (`Node::bytes`), which
//! makes trimming results identical to redis-server's.

use super::effects::encode_array;
use super::stream_node::Pack;
use crate::util::num::parse_u64_strtoull;
use std::collections::{BTreeMap, BTreeSet};

pub use super::stream_node::EntryRef;

/// Redis's cap on a stream listpack, where `stream-node-max-bytes` is 0
/// or above it.
const LISTPACK_MAX_BYTES: usize = 1 << 30;

/// `stream-node-max-bytes` as Redis applies it.
fn node_max_bytes() -> usize {
    match super::limits::STREAM_NODE_MAX_BYTES.get() {
        b if b <= 0 || b as u64 > LISTPACK_MAX_BYTES as u64 => LISTPACK_MAX_BYTES,
        b => b as usize,
    }
}

/// `stream-node-max-entries`; 0 is no limit.
fn node_max_entries() -> u64 {
    match super::limits::STREAM_NODE_MAX_ENTRIES.get() {
        e if e <= 0 => u64::MAX,
        e => e as u64,
    }
}

/// The LIMIT of a `~` trim that names none: 100 nodes' worth of entries,
/// as Redis computes it (10000 when nodes have no entry limit, at most a
/// million).
pub fn default_trim_limit() -> u64 {
    match super::limits::STREAM_NODE_MAX_ENTRIES.get().saturating_mul(100) {
        l if l <= 0 => 10_000,
        l => (l as u64).min(1_000_000),
    }
}

/// Entry flags in Redis's listpack encoding (only their size matters here).
const FLAG_SAMEFIELDS: i64 = 2;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id, None past the largest.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous id, None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// `ms-seq` as bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        format!("{}-{}", self.ms, self.seq).into_bytes()
    }

    /// Parse `ms[-seq]` as Redis does (strtoull rules for each part,
    /// `missing_seq` when there is no `-seq`). With `allow_star`, a `ms-*`
    /// form returns `seq_given == false`. Does not handle `-`, `+`, `(`.
    pub fn parse(b: &[u8], missing_seq: u64, allow_star: bool) -> Option<(StreamId, bool)> {
        if b.len() > 127 {
            return None;
        }
        match b.iter().position(|&c| c == b'-') {
            None => Some((StreamId::new(parse_u64_strtoull(b)?, missing_seq), true)),
            Some(p) => {
                let ms = parse_u64_strtoull(&b[..p])?;
                let rest = &b[p + 1..];
                if allow_star && rest == b"*" {
                    return Some((StreamId::new(ms, 0), false));
                }
                Some((StreamId::new(ms, parse_u64_strtoull(rest)?), true))
            }
        }
    }
}

/// One node: its packed entries and what Redis's listpack would count.
#[derive(Clone)]
struct Node {
    live: u32,
    deleted: u32,
    /// Size of Redis's listpack for these entries (decides node opening).
    bytes: usize,
    /// Last id ever appended (deleted or not).
    last: StreamId,
    pack: Pack,
}

/// What a node costs besides its buffer: its B-tree slot (key, `Node`)
/// and a share of the tree's own nodes.
const NODE_OVERHEAD: usize = 128;

/// A pending entry: who has it, when it was last delivered, how often.
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    pub consumer: Box<[u8]>,
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Consumer {
    pub seen_time: i64,
    pub pel: BTreeSet<StreamId>,
}

/// Redis's SCG_INVALID_ENTRIES_READ.
pub const ENTRIES_READ_INVALID: i64 = -1;

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// Create the consumer if needed; true if it was created.
    pub fn ensure_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(name.into(), Consumer { seen_time: now, pel: BTreeSet::new() });
        true
    }

    /// Give pending entry `id` to `consumer` (which must exist), creating
    /// the entry if absent; returns it for the caller to set time/count.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8]) -> &mut Nack {
        let prev = self.pel.get(&id).map(|n| n.consumer.clone());
        if let Some(prev) = prev {
            if &*prev != consumer {
                if let Some(c) = self.consumers.get_mut(&prev) {
                    c.pel.remove(&id);
                }
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        let n = self.pel.entry(id).or_insert_with(|| Nack {
            consumer: consumer.into(),
            delivery_time: 0,
            delivery_count: 0,
        });
        if &*n.consumer != consumer {
            n.consumer = consumer.into();
        }
        n
    }

    /// Drop pending entry `id`; true if it was there.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Delete a consumer with its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

/// How to trim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Default)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Node>,
    /// Live entries.
    len: usize,
    /// Sum of the nodes' buffer capacities, for mem_usage in O(1).
    pack_bytes: usize,
    pub last_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

/// Bytes a listpack element takes: encoding, data, back-length.
fn lp_elem_size(b: &[u8]) -> usize {
    let enc = match crate::util::parse_i64(b) {
        Some(v) => lp_int_enc(v),
        None if b.len() < 64 => 1 + b.len(),
        None if b.len() < 4096 => 2 + b.len(),
        None => 5 + b.len(),
    };
    enc + lp_backlen(enc)
}

fn lp_int_size(v: i64) -> usize {
    let enc = lp_int_enc(v);
    enc + lp_backlen(enc)
}

fn lp_int_enc(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn lp_backlen(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    pub fn deep_clone(&self) -> Stream {
        self.clone()
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| {
                n.len()
                    + 64
                    + g.pel.len() * 64
                    + g.consumers.len() * 64
                    + g.consumers.keys().map(|k| k.len()).sum::<usize>()
            })
            .sum();
        self.pack_bytes + self.nodes.len() * NODE_OVERHEAD + groups
    }

    /// Listpack nodes Redis would have (XINFO radix-tree-keys).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Each node with live entries, as Redis's listpack holds it (DUMP):
    /// its key, live and deleted counts, master field names, and every
    /// entry, deleted ones included.
    pub fn each_node(&self, mut f: impl FnMut(StreamId, u32, u32, Vec<&[u8]>, super::stream_node::Entries<'_>)) {
        for (&master, n) in &self.nodes {
            if n.live > 0 {
                f(master, n.live, n.deleted, n.pack.master_fields(), n.pack.entries(master));
            }
        }
    }

    /// Live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        let (&base, node) = self.nodes.range(..=id).next_back()?;
        node.pack.find(base, id).map(|e| e.entry)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// First live entry's id, 0-0 when empty (Redis's `first_id`).
    pub fn first_id(&self) -> StreamId {
        self.first().map(|(id, _)| id).unwrap_or_default()
    }

    /// Last live entry's id (Redis's `streamLastValidID`), 0-0 when empty.
    pub fn last_valid_id(&self) -> StreamId {
        self.last().map(|(id, _)| id).unwrap_or_default()
    }

    pub fn first(&self) -> Option<(StreamId, EntryRef<'_>)> {
        self.range(StreamId::MIN, StreamId::MAX).next()
    }

    pub fn last(&self) -> Option<(StreamId, EntryRef<'_>)> {
        self.range(StreamId::MIN, StreamId::MAX).next_back()
    }

    /// Live entries with start <= id <= end, ascending (or descending
    /// with `rev`).
    /// O(log n) to start, then O(1) per node plus the entries skipped in
    /// the first and last node (Redis's stream iterator).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
    ) -> impl DoubleEndedIterator<Item = (StreamId, EntryRef<'_>)> + '_ {
        // The node holding `start` begins at or before it.
        let from = self.nodes.range(..=start).next_back().map_or(start, |(&k, _)| k);
        let nodes = if start > end { self.nodes.range(..StreamId::MIN) } else { self.nodes.range(from..=end) };
        nodes
            .filter(|(_, n)| n.live > 0)
            .flat_map(|(&master, n)| n.pack.entries(master))
            .filter(move |raw| !raw.deleted && (start..=end).contains(&raw.id))
            .map(|raw| (raw.id, raw.entry))
    }

    /// Append an entry with `id` (the caller checked id > last_id).
    /// `pairs` is the flattened field/value list.
    pub fn append(&mut self, id: StreamId, pairs: &[&[u8]]) {
        let numfields = pairs.len() / 2;
        let totelelen: usize = pairs.iter().map(|p| p.len()).sum();
        let single = self.nodes.len() == 1;
        let (reuse, rekey) = match self.nodes.last_key_value() {
            Some((&k, n)) => {
                let fits = n.bytes + totelelen < node_max_bytes() && u64::from(n.live + n.deleted) < node_max_entries();
                // XSETID may move last_id below the tail's first id once an
                // exact trim left it with only deleted entries (the only
                // node of an empty stream). Redis appends into it anyway;
                // so do we, restarting its buffer at `id` so that a node's
                // key stays at or below its entries, which lookups need.
                let below = id < k;
                let rekey = fits && below && single && n.live == 0;
                (fits && (!below || rekey), rekey)
            }
            None => (false, false),
        };
        if rekey {
            if let Some((_, mut n)) = self.nodes.pop_last() {
                n.pack.clear();
                self.nodes.insert(id, n);
            }
        }
        if !reuse {
            // The tail is full: give back its growth slack.
            if let Some(mut tail) = self.nodes.last_entry() {
                let pack = &mut tail.get_mut().pack;
                self.pack_bytes -= pack.capacity();
                pack.compact();
                self.pack_bytes += pack.capacity();
            }
            let mut bytes = 7 + lp_int_size(0) * 2 + lp_int_size(numfields as i64) + lp_int_size(0);
            bytes += pairs.iter().step_by(2).map(|f| lp_elem_size(f)).sum::<usize>();
            let pack = Pack::new(pairs);
            self.pack_bytes += pack.capacity();
            self.nodes.insert(id, Node { live: 0, deleted: 0, bytes, last: id, pack });
        }
        // The node to append to is the last one, or the one just opened
        // (which sorts before a full tail of only deleted entries, see
        // above; Redis too opens one node per entry then).
        let master = if reuse { self.nodes.last_key_value().map_or(id, |(&k, _)| k) } else { id };
        let Some(node) = self.nodes.get_mut(&master) else { return };
        let same = node.pack.master_matches(pairs);
        let mut add = lp_int_size(if same { FLAG_SAMEFIELDS } else { 0 })
            + lp_int_size(id.ms.wrapping_sub(master.ms) as i64)
            + lp_int_size(id.seq.wrapping_sub(master.seq) as i64);
        if same {
            add += pairs.iter().skip(1).step_by(2).map(|v| lp_elem_size(v)).sum::<usize>();
            add += lp_int_size(numfields as i64 + 3);
        } else {
            add += lp_int_size(numfields as i64);
            add += pairs.iter().map(|v| lp_elem_size(v)).sum::<usize>();
            add += lp_int_size(2 * numfields as i64 + 4);
        }
        node.bytes += add;
        node.live += 1;
        node.last = id;
        self.pack_bytes -= node.pack.capacity();
        node.pack.push(master, id, pairs, same);
        self.pack_bytes += node.pack.capacity();
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Drop the node starting at `master`; returns its live entries.
    fn remove_node(&mut self, master: StreamId) -> usize {
        match self.nodes.remove(&master) {
            Some(n) => {
                self.pack_bytes -= n.pack.capacity();
                self.len -= n.live as usize;
                n.live as usize
            }
            None => 0,
        }
    }

    /// XDEL of one id; true if it was there. Updates max_deleted_id.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else { return false };
        let Some(at) = node.pack.find(master, id).map(|e| e.at) else { return false };
        node.pack.mark_deleted(at);
        node.live -= 1;
        node.deleted += 1;
        self.len -= 1;
        if node.live == 0 {
            self.remove_node(master);
        }
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        true
    }

    /// Trim as Redis's streamTrim: whole nodes from the head, then (unless
    /// `approx`) entries inside the next node. `limit` 0 means no limit.
    /// Returns how many entries were removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        loop {
            if let Trim::MaxLen(m) = how {
                if self.len() as u64 <= m {
                    break;
                }
            }
            let Some((&master, node)) = self.nodes.iter().next() else { break };
            let live = node.live as u64;
            if limit > 0 && deleted + live > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(m) => self.len() as u64 - live >= m,
                Trim::MinId(id) => node.last < id,
            };
            if remove_node {
                deleted += self.remove_node(master) as u64;
                continue;
            }
            if approx {
                break;
            }
            let mut len = self.len() as u64;
            let Some(node) = self.nodes.get_mut(&master) else { break };
            let n = node.pack.delete_while(master, |id| {
                let stop = match how {
                    Trim::MaxLen(m) => len <= m,
                    Trim::MinId(min) => id >= min,
                };
                len -= u64::from(!stop);
                !stop
            });
            node.live -= n;
            node.deleted += n;
            self.len -= n as usize;
            deleted += n as u64;
            break;
        }
        deleted
    }

    /// Redis's streamEstimateDistanceFromFirstEverEntry: the logical read
    /// counter of `id`, or ENTRIES_READ_INVALID if it cannot be known.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.is_empty() && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return ENTRIES_READ_INVALID;
        }
        let first = self.first_id();
        if self.max_deleted_id.is_zero() || self.max_deleted_id < first {
            if id < first {
                return (self.entries_added - self.len() as u64) as i64;
            } else if id == first {
                return (self.entries_added - self.len() as u64 + 1) as i64;
            }
        }
        ENTRIES_READ_INVALID
    }

    /// Redis's streamRangeHasTombstones with an open end.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id() > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// A group's lag (XINFO), None when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_INVALID && !self.has_tombstones_from(g.last_id) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        (read != ENTRIES_READ_INVALID).then(|| self.entries_added as i64 - read)
    }

    /// Move a group's last delivered id forward to `id` as a read does,
    /// keeping its entries-read counter.
    pub fn advance_group(&mut self, group: &[u8], id: StreamId) {
        let tomb = self.has_tombstones_from(id);
        let est = if self.entries_added > 0 { Some(self.estimate_distance(id)) } else { None };
        if let Some(g) = self.groups.get_mut(group) {
            if id <= g.last_id {
                return;
            }
            if g.entries_read != ENTRIES_READ_INVALID && !tomb {
                g.entries_read += 1;
            } else if let Some(e) = est {
                g.entries_read = e;
            }
            g.last_id = id;
        }
    }

    /// Append the commands that recreate this stream under `key` (entries,
    /// last id, groups, consumers, pending entries) as RESP arrays, for
    /// AOF bases and cross-shard transfer. Returns how many commands.
    ///
    /// Pending entries whose stream entry was deleted are not recreated:
    /// XCLAIM drops them, as it does in Redis's own AOF rewrite.
    pub fn rebuild_commands(&self, key: &[u8], out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        self.each_rebuild_command(key, |parts| {
            encode_array(out, parts.iter().copied(), parts.len());
            n += 1;
        });
        n
    }

    /// `rebuild_commands`, one command at a time to `f` (a base image cuts
    /// its records between them).
    pub fn each_rebuild_command(&self, key: &[u8], mut f: impl FnMut(&[&[u8]])) {
        for (id, fields) in self.range(StreamId::MIN, StreamId::MAX) {
            let idb = id.to_bytes();
            let mut parts: Vec<&[u8]> = vec![b"XADD", key, &idb];
            parts.extend(fields.iter());
            f(&parts);
        }
        if self.is_empty() {
            // An XADD trimmed at once creates the key empty; XSETID then
            // sets the counters it changed.
            let id = self.last_id.max(StreamId::new(0, 1)).to_bytes();
            f(&[b"XADD", key, b"MAXLEN", b"0", &id, b"x", b"y"]);
        }
        // XSETID wants MAXDELETEDID <= its id, but XSETID may have moved
        // last_id below a tombstone: set the tombstone first, then last_id.
        if !self.max_deleted_id.is_zero() {
            let at = self.max_deleted_id.max(self.last_valid_id()).to_bytes();
            f(&[b"XSETID", key, &at, b"MAXDELETEDID", &self.max_deleted_id.to_bytes()]);
        }
        let (last, added) = (self.last_id.to_bytes(), self.entries_added.to_string());
        f(&[b"XSETID", key, &last, b"ENTRIESADDED", added.as_bytes()]);
        for (name, g) in &self.groups {
            let (gl, er) = (g.last_id.to_bytes(), g.entries_read.to_string());
            f(&[b"XGROUP", b"CREATE", key, name, &gl, b"ENTRIESREAD", er.as_bytes()]);
            for cname in g.consumers.keys() {
                f(&[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
            }
            for (id, nack) in &g.pel {
                if !self.contains(*id) {
                    continue;
                }
                let (idb, t, c) = (id.to_bytes(), nack.delivery_time.to_string(), nack.delivery_count.to_string());
                f(&[
                    b"XCLAIM",
                    key,
                    name,
                    &nack.consumer,
                    b"0",
                    &idb,
                    b"TIME",
                    t.as_bytes(),
                    b"RETRYCOUNT",
                    c.as_bytes(),
                    b"FORCE",
                    b"JUSTID",
                ]);
            }
        }
    }

    /// Compare everything observable (tests).
    #[cfg(test)]
    pub fn same_as(&self, o: &Stream) -> bool {
        let all = |s: &Stream| s.range(StreamId::MIN, StreamId::MAX).map(|(i, f)| (i, f.to_vec())).collect::<Vec<_>>();
        all(self) == all(o)
            && self.last_id == o.last_id
            && self.max_deleted_id == o.max_deleted_id
            && self.entries_added == o.entries_added
            && self.groups == o.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn id_parsing_follows_redis() {
        assert_eq!(StreamId::parse(b"1-2", 0, false), Some((id(1, 2), true)));
        assert_eq!(StreamId::parse(b"5", 7, false), Some((id(5, 7), true)));
        assert_eq!(StreamId::parse(b"5-*", 0, true), Some((id(5, 0), false)));
        assert_eq!(StreamId::parse(b"5-*", 0, false), None);
        assert_eq!(StreamId::parse(b"-1", 0, false), None);
        assert_eq!(StreamId::parse(b"1-2-3", 0, false), None);
        assert_eq!(
            StreamId::parse(b"18446744073709551615-18446744073709551615", 0, false),
            Some((StreamId::MAX, true))
        );
        assert_eq!(StreamId::parse(b"18446744073709551616", 0, false), None);
        // strtoull leniency that Redis inherits.
        assert_eq!(StreamId::parse(b"+5", 0, false), Some((id(5, 0), true)));
        assert_eq!(StreamId::parse(b"007", 0, false), Some((id(7, 0), true)));
        assert_eq!(StreamId::parse(b"", 0, false), None);
        assert!(id(1, u64::MAX) < id(2, 0));
        assert_eq!(id(1, u64::MAX).incr(), Some(id(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(id(2, 0).decr(), Some(id(1, u64::MAX)));
        assert_eq!(StreamId::MIN.decr(), None);
    }

    fn filled(n: u64) -> Stream {
        let mut s = Stream::new();
        for i in 1..=n {
            s.append(id(i, 0), &[b"f", b"v"]);
        }
        s
    }

    #[test]
    fn nodes_hold_100_entries_and_approx_trim_drops_whole_nodes() {
        let mut s = filled(250);
        assert_eq!(s.node_count(), 3);
        assert_eq!(s.trim(Trim::MaxLen(180), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(150), true, 0), 100);
        assert_eq!(s.len(), 150);
        // LIMIT stops before a node that would exceed it.
        assert_eq!(s.trim(Trim::MaxLen(0), true, 120), 100);
        assert_eq!(s.trim(Trim::MaxLen(10), false, 0), 40);
        assert_eq!(s.len(), 10);
        assert_eq!(s.first_id(), id(241, 0));
        // Exact trim marks entries deleted: the node stays, counting them.
        assert_eq!(s.node_count(), 1);
        assert_eq!(s.trim(Trim::MinId(id(245, 0)), false, 0), 4);
        assert_eq!(s.first_id(), id(245, 0));
        assert_eq!(s.trim(Trim::MinId(id(1000, 0)), true, 0), 6);
        assert!(s.is_empty() && s.node_count() == 0);
        assert_eq!(s.entries_added, 250);
    }

    #[test]
    fn large_values_open_nodes_by_bytes() {
        let mut s = Stream::new();
        let v = vec![b'x'; 1000];
        for i in 1..=10 {
            s.append(id(i, 0), &[b"f", &v]);
        }
        // About 1 KB per entry in 4 KB nodes: 4 entries per node (a node
        // is full once its bytes plus the new entry's reach 4096).
        assert_eq!(s.node_count(), 3);
    }

    #[test]
    fn appends_below_a_trimmed_out_node_stay_findable() {
        let mut s = filled(3);
        s.delete(id(3, 0));
        // An exact trim leaves the node with only deleted entries.
        assert_eq!(s.trim(Trim::MinId(id(3, 0)), false, 0), 2);
        assert!(s.is_empty() && s.node_count() == 1);
        // XSETID below that node's first id, then XADD.
        s.last_id = id(0, 5);
        s.append(id(0, 6), &[b"f", b"a"]);
        s.append(id(2, 0), &[b"f", b"b"]);
        s.append(id(3, 0), &[b"f", b"c"]);
        assert_eq!(s.node_count(), 1);
        assert_eq!(s.get(id(0, 6)).map(|f| f.to_vec()), Some(vec![b"f".to_vec(), b"a".to_vec()]));
        assert!(s.contains(id(2, 0)) && s.contains(id(3, 0)));
        let ids: Vec<_> = s.range(StreamId::MIN, StreamId::MAX).map(|(i, _)| i).collect();
        assert_eq!(ids, [id(0, 6), id(2, 0), id(3, 0)]);
        assert_eq!((s.first_id(), s.last_valid_id()), (id(0, 6), id(3, 0)));
        assert!(s.delete(id(2, 0)));
        check_invariants(&s);

        // A full node of deleted entries stays last: each entry below it
        // opens its own node, as in Redis.
        let mut s = filled(100);
        s.delete(id(100, 0));
        s.trim(Trim::MinId(id(100, 0)), false, 0);
        s.last_id = id(0, 0);
        s.append(id(0, 1), &[b"f", b"a"]);
        s.append(id(0, 2), &[b"f", b"b"]);
        assert_eq!(s.node_count(), 3);
        let ids: Vec<_> = s.range(StreamId::MIN, StreamId::MAX).rev().map(|(i, _)| i).collect();
        assert_eq!(ids, [id(0, 2), id(0, 1)]);
        assert!(s.contains(id(0, 1)) && s.delete(id(0, 2)));
        check_invariants(&s);
    }

    #[test]
    fn xdel_removes_empty_nodes_and_tracks_tombstones() {
        let mut s = filled(3);
        assert!(s.delete(id(2, 0)));
        assert!(!s.delete(id(2, 0)));
        assert_eq!(s.max_deleted_id, id(2, 0));
        assert!(s.has_tombstones_from(id(1, 0)));
        assert!(!s.has_tombstones_from(id(3, 0)));
        s.delete(id(1, 0));
        s.delete(id(3, 0));
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.last_id, id(3, 0));
    }

    /// Everything the nodes hold agrees with the counters kept on the side.
    fn check_invariants(s: &Stream) {
        let mut live = 0;
        for (&master, n) in &s.nodes {
            let ids: Vec<_> = n.pack.entries(master).map(|e| (e.id, e.deleted)).collect();
            // A node's key is at most its entries (lookups rely on it);
            // restarted nodes hold fewer entries than Redis's would.
            assert!(ids.iter().all(|e| e.0 >= master));
            assert_eq!(ids.last().map(|e| e.0), Some(n.last));
            assert!(ids.len() <= (n.live + n.deleted) as usize);
            let live_ids: Vec<_> = ids.iter().filter(|e| !e.1).map(|e| e.0).collect();
            assert_eq!(live_ids.len(), n.live as usize);
            assert!(live_ids.windows(2).all(|w| w[0] < w[1]));
            live += n.live as usize;
        }
        assert_eq!(live, s.len());
        assert_eq!(s.pack_bytes, s.nodes.values().map(|n| n.pack.capacity()).sum::<usize>());
    }

    type Model = BTreeMap<StreamId, Vec<Vec<u8>>>;

    /// The stream's entries in [a, b], walked by alternating ends.
    fn zigzag(s: &Stream, a: StreamId, b: StreamId) -> Vec<(StreamId, Vec<Vec<u8>>)> {
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        let mut it = s.range(a, b);
        while let Some((i, f)) = it.next() {
            head.push((i, f.to_vec()));
            let Some((i, f)) = it.next_back() else { break };
            tail.push((i, f.to_vec()));
        }
        head.extend(tail.into_iter().rev());
        head
    }

    fn check_range(s: &Stream, m: &Model, a: StreamId, b: StreamId) {
        let want: Vec<_> = if a <= b { m.range(a..=b).map(|(i, f)| (*i, f.clone())).collect() } else { Vec::new() };
        let fwd: Vec<_> = s.range(a, b).map(|(i, f)| (i, f.to_vec())).collect();
        assert_eq!(fwd, want);
        let mut rev: Vec<_> = s.range(a, b).rev().map(|(i, f)| (i, f.to_vec())).collect();
        rev.reverse();
        assert_eq!(rev, want);
        assert_eq!(zigzag(s, a, b), want);
    }

    #[test]
    fn packed_stream_matches_a_btreemap_model() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let huge = vec![b'H'; 5000];
        // Long runs build many nodes; short ones with more deletes, trims
        // and XSETIDs reach the odd states (an emptied node kept by an
        // exact trim, then appends below its first id).
        for seed in 0..60 {
            let (steps, weights) = if seed < 12 { (3000, [55, 20, 2, 3]) } else { (400, [35, 25, 10, 15]) };
            let bounds: Vec<u32> = weights
                .iter()
                .scan(0, |a, w| {
                    *a += w;
                    Some(*a)
                })
                .collect();
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut s, mut m) = (Stream::new(), Model::new());
            let mut next = id(rng.gen_range(0..3), rng.gen_range(0..3));
            for _ in 0..steps {
                // Some id of interest: present, deleted, or between.
                let top = next.ms.saturating_add(2);
                let pick = move |rng: &mut StdRng, m: &Model| match m.keys().nth(rng.gen_range(0..m.len().max(1))) {
                    Some(&k) if rng.gen_bool(0.7) => k,
                    _ => id(rng.gen_range(0..top), rng.gen_range(0..4)),
                };
                match rng.gen_range(0..100u32) {
                    r if r < bounds[0] => {
                        let fields: Vec<Vec<u8>> = match rng.gen_range(0..4) {
                            0 | 1 => vec![b"f".to_vec()],
                            2 => vec![b"a".to_vec(), b"b".to_vec()],
                            _ => (0..rng.gen_range(1..6)).map(|i| format!("k{i}").into_bytes()).collect(),
                        };
                        let mut pairs: Vec<Vec<u8>> = Vec::new();
                        for f in fields {
                            let v = match rng.gen_range(0..30) {
                                0 => Vec::new(),
                                1 => huge.clone(),
                                _ => vec![b'a' + rng.gen_range(0..26); rng.gen_range(1..120)],
                            };
                            pairs.extend([f, v]);
                        }
                        let refs: Vec<&[u8]> = pairs.iter().map(|p| &p[..]).collect();
                        s.append(next, &refs);
                        m.insert(next, pairs);
                        next = match rng.gen_range(0..if seed < 12 { 10 } else { 8 }) {
                            0..=5 => id(next.ms, next.seq + 1),
                            6..=8 => id(next.ms + rng.gen_range(1..5000), rng.gen_range(0..3)),
                            _ => id(next.ms + (1 << rng.gen_range(20..40)), rng.gen_range(0..1 << 40)),
                        };
                    }
                    r if r < bounds[1] => {
                        let k = pick(&mut rng, &m);
                        assert_eq!(s.delete(k), m.remove(&k).is_some());
                    }
                    r if r < bounds[2] => {
                        // XSETID: last_id anywhere at or above the last
                        // live entry (anywhere at all when empty).
                        let lo = m.keys().next_back().copied().unwrap_or_default();
                        let back = id(rng.gen_range(lo.ms..=next.ms), rng.gen_range(0..3)).max(lo);
                        s.last_id = back;
                        next = back.incr().unwrap_or(back);
                    }
                    r if r < bounds[3] => {
                        let how = if rng.gen_bool(0.5) {
                            Trim::MaxLen(rng.gen_range(0..m.len() as u64 + 5))
                        } else {
                            // At last_id: every live entry goes, maybe not
                            // the node (when its last entry was deleted).
                            Trim::MinId(if rng.gen_bool(0.2) { s.last_id } else { pick(&mut rng, &m) })
                        };
                        let approx = rng.gen_bool(0.5);
                        let limit = if approx && rng.gen_bool(0.3) { rng.gen_range(1..300) } else { 0 };
                        let n = s.trim(how, approx, limit);
                        let before = m.len();
                        for _ in 0..n {
                            m.pop_first();
                        }
                        if !approx {
                            match how {
                                Trim::MaxLen(max) => assert_eq!(m.len() as u64, (before as u64).min(max)),
                                Trim::MinId(min) => assert!(m.keys().next().is_none_or(|&k| k >= min)),
                            }
                        }
                    }
                    _ => {
                        let (a, b) = (pick(&mut rng, &m), pick(&mut rng, &m));
                        check_range(&s, &m, a, b);
                        check_range(&s, &m, a.min(b), a.max(b));
                    }
                }
                assert_eq!(s.len(), m.len());
                let k = pick(&mut rng, &m);
                assert_eq!(s.get(k).map(|f| f.to_vec()), m.get(&k).cloned());
                assert_eq!(s.first().map(|(i, _)| i), m.keys().next().copied());
                assert_eq!(s.last().map(|(i, _)| i), m.keys().next_back().copied());
                check_invariants(&s);
            }
            check_range(&s, &m, StreamId::MIN, StreamId::MAX);
            let mut c = s.deep_clone();
            assert!(c.same_as(&s) && c.mem_usage() == s.mem_usage());
            c.trim(Trim::MaxLen(0), false, 0);
            assert!(c.is_empty() && c.mem_usage() == 0 && c.range(StreamId::MIN, StreamId::MAX).next().is_none());
        }
    }

    #[test]
    fn pel_bookkeeping() {
        let mut g = Group::new(StreamId::MIN, 0);
        assert!(g.ensure_consumer(b"a", 1));
        assert!(!g.ensure_consumer(b"a", 1));
        g.ensure_consumer(b"b", 1);
        g.assign(id(1, 0), b"a").delivery_count = 1;
        g.assign(id(2, 0), b"a").delivery_count = 1;
        g.assign(id(1, 0), b"b").delivery_count += 1;
        assert_eq!(g.consumers[&b"a"[..]].pel.len(), 1);
        assert_eq!(g.consumers[&b"b"[..]].pel.len(), 1);
        assert_eq!(g.pel[&id(1, 0)].delivery_count, 2);
        assert!(g.ack(id(1, 0)));
        assert!(!g.ack(id(1, 0)));
        assert!(g.consumers[&b"b"[..]].pel.is_empty());
        assert_eq!(g.delete_consumer(b"a"), Some(1));
        assert!(g.pel.is_empty());
    }

    #[test]
    fn lag_and_entries_read() {
        let mut s = filled(5);
        s.groups.insert(b"g".to_vec().into(), Group::new(StreamId::MIN, ENTRIES_READ_INVALID));
        s.advance_group(b"g", id(2, 0));
        assert_eq!(s.groups[&b"g"[..]].entries_read, ENTRIES_READ_INVALID);
        let g = s.groups[&b"g"[..]].clone();
        assert_eq!(s.lag(&g), None);
        s.groups.insert(b"h".to_vec().into(), Group::new(StreamId::MIN, 0));
        s.advance_group(b"h", id(1, 0));
        s.advance_group(b"h", id(2, 0));
        let h = s.groups[&b"h"[..]].clone();
        assert_eq!((h.entries_read, s.lag(&h)), (2, Some(3)));
    }
}

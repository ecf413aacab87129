//! HyperLogLog: PFADD, PFCOUNT, PFMERGE.
//!
//! Values are strings in Redis's own HLL format so that GET/SET/DUMP of one
//! round-trip between shardis and Redis and counts match redis-server for
//! the same inputs: a 16-byte header (`HYLL`, encoding, 3 unused bytes, an
//! 8-byte little-endian cached cardinality whose top bit marks it stale),
//! then 16384 registers either dense (6 bits each, 12288 bytes) or sparse
//! (run-length opcodes ZERO `00xxxxxx`, XZERO `01xxxxxx yyyyyyyy`, VAL
//! `1vvvvvxx`). Elements are hashed with MurmurHash64A (seed 0xadc83b19);
//! the estimate is Ertl's improved estimator that Redis 7 uses. The sparse
//! update below follows the same split-and-merge steps as Redis so the
//! bytes of a value match too.

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::{Keyspace, Value};

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::HYPERLOGLOG).group(Group::Hyperloglog)
}

pub static COMMANDS: &[CommandDef] = &[
    c("pfadd", -2, WRITE | DENYOOM | FAST, &[at(1, RW | INSERT)], pfadd).since("2.8.9").event(ev::STRING, "pfadd"),
    // Read-only as in Redis even though it may refresh the cached count
    // (hence MAY_REPLICATE; see `pfcount`).
    c("pfcount", -2, READONLY | MAY_REPLICATE, &[at(1, RW | ACCESS).range(-1, 1, 0)], pfcount).since("2.8.9"),
    c("pfmerge", -2, WRITE | DENYOOM, &[at(1, RW | ACCESS | INSERT), at(2, RO | ACCESS).range(-1, 1, 0)], pfmerge)
        .since("2.8.9")
        .event(ev::STRING, "pfadd"),
];

const P: u32 = 14;
pub const REGISTERS: usize = 1 << P;
/// Bits of the hash left after the register index.
const Q: u32 = 64 - P;
const HDR: usize = 16;
const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
/// Redis's `hll-sparse-max-bytes` default: a sparse value growing past it
/// turns dense.
const SPARSE_MAX_BYTES: usize = 3000;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// Austin Appleby's MurmurHash64A, reading 8-byte blocks little-endian.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for b in &mut chunks {
        let mut k = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// (register index, run length of zeros + 1) for an element.
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // The guard bit caps the count at Q + 1.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---- registers ------------------------------------------------------------------

fn dense_get(r: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let lo = r[b] as u16 >> fb;
    let hi = r.get(b + 1).copied().unwrap_or(0) as u16;
    ((lo | (hi << (8 - fb))) & 63) as u8
}

fn dense_put(r: &mut [u8], i: usize, v: u8) {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let v = v as u16;
    r[b] = ((r[b] as u16 & !(63u16 << fb)) | (v << fb)) as u8;
    if let Some(x) = r.get_mut(b + 1) {
        let (mask, val) = (63u16 >> (8 - fb), v >> (8 - fb));
        *x = ((*x as u16 & !mask) | val) as u8;
    }
}

/// Raise register `i` to `v`; true if it changed.
fn dense_set(r: &mut [u8], i: usize, v: u8) -> bool {
    if v > dense_get(r, i) {
        dense_put(r, i, v);
        true
    } else {
        false
    }
}

fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
fn xzero_len(b0: u8, b1: u8) -> usize {
    (((b0 & 0x3f) as usize) << 8 | b1 as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 3) as usize + 1
}
fn val_op(v: u8, len: usize) -> u8 {
    0x80 | ((v - 1) << 2) | (len as u8 - 1)
}

/// A run of `len` zero registers as a ZERO or XZERO opcode.
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        seq.push(0x40 | ((len - 1) >> 8) as u8);
        seq.push(((len - 1) & 0xff) as u8);
    } else {
        seq.push((len - 1) as u8);
    }
}

/// A new, empty HLL: sparse, one XZERO per 16384 registers, cache valid at 0.
pub fn new_hll() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        push_zeros(&mut v, n);
        left -= n;
    }
    v
}

/// Redis's isHLLObjectOrReply checks on the bytes of a string.
fn valid_hll(b: &[u8]) -> bool {
    b.len() >= HDR && &b[..4] == b"HYLL" && b[4] <= SPARSE && (b[4] != DENSE || b.len() == DENSE_SIZE)
}

fn invalidate(h: &mut [u8]) {
    h[15] |= 0x80;
}

/// Walk sparse opcodes: `f(first register, run length, value)`; false on a
/// malformed stream or one that does not cover exactly every register.
fn sparse_walk(ops: &[u8], mut f: impl FnMut(usize, usize, u8)) -> bool {
    let (mut p, mut idx) = (0, 0usize);
    while p < ops.len() {
        let b = ops[p];
        let (run, val, oplen) = if is_zero(b) {
            (zero_len(b), 0, 1)
        } else if is_xzero(b) {
            let Some(&b1) = ops.get(p + 1) else { return false };
            (xzero_len(b, b1), 0, 2)
        } else {
            (val_len(b), val_value(b), 1)
        };
        if idx + run > REGISTERS {
            return false;
        }
        f(idx, run, val);
        idx += run;
        p += oplen;
    }
    idx == REGISTERS
}

/// Convert a sparse HLL to dense in place (keeping the header's cache).
fn sparse_to_dense(h: &mut Vec<u8>) -> Result<(), ()> {
    if h[4] == DENSE {
        return Ok(());
    }
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&h[..HDR]);
    d[4] = DENSE;
    let ok = sparse_walk(&h[HDR..], |first, run, val| {
        if val > 0 {
            for i in first..first + run {
                dense_put(&mut d[HDR..], i, val);
            }
        }
    });
    if !ok {
        return Err(());
    }
    *h = d;
    Ok(())
}

/// Raise register `index` of a sparse HLL to `count`, as Redis's
/// hllSparseSet does (so the resulting bytes are the same): split the
/// opcode covering it, then merge equal neighbouring VAL opcodes. Turns the
/// value dense when the count does not fit a VAL opcode or the value would
/// grow past `SPARSE_MAX_BYTES`. Ok(true) if something changed.
fn sparse_set(h: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, ()> {
    if count > VAL_MAX_VALUE {
        return promote(h, index, count);
    }
    let end = h.len();
    let (mut p, mut first, mut span) = (HDR, 0usize, 0usize);
    let mut prev = None;
    while p < end {
        let b = h[p];
        let mut oplen = 1;
        span = if is_zero(b) {
            zero_len(b)
        } else if is_val(b) {
            val_len(b)
        } else {
            oplen = 2;
            xzero_len(b, *h.get(p + 1).ok_or(())?)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(());
    }
    let b = h[p];
    let runlen = span;
    let simple = if is_val(b) {
        if val_value(b) >= count {
            return Ok(false);
        }
        runlen == 1
    } else {
        is_zero(b) && runlen == 1
    };
    if simple {
        h[p] = val_op(count, 1);
    } else {
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        if is_val(b) {
            let cur = val_value(b);
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        let oldlen = if is_xzero(b) { 2 } else { 1 };
        if seq.len() > oldlen && h.len() + seq.len() - oldlen > SPARSE_MAX_BYTES {
            return promote(h, index, count);
        }
        h.splice(p..p + oldlen, seq);
    }
    // Merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes
    // from the one before the change.
    let mut p = prev.unwrap_or(HDR);
    let mut end = h.len();
    let mut scan = 5;
    while p < end && scan > 0 {
        scan -= 1;
        let b = h[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(h[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(h[p + 1]));
            let len = val_len(b) + val_len(h[p + 1]);
            if v1 == v2 && len <= VAL_MAX_LEN {
                h[p + 1] = val_op(v1, len);
                h.remove(p);
                end -= 1;
                // Retry at the same place: the merged opcode may merge again.
                continue;
            }
        }
        p += 1;
    }
    invalidate(h);
    Ok(true)
}

fn promote(h: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, ()> {
    sparse_to_dense(h)?;
    dense_set(&mut h[HDR..], index, count);
    Ok(true)
}

/// Register `index` to at least `count` in either encoding.
fn set_register(h: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, ()> {
    match h[4] {
        DENSE => Ok(dense_set(&mut h[HDR..], index, count)),
        SPARSE => sparse_set(h, index, count),
        _ => Err(()),
    }
}

/// Add one element; Ok(true) if a register changed.
fn hll_add(h: &mut Vec<u8>, ele: &[u8]) -> Result<bool, ()> {
    let (index, count) = pat_len(ele);
    set_register(h, index, count)
}

/// max[i] = max(max[i], register i of `h`).
fn merge_into(max: &mut [u8], h: &[u8]) -> Result<(), ()> {
    if h[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&h[HDR..], i));
        }
        return Ok(());
    }
    let ok = sparse_walk(&h[HDR..], |first, run, val| {
        for m in &mut max[first..first + run] {
            *m = (*m).max(val);
        }
    });
    ok.then_some(()).ok_or(())
}

/// Cardinality estimate from a register histogram (Ertl, arXiv:1702.01284).
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Cardinality of a stored HLL; Err if its sparse part is malformed.
fn hll_count(h: &[u8]) -> Result<u64, ()> {
    let mut histo = [0u32; 64];
    if h[4] == DENSE {
        for i in 0..REGISTERS {
            histo[dense_get(&h[HDR..], i) as usize] += 1;
        }
    } else if !sparse_walk(&h[HDR..], |_, run, val| histo[val as usize] += run as u32) {
        return Err(());
    }
    Ok(estimate(&histo))
}

fn raw_count(regs: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in regs {
        histo[r as usize & 63] += 1;
    }
    estimate(&histo)
}

// ---- keyspace access ------------------------------------------------------------

/// The HLL at `key`, unshared into a raw string for writing (as Redis's
/// dbUnshareStringValue): Ok(None) if absent, Err(reply) if it is not one.
fn hll_mut<'a>(ks: &'a mut Keyspace, db: usize, key: &[u8], now: i64) -> Result<Option<&'a mut Vec<u8>>, &'static str> {
    let Some(e) = ks.lookup(db, key, now) else { return Ok(None) };
    let v = &mut e.value;
    if let Value::Inline { len, buf } = v {
        if !valid_hll(&buf[..*len as usize]) {
            return Err(NOT_HLL);
        }
        *v = Value::raw(buf[..*len as usize].to_vec());
    }
    match v {
        Value::Str { data, raw } => {
            if !valid_hll(data) {
                return Err(NOT_HLL);
            }
            *raw = true;
            Ok(Some(data))
        }
        Value::Int(_) => Err(NOT_HLL),
        _ => Err(err::WRONGTYPE),
    }
}

/// Merge the HLL at `key` (if any) into `max`; Ok(Some(encoding)) if it exists.
fn merge_key(ks: &mut Keyspace, db: usize, key: &[u8], now: i64, max: &mut [u8]) -> Result<Option<u8>, &'static str> {
    let Some(e) = ks.lookup(db, key, now) else { return Ok(None) };
    let bytes: &[u8] = match &e.value {
        Value::Inline { len, buf } => &buf[..*len as usize],
        Value::Str { data, .. } => data,
        Value::Int(_) => return Err(NOT_HLL),
        _ => return Err(err::WRONGTYPE),
    };
    if !valid_hll(bytes) {
        return Err(NOT_HLL);
    }
    merge_into(max, bytes).map_err(|_| CORRUPT)?;
    Ok(Some(bytes[4]))
}

// ---- commands -------------------------------------------------------------------

/// PFADD key [element ...]
fn pfadd(ctx: &mut Ctx, args: &Args) {
    let key = &args[1];
    let (db, now) = (ctx.db, ctx.now);
    let mut updated = 0;
    match hll_mut(ctx.ks, db, key, now) {
        Err(e) => return ctx.out.error(e),
        Ok(Some(_)) => {}
        Ok(None) => {
            ctx.ks.set(db, key, Value::raw(new_hll()), 0);
            updated += 1;
        }
    }
    let Ok(Some(h)) = hll_mut(ctx.ks, db, key, now) else {
        return ctx.out.error(CORRUPT);
    };
    for ele in args.iter().skip(2) {
        match hll_add(h, ele) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(()) => return ctx.out.error(CORRUPT),
        }
    }
    if updated > 0 {
        invalidate(h);
        ctx.ks.touch(db, key);
    }
    ctx.out.int((updated > 0) as i64);
}

/// PFCOUNT key [key ...]
fn pfcount(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    if args.len() > 2 {
        // Union of several: merged into a temporary, nothing cached.
        let mut max = vec![0u8; REGISTERS];
        for key in args.iter().skip(1) {
            if let Err(e) = merge_key(ctx.ks, db, key, now, &mut max) {
                return ctx.out.error(e);
            }
        }
        return ctx.out.int(raw_count(&max) as i64);
    }
    let key = &args[1];
    let h = match hll_mut(ctx.ks, db, key, now) {
        Err(e) => return ctx.out.error(e),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(h)) => h,
    };
    if h[15] & 0x80 == 0 {
        let mut card = [0u8; 8];
        card.copy_from_slice(&h[8..16]);
        return ctx.out.int(u64::from_le_bytes(card) as i64);
    }
    let Ok(card) = hll_count(h) else {
        return ctx.out.error(CORRUPT);
    };
    h[8..16].copy_from_slice(&card.to_le_bytes());
    // Caching the count modifies the value: signal it and log it (PFCOUNT
    // is read-only, so `cmd::exec` would not), as Redis propagates it.
    ctx.ks.touch(db, key);
    if ctx.ks.effects.enabled {
        ctx.ks.effects.push(db, &[&b"PFCOUNT"[..], key]);
    }
    ctx.out.int(card as i64);
}

/// PFMERGE destkey [sourcekey ...]
fn pfmerge(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let mut max = vec![0u8; REGISTERS];
    let mut use_dense = false;
    // The destination takes part in the union too.
    for key in args.iter().skip(1) {
        match merge_key(ctx.ks, db, key, now, &mut max) {
            Err(e) => return ctx.out.error(e),
            Ok(enc) => use_dense |= enc == Some(DENSE),
        }
    }
    let dest = &args[1];
    if ctx.ks.peek(db, dest, now).is_none() {
        ctx.ks.set(db, dest, Value::raw(new_hll()), 0);
    }
    let h = match hll_mut(ctx.ks, db, dest, now) {
        Ok(Some(h)) => h,
        _ => return ctx.out.error(CORRUPT),
    };
    if use_dense && sparse_to_dense(h).is_err() {
        return ctx.out.error(CORRUPT);
    }
    for (i, &m) in max.iter().enumerate() {
        if m != 0 {
            // Redis ignores a failure here too: the inputs were validated.
            let _ = set_register(h, i, m);
        }
    }
    invalidate(h);
    ctx.ks.touch(db, dest);
    ctx.out.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hll_murmur_and_pattern_match_redis() {
        // Redis stores `PFADD h a b c` as these sparse opcodes (from redis-server 7.0).
        let mut h = new_hll();
        for e in [&b"a"[..], b"b", b"c"] {
            assert_eq!(hll_add(&mut h, e), Ok(true));
        }
        assert_eq!(&h[HDR..], &[0x60, 0xf3, 0x80, 0x50, 0xb1, 0x84, 0x4b, 0xfb, 0x80, 0x42, 0x5a]);
        assert_eq!(hll_count(&h), Ok(3));
    }

    #[test]
    fn hll_sparse_to_dense_keeps_registers_and_counts() {
        let mut h = new_hll();
        let mut dense = new_hll();
        sparse_to_dense(&mut dense).unwrap();
        let mut turned_dense_at = None;
        for i in 0..20000u32 {
            let e = format!("element:{i}");
            hll_add(&mut h, e.as_bytes()).unwrap();
            hll_add(&mut dense, e.as_bytes()).unwrap();
            if turned_dense_at.is_none() && h[4] == DENSE {
                turned_dense_at = Some(i);
            }
            if h[4] == SPARSE && i % 97 == 0 {
                // Same registers in both encodings.
                let mut a = vec![0u8; REGISTERS];
                let mut b = vec![0u8; REGISTERS];
                merge_into(&mut a, &h).unwrap();
                merge_into(&mut b, &dense).unwrap();
                assert_eq!(a, b);
                assert!(h.len() <= SPARSE_MAX_BYTES);
            }
        }
        assert!(turned_dense_at.is_some_and(|i| i > 500), "{turned_dense_at:?}");
        assert_eq!(h, {
            let mut d = dense.clone();
            d[8..16].copy_from_slice(&h[8..16]);
            d
        });
        let n = hll_count(&h).unwrap() as f64;
        // Standard error 0.81%: allow 3%.
        assert!((n - 20000.0).abs() < 600.0, "{n}");
    }

    #[test]
    fn hll_estimates_within_bounds() {
        for &n in &[10u32, 100, 1000, 50_000] {
            let mut h = new_hll();
            for i in 0..n {
                hll_add(&mut h, &i.to_le_bytes()).unwrap();
            }
            let got = hll_count(&h).unwrap() as f64;
            assert!((got - n as f64).abs() <= (n as f64 * 0.03).max(1.0), "{n}: {got}");
        }
        assert_eq!(hll_count(&new_hll()), Ok(0));
    }

    #[test]
    fn hll_large_register_promotes_to_dense() {
        let mut h = new_hll();
        assert_eq!(sparse_set(&mut h, 100, 32), Ok(true));
        assert_eq!(h[4], SPARSE);
        assert_eq!(sparse_set(&mut h, 100, 31), Ok(false));
        // 33 does not fit a VAL opcode.
        assert_eq!(sparse_set(&mut h, 7, 33), Ok(true));
        assert_eq!(h.len(), DENSE_SIZE);
        assert_eq!((dense_get(&h[HDR..], 7), dense_get(&h[HDR..], 100)), (33, 32));
        // The last register straddles no byte past the end.
        assert!(dense_set(&mut h[HDR..], REGISTERS - 1, 51));
        assert_eq!(dense_get(&h[HDR..], REGISTERS - 1), 51);
        assert_eq!(dense_get(&h[HDR..], REGISTERS - 2), 0);
    }

    #[test]
    fn hll_pfcount_caches_and_logs_the_refresh() {
        use crate::cmd::{exec, lookup, OwnedArgs, Rng};
        use crate::protocol::reply::Reply;
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        let run = |ks: &mut Keyspace, parts: &[&str]| {
            let a = OwnedArgs::from_slices(parts);
            let (_, def) = lookup(parts[0].as_bytes()).unwrap();
            let (mut out, mut rng) = (Vec::new(), Rng::new(1));
            exec(def, &mut Ctx::new(ks, 0, 0, Reply::new(&mut out, false), &mut rng), &a.args());
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(run(&mut ks, &["PFADD", "h", "a", "b", "c"]), ":1\r\n");
        assert_eq!(run(&mut ks, &["PFCOUNT", "h"]), ":3\r\n");
        assert_eq!(run(&mut ks, &["PFCOUNT", "h"]), ":3\r\n");
        assert_eq!(run(&mut ks, &["SET", "s", "HYLL"]), "+OK\r\n");
        assert_eq!(run(&mut ks, &["PFCOUNT", "s"]), format!("-{NOT_HLL}\r\n"));
        assert!(!ks.effects.take_replaced());
        let mut log = Vec::new();
        ks.effects.drain_each(|_, b| log.push(b.len()));
        // PFADD, the one cache refresh, SET.
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn hll_rejects_corrupt_values() {
        assert!(!valid_hll(b"HYLL"));
        assert!(!valid_hll(b"HYLL\x00xxxxxxxxxxxxxxxxxxx"));
        let mut bad = new_hll();
        bad.truncate(HDR + 1);
        assert!(hll_count(&bad).is_err());
        assert!(sparse_set(&mut bad, 5, 1).is_err());
        assert!(sparse_to_dense(&mut bad).is_err());
    }
}

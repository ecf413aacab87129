//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP, BITFIELD and BITFIELD_RO (Redis's bitops.c). Bit 0 is the most
//! significant bit of the first byte; writes zero-pad the string and keep
//! it `raw`, as Redis does. Semantics, reply types and error texts follow
//! Redis 7.0.

use super::flags::*;
use super::keyspec::*;
use super::string::{make_raw, str_len};
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::notify as ev;
use crate::keyspace::Value;
use crate::util::parse_i64;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::BITMAP).group(Group::Bitmap)
}

pub static COMMANDS: &[CommandDef] = &[
    c("setbit", 4, WRITE | DENYOOM, &[at(1, RW | ACCESS | UPDATE)], setbit).since("2.2.0").event(ev::STRING, "setbit"),
    c("getbit", 3, READONLY | FAST, &[at(1, RO | ACCESS)], getbit).since("2.2.0"),
    c("bitcount", -2, READONLY, &[at(1, RO | ACCESS)], bitcount).since("2.6.0"),
    c("bitpos", -3, READONLY, &[at(1, RO | ACCESS)], bitpos).since("2.8.7"),
    c("bitop", -4, WRITE | DENYOOM, &[at(2, OW | UPDATE), at(3, RO | ACCESS).range(-1, 1, 0)], bitop)
        .since("2.6.0")
        .store_event(ev::STRING, "set"),
    c("bitfield", -2, WRITE | DENYOOM, &[at(1, RW | ACCESS | UPDATE | VARIABLE_FLAGS)], bitfield)
        .since("3.2.0")
        .keys_fn(bitfield_keys)
        .event(ev::STRING, "setbit"),
    c("bitfield_ro", -2, READONLY | FAST, &[at(1, RO | ACCESS)], bitfield_ro).since("6.0.0"),
];

/// BITFIELD's key: only read while every operation is a well-formed GET
/// or OVERFLOW; a SET, an INCRBY or anything malformed counts as a write.
fn bitfield_keys(args: &Args) -> Vec<KeyRef> {
    let mut i = 2;
    let mut reads_only = true;
    while i < args.len() {
        let left = args.len() - i - 1;
        if args.is(i, "get") && left >= 2 {
            i += 3;
        } else if args.is(i, "overflow") && left >= 1 {
            i += 2;
        } else {
            reads_only = false;
            break;
        }
    }
    vec![KeyRef { pos: 1, flags: if reads_only { RO | ACCESS } else { RW | ACCESS | UPDATE } }]
}

/// Redis's getBitOffsetFromArgument: a bit offset (optionally `#N` times
/// `bits` for BITFIELD), limited so its byte fits in proto-max-bulk-len.
fn bit_offset(ctx: &Ctx, arg: &[u8], hash: bool, bits: u64) -> Result<u64, ()> {
    let (usehash, digits) = if hash && arg.len() > 1 && arg[0] == b'#' { (true, &arg[1..]) } else { (false, arg) };
    let mut off = parse_i64(digits).ok_or(())?;
    if usehash {
        off = off.checked_mul(bits as i64).ok_or(())?;
    }
    if off < 0 || (off >> 3) >= ctx.max_bulk_len {
        return Err(());
    }
    Ok(off as u64)
}

/// Look up (or create) the string at `key` for a bit write reaching bit
/// `maxbit`, zero-padded up to it, as raw. Replies WRONGTYPE and returns
/// None if it is not a string; else whether it grew (Redis's
/// lookupStringForBitCommand `dirty`: such a write is a change even when
/// the bits written equal the old ones). A created key is Some(false):
/// `set` has already counted it as a change.
fn string_for_bit_write(ctx: &mut Ctx, key: &[u8], maxbit: u64) -> Option<bool> {
    let now = ctx.now;
    let db = ctx.db;
    let need = (maxbit >> 3) as usize + 1;
    match ctx.ks.lookup(db, key, now) {
        None => {
            ctx.ks.set(db, key, Value::raw(vec![0u8; need]), 0);
            Some(false)
        }
        Some(e) => match make_raw(&mut e.value) {
            None => {
                ctx.out.error(err::WRONGTYPE);
                None
            }
            Some(data) => {
                let grow = data.len() < need;
                if grow {
                    data.resize(need, 0);
                }
                Some(grow)
            }
        },
    }
}

/// The raw string bytes of an entry known to be a raw string.
fn raw_bytes_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Option<&'a mut Vec<u8>> {
    let now = ctx.now;
    ctx.ks.lookup(ctx.db, key, now).and_then(|e| make_raw(&mut e.value))
}

/// SETBIT key offset value
fn setbit(ctx: &mut Ctx, args: &Args) {
    let Ok(off) = bit_offset(ctx, &args[2], false, 0) else {
        return ctx.out.error(err::NOT_INT_OR_RANGE_OFFSET);
    };
    let on = match parse_i64(&args[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return ctx.out.error("ERR bit is not an integer or out of range"),
    };
    let key = &args[1];
    let Some(grew) = string_for_bit_write(ctx, key, off) else { return };
    let Some(data) = raw_bytes_mut(ctx, key) else { return };
    let byte = (off >> 3) as usize;
    let bit = 7 - (off & 7) as u8;
    let old = (data[byte] >> bit) & 1;
    data[byte] = (data[byte] & !(1 << bit)) | (on << bit);
    // As in Redis 7: rewriting a bit with its own value is no change (a
    // WATCH on the key survives, nothing is logged).
    if grew || old != on {
        let db = ctx.db;
        ctx.ks.touch(db, key);
    }
    ctx.out.int(old as i64);
}

/// GETBIT key offset
fn getbit(ctx: &mut Ctx, args: &Args) {
    let Ok(off) = bit_offset(ctx, &args[2], false, 0) else {
        return ctx.out.error(err::NOT_INT_OR_RANGE_OFFSET);
    };
    let mut buf = [0u8; 24];
    match ctx.get_str(&args[1], &mut buf) {
        Err(e) => ctx.out.error(e.msg()),
        Ok(None) => ctx.out.int(0),
        Ok(Some(s)) => {
            let byte = (off >> 3) as usize;
            let bit = s.get(byte).map_or(0, |b| (b >> (7 - (off & 7))) & 1);
            ctx.out.int(bit as i64);
        }
    }
}

/// Parse an optional BYTE|BIT unit argument: Ok(true) for BIT.
fn bit_unit(arg: &[u8]) -> Result<bool, ()> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(())
    }
}

fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    n + chunks.remainder().iter().map(|b| b.count_ones() as u64).sum::<u64>()
}

/// Clamp a range of `totlen` units as BITCOUNT/BITPOS do; None when empty.
fn clamp_units(mut start: i64, mut end: i64, totlen: i64) -> Option<(i64, i64)> {
    if start < 0 {
        start = start.saturating_add(totlen);
    }
    if end < 0 {
        end = end.saturating_add(totlen);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    if start > end {
        None
    } else {
        Some((start, end))
    }
}

/// Count set bits of `s` in bit positions [a, b] (inclusive).
fn count_bits(s: &[u8], a: u64, b: u64) -> u64 {
    let (fa, fb) = ((a >> 3) as usize, (b >> 3) as usize);
    let mut n = popcount(&s[fa..=fb]);
    // Drop the bits of the edge bytes that are outside the range.
    let first_mask = !(0xffu16 >> (a & 7)) as u8; // bits before `a`
    let last_mask = ((1u16 << (7 - (b & 7))) - 1) as u8; // bits after `b`
    n -= (s[fa] & first_mask).count_ones() as u64;
    n -= (s[fb] & last_mask).count_ones() as u64;
    n
}

/// BITCOUNT key [start end [BYTE|BIT]]
fn bitcount(ctx: &mut Ctx, args: &Args) {
    let mut buf = [0u8; 24];
    let argc = args.len();
    let s = match ctx.get_str(&args[1], &mut buf) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(0),
        Ok(Some(s)) => s,
    };
    let n = if argc == 4 || argc == 5 {
        let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return ctx.out.error(err::NOT_INT);
        };
        // Redis 7.0 answers an empty negative range before it looks at the
        // unit argument (so even an invalid unit gives 0 there).
        if start < 0 && end < 0 && start > end {
            return ctx.out.int(0);
        }
        let isbit = if argc == 5 {
            match bit_unit(&args[4]) {
                Ok(b) => b,
                Err(()) => return ctx.out.error(err::SYNTAX),
            }
        } else {
            false
        };
        {
            let totlen = s.len() as i64 * if isbit { 8 } else { 1 };
            match clamp_units(start, end, totlen) {
                None => 0,
                Some((a, b)) if isbit => count_bits(s, a as u64, b as u64),
                Some((a, b)) => popcount(&s[a as usize..=b as usize]),
            }
        }
    } else if argc == 2 {
        popcount(s)
    } else {
        return ctx.out.error(err::SYNTAX);
    };
    ctx.out.int(n as i64);
}

/// First bit equal to `bit` in bit positions [a, b] of `s`.
fn find_bit(s: &[u8], bit: u8, a: u64, b: u64) -> Option<u64> {
    let skip = if bit == 1 { 0u8 } else { 0xff };
    let mut pos = a;
    while pos <= b {
        let byte = s[(pos >> 3) as usize];
        if pos & 7 == 0 && pos + 7 <= b && byte == skip {
            // Skip whole bytes (and then whole words) with no candidate.
            pos += 8;
            let wskip = if bit == 1 { 0u64 } else { u64::MAX };
            while pos + 63 <= b {
                let i = (pos >> 3) as usize;
                let mut w = [0u8; 8];
                w.copy_from_slice(&s[i..i + 8]);
                if u64::from_ne_bytes(w) != wskip {
                    break;
                }
                pos += 64;
            }
            continue;
        }
        if (byte >> (7 - (pos & 7))) & 1 == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
fn bitpos(ctx: &mut Ctx, args: &Args) {
    let bit = match parse_i64(&args[2]) {
        None => return ctx.out.error(err::NOT_INT),
        Some(b @ (0 | 1)) => b as u8,
        Some(_) => return ctx.out.error("ERR The bit argument must be 1 or 0."),
    };
    let argc = args.len();
    let mut buf = [0u8; 24];
    let s = match ctx.get_str(&args[1], &mut buf) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.int(if bit == 1 { -1 } else { 0 }),
        Ok(Some(s)) => s,
    };
    let len = s.len() as i64;
    let mut end_given = false;
    // The searched range in bits, inclusive.
    let range = if (4..=6).contains(&argc) {
        let Some(start) = parse_i64(&args[3]) else {
            return ctx.out.error(err::NOT_INT);
        };
        let mut isbit = false;
        if argc == 6 {
            match bit_unit(&args[5]) {
                Ok(b) => isbit = b,
                Err(()) => return ctx.out.error(err::SYNTAX),
            }
        }
        let end = if argc >= 5 {
            let Some(e) = parse_i64(&args[4]) else {
                return ctx.out.error(err::NOT_INT);
            };
            end_given = true;
            e
        } else if isbit {
            len * 8 + 7
        } else {
            len - 1
        };
        let totlen = if isbit { len * 8 } else { len };
        match clamp_units(start, end, totlen) {
            None => None,
            Some((a, b)) if isbit => Some((a as u64, b as u64)),
            Some((a, b)) => Some((a as u64 * 8, b as u64 * 8 + 7)),
        }
    } else if argc == 3 {
        if len == 0 {
            None
        } else {
            Some((0, len as u64 * 8 - 1))
        }
    } else {
        return ctx.out.error(err::SYNTAX);
    };
    let Some((a, b)) = range else {
        return ctx.out.int(-1);
    };
    let pos = match find_bit(s, bit, a, b) {
        Some(p) => p as i64,
        // No clear bit: the string is taken as zero-padded on the right,
        // unless the user gave an explicit end.
        None if bit == 0 && !end_given => (b + 1) as i64,
        None => -1,
    };
    ctx.out.int(pos);
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
fn bitop(ctx: &mut Ctx, args: &Args) {
    #[derive(PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = if args.is(1, "and") {
        Op::And
    } else if args.is(1, "or") {
        Op::Or
    } else if args.is(1, "xor") {
        Op::Xor
    } else if args.is(1, "not") {
        Op::Not
    } else {
        return ctx.out.error(err::SYNTAX);
    };
    if op == Op::Not && args.len() != 4 {
        return ctx.out.error("ERR BITOP NOT must be called with a single source key.");
    }
    let now = ctx.now;
    let db = ctx.db;
    // Check every source's type before computing anything.
    let mut maxlen = 0usize;
    for i in 3..args.len() {
        if let Some(e) = ctx.ks.lookup(db, &args[i], now) {
            match str_len(&e.value) {
                None => return ctx.out.error(err::WRONGTYPE),
                Some(n) => maxlen = maxlen.max(n),
            }
        }
    }
    let mut res: Vec<u8> = Vec::new();
    if maxlen > 0 {
        res = vec![0u8; maxlen];
        let mut buf = [0u8; 24];
        for i in 3..args.len() {
            let src: &[u8] = match ctx.ks.lookup(db, &args[i], now) {
                None => &[],
                Some(e) => e.value.str_bytes(&mut buf).unwrap_or(&[]),
            };
            let first = i == 3;
            for (j, r) in res.iter_mut().enumerate() {
                let b = src.get(j).copied().unwrap_or(0);
                *r = match op {
                    _ if first && op != Op::Not => b,
                    Op::Not => !b,
                    Op::And => *r & b,
                    Op::Or => *r | b,
                    Op::Xor => *r ^ b,
                };
            }
        }
    }
    let dest = &args[2];
    if maxlen > 0 {
        ctx.ks.set(db, dest, Value::raw(res), 0);
    } else {
        ctx.ks.delete(db, dest, now);
    }
    ctx.out.int(maxlen as i64);
}

/// Read `bits` bits at bit `off` of `s` (MSB first), zero beyond the end.
fn get_unsigned_bits(s: &[u8], off: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let o = off + i;
        let b = s.get((o >> 3) as usize).map_or(0, |byte| (byte >> (7 - (o & 7))) & 1);
        v = (v << 1) | b as u64;
    }
    v
}

fn get_signed_bits(s: &[u8], off: u64, bits: u32) -> i64 {
    let v = get_unsigned_bits(s, off, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// Write the low `bits` bits of `v` at bit `off`; `s` is long enough.
fn set_bits(s: &mut [u8], off: u64, bits: u32, v: u64) {
    for i in 0..bits as u64 {
        let bitval = ((v >> (bits as u64 - 1 - i)) & 1) as u8;
        let o = off + i;
        let byte = (o >> 3) as usize;
        let sh = 7 - (o & 7) as u8;
        s[byte] = (s[byte] & !(1 << sh)) | (bitval << sh);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum BfOp {
    Get,
    Set,
    Incrby,
}

struct BitfieldOp {
    op: BfOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// Apply an overflow policy: (new value, overflowed).
fn bf_overflow(sum: i128, signed: bool, bits: u32, ow: Overflow) -> (i128, bool) {
    let (min, max): (i128, i128) =
        if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
    if sum >= min && sum <= max {
        return (sum, false);
    }
    let v = match ow {
        Overflow::Sat => {
            if sum > max {
                max
            } else {
                min
            }
        }
        _ => {
            let m = sum.rem_euclid(1i128 << bits);
            if signed && m > max {
                m - (1i128 << bits)
            } else {
                m
            }
        }
    };
    (v, true)
}

fn bitfield_generic(ctx: &mut Ctx, args: &Args, readonly_cmd: bool) {
    const TYPE_ERR: &str =
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    let mut ops: Vec<BitfieldOp> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest_write: u64 = 0;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let op = if args.is(j, "get") && rem >= 2 {
            BfOp::Get
        } else if args.is(j, "set") && rem >= 3 {
            BfOp::Set
        } else if args.is(j, "incrby") && rem >= 3 {
            BfOp::Incrby
        } else if args.is(j, "overflow") && rem >= 1 {
            j += 1;
            overflow = if args.is(j, "wrap") {
                Overflow::Wrap
            } else if args.is(j, "sat") {
                Overflow::Sat
            } else if args.is(j, "fail") {
                Overflow::Fail
            } else {
                return ctx.out.error("ERR Invalid OVERFLOW type specified");
            };
            j += 1;
            continue;
        } else {
            return ctx.out.error(err::SYNTAX);
        };
        let t = &args[j + 1];
        let signed = match t.first() {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => return ctx.out.error(TYPE_ERR),
        };
        // Redis reads the width up to a NUL byte (C string).
        let width = &t[1..];
        let width = &width[..width.iter().position(|&b| b == 0).unwrap_or(width.len())];
        let bits = match parse_i64(width) {
            Some(b) if b >= 1 && b <= if signed { 64 } else { 63 } => b as u32,
            _ => return ctx.out.error(TYPE_ERR),
        };
        let Ok(offset) = bit_offset(ctx, &args[j + 2], true, bits as u64) else {
            return ctx.out.error(err::NOT_INT_OR_RANGE_OFFSET);
        };
        let mut value = 0;
        if op != BfOp::Get {
            readonly = false;
            highest_write = highest_write.max(offset + bits as u64 - 1);
            match parse_i64(&args[j + 3]) {
                Some(v) => value = v,
                None => return ctx.out.error(err::NOT_INT),
            }
        }
        ops.push(BitfieldOp { op, signed, bits, offset, value, overflow });
        j += if op == BfOp::Get { 3 } else { 4 };
    }
    let key = &args[1];
    if readonly {
        let mut buf = [0u8; 24];
        let s = match ctx.get_str(key, &mut buf) {
            Err(e) => return ctx.out.error(e.msg()),
            Ok(s) => s.unwrap_or(&[]),
        };
        let vals: Vec<i64> = ops
            .iter()
            .map(|o| {
                if o.signed {
                    get_signed_bits(s, o.offset, o.bits)
                } else {
                    get_unsigned_bits(s, o.offset, o.bits) as i64
                }
            })
            .collect();
        ctx.out.array(vals.len());
        for v in vals {
            ctx.out.int(v);
        }
        return;
    }
    if readonly_cmd {
        return ctx.out.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let Some(grew) = string_for_bit_write(ctx, key, highest_write) else { return };
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(ops.len());
    // As in Redis 7, only SET/INCRBY that change bits (or a grown string)
    // count as a change. Unlike Redis, a key created by writes that all
    // FAILed still counts (in `set`): it exists, so it must be logged.
    let mut changed = grew;
    {
        let Some(data) = raw_bytes_mut(ctx, key) else { return };
        for o in &ops {
            let old: i128 = if o.signed {
                get_signed_bits(data, o.offset, o.bits) as i128
            } else {
                get_unsigned_bits(data, o.offset, o.bits) as i128
            };
            if o.op == BfOp::Get {
                replies.push(Some(old as i64));
                continue;
            }
            let sum = match o.op {
                BfOp::Incrby => old + o.value as i128,
                // SET of an unsigned field takes the value as its u64 bits.
                _ if o.signed => o.value as i128,
                _ => o.value as u64 as i128,
            };
            let (new, ovf) = bf_overflow(sum, o.signed, o.bits, o.overflow);
            if ovf && o.overflow == Overflow::Fail {
                replies.push(None);
                continue;
            }
            set_bits(data, o.offset, o.bits, new as u64);
            changed |= new != old;
            replies.push(Some(if o.op == BfOp::Incrby { new as i64 } else { old as i64 }));
        }
    }
    if changed {
        let db = ctx.db;
        ctx.ks.touch(db, key);
    }
    ctx.out.array(replies.len());
    for r in replies {
        match r {
            Some(n) => ctx.out.int(n),
            None => ctx.out.null(),
        }
    }
}

/// BITFIELD key [GET type offset] [SET type offset value]
///   [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL] ...
fn bitfield(ctx: &mut Ctx, args: &Args) {
    bitfield_generic(ctx, args, false);
}

/// BITFIELD_RO key [GET type offset] ...
fn bitfield_ro(ctx: &mut Ctx, args: &Args) {
    bitfield_generic(ctx, args, true);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, encoding, run, run_at, NOW};
    use crate::keyspace::Keyspace;

    #[test]
    fn bits() {
        check(&[
            ("SETBIT k 7 1", ":0\r\n"),
            ("SETBIT k 7 0", ":1\r\n"),
            ("SETBIT k 7 2", "-ERR bit is not an integer or out of range\r\n"),
            ("SETBIT k 4294967296 1", "-ERR bit offset is not an integer or out of range\r\n"),
            ("SETBIT k -1 1", "-ERR bit offset is not an integer or out of range\r\n"),
            ("GETBIT k 4294967296", "-ERR bit offset is not an integer or out of range\r\n"),
            ("SET k foobar", "+OK\r\n"),
            ("BITCOUNT k", ":26\r\n"),
            ("BITCOUNT k 0 0", ":4\r\n"),
            ("BITCOUNT k 1 1", ":6\r\n"),
            ("BITCOUNT k 1 1 BYTE", ":6\r\n"),
            ("BITCOUNT k 5 30 BIT", ":17\r\n"),
            ("BITCOUNT k -1 -2", ":0\r\n"),
            ("BITCOUNT k 0", "-ERR syntax error\r\n"),
            ("BITCOUNT k 0 1 foo", "-ERR syntax error\r\n"),
            ("BITCOUNT nokey 0", ":0\r\n"),
            ("BITCOUNT k -9223372036854775808 9223372036854775807", ":26\r\n"),
            ("GETBIT k 1", ":1\r\n"),
            ("GETBIT k 100000", ":0\r\n"),
            ("SET z \u{ff}\u{f0}\0", "+OK\r\n"),
            ("SET p \0\0\u{1}", "+OK\r\n"),
            ("BITPOS p 1", ":23\r\n"),
            ("BITPOS p 0", ":0\r\n"),
            ("BITPOS p 2", "-ERR The bit argument must be 1 or 0.\r\n"),
            ("BITPOS nokey 1 0 1 foo", ":-1\r\n"),
            ("BITPOS nokey 0", ":0\r\n"),
            ("BITPOS p 1 1 1", ":-1\r\n"),
            ("BITPOS p 1 2", ":23\r\n"),
            ("BITPOS p 1 0 22 BIT", ":-1\r\n"),
            ("BITPOS p 1 7 23 BIT", ":23\r\n"),
            ("BITPOS p 1 2 1", ":-1\r\n"),
            ("BITPOS p 1 0 1 foo", "-ERR syntax error\r\n"),
            ("SET o \u{7f}", "+OK\r\n"),
        ]);
        let mut ks = Keyspace::new();
        run_at(&mut ks, NOW, &[b"SET", b"f", b"\xff\xff"]);
        assert_eq!(run(&mut ks, "BITPOS f 0"), ":16\r\n");
        assert_eq!(run(&mut ks, "BITPOS f 0 0"), ":16\r\n");
        assert_eq!(run(&mut ks, "BITPOS f 0 0 -1"), ":-1\r\n");
        assert_eq!(run(&mut ks, "BITPOS f 0 3 -1 BIT"), ":-1\r\n");
        assert_eq!(run(&mut ks, "BITPOS f 0 3 BIT"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(run(&mut ks, "BITPOS f 1 3 5 BIT"), ":3\r\n");
        run_at(&mut ks, NOW, &[b"SET", b"h", b"\xff\xf0\x00"]);
        assert_eq!(run(&mut ks, "BITPOS h 0"), ":12\r\n");
        assert_eq!(run(&mut ks, "BITPOS h 0 1 1"), ":12\r\n");
        assert_eq!(run(&mut ks, "BITPOS h 1 2 -1"), ":-1\r\n");
        assert_eq!(run(&mut ks, "BITPOS h 1 -1 -1"), ":-1\r\n");
        assert_eq!(run(&mut ks, "BITPOS h 0 0 0"), ":-1\r\n");
        run(&mut ks, "SETBIT b 100 1");
        assert_eq!(encoding(&mut ks, b"b"), "raw");
        assert_eq!(run(&mut ks, "STRLEN b"), ":13\r\n");
        assert_eq!(run(&mut ks, "BITPOS b 1"), ":100\r\n");
        assert_eq!(run(&mut ks, "BITCOUNT b"), ":1\r\n");
    }

    /// Redis 7 counts a SETBIT/BITFIELD write as a change (WATCH, AOF)
    /// only if it flips bits or creates or grows the string.
    #[test]
    fn bit_writes_that_change_nothing_do_not_touch() {
        let mut ks = Keyspace::new();
        run(&mut ks, "SET k a"); // 0x61
        let d = ks.dirty;
        assert_eq!(run(&mut ks, "SETBIT k 1 1"), ":1\r\n");
        assert_eq!(run(&mut ks, "SETBIT k 0 0"), ":0\r\n");
        assert_eq!(run(&mut ks, "BITFIELD k SET u8 0 97 INCRBY u4 0 0"), "*2\r\n:97\r\n:6\r\n");
        assert_eq!(run(&mut ks, "BITFIELD k OVERFLOW FAIL INCRBY u8 0 200"), "*1\r\n$-1\r\n");
        assert_eq!(ks.dirty, d);
        assert_eq!(run(&mut ks, "SETBIT k 0 1"), ":0\r\n");
        assert_eq!(ks.dirty, d + 1);
        // Growing the string is a change even if the bit written is 0.
        assert_eq!(run(&mut ks, "SETBIT k 15 0"), ":0\r\n");
        assert_eq!(ks.dirty, d + 2);
        assert_eq!(run(&mut ks, "BITFIELD k SET u8 16 0"), "*1\r\n:0\r\n");
        assert_eq!(ks.dirty, d + 3);
        assert_eq!(run(&mut ks, "BITFIELD k SET i8 0 -31"), "*1\r\n:-31\r\n");
        assert_eq!(ks.dirty, d + 3);
        // A key created by writes that all failed still counts (it exists).
        assert_eq!(run(&mut ks, "BITFIELD n OVERFLOW FAIL INCRBY u2 0 10"), "*1\r\n$-1\r\n");
        assert_eq!(ks.dirty, d + 4);
        assert_eq!(run(&mut ks, "SETBIT m 3 0"), ":0\r\n");
        assert_eq!(ks.dirty, d + 5);
    }

    #[test]
    fn bitop() {
        let mut ks = Keyspace::new();
        run(&mut ks, "SET a foobar");
        run(&mut ks, "SET b abcdef");
        assert_eq!(run(&mut ks, "BITOP AND d a b"), ":6\r\n");
        assert_eq!(run(&mut ks, "GET d"), "$6\r\n`bc`ab\r\n");
        assert_eq!(run(&mut ks, "BITOP OR d a b nokey"), ":6\r\n");
        assert_eq!(run(&mut ks, "GET d"), "$6\r\ngoofev\r\n");
        assert_eq!(run(&mut ks, "BITOP AND d a nokey"), ":6\r\n");
        assert_eq!(run(&mut ks, "GET d"), "$6\r\n\0\0\0\0\0\0\r\n");
        assert_eq!(run(&mut ks, "BITOP XOR d a a"), ":6\r\n");
        assert_eq!(run(&mut ks, "BITOP NOT d a b"), "-ERR BITOP NOT must be called with a single source key.\r\n");
        assert_eq!(run(&mut ks, "BITOP FOO d a"), "-ERR syntax error\r\n");
        run_at(&mut ks, NOW, &[b"SET", b"c", b"\x0f"]);
        assert_eq!(run(&mut ks, "BITOP NOT d c"), ":1\r\n");
        assert_eq!(run_at(&mut ks, NOW, &[b"GET", b"d"]), b"$1\r\n\xf0\r\n");
        assert_eq!(run(&mut ks, "BITOP OR d nokey nokey2"), ":0\r\n");
        assert_eq!(run(&mut ks, "GET d"), "$-1\r\n");
    }

    #[test]
    fn bitfield() {
        check(&[
            ("BITFIELD k SET i8 0 100 GET u4 0", "*2\r\n:0\r\n:6\r\n"),
            ("BITFIELD k INCRBY i8 0 100", "*1\r\n:-56\r\n"),
            ("BITFIELD k OVERFLOW SAT INCRBY i8 0 -100", "*1\r\n:-128\r\n"),
            ("BITFIELD k OVERFLOW FAIL INCRBY i8 0 -1 GET i8 0", "*2\r\n$-1\r\n:-128\r\n"),
            ("BITFIELD k OVERFLOW SAT SET u8 #1 -1 GET u8 8", "*2\r\n:0\r\n:255\r\n"),
            ("BITFIELD k SET u8 #1 -1 GET u8 8", "*2\r\n:255\r\n:255\r\n"),
            (
                "BITFIELD k INCRBY u2 100 1 INCRBY u2 100 1 INCRBY u2 100 1 INCRBY u2 100 1",
                "*4\r\n:1\r\n:2\r\n:3\r\n:0\r\n",
            ),
            (
                "BITFIELD k SET i64 0 -1 GET i64 0 GET u63 1",
                "*3\r\n:-9151595917793558528\r\n:-1\r\n:9223372036854775807\r\n",
            ),
            ("BITFIELD k OVERFLOW SAT INCRBY i64 0 -9223372036854775808", "*1\r\n:-9223372036854775808\r\n"),
            (
                "BITFIELD k get i65 0",
                "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n",
            ),
            (
                "BITFIELD k get u64 0",
                "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n",
            ),
            ("BITFIELD k overflow foo", "-ERR Invalid OVERFLOW type specified\r\n"),
            ("BITFIELD k get i8 -1", "-ERR bit offset is not an integer or out of range\r\n"),
            ("BITFIELD k get i8", "-ERR syntax error\r\n"),
            ("BITFIELD_RO k set i8 0 1", "-ERR BITFIELD_RO only supports the GET subcommand\r\n"),
            ("BITFIELD_RO nokey get i8 0 get u3 1000", "*2\r\n:0\r\n:0\r\n"),
            ("BITFIELD nokey", "*0\r\n"),
        ]);
    }
}

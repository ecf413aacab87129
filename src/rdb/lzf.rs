//! LZF, the compression Redis applies to strings longer than 20 bytes in
//! RDB files and DUMP payloads (`rdbcompression yes`). The format: a
//! control byte below 32 starts a run of ctrl + 1 literal bytes; any other
//! is a back reference of (ctrl >> 5) + 2 bytes (7 means: add the next
//! byte), at distance ((ctrl & 31) << 8 | next byte) + 1 behind the output.
//!
//! `compress` makes the choices Redis's compressor makes (a 2^16-slot
//! table of the last position of each 3-byte hash, greedy matches, the
//! two positions before a match's end hashed after it), so DUMP payloads
//! are byte-equal with redis-server's.

use std::cell::RefCell;

/// Slots of the match table (the hash keeps 16 bits).
const TABLE_BITS: u32 = 16;
/// Longest literal run, back reference and distance the format encodes.
const MAX_LIT: usize = 32;
const MAX_REF: usize = 256 + 8;
const MAX_OFF: usize = 1 << 13;

thread_local! {
    /// The table (positions; 0 is never a match candidate, so it means
    /// empty) and the slots one call set, cleared after it: a DUMP of many
    /// small strings must not pay for wiping 256 KiB each time.
    static TABLE: RefCell<(Vec<u32>, Vec<usize>)> = RefCell::new((vec![0; 1 << TABLE_BITS], Vec::new()));
}

/// Table slot of the 3 bytes ending in the low byte of `h`.
#[inline]
fn slot(h: u32) -> usize {
    ((h >> (24 - TABLE_BITS)).wrapping_sub(h.wrapping_mul(5)) & ((1 << TABLE_BITS) - 1)) as usize
}

/// Compress `input` into at most `limit` bytes, as Redis does for a string
/// it saves (`limit` = its length - 4); None if it does not fit.
pub fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    // Every write lands below `limit` + 3 (the checks below), this is slack.
    let mut out = vec![0u8; limit + 8];
    let len = TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let (table, touched) = &mut *t;
        let r = compress_into(input, &mut out, limit, table, touched);
        for &s in touched.iter() {
            table[s] = 0;
        }
        touched.clear();
        r
    })?;
    out.truncate(len);
    Some(out)
}

fn compress_into(inp: &[u8], out: &mut [u8], end: usize, table: &mut [u32], touched: &mut Vec<usize>) -> Option<usize> {
    let n = inp.len();
    let mut set = |table: &mut [u32], s: usize, pos: usize| {
        if table[s] == 0 {
            touched.push(s);
        }
        table[s] = pos as u32;
    };
    let first2 = |at: usize| (u32::from(inp[at]) << 8) | u32::from(*inp.get(at + 1).unwrap_or(&0));
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    let mut h = first2(0);
    while ip + 2 < n {
        h = (h << 8) | u32::from(inp[ip + 2]);
        let s = slot(h);
        let r = table[s] as usize;
        set(table, s, ip);
        let off = ip.wrapping_sub(r).wrapping_sub(1);
        if off < MAX_OFF && r > 0 && inp[r..r + 3] == inp[ip..ip + 3] {
            // The 3 bytes of the reference, and the next run's control byte.
            if op + 4 >= end && op - usize::from(lit == 0) + 4 >= end {
                return None;
            }
            // Close the literal run (dropping its control byte if empty).
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            op -= usize::from(lit == 0);
            let maxlen = (n - ip - 2).min(MAX_REF);
            let mut len = 2;
            // Up to 16 bytes are compared before the bound is (this can
            // run past it, within the input, as Redis's does).
            let mut stopped = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if inp[r + len] != inp[ip + len] {
                        stopped = true;
                        break;
                    }
                }
            }
            if !stopped {
                loop {
                    len += 1;
                    if !(len < maxlen && inp[r + len] == inp[ip + len]) {
                        break;
                    }
                }
            }
            // Encoded as its length - 2.
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 2;
            lit = 0;
            ip += len + 1;
            if ip + 2 >= n {
                break;
            }
            // The two positions before the match's end enter the table.
            ip -= 2;
            h = first2(ip);
            h = (h << 8) | u32::from(inp[ip + 2]);
            set(table, slot(h), ip);
            ip += 1;
            h = (h << 8) | u32::from(inp[ip + 2]);
            set(table, slot(h), ip);
            ip += 1;
        } else {
            if op >= end {
                return None;
            }
            push_literal(out, inp[ip], &mut op, &mut lit);
            ip += 1;
        }
    }
    // At most two bytes are left.
    if op + 3 > end {
        return None;
    }
    while ip < n {
        push_literal(out, inp[ip], &mut op, &mut lit);
        ip += 1;
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    Some(op)
}

/// Copy one literal byte to `out` at `op`; a run of MAX_LIT literals is
/// closed by writing its length in the byte kept before it, and the next
/// run's length byte is skipped over.
#[inline]
fn push_literal(out: &mut [u8], byte: u8, op: &mut usize, lit: &mut usize) {
    *lit += 1;
    out[*op] = byte;
    *op += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

/// Decompress `input`, which must expand to exactly `out_len` bytes;
/// None if it does not (truncated, a reference before the start, too long).
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    // A hostile out_len must not reserve memory the input cannot fill: one
    // input byte yields at most 88 output bytes (a 3-byte reference of 264).
    let mut out = Vec::with_capacity(out_len.min(input.len().saturating_mul(88)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n)?;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let len = len + 2;
            if back > out.len() || out.len() + len > out_len {
                return None;
            }
            // Byte by byte: a reference may overlap what it produces.
            let start = out.len() - back;
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_references() {
        // ctrl 0xe0 = len 7, next byte 0 -> 9 bytes, distance (0<<8|0)+1 = 1.
        assert_eq!(decompress(&[0, b'a', 0xe0, 0, 0], 10).as_deref(), Some(&b"aaaaaaaaaa"[..]));
        assert_eq!(decompress(&[2, b'a', b'b', b'c', 0x20, 2], 6).as_deref(), Some(&b"abcabc"[..]));
    }

    #[test]
    fn compression_round_trips() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut inputs: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec(),
            vec![0; 70_000],
            (0..300).map(|i| (i % 7) as u8).collect(),
        ];
        for _ in 0..300 {
            let n = rng.gen_range(1..3000);
            let alphabet = rng.gen_range(1..=256u32);
            inputs.push((0..n).map(|_| rng.gen_range(0..alphabet) as u8).collect());
        }
        let mut compressed = 0;
        for inp in &inputs {
            // Without a limit to meet (what fits no limit is None).
            if let Some(c) = compress(inp, inp.len() + 64) {
                assert_eq!(decompress(&c, inp.len()).as_deref(), Some(&inp[..]), "{} bytes", inp.len());
                compressed += usize::from(c.len() < inp.len());
            }
            // Redis's limit: 4 bytes smaller or nothing.
            if let Some(c) = compress(inp, inp.len().saturating_sub(4)) {
                assert!(c.len() <= inp.len() - 4);
                assert_eq!(decompress(&c, inp.len()).as_deref(), Some(&inp[..]));
            }
        }
        assert!(compressed > 10, "only {compressed} inputs got smaller");
        assert_eq!(compress(b"", 10), None);
        // Incompressible: nothing within the limit.
        let noise: Vec<u8> = (0..100).map(|_| rng.gen()).collect();
        assert_eq!(compress(&noise, 96), None);
    }

    #[test]
    fn hostile_inputs_are_refused() {
        assert_eq!(decompress(&[5, b'a'], 6), None); // truncated literal
        assert_eq!(decompress(&[0x20, 0], 3), None); // reference before the start
        assert_eq!(decompress(&[0, b'a'], 2), None); // too short
        assert_eq!(decompress(&[1, b'a', b'b'], 1), None); // too long
        assert_eq!(decompress(&[0, b'a', 0xe0], 100), None); // truncated reference
        assert!(decompress(&[0, b'a'], usize::MAX).is_none());
    }
}

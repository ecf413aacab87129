//! The packed blobs an RDB object may carry, byte for byte as Redis lays
//! them out: listpack (written and read), intset (written and read),
//! ziplist and zipmap (read only: older Redis versions wrote them).
//! Every reader checks every length against the blob, so a hostile blob
//! is an error, never a panic or an out-of-bounds read.

use std::borrow::Cow;

/// One element of a listpack or ziplist.
#[derive(Clone, Debug, PartialEq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Elem<'a> {
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        match self {
            Elem::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            Elem::Str(s) => Cow::Borrowed(s),
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Elem::Int(n) => Some(*n),
            Elem::Str(s) => canonical_i64(s),
        }
    }
}

/// `s` as an i64 if it is that number's canonical decimal form (what
/// Redis's listpack and intset store as integers).
pub fn canonical_i64(s: &[u8]) -> Option<i64> {
    let n = crate::util::parse_i64(s)?;
    let mut b = [0u8; 24];
    (crate::protocol::reply::fmt_i64(&mut b, n) == s).then_some(n)
}

// ---------------------------------------------------------------- listpack

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;

/// Builds a listpack.
pub struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for LpWriter {
    fn default() -> Self {
        LpWriter { buf: vec![0; LP_HEADER], count: 0 }
    }
}

fn backlen(out: &mut Vec<u8>, l: usize) {
    // The entry's length, 7 bits a byte, most significant first; every
    // byte but the first has bit 7 set (read backwards, it says "more").
    let l = l as u64;
    match l {
        0..=127 => out.push(l as u8),
        128..=16382 => out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]),
        16383..=2_097_150 => {
            out.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128])
        }
        2_097_151..=268_435_454 => out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
        _ => out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
    }
}

impl LpWriter {
    pub fn new() -> LpWriter {
        LpWriter::default()
    }

    /// Append a string; a canonical integer is stored as one, as Redis does.
    pub fn push(&mut self, s: &[u8]) {
        match canonical_i64(s) {
            Some(n) => self.push_int(n),
            None => {
                let start = self.buf.len();
                let n = s.len();
                if n < 64 {
                    self.buf.push(0x80 | n as u8);
                } else if n < 4096 {
                    self.buf.extend_from_slice(&[0xe0 | (n >> 8) as u8, n as u8]);
                } else {
                    self.buf.push(0xf0);
                    self.buf.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(s);
                let l = self.buf.len() - start;
                backlen(&mut self.buf, l);
                self.count += 1;
            }
        }
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        match v {
            0..=127 => self.buf.push(v as u8),
            -4096..=4095 => {
                let u = (v as u64) & 0x1fff;
                self.buf.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
            }
            -32768..=32767 => {
                self.buf.push(0xf1);
                self.buf.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8_388_608..=8_388_607 => {
                self.buf.push(0xf2);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            -2_147_483_648..=2_147_483_647 => {
                self.buf.push(0xf3);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                self.buf.push(0xf4);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let l = self.buf.len() - start;
        backlen(&mut self.buf, l);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn get<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The elements of a listpack, checked against its header and end byte.
pub fn listpack(blob: &[u8]) -> Option<Vec<Elem<'_>>> {
    let total = u32::from_le_bytes(get::<4>(blob, 0)?) as usize;
    if total != blob.len() || total < LP_HEADER + 1 || blob[total - 1] != LP_EOF {
        return None;
    }
    let declared = u16::from_le_bytes(get::<2>(blob, 4)?) as usize;
    let mut out = Vec::new();
    let mut at = LP_HEADER;
    loop {
        let b = *blob.get(at)?;
        if b == LP_EOF {
            break;
        }
        let (elem, len) = match b {
            0x00..=0x7f => (Elem::Int(b as i64), 1),
            0x80..=0xbf => {
                let n = (b & 0x3f) as usize;
                (Elem::Str(blob.get(at + 1..at + 1 + n)?), 1 + n)
            }
            0xc0..=0xdf => {
                let u = (((b & 0x1f) as i64) << 8) | *blob.get(at + 1)? as i64;
                (Elem::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
            }
            0xe0..=0xef => {
                let n = (((b & 0x0f) as usize) << 8) | *blob.get(at + 1)? as usize;
                (Elem::Str(blob.get(at + 2..at + 2 + n)?), 2 + n)
            }
            0xf0 => {
                let n = u32::from_le_bytes(get::<4>(blob, at + 1)?) as usize;
                (Elem::Str(blob.get(at + 5..(at + 5).checked_add(n)?)?), 5 + n)
            }
            0xf1 => (Elem::Int(i16::from_le_bytes(get::<2>(blob, at + 1)?) as i64), 3),
            0xf2 => {
                let [x, y, z] = get::<3>(blob, at + 1)?;
                (Elem::Int((i32::from_le_bytes([0, x, y, z]) >> 8) as i64), 4)
            }
            0xf3 => (Elem::Int(i32::from_le_bytes(get::<4>(blob, at + 1)?) as i64), 5),
            0xf4 => (Elem::Int(i64::from_le_bytes(get::<8>(blob, at + 1)?)), 9),
            _ => return None,
        };
        // The back-length must say the same length.
        let mut bl = Vec::with_capacity(5);
        backlen(&mut bl, len);
        let end = at.checked_add(len)?;
        if blob.get(end..end + bl.len())? != &bl[..] {
            return None;
        }
        at = end + bl.len();
        out.push(elem);
    }
    if at != total - 1 || (declared != 65535 && declared != out.len()) {
        return None;
    }
    Some(out)
}

// ----------------------------------------------------------------- ziplist

/// The elements of a ziplist (RDB versions before 10).
pub fn ziplist(blob: &[u8]) -> Option<Vec<Elem<'_>>> {
    let total = u32::from_le_bytes(get::<4>(blob, 0)?) as usize;
    if total != blob.len() || total < 11 || blob[total - 1] != 0xff {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 10;
    let mut prev_len = 0usize;
    loop {
        let start = at;
        let p = *blob.get(at)?;
        if p == 0xff {
            break;
        }
        let prevlen = if p < 254 {
            at += 1;
            p as usize
        } else if p == 254 {
            at += 5;
            u32::from_le_bytes(get::<4>(blob, start + 1)?) as usize
        } else {
            return None;
        };
        if prevlen != prev_len {
            return None;
        }
        let e = *blob.get(at)?;
        let (elem, next) = match e >> 6 {
            0 => {
                let n = (e & 0x3f) as usize;
                (Elem::Str(blob.get(at + 1..at + 1 + n)?), at + 1 + n)
            }
            1 => {
                let n = (((e & 0x3f) as usize) << 8) | *blob.get(at + 1)? as usize;
                (Elem::Str(blob.get(at + 2..at + 2 + n)?), at + 2 + n)
            }
            2 if e == 0x80 => {
                let n = u32::from_be_bytes(get::<4>(blob, at + 1)?) as usize;
                (Elem::Str(blob.get(at + 5..(at + 5).checked_add(n)?)?), at + 5 + n)
            }
            2 => return None,
            _ => match e {
                0xc0 => (Elem::Int(i16::from_le_bytes(get::<2>(blob, at + 1)?) as i64), at + 3),
                0xd0 => (Elem::Int(i32::from_le_bytes(get::<4>(blob, at + 1)?) as i64), at + 5),
                0xe0 => (Elem::Int(i64::from_le_bytes(get::<8>(blob, at + 1)?)), at + 9),
                0xf0 => {
                    let [x, y, z] = get::<3>(blob, at + 1)?;
                    (Elem::Int((i32::from_le_bytes([0, x, y, z]) >> 8) as i64), at + 4)
                }
                0xfe => (Elem::Int(*blob.get(at + 1)? as i8 as i64), at + 2),
                0xf1..=0xfd => (Elem::Int((e & 0x0f) as i64 - 1), at + 1),
                _ => return None,
            },
        };
        prev_len = next - start;
        at = next;
        out.push(elem);
    }
    (at == total - 1).then_some(out)
}

// ------------------------------------------------------------------ intset

/// An intset of these (sorted, distinct) values, at least `min_width`
/// bytes wide and wide enough for them all.
pub fn intset(values: &[i64], min_width: usize) -> Vec<u8> {
    let width: usize = if min_width <= 2 && values.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if min_width <= 4 && values.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// The values of an intset, which must be strictly ascending.
pub fn read_intset(blob: &[u8]) -> Option<Vec<i64>> {
    let width = u32::from_le_bytes(get::<4>(blob, 0)?) as usize;
    let n = u32::from_le_bytes(get::<4>(blob, 4)?) as usize;
    if !matches!(width, 2 | 4 | 8) || blob.len() != 8usize.checked_add(n.checked_mul(width)?)? {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for c in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes([c[0], c[1]]) as i64,
            4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        };
        if out.last().is_some_and(|&l| l >= v) {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

// ------------------------------------------------------------------ zipmap

/// The (field, value) pairs of a zipmap (hashes of RDB files before 2.6).
pub fn zipmap(blob: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    fn len(blob: &[u8], at: &mut usize) -> Option<Option<usize>> {
        let b = *blob.get(*at)?;
        *at += 1;
        Some(match b {
            0..=253 => Some(b as usize),
            254 => {
                let n = u32::from_le_bytes(get::<4>(blob, *at)?) as usize;
                *at += 4;
                Some(n)
            }
            _ => None,
        })
    }
    let mut at = 1;
    let mut out = Vec::new();
    while let Some(klen) = len(blob, &mut at)? {
        let key = blob.get(at..at.checked_add(klen)?)?;
        at += klen;
        let vlen = len(blob, &mut at)??;
        let free = *blob.get(at)? as usize;
        at += 1;
        let val = blob.get(at..at.checked_add(vlen)?)?;
        at += vlen + free;
        out.push((key, val));
    }
    (at == blob.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_matches_redis_bytes() {
        // HSET h f v a 1 b 300 on redis-server 7.0: the listpack of its DUMP.
        let mut w = LpWriter::new();
        for s in [&b"f"[..], b"v", b"a", b"1", b"b", b"300"] {
            w.push(s);
        }
        let lp = w.finish();
        assert_eq!(lp, b"\x18\x00\x00\x00\x06\x00\x81f\x02\x81v\x02\x81a\x02\x01\x01\x81b\x02\xc1,\x02\xff".to_vec());
        let back: Vec<Vec<u8>> = listpack(&lp).expect("valid").iter().map(|e| e.bytes().into_owned()).collect();
        assert_eq!(
            back,
            vec![b"f".to_vec(), b"v".to_vec(), b"a".to_vec(), b"1".to_vec(), b"b".to_vec(), b"300".to_vec()]
        );
    }

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 100];
        let items: Vec<Vec<u8>> = [
            &b""[..],
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"4096",
            b"-32768",
            b"32767",
            b"40000",
            b"-8388608",
            b"8388607",
            b"2147483647",
            b"-2147483648",
            b"2147483648",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"007",
            b"-0",
            b"+1",
            &mid,
            &long,
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let mut w = LpWriter::new();
        items.iter().for_each(|s| w.push(s));
        let lp = w.finish();
        let back: Vec<Vec<u8>> = listpack(&lp).expect("valid").iter().map(|e| e.bytes().into_owned()).collect();
        assert_eq!(back, items);
        // Every truncation and most single-byte changes are refused or decode; none panics.
        for cut in 0..lp.len() {
            assert!(listpack(&lp[..cut]).is_none());
        }
        for i in 0..lp.len().min(300) {
            let mut bad = lp.clone();
            bad[i] ^= 0x41;
            let _ = listpack(&bad);
        }
    }

    #[test]
    fn intset_round_trips() {
        for vals in [vec![-3, 1, 5], vec![1, 70000], vec![i64::MIN, 0, i64::MAX], vec![]] {
            let b = intset(&vals, 2);
            assert_eq!(read_intset(&b), Some(vals));
        }
        // Redis's bytes for SADD s 1 5 -3.
        assert_eq!(intset(&[-3, 1, 5], 2), b"\x02\0\0\0\x03\0\0\0\xfd\xff\x01\0\x05\0".to_vec());
        assert_eq!(read_intset(b"\x02\0\0\0\x02\0\0\0\x05\0\x01\0"), None); // not sorted
        assert_eq!(read_intset(b"\x02\0\0\0\xff\xff\xff\xff"), None); // huge count
    }

    #[test]
    fn ziplist_decodes() {
        // A ziplist of "a", 12, 300, "bb" built by hand.
        let mut z = vec![0u8; 10];
        let entries: &[&[u8]] = &[&[0, 0x01, b'a'], &[3, 0xfd], &[2, 0xc0, 0x2c, 0x01], &[4, 0x02, b'b', b'b']];
        for e in entries {
            z.extend_from_slice(e);
        }
        z.push(0xff);
        let n = z.len() as u32;
        z[..4].copy_from_slice(&n.to_le_bytes());
        z[8..10].copy_from_slice(&4u16.to_le_bytes());
        let got = ziplist(&z).expect("valid");
        assert_eq!(got, vec![Elem::Str(b"a"), Elem::Int(12), Elem::Int(300), Elem::Str(b"bb")]);
        for cut in 0..z.len() {
            assert!(ziplist(&z[..cut]).is_none());
        }
    }

    #[test]
    fn zipmap_decodes() {
        let z = b"\x02\x03foo\x03\x00bar\x01k\x01\x02v\x00\x00\xff";
        assert_eq!(zipmap(z), Some(vec![(&b"foo"[..], &b"bar"[..]), (&b"k"[..], &b"v"[..])]));
        assert_eq!(zipmap(&z[..5]), None);
    }
}

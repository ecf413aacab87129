//! Redis's RDB serialisation, pure (no I/O): the object encoding DUMP
//! produces and RESTORE accepts, and the `dump.rdb` file format that
//! `shardis-server import-rdb` reads.
//!
//! - `object`: one value to and from its RDB object encoding, as
//!   redis-server 7.0 writes it (every type and encoding Redis 7 emits, and
//!   the older ones it still reads), with length and string encodings.
//! - `payload`: a DUMP payload: object, 2-byte RDB version, CRC-64.
//! - `file`: the records of an RDB file (header, aux fields, SELECTDB,
//!   expiries, keys, EOF and checksum).
//! - `pack`: listpack, intset, ziplist, zipmap blobs; `lzf` the string
//!   decompression; `crc64` the checksum.
//!
//! Decoding never trusts a length: every read is checked against the
//! bytes present and nothing is reserved beyond what they could hold, so
//! hostile input is an `Error` (with the offset where it went wrong),
//! never a panic or a huge allocation.

pub mod crc64;
pub mod file;
pub mod lzf;
pub mod object;
pub mod pack;
pub mod payload;

/// The RDB version redis-server 7.0 writes (and the highest it reads).
pub const RDB_VERSION: u16 = 10;
/// The highest version shardis reads (Redis 7.2's, for its extra types).
pub const RDB_VERSION_READ: u16 = 11;

/// A decoding failure: what and where (offset into the input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A cursor over input bytes; `base` is the offset of `buf[0]` in the
/// whole input, for error messages.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// A length field: a length, or the tag of a specially encoded string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    Len(u64),
    Enc(u8),
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, base: 0 }
    }

    pub fn with_base(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Offset of the next byte in the whole input.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn err<T>(&self, what: &'static str) -> Result<T> {
        Err(Error { offset: self.offset(), what })
    }

    pub fn u8(&mut self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("truncated"),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return self.err("truncated");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A length field (00, 01, 10 00000000, 10 00000001 forms) or a string
    /// encoding tag (11).
    pub fn len_or_enc(&mut self) -> Result<Len> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Len((b & 0x3f) as u64),
            1 => Len::Len((((b & 0x3f) as u64) << 8) | self.u8()? as u64),
            2 => match b {
                0x80 => Len::Len(u32::from_be_bytes(self.array()?) as u64),
                0x81 => Len::Len(u64::from_be_bytes(self.array()?)),
                _ => return self.err("bad length encoding"),
            },
            _ => Len::Enc(b & 0x3f),
        })
    }

    pub fn length(&mut self) -> Result<u64> {
        match self.len_or_enc()? {
            Len::Len(n) => Ok(n),
            Len::Enc(_) => self.err("encoded string where a length belongs"),
        }
    }

    /// A count of items each taking at least `min_bytes`: refused when the
    /// input cannot hold that many, so no loop or reservation trusts it.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.length()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.remaining() => Ok(n),
            _ => self.err("length beyond the input"),
        }
    }

    /// A string (raw, integer-encoded or LZF-compressed).
    pub fn string(&mut self) -> Result<std::borrow::Cow<'a, [u8]>> {
        use std::borrow::Cow;
        match self.len_or_enc()? {
            Len::Len(n) => {
                let n = usize::try_from(n).or_else(|_| self.err("truncated"))?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            Len::Enc(0) => Ok(Cow::Owned((self.u8()? as i8).to_string().into_bytes())),
            Len::Enc(1) => Ok(Cow::Owned(i16::from_le_bytes(self.array()?).to_string().into_bytes())),
            Len::Enc(2) => Ok(Cow::Owned(i32::from_le_bytes(self.array()?).to_string().into_bytes())),
            Len::Enc(3) => {
                let at = self.offset();
                let clen = self.length()?;
                let ulen = self.length()?;
                let clen = usize::try_from(clen).or_else(|_| self.err("truncated"))?;
                let ulen = usize::try_from(ulen).or_else(|_| self.err("bad compressed string"))?;
                let data = self.take(clen)?;
                match lzf::decompress(data, ulen) {
                    Some(v) => Ok(Cow::Owned(v)),
                    None => Err(Error { offset: at, what: "bad compressed string" }),
                }
            }
            Len::Enc(_) => self.err("unknown string encoding"),
        }
    }

    /// A double as the old ZSET type stores it: a length byte, then
    /// that many ASCII characters (253 nan, 254 inf, 255 -inf).
    pub fn ascii_double(&mut self) -> Result<f64> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                match std::str::from_utf8(s).ok().and_then(|s| s.parse::<f64>().ok()) {
                    Some(d) => Ok(d),
                    None => self.err("bad double"),
                }
            }
        }
    }

    pub fn binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

// ------------------------------------------------------------------ writing

/// Append a length field.
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An integer as Redis's rdbEncodeInteger writes it, if it fits 32 bits.
fn put_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[0xc0, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xc1);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xc2);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Append a string as rdbSaveRawString does with `rdbcompression yes`: a
/// canonical integer of at most 11 characters that fits 32 bits
/// integer-encoded; over 20 bytes LZF-compressed when that saves at least
/// 4 bytes; else length and bytes.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(v) = pack::canonical_i64(s) {
            if put_int_encoded(out, v) {
                return;
            }
        }
    }
    if s.len() > 20 {
        if let Some(c) = lzf::compress(s, s.len() - 4) {
            out.push(0xc3);
            put_len(out, c.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Append an integer string value as rdbSaveLongLongAsStringObject does.
pub fn put_int_string(out: &mut Vec<u8>, v: i64) {
    if !put_int_encoded(out, v) {
        let s = v.to_string();
        put_len(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for n in [0u64, 1, 63, 64, 16383, 16384, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX] {
            let mut b = Vec::new();
            put_len(&mut b, n);
            let mut r = Reader::new(&b);
            assert_eq!(r.length(), Ok(n));
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn strings_round_trip() {
        for s in [
            &b""[..],
            b"0",
            b"-128",
            b"127",
            b"128",
            b"32767",
            b"-32769",
            b"2147483647",
            b"2147483648",
            b"12345678901",
            b"007",
            b"abc",
            &[b'z'; 20000],
        ] {
            let mut b = Vec::new();
            put_string(&mut b, s);
            let mut r = Reader::new(&b);
            assert_eq!(r.string().as_deref(), Ok(s));
        }
        let mut b = Vec::new();
        put_string(&mut b, b"-5");
        assert_eq!(b, [0xc0, 0xfb]);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut r = Reader::new(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.string().is_err());
        let mut r = Reader::new(&[0x80, 0x7f, 0xff, 0xff, 0xff, 1]);
        assert_eq!(r.count(1).map_err(|e| e.what), Err("length beyond the input"));
        // LZF claiming 4 GiB from 3 bytes.
        let mut r = Reader::new(&[0xc3, 0x03, 0x80, 0xff, 0xff, 0xff, 0xff, 0, b'a', 0xe0]);
        assert!(r.string().is_err());
    }
}

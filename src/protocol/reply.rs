//! RESP reply encoding straight into an output buffer.
//!
//! Commands write their replies through `Reply`, which knows the client's
//! protocol version (2 or 3) and picks the right wire form for nulls, maps,
//! sets, doubles and pushes. No intermediate frame objects are built, so the
//! hot path allocates nothing beyond growing the connection's buffer.

use std::io::Write;

pub struct Reply<'a> {
    pub out: &'a mut Vec<u8>,
    pub resp3: bool,
}

impl<'a> Reply<'a> {
    pub fn new(out: &'a mut Vec<u8>, resp3: bool) -> Self {
        Reply { out, resp3 }
    }

    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.out.push(b'+');
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// `msg` is the full error text including its code, e.g. "ERR syntax error".
    pub fn error(&mut self, msg: &str) {
        self.out.push(b'-');
        // An error line must not contain CR/LF; Redis replaces them with spaces.
        for &b in msg.as_bytes() {
            self.out.push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.out.extend_from_slice(b);
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn bulk_int(&mut self, n: i64) {
        let mut buf = itoa_buf();
        let s = fmt_i64(&mut buf, n);
        self.bulk(s);
    }

    /// A double as Redis replies it: bulk string in RESP2, `,` in RESP3.
    pub fn double(&mut self, d: f64) {
        let mut buf = itoa_buf();
        let general;
        let s: &[u8] = if crate::util::g17_is_integer(d) {
            fmt_i64(&mut buf, d as i64)
        } else {
            general = crate::util::fmt_double_reply(d);
            general.as_bytes()
        };
        if self.resp3 {
            self.out.push(b',');
            self.out.extend_from_slice(s);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }

    /// The null of a missing value (`$-1` in RESP2).
    pub fn null(&mut self) {
        if self.resp3 {
            self.out.extend_from_slice(b"_\r\n");
        } else {
            self.out.extend_from_slice(b"$-1\r\n");
        }
    }

    /// The null of a missing array (`*-1` in RESP2), e.g. EXEC aborted by WATCH.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.out.extend_from_slice(b"_\r\n");
        } else {
            self.out.extend_from_slice(b"*-1\r\n");
        }
    }

    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat array of 2n in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// Out-of-band push (pub/sub messages): `>` in RESP3, array in RESP2.
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A verbatim string (INFO, CLIENT LIST in RESP3); bulk in RESP2.
    pub fn verbatim(&mut self, s: &[u8]) {
        if self.resp3 {
            self.header(b'=', s.len() as i64 + 4);
            self.out.extend_from_slice(b"txt:");
            self.out.extend_from_slice(s);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }

    /// Bytes already encoded in the right protocol (forwarded replies).
    pub fn raw(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.out.push(kind);
        let mut buf = itoa_buf();
        self.out.extend_from_slice(fmt_i64(&mut buf, n));
        self.out.extend_from_slice(b"\r\n");
    }
}

fn itoa_buf() -> [u8; 24] {
    [0u8; 24]
}

/// Format an i64 into a stack buffer without allocation.
pub fn fmt_i64(buf: &mut [u8; 24], n: i64) -> &[u8] {
    let start = buf.len() - fmt_u64(buf, n.unsigned_abs()).len();
    if n < 0 {
        buf[start - 1] = b'-';
        return &buf[start - 1..];
    }
    &buf[start..]
}

/// Format a u64 into the end of a stack buffer without allocation.
pub fn fmt_u64(buf: &mut [u8; 24], mut v: u64) -> &[u8] {
    // Small numbers dominate (lengths, counts).
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Append the decimal form of `n` to `out`.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa_buf();
    out.extend_from_slice(fmt_i64(&mut buf, n));
}

/// Encode a command as a RESP multibulk array (used to forward commands).
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    encode_array(out, args.iter().map(|a| a.as_ref()), args.len());
}

/// A RESP array of `n` bulk strings from an iterator (no temporary slice).
pub fn encode_array<'a>(out: &mut Vec<u8>, parts: impl Iterator<Item = &'a [u8]>, n: usize) {
    out.push(b'*');
    push_i64(out, n as i64);
    out.extend_from_slice(b"\r\n");
    for a in parts {
        out.push(b'$');
        push_i64(out, a.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Used for rare, formatted error messages.
pub fn error_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments) {
    out.push(b'-');
    let _ = out.write_fmt(args);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp2_and_resp3_forms() {
        let mut v = Vec::new();
        Reply::new(&mut v, false).null();
        Reply::new(&mut v, true).null();
        Reply::new(&mut v, false).map(2);
        Reply::new(&mut v, true).map(2);
        Reply::new(&mut v, false).int(-42);
        assert_eq!(v, b"$-1\r\n_\r\n*4\r\n%2\r\n:-42\r\n");
    }

    #[test]
    fn i64_formatting() {
        let mut b = [0u8; 24];
        assert_eq!(fmt_i64(&mut b, i64::MIN), b"-9223372036854775808");
        assert_eq!(fmt_i64(&mut b, 0), b"0");
        assert_eq!(fmt_i64(&mut b, -7), b"-7");
        assert_eq!(fmt_u64(&mut b, u64::MAX), b"18446744073709551615");
    }
}

//! RESP on the client side: encoding requests and finding where a reply
//! ends. The load generator only needs to count replies and spot errors,
//! so replies are scanned, never materialised.

/// Append `n` in decimal.
fn push_uint(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Append one request as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_uint(out, args.len());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        push_uint(out, a.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A complete reply at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub len: usize,
    /// A top-level error reply (`-ERR ...`).
    pub error: bool,
}

/// Find the first complete reply in `buf`: `Ok(None)` if more bytes are
/// needed, `Err` if the stream is not RESP (the run cannot continue).
pub fn scan_reply(buf: &[u8]) -> Result<Option<Reply>, String> {
    Ok(scan_at(buf, 0, 0)?.map(|end| Reply { len: end, error: buf[0] == b'-' }))
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    Some(from + cr)
}

fn header_int(buf: &[u8], from: usize, to: usize) -> Result<i64, String> {
    std::str::from_utf8(&buf[from..to])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length in reply header {:?}", String::from_utf8_lossy(&buf[from - 1..to])))
}

/// End offset of the value starting at `pos`, RESP2 and RESP3 types alike.
fn scan_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, String> {
    if depth > 64 {
        return Err("reply nested deeper than 64 levels".into());
    }
    let Some(&tag) = buf.get(pos) else { return Ok(None) };
    let Some(eol) = line_end(buf, pos + 1) else { return Ok(None) };
    let after = eol + 2;
    match tag {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after)),
        b'$' | b'=' | b'!' => {
            let n = header_int(buf, pos + 1, eol)?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            Ok((end <= buf.len()).then_some(end))
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = header_int(buf, pos + 1, eol)?;
            let items = if tag == b'%' { n.max(0) * 2 } else { n.max(0) };
            let mut p = after;
            for _ in 0..items {
                match scan_at(buf, p, depth + 1)? {
                    Some(end) => p = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(p))
        }
        other => Err(format!("unexpected reply type byte {:?}", other as char)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_bulk_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"0123456789"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n");
    }

    #[test]
    fn scans_each_reply_type_and_waits_for_the_rest() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR wrong\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$3\r\nabc\r\n",
            b"$0\r\n\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"*-1\r\n",
            b"%1\r\n+k\r\n+v\r\n",
        ];
        for &c in cases {
            let r = scan_reply(c).expect("valid").expect("complete");
            assert_eq!(r.len, c.len(), "{:?}", String::from_utf8_lossy(c));
            assert_eq!(r.error, c[0] == b'-');
            for cut in 0..c.len() {
                assert_eq!(scan_reply(&c[..cut]), Ok(None), "prefix {cut} of {:?}", String::from_utf8_lossy(c));
            }
        }
        // Two replies back to back: only the first is consumed.
        assert_eq!(scan_reply(b"+OK\r\n$1\r\nx\r\n"), Ok(Some(Reply { len: 5, error: false })));
        assert!(scan_reply(b"?x\r\n").is_err());
        assert!(scan_reply(b"$x\r\n").is_err());
    }
}

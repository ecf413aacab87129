//! RESP request parsing over a byte buffer, without allocation.
//!
//! A request is either a multibulk array (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or
//! an inline line (`GET k\r\n`, as telnet and redis-benchmark's PING_INLINE
//! send). Parsing yields argument ranges into the caller's buffer; the caller
//! owns the buffer and consumes `consumed` bytes once it is done with them.
//! `Incomplete` is a normal outcome (more bytes are needed), not an error.

use std::ops::Range;

/// Longest `*N` / `$N` header line and longest inline request, as in Redis.
pub const MAX_INLINE: usize = 64 * 1024;
/// Largest element count of one multibulk request, as in Redis.
pub const MAX_MULTIBULK: i64 = 1024 * 1024;

/// Limits that can change at run time (`CONFIG SET proto-max-bulk-len`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_len: i64,
    /// Before AUTH, Redis accepts only small requests (10 elements, 16 KiB
    /// bulks), so an unauthenticated peer cannot make it buffer much.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk_len: 512 * 1024 * 1024, unauthenticated: false }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    /// One request parsed: its arguments are in `args`, it used `consumed` bytes.
    /// An empty `args` is a blank inline line, which Redis silently skips.
    Done { consumed: usize },
    /// More bytes are needed; at least `need` bytes in total if known, else 0.
    Incomplete { need: usize },
    /// The stream cannot be parsed; reply with the error, then close.
    Error(ProtoError),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ProtoError {
    Static(&'static str),
    ExpectedDollar(u8),
}

impl ProtoError {
    /// The error line (without '-' and CRLF) Redis sends before closing.
    pub fn message(&self) -> String {
        match self {
            ProtoError::Static(s) => s.to_string(),
            ProtoError::ExpectedDollar(b) => {
                format!("ERR Protocol error: expected '$', got '{}'", *b as char)
            }
        }
    }
}

/// How far parsing of a request that has not fully arrived got, so that the
/// next read goes on from there (as Redis keeps `multibulklen`/`bulklen` in
/// the client): a `*1048576` request arriving over thousands of reads would
/// otherwise be scanned from its start on each of them. Offsets are from the
/// request's first byte, so the caller may move the unparsed tail of its
/// buffer between reads. Only for the request at the start of the buffer it
/// was made for; fresh (`default`) for anything else.
#[derive(Debug, Default)]
pub struct Resume {
    at: Progress,
    /// Argument ranges of the elements already parsed.
    args: Vec<Range<usize>>,
}

impl Resume {
    /// A request is partly parsed.
    pub fn in_progress(&self) -> bool {
        self.at != Progress::default()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// Elements the multibulk header announced (0: header not parsed yet).
    count: usize,
    /// Where the next element's `$` header starts.
    next: usize,
    /// A search for the end of the current line found none before here.
    scanned: usize,
}

/// Parse one request from the start of `buf`, pushing argument byte ranges
/// (relative to `buf`) into `args`, which is cleared first.
pub fn parse_request(buf: &mut [u8], limits: &Limits, args: &mut Vec<Range<usize>>) -> ParseOutcome {
    args.clear();
    parse_from(buf, limits, args, &mut Progress::default())
}

/// `parse_request` for a connection's buffer: carries on where `resume`
/// says the previous call stopped, and keeps its place in it when more
/// bytes are needed.
pub fn parse_request_resume(
    buf: &mut [u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
    resume: &mut Resume,
) -> ParseOutcome {
    if resume.at.count > 0 {
        std::mem::swap(args, &mut resume.args);
    } else {
        args.clear();
    }
    let r = parse_from(buf, limits, args, &mut resume.at);
    match r {
        ParseOutcome::Incomplete { .. } if resume.at.count > 0 => std::mem::swap(args, &mut resume.args),
        ParseOutcome::Incomplete { .. } => {}
        _ => resume.at = Progress::default(),
    }
    r
}

fn parse_from(buf: &mut [u8], limits: &Limits, args: &mut Vec<Range<usize>>, at: &mut Progress) -> ParseOutcome {
    if buf.is_empty() {
        return ParseOutcome::Incomplete { need: 0 };
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits, args, at)
    } else {
        parse_inline(buf, args, at)
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes the line searches looked at (tests bound the parser's work).
    static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn note_scanned(_n: usize) {
    #[cfg(test)]
    SCANNED.with(|c| c.set(c.get() + _n));
}

/// The next CRLF at or after `from`, looking only past `at.scanned` (which
/// it advances when there is none yet).
fn find_crlf(buf: &[u8], from: usize, at: &mut Progress) -> Option<usize> {
    let from = from.max(at.scanned);
    let hay = buf.get(from..)?;
    let mut i = 0;
    // Lines are short; memchr-like scanning for '\r' is the hot loop here.
    while let Some(p) = hay[i..].iter().position(|&b| b == b'\r') {
        let at_cr = i + p;
        if at_cr + 1 < hay.len() {
            if hay[at_cr + 1] == b'\n' {
                note_scanned(at_cr + 2);
                at.scanned = 0;
                return Some(from + at_cr);
            }
            i = at_cr + 1;
        } else {
            break;
        }
    }
    note_scanned(hay.len());
    // A '\r' as the last byte may yet be followed by its '\n'.
    at.scanned = buf.len().saturating_sub(1).max(from);
    None
}

/// Parse a decimal integer header as Redis's string2ll does (no '+', no spaces).
fn parse_header_int(s: &[u8]) -> Option<i64> {
    crate::util::parse_i64(s)
}

/// `$<1 to 4 digits, no leading zero>\r\n` at `pos`: (length, where the
/// bulk starts); None for any other form (or not all there yet).
#[inline]
fn short_bulk_header(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut n = 0usize;
    let mut i = pos + 1;
    while i < buf.len() && i < pos + 5 && buf[i].is_ascii_digit() {
        n = n * 10 + (buf[i] - b'0') as usize;
        i += 1;
    }
    let digits = i - pos - 1;
    if digits == 0 || (digits > 1 && buf[pos + 1] == b'0') {
        return None;
    }
    let crlf = buf.get(i) == Some(&b'\r') && buf.get(i + 1) == Some(&b'\n');
    note_scanned(i + 2 - pos);
    crlf.then_some((n, i + 2))
}

fn parse_multibulk(buf: &[u8], limits: &Limits, args: &mut Vec<Range<usize>>, at: &mut Progress) -> ParseOutcome {
    if at.count == 0 {
        let Some(eol) = find_crlf(buf, 1, at) else {
            if buf.len() > MAX_INLINE {
                return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big mbulk count string"));
            }
            return ParseOutcome::Incomplete { need: 0 };
        };
        if eol > MAX_INLINE {
            return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big mbulk count string"));
        }
        match parse_header_int(&buf[1..eol]) {
            Some(n) if limits.unauthenticated && n > 10 => {
                return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: unauthenticated multibulk length"))
            }
            Some(n) if n <= 0 => return ParseOutcome::Done { consumed: eol + 2 },
            Some(n) if n <= MAX_MULTIBULK => at.count = n as usize,
            _ => return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: invalid multibulk length")),
        }
        at.next = eol + 2;
    }
    while args.len() < at.count {
        let pos = at.next;
        if pos >= buf.len() {
            return ParseOutcome::Incomplete { need: 0 };
        }
        if buf[pos] != b'$' {
            return ParseOutcome::Error(ProtoError::ExpectedDollar(buf[pos]));
        }
        // Nearly every bulk header is `$` and a few digits: read them in
        // the one pass (a quarter of parsing a small request went to
        // finding the CRLF, then reading the digits again). Anything else
        // takes the general way below, which has every error.
        if let Some((len, start)) = short_bulk_header(buf, pos) {
            if len <= limits.max_bulk_len as usize && !(limits.unauthenticated && len > 16384) {
                let end = start + len;
                at.scanned = 0;
                if end + 2 > buf.len() {
                    return ParseOutcome::Incomplete { need: end + 2 };
                }
                args.push(start..end);
                at.next = end + 2;
                continue;
            }
        }
        let Some(eol) = find_crlf(buf, pos + 1, at) else {
            if buf.len() - pos > MAX_INLINE {
                return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big bulk count string"));
            }
            return ParseOutcome::Incomplete { need: 0 };
        };
        if eol - pos > MAX_INLINE {
            return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big bulk count string"));
        }
        let len = match parse_header_int(&buf[pos + 1..eol]) {
            Some(n) if limits.unauthenticated && n > 16384 => {
                return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: unauthenticated bulk length"))
            }
            Some(n) if n >= 0 && n <= limits.max_bulk_len => n as usize,
            _ => return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: invalid bulk length")),
        };
        let start = eol + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            // Tell the caller how much to wait for, so a big value is not
            // re-scanned on every read.
            return ParseOutcome::Incomplete { need: end + 2 };
        }
        // Redis does not check the trailing CRLF of a bulk; it skips 2 bytes.
        args.push(start..end);
        at.next = end + 2;
    }
    ParseOutcome::Done { consumed: at.next }
}

fn parse_inline(buf: &mut [u8], args: &mut Vec<Range<usize>>, at: &mut Progress) -> ParseOutcome {
    let from = at.scanned.min(buf.len());
    let found = buf[from..].iter().position(|&b| b == b'\n');
    note_scanned(found.map_or(buf.len() - from, |i| i + 1));
    let Some(nl) = found.map(|i| from + i) else {
        if buf.len() > MAX_INLINE {
            return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big inline request"));
        }
        at.scanned = buf.len();
        return ParseOutcome::Incomplete { need: 0 };
    };
    if nl > MAX_INLINE {
        return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: too big inline request"));
    }
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    // Redis splits inline lines as C strings: a NUL ends the line.
    if let Some(z) = buf[..end].iter().position(|&b| b == 0) {
        end = z;
    }
    if !split_inline(&mut buf[..end], args) {
        args.clear();
        return ParseOutcome::Error(ProtoError::Static("ERR Protocol error: unbalanced quotes in request"));
    }
    ParseOutcome::Done { consumed: nl + 1 }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Split an inline line into arguments with the quoting rules of Redis's
/// sdssplitargs. Unescaped text is never longer than its source, so quoted
/// arguments are unescaped in place and still returned as ranges.
fn split_inline(line: &mut [u8], args: &mut Vec<Range<usize>>) -> bool {
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start = i;
        let mut w = i; // write cursor for unescaped bytes
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                if line[i] == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(line[i + 2]), hex_val(line[i + 3])) {
                        line[w] = h * 16 + l;
                        w += 1;
                        i += 4;
                        continue;
                    }
                }
                if line[i] == b'\\' && i + 1 < n {
                    let c = match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    };
                    line[w] = c;
                    w += 1;
                    i += 2;
                    continue;
                }
                if line[i] == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                }
                line[w] = line[i];
                w += 1;
                i += 1;
            } else if in_sq {
                if i >= n {
                    return false;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    line[w] = b'\'';
                    w += 1;
                    i += 2;
                    continue;
                }
                if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                }
                line[w] = line[i];
                w += 1;
                i += 1;
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' if w == start => in_dq = true,
                    b'\'' if w == start => in_sq = true,
                    c => {
                        line[w] = c;
                        w += 1;
                    }
                }
                i += 1;
            }
        }
        args.push(start..w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let mut owned = buf.to_vec();
        let mut buf: &mut [u8] = &mut owned;
        let mut out = Vec::new();
        let mut args = Vec::new();
        let limits = Limits::default();
        loop {
            match parse_request(buf, &limits, &mut args) {
                ParseOutcome::Done { consumed } => {
                    if !args.is_empty() {
                        out.push(args.iter().map(|r| buf[r.clone()].to_vec()).collect());
                    }
                    buf = &mut buf[consumed..];
                }
                ParseOutcome::Incomplete { .. } => return Ok(out),
                ParseOutcome::Error(e) => return Err(e.message()),
            }
        }
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nSET a 'b c'\r\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(cmds[1], vec![b"PING".to_vec()]);
        assert_eq!(cmds[2], vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()]);
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(parse_all(b"*99999999\r\n").unwrap_err(), ("ERR Protocol error: invalid multibulk length"));
        assert_eq!(parse_all(b"*1\r\n$999999999999\r\n").unwrap_err(), ("ERR Protocol error: invalid bulk length"));
        assert_eq!(parse_all(b"*1\r\nx").unwrap_err(), ("ERR Protocol error: expected '$', got 'x'"));
        assert_eq!(parse_all(b"set \"a b\r\n").unwrap_err(), ("ERR Protocol error: unbalanced quotes in request"));
        assert_eq!(parse_all(b"*-1\r\n").unwrap().len(), 0);
    }

    #[test]
    fn incomplete_reports_need() {
        let mut args = Vec::new();
        let r = parse_request(&mut b"*1\r\n$10\r\nabc".to_vec(), &Limits::default(), &mut args);
        assert_eq!(r, ParseOutcome::Incomplete { need: 9 + 10 + 2 });
    }

    /// Feed `wire` to `parse` in `piece`-byte reads, as a connection does
    /// (not before the bytes it said it needs are there): the bytes the line
    /// searches looked at in all, and the arguments.
    fn feed_in_pieces(
        wire: &[u8],
        piece: usize,
        mut parse: impl FnMut(&mut [u8], &mut Vec<Range<usize>>) -> ParseOutcome,
    ) -> (usize, Vec<Range<usize>>) {
        SCANNED.with(|c| c.set(0));
        let mut args = Vec::new();
        let mut buf = Vec::new();
        let mut need = 0;
        for chunk in wire.chunks(piece) {
            buf.extend_from_slice(chunk);
            if buf.len() < need {
                continue;
            }
            match parse(&mut buf, &mut args) {
                ParseOutcome::Incomplete { need: n } => need = n,
                ParseOutcome::Done { consumed } => {
                    assert_eq!(consumed, wire.len());
                    return (SCANNED.with(|c| c.get()), args);
                }
                ParseOutcome::Error(e) => panic!("{e:?}"),
            }
        }
        panic!("request never completed");
    }

    #[test]
    fn big_multibulk_in_small_reads_is_scanned_once() {
        let big = |n: usize| {
            let mut wire = format!("*{n}\r\n").into_bytes();
            wire.extend(b"$1\r\na\r\n".repeat(n));
            wire
        };
        let wire = big(MAX_MULTIBULK as usize);
        let mut resume = Resume::default();
        let (scanned, args) =
            feed_in_pieces(&wire, 1000, |b, a| parse_request_resume(b, &Limits::default(), a, &mut resume));
        assert_eq!(args.len(), MAX_MULTIBULK as usize);
        assert_eq!(&wire[args[7].clone()], b"a");
        assert!(scanned <= wire.len() + wire.len() / 100, "{scanned} bytes scanned for {}", wire.len());
        assert!(!resume.in_progress());
        // Starting over on every read, as before: the same bound fails by
        // far on a request a hundred times smaller.
        let wire = big(10_000);
        let (scanned, _) = feed_in_pieces(&wire, 1000, |b, a| parse_request(b, &Limits::default(), a));
        assert!(scanned > 10 * (wire.len() + wire.len() / 100), "{scanned}");
    }

    #[test]
    fn long_lines_in_small_reads_are_scanned_once() {
        // An inline request and a multibulk header line, one byte a read.
        let x = "x".repeat(5000);
        for wire in [format!("SET k {x}\r\n"), format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n{x}\r\n")] {
            let mut resume = Resume::default();
            let (scanned, _) =
                feed_in_pieces(wire.as_bytes(), 1, |b, a| parse_request_resume(b, &Limits::default(), a, &mut resume));
            assert!(scanned <= 2 * wire.len(), "{scanned} bytes scanned for {}", wire.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_split_parses_the_same(cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..20), 1..5), 1..8),
            split in 0usize..400) {
            let mut wire = Vec::new();
            for c in &cmds {
                wire.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
                for a in c {
                    wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    wire.extend_from_slice(a);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            // Feed the stream in two pieces, as a socket might deliver it.
            let split = split.min(wire.len());
            let mut buf = wire[..split].to_vec();
            let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut args = Vec::new();
            let limits = Limits::default();
            let mut rest = &wire[split..];
            loop {
                match parse_request(&mut buf, &limits, &mut args) {
                    ParseOutcome::Done { consumed } => {
                        got.push(args.iter().map(|r| buf[r.clone()].to_vec()).collect());
                        buf.drain(..consumed);
                    }
                    ParseOutcome::Incomplete { .. } => {
                        if rest.is_empty() { break; }
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                    ParseOutcome::Error(e) => panic!("{e:?}"),
                }
            }
            proptest::prop_assert_eq!(got, cmds);
        }

        #[test]
        fn resumed_parsing_in_any_pieces_is_the_same(
            cmds in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..20), 1..6), 1..6),
            inline in proptest::bool::ANY,
            pieces in proptest::collection::vec(1usize..40, 1..60),
        ) {
            let mut wire = Vec::new();
            for c in &cmds {
                if inline {
                    wire.extend_from_slice(b"PING  x\r\n");
                }
                wire.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
                for a in c {
                    wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    wire.extend_from_slice(a);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            let want: Vec<Vec<Vec<u8>>> = cmds.iter().flat_map(|c| {
                let ping = vec![b"PING".to_vec(), b"x".to_vec()];
                (if inline { Some(ping) } else { None }).into_iter().chain(Some(c.clone()))
            }).collect();
            // Read by read, as a connection buffer grows and is consumed.
            let (mut buf, mut got, mut args, mut resume) = (Vec::new(), Vec::new(), Vec::new(), Resume::default());
            let mut rest = &wire[..];
            let mut sizes = pieces.iter().cycle();
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap_or(&1)).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match parse_request_resume(&mut buf, &Limits::default(), &mut args, &mut resume) {
                        ParseOutcome::Done { consumed } => {
                            got.push(args.iter().map(|r| buf[r.clone()].to_vec()).collect::<Vec<_>>());
                            buf.drain(..consumed);
                        }
                        ParseOutcome::Incomplete { .. } => break,
                        ParseOutcome::Error(e) => panic!("{e:?}"),
                    }
                }
            }
            proptest::prop_assert!(buf.is_empty() && !resume.in_progress());
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut args = Vec::new();
            let mut owned = bytes.clone();
            let mut buf: &mut [u8] = &mut owned;
            for _ in 0..1000 {
                match parse_request(buf, &Limits::default(), &mut args) {
                    ParseOutcome::Done { consumed } => {
                        proptest::prop_assert!(consumed > 0 && consumed <= buf.len());
                        for r in &args { proptest::prop_assert!(r.end <= buf.len()); }
                        buf = &mut buf[consumed..];
                    }
                    _ => break,
                }
            }
        }
    }
}

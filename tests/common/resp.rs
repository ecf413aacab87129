//! Minimal blocking RESP2/RESP3 client used by the integration tests.
//! Deliberately independent of the server's own parser so a bug there cannot
//! hide itself.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// Default read timeout: long enough for slow debug builds, short enough that a
/// hung server fails the test instead of hanging CI.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest bulk/aggregate we accept from a server; anything bigger is a bug
/// and must not make the test allocate gigabytes.
const MAX_LEN: i64 = 1 << 30;

/// One reply. Null flavours are kept apart so that a RESP2 `$-1` vs `*-1` vs
/// RESP3 `_` mismatch shows up in differential tests.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1`.
    NilBulk,
    /// RESP2 `*-1`.
    NilArray,
    /// RESP3 `_`.
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// Kept as the wire text so formatting differences are visible.
    Double(String),
    Bool(bool),
    Push(Vec<Value>),
    BigNum(String),
    /// `=` reply: (format, text).
    Verbatim(String, Vec<u8>),
}

impl Value {
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::NilBulk | Value::NilArray | Value::Null)
    }

    /// Bytes of a simple, bulk or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(s) => Some(s.as_bytes()),
            Value::Bulk(b) | Value::Verbatim(_, b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Elements of any flat aggregate (array, set, push).
    pub fn as_items(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    pub fn bulk(b: impl AsRef<[u8]>) -> Value {
        Value::Bulk(b.as_ref().to_vec())
    }

    pub fn err(s: &str) -> Value {
        Value::Error(s.into())
    }
}

/// Escape bytes the way redis-cli does, so printed diffs are unambiguous.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Long payloads are shortened for printing; the length and a hash keep
/// distinct values visibly distinct.
fn fmt_bytes(b: &[u8]) -> String {
    const SHOW: usize = 80;
    if b.len() <= SHOW * 2 {
        format!("\"{}\"", escape(b))
    } else {
        let h = b.iter().fold(0xcbf29ce484222325u64, |h, &c| (h ^ c as u64).wrapping_mul(0x100000001b3));
        format!("\"{}\"...(len={}, fnv={h:016x})", escape(&b[..SHOW]), b.len())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, open: &str, v: &[Value], close: &str) -> fmt::Result {
            write!(f, "{open}")?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{x}")?;
            }
            write!(f, "{close}")
        }
        match self {
            Value::Simple(s) => write!(f, "+{}", escape(&latin1_bytes(s))),
            Value::Error(s) => write!(f, "-{}", escape(&latin1_bytes(s))),
            Value::Int(i) => write!(f, ":{i}"),
            Value::Bulk(b) => write!(f, "{}", fmt_bytes(b)),
            Value::NilBulk => write!(f, "(nil-bulk $-1)"),
            Value::NilArray => write!(f, "(nil-array *-1)"),
            Value::Null => write!(f, "(null _)"),
            Value::Array(v) => list(f, "[", v, "]"),
            Value::Set(v) => list(f, "~{", v, "}"),
            Value::Push(v) => list(f, ">[", v, "]"),
            Value::Map(m) => {
                write!(f, "%{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k} => {v}")?;
                }
                write!(f, "}}")
            }
            Value::Double(d) => write!(f, ",{d}"),
            Value::Bool(b) => write!(f, "#{}", if *b { 't' } else { 'f' }),
            Value::BigNum(n) => write!(f, "({n})"),
            Value::Verbatim(fmt_, t) => write!(f, "={fmt_}:{}", fmt_bytes(t)),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Encode a command as a RESP multibulk.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Printable form of a command for diff output.
pub fn fmt_command<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let plain = !a.is_empty() && a.iter().all(|c| c.is_ascii_graphic() && *c != b'"');
            if plain && a.len() <= 60 {
                String::from_utf8_lossy(a).into_owned()
            } else {
                fmt_bytes(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!("line not terminated by CRLF: {}", fmt_bytes(&line))));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("bad integer {}", fmt_bytes(b))))
}

/// Status/error lines may carry arbitrary bytes (e.g. an unknown command's
/// binary arguments echoed back). Decode as Latin-1 so it is lossless and
/// `latin1_bytes` gives the exact wire bytes back.
fn text(b: Vec<u8>) -> io::Result<String> {
    Ok(b.into_iter().map(char::from).collect())
}

pub fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn read_exact_crlf<R: BufRead>(r: &mut R, len: i64) -> io::Result<Vec<u8>> {
    if !(0..=MAX_LEN).contains(&len) {
        return Err(bad(format!("unreasonable length {len}")));
    }
    let mut buf = vec![0u8; len as usize + 2];
    r.read_exact(&mut buf)?;
    if !buf.ends_with(b"\r\n") {
        return Err(bad("bulk payload not followed by CRLF".into()));
    }
    buf.truncate(len as usize);
    Ok(buf)
}

fn read_items<R: BufRead>(r: &mut R, n: i64) -> io::Result<Vec<Value>> {
    if !(0..=MAX_LEN).contains(&n) {
        return Err(bad(format!("unreasonable aggregate length {n}")));
    }
    (0..n).map(|_| read_value(r)).collect()
}

/// Read one complete reply. RESP3 attributes (`|`) are read and dropped:
/// they annotate the following reply and redis only sends them for
/// client-side caching features.
pub fn read_value<R: BufRead>(r: &mut R) -> io::Result<Value> {
    let line = read_line(r)?;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(bad("empty reply line".into()));
    };
    let rest = rest.to_vec();
    Ok(match kind {
        b'+' => Value::Simple(text(rest)?),
        b'-' => Value::Error(text(rest)?),
        b':' => Value::Int(parse_int(&rest)?),
        b'$' => match parse_int(&rest)? {
            -1 => Value::NilBulk,
            n => Value::Bulk(read_exact_crlf(r, n)?),
        },
        b'*' => match parse_int(&rest)? {
            -1 => Value::NilArray,
            n => Value::Array(read_items(r, n)?),
        },
        b'_' if rest.is_empty() => Value::Null,
        b'%' => {
            let n = parse_int(&rest)?;
            let flat = read_items(r, n.checked_mul(2).ok_or_else(|| bad("map len".into()))?)?;
            let mut it = flat.into_iter();
            let mut m = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                m.push((k, v));
            }
            Value::Map(m)
        }
        b'~' => Value::Set(read_items(r, parse_int(&rest)?)?),
        b'>' => Value::Push(read_items(r, parse_int(&rest)?)?),
        b',' => Value::Double(text(rest)?),
        b'#' if rest == b"t" => Value::Bool(true),
        b'#' if rest == b"f" => Value::Bool(false),
        b'(' => Value::BigNum(text(rest)?),
        b'!' => Value::Error(text(read_exact_crlf(r, parse_int(&rest)?)?)?),
        b'=' => {
            let body = read_exact_crlf(r, parse_int(&rest)?)?;
            if body.len() < 4 || body[3] != b':' {
                return Err(bad(format!("bad verbatim string {}", fmt_bytes(&body))));
            }
            Value::Verbatim(String::from_utf8_lossy(&body[..3]).into_owned(), body[4..].to_vec())
        }
        b'|' => {
            let n = parse_int(&rest)?;
            read_items(r, n.checked_mul(2).ok_or_else(|| bad("attr len".into()))?)?;
            read_value(r)?
        }
        _ => return Err(bad(format!("unknown reply type in line {}", fmt_bytes(&line)))),
    })
}

/// A blocking connection with a read timeout so tests never hang.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub port: u16,
}

impl RespConn {
    pub fn connect(port: u16) -> io::Result<RespConn> {
        RespConn::connect_to("127.0.0.1", port)
    }

    pub fn connect_to(host: &str, port: u16) -> io::Result<RespConn> {
        let s = TcpStream::connect((host, port))?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(RespConn { reader: BufReader::with_capacity(64 * 1024, s.try_clone()?), writer: s, port })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.writer.set_read_timeout(t).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn read_value(&mut self) -> io::Result<Value> {
        read_value(&mut self.reader)
    }

    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Value> {
        self.send_raw(&encode_command(args))?;
        self.read_value()
    }

    /// Send a command and read its reply; panics on I/O or protocol errors.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        match self.try_cmd(args) {
            Ok(v) => v,
            Err(e) => panic!("port {}: {} failed: {e}", self.port, fmt_command(args)),
        }
    }

    /// `cmd` with the command given as space-separated words.
    pub fn cmd_str(&mut self, s: &str) -> Value {
        let args: Vec<&str> = s.split(' ').filter(|a| !a.is_empty()).collect();
        self.cmd(&args)
    }

    /// Read raw bytes until the peer closes or nothing arrives for `idle`.
    /// Returns (bytes, closed_by_peer).
    pub fn read_until_idle(&mut self, idle: Duration) -> (Vec<u8>, bool) {
        let mut out = self.reader.buffer().to_vec();
        self.reader.consume(out.len());
        self.writer.set_read_timeout(Some(idle)).unwrap();
        let mut buf = [0u8; 65536];
        let closed = loop {
            match self.reader.get_mut().read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break false,
                // A reset after the server closed on us counts as closed.
                Err(_) => break true,
            }
        };
        self.writer.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        (out, closed)
    }

    pub fn shutdown_write(&self) {
        let _ = self.writer.shutdown(Shutdown::Write);
    }
}

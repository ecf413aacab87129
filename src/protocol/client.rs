//! The client side of RESP: a blocking connection that sends commands and
//! reads RESP2/RESP3 replies into `Value`s, for the integration tests, the
//! load generator and (later) shardis-monitor talking to servers. Not used
//! by the server itself.
//!
//! One reply parser serves every caller. It reads from a source (a
//! blocking reader, or a buffer that may hold only part of a reply) into a
//! builder: `Value`s for tests and the monitor, nothing at all for the load
//! generator, which only needs to know where a reply ends (`scan_reply`,
//! no allocation). It shares no code with the server's request parser, so a
//! bug there cannot hide itself in a test.

use super::reply::encode_command as encode_into;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Default read, write and connect timeout: long enough for slow debug
/// builds, short enough that a hung server fails a test instead of hanging
/// CI.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest bulk or aggregate accepted from a server; anything bigger is a
/// bug and must not make the client allocate gigabytes.
const MAX_LEN: i64 = 1 << 30;

/// Deepest nesting of aggregates accepted (the parser recurses).
const MAX_DEPTH: usize = 256;

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

/// A command as a RESP array of bulk strings, in a new buffer
/// (`reply::encode_command` appends to one).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, args);
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

/// Status and error lines may carry any bytes (an unknown command's binary
/// arguments echoed back): they are kept as Latin-1, which is lossless, and
/// `latin1_bytes` gives the exact wire bytes back.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

pub fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

// ---- the parser -------------------------------------------------------------

/// Where reply bytes come from. `None`: not all of it is here yet (only a
/// buffer says so; a blocking reader waits instead).
trait Source {
    /// The next line, without its CRLF.
    fn line(&mut self) -> io::Result<Option<&[u8]>>;
    /// The next `n` bytes, and the CRLF after them.
    fn payload(&mut self, n: usize) -> io::Result<Option<&[u8]>>;
}

/// A buffer that may end anywhere, even inside a reply.
struct Buffered<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for Buffered<'_> {
    fn line(&mut self) -> io::Result<Option<&[u8]>> {
        let rest = &self.buf[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else { return Ok(None) };
        if nl == 0 || rest[nl - 1] != b'\r' {
            return Err(bad(format!("line not terminated by CRLF: {}", fmt_bytes(&rest[..=nl]))));
        }
        self.pos += nl + 1;
        Ok(Some(&rest[..nl - 1]))
    }

    fn payload(&mut self, n: usize) -> io::Result<Option<&[u8]>> {
        let rest = &self.buf[self.pos..];
        if rest.len() < n + 2 {
            return Ok(None);
        }
        if &rest[n..n + 2] != b"\r\n" {
            return Err(bad("bulk payload not followed by CRLF".into()));
        }
        self.pos += n + 2;
        Ok(Some(&rest[..n]))
    }
}

/// A blocking reader; `scratch` holds the line or payload just read.
struct Blocking<'r, R> {
    r: &'r mut R,
    scratch: Vec<u8>,
}

impl<R: BufRead> Source for Blocking<'_, R> {
    fn line(&mut self) -> io::Result<Option<&[u8]>> {
        self.scratch.clear();
        self.r.read_until(b'\n', &mut self.scratch)?;
        if self.scratch.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        if !self.scratch.ends_with(b"\r\n") {
            return Err(bad(format!("line not terminated by CRLF: {}", fmt_bytes(&self.scratch))));
        }
        let n = self.scratch.len() - 2;
        Ok(Some(&self.scratch[..n]))
    }

    fn payload(&mut self, n: usize) -> io::Result<Option<&[u8]>> {
        self.scratch.clear();
        self.scratch.resize(n + 2, 0);
        self.r.read_exact(&mut self.scratch)?;
        if !self.scratch.ends_with(b"\r\n") {
            return Err(bad("bulk payload not followed by CRLF".into()));
        }
        Ok(Some(&self.scratch[..n]))
    }
}

/// A reply that is not an aggregate, as the parser hands it on.
enum Atom<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(&'a [u8]),
    NilBulk,
    NilArray,
    Null,
    Double(&'a [u8]),
    Bool(bool),
    BigNum(&'a [u8]),
    /// (format, text)
    Verbatim(&'a [u8], &'a [u8]),
}

#[derive(Clone, Copy)]
enum Aggregate {
    Array,
    /// Its items are keys and values in turn.
    Map,
    Set,
    Push,
}

/// What the parser builds from what it reads.
trait Build {
    type Out;
    fn atom(a: Atom) -> Self::Out;
    fn aggregate(kind: Aggregate, items: Vec<Self::Out>) -> Self::Out;
}

/// Builds `Value`s.
struct Values;

impl Build for Values {
    type Out = Value;

    fn atom(a: Atom) -> Value {
        match a {
            Atom::Simple(s) => Value::Simple(latin1(s)),
            Atom::Error(s) => Value::Error(latin1(s)),
            Atom::Int(i) => Value::Int(i),
            Atom::Bulk(b) => Value::Bulk(b.to_vec()),
            Atom::NilBulk => Value::NilBulk,
            Atom::NilArray => Value::NilArray,
            Atom::Null => Value::Null,
            Atom::Double(s) => Value::Double(latin1(s)),
            Atom::Bool(b) => Value::Bool(b),
            Atom::BigNum(s) => Value::BigNum(latin1(s)),
            Atom::Verbatim(f, t) => Value::Verbatim(String::from_utf8_lossy(f).into_owned(), t.to_vec()),
        }
    }

    fn aggregate(kind: Aggregate, items: Vec<Value>) -> Value {
        match kind {
            Aggregate::Array => Value::Array(items),
            Aggregate::Set => Value::Set(items),
            Aggregate::Push => Value::Push(items),
            Aggregate::Map => {
                let mut it = items.into_iter();
                let mut m = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    m.push((k, v));
                }
                Value::Map(m)
            }
        }
    }
}

/// Builds nothing: for finding where a reply ends (`Vec<()>` never
/// allocates).
struct Skip;

impl Build for Skip {
    type Out = ();
    fn atom(_: Atom) {}
    fn aggregate(_: Aggregate, _: Vec<()>) {}
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("bad integer {}", fmt_bytes(b))))
}

/// A length header: -1 is the null, anything else must be in 0..=MAX_LEN.
fn length(b: &[u8], what: &str) -> io::Result<Option<usize>> {
    match parse_int(b)? {
        -1 => Ok(None),
        n if (0..=MAX_LEN).contains(&n) => Ok(Some(n as usize)),
        n => Err(bad(format!("unreasonable {what}length {n}"))),
    }
}

/// Read `n` replies into a list (Ok(None) if the source runs dry).
fn items<S: Source, B: Build>(src: &mut S, n: usize, depth: usize) -> io::Result<Option<Vec<B::Out>>> {
    let mut v = Vec::new();
    for _ in 0..n {
        match parse::<S, B>(src, depth + 1)? {
            Some(x) => v.push(x),
            None => return Ok(None),
        }
    }
    Ok(Some(v))
}

/// Read one complete reply from `src` into `B`: Ok(None) if the source
/// holds only part of it. RESP3 attributes (`|`) are read and dropped:
/// they annotate the reply that follows, and Redis sends them only for
/// client-side caching.
fn parse<S: Source, B: Build>(src: &mut S, depth: usize) -> io::Result<Option<B::Out>> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("reply nested deeper than {MAX_DEPTH} levels")));
    }
    let Some(line) = src.line()? else { return Ok(None) };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(bad("empty reply line".into()));
    };
    let atom = match kind {
        b'+' => Atom::Simple(rest),
        b'-' => Atom::Error(rest),
        b':' => Atom::Int(parse_int(rest)?),
        b'_' if rest.is_empty() => Atom::Null,
        b',' => Atom::Double(rest),
        b'#' if rest == b"t" => Atom::Bool(true),
        b'#' if rest == b"f" => Atom::Bool(false),
        b'(' => Atom::BigNum(rest),
        b'$' | b'!' | b'=' => {
            let Some(n) = length(rest, "")? else {
                // Only `$` has a null form; `!-1`/`=-1` are not RESP.
                if kind != b'$' {
                    return Err(bad(format!("unreasonable length -1 for '{}'", kind as char)));
                }
                return Ok(Some(B::atom(Atom::NilBulk)));
            };
            let Some(body) = src.payload(n)? else { return Ok(None) };
            match kind {
                b'$' => Atom::Bulk(body),
                b'!' => Atom::Error(body),
                _ if body.len() < 4 || body[3] != b':' => {
                    return Err(bad(format!("bad verbatim string {}", fmt_bytes(body))))
                }
                _ => Atom::Verbatim(&body[..3], &body[4..]),
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(n) = length(rest, "aggregate ")? else {
                if kind != b'*' {
                    return Err(bad(format!("unreasonable aggregate length -1 for '{}'", kind as char)));
                }
                return Ok(Some(B::atom(Atom::NilArray)));
            };
            let (agg, n) = match kind {
                b'*' => (Aggregate::Array, n),
                b'~' => (Aggregate::Set, n),
                b'>' => (Aggregate::Push, n),
                _ => (Aggregate::Map, n * 2),
            };
            let Some(items) = items::<S, B>(src, n, depth)? else { return Ok(None) };
            if kind == b'|' {
                return parse::<S, B>(src, depth);
            }
            return Ok(Some(B::aggregate(agg, items)));
        }
        _ => return Err(bad(format!("unknown reply type in line {}", fmt_bytes(line)))),
    };
    Ok(Some(B::atom(atom)))
}

/// Read one complete reply from a blocking reader.
pub fn read_value<R: BufRead>(r: &mut R) -> io::Result<Value> {
    let mut src = Blocking { r, scratch: Vec::new() };
    // A blocking source never runs dry: it waits or fails.
    parse::<_, Values>(&mut src, 0)?.ok_or_else(|| bad("reply ended early".into()))
}

/// The first reply in `buf` and its length in bytes; Ok(None) if `buf`
/// holds only part of it (read more and try again from the start).
pub fn parse_value(buf: &[u8]) -> io::Result<Option<(Value, usize)>> {
    let mut src = Buffered { buf, pos: 0 };
    Ok(parse::<_, Values>(&mut src, 0)?.map(|v| (v, src.pos)))
}

/// Where the first reply in a buffer ends, and whether it is an error.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub len: usize,
    /// A top-level error reply (`-ERR ...`).
    pub error: bool,
}

/// Find the first complete reply in `buf` without building it (the load
/// generator counts replies and errors): Ok(None) if more bytes are needed,
/// Err if the stream is not RESP.
pub fn scan_reply(buf: &[u8]) -> Result<Option<Reply>, String> {
    let mut src = Buffered { buf, pos: 0 };
    match parse::<_, Skip>(&mut src, 0) {
        Ok(found) => Ok(found.map(|()| Reply { len: src.pos, error: buf[0] == b'-' })),
        Err(e) => Err(e.to_string()),
    }
}

// ---- the connection ---------------------------------------------------------

/// A blocking connection with timeouts, so a hung server fails the caller
/// instead of hanging it.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub port: u16,
}

impl RespConn {
    /// Connect to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> io::Result<RespConn> {
        RespConn::connect_to("127.0.0.1", port)
    }

    /// Connect to `host`:`port`, with `READ_TIMEOUT` for the connect and
    /// for every read and write.
    pub fn connect_to(host: &str, port: u16) -> io::Result<RespConn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} resolves to no address"));
        for addr in (host, port).to_socket_addrs()? {
            match RespConn::connect_addr(addr, READ_TIMEOUT, READ_TIMEOUT) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connect to `addr` within `connect_timeout`; reads and writes then
    /// time out after `io_timeout`.
    pub fn connect_addr(addr: SocketAddr, connect_timeout: Duration, io_timeout: Duration) -> io::Result<RespConn> {
        let s = TcpStream::connect_timeout(&addr, connect_timeout)?;
        s.set_read_timeout(Some(io_timeout))?;
        s.set_write_timeout(Some(io_timeout))?;
        s.set_nodelay(true)?;
        Ok(RespConn { reader: BufReader::with_capacity(64 * 1024, s.try_clone()?), writer: s, port: addr.port() })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Change the read timeout (None: wait forever). Panics on a zero
    /// duration, which the socket refuses: a caller's mistake.
    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.writer.set_read_timeout(t).expect("a read timeout (zero is not one)");
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

    /// Send a command and read its reply; panics on I/O or protocol errors
    /// (for tests: `try_cmd` returns them).
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

    /// Read raw bytes until the peer closes or nothing arrives for `idle`
    /// (then the read timeout goes back to `READ_TIMEOUT`). Returns (bytes,
    /// closed_by_peer).
    pub fn read_until_idle(&mut self, idle: Duration) -> (Vec<u8>, bool) {
        let mut out = self.reader.buffer().to_vec();
        self.reader.consume(out.len());
        self.set_read_timeout(Some(idle));
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
        self.set_read_timeout(Some(READ_TIMEOUT));
        (out, closed)
    }

    pub fn shutdown_write(&self) {
        let _ = self.writer.shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RESP2/RESP3 type, with what it reads as.
    fn cases() -> Vec<(&'static [u8], Value)> {
        vec![
            (b"+OK\r\n", Value::ok()),
            (b"-ERR wrong\r\n", Value::err("ERR wrong")),
            (b":-42\r\n", Value::Int(-42)),
            (b"$-1\r\n", Value::NilBulk),
            (b"$3\r\na\nc\r\n", Value::bulk("a\nc")),
            (b"$0\r\n\r\n", Value::bulk("")),
            (b"*-1\r\n", Value::NilArray),
            (b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", Value::Array(vec![Value::bulk("a"), Value::Array(vec![Value::Int(1)])])),
            (b"_\r\n", Value::Null),
            (b"%1\r\n+k\r\n,1.5\r\n", Value::Map(vec![(Value::Simple("k".into()), Value::Double("1.5".into()))])),
            (b"~1\r\n#t\r\n", Value::Set(vec![Value::Bool(true)])),
            (b">2\r\n#f\r\n(123\r\n", Value::Push(vec![Value::Bool(false), Value::BigNum("123".into())])),
            (b"!5\r\nERR x\r\n", Value::err("ERR x")),
            (b"=7\r\ntxt:abc\r\n", Value::Verbatim("txt".into(), b"abc".to_vec())),
            (b"|1\r\n+a\r\n+b\r\n:7\r\n", Value::Int(7)),
            (b"+\xff\r\n", Value::Simple("\u{ff}".into())),
        ]
    }

    #[test]
    fn every_type_reads_alike_from_a_reader_and_a_buffer() {
        for (wire, want) in cases() {
            let show = escape(wire);
            assert_eq!(read_value(&mut io::Cursor::new(wire)).expect(&show), want, "{show}");
            assert_eq!(parse_value(wire).expect(&show), Some((want, wire.len())), "{show}");
            let r = scan_reply(wire).expect(&show).expect("complete");
            assert_eq!(r, Reply { len: wire.len(), error: wire[0] == b'-' }, "{show}");
            // Any prefix is incomplete, not an error.
            for cut in 0..wire.len() {
                assert!(parse_value(&wire[..cut]).expect(&show).is_none(), "{show} cut at {cut}");
                assert_eq!(scan_reply(&wire[..cut]), Ok(None), "{show} cut at {cut}");
            }
        }
    }

    #[test]
    fn only_the_first_reply_is_taken() {
        assert_eq!(scan_reply(b"+OK\r\n$1\r\nx\r\n"), Ok(Some(Reply { len: 5, error: false })));
        let mut r = io::Cursor::new(&b"+OK\r\n$1\r\nx\r\n"[..]);
        assert_eq!(read_value(&mut r).ok(), Some(Value::ok()));
        assert_eq!(read_value(&mut r).ok(), Some(Value::bulk("x")));
        let eof = read_value(&mut r).err().map(|e| e.kind());
        assert_eq!(eof, Some(io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn malformed_replies_are_errors() {
        let bad: &[&[u8]] = &[
            b"?x\r\n",
            b"$x\r\n",
            b"$-2\r\n",
            b"$1\r\nab\r\n",
            b"*-5\r\n",
            b"+OK\n",
            b"\r\n",
            b"_x\r\n",
            b"#x\r\n",
            b":1.5\r\n",
            b"=2\r\nab\r\n",
            b"!-1\r\n",
            b"$1073741825\r\n",
        ];
        for &wire in bad {
            let show = escape(wire);
            assert!(read_value(&mut io::Cursor::new(wire)).is_err(), "{show}");
            assert!(parse_value(wire).is_err(), "{show}");
            assert!(scan_reply(wire).is_err(), "{show}");
        }
        let deep = [b"*1\r\n".repeat(MAX_DEPTH + 1), b":1\r\n".to_vec()].concat();
        assert!(scan_reply(&deep).is_err());
        let ok = [b"*1\r\n".repeat(MAX_DEPTH), b":1\r\n".to_vec()].concat();
        assert_eq!(scan_reply(&ok).map(|r| r.map(|r| r.len)), Ok(Some(ok.len())));
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        assert_eq!(encode_command(&["SET", "k", "0123456789"]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n");
        assert_eq!(fmt_command(&[&b"GET"[..], b"a b"]), "GET \"a b\"");
    }
}

//! The replication link's wire format (pure: bytes in, values out).
//!
//! A replica opens one TCP connection per master shard to the master's
//! replication listener and sends one RESP array:
//! `SYNC <shard> <replid> <lsn> <announce-ip> <announce-port> <user> <password>`
//! (`user` empty: `default`, as AUTH with a password alone)
//! (`?` and 0 for "I have nothing": a full sync). The master answers one
//! line, `+CONTINUE <lsn>`, `+FULLSYNC <replid> <lsn>` or `-ERR ...` (and
//! closes), then sends frames: a tag byte, a little-endian u32 length and
//! the body. The bodies of `BASE` and `LOG` frames are AOF records exactly
//! as on disk (their CRC covers them on the wire too).

/// Master to replica: a record of the shard's base image.
pub const BASE: u8 = b'B';
/// Master to replica: the base image is complete; body = its lsn (u64 LE).
pub const BASE_END: u8 = b'E';
/// Master to replica: a log record.
pub const LOG: u8 = b'R';
/// Master to replica: keep-alive; body = the shard's safe lsn (u64 LE).
pub const PING: u8 = b'P';
/// Replica to master: applied up to this lsn, and durable in the
/// replica's own AOF up to that one (two u64 LE).
pub const ACK: u8 = b'A';
/// Master to replica: acknowledge at once (a writer waits in WAIT,
/// WAITAOF or `repl-sync-ack`); body = a request number (u64 LE).
pub const GETACK: u8 = b'G';

pub const FRAME_HEADER: usize = 5;
/// Largest frame body: one AOF record at most.
pub const MAX_FRAME: usize = super::super::persist::record::MAX_PAYLOAD + super::super::persist::record::HEADER_LEN;
/// Longest handshake a master reads before giving up on the peer.
pub const MAX_HANDSHAKE: usize = 4096;

/// Append a frame.
pub fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// Append a frame whose body is one u64.
pub fn frame_u64(out: &mut Vec<u8>, tag: u8, v: u64) {
    frame(out, tag, &v.to_le_bytes())
}

/// A frame: its tag, its body, the bytes it took.
pub type Frame<'a> = (u8, &'a [u8], usize);

/// A frame at the start of `buf`: (tag, body, bytes used); Ok(None) if
/// more bytes are needed; Err for an impossible frame.
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, String> {
    if buf.len() < FRAME_HEADER {
        return Ok(None);
    }
    let tag = buf[0];
    if ![BASE, BASE_END, LOG, PING, ACK, GETACK].contains(&tag) {
        return Err(format!("unknown frame tag 0x{:02x}", tag));
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let fixed = match tag {
        BASE_END | PING | GETACK => Some(8),
        ACK => Some(16),
        _ => None,
    };
    if len > MAX_FRAME || fixed.is_some_and(|f| len != f) {
        return Err(format!("impossible frame length {} for tag '{}'", len, tag as char));
    }
    if buf.len() < FRAME_HEADER + len {
        return Ok(None);
    }
    Ok(Some((tag, &buf[FRAME_HEADER..FRAME_HEADER + len], FRAME_HEADER + len)))
}

/// The u64 body of a BASE_END, PING or GETACK frame (the first of an
/// ACK's two).
pub fn body_u64(body: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&body[..8]);
    u64::from_le_bytes(a)
}

/// An ACK frame: (applied, durable).
pub fn ack(out: &mut Vec<u8>, applied: u64, durable: u64) {
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&applied.to_le_bytes());
    body[8..].copy_from_slice(&durable.to_le_bytes());
    frame(out, ACK, &body)
}

/// An ACK frame's body: (applied, durable).
pub fn ack_body(body: &[u8]) -> (u64, u64) {
    (body_u64(body), body_u64(&body[8..]))
}

/// What a replica asks for on one shard's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub shard: usize,
    /// `?` when the replica holds nothing from this master.
    pub replid: String,
    pub lsn: u64,
    pub ip: String,
    pub port: u16,
    /// The ACL user the replica authenticates as (`masteruser`; empty:
    /// `default`).
    pub user: String,
    pub password: Vec<u8>,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let (shard, lsn, port) = (self.shard.to_string(), self.lsn.to_string(), self.port.to_string());
        let parts: [&[u8]; 8] = [
            b"SYNC",
            shard.as_bytes(),
            self.replid.as_bytes(),
            lsn.as_bytes(),
            self.ip.as_bytes(),
            port.as_bytes(),
            self.user.as_bytes(),
            &self.password,
        ];
        let mut out = Vec::new();
        crate::keyspace::effects::encode_array(&mut out, parts.into_iter(), parts.len());
        out
    }

    /// Parse a handshake at the start of `buf`: Ok(None) if incomplete,
    /// Err (the reason, for the log) if it is not one.
    pub fn parse(buf: &[u8]) -> Result<Option<Hello>, String> {
        let Some((parts, _)) = crate::persist::record::parse_command(buf) else {
            // Incomplete, or not RESP at all: tell them apart by the first
            // byte and the bound.
            if buf.first().is_some_and(|&b| b != b'*') {
                return Err("not a RESP array".into());
            }
            if buf.len() >= MAX_HANDSHAKE {
                return Err(format!("handshake longer than {} bytes", MAX_HANDSHAKE));
            }
            return Ok(None);
        };
        let text = |i: usize| std::str::from_utf8(parts[i]).map_err(|_| format!("argument {} is not text", i));
        if parts.len() != 8 || !parts[0].eq_ignore_ascii_case(b"SYNC") {
            return Err(format!("expected SYNC with 7 arguments, got {} parts", parts.len()));
        }
        let num = |i: usize| text(i)?.parse::<u64>().map_err(|_| format!("argument {} is not a number", i));
        let replid = text(2)?.to_string();
        if replid.is_empty() || replid.len() > 64 {
            return Err("bad replication id".into());
        }
        Ok(Some(Hello {
            shard: num(1)? as usize,
            replid,
            lsn: num(3)?,
            ip: text(4)?.chars().take(64).collect(),
            port: u16::try_from(num(5)?).map_err(|_| "port out of range".to_string())?,
            user: text(6)?.chars().take(128).collect(),
            password: parts[7].to_vec(),
        }))
    }
}

/// The master's answer to a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Continue after `lsn` of history `replid` (the asked one, or the
    /// master's own when it continues the history the replica asked for
    /// as its replid2: the replica switches to it).
    Continue {
        lsn: u64,
        replid: String,
    },
    /// The replica holds records of the asked history past `at` that this
    /// master never had (an old master's unreplicated tail): set them
    /// aside and ask for a full sync.
    Diverged {
        at: u64,
    },
    FullSync {
        replid: String,
        lsn: u64,
    },
    /// The error line, "ERR ..." (sent with a leading '-').
    Refused(String),
}

impl Answer {
    pub fn encode(&self) -> String {
        match self {
            Answer::Continue { lsn, replid } => format!("+CONTINUE {} {}\r\n", lsn, replid),
            Answer::Diverged { at } => format!("+DIVERGED {}\r\n", at),
            Answer::FullSync { replid, lsn } => format!("+FULLSYNC {} {}\r\n", replid, lsn),
            Answer::Refused(e) => format!("-{}\r\n", e.replace(['\r', '\n'], " ")),
        }
    }

    /// Parse the answer line (without its CRLF).
    pub fn parse(line: &str) -> Option<Answer> {
        let mut w = line.split(' ');
        match w.next()? {
            "+CONTINUE" => {
                let lsn = w.next()?.parse().ok()?;
                Some(Answer::Continue { lsn, replid: w.next()?.to_string() })
            }
            "+DIVERGED" => Some(Answer::Diverged { at: w.next()?.parse().ok()? }),
            "+FULLSYNC" => {
                let replid = w.next()?.to_string();
                Some(Answer::FullSync { replid, lsn: w.next()?.parse().ok()? })
            }
            e if e.starts_with('-') => Some(Answer::Refused(line[1..].to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_garbage_is_refused() {
        let h = Hello {
            shard: 3,
            replid: "abc".into(),
            lsn: 42,
            ip: "127.0.0.3".into(),
            port: 7000,
            user: "repl".into(),
            password: b"p w".to_vec(),
        };
        let enc = h.encode();
        assert_eq!(Hello::parse(&enc), Ok(Some(h)));
        for cut in 0..enc.len() {
            assert_eq!(Hello::parse(&enc[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(Hello::parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(Hello::parse(b"*2\r\n$4\r\nSYNC\r\n$1\r\n1\r\n").is_err());
        let mut big = b"*1\r\n$999999\r\n".to_vec();
        big.resize(MAX_HANDSHAKE, b'x');
        assert!(Hello::parse(&big).is_err(), "an endless handshake is cut off");
        let bad_lsn = Hello { lsn: 0, ..Hello::parse(&enc).ok().flatten().expect("valid") }
            .encode()
            .iter()
            .map(|&b| if b == b'0' { b'x' } else { b })
            .collect::<Vec<u8>>();
        assert!(Hello::parse(&bad_lsn).is_err());
    }

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        frame(&mut out, LOG, b"record");
        ack(&mut out, 9, 7);
        frame_u64(&mut out, GETACK, 3);
        let (tag, body, used) = parse_frame(&out).expect("valid").expect("whole");
        assert_eq!((tag, body, used), (LOG, &b"record"[..], 11));
        let (tag, body, n) = parse_frame(&out[used..]).expect("valid").expect("whole");
        assert_eq!((tag, ack_body(body)), (ACK, (9, 7)));
        let (tag, body, _) = parse_frame(&out[used + n..]).expect("valid").expect("whole");
        assert_eq!((tag, body_u64(body)), (GETACK, 3));
        assert!(parse_frame(&[ACK, 8, 0, 0, 0]).is_err(), "an ack is 16 bytes");
        assert_eq!(parse_frame(&out[..7]), Ok(None));
        assert!(parse_frame(b"Zxxxxxxxx").is_err());
        assert!(parse_frame(&[ACK, 200, 0, 0, 0]).is_err(), "no ack is 200 bytes");
        assert!(parse_frame(&[LOG, 255, 255, 255, 255]).is_err(), "beyond any record");
    }

    #[test]
    fn answers_round_trip() {
        for a in [
            Answer::Continue { lsn: 7, replid: "abc".into() },
            Answer::Diverged { at: 9 },
            Answer::FullSync { replid: "r".into(), lsn: 0 },
            Answer::Refused("ERR no".into()),
        ] {
            let line = a.encode();
            assert_eq!(Answer::parse(line.trim_end()), Some(a));
        }
        assert_eq!(Answer::parse("+WHAT 1"), None);
    }
}

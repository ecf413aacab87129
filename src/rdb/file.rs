//! The records of a redis-server RDB file (`dump.rdb`), read from memory
//! in order: header `REDIS` + 4-digit version, then opcodes (aux fields,
//! SELECTDB, RESIZEDB, expiry, LRU/LFU hints, function libraries, module
//! aux data) and keys, up to EOF and the CRC-64 of everything before it.
//! Pure: the caller (import-rdb) maps the file and stores what it gets.

use super::{crc64, object, Error, Reader, Result, RDB_VERSION_READ};
use crate::keyspace::Value;
use std::borrow::Cow;

const OP_FUNCTION2: u8 = 0xf5;
const OP_FUNCTION_PRE_GA: u8 = 0xf6;
const OP_MODULE_AUX: u8 = 0xf7;
const OP_IDLE: u8 = 0xf8;
const OP_FREQ: u8 = 0xf9;
const OP_AUX: u8 = 0xfa;
const OP_RESIZEDB: u8 = 0xfb;
const OP_EXPIRETIME_MS: u8 = 0xfc;
const OP_EXPIRETIME: u8 = 0xfd;
const OP_SELECTDB: u8 = 0xfe;
const OP_EOF: u8 = 0xff;

/// Oldest version read: 9 (Redis 5) and later carry every type Redis 7
/// writes; older files hold only types read here as well, so accept them.
pub const MIN_VERSION: u16 = 1;

/// What the next record is.
pub enum Item<'a> {
    Aux(Cow<'a, [u8]>, Cow<'a, [u8]>),
    /// SELECTDB: the keys that follow are in this database.
    Db(u64),
    /// A key of the current database; `expire_ms` 0 means none. `value` is
    /// None for a collection Redis left empty (skipped, as Redis does).
    Key {
        db: u64,
        key: Cow<'a, [u8]>,
        value: Option<Value>,
        expire_ms: i64,
    },
    /// A function library's code.
    Function(Cow<'a, [u8]>),
    /// EOF with a right checksum (or none written).
    End,
}

pub struct RdbFile<'a> {
    r: Reader<'a>,
    buf: &'a [u8],
    pub version: u16,
    db: u64,
    crc: u64,
    /// buf[..crc_at] is in `crc`.
    crc_at: usize,
    done: bool,
}

impl<'a> RdbFile<'a> {
    pub fn new(buf: &'a [u8]) -> Result<RdbFile<'a>> {
        let head = buf.get(..9).ok_or(Error { offset: 0, what: "too short for an RDB header" })?;
        let version = std::str::from_utf8(&head[5..]).ok().and_then(|v| v.parse::<u16>().ok());
        let version = match (&head[..5] == b"REDIS", version) {
            (true, Some(v)) if (MIN_VERSION..=RDB_VERSION_READ).contains(&v) => v,
            (true, Some(_)) => return Err(Error { offset: 5, what: "RDB version not supported" }),
            _ => return Err(Error { offset: 0, what: "not an RDB file (no REDIS header)" }),
        };
        let mut r = Reader::new(buf);
        r.take(9)?;
        Ok(RdbFile { r, buf, version, db: 0, crc: 0, crc_at: 0, done: false })
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.r.offset()
    }

    fn skip_module_value(&mut self) -> Result<()> {
        // Module data is a sequence of typed fields ending with opcode 0.
        loop {
            match self.r.length()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.r.length()?;
                }
                3 => {
                    self.r.take(4)?;
                }
                4 => {
                    self.r.take(8)?;
                }
                5 => {
                    self.r.string()?;
                }
                _ => return self.r.err("bad module data"),
            }
        }
    }

    /// The next record; after `Item::End`, `End` again.
    pub fn next_item(&mut self) -> Result<Item<'a>> {
        if self.done {
            return Ok(Item::End);
        }
        let mut expire_ms = 0i64;
        loop {
            let at = self.r.offset();
            self.crc = crc64::update(self.crc, &self.buf[self.crc_at..at]);
            self.crc_at = at;
            let op = self.r.u8()?;
            match op {
                OP_EOF => {
                    if self.version >= 5 {
                        self.crc = crc64::update(self.crc, &self.buf[at..at + 1]);
                        let want = self.r.u64_le()?;
                        if want != 0 && want != self.crc {
                            return Err(Error { offset: at + 1, what: "wrong checksum" });
                        }
                    }
                    self.done = true;
                    return Ok(Item::End);
                }
                OP_SELECTDB => {
                    self.db = self.r.length()?;
                    return Ok(Item::Db(self.db));
                }
                OP_RESIZEDB => {
                    self.r.length()?;
                    self.r.length()?;
                }
                OP_AUX => {
                    let k = self.r.string()?;
                    let v = self.r.string()?;
                    return Ok(Item::Aux(k, v));
                }
                OP_EXPIRETIME_MS => expire_ms = self.r.u64_le()? as i64,
                OP_EXPIRETIME => expire_ms = u32::from_le_bytes(self.r.array()?) as i64 * 1000,
                OP_IDLE => {
                    self.r.length()?;
                }
                OP_FREQ => {
                    self.r.u8()?;
                }
                OP_MODULE_AUX => {
                    self.r.length()?; // module id
                    if self.r.length()? != 2 {
                        return self.r.err("bad module aux data");
                    }
                    self.r.length()?; // when
                    self.skip_module_value()?;
                }
                OP_FUNCTION2 => return Ok(Item::Function(self.r.string()?)),
                OP_FUNCTION_PRE_GA => return Err(Error { offset: at, what: "pre-release function format" }),
                t if object::is_object_type(t) => {
                    let key = self.r.string()?;
                    let value = match object::decode(t, &mut self.r) {
                        Ok(v) => Some(v),
                        Err(e) if e.what == object::EMPTY => None,
                        Err(e) => return Err(e),
                    };
                    if expire_ms < 0 {
                        return Err(Error { offset: at, what: "negative expiry" });
                    }
                    return Ok(Item::Key { db: self.db, key, value, expire_ms });
                }
                _ => return Err(Error { offset: at, what: "unknown opcode" }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{put_len, put_string};

    fn file(body: &[u8], checksum: bool) -> Vec<u8> {
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(body);
        f.push(OP_EOF);
        let crc = if checksum { crc64::crc64(&f) } else { 0 };
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    fn body() -> Vec<u8> {
        let mut b = vec![OP_AUX];
        put_string(&mut b, b"redis-ver");
        put_string(&mut b, b"7.0.15");
        b.push(OP_SELECTDB);
        put_len(&mut b, 3);
        b.extend_from_slice(&[OP_RESIZEDB, 2, 1]);
        b.push(OP_EXPIRETIME_MS);
        b.extend_from_slice(&4_000_000_000_000u64.to_le_bytes());
        b.push(object::TYPE_STRING);
        put_string(&mut b, b"k");
        put_string(&mut b, b"v");
        b.push(object::TYPE_STRING);
        put_string(&mut b, b"n");
        put_string(&mut b, b"5");
        b
    }

    #[test]
    fn reads_keys_dbs_and_expiry() {
        for checksum in [true, false] {
            let f = file(&body(), checksum);
            let mut p = RdbFile::new(&f).expect("header");
            assert!(matches!(p.next_item(), Ok(Item::Aux(..))));
            assert!(matches!(p.next_item(), Ok(Item::Db(3))));
            match p.next_item() {
                Ok(Item::Key { db: 3, key, value: Some(_), expire_ms: 4_000_000_000_000 }) => {
                    assert_eq!(&key[..], b"k")
                }
                _ => panic!("key k"),
            }
            assert!(matches!(p.next_item(), Ok(Item::Key { expire_ms: 0, .. })));
            assert!(matches!(p.next_item(), Ok(Item::End)));
        }
    }

    #[test]
    fn hostile_files_name_an_offset() {
        let f = file(&body(), true);
        for cut in 0..f.len() - 1 {
            let mut p = match RdbFile::new(&f[..cut]) {
                Ok(p) => p,
                Err(_) => continue,
            };
            let mut end = false;
            for _ in 0..10 {
                match p.next_item() {
                    Ok(Item::End) => {
                        end = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        assert!(e.offset <= cut, "{e}");
                        break;
                    }
                }
            }
            assert!(!end, "cut at {cut} read to the end");
        }
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        let mut p = RdbFile::new(&bad).expect("header");
        let e = loop {
            match p.next_item() {
                Ok(Item::End) => panic!("bad checksum accepted"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(e.what, "wrong checksum");
        assert!(RdbFile::new(b"REDIS0099").is_err());
        assert!(RdbFile::new(b"NOTREDIS00").is_err());
    }
}

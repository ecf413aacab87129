//! FUNCTION libraries: their text, how they are named and flagged, and
//! the DUMP payload.
//!
//! Every shard keeps the libraries in its keyspace (`Libs`): FUNCTION
//! LOAD / DELETE / FLUSH / RESTORE run on every shard (as FLUSHALL does,
//! a transaction over all of them when there are several), each shard
//! logs them in its own AOF and writes them into its base images, and a
//! replica gets them in the stream of each master shard. A shard's
//! engine compiles the libraries into its functions interpreter when the
//! keyspace's `version` moves (see `Engine::sync_functions`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Script flags (shebang `flags=` of EVAL scripts, function flags).
pub const NO_WRITES: u32 = 1;
pub const ALLOW_OOM: u32 = 2;
pub const ALLOW_STALE: u32 = 4;
pub const NO_CLUSTER: u32 = 8;
pub const ALLOW_CROSS_SLOT: u32 = 16;

/// The flags' names, in Redis's order (FUNCTION LIST).
pub const FLAG_NAMES: &[(&str, u32)] = &[
    ("no-writes", NO_WRITES),
    ("allow-oom", ALLOW_OOM),
    ("allow-stale", ALLOW_STALE),
    ("no-cluster", NO_CLUSTER),
    ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
];

/// Version stamps of library sets, unique in the process: an engine
/// compares the stamp it compiled with the keyspace's.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// One shard's copy of the libraries: name -> code (with its header).
#[derive(Clone, Default)]
pub struct Libs {
    pub libs: BTreeMap<Vec<u8>, Arc<[u8]>>,
    /// 0: never changed (no libraries).
    pub version: u64,
}

impl Libs {
    pub fn touch(&mut self) {
        self.version = NEXT_VERSION.fetch_add(1, Ordering::Relaxed);
    }

    pub fn insert(&mut self, name: Vec<u8>, code: Arc<[u8]>) {
        self.libs.insert(name, code);
        self.touch();
    }

    pub fn remove(&mut self, name: &[u8]) -> bool {
        let found = self.libs.remove(name).is_some();
        if found {
            self.touch();
        }
        found
    }

    pub fn clear(&mut self) {
        if !self.libs.is_empty() {
            self.libs.clear();
            self.touch();
        }
    }

    /// Bytes of library code (INFO).
    pub fn code_bytes(&self) -> usize {
        self.libs.iter().map(|(n, c)| n.len() + c.len()).sum()
    }
}

/// A library's `#!lua name=<name>` header: the name, and the code to
/// compile (the header line blanked, so line numbers stay right).
pub fn parse_library(code: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(nl) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = &code[2..nl];
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or(b"");
    let mut name: Option<&[u8]> = None;
    for p in parts {
        if let Some(v) = p.strip_prefix(b"name=") {
            if name.is_some() {
                return Err("ERR Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(v);
        } else {
            return Err(format!("ERR Invalid metadata value given: {}", String::from_utf8_lossy(p)));
        }
    }
    let Some(name) = name else { return Err("ERR Library name was not given".into()) };
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!("ERR Engine '{}' not found", String::from_utf8_lossy(engine)));
    }
    if !valid_name(name) {
        return Err(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
                .into(),
        );
    }
    Ok((name.to_vec(), code[nl..].to_vec()))
}

pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An EVAL script's shebang: None without one; Some((flags, offset of
/// the code after the shebang line)).
pub fn parse_shebang(body: &[u8]) -> Result<Option<(u32, usize)>, String> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let Some(nl) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let mut parts = body[2..nl].split(|&b| b == b' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or(b"");
    if engine != b"lua" {
        return Err(format!("ERR Unexpected engine in script shebang: #!{}", String::from_utf8_lossy(engine)));
    }
    let mut flags = 0;
    for p in parts {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {}", String::from_utf8_lossy(p)));
        };
        flags = 0;
        for f in list.split(|&b| b == b',').filter(|f| !f.is_empty()) {
            match FLAG_NAMES.iter().find(|(n, _)| n.as_bytes() == f) {
                Some((_, bit)) => flags |= bit,
                None => return Err(format!("ERR Unexpected flag in script shebang: {}", String::from_utf8_lossy(f))),
            }
        }
    }
    Ok(Some((flags, nl)))
}

/// RDB_OPCODE_FUNCTION2: one library, its code as an RDB string.
const OPCODE_FUNCTION2: u8 = 245;

/// FUNCTION DUMP's payload, in Redis 7.0's format: per library the
/// FUNCTION2 opcode and its code as an RDB string, then the RDB version
/// and CRC-64 trailer a key's DUMP has. Libraries go in name order
/// (Redis's follow its hash table, so they vary between its processes);
/// strings are not LZF-compressed (Redis reads either, and writes them
/// so with `rdbcompression no`).
pub fn dump(libs: &Libs) -> Vec<u8> {
    let mut out = Vec::new();
    for code in libs.libs.values() {
        out.push(OPCODE_FUNCTION2);
        crate::rdb::put_string(&mut out, code);
    }
    out.extend_from_slice(&crate::rdb::RDB_VERSION.to_le_bytes());
    let crc = crate::rdb::crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' code in a DUMP payload (Redis 7.0's format, or the
/// `SHFN` format shardis wrote before, which logs may still hold in
/// FUNCTION RESTORE records); errors as Redis's FUNCTION RESTORE.
pub fn undump(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if payload.starts_with(b"SHFN\x01") {
        return undump_shfn(payload);
    }
    if !crate::rdb::payload::verify(payload) {
        return Err(crate::rdb::payload::WRONG.into());
    }
    let mut r = crate::rdb::Reader::new(&payload[..payload.len() - 10]);
    let mut codes = Vec::new();
    while r.remaining() > 0 {
        if r.u8().ok() != Some(OPCODE_FUNCTION2) {
            return Err("ERR given type is not a function".into());
        }
        let code = r.string().map_err(|_| "ERR Failed loading library payload".to_string())?;
        codes.push(code.into_owned());
    }
    Ok(codes)
}

/// shardis's first format: `SHFN` 1, per library a u32 (big-endian)
/// length and its code, then the CRC32C of everything before it.
fn undump_shfn(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bad = || crate::rdb::payload::WRONG.to_string();
    if payload.len() < 9 {
        return Err(bad());
    }
    let (body, crc) = payload.split_at(payload.len() - 4);
    if crate::persist::crc32c::crc32c(body).to_be_bytes() != crc {
        return Err(bad());
    }
    let mut pos = 5;
    let mut codes = Vec::new();
    while pos < body.len() {
        let len = body.get(pos..pos + 4).ok_or_else(bad)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        pos += 4;
        codes.push(body.get(pos..pos.saturating_add(len)).ok_or_else(bad)?.to_vec());
        pos += len;
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_shebangs() {
        assert_eq!(parse_library(b"#!lua name=x\nreturn 1"), Ok((b"x".to_vec(), b"\nreturn 1".to_vec())));
        assert_eq!(parse_library(b"return 1"), Err("ERR Missing library metadata".into()));
        assert_eq!(parse_library(b"#!lua name=x"), Err("ERR Invalid library metadata".into()));
        assert_eq!(parse_library(b"#!lub name=x\n"), Err("ERR Engine 'lub' not found".into()));
        assert_eq!(parse_library(b"#!lua\n"), Err("ERR Library name was not given".into()));
        assert!(parse_library(b"#!lua name=a-b\n").is_err());
        assert_eq!(parse_shebang(b"return 1"), Ok(None));
        assert_eq!(parse_shebang(b"#!lua flags=no-writes,allow-oom\nx"), Ok(Some((NO_WRITES | ALLOW_OOM, 31))));
        assert_eq!(parse_shebang(b"#!lua"), Err("ERR Invalid script shebang".into()));
        assert_eq!(parse_shebang(b"#!lua flags=x\n"), Err("ERR Unexpected flag in script shebang: x".into()));
    }

    #[test]
    fn dump_round_trips_and_checks() {
        let mut l = Libs::default();
        l.insert(b"a".to_vec(), Arc::from(&b"#!lua name=a\n"[..]));
        l.insert(b"b".to_vec(), Arc::from(&b"#!lua name=b\n"[..]));
        let d = dump(&l);
        assert_eq!(undump(&d).map(|v| v.len()), Ok(2));
        let mut bad = d.clone();
        bad[7] ^= 1;
        assert!(undump(&bad).is_err());
        assert!(undump(b"junk").is_err());
        // The format shardis wrote before: still read.
        let mut old = b"SHFN\x01".to_vec();
        old.extend_from_slice(&13u32.to_be_bytes());
        old.extend_from_slice(b"#!lua name=a\n");
        let crc = crate::persist::crc32c::crc32c(&old);
        old.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(undump(&old), Ok(vec![b"#!lua name=a\n".to_vec()]));
    }
}

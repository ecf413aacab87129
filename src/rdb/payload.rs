//! A DUMP payload as Redis frames it:
//!
//! ```text
//! object type | object | RDB version (2 bytes LE) | CRC-64 of all before (8 bytes LE)
//! ```
//! shardis writes version 10 (redis-server 7.0's, so that 7.0 RESTOREs it)
//! and reads up to 11.

use super::{crc64, object, Reader, RDB_VERSION, RDB_VERSION_READ};
use crate::keyspace::Value;

/// Redis's replies for a payload it cannot take.
pub const WRONG: &str = "ERR DUMP payload version or checksum are wrong";
pub const BAD: &str = "ERR Bad data format";

/// The DUMP payload of `value`.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    object::encode(&mut out, value);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Whether the payload's trailer is right: a version shardis reads and
/// a matching CRC-64 (what Redis's verifyDumpPayload checks).
pub fn verify(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let (body, crc) = payload.split_at(payload.len() - 8);
    let version = u16::from_le_bytes([body[body.len() - 2], body[body.len() - 1]]);
    version <= RDB_VERSION_READ && crc64::crc64(body).to_le_bytes() == crc
}

/// The value in a payload, or Redis's error text.
pub fn restore(payload: &[u8]) -> Result<Value, &'static str> {
    if !verify(payload) {
        return Err(WRONG);
    }
    let body = &payload[..payload.len() - 10];
    let (&t, obj) = body.split_first().ok_or(BAD)?;
    if !object::is_object_type(t) {
        return Err(BAD);
    }
    object::decode(t, &mut Reader::new(obj)).map_err(|_| BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_payloads_restore() {
        // DUMP output of redis-server 7.0.15.
        let cases: &[(&[u8], &str)] = &[
            (b"\x00\x0b12345678901\n\x000NR\xd7'\x17e\x10", "string"),
            (b"\x00\xc3\t.\x01aa\xe0!\x00\x01aa\n\x00\r\x9d\x96LV\x95a\x8a", "string"),
            (b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\xfd\xff\x01\x00\x05\x00\n\x00~+X\x95ct\x8f\xa4", "set"),
            (
                b"\x10\x18\x18\x00\x00\x00\x06\x00\x81f\x02\x81v\x02\x81a\x02\x01\x01\x81b\x02\xc1,\x02\xff\n\x00\r\xa6Qt\x16>\xe6\xf6",
                "hash",
            ),
            (
                b"\x12\x01\x02\x17\x17\x00\x00\x00\x05\x00\x81a\x02\x01\x01\xdf\xfb\x02\xc1,\x02\xf2p\x11\x01\x04\xff\n\x00\xe7\x9cX\x7f\xa8q\xb8f",
                "list",
            ),
        ];
        for (p, ty) in cases {
            let v = restore(p).expect("restores");
            assert_eq!(v.type_name(), *ty);
            if p[1] != 0xc3 {
                // shardis writes the same bytes (the long string Redis compressed).
                assert_eq!(&dump(&v)[..], *p, "{ty}");
            }
        }
        let big = restore(cases[1].0).expect("restores");
        let mut b = [0u8; 24];
        assert_eq!(big.str_bytes(&mut b), Some(&[b'a'; 46][..]));
    }

    #[test]
    fn bad_trailers_are_refused() {
        let p = dump(&Value::from_bytes(b"v"));
        assert!(restore(&p).is_ok());
        for i in 0..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 1;
            assert_eq!(restore(&bad).err(), Some(WRONG), "byte {i}");
        }
        assert_eq!(restore(&p[..5]).err(), Some(WRONG));
        // Version 12 with a right checksum is still refused.
        let mut v12 = p[..p.len() - 10].to_vec();
        v12.extend_from_slice(&12u16.to_le_bytes());
        let crc = crc64::crc64(&v12);
        v12.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(restore(&v12).err(), Some(WRONG));
    }

    /// Mutated payloads with a right trailer (what the fuzz target does,
    /// briefly, in every test run): an error or a value, never a panic.
    #[test]
    fn mutated_payloads_never_panic() {
        use crate::keyspace::stream::{Group, Stream, StreamId};
        let mut st = Stream::new();
        for i in 1..30u64 {
            st.append(StreamId::new(i, 0), &[b"f", b"v"]);
        }
        st.last_id = StreamId::new(29, 0);
        let mut g = Group::new(StreamId::new(3, 0), 3);
        g.ensure_consumer(b"c", 1);
        g.assign(StreamId::new(2, 0), b"c");
        st.groups.insert(Box::from(&b"g"[..]), g);
        let mut h = crate::keyspace::hash::Hash::new();
        h.set(b"field", b"value");
        let seeds: Vec<Vec<u8>> = vec![
            dump(&Value::Stream(Box::new(st))),
            dump(&Value::Hash(h)),
            dump(&Value::List(Box::new(crate::keyspace::list::List::from_elements([&b"a"[..], b"12", b"-7"])))),
        ];
        let mut rng = crate::cmd::Rng::new(7);
        for _ in 0..20_000 {
            let seed = &seeds[rng.below(seeds.len() as u64) as usize];
            let mut body = seed[..seed.len() - 10].to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(body.len() as u64) as usize;
                match rng.below(3) {
                    0 => body[at] = rng.below(256) as u8,
                    1 => body.truncate(at.max(1)),
                    _ => body.insert(at, rng.below(256) as u8),
                }
            }
            body.extend_from_slice(&10u16.to_le_bytes());
            let crc = crc64::crc64(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            if let Ok(v) = restore(&body) {
                assert!(restore(&dump(&v)).is_ok());
            }
        }
    }
}

//! DEBUG's subcommands over keys, which may live on any shard: OBJECT,
//! LISTPACK (the key's owner answers), DIGEST-VALUE (each key's owner),
//! DIGEST and POPULATE (every shard for its own keys). The connection's
//! shard fans a `FanReq::Debug` out and merges (`FanOp::Debug`).
//!
//! The digests are shardis's own (Redis's need not match): a key's digest
//! is a SHA-1 over its db, name, expiry and value digest; DIGEST XORs them,
//! so it is the same however the keys are spread over shards, and 40 zeros
//! for an empty keyspace, as Redis. A value digest is order-free where the
//! type is (set members, hash fields) and ordered where it is (list, zset).

use crate::keyspace::{Entry, Keyspace, Value};
use crate::protocol::reply::Reply;
use crate::script::sha1::sha1;
use crate::shard::core::Shard;
use crate::shard::FanResp;

/// What a shard is asked for.
#[derive(Debug, Clone)]
pub enum DebugOp {
    Object(Vec<u8>),
    Listpack(Vec<u8>),
    /// The keys, with their places in the request (each shard answers
    /// for those it owns).
    DigestValue(Vec<(usize, Vec<u8>)>),
    Digest,
    Populate {
        count: u64,
        prefix: Vec<u8>,
        size: Option<u64>,
    },
}

/// What the merging shard does with the answers.
#[derive(Debug)]
pub enum DebugMerge {
    /// The owner's reply as it is.
    One,
    /// `n` digests in request order (keys no shard has: zeros).
    Values(usize),
    Digest,
    Ok,
}

const ZERO: [u8; 20] = [0; 20];

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn xor(acc: &mut [u8; 20], d: &[u8; 20]) {
    for (a, b) in acc.iter_mut().zip(d) {
        *a ^= b;
    }
}

fn framed(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
    buf.extend_from_slice(b);
}

/// A value's digest (see the module's note on order).
pub fn value_digest(v: &Value) -> [u8; 20] {
    let mut buf = Vec::new();
    match v {
        Value::Int(_) | Value::Inline { .. } | Value::Str { .. } => {
            let mut b = [0u8; 24];
            buf.push(b's');
            framed(&mut buf, v.str_bytes(&mut b).unwrap_or_default());
        }
        Value::List(l) => {
            buf.push(b'l');
            l.for_each(|e| framed(&mut buf, e));
        }
        Value::Set(s) => {
            let mut acc = ZERO;
            s.for_each(|m| xor(&mut acc, &sha1(m)));
            buf.push(b'S');
            buf.extend_from_slice(&acc);
        }
        Value::Hash(h) => {
            let mut acc = ZERO;
            h.for_each(|f, val| {
                let mut pair = Vec::with_capacity(f.len() + val.len() + 16);
                framed(&mut pair, f);
                framed(&mut pair, val);
                xor(&mut acc, &sha1(&pair));
            });
            buf.push(b'h');
            buf.extend_from_slice(&acc);
        }
        Value::ZSet(z) => {
            buf.push(b'z');
            z.for_each(|m, score| {
                framed(&mut buf, m);
                buf.extend_from_slice(&score.to_bits().to_le_bytes());
            });
        }
        // Its serialisation is canonical: entries by ID, groups by name.
        Value::Stream(_) => {
            buf.push(b'x');
            buf.extend_from_slice(&crate::rdb::payload::dump(v));
        }
    }
    sha1(&buf)
}

fn key_digest(db: usize, e: &Entry) -> [u8; 20] {
    let mut buf = Vec::with_capacity(e.key().len() + 48);
    buf.extend_from_slice(&(db as u64).to_le_bytes());
    framed(&mut buf, e.key());
    buf.extend_from_slice(&e.expire().to_le_bytes());
    buf.extend_from_slice(&value_digest(&e.value));
    sha1(&buf)
}

/// The XOR of every live key's digest on this keyspace.
pub(crate) fn keyspace_digest(ks: &Keyspace, now: i64) -> [u8; 20] {
    let mut acc = ZERO;
    for (db, d) in ks.dbs.iter().enumerate() {
        for e in d.dict.iter() {
            if e.expire() == 0 || e.expire() > now {
                xor(&mut acc, &key_digest(db, e));
            }
        }
    }
    acc
}

/// Bytes of one element in a listpack as Redis encodes it (for
/// ql_uncompressed_size): integers packed, strings with a length header,
/// each with its back-length.
fn lp_entry_len(b: &[u8]) -> usize {
    let enc = match std::str::from_utf8(b).ok().filter(|s| s.len() <= 20).and_then(|s| s.parse::<i64>().ok()) {
        Some(n) if n.to_string().as_bytes() == b => match n {
            0..=127 => 1,
            -4096..=4095 => 2,
            n if i16::try_from(n).is_ok() => 3,
            n if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
            n if i32::try_from(n).is_ok() => 5,
            _ => 9,
        },
        _ if b.len() < 64 => 1 + b.len(),
        _ if b.len() < 4096 => 2 + b.len(),
        _ => 5 + b.len(),
    };
    let back = match enc {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    enc + back
}

/// DEBUG OBJECT's line for an entry.
fn object_line(e: &Entry, now: i64) -> String {
    let enc = e.value.encoding();
    let serialized = crate::rdb::payload::dump(&e.value).len().saturating_sub(11);
    let lru = e.clock() & ((1 << 24) - 1);
    let idle = crate::keyspace::evict::lru_idle_ms(e.clock(), now) / 1000;
    // The entry's address stands for Redis's object pointer.
    let mut s = format!(
        "Value at:{:p} refcount:1 encoding:{enc} serializedlength:{serialized} lru:{lru} lru_seconds_idle:{idle}",
        &e.value as *const Value
    );
    if let (Value::List(l), "quicklist") = (&e.value, enc) {
        let sizes: Vec<(usize, usize)> =
            l.nodes().map(|n| n.fold((0, 7), |(c, b), el| (c + 1, b + lp_entry_len(el)))).collect();
        let nodes = sizes.len().max(1);
        let fill = crate::keyspace::limits::LIST_MAX_LISTPACK_SIZE.get();
        s.push_str(&format!(
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{fill} ql_compressed:0 ql_uncompressed_size:{}",
            sizes.len(),
            l.len() as f64 / nodes as f64,
            sizes.iter().map(|x| x.1).sum::<usize>()
        ));
    }
    s
}

impl Shard {
    /// This shard's part of a DEBUG subcommand over keys.
    pub fn debug_keys(&mut self, db: usize, op: &DebugOp) -> FanResp {
        let now = crate::util::now_ms();
        match op {
            DebugOp::Object(key) => {
                let mut out = Vec::new();
                let mut r = Reply::new(&mut out, false);
                match self.ks.peek(db, key, now) {
                    Some(e) => r.simple(&object_line(e, now)),
                    None => r.error("ERR no such key"),
                }
                FanResp::Reply(out)
            }
            DebugOp::Listpack(key) => {
                let mut out = Vec::new();
                let mut r = Reply::new(&mut out, false);
                match self.ks.peek(db, key, now) {
                    None => r.error("ERR no such key"),
                    // A list is a quicklist in Redis 7.0 whatever its size
                    // (`Value::encoding`): refused there.
                    Some(e) if e.value.encoding() == "listpack" => {
                        crate::log(&format!(
                            "DEBUG LISTPACK {}: {} {} with {} bytes serialized",
                            String::from_utf8_lossy(key),
                            e.value.type_name(),
                            e.value.encoding(),
                            crate::rdb::payload::dump(&e.value).len().saturating_sub(11)
                        ));
                        r.simple("Listpack structure printed on stdout")
                    }
                    Some(_) => r.error("ERR Not a listpack encoded object."),
                }
                FanResp::Reply(out)
            }
            DebugOp::DigestValue(keys) => FanResp::Keys(
                keys.iter()
                    .filter(|(_, k)| self.shared.slots.shard_of(k) == self.id)
                    .map(|(i, k)| {
                        let d = self.ks.peek(db, k, now).map_or(ZERO, |e| value_digest(&e.value));
                        [&(*i as u64).to_le_bytes()[..], &d[..]].concat()
                    })
                    .collect(),
            ),
            DebugOp::Digest => FanResp::Key(Some(keyspace_digest(&self.ks, now).to_vec())),
            DebugOp::Populate { count, prefix, size } => {
                // As a command: the new keys' clocks start now.
                self.ks.begin_command(now, false);
                for j in 0..*count {
                    let key = [&prefix[..], format!(":{j}").as_bytes()].concat();
                    if self.shared.slots.shard_of(&key) != self.id || self.ks.peek(db, &key, now).is_some() {
                        continue;
                    }
                    let mut val = format!("value:{j}").into_bytes();
                    if let Some(n) = size {
                        // As Redis: the text cut or padded with zero bytes.
                        val.resize(*n as usize, 0);
                    }
                    self.ks.set(db, &key, Value::from_bytes(&val), 0);
                    self.log_global(db, &[&b"SET"[..], &key, &val]);
                }
                self.ks.end_command();
                FanResp::Ack
            }
        }
    }
}

/// The merged reply of a DEBUG subcommand over keys.
pub fn merge(r: &mut Reply, how: &DebugMerge, resps: Vec<(usize, FanResp)>) {
    match how {
        DebugMerge::One => {
            for (_, resp) in resps {
                if let FanResp::Reply(b) = resp {
                    r.raw(&b);
                    return;
                }
            }
            r.error("ERR no such key")
        }
        DebugMerge::Values(n) => {
            let mut digests = vec![ZERO; *n];
            for (_, resp) in resps {
                if let FanResp::Keys(items) = resp {
                    for item in items {
                        if item.len() == 28 {
                            let i = u64::from_le_bytes(item[..8].try_into().unwrap_or([0; 8])) as usize;
                            if let (Some(slot), Ok(d)) = (digests.get_mut(i), <[u8; 20]>::try_from(&item[8..])) {
                                *slot = d;
                            }
                        }
                    }
                }
            }
            r.array(digests.len());
            for d in &digests {
                r.simple(&hex(d));
            }
        }
        DebugMerge::Digest => {
            let mut acc = ZERO;
            for (_, resp) in resps {
                if let FanResp::Key(Some(d)) = resp {
                    if let Ok(d) = <[u8; 20]>::try_from(&d[..]) {
                        xor(&mut acc, &d);
                    }
                }
            }
            r.simple(&hex(&acc))
        }
        DebugMerge::Ok => r.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_entry_sizes_as_redis() {
        // "a", "b", "c" in one listpack: 6 + 3 * 3 + 1 = 16 (redis-server's
        // ql_uncompressed_size for RPUSH l a b c).
        assert_eq!(7 + ["a", "b", "c"].iter().map(|s| lp_entry_len(s.as_bytes())).sum::<usize>(), 16);
        assert_eq!(lp_entry_len(b"100"), 2);
        assert_eq!(lp_entry_len(b"007"), 5);
    }

    #[test]
    fn set_digest_is_order_free() {
        let mut a = crate::keyspace::Value::from_bytes(b"x");
        let b = a.deep_clone();
        assert_eq!(value_digest(&a), value_digest(&b));
        a = crate::keyspace::Value::from_bytes(b"y");
        assert_ne!(value_digest(&a), value_digest(&b));
    }
}

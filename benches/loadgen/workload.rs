//! What the load generator sends: a GET/SET mix, or two-key MSETs of which
//! a chosen share spans shards (to measure the cost of cross-shard
//! transactions). Requests are appended to a connection's write buffer.

use crate::keys::{KeyChooser, Rng};
use shardis::protocol::reply::encode_command as encode;
use shardis::shard::router::SlotMap;

pub enum Mix {
    /// `get_ratio` of requests are GET, the rest SET.
    GetSet { get_ratio: f64 },
    /// MSET of two keys; `cross` of them on different shards of a server
    /// whose shards serve `slots`, the rest on one shard via a `{hash tag}`.
    Mset { cross: f64, slots: SlotMap },
}

impl Mix {
    pub fn parse(workload: &str, get_ratio: f64, cross: f64, shards: usize) -> Result<Mix, String> {
        match workload {
            "getset" => {
                if !(0.0..=1.0).contains(&get_ratio) {
                    return Err("--get-ratio must be in [0, 1]".into());
                }
                Ok(Mix::GetSet { get_ratio })
            }
            "mset" => {
                if !(0.0..=1.0).contains(&cross) {
                    return Err("--cross must be in [0, 1]".into());
                }
                if cross > 0.0 && shards < 2 {
                    return Err("--cross > 0 needs --shards >= 2 (the server's shard count)".into());
                }
                Ok(Mix::Mset { cross, slots: SlotMap::contiguous(shards) })
            }
            other => Err(format!("--workload must be getset or mset, got '{other}'")),
        }
    }
}

pub struct Workload {
    mix: Mix,
    chooser: KeyChooser,
    value: Vec<u8>,
    rng: Rng,
    k1: Vec<u8>,
    k2: Vec<u8>,
}

/// `key:%012d`, the key format of the preload and of redis-benchmark -r.
pub fn key_into(out: &mut Vec<u8>, k: u64) {
    out.clear();
    out.extend_from_slice(b"key:");
    let mut digits = [b'0'; 12];
    let mut n = k;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
}

/// `{key:%012d}:suffix`: the tag pins both keys of an MSET to one shard.
fn tagged_into(out: &mut Vec<u8>, k: u64, suffix: &[u8]) {
    let mut tmp = Vec::with_capacity(16);
    key_into(&mut tmp, k);
    out.clear();
    out.push(b'{');
    out.extend_from_slice(&tmp);
    out.push(b'}');
    out.extend_from_slice(suffix);
}

impl Workload {
    pub fn new(mix: Mix, chooser: KeyChooser, value_size: usize, seed: u64) -> Self {
        Workload { mix, chooser, value: vec![b'v'; value_size], rng: Rng::new(seed), k1: Vec::new(), k2: Vec::new() }
    }

    /// Append the next request to `out`.
    pub fn next(&mut self, out: &mut Vec<u8>) {
        match &self.mix {
            &Mix::GetSet { get_ratio } => {
                key_into(&mut self.k1, self.chooser.pick(&mut self.rng));
                if self.rng.next_f64() < get_ratio {
                    encode(out, &[&b"GET"[..], &self.k1]);
                } else {
                    encode(out, &[&b"SET"[..], &self.k1, &self.value]);
                }
            }
            Mix::Mset { cross, slots } => {
                let a = self.chooser.pick(&mut self.rng);
                if self.rng.next_f64() < *cross {
                    key_into(&mut self.k1, a);
                    let home = slots.shard_of(&self.k1);
                    // A random partner; slots spread keys evenly over shards,
                    // so a few draws find one elsewhere. Walking on from the
                    // last draw bounds the loop even for a hot Zipf key.
                    let mut b = self.chooser.pick(&mut self.rng);
                    for i in 0.. {
                        key_into(&mut self.k2, b);
                        if slots.shard_of(&self.k2) != home || i > 10_000 {
                            break;
                        }
                        b = if i < 8 { self.chooser.pick(&mut self.rng) } else { b.wrapping_add(1) };
                    }
                } else {
                    tagged_into(&mut self.k1, a, b":a");
                    tagged_into(&mut self.k2, a, b":b");
                }
                encode(out, &[&b"MSET"[..], &self.k1, &self.value, &self.k2, &self.value]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MSET keys of each request in `buf` (written by `encode`).
    fn mset_keys(buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let text = String::from_utf8_lossy(buf).into_owned();
        text.split("*5\r\n")
            .filter(|s| !s.is_empty())
            .map(|req| {
                let f: Vec<&str> = req.split("\r\n").collect();
                // $4 MSET $n k1 $n v $n k2 $n v
                (f[3].as_bytes().to_vec(), f[7].as_bytes().to_vec())
            })
            .collect()
    }

    fn cross_share(cross: f64, dist: &str) -> f64 {
        let shards = 4;
        let slots = SlotMap::contiguous(shards);
        let mix = Mix::parse("mset", 0.9, cross, shards).expect("valid");
        let mut w = Workload::new(mix, KeyChooser::parse(dist, 10_000).expect("valid"), 3, 5);
        let mut buf = Vec::new();
        for _ in 0..2000 {
            w.next(&mut buf);
        }
        let keys = mset_keys(&buf);
        assert_eq!(keys.len(), 2000);
        let crossing = keys.iter().filter(|(a, b)| slots.shard_of(a) != slots.shard_of(b)).count();
        crossing as f64 / keys.len() as f64
    }

    #[test]
    fn mset_cross_share_is_as_asked() {
        assert_eq!(cross_share(0.0, "uniform"), 0.0);
        assert_eq!(cross_share(1.0, "uniform"), 1.0);
        assert_eq!(cross_share(1.0, "zipf:0.99"), 1.0);
        let s = cross_share(0.1, "uniform");
        assert!((0.07..0.13).contains(&s), "{s}");
    }

    #[test]
    fn getset_mix_and_key_format() {
        let mix = Mix::parse("getset", 0.9, 0.0, 1).expect("valid");
        let mut w = Workload::new(mix, KeyChooser::parse("uniform", 100).expect("valid"), 3, 1);
        let mut buf = Vec::new();
        for _ in 0..1000 {
            w.next(&mut buf);
        }
        let text = String::from_utf8_lossy(&buf);
        let gets = text.matches("$3\r\nGET\r\n").count();
        let sets = text.matches("$3\r\nSET\r\n").count();
        assert_eq!(gets + sets, 1000);
        assert!((850..950).contains(&gets), "{gets}");
        let mut k = Vec::new();
        key_into(&mut k, 42);
        assert_eq!(k, b"key:000000000042");
        assert!(Mix::parse("mset", 0.9, 0.5, 1).is_err());
        assert!(Mix::parse("bogus", 0.9, 0.0, 1).is_err());
    }
}

//! Where the commands of a master's record go on this replica (pure).
//!
//! With the same shard count on both sides the slot maps are the same, so
//! master shard m's records go whole to shard m. Otherwise each command
//! goes to the shard owning its keys (commands in a row for one shard stay
//! together, each part starting in the db it runs in), and keyless ones
//! (FLUSHDB, FLUSHALL, SWAPDB: each master shard logs its own) to every
//! shard. A logged command's keys share one slot (`cmd::cross_slot`),
//! except MSET, DEL and UNLINK, which are cut into one command per shard.

use crate::cmd::flags::SPLITS_BY_KEY;
use crate::cmd::table::Handler;
use crate::cmd::{self, Args};
use crate::persist::record;
use crate::shard::router::SlotMap;

#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub shard: usize,
    pub db: u8,
    pub payload: Vec<u8>,
}

/// Split a record's `payload` (starting in `db`) from master shard
/// `mshard` (whose map is `master`) over this server's `local` map.
pub fn split(payload: &[u8], db: u8, mshard: usize, master: &SlotMap, local: &SlotMap) -> Result<Vec<Part>, String> {
    if master.shards() == local.shards() {
        return Ok(vec![Part { shard: mshard, db, payload: payload.to_vec() }]);
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut cur_db = db;
    let mut pos = 0;
    let mut ranges = Vec::new();
    while pos < payload.len() {
        let used = record::parse_command_ranges(&payload[pos..], &mut ranges)
            .ok_or_else(|| format!("malformed command at payload offset {}", pos))?;
        let bytes = &payload[pos..pos + used];
        pos += used;
        if ranges.is_empty() {
            continue;
        }
        let args = Args::new(bytes, &ranges);
        if args.get(0).eq_ignore_ascii_case(crate::persist::load::REPLPOS) {
            continue; // the master's own position as a replica: not ours
        }
        let Some((_, def)) = cmd::find(&args) else {
            return Err(format!("unknown command {:?} in the stream", String::from_utf8_lossy(args.get(0))));
        };
        if matches!(def.handler, Handler::Session(_)) {
            // SELECT: where the next commands run.
            if let Some(n) = std::str::from_utf8(args.get(1)).ok().and_then(|s| s.parse::<u8>().ok()) {
                cur_db = n;
            }
            continue;
        }
        let keys: Vec<(usize, usize)> =
            cmd::key_positions(def, &args).map(|k| (k, local.shard_of(args.get(k)))).collect();
        let add = |parts: &mut Vec<Part>, shard: usize, bytes: &[u8]| match parts.last_mut() {
            Some(p) if p.shard == shard && p.db == cur_db => p.payload.extend_from_slice(bytes),
            _ => parts.push(Part { shard, db: cur_db, payload: bytes.to_vec() }),
        };
        match keys.first() {
            None => {
                for shard in 0..local.shards() {
                    add(&mut parts, shard, bytes);
                }
            }
            Some(&(_, shard)) if !def.has(SPLITS_BY_KEY) || keys.iter().all(|k| k.1 == shard) => {
                // Masters log other writes over several slots as key
                // states (`cmd::cross_slot`), so their keys share a shard.
                add(&mut parts, shard, bytes)
            }
            Some(_) => {
                for (shard, cmd) in cut_by_key(&args, &keys) {
                    add(&mut parts, shard, &cmd);
                }
            }
        }
    }
    Ok(parts)
}

/// A `SPLITS_BY_KEY` command as one command per shard: each key takes the
/// arguments up to the next key (MSET's value) along.
fn cut_by_key(args: &Args, keys: &[(usize, usize)]) -> Vec<(usize, Vec<u8>)> {
    let mut shards: Vec<usize> = keys.iter().map(|k| k.1).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
        .into_iter()
        .map(|shard| {
            let mut parts: Vec<&[u8]> = vec![args.get(0)];
            for (i, &(pos, s)) in keys.iter().enumerate() {
                if s == shard {
                    let end = keys.get(i + 1).map_or(args.len(), |k| k.0);
                    parts.extend((pos..end).map(|a| args.get(a)));
                }
            }
            let mut out = Vec::new();
            crate::keyspace::effects::encode_array(&mut out, parts.iter().copied(), parts.len());
            (shard, out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::effects::encode_array;

    fn payload(cmds: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            encode_array(&mut out, c.iter().map(|s| s.as_bytes()), c.len());
        }
        out
    }

    #[test]
    fn same_shard_count_sends_the_record_whole() {
        let p = payload(&[&["SET", "a", "1"], &["SET", "b", "2"]]);
        let m = SlotMap::contiguous(4);
        assert_eq!(split(&p, 3, 2, &m, &m), Ok(vec![Part { shard: 2, db: 3, payload: p.clone() }]));
    }

    #[test]
    fn other_counts_route_by_key_and_keep_the_db() {
        let local = SlotMap::contiguous(3);
        let master = SlotMap::contiguous(1);
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut cmds: Vec<Vec<&str>> = vec![vec!["SELECT", "5"]];
        cmds.extend(keys.iter().map(|k| vec!["SET", k.as_str(), "v"]));
        cmds.push(vec!["FLUSHDB"]);
        let refs: Vec<&[&str]> = cmds.iter().map(|c| c.as_slice()).collect();
        let parts = split(&payload(&refs), 0, 0, &master, &local).expect("splits");
        let mut seen = 0;
        for p in &parts {
            assert_eq!(p.db, 5);
            for c in record::commands(&p.payload) {
                let c = c.expect("a command");
                if c[0] == b"SET" {
                    assert_eq!(local.shard_of(c[1]), p.shard);
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 40);
        let flushes = parts.iter().filter(|p| p.payload.ends_with(b"FLUSHDB\r\n")).count();
        assert_eq!(flushes, 3, "a keyless command goes to every shard");
        assert!(split(b"*1\r\n$3\r\nXYZ\r\n", 0, 0, &master, &local).is_err());
        // MSET and DEL over keys of several shards: one command per shard.
        let mset: Vec<&str> = ["MSET"].into_iter().chain(keys.iter().flat_map(|k| [k.as_str(), "v"])).collect();
        let del: Vec<&str> = ["DEL"].into_iter().chain(keys.iter().map(|k| k.as_str())).collect();
        let parts = split(&payload(&[&mset, &del]), 0, 0, &master, &local).expect("splits");
        let (mut sets, mut dels) = (0, 0);
        for p in &parts {
            for c in record::commands(&p.payload) {
                let c = c.expect("a command");
                let step = if c[0] == b"MSET" { 2 } else { 1 };
                assert_eq!((c.len() - 1) % step, 0);
                for k in c[1..].iter().step_by(step) {
                    assert_eq!(local.shard_of(k), p.shard, "{:?}", String::from_utf8_lossy(k));
                }
                if step == 2 {
                    assert!(c[2..].iter().step_by(2).all(|v| &v[..] == b"v"));
                    sets += (c.len() - 1) / 2;
                } else {
                    dels += c.len() - 1;
                }
            }
        }
        assert_eq!((sets, dels), (40, 40));
        assert!(split(b"*1\r\n$9\r\nXYZ\r\n", 0, 0, &master, &local).is_err());
    }
}

//! Where the commands of a master's record go on this replica (pure).
//!
//! With the same shard count on both sides the slot maps are the same, so
//! master shard m's records go whole to shard m. Otherwise each command
//! goes to the shard owning its keys (commands in a row for one shard stay
//! together, each part starting in the db it runs in), and keyless ones
//! (FLUSHDB, FLUSHALL, SWAPDB: each master shard logs its own) to every
//! shard.

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
        let targets: Vec<usize> = match cmd::key_positions(def, &args).next() {
            Some(k) => vec![local.shard_of(args.get(k))],
            None => (0..local.shards()).collect(),
        };
        for shard in targets {
            match parts.last_mut() {
                Some(p) if p.shard == shard && p.db == cur_db => p.payload.extend_from_slice(bytes),
                _ => parts.push(Part { shard, db: cur_db, payload: bytes.to_vec() }),
            }
        }
    }
    Ok(parts)
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
        assert!(split(b"*1\r\n$9\r\nXYZ\r\n", 0, 0, &master, &local).is_err());
    }
}

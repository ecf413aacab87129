//! Where the commands of a master's record go on this replica (pure).
//!
//! With the same shard count on both sides the slot maps are the same, so
//! master shard m's records go whole to shard m. Otherwise each command
//! goes to the shard owning its keys (commands in a row for one shard stay
//! together, each part starting in the db it runs in), and keyless ones to
//! every shard. A logged command's keys share one slot (`cmd::cross_slot`),
//! except MSET, DEL and UNLINK, which are cut into one command per shard.
//!
//! FLUSHDB, FLUSHALL and SWAPDB are logged by each master shard for its own
//! keys, at its own place in its own stream. Sent as they are to every
//! shard here, master shard 0's FLUSHALL would also delete what master
//! shard 1 wrote after its own FLUSHALL; so they become `REPLFLUSH` and
//! `REPLSWAP`, which act only on the keys the master shard owns.

use crate::cmd::flags::SPLITS_BY_KEY;
use crate::cmd::table::Handler;
use crate::cmd::{self, Args};
use crate::persist::record;
use crate::shard::router::SlotMap;

/// `REPLFLUSH <master shard> <master shards> <db>|ALL`: delete the keys
/// of that master shard (by its slot map) in one db or in all.
pub const REPLFLUSH: &[u8] = b"REPLFLUSH";
/// `REPLSWAP <master shard> <master shards> <a> <b>`: swap that master
/// shard's keys between dbs a and b.
pub const REPLSWAP: &[u8] = b"REPLSWAP";

/// What a REPLFLUSH or REPLSWAP asks: the keys it acts on and the change.
#[derive(Debug, PartialEq, Eq)]
pub enum OwnedChange {
    Flush { db: Option<usize> },
    Swap { a: usize, b: usize },
}

/// Parse a REPLFLUSH / REPLSWAP (None for any other command; Some(Err) for
/// a malformed one): the master's map, the master shard, the change.
pub fn parse_owned_change(args: &Args, dbs: usize) -> Option<Result<(SlotMap, usize, OwnedChange), ()>> {
    let flush = args.get(0).eq_ignore_ascii_case(REPLFLUSH);
    if !flush && !args.get(0).eq_ignore_ascii_case(REPLSWAP) {
        return None;
    }
    let num = |i: usize| std::str::from_utf8(args.get(i)).ok().and_then(|s| s.parse::<usize>().ok());
    let db = |i: usize| num(i).filter(|&d| d < dbs);
    let parsed = (|| {
        let (m, shards) = (num(1)?, num(2)?);
        if m >= shards || shards > crate::util::SLOTS as usize {
            return None;
        }
        let change = match (flush, args.len()) {
            (true, 4) if args.get(3).eq_ignore_ascii_case(b"ALL") => OwnedChange::Flush { db: None },
            (true, 4) => OwnedChange::Flush { db: Some(db(3)?) },
            (false, 5) => OwnedChange::Swap { a: db(3)?, b: db(4)? },
            _ => return None,
        };
        Some((SlotMap::contiguous(shards), m, change))
    })();
    Some(parsed.ok_or(()))
}

/// Append `bytes` to the last part if it is for the same shard and db.
fn add(parts: &mut Vec<Part>, shard: usize, db: u8, bytes: &[u8]) {
    match parts.last_mut() {
        Some(p) if p.shard == shard && p.db == db => p.payload.extend_from_slice(bytes),
        _ => parts.push(Part { shard, db, payload: bytes.to_vec() }),
    }
}

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
        if args.get(0).eq_ignore_ascii_case(REPLFLUSH) || args.get(0).eq_ignore_ascii_case(REPLSWAP) {
            // A chained master's: it names the keys it acts on already.
            for shard in 0..local.shards() {
                add(&mut parts, shard, cur_db, bytes);
            }
            continue;
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
        if let Some(owned) = owned_change(def.name, &args, mshard, master.shards(), cur_db) {
            for shard in 0..local.shards() {
                add(&mut parts, shard, cur_db, &owned);
            }
            continue;
        }
        let keys: Vec<(usize, usize)> =
            cmd::key_positions(def, &args).map(|k| (k, local.shard_of(args.get(k)))).collect();
        match keys.first() {
            None => {
                for shard in 0..local.shards() {
                    add(&mut parts, shard, cur_db, bytes);
                }
            }
            Some(&(_, shard)) if !def.has(SPLITS_BY_KEY) || keys.iter().all(|k| k.1 == shard) => {
                // Masters log other writes over several slots as key
                // states (`cmd::cross_slot`), so their keys share a shard.
                add(&mut parts, shard, cur_db, bytes)
            }
            Some(_) => {
                for (shard, cmd) in cut_by_key(&args, &keys) {
                    add(&mut parts, shard, cur_db, &cmd);
                }
            }
        }
    }
    Ok(parts)
}

/// FLUSHDB, FLUSHALL or SWAPDB of master shard `m` (of `shards`) as the
/// REPLFLUSH / REPLSWAP that acts on its keys only.
fn owned_change(name: &str, args: &Args, m: usize, shards: usize, db: u8) -> Option<Vec<u8>> {
    let (m, shards, db) = (m.to_string(), shards.to_string(), db.to_string());
    let cmd: Vec<&[u8]> = match name {
        "flushdb" => vec![REPLFLUSH, m.as_bytes(), shards.as_bytes(), db.as_bytes()],
        "flushall" => vec![REPLFLUSH, m.as_bytes(), shards.as_bytes(), b"ALL"],
        "swapdb" if args.len() == 3 => vec![REPLSWAP, m.as_bytes(), shards.as_bytes(), args.get(1), args.get(2)],
        _ => return None,
    };
    let mut out = Vec::new();
    crate::keyspace::effects::encode_array(&mut out, cmd.iter().copied(), cmd.len());
    Some(out)
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
    fn flushes_and_swaps_name_the_master_shard_and_pass_on_unchanged() {
        let (master, local) = (SlotMap::contiguous(4), SlotMap::contiguous(2));
        let p = payload(&[&["SELECT", "2"], &["FLUSHDB", "ASYNC"], &["FLUSHALL"], &["SWAPDB", "1", "3"]]);
        let parts = split(&p, 0, 3, &master, &local).expect("splits");
        let want = payload(&[
            &["REPLFLUSH", "3", "4", "2"],
            &["REPLFLUSH", "3", "4", "ALL"],
            &["REPLSWAP", "3", "4", "1", "3"],
        ]);
        let per_shard = |parts: &[Part], shard: usize| -> Vec<u8> {
            parts.iter().filter(|p| p.shard == shard && p.db == 2).flat_map(|p| p.payload.clone()).collect()
        };
        assert!(parts.iter().all(|p| p.shard < 2 && p.db == 2));
        assert_eq!((per_shard(&parts, 0), per_shard(&parts, 1)), (want.clone(), want.clone()));
        // A chained master's REPLFLUSH/REPLSWAP go on as they are.
        let three = SlotMap::contiguous(3);
        let parts = split(&want, 2, 1, &local, &three).expect("splits");
        for shard in 0..3 {
            assert_eq!(per_shard(&parts, shard), want);
        }
        // What they ask, and malformed ones.
        let parse = |c: &[&str]| {
            let b = payload(&[c]);
            let mut ranges = Vec::new();
            record::parse_command_ranges(&b, &mut ranges).expect("a command");
            parse_owned_change(&Args::new(&b, &ranges), 16).map(|r| r.map(|(map, m, ch)| (map.shards(), m, ch)))
        };
        assert_eq!(parse(&["REPLFLUSH", "1", "4", "ALL"]), Some(Ok((4, 1, OwnedChange::Flush { db: None }))));
        assert_eq!(parse(&["replswap", "0", "2", "0", "15"]), Some(Ok((2, 0, OwnedChange::Swap { a: 0, b: 15 }))));
        for bad in [
            &["REPLFLUSH", "4", "4", "0"][..],
            &["REPLFLUSH", "0", "4", "16"],
            &["REPLSWAP", "0", "4", "1"],
            &["REPLFLUSH", "x", "4", "1"],
            &["REPLFLUSH", "0", "0", "1"],
        ] {
            assert_eq!(parse(bad), Some(Err(())), "{bad:?}");
        }
        assert_eq!(parse(&["SET", "a", "b"]), None);
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
        // FLUSHDB acts on master shard 0's keys on every shard.
        let flush = payload(&[&["REPLFLUSH", "0", "1", "5"]]);
        let flushes = parts.iter().filter(|p| p.payload.ends_with(&flush)).count();
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

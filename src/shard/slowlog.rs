//! SLOWLOG: each shard keeps the commands it ran that took longer than
//! `slowlog-log-slower-than` µs, newest first, at most `slowlog-max-len` of
//! them. SLOWLOG GET/LEN/RESET fan out to every shard; ids come from one
//! counter shared by all shards, so merging by id gives Redis's order.
//! Pure logic: the shard hands in what it measured.

use crate::cmd::Args;
use crate::protocol::reply::Reply;
use std::collections::VecDeque;

/// Redis's limits on what an entry keeps of a command.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix time, seconds, when the command ran.
    pub time: i64,
    pub micros: u64,
    pub args: Vec<Vec<u8>>,
    /// ip:port and name of the client; empty for a command another shard
    /// forwarded here (the client is known only at its home shard).
    pub addr: String,
    pub name: Vec<u8>,
}

/// The entries; which commands are slow enough the shard decides (it
/// compares clock ticks, see `Shard::slow_ticks`).
pub struct SlowLog {
    /// Newest at the front.
    entries: VecDeque<SlowEntry>,
    max_len: usize,
}

impl SlowLog {
    pub fn new(max_len: usize) -> SlowLog {
        SlowLog { entries: VecDeque::new(), max_len }
    }

    /// Apply CONFIG SET; a shorter maximum drops the oldest entries now.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
        self.entries.truncate(max_len);
    }

    /// Log a command (its client is named by `name_newest`, where known).
    pub fn add(&mut self, id: u64, time: i64, micros: u64, args: &Args) {
        let e = SlowEntry { id, time, micros, args: entry_args(args), addr: String::new(), name: Vec::new() };
        self.entries.push_front(e);
        self.entries.truncate(self.max_len);
    }

    /// Name the client of the newest entry (logged where the client was
    /// not at hand).
    pub fn name_newest(&mut self, addr: &str, name: &[u8]) {
        if let Some(e) = self.entries.front_mut() {
            e.addr = addr.to_string();
            e.name = name.to_vec();
        }
    }

    /// The newest `count` entries.
    pub fn newest(&self, count: usize) -> Vec<SlowEntry> {
        self.entries.iter().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// `slowlog-log-slower-than` (µs; negative: never) as clock ticks.
pub fn threshold_ticks(us: i64) -> u64 {
    if us < 0 {
        u64::MAX
    } else {
        super::ticks::from_us(us as u64)
    }
}

/// What an entry keeps of a command: at most MAX_ARGS arguments (the last
/// saying how many more there were), each cut to MAX_ARG_BYTES with a note
/// of how many bytes more it had.
fn entry_args(args: &Args) -> Vec<Vec<u8>> {
    let n = args.len();
    let keep = if n > MAX_ARGS { MAX_ARGS - 1 } else { n };
    let mut v: Vec<Vec<u8>> = (0..keep)
        .map(|i| {
            let a = args.get(i);
            if a.len() > MAX_ARG_BYTES {
                let mut s = a[..MAX_ARG_BYTES].to_vec();
                s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes());
                s
            } else {
                a.to_vec()
            }
        })
        .collect();
    if n > keep {
        v.push(format!("... ({} more arguments)", n - keep).into_bytes());
    }
    v
}

/// SLOWLOG GET's reply: merge the shards' entries, newest (highest id)
/// first, and keep `count`.
pub fn reply_newest(r: &mut Reply, mut all: Vec<SlowEntry>, count: usize) {
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(count);
    r.array(all.len());
    for e in &all {
        r.array(6);
        r.int(e.id as i64);
        r.int(e.time);
        r.int(e.micros as i64);
        r.array(e.args.len());
        for a in &e.args {
            r.bulk(a);
        }
        r.bulk(e.addr.as_bytes());
        r.bulk(&e.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::OwnedArgs;

    #[test]
    fn keeps_the_newest_up_to_max_len() {
        let mut log = SlowLog::new(3);
        let a = OwnedArgs::from_slices(&[&b"GET"[..], b"k"]);
        for id in 1..=5 {
            log.add(id, 0, 1, &a.args());
        }
        assert_eq!(log.newest(10).iter().map(|e| e.id).collect::<Vec<_>>(), [5, 4, 3]);
        log.set_max_len(1);
        assert_eq!(log.newest(10).iter().map(|e| e.id).collect::<Vec<_>>(), [5]);
        log.reset();
        assert!(log.is_empty());
    }

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let big = vec![b'x'; 200];
        let mut parts: Vec<&[u8]> = vec![b"RPUSH", b"k", &big];
        let many: Vec<Vec<u8>> = (0..40).map(|i| i.to_string().into_bytes()).collect();
        parts.extend(many.iter().map(|v| v.as_slice()));
        let a = OwnedArgs::from_slices(&parts);
        let v = entry_args(&a.args());
        assert_eq!(v.len(), 32);
        assert_eq!(v[2].len(), 128 + "... (72 more bytes)".len());
        assert!(v[2].ends_with(b"... (72 more bytes)"));
        assert_eq!(v[31], b"... (12 more arguments)".to_vec());
    }
}

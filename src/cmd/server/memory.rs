//! MEMORY STATS and MEMORY DOCTOR: server-wide memory figures, summed over
//! the shards' `ShardInfo` (the rest of MEMORY, a keyspace container, is in
//! `cmd::keys`).
//!
//! shardis runs on the system allocator, which keeps no statistics: as
//! Redis does without jemalloc, the allocator's figures stand in from the
//! process RSS. `total.allocated` is the sum of what shardis accounts
//! (keyspace estimate, buckets, connection buffers, AOF buffer, script and
//! function code); nothing is allocated "at startup" in that accounting.

use super::info::ShardInfo;
use super::server;
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;

const ALL_SHARDS: &[&str] = &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"];

pub const STATS: CommandDef =
    server("memory|stats", 2, 0, Shard::cmd_memory_stats).group(Group::Server).since("4.0.0").tips(ALL_SHARDS);
pub const DOCTOR: CommandDef =
    server("memory|doctor", 2, 0, Shard::cmd_memory_doctor).group(Group::Server).since("4.0.0").tips(ALL_SHARDS);

impl Shard {
    fn cmd_memory_stats(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::Info, FanOp::MemoryStats);
    }

    fn cmd_memory_doctor(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::Info, FanOp::MemoryDoctor);
    }

    /// The figures MEMORY STATS and DOCTOR report, from every shard's info.
    pub fn memory_figures(&self, infos: &[ShardInfo]) -> Figures {
        let sum = |f: &dyn Fn(&ShardInfo) -> usize| -> u64 { infos.iter().map(|i| f(i) as u64).sum() };
        let mut dbs: Vec<(usize, u64, u64)> = Vec::new();
        for i in infos {
            for &(db, len, _) in &i.keys {
                let buckets = i.db_buckets.iter().find(|b| b.0 == db).map_or(0, |b| b.1) as u64;
                let main = buckets + (len * crate::keyspace::evict::ENTRY_OVERHEAD) as u64;
                match dbs.iter_mut().find(|d| d.0 == db) {
                    Some(d) => d.1 += main,
                    None => dbs.push((db, main, 0)),
                }
            }
        }
        dbs.sort_unstable_by_key(|d| d.0);
        let (_, scripts_bytes) = self.shared.scripts.stats();
        // Every shard holds the same function libraries: count them once.
        let functions = infos.first().map_or(0, |i| i.functions_code) as u64;
        let clients = sum(&|i| i.client_buffers);
        let aof = sum(&|i| i.aof_buffer);
        let buckets: u64 = infos.iter().flat_map(|i| i.db_buckets.iter()).map(|b| b.1 as u64).sum();
        let total = sum(&|i| i.used_memory_est)
            + crate::persist::rewrite::copy_bytes()
            + buckets
            + clients
            + aof
            + scripts_bytes as u64
            + functions;
        let peak = sum(&|i| i.used_memory_peak).max(total);
        let lua_vm = sum(&|i| i.lua_memory);
        let overhead = clients + aof + scripts_bytes as u64 + functions + dbs.iter().map(|d| d.1 + d.2).sum::<u64>();
        Figures {
            peak,
            total,
            clients,
            aof,
            lua_caches: scripts_bytes as u64,
            functions,
            dbs,
            overhead,
            keys: infos.iter().flat_map(|i| i.keys.iter()).map(|k| k.1 as u64).sum(),
            rss: super::info::read_rss_bytes(),
            lua_vm,
            scripts: self.shared.scripts.stats().0,
            nclients: infos.iter().map(|i| i.clients).sum(),
        }
    }
}

/// Server-wide memory figures, in bytes.
pub struct Figures {
    pub peak: u64,
    pub total: u64,
    pub clients: u64,
    pub aof: u64,
    pub lua_caches: u64,
    pub functions: u64,
    /// Per non-empty db: its main table's and expires table's overhead.
    pub dbs: Vec<(usize, u64, u64)>,
    pub overhead: u64,
    pub keys: u64,
    pub rss: u64,
    pub lua_vm: u64,
    pub scripts: usize,
    pub nclients: usize,
}

impl Figures {
    fn dataset(&self) -> u64 {
        self.total.saturating_sub(self.overhead)
    }

    /// Redis's stand-ins when the allocator has no statistics: resident =
    /// RSS less the Lua interpreters, active = resident, allocated = used.
    fn allocator(&self) -> (u64, u64, u64) {
        let resident = self.rss.saturating_sub(self.lua_vm);
        (self.total, resident, resident)
    }
}

/// A ratio as Redis computes it (in single precision) and replies it; 0
/// over nothing accounted.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        return 0.0;
    }
    (a as f32 / b as f32) as f64
}

fn diff(a: u64, b: u64) -> i64 {
    a as i64 - b as i64
}

/// MEMORY STATS's reply: Redis 7.0's fields in its order.
pub fn reply_stats(r: &mut Reply, f: &Figures) {
    let (allocated, active, resident) = f.allocator();
    let dataset = f.dataset();
    r.map(27 + f.dbs.len());
    let int = |r: &mut Reply, k: &str, v: i64| {
        r.bulk_str(k);
        r.int(v);
    };
    int(r, "peak.allocated", f.peak as i64);
    int(r, "total.allocated", f.total as i64);
    int(r, "startup.allocated", 0);
    // Replicas read the AOF: there is no in-memory backlog.
    int(r, "replication.backlog", 0);
    int(r, "clients.slaves", 0);
    int(r, "clients.normal", f.clients as i64);
    int(r, "cluster.links", 0);
    int(r, "aof.buffer", f.aof as i64);
    int(r, "lua.caches", f.lua_caches as i64);
    int(r, "functions.caches", f.functions as i64);
    for &(db, main, expires) in &f.dbs {
        r.bulk_str(&format!("db.{db}"));
        r.map(3);
        int(r, "overhead.hashtable.main", main as i64);
        int(r, "overhead.hashtable.expires", expires as i64);
        int(r, "overhead.hashtable.slot-to-keys", 0);
    }
    int(r, "overhead.total", f.overhead as i64);
    int(r, "keys.count", f.keys as i64);
    int(r, "keys.bytes-per-key", dataset.checked_div(f.keys).unwrap_or(0) as i64);
    int(r, "dataset.bytes", dataset as i64);
    let dbl = |r: &mut Reply, k: &str, v: f64| {
        r.bulk_str(k);
        r.double(v);
    };
    dbl(r, "dataset.percentage", ratio(dataset * 100, f.total) as f32 as f64);
    dbl(r, "peak.percentage", ratio(f.total * 100, f.peak));
    int(r, "allocator.allocated", allocated as i64);
    int(r, "allocator.active", active as i64);
    int(r, "allocator.resident", resident as i64);
    dbl(r, "allocator-fragmentation.ratio", ratio(active, allocated));
    int(r, "allocator-fragmentation.bytes", diff(active, allocated));
    dbl(r, "allocator-rss.ratio", ratio(resident, active));
    int(r, "allocator-rss.bytes", diff(resident, active));
    dbl(r, "rss-overhead.ratio", ratio(f.rss, resident));
    int(r, "rss-overhead.bytes", diff(f.rss, resident));
    dbl(r, "fragmentation", ratio(f.rss, f.total));
    int(r, "fragmentation.bytes", diff(f.rss, f.total));
}

/// MEMORY DOCTOR's report, with Redis's texts for the checks that apply.
pub fn doctor(f: &Figures) -> String {
    const EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
    const FINE: &str =
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
    if f.total < 5 << 20 {
        return EMPTY.to_string();
    }
    let (allocated, active, resident) = f.allocator();
    let mut s = String::new();
    if ratio(f.peak, f.total) > 1.5 {
        s.push_str(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
    }
    if ratio(f.rss, f.total) > 1.4 && diff(f.rss, f.total) > 10 << 20 {
        s.push_str(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"libc\".\n\n");
    }
    if ratio(active, allocated) > 1.1 && diff(active, allocated) > 10 << 20 {
        s.push_str(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n");
    }
    if ratio(f.rss, resident) > 1.1 && diff(f.rss, resident) > 10 << 20 {
        s.push_str(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n");
    }
    if f.clients / (f.nclients.max(1) as u64) > 200 << 10 {
        s.push_str(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n");
    }
    if f.scripts > 1000 {
        s.push_str(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
    }
    if s.is_empty() {
        return FINE.to_string();
    }
    format!("Sam, I detected a few issues in this Redis instance memory implants:\n\n{s}I'm here to keep you safe, Sam. I want to help you.\n")
}

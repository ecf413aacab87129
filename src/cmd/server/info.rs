//! INFO: every shard reports its figures (`ShardInfo`), the connection's
//! shard merges them into Redis's sections. Also the /proc and getrusage
//! readers the memory and cpu sections use.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef};
use crate::shard::core::{Conn, Shard, Wait};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[CommandDef] = &[server("info", -1, LOADING | STALE | SENTINEL, Shard::cmd_info)
    .acl(acl::DANGEROUS)
    .group(Group::Server)
    .since("1.0.0")
    .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])];

/// One command's counters on one shard (or summed over shards): time in
/// ns, the latency histogram's recorded buckets in `ticks`.
#[derive(Debug, Clone)]
pub struct CmdStatInfo {
    pub name: &'static str,
    pub calls: u64,
    pub nsec: u64,
    pub rejected: u64,
    pub failed: u64,
    pub hist: crate::shard::latency::Recorded,
}

/// One shard's part of INFO.
#[derive(Debug, Default)]
pub struct ShardInfo {
    pub keys: Vec<(usize, usize, usize)>,
    pub clients: usize,
    pub pubsub_clients: usize,
    pub blocked_clients: usize,
    pub total_commands: u64,
    pub total_connections: u64,
    pub rejected_conns: u64,
    pub obuf_disconnections: u64,
    pub recent_max_out: u64,
    pub recent_max_in: u64,
    pub net_in: u64,
    pub net_out: u64,
    pub turns: u64,
    pub completions: u64,
    pub hits: u64,
    pub misses: u64,
    pub expired_keys: u64,
    pub dirty: u64,
    pub used_memory_est: usize,
    pub used_memory_peak: usize,
    pub evicted_keys: u64,
    pub aof_delayed_fsync: u64,
    pub aof_write_ok: bool,
    pub cmdstats: Vec<CmdStatInfo>,
    pub ring_flags: &'static str,
    /// Bytes of this shard's Lua interpreter, and its scripts that had to
    /// lock every shard (undeclared keys).
    pub lua_memory: usize,
    pub script_all_shard_runs: u64,
    /// This shard's functions interpreter, and the libraries it holds
    /// (every shard holds the same): count, functions, bytes of code.
    pub functions_vm_memory: usize,
    pub libraries: usize,
    pub functions: usize,
    pub functions_code: usize,
    /// Bytes of the connections' query and output buffers (MEMORY STATS
    /// clients.normal), of records the AOF writer holds unwritten
    /// (aof.buffer), and of each non-empty db's bucket array.
    pub client_buffers: usize,
    pub aof_buffer: usize,
    pub db_buckets: Vec<(usize, usize)>,
}

impl Shard {
    /// INFO [section ...]
    fn cmd_info(&mut self, conn: &mut Conn, args: &Args) {
        let sections: Vec<String> =
            args.iter().skip(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).collect();
        self.fan(conn, self.all_shards(), FanReq::Info, FanOp::Info { sections });
    }

    pub fn shard_info(&self) -> ShardInfo {
        let keys = self
            .ks
            .dbs
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.dict.is_empty())
            .map(|(i, d)| (i, d.dict.len(), d.volatile))
            .collect();
        let mut cmdstats = Vec::new();
        for (i, st) in self.stats.iter().enumerate() {
            if st.calls == 0 && st.rejected == 0 {
                continue;
            }
            cmdstats.push(CmdStatInfo {
                name: crate::cmd::table::by_id(i).name,
                calls: st.calls,
                nsec: crate::shard::ticks::to_ns(st.ticks),
                rejected: st.rejected,
                failed: st.failed,
                hist: st.hist.as_ref().map(crate::shard::latency::Recorded::of).unwrap_or_default(),
            });
        }
        ShardInfo {
            keys,
            clients: self.conns.iter().flatten().filter(|c| !c.closing).count(),
            pubsub_clients: self.conns.iter().flatten().filter(|c| c.in_pubsub()).count(),
            // Counted where they wait: at the owner of their keys, or at
            // home for the ones whose keys span shards.
            blocked_clients: self.blocked.blocked_clients()
                + self.conns.iter().flatten().filter(|c| matches!(&c.wait, Wait::Blocked(b) if b.cross)).count(),
            total_commands: self.total_commands,
            total_connections: self.total_connections,
            rejected_conns: self.rejected_conns,
            obuf_disconnections: self.obuf_disconnections,
            recent_max_out: self.recent_max_out.get(self.now),
            recent_max_in: self.recent_max_in.get(self.now),
            net_in: self.net_in,
            net_out: self.net_out,
            turns: self.turns,
            completions: self.completions,
            hits: self.ks.hits,
            misses: self.ks.misses,
            expired_keys: self.ks.expired_keys,
            dirty: self.ks.dirty,
            used_memory_est: self.ks.used,
            used_memory_peak: self.ks.used_peak.max(self.ks.used),
            evicted_keys: self.ks.evicted_keys,
            aof_delayed_fsync: self.aof.as_ref().map_or(0, |w| w.delayed_fsync),
            aof_write_ok: self.aof.as_ref().is_none_or(|w| w.last_write_error.is_none()),
            cmdstats,
            ring_flags: self.ring_flags,
            lua_memory: self.scripts.vm_memory(),
            script_all_shard_runs: self.scripts.all_shard_runs,
            functions_vm_memory: self.scripts.functions_memory(),
            libraries: self.ks.functions.libs.len(),
            functions: self.scripts.function_count(),
            functions_code: self.ks.functions.code_bytes(),
            client_buffers: self.conns.iter().flatten().map(|c| c.rbuf.capacity() + c.out.capacity()).sum(),
            aof_buffer: self.aof.as_ref().map_or(0, |w| w.buffered()),
            db_buckets: self
                .ks
                .dbs
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.dict.is_empty())
                .map(|(i, d)| (i, d.dict.buckets() * std::mem::size_of::<usize>()))
                .collect(),
        }
    }

    pub fn info_text(&self, sections: &[String], infos: &[ShardInfo]) -> String {
        let want = |s: &str| {
            sections.is_empty()
                || sections.iter().any(|x| x == s || x == "all" || x == "everything")
                || (sections.iter().any(|x| x == "default") && s != "commandstats" && s != "latencystats")
        };
        let mut out = String::new();
        let uptime = self.shared.start_instant.elapsed().as_secs();
        let sum = |f: &dyn Fn(&ShardInfo) -> u64| -> u64 { infos.iter().map(f).sum() };
        if want("server") {
            let _ = write!(
                out,
                "# Server\r\nredis_version:{}\r\nshardis_version:{}\r\nredis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nio_uring_setup:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nshards:{}\r\nexecutable:{}\r\nconfig_file:{}\r\n\r\n",
                super::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                infos.first().map(|i| i.ring_flags).unwrap_or(""),
                std::process::id(),
                self.shared.run_id,
                self.shared.tcp_port,
                uptime,
                uptime / 86400,
                self.config.hz,
                self.shared.nshards,
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                self.config.config_file.clone().unwrap_or_default(),
            );
        }
        if want("clients") {
            let _ = write!(
                out,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:{}\r\nclient_recent_max_output_buffer:{}\r\npubsub_clients:{}\r\nblocked_clients:{}\r\n\r\n",
                self.shared.connected_clients.load(Ordering::Relaxed),
                self.config.maxclients,
                infos.iter().map(|i| i.recent_max_in).max().unwrap_or(0),
                infos.iter().map(|i| i.recent_max_out).max().unwrap_or(0),
                sum(&|i| i.pubsub_clients as u64),
                sum(&|i| i.blocked_clients as u64),
            );
        }
        if want("memory") {
            let rss = read_rss_bytes();
            // A running rewrite's copy of the data is memory in use too.
            let copy = crate::persist::rewrite::copy_bytes();
            let copy_peak = crate::persist::rewrite::status().map_or(0, |s| s.copy_peak.load(Ordering::Relaxed));
            let used = sum(&|i| i.used_memory_est as u64) + copy;
            // Sum of the shards' peaks: at least the true peak, which the
            // shards, measuring separately, cannot see.
            let peak = sum(&|i| i.used_memory_peak as u64).max(used);
            let lua = sum(&|i| i.lua_memory as u64);
            let (scripts_n, scripts_bytes) = self.shared.scripts.stats();
            // Every shard holds the same libraries: count them once; each
            // has its own functions interpreter.
            let first = |f: &dyn Fn(&ShardInfo) -> usize| infos.first().map_or(0, f);
            let fvm = sum(&|i| i.functions_vm_memory as u64);
            let functions_code = first(&|i| i.functions_code) as u64;
            let _ = write!(
                out,
                "# Memory\r\nused_memory:{}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{:.2}M\r\nmaxmemory:{}\r\nmaxmemory_human:{:.2}M\r\nmaxmemory_policy:{}\r\nmem_aof_rewrite_copy:{}\r\nmem_aof_rewrite_copy_peak:{}\r\nused_memory_lua:{}\r\nused_memory_vm_eval:{}\r\nused_memory_scripts_eval:{}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\nused_memory_vm_functions:{}\r\nused_memory_vm_total:{}\r\nused_memory_functions:{}\r\nused_memory_scripts:{}\r\nmem_allocator:libc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\n\r\n",
                used,
                used as f64 / 1048576.0,
                rss,
                peak,
                peak as f64 / 1048576.0,
                self.config.maxmemory,
                self.config.maxmemory as f64 / 1048576.0,
                self.config.maxmemory_policy,
                copy,
                copy_peak,
                lua,
                lua,
                scripts_bytes,
                scripts_n,
                first(&|i| i.functions),
                first(&|i| i.libraries),
                fvm,
                lua + fvm,
                functions_code,
                scripts_bytes as u64 + functions_code,
                crate::lazyfree::pending(),
                crate::lazyfree::freed(),
            );
        }
        if want("persistence") {
            let st = crate::persist::rewrite::status();
            let load = |f: &dyn Fn(&crate::persist::rewrite::Status) -> u64| st.map_or(0, f);
            let in_progress = load(&|s| s.in_progress.load(Ordering::Relaxed) as u64);
            let status = if st.is_none_or(|s| s.last_ok.load(Ordering::Relaxed)) { "ok" } else { "err" };
            let base = load(&|s| s.base_size.load(Ordering::Relaxed));
            let write_ok = infos.iter().all(|i| i.aof_write_ok);
            let _ = write!(
                out,
                "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:{}\r\naof_last_write_status:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\naof_delayed_fsync:{}\r\naof_fsync_policy:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\n\r\n",
                sum(&|i| i.dirty),
                in_progress,
                load(&|s| s.last_save.load(Ordering::Relaxed) as u64),
                status,
                self.aof.is_some() as u8,
                in_progress,
                status,
                if write_ok { "ok" } else { "err" },
                base + crate::persist::rewrite::growth(),
                base,
                sum(&|i| i.aof_delayed_fsync),
                self.config.appendfsync,
                load(&|s| s.started.load(Ordering::Relaxed)),
                load(&|s| s.consecutive_failures.load(Ordering::Relaxed)),
            );
        }
        if want("stats") {
            let _ = write!(
                out,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nclient_output_buffer_limit_disconnections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nevent_loop_turns:{}\r\nio_uring_completions:{}\r\nacl_access_denied_auth:{}\r\nacl_access_denied_cmd:{}\r\nacl_access_denied_key:{}\r\nacl_access_denied_channel:{}\r\nscripts_locking_all_shards:{}\r\n{}\r\n",
                sum(&|i| i.total_connections),
                sum(&|i| i.total_commands),
                sum(&|i| i.net_in),
                sum(&|i| i.net_out),
                sum(&|i| i.rejected_conns),
                sum(&|i| i.obuf_disconnections),
                sum(&|i| i.expired_keys),
                sum(&|i| i.evicted_keys),
                sum(&|i| i.hits),
                sum(&|i| i.misses),
                sum(&|i| i.turns),
                sum(&|i| i.completions),
                self.shared.acl.denied_auth.load(Ordering::Relaxed),
                self.shared.acl.denied_cmd.load(Ordering::Relaxed),
                self.shared.acl.denied_key.load(Ordering::Relaxed),
                self.shared.acl.denied_channel.load(Ordering::Relaxed),
                sum(&|i| i.script_all_shard_runs),
                crate::repl::info::stats_lines(),
            );
        }
        if want("replication") {
            out.push_str(&crate::repl::info::section(&self.config));
        }
        if want("cpu") {
            let (u, s) = read_cpu_seconds();
            let _ = write!(out, "# CPU\r\nused_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\n\r\n", s, u);
        }
        let merged = merge_cmdstats(infos);
        if want("commandstats") {
            out.push_str("# Commandstats\r\n");
            for m in &merged {
                let per = if m.calls > 0 { m.nsec as f64 / 1000.0 / m.calls as f64 } else { 0.0 };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                    m.name,
                    m.calls,
                    m.nsec / 1000,
                    per,
                    m.rejected,
                    m.failed
                );
            }
            out.push_str("\r\n");
        }
        if want("latencystats") {
            out.push_str("# Latencystats\r\n");
            for m in &merged {
                let h = &m.hist;
                if m.calls == 0 || h.is_empty() {
                    continue;
                }
                let p = |q| crate::shard::ticks::to_us(h.value_at_quantile(q));
                let _ = write!(
                    out,
                    "latency_percentiles_usec_{}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                    m.name,
                    p(0.5),
                    p(0.99),
                    p(0.999)
                );
            }
            out.push_str("\r\n");
        }
        if want("keyspace") {
            out.push_str("# Keyspace\r\n");
            let mut per_db = [(0usize, 0usize); 16];
            for i in infos {
                for &(db, k, e) in &i.keys {
                    per_db[db].0 += k;
                    per_db[db].1 += e;
                }
            }
            for (db, (k, e)) in per_db.iter().enumerate() {
                if *k > 0 {
                    let _ = write!(out, "db{}:keys={},expires={},avg_ttl=0\r\n", db, k, e);
                }
            }
            out.push_str("\r\n");
        }
        while out.ends_with("\r\n\r\n") {
            out.truncate(out.len() - 2);
        }
        out
    }
}

/// Per-command counters summed and histograms merged over shards, by name.
pub fn merge_cmdstats(infos: &[ShardInfo]) -> Vec<CmdStatInfo> {
    let mut merged: Vec<CmdStatInfo> = Vec::new();
    for c in infos.iter().flat_map(|i| &i.cmdstats) {
        match merged.iter_mut().find(|m| m.name == c.name) {
            Some(m) => {
                m.calls += c.calls;
                m.nsec += c.nsec;
                m.rejected += c.rejected;
                m.failed += c.failed;
                m.hist.merge(&c.hist);
            }
            None => merged.push(c.clone()),
        }
    }
    merged.sort_by_key(|m| m.name);
    merged
}

pub fn read_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn read_cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage fills the struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        (t(ru.ru_utime), t(ru.ru_stime))
    }
}

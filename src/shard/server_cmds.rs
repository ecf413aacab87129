//! Connection- and server-level commands (PING, HELLO, AUTH, SELECT, INFO,
//! CONFIG, CLIENT, COMMAND, ...) and keyspace-wide commands that every
//! shard takes part in (DBSIZE, KEYS, SCAN, FLUSHALL, ...). A keyspace-wide
//! command is a fan-out: each shard computes its part (`fan_local`) and the
//! client's shard merges them (`finish_fan`).

use super::core::{Conn, Shard, Wait};
use super::{ConnRef, FanReq, FanResp, Msg};
use crate::cmd::{self, err, flags::*, Args, CommandDef};
use crate::keyspace::NUM_DBS;
use crate::protocol::reply::Reply;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const REDIS_VERSION: &str = "7.0.15";

pub enum GlobalPlan {
    Fan(Vec<usize>, FanReq, FanOp),
    Reply(Vec<u8>),
}

/// A fan-out in progress for one connection.
pub struct FanState {
    pub expect: usize,
    pub resps: Vec<(usize, FanResp)>,
    pub op: FanOp,
}

pub enum FanOp {
    DbSize,
    Keys,
    Scan {
        shard: usize,
    },
    RandomKey,
    Ok,
    Publish,
    PubsubChannels,
    Numsub {
        channels: Vec<Vec<u8>>,
    },
    Numpat,
    Info {
        sections: Vec<String>,
    },
    ClientList,
    ClientKill {
        old_style: bool,
    },
    WatchAck,
    /// CONFIG SET appendonly yes: every shard wrote its base; write the
    /// manifest that makes them current.
    AofEnabled,
    SlowlogGet {
        count: usize,
    },
    SlowlogLen {
        max: usize,
    },
    LatencyHistogram {
        names: Vec<String>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub skipme_id: Option<u64>,
}

/// One command's counters on one shard (or summed over shards): time in
/// ns, the latency histogram's recorded buckets in `ticks`.
#[derive(Debug, Clone)]
pub struct CmdStatInfo {
    pub name: &'static str,
    pub calls: u64,
    pub nsec: u64,
    pub rejected: u64,
    pub failed: u64,
    pub hist: super::latency::Recorded,
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
}

/// CONN commands that can run synchronously inside EXEC.
pub fn run_sync_conn_cmd(def: &CommandDef, args: &Args, db: &mut usize, r: &mut Reply) -> bool {
    match def.name {
        "ping" => {
            if args.len() > 2 {
                cmd::arity_error(r, "ping");
            } else if args.len() == 2 {
                r.bulk(args.get(1));
            } else {
                r.simple("PONG");
            }
        }
        "echo" => r.bulk(args.get(1)),
        "select" => match cmd::parse_int_arg(args.get(1), None) {
            Ok(d) if (0..NUM_DBS as i32).contains(&d) => {
                *db = d as usize;
                r.ok();
            }
            Ok(_) => r.error(err::DB_INDEX),
            Err(e) => r.error(e),
        },
        "time" => {
            let us = crate::util::now_us();
            r.array(2);
            r.bulk_str(&(us / 1_000_000).to_string());
            r.bulk_str(&(us % 1_000_000).to_string());
        }
        "lastsave" => r.int(crate::persist::rewrite::status().map_or(0, |s| s.last_save.load(Ordering::Relaxed))),
        _ => return false,
    }
    true
}

/// SWAPDB's two indexes: both are parsed before either is range-checked,
/// as in Redis (so `SWAPDB 16 x` complains about the second).
fn parse_swapdb(a: &[u8], b: &[u8]) -> Result<(u8, u8), &'static str> {
    let a = cmd::parse_int_arg(a, Some("ERR invalid first DB index"))?;
    let b = cmd::parse_int_arg(b, Some("ERR invalid second DB index"))?;
    match (u8::try_from(a), u8::try_from(b)) {
        (Ok(a), Ok(b)) if (a as usize) < NUM_DBS && (b as usize) < NUM_DBS => Ok((a, b)),
        _ => Err(err::DB_INDEX),
    }
}

impl Shard {
    /// Send `req` to `targets` (this shard included, computed in place) and
    /// merge the answers with `op` once all are in.
    pub fn fan(&mut self, conn: &mut Conn, targets: Vec<usize>, req: FanReq, op: FanOp) {
        self.fan_with(conn, targets, req, op, Vec::new());
    }

    /// `fan`, with answers this shard already has (`known`) merged in too.
    fn fan_with(&mut self, conn: &mut Conn, targets: Vec<usize>, req: FanReq, op: FanOp, known: Vec<(usize, FanResp)>) {
        let req = Arc::new(req);
        let mut st = FanState { expect: targets.len() + known.len(), resps: known, op };
        let from = conn.conn_ref(self.id);
        // Others first: this shard's part may wait for theirs (persist::switch).
        let mut local = false;
        for t in targets {
            if t == self.id {
                local = true;
            } else {
                self.send(t, Msg::Fanout { from, req: req.clone() });
            }
        }
        if local {
            let r = self.fan_local(&req);
            st.resps.push((self.id, r));
        }
        if st.resps.len() >= st.expect {
            self.finish_fan(&mut conn.out, conn.resp3, st);
        } else {
            conn.wait = Wait::Fan(Box::new(st));
        }
    }

    fn all_shards(&self) -> Vec<usize> {
        (0..self.shared.nshards).collect()
    }

    /// This shard's part of a fan-out.
    pub fn fan_local(&mut self, req: &FanReq) -> FanResp {
        let now = crate::util::now_ms();
        match req {
            FanReq::DbSize { db } => FanResp::Int(self.ks.dbs[*db as usize].dict.len() as i64),
            FanReq::Keys { db, pattern } => {
                FanResp::Keys(cmd::keys::keys_matching(&self.ks, *db as usize, pattern, now))
            }
            FanReq::Scan { db, cursor, count, pattern, kind } => {
                let mut keys = Vec::new();
                let next = cmd::keys::scan_shard(
                    &self.ks,
                    *db as usize,
                    *cursor,
                    *count,
                    pattern.as_deref(),
                    kind.as_deref(),
                    now,
                    &mut keys,
                );
                FanResp::Scan { next, keys }
            }
            FanReq::RandomKey { db } => {
                FanResp::Key(cmd::keys::random_key(&mut self.ks, *db as usize, now, &mut self.rng))
            }
            FanReq::FlushDb { db } => {
                self.ks.flush_db(*db as usize);
                self.log_global(*db as usize, &[b"FLUSHDB"]);
                FanResp::Ack
            }
            FanReq::FlushAll => {
                for db in 0..self.ks.dbs.len() {
                    self.ks.flush_db(db);
                }
                self.log_global(0, &[b"FLUSHALL"]);
                FanResp::Ack
            }
            FanReq::SwapDb { a, b } => {
                self.ks.swap_db(*a as usize, *b as usize);
                let (a, b) = (a.to_string(), b.to_string());
                self.log_global(0, &[&b"SWAPDB"[..], a.as_bytes(), b.as_bytes()]);
                FanResp::Ack
            }
            FanReq::Publish { channel, message } => FanResp::Int(self.deliver(channel, message) as i64),
            FanReq::PubsubChannels { pattern } => FanResp::Keys(self.pubsub.channels(pattern.as_deref())),
            FanReq::PubsubNumsub { channels } => {
                FanResp::Counts(channels.iter().map(|c| self.pubsub.numsub(c) as i64).collect())
            }
            FanReq::PubsubNumpat => FanResp::Keys(self.pubsub.patterns()),
            FanReq::Info => FanResp::Info(Box::new(self.shard_info())),
            FanReq::ClientList => FanResp::Text(self.client_list(None)),
            FanReq::ClientKill { filter } => FanResp::Int(self.client_kill(filter) as i64),
            FanReq::ConfigUpdate { config, switch } => match self.apply_config(config, switch.as_deref()) {
                Ok(()) => FanResp::Ack,
                Err(e) => FanResp::Text(e),
            },
            FanReq::Watch { who, keys } => {
                for (db, k) in keys {
                    self.ks.watch(*db as usize, k, *who);
                }
                FanResp::Ack
            }
            FanReq::SlowlogGet { count } => FanResp::Slow(self.slowlog.newest(*count)),
            FanReq::SlowlogLen => FanResp::Int(self.slowlog.len() as i64),
            FanReq::SlowlogReset => {
                self.slowlog.reset();
                FanResp::Ack
            }
            FanReq::ResetStat => {
                for s in self.stats.iter_mut() {
                    s.calls = 0;
                    s.ticks = 0;
                    s.failed = 0;
                    s.rejected = 0;
                    s.hist = None;
                }
                self.total_commands = 0;
                self.net_in = 0;
                self.net_out = 0;
                FanResp::Ack
            }
        }
    }

    pub fn apply_config(
        &mut self,
        c: &crate::config::Config,
        switch: Option<&crate::persist::switch::AofSwitch>,
    ) -> Result<(), String> {
        let aof = if c.appendonly == self.aof.is_some() {
            Ok(())
        } else if c.appendonly {
            match switch {
                Some(sw) => self.enable_aof(c, sw),
                None => Err("appendonly can only be turned on by CONFIG SET".into()),
            }
        } else {
            self.disable_aof();
            Ok(())
        };
        self.limits.max_bulk_len = c.proto_max_bulk_len;
        self.obuf_limits = c.output_limits()?;
        if let Some(w) = self.aof.as_mut() {
            w.policy = crate::persist::writer::Fsync::parse(&c.appendfsync);
        }
        self.slowlog.set_max_len(c.slowlog_max_len.min(usize::MAX as u64) as usize);
        self.slow_ticks = super::slowlog::threshold_ticks(c.slowlog_log_slower_than);
        self.config = c.clone();
        // A switch that failed (on any shard: all or none) left it off.
        self.config.appendonly = c.appendonly && (self.aof.is_some() || aof.is_ok());
        // Each shard keeps to an equal share of maxmemory on its own.
        let limit = crate::keyspace::evict::MemLimit {
            // At least a byte each: a tiny limit must not round to "none".
            maxmemory: match c.maxmemory.max(0) as usize {
                0 => 0,
                m => (m / self.shared.nshards.max(1)).max(1),
            },
            policy: crate::keyspace::evict::Policy::parse(&c.maxmemory_policy).unwrap_or_default(),
            samples: c.maxmemory_samples.max(1) as usize,
        };
        self.ks.set_mem_limit(limit);
        // A lowered limit takes effect now, as in Redis, not at the next write.
        if self.ks.over_limit() && !self.txn.locked() {
            self.ks.free_memory(crate::util::now_ms());
            self.log_pending();
        }
        aof
    }

    /// Merge fan-out answers into the client's reply.
    pub fn finish_fan(&mut self, out: &mut Vec<u8>, resp3: bool, mut st: FanState) {
        st.resps.sort_by_key(|(s, _)| *s);
        match st.op {
            FanOp::DbSize | FanOp::Publish | FanOp::ClientKill { old_style: false } => {
                let n: i64 = st.resps.iter().map(|(_, r)| if let FanResp::Int(n) = r { *n } else { 0 }).sum();
                Reply::new(out, resp3).int(n);
            }
            FanOp::ClientKill { old_style: true } => {
                let n: i64 = st.resps.iter().map(|(_, r)| if let FanResp::Int(n) = r { *n } else { 0 }).sum();
                let mut r = Reply::new(out, resp3);
                if n > 0 {
                    r.ok();
                } else {
                    r.error("ERR No such client");
                }
            }
            FanOp::Keys | FanOp::PubsubChannels => {
                let mut all = Vec::new();
                for (_, r) in st.resps {
                    if let FanResp::Keys(k) = r {
                        all.extend(k);
                    }
                }
                if matches!(st.op, FanOp::PubsubChannels) {
                    all.sort();
                    all.dedup();
                }
                let mut r = Reply::new(out, resp3);
                r.array(all.len());
                for k in all {
                    r.bulk(&k);
                }
            }
            FanOp::Numpat => {
                let mut all = Vec::new();
                for (_, r) in st.resps {
                    if let FanResp::Keys(k) = r {
                        all.extend(k);
                    }
                }
                all.sort();
                all.dedup();
                Reply::new(out, resp3).int(all.len() as i64);
            }
            FanOp::Scan { shard } => {
                let (next, keys) = match st.resps.pop() {
                    Some((_, FanResp::Scan { next, keys })) => (next, keys),
                    _ => (0, Vec::new()),
                };
                // Cursor = inner cursor << 10 | shard: stable while the
                // shard count stays the same.
                let cursor = if next != 0 {
                    (next << 10) | shard as u64
                } else if shard + 1 < self.shared.nshards {
                    (shard + 1) as u64
                } else {
                    0
                };
                let mut r = Reply::new(out, resp3);
                r.array(2);
                r.bulk_str(&cursor.to_string());
                r.array(keys.len());
                for k in keys {
                    r.bulk(&k);
                }
            }
            FanOp::RandomKey => {
                let keys: Vec<Vec<u8>> =
                    st.resps.into_iter().filter_map(|(_, r)| if let FanResp::Key(k) = r { k } else { None }).collect();
                let mut r = Reply::new(out, resp3);
                if keys.is_empty() {
                    r.null();
                } else {
                    let i = (self.rng.next_u64() % keys.len() as u64) as usize;
                    r.bulk(&keys[i]);
                }
            }
            FanOp::Ok => Reply::new(out, resp3).ok(),
            FanOp::AofEnabled => {
                // The shards committed the new layout among themselves
                // (persist::switch); report how it went.
                let failed =
                    st.resps.iter().find_map(|(_, r)| if let FanResp::Text(e) = r { Some(e.clone()) } else { None });
                let mut r = Reply::new(out, resp3);
                match failed {
                    None => {
                        crate::log("appendonly turned on: every shard wrote its base; the AOF is live");
                        r.ok()
                    }
                    Some(e) => {
                        // No shard logs (the switch commits all or none).
                        match self.shared.config.lock() {
                            Ok(mut g) => g.appendonly = false,
                            Err(p) => p.into_inner().appendonly = false,
                        }
                        r.error(&format!("ERR turning appendonly on failed: {}", e))
                    }
                }
            }
            FanOp::WatchAck => Reply::new(out, resp3).ok(),
            FanOp::Numsub { channels } => {
                let mut counts = vec![0i64; channels.len()];
                for (_, r) in st.resps {
                    if let FanResp::Counts(c) = r {
                        for (a, b) in counts.iter_mut().zip(c) {
                            *a += b;
                        }
                    }
                }
                let mut r = Reply::new(out, resp3);
                r.map(channels.len());
                for (ch, n) in channels.iter().zip(counts) {
                    r.bulk(ch);
                    r.int(n);
                }
            }
            FanOp::Info { sections } => {
                let infos: Vec<ShardInfo> = st
                    .resps
                    .into_iter()
                    .filter_map(|(_, r)| if let FanResp::Info(i) = r { Some(*i) } else { None })
                    .collect();
                let text = self.info_text(&sections, &infos);
                Reply::new(out, resp3).verbatim(text.as_bytes());
            }
            FanOp::LatencyHistogram { names } => {
                let infos: Vec<ShardInfo> = st
                    .resps
                    .into_iter()
                    .filter_map(|(_, r)| if let FanResp::Info(i) = r { Some(*i) } else { None })
                    .collect();
                latency_histogram(&mut Reply::new(out, resp3), &infos, &names);
            }
            FanOp::SlowlogLen { max } => {
                let n: i64 = st.resps.iter().map(|(_, r)| if let FanResp::Int(n) = r { *n } else { 0 }).sum();
                Reply::new(out, resp3).int(n.min(max as i64));
            }
            FanOp::SlowlogGet { count } => {
                let all: Vec<_> = st
                    .resps
                    .into_iter()
                    .flat_map(|(_, r)| if let FanResp::Slow(v) = r { v } else { Vec::new() })
                    .collect();
                super::slowlog::reply_newest(&mut Reply::new(out, resp3), all, count);
            }
            FanOp::ClientList => {
                let mut text = String::new();
                for (_, r) in st.resps {
                    if let FanResp::Text(t) = r {
                        text.push_str(&t);
                    }
                }
                Reply::new(out, resp3).verbatim(text.as_bytes());
            }
        }
    }

    /// Run a keyspace-wide command synchronously (one shard, inside MULTI).
    pub fn run_global_sync(&mut self, conn: &mut Conn, def: &CommandDef, args: &Args) {
        debug_assert_eq!(self.shared.nshards, 1);
        let id = cmd::lookup(def.name.as_bytes()).map(|(i, _)| i).unwrap_or(0);
        self.server_command(conn, id, def, args);
    }

    /// A CONN or GLOBAL command.
    pub fn server_command(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        let t0 = super::ticks::now();
        let resp3 = conn.resp3;
        let before = conn.out.len();
        let mut db = conn.db;
        if run_sync_conn_cmd(def, args, &mut db, &mut Reply::new(&mut conn.out, resp3)) {
            if def.name == "ping" && conn.in_pubsub() && !resp3 && args.len() <= 2 {
                // In RESP2 subscribe mode PING answers as a push: [pong, msg].
                conn.out.truncate(before);
                let mut r = Reply::new(&mut conn.out, false);
                r.array(2);
                r.bulk(b"pong");
                r.bulk(if args.len() == 2 { args.get(1) } else { b"" });
            }
            conn.db = db;
            self.record_stat(id, t0, conn.out.get(before) == Some(&b'-'));
            return;
        }
        let n = self.shared.nshards;
        match def.name {
            "quit" => {
                Reply::new(&mut conn.out, resp3).ok();
                conn.close_after_flush = true;
            }
            "bgrewriteaof" | "bgsave" | "save" => self.cmd_rewrite(conn, def.name),
            "reset" => {
                conn.multi = None;
                let ws = std::mem::take(&mut conn.watch_shards);
                self.unwatch_everywhere(conn.id, &ws);
                self.unsubscribe_all(conn);
                conn.db = 0;
                conn.resp3 = false;
                conn.name.clear();
                conn.authed = self.config.requirepass.is_empty();
                Reply::new(&mut conn.out, false).simple("RESET");
            }
            "auth" => self.cmd_auth(conn, args),
            "hello" => self.cmd_hello(conn, args),
            "multi" => {
                if conn.multi.is_some() {
                    Reply::new(&mut conn.out, resp3).error("ERR MULTI calls can not be nested");
                } else {
                    conn.multi = Some(super::dispatch::MultiState { cmds: Vec::new(), aborted: false });
                    Reply::new(&mut conn.out, resp3).ok();
                }
            }
            "discard" => {
                if conn.multi.take().is_none() {
                    Reply::new(&mut conn.out, resp3).error("ERR DISCARD without MULTI");
                } else {
                    let ws = std::mem::take(&mut conn.watch_shards);
                    self.unwatch_everywhere(conn.id, &ws);
                    Reply::new(&mut conn.out, resp3).ok();
                }
            }
            "exec" => self.exec_multi(conn, args),
            "watch" => self.cmd_watch(conn, args),
            "unwatch" => {
                let ws = std::mem::take(&mut conn.watch_shards);
                self.unwatch_everywhere(conn.id, &ws);
                Reply::new(&mut conn.out, resp3).ok();
            }
            "subscribe" | "psubscribe" => self.cmd_subscribe(conn, args, def.name == "psubscribe"),
            "unsubscribe" | "punsubscribe" => self.cmd_unsubscribe(conn, args, def.name == "punsubscribe"),
            "publish" => {
                // A RESP3 client may be subscribed itself; it is out of the
                // slot table while it runs, so deliver to it here first.
                let own = self.deliver_to_self(conn, args.get(1), args.get(2));
                let req = FanReq::Publish { channel: args.get(1).to_vec(), message: args.get(2).to_vec() };
                let targets = self.all_shards();
                let known = if own > 0 { vec![(usize::MAX, FanResp::Int(own as i64))] } else { Vec::new() };
                self.fan_with(conn, targets, req, FanOp::Publish, known);
            }
            "pubsub" => self.cmd_pubsub(conn, args),
            "flushdb" | "flushall" | "swapdb" if n > 1 => {
                // Writes to every shard: run as a transaction holding all
                // shards, so no client sees some shards flushed and others not.
                let cmds = vec![cmd::OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>())];
                self.start_txn(conn, cmds, (0..n).collect(), false);
            }
            "dbsize" | "keys" | "scan" | "randomkey" | "flushdb" | "flushall" | "swapdb" => {
                match self.global_plan(def, args, conn.db, resp3) {
                    GlobalPlan::Fan(targets, req, op) => self.fan(conn, targets, req, op),
                    GlobalPlan::Reply(bytes) => conn.out.extend_from_slice(&bytes),
                }
            }
            "info" => {
                let sections: Vec<String> =
                    args.iter().skip(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).collect();
                self.fan(conn, self.all_shards(), FanReq::Info, FanOp::Info { sections });
            }
            "config" => self.cmd_config(conn, args),
            "slowlog" => self.cmd_slowlog(conn, args),
            "latency" => self.cmd_latency(conn, args),
            "client" => self.cmd_client(conn, args),
            "command" => self.cmd_command(conn, args),
            "debug" => self.cmd_debug(conn, args),
            "shutdown" => {
                crate::log("SHUTDOWN requested by a client; stopping");
                self.shared.shutdown.store(true, Ordering::SeqCst);
                self.stop = true;
                // Wake every other shard so it sees the flag.
                for s in 0..n {
                    if s != self.id {
                        self.send(s, Msg::Unwatch { who: 0 });
                    }
                }
                conn.close_after_flush = true;
            }
            _ => Reply::new(&mut conn.out, resp3).error("ERR unknown command"),
        }
        if conn.wait.is_none() {
            let ticks = self.record_stat(id, t0, conn.out.get(before) == Some(&b'-'));
            // AUTH and HELLO carry passwords: Redis keeps them out too.
            if !matches!(def.name, "auth" | "hello") && self.note_if_slow(ticks, args) {
                self.slowlog.name_newest(&conn.addr, &conn.name);
            }
        } else {
            self.stats[id].calls += 1;
            self.total_commands += 1;
        }
    }

    /// BGREWRITEAOF, BGSAVE (the same: the AOF's base is the snapshot),
    /// and SAVE, which answers once the rewrite is done.
    fn cmd_rewrite(&mut self, conn: &mut Conn, name: &str) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if self.aof.is_none() {
            return r.error("ERR appendonly is off: there is no AOF to rewrite (start with --appendonly yes)");
        }
        let Some(st) = crate::persist::rewrite::status() else {
            return r.error("ERR persistence is not initialised");
        };
        let gen = st.generation.load(Ordering::Acquire);
        if !self.start_rewrite() {
            return r.error(if name == "bgrewriteaof" {
                "ERR Background append only file rewriting already in progress"
            } else {
                "ERR Background save already in progress"
            });
        }
        match name {
            "bgrewriteaof" => r.simple("Background append only file rewriting started"),
            "bgsave" => r.simple("Background saving started"),
            _ => {
                conn.wait = Wait::Save(gen);
                self.save_waiters.push(conn.conn_ref(self.id));
            }
        }
    }

    /// Cron: answer SAVEs whose rewrite finished.
    pub fn check_save_waiters(&mut self) {
        if self.save_waiters.is_empty() {
            return;
        }
        let Some(st) = crate::persist::rewrite::status() else { return };
        let gen_now = st.generation.load(Ordering::Acquire);
        let ok = st.last_ok.load(Ordering::Relaxed);
        let waiters = std::mem::take(&mut self.save_waiters);
        for r in waiters {
            let Some(Some(c)) = self.conns.get_mut(r.idx as usize) else { continue };
            if c.gen != r.gen {
                continue;
            }
            match c.wait {
                Wait::Save(g) if gen_now > g => {
                    let mut rep = Reply::new(&mut c.out, c.resp3);
                    if ok {
                        rep.ok();
                    } else {
                        rep.error("ERR the AOF rewrite failed, see the server log");
                    }
                    c.wait = Wait::None;
                    self.mark_dirty(r.idx);
                    self.runnable.push_back(r.idx);
                }
                Wait::Save(_) => self.save_waiters.push(r),
                _ => {}
            }
        }
    }

    fn cmd_auth(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let mut r = Reply::new(&mut conn.out, resp3);
        if args.len() > 3 {
            return r.error(err::SYNTAX);
        }
        let pass = args.get(args.len() - 1);
        if args.len() == 3 && args.get(1) != b"default" {
            return r.error("WRONGPASS invalid username-password pair or user is disabled.");
        }
        if self.config.requirepass.is_empty() {
            if args.len() == 2 {
                return r.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            conn.authed = true;
            return r.ok();
        }
        if crate::security::same_password(pass, self.config.requirepass.as_bytes()) {
            conn.authed = true;
            r.ok();
        } else {
            r.error("WRONGPASS invalid username-password pair or user is disabled.");
        }
    }

    fn cmd_hello(&mut self, conn: &mut Conn, args: &Args) {
        let mut proto = if conn.resp3 { 3 } else { 2 };
        let mut i = 1;
        if args.len() > 1 {
            match crate::util::parse_i64(args.get(1)) {
                Some(v) if v == 2 || v == 3 => proto = v,
                Some(_) => {
                    return Reply::new(&mut conn.out, conn.resp3).error("NOPROTO unsupported protocol version");
                }
                None => {
                    return Reply::new(&mut conn.out, conn.resp3)
                        .error("ERR Protocol version is not an integer or out of range");
                }
            }
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            if args.is(i, "AUTH") && i + 2 < args.len() {
                let (user, pass) = (args.get(i + 1), args.get(i + 2));
                let ok = user == b"default"
                    && (self.config.requirepass.is_empty()
                        || crate::security::same_password(pass, self.config.requirepass.as_bytes()));
                if !ok {
                    return Reply::new(&mut conn.out, conn.resp3)
                        .error("WRONGPASS invalid username-password pair or user is disabled.");
                }
                conn.authed = true;
                i += 3;
            } else if args.is(i, "SETNAME") && i + 1 < args.len() {
                name = Some(args.get(i + 1).to_vec());
                i += 2;
            } else {
                return Reply::new(&mut conn.out, conn.resp3)
                    .error(&format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(args.get(i))));
            }
        }
        if !conn.authed {
            return Reply::new(&mut conn.out, conn.resp3)
                .error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if let Some(n) = name {
            if n.iter().any(|&b| b <= b' ' || b > b'~') {
                return Reply::new(&mut conn.out, conn.resp3)
                    .error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            conn.name = n;
        }
        conn.resp3 = proto == 3;
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.map(7);
        r.bulk(b"server");
        r.bulk(b"redis");
        r.bulk(b"version");
        r.bulk(REDIS_VERSION.as_bytes());
        r.bulk(b"proto");
        r.int(proto);
        r.bulk(b"id");
        r.int(conn.id as i64);
        r.bulk(b"mode");
        r.bulk(b"standalone");
        r.bulk(b"role");
        r.bulk(b"master");
        r.bulk(b"modules");
        r.array(0);
    }

    fn cmd_watch(&mut self, conn: &mut Conn, args: &Args) {
        if conn.multi.is_some() {
            return Reply::new(&mut conn.out, conn.resp3).error("ERR WATCH inside MULTI is not allowed");
        }
        let n = self.shared.nshards;
        let mut by_shard: Vec<Vec<super::DbKey>> = vec![Vec::new(); n];
        for k in args.iter().skip(1) {
            by_shard[self.shared.slots.shard_of(k)].push((conn.db as u8, k.to_vec()));
        }
        let mut targets = Vec::new();
        for (s, keys) in by_shard.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            if !conn.watch_shards.contains(&s) {
                conn.watch_shards.push(s);
            }
            if s == self.id {
                for (db, k) in keys {
                    self.ks.watch(db as usize, &k, conn.id);
                }
            } else {
                targets.push((s, keys));
            }
        }
        if targets.is_empty() {
            return Reply::new(&mut conn.out, conn.resp3).ok();
        }
        // Reply only once every shard registered the watch, so a write
        // after our OK is always seen.
        let from = conn.conn_ref(self.id);
        let st = FanState { expect: targets.len(), resps: Vec::new(), op: FanOp::WatchAck };
        for (s, keys) in targets {
            self.send(s, Msg::Fanout { from, req: Arc::new(FanReq::Watch { who: conn.id, keys }) });
        }
        conn.wait = Wait::Fan(Box::new(st));
    }

    /// How to run a keyspace-wide command: which shards, what each does,
    /// how to merge; or the reply at once (argument errors).
    pub fn global_plan(&self, def: &CommandDef, args: &Args, db: usize, resp3: bool) -> GlobalPlan {
        let all = self.all_shards();
        let db8 = db as u8;
        let reply_now = |f: &dyn Fn(&mut Reply)| {
            let mut out = Vec::new();
            f(&mut Reply::new(&mut out, resp3));
            GlobalPlan::Reply(out)
        };
        match def.name {
            "dbsize" => GlobalPlan::Fan(all, FanReq::DbSize { db: db8 }, FanOp::DbSize),
            "keys" => GlobalPlan::Fan(all, FanReq::Keys { db: db8, pattern: args.get(1).to_vec() }, FanOp::Keys),
            "randomkey" => GlobalPlan::Fan(all, FanReq::RandomKey { db: db8 }, FanOp::RandomKey),
            "flushdb" | "flushall" => {
                if args.len() > 2 || (args.len() == 2 && !args.is(1, "ASYNC") && !args.is(1, "SYNC")) {
                    return reply_now(&|r| r.error(err::SYNTAX));
                }
                let req = if def.name == "flushdb" { FanReq::FlushDb { db: db8 } } else { FanReq::FlushAll };
                GlobalPlan::Fan(all, req, FanOp::Ok)
            }
            "swapdb" => match parse_swapdb(args.get(1), args.get(2)) {
                Ok((a, b)) => GlobalPlan::Fan(all, FanReq::SwapDb { a, b }, FanOp::Ok),
                Err(e) => reply_now(&|r| r.error(e)),
            },
            "scan" => {
                let sa = match cmd::keys::parse_scan_args(args, 1) {
                    Ok(s) => s,
                    Err(e) => return reply_now(&|r| r.error(&e)),
                };
                let shard = (sa.cursor & 1023) as usize;
                if shard >= self.shared.nshards {
                    // A cursor from another shard layout: start over, as
                    // Redis does with a cursor it cannot interpret.
                    return reply_now(&|r| {
                        r.array(2);
                        r.bulk(b"0");
                        r.array(0);
                    });
                }
                let req = FanReq::Scan {
                    db: db8,
                    cursor: sa.cursor >> 10,
                    count: sa.count,
                    pattern: sa.pattern,
                    kind: sa.type_filter,
                };
                GlobalPlan::Fan(vec![shard], req, FanOp::Scan { shard })
            }
            _ => reply_now(&|r| r.error("ERR not a keyspace-wide command")),
        }
    }

    fn cmd_config(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match sub.as_str() {
            "get" if args.len() >= 3 => {
                let c = self.shared.config_snapshot();
                let entries = c.entries();
                let mut hits: Vec<(&str, String)> = Vec::new();
                for pat in args.iter().skip(2) {
                    for (k, v) in &entries {
                        if crate::util::glob_match(pat, k.as_bytes(), true) && !hits.iter().any(|(h, _)| h == k) {
                            hits.push((k, v.clone()));
                        }
                    }
                }
                let mut r = Reply::new(&mut conn.out, resp3);
                r.map(hits.len());
                for (k, v) in hits {
                    r.bulk_str(k);
                    r.bulk_str(&v);
                }
            }
            "set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
                let mut c = self.shared.config_snapshot();
                for i in (2..args.len()).step_by(2) {
                    let name = String::from_utf8_lossy(args.get(i)).to_string();
                    let val = String::from_utf8_lossy(args.get(i + 1)).to_string();
                    if let Err(e) = c.set(&name, &val) {
                        return Reply::new(&mut conn.out, resp3).error(&format!(
                            "ERR CONFIG SET failed (possibly related to argument '{}') - {}",
                            name, e
                        ));
                    }
                }
                if c.maxclients > self.config.maxclients {
                    if let Err(e) = super::fdlimit::check_maxclients(c.maxclients, self.shared.nshards) {
                        return Reply::new(&mut conn.out, resp3).error(&format!(
                            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - {}",
                            e
                        ));
                    }
                }
                match self.shared.config.lock() {
                    Ok(mut g) => *g = c.clone(),
                    Err(p) => *p.into_inner() = c.clone(),
                }
                let turning_on = c.appendonly && self.aof.is_none();
                let op = if turning_on { FanOp::AofEnabled } else { FanOp::Ok };
                let switch = turning_on.then(|| Arc::new(crate::persist::switch::AofSwitch::new(self.shared.nshards)));
                let req = FanReq::ConfigUpdate { config: Box::new(c), switch };
                self.fan(conn, self.all_shards(), req, op);
            }
            "resetstat" if args.len() == 2 => self.fan(conn, self.all_shards(), FanReq::ResetStat, FanOp::Ok),
            "rewrite" if args.len() == 2 => {
                let c = self.shared.config_snapshot();
                let mut r = Reply::new(&mut conn.out, resp3);
                match &c.config_file {
                    None => r.error("ERR The server is running without a config file"),
                    Some(path) => match c.to_toml().and_then(|t| write_atomically(path, &t)) {
                        Ok(()) => r.ok(),
                        Err(e) => r.error(&format!("ERR Rewriting config file: {}", e)),
                    },
                }
            }
            "help" => help_reply(
                &mut Reply::new(&mut conn.out, resp3),
                &[
                    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "GET <pattern>",
                    "SET <directive> <value>",
                    "RESETSTAT",
                    "REWRITE",
                ],
            ),
            _ => unknown_subcommand(&mut Reply::new(&mut conn.out, resp3), "CONFIG", args.get(1)),
        }
    }

    fn cmd_client(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match sub.as_str() {
            "id" if args.len() == 2 => Reply::new(&mut conn.out, resp3).int(conn.id as i64),
            "getname" if args.len() == 2 => {
                let mut r = Reply::new(&mut conn.out, resp3);
                if conn.name.is_empty() {
                    r.null();
                } else {
                    r.bulk(&conn.name);
                }
            }
            "setname" if args.len() == 3 => {
                let n = args.get(2);
                if n.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Reply::new(&mut conn.out, resp3)
                        .error("ERR Client names cannot contain spaces, newlines or special characters.");
                }
                conn.name = n.to_vec();
                Reply::new(&mut conn.out, resp3).ok();
            }
            "info" if args.len() == 2 => {
                let line = self.client_line(conn);
                Reply::new(&mut conn.out, resp3).verbatim(line.as_bytes());
            }
            "list" => {
                if args.len() > 2 && !(args.len() == 4 && args.is(2, "TYPE")) {
                    return Reply::new(&mut conn.out, resp3).error(err::SYNTAX);
                }
                // The calling client is out of the slot table while it runs;
                // its own line is added here.
                let mut mine = self.client_list(Some(conn.conn_ref(self.id)));
                mine.push_str(&self.client_line(conn));
                let me = self.id;
                let others: Vec<usize> = self.all_shards().into_iter().filter(|&s| s != me).collect();
                self.fan_with(conn, others, FanReq::ClientList, FanOp::ClientList, vec![(me, FanResp::Text(mine))]);
            }
            "kill" if args.len() >= 3 => {
                let mut f = KillFilter::default();
                let old_style = args.len() == 3;
                if old_style {
                    f.addr = Some(String::from_utf8_lossy(args.get(2)).to_string());
                } else {
                    let mut skipme = true;
                    let mut i = 2;
                    while i + 1 < args.len() {
                        let v = String::from_utf8_lossy(args.get(i + 1)).to_string();
                        if args.is(i, "ID") {
                            match v.parse() {
                                Ok(id) => f.id = Some(id),
                                Err(_) => {
                                    return Reply::new(&mut conn.out, resp3)
                                        .error("ERR client-id should be greater than 0")
                                }
                            }
                        } else if args.is(i, "ADDR") {
                            f.addr = Some(v);
                        } else if args.is(i, "LADDR") {
                            f.laddr = Some(v);
                        } else if args.is(i, "SKIPME") {
                            skipme = v.eq_ignore_ascii_case("yes");
                        } else {
                            return Reply::new(&mut conn.out, resp3).error(err::SYNTAX);
                        }
                        i += 2;
                    }
                    if i != args.len() {
                        return Reply::new(&mut conn.out, resp3).error(err::SYNTAX);
                    }
                    if skipme {
                        f.skipme_id = Some(conn.id);
                    }
                }
                // The caller itself (not in the slot table now) may match.
                let self_match = kill_matches(&f, conn.id, &conn.addr, &conn.laddr);
                if self_match {
                    conn.close_after_flush = true;
                }
                let mine = self.client_kill(&f) + self_match as usize;
                let me = self.id;
                let others: Vec<usize> = self.all_shards().into_iter().filter(|&s| s != me).collect();
                let known = vec![(me, FanResp::Int(mine as i64))];
                self.fan_with(conn, others, FanReq::ClientKill { filter: f }, FanOp::ClientKill { old_style }, known);
            }
            "setinfo" | "no-evict" | "no-touch" | "reply" if args.len() >= 3 => Reply::new(&mut conn.out, resp3).ok(),
            "help" => help_reply(
                &mut Reply::new(&mut conn.out, resp3),
                &[
                    "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
                    "ID",
                    "GETNAME",
                    "SETNAME <name>",
                    "INFO",
                    "LIST",
                    "KILL <ip:port> | ID <id> | ADDR <ip:port> | LADDR <ip:port> | SKIPME yes|no",
                ],
            ),
            _ => unknown_subcommand(&mut Reply::new(&mut conn.out, resp3), "CLIENT", args.get(1)),
        }
    }

    pub fn client_line(&self, c: &Conn) -> String {
        let age = (self.now - c.created_ms).max(0) / 1000;
        let idle = (self.now - c.last_cmd_ms).max(0) / 1000;
        let flags = if c.multi.is_some() {
            "x"
        } else if c.in_pubsub() {
            "P"
        } else {
            "N"
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={} shard={}\n",
            c.id,
            c.addr,
            c.laddr,
            c.fd,
            String::from_utf8_lossy(&c.name),
            age,
            idle,
            flags,
            c.db,
            c.subs.len(),
            c.psubs.len(),
            c.multi.as_ref().map(|m| m.cmds.len() as i64).unwrap_or(-1),
            c.rbuf.len().saturating_sub(c.rpos),
            c.rbuf.capacity().saturating_sub(c.rbuf.len()),
            c.output_bytes(),
            c.mem_bytes(),
            c.last_cmd,
            if c.resp3 { 3 } else { 2 },
            self.id
        )
    }

    fn client_list(&self, skip: Option<ConnRef>) -> String {
        let mut s = String::new();
        for c in self.conns.iter().flatten() {
            if c.closing || Some(c.conn_ref(self.id)) == skip {
                continue;
            }
            s.push_str(&self.client_line(c));
        }
        s
    }

    fn client_kill(&mut self, f: &KillFilter) -> usize {
        let victims: Vec<u32> = self
            .conns
            .iter()
            .flatten()
            .filter(|c| !c.closing && kill_matches(f, c.id, &c.addr, &c.laddr))
            .map(|c| c.idx)
            .collect();
        for &idx in &victims {
            self.close(idx);
        }
        victims.len()
    }

    fn cmd_command(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let mut r = Reply::new(&mut conn.out, resp3);
        let all = cmd::table::TABLE();
        if args.len() == 1 {
            r.array(all.len());
            for d in all {
                command_info(&mut r, d);
            }
            return;
        }
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match sub.as_str() {
            "count" => r.int(all.len() as i64),
            "info" => {
                let names: Vec<&[u8]> = args.iter().skip(2).collect();
                if names.is_empty() {
                    r.array(all.len());
                    for d in all {
                        command_info(&mut r, d);
                    }
                } else {
                    r.array(names.len());
                    for n in names {
                        match cmd::lookup(n) {
                            Some((_, d)) => command_info(&mut r, d),
                            None => r.null_array(),
                        }
                    }
                }
            }
            "docs" => {
                let defs: Vec<&CommandDef> = if args.len() == 2 {
                    all.to_vec()
                } else {
                    args.iter().skip(2).filter_map(|n| cmd::lookup(n).map(|(_, d)| d)).collect()
                };
                r.map(defs.len());
                for d in defs {
                    r.bulk_str(d.name);
                    r.map(3);
                    r.bulk(b"summary");
                    r.bulk_str(&format!("The {} command", d.name.to_ascii_uppercase()));
                    r.bulk(b"since");
                    r.bulk(b"1.0.0");
                    r.bulk(b"group");
                    r.bulk_str(if d.has(CONN) { "server" } else { "generic" });
                }
            }
            "getkeys" if args.len() >= 3 => {
                let sub_args: Vec<&[u8]> = args.iter().skip(2).collect();
                let owned = cmd::OwnedArgs::from_slices(&sub_args);
                let a = owned.args();
                match cmd::lookup(a.get(0)) {
                    Some((_, d)) if cmd::arity_ok(d, a.len()) && d.first_key > 0 => {
                        let pos: Vec<usize> = cmd::key_positions(d, &a).collect();
                        r.array(pos.len());
                        for p in pos {
                            r.bulk(a.get(p));
                        }
                    }
                    Some((_, d)) if !cmd::arity_ok(d, a.len()) => {
                        r.error("ERR Invalid number of arguments specified for command")
                    }
                    Some(_) => r.error("ERR The command has no key arguments"),
                    None => r.error("ERR Invalid command specified"),
                }
            }
            "list" => match command_list_filter(args) {
                Ok(keep) => {
                    let names: Vec<&str> = all.iter().filter(|d| keep(d)).map(|d| d.name).collect();
                    r.array(names.len());
                    for n in names {
                        r.bulk_str(n);
                    }
                }
                Err(e) => r.error(&e),
            },
            "help" => {
                r.array(1);
                r.simple("COMMAND [COUNT|INFO|DOCS|GETKEYS|LIST [FILTERBY MODULE|ACLCAT|PATTERN <arg>]]");
            }
            _ => unknown_subcommand(&mut r, "COMMAND", args.get(1)),
        }
    }

    /// SLOWLOG GET [count] | LEN | RESET | HELP, over every shard.
    fn cmd_slowlog(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("help", 2) => cmd::reply_help(&mut r, super::slowlog::HELP),
            ("len", 2) => {
                self.fan(conn, self.all_shards(), FanReq::SlowlogLen, FanOp::SlowlogLen { max: self.slowlog_max() })
            }
            ("reset", 2) => self.fan(conn, self.all_shards(), FanReq::SlowlogReset, FanOp::Ok),
            ("get", 2 | 3) => {
                let count = if args.len() == 2 { Some(10) } else { crate::util::parse_i64(args.get(2)) };
                let count = match count {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => n as usize,
                    _ => return r.error("ERR count should be greater than or equal to -1"),
                };
                // The shards keep max-len each; the server shows max-len in all.
                let count = count.min(self.slowlog_max());
                self.fan(conn, self.all_shards(), FanReq::SlowlogGet { count }, FanOp::SlowlogGet { count });
            }
            // Redis 7.0's own texts: GET checks its argument count itself.
            ("get", _) => unknown_subcommand(&mut r, "SLOWLOG", args.get(1)),
            ("help" | "len" | "reset", _) => cmd::arity_error(&mut r, &format!("slowlog|{sub}")),
            _ => r.error(&cmd::unknown_subcommand_text("slowlog", args.get(1))),
        }
    }

    /// LATENCY: HISTOGRAM from the per-command histograms of every shard.
    /// There is no latency monitor (Redis's is off by default too), so
    /// LATEST and HISTORY have no events and RESET resets none.
    fn cmd_latency(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("histogram", _) => {
                let names = args.iter().skip(2).map(|n| String::from_utf8_lossy(n).to_ascii_lowercase()).collect();
                self.fan(conn, self.all_shards(), FanReq::Info, FanOp::LatencyHistogram { names });
            }
            ("latest", 2) | ("history", 3) => r.array(0),
            ("reset", _) => r.int(0),
            ("graph", 3) => r.error(&format!(
                "ERR No samples available for event '{}'",
                String::from_utf8_lossy(&args.get(2)[..args.get(2).len().min(128)])
            )),
            ("doctor", 2) => r.verbatim(
                b"shardis has no latency monitor, so there are no latency events to analyse. \
                  LATENCY HISTOGRAM shows each command's latency distribution, INFO latencystats its \
                  percentiles, and SLOWLOG the slowest commands.\n",
            ),
            ("help", 2) => cmd::reply_help(&mut r, LATENCY_HELP),
            ("latest" | "history" | "graph" | "doctor" | "help", _) => {
                cmd::arity_error(&mut r, &format!("latency|{sub}"))
            }
            _ => r.error(&cmd::unknown_subcommand_text("latency", args.get(1))),
        }
    }

    fn slowlog_max(&self) -> usize {
        self.config.slowlog_max_len.min(usize::MAX as u64) as usize
    }

    fn cmd_debug(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let allowed = crate::security::debug_allowed(&self.config.enable_debug_command, &conn.addr);
        let mut r = Reply::new(&mut conn.out, resp3);
        if !allowed {
            r.error(crate::security::DEBUG_NOT_ALLOWED);
        } else if args.is(1, "SLEEP") && args.len() == 3 {
            match crate::util::parse_f64(args.get(2)) {
                Some(s) if s >= 0.0 && s.is_finite() => {
                    // Blocks this shard, as DEBUG SLEEP blocks Redis.
                    std::thread::sleep(std::time::Duration::from_secs_f64(s.min(3600.0)));
                    r.ok();
                }
                _ => r.error(err::NOT_FLOAT),
            }
        } else if args.is(1, "SET-ACTIVE-EXPIRE") {
            r.ok();
        } else if args.is(1, "PANIC") && args.len() == 2 {
            // As Redis's DEBUG PANIC: proves the crash path (crate::crash).
            panic!("DEBUG PANIC called by client id={} addr={} on shard {}", conn.id, conn.addr, self.id);
        } else {
            r.error("ERR DEBUG subcommand not supported by shardis (supported: SLEEP, PANIC)");
        }
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
                name: cmd::table::by_id(i).name,
                calls: st.calls,
                nsec: super::ticks::to_ns(st.ticks),
                rejected: st.rejected,
                failed: st.failed,
                hist: st.hist.as_ref().map(super::latency::Recorded::of).unwrap_or_default(),
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
        }
    }

    fn info_text(&self, sections: &[String], infos: &[ShardInfo]) -> String {
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
                REDIS_VERSION,
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
            let _ = write!(
                out,
                "# Memory\r\nused_memory:{}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{:.2}M\r\nmaxmemory:{}\r\nmaxmemory_human:{:.2}M\r\nmaxmemory_policy:{}\r\nmem_aof_rewrite_copy:{}\r\nmem_aof_rewrite_copy_peak:{}\r\nmem_allocator:libc\r\n\r\n",
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
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nclient_output_buffer_limit_disconnections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nevent_loop_turns:{}\r\nio_uring_completions:{}\r\n\r\n",
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
            );
        }
        if want("replication") {
            out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n");
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
                let p = |q| super::ticks::to_us(h.value_at_quantile(q));
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

/// `X HELP`: one status line per entry.
fn help_reply(r: &mut Reply, lines: &[&str]) {
    r.array(lines.len());
    for l in lines {
        r.simple(l);
    }
}

/// The error for an unknown subcommand (or a wrong argument count) of a
/// container command such as CONFIG or CLIENT.
pub fn unknown_subcommand(r: &mut Reply, cmd: &str, sub: &[u8]) {
    r.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        cmd
    ));
}

fn kill_matches(f: &KillFilter, id: u64, addr: &str, laddr: &str) -> bool {
    if f.skipme_id == Some(id) {
        return false;
    }
    if f.id.is_none() && f.addr.is_none() && f.laddr.is_none() {
        return false;
    }
    f.id.is_none_or(|x| x == id)
        && f.addr.as_deref().is_none_or(|a| a == addr)
        && f.laddr.as_deref().is_none_or(|a| a == laddr)
}

fn command_info(r: &mut Reply, d: &CommandDef) {
    r.array(10);
    r.bulk_str(d.name);
    r.int(d.arity as i64);
    let flags = d.flag_names();
    r.set(flags.len());
    for f in flags {
        r.simple(f);
    }
    r.int(d.first_key as i64);
    r.int(d.last_key as i64);
    r.int(d.step as i64);
    r.set(0);
    r.set(0);
    r.array(0);
    r.array(0);
}

fn read_rss_bytes() -> u64 {
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

/// Write a file so a crash leaves either the old or the new content.
/// Replace the file at `path` with `text` so that a crash leaves the old or
/// the new file, never a mix: a temp file beside it, fsync, rename, fsync
/// of the directory. The new file keeps the old one's permissions (a
/// config holding `requirepass` may be 0600), 0644 if there was none.
pub fn write_atomically(path: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let tmp = format!("{}.tmp-{}", path, std::process::id());
    // Left by a crash of an earlier process that had this pid.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have taken bits off at creation: set them exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {}", tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{} -> {}: {}", tmp, path, e))?;
    let dir = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(".".as_ref());
    crate::persist::fsync_dir(dir).map_err(|e| format!("fsync {}: {}", dir.display(), e))
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]:
/// the test a command must pass. There are no modules; of the ACL
/// categories only those the command flags tell apart are known.
type CommandFilter<'a> = Box<dyn Fn(&CommandDef) -> bool + 'a>;

fn command_list_filter<'a>(args: &Args<'a>) -> Result<CommandFilter<'a>, String> {
    match args.len() {
        2 => return Ok(Box::new(|_| true)),
        5 if args.is(2, "filterby") => {}
        _ => return Err(crate::cmd::err::SYNTAX.into()),
    }
    let arg = args.get(4);
    if args.is(3, "module") {
        return Ok(Box::new(|_| false));
    }
    if args.is(3, "pattern") {
        return Ok(Box::new(move |d| crate::util::glob_match(arg, d.name.as_bytes(), true)));
    }
    if !args.is(3, "aclcat") {
        return Err(crate::cmd::err::SYNTAX.into());
    }
    let cat = String::from_utf8_lossy(arg).to_ascii_lowercase();
    let flag = match cat.trim_start_matches('@') {
        "read" => READONLY,
        "write" => WRITE,
        "fast" => FAST,
        "blocking" => BLOCKING,
        "slow" => return Ok(Box::new(|d| !d.has(FAST))),
        // Redis's other categories: not derivable from our flags.
        other @ ("keyspace" | "set" | "sortedset" | "list" | "hash" | "string" | "bitmap" | "hyperloglog" | "geo"
        | "stream" | "pubsub" | "admin" | "dangerous" | "connection" | "transaction" | "scripting") => {
            return Err(format!("ERR shardis does not track the ACL category '{other}'"))
        }
        // Not a category at all: nothing matches, as in Redis.
        _ => return Ok(Box::new(|_| false)),
    };
    Ok(Box::new(move |d| d.has(flag)))
}

/// Per-command counters summed and histograms merged over shards, by name.
fn merge_cmdstats(infos: &[ShardInfo]) -> Vec<CmdStatInfo> {
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

/// LATENCY HISTOGRAM's reply for the commands in `names` (all that ran if
/// empty): calls, and cumulative counts per power-of-two µs bucket, as Redis
/// reports them.
fn latency_histogram(r: &mut Reply, infos: &[ShardInfo], names: &[String]) {
    let merged: Vec<CmdStatInfo> = merge_cmdstats(infos)
        .into_iter()
        .filter(|m| m.calls > 0 && !m.hist.is_empty() && (names.is_empty() || names.iter().any(|n| n == m.name)))
        .collect();
    r.map(merged.len());
    for m in &merged {
        r.bulk_str(m.name);
        r.map(2);
        r.bulk(b"calls");
        r.int(m.calls as i64);
        r.bulk(b"histogram_usec");
        // Our histograms count clock ticks; Redis's buckets are in ns.
        let Ok(mut ns) = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 56, 2) else {
            r.map(0);
            continue;
        };
        for &(ticks, count) in m.hist.buckets() {
            let _ = ns.record_n(super::ticks::to_ns(ticks).max(1), count);
        }
        let mut buckets = Vec::new();
        let mut cumulative = 0;
        for v in ns.iter_log(1024, 2.0) {
            let before = cumulative;
            cumulative += v.count_since_last_iteration();
            if cumulative > before {
                buckets.push((ns.highest_equivalent(v.value_iterated_to()) / 1000, cumulative));
            }
        }
        r.map(buckets.len());
        for (us, n) in buckets {
            r.int(us as i64);
            r.int(n as i64);
        }
    }
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "HISTOGRAM [COMMAND ...]",
    "    Per command: calls, and how many took at most 1, 2, 4, 8, ... microseconds",
    "    (every command that ran, when none is named).",
    "LATEST, HISTORY <event>, GRAPH <event>, RESET [<event> ...]",
    "    Latency monitor events: shardis has no latency monitor, so there are none.",
    "DOCTOR",
    "    Where to look for latency figures.",
    "HELP",
    "    Print this help.",
];

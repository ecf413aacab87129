//! Fan-out: one request answered by several shards. The connection's
//! shard sends a `FanReq` to each shard that takes part (computing its own
//! part in place), collects their `FanResp`s and merges them into one reply
//! with a `FanOp` (sum the counts, join the key lists, pick a random key,
//! build INFO from every shard's figures, ...).
//!
//! Keyspace-wide commands (`Handler::EveryShard`) describe their fan-out as
//! a `GlobalPlan`; server commands that need every shard (INFO, CLIENT
//! LIST, SLOWLOG GET, CONFIG SET, ...) call `fan` themselves.

use super::core::{Conn, Shard, Wait};
use super::{FanReq, FanResp, Msg};
use crate::cmd;
use crate::cmd::server::info::ShardInfo;
use crate::protocol::reply::Reply;
use std::sync::Arc;

/// How a keyspace-wide command runs: which shards, what each does, how to
/// merge; or the reply at once (argument errors).
pub enum GlobalPlan {
    Fan(Vec<usize>, FanReq, FanOp),
    Reply(Vec<u8>),
}

/// What a plan may depend on.
pub struct PlanCtx {
    pub nshards: usize,
    pub db: usize,
    pub resp3: bool,
}

impl PlanCtx {
    pub fn all_shards(&self) -> Vec<usize> {
        (0..self.nshards).collect()
    }

    /// A plan that is an immediate reply (an argument error).
    pub fn reply(&self, f: impl FnOnce(&mut Reply)) -> GlobalPlan {
        let mut out = Vec::new();
        f(&mut Reply::new(&mut out, self.resp3));
        GlobalPlan::Reply(out)
    }
}

/// A fan-out in progress for one connection.
pub struct FanState {
    pub expect: usize,
    pub resps: Vec<(usize, FanResp)>,
    pub op: FanOp,
}

/// How the shards' answers become the reply.
pub enum FanOp {
    DbSize,
    Keys,
    Scan {
        shard: usize,
    },
    RandomKey,
    Ok,
    /// The first shard's reply (every shard answers alike).
    FirstReply,
    Publish,
    PubsubChannels,
    /// `flat`: a flat array even in RESP3 (Redis 7.0's SHARDNUMSUB).
    Numsub {
        channels: Vec<Vec<u8>>,
        flat: bool,
    },
    Numpat,
    Info {
        sections: Vec<String>,
    },
    ClientList,
    ClientKill {
        old_style: bool,
    },
    /// CLIENT UNBLOCK: 1 from the shard that had the client blocked.
    ClientUnblock,
    WatchAck,
    /// Every shard acknowledged: reply these bytes (an ACL change's answer).
    Reply(Vec<u8>),
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
    MemoryStats,
    MemoryDoctor,
    /// A LATENCY subcommand over every shard's events merged.
    Latency(crate::cmd::server::latency::Ask),
    /// LATENCY RESET: how many distinct events the shards had.
    LatencyReset,
    Debug(crate::cmd::server::debug_keys::DebugMerge),
}

impl Shard {
    /// Send `req` to `targets` (this shard included, computed in place) and
    /// merge the answers with `op` once all are in.
    pub fn fan(&mut self, conn: &mut Conn, targets: Vec<usize>, req: FanReq, op: FanOp) {
        self.fan_with(conn, targets, req, op, Vec::new());
    }

    /// `fan`, with answers this shard already has (`known`) merged in too.
    pub fn fan_with(
        &mut self,
        conn: &mut Conn,
        targets: Vec<usize>,
        req: FanReq,
        op: FanOp,
        known: Vec<(usize, FanResp)>,
    ) {
        let req = Arc::new(req);
        let mut st = FanState { expect: targets.len() + known.len(), resps: known, op };
        let from = conn.conn_ref(self.id);
        // Others first: this shard's part may wait for theirs (persist::switch).
        let mut local = false;
        for t in targets {
            if t == self.id {
                local = true;
            } else {
                let msg = Msg::Fanout { from, req: req.clone() };
                if req.reveals_nothing() {
                    self.send_unheld(t, msg);
                } else {
                    self.send(t, msg);
                }
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

    pub fn all_shards(&self) -> Vec<usize> {
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
            FanReq::FlushDb { db, lazy } => {
                self.ks.flush_db_mode(*db as usize, lazy.unwrap_or(self.ks.lazy.user_flush));
                self.log_global(*db as usize, &[b"FLUSHDB"]);
                FanResp::Ack
            }
            FanReq::FlushAll { lazy } => {
                let lazy = lazy.unwrap_or(self.ks.lazy.user_flush);
                for db in 0..self.ks.dbs.len() {
                    self.ks.flush_db_mode(db, lazy);
                }
                self.log_global(0, &[b"FLUSHALL"]);
                FanResp::Ack
            }
            FanReq::Function { cmd } => FanResp::Reply(self.function_change(cmd)),
            FanReq::SwapDb { a, b } => {
                self.ks.swap_db(*a as usize, *b as usize);
                let (a, b) = (a.to_string(), b.to_string());
                self.log_global(0, &[&b"SWAPDB"[..], a.as_bytes(), b.as_bytes()]);
                FanResp::Ack
            }
            FanReq::Publish { channel, message, sharded } => {
                FanResp::Int(self.deliver(channel, message, *sharded) as i64)
            }
            FanReq::PubsubChannels { pattern, sharded } => {
                FanResp::Keys(self.pubsub.channels(pattern.as_deref(), *sharded))
            }
            FanReq::PubsubNumsub { channels, sharded } => {
                FanResp::Counts(channels.iter().map(|c| self.pubsub.numsub(c, *sharded) as i64).collect())
            }
            FanReq::PubsubNumpat => FanResp::Keys(self.pubsub.patterns()),
            FanReq::Info => FanResp::Info(Box::new(self.shard_info())),
            FanReq::ClientList { filter } => FanResp::Text(self.client_list(filter, None)),
            FanReq::ClientKill { filter } => FanResp::Int(self.client_kill(filter) as i64),
            FanReq::ClientUnblock { id, error } => FanResp::Int(self.unblock_client(*id, *error) as i64),
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
            FanReq::Debug { db, op } => self.debug_keys(*db as usize, op),
            FanReq::LatencyEvents => FanResp::Latency(self.latmon.events.clone()),
            FanReq::LatencyReset { names } => {
                let had: Vec<Vec<u8>> = if names.is_empty() {
                    self.latmon.events.keys().map(|k| k.as_bytes().to_vec()).collect()
                } else {
                    names
                        .iter()
                        .filter(|n| self.latmon.events.contains_key(n.as_str()))
                        .map(|n| n.as_bytes().to_vec())
                        .collect()
                };
                self.latmon.reset(names);
                FanResp::Keys(had)
            }
            FanReq::SlowlogReset => {
                self.slowlog.reset();
                FanResp::Ack
            }
            FanReq::AclRefresh => {
                self.refresh_acl();
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

    /// Merge fan-out answers into the client's reply.
    pub fn finish_fan(&mut self, out: &mut Vec<u8>, resp3: bool, mut st: FanState) {
        st.resps.sort_by_key(|(s, _)| *s);
        match st.op {
            FanOp::DbSize | FanOp::Publish | FanOp::ClientKill { old_style: false } | FanOp::ClientUnblock => {
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
            FanOp::FirstReply => {
                match st.resps.iter().find_map(|(_, r)| if let FanResp::Reply(b) = r { Some(b) } else { None }) {
                    Some(b) => out.extend_from_slice(b),
                    None => Reply::new(out, resp3).error("ERR no shard answered"),
                }
            }
            FanOp::Reply(bytes) => out.extend_from_slice(&bytes),
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
            FanOp::Numsub { channels, flat } => {
                let mut counts = vec![0i64; channels.len()];
                for (_, r) in st.resps {
                    if let FanResp::Counts(c) = r {
                        for (a, b) in counts.iter_mut().zip(c) {
                            *a += b;
                        }
                    }
                }
                let mut r = Reply::new(out, resp3);
                if flat {
                    r.array(channels.len() * 2);
                } else {
                    r.map(channels.len());
                }
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
                cmd::server::latency::latency_histogram(&mut Reply::new(out, resp3), &infos, &names);
            }
            FanOp::Latency(ask) => {
                let events = crate::shard::latmon::merge(st.resps.into_iter().filter_map(|(_, r)| {
                    if let FanResp::Latency(e) = r {
                        Some(e)
                    } else {
                        None
                    }
                }));
                self.reply_latency(&mut Reply::new(out, resp3), &ask, &events);
            }
            FanOp::Debug(how) => {
                crate::cmd::server::debug_keys::merge(&mut Reply::new(out, resp3), &how, st.resps);
            }
            FanOp::LatencyReset => {
                let mut names: Vec<Vec<u8>> = st
                    .resps
                    .into_iter()
                    .flat_map(|(_, r)| if let FanResp::Keys(k) = r { k } else { Vec::new() })
                    .collect();
                names.sort_unstable();
                names.dedup();
                Reply::new(out, resp3).int(names.len() as i64);
            }
            FanOp::MemoryStats => {
                let f = self.memory_figures(&infos_of(st.resps));
                cmd::server::memory::reply_stats(&mut Reply::new(out, resp3), &f);
            }
            FanOp::MemoryDoctor => {
                let f = self.memory_figures(&infos_of(st.resps));
                Reply::new(out, resp3).verbatim(cmd::server::memory::doctor(&f).as_bytes());
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
}

/// The `ShardInfo` answers of a fan-out that asked for `FanReq::Info`.
fn infos_of(resps: Vec<(usize, FanResp)>) -> Vec<ShardInfo> {
    resps.into_iter().filter_map(|(_, r)| if let FanResp::Info(i) = r { Some(*i) } else { None }).collect()
}

//! Replication commands: REPLICAOF (and its old name SLAVEOF), ROLE,
//! REPLCONF (what a replica asks its master on the client port). A
//! replica's position in its AOF (`REPLPOS`) is no command: see
//! `persist::load::REPLPOS`.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;

const REPLICAOF: Flags = ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING;

const fn repl(d: CommandDef) -> CommandDef {
    d.group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[
    repl(server("replicaof", -3, REPLICAOF, Shard::cmd_replicaof)).since("5.0.0"),
    repl(server("slaveof", -3, REPLICAOF, Shard::cmd_replicaof)).since("1.0.0"),
    repl(server("role", 1, NOSCRIPT | LOADING | STALE | FAST | SENTINEL, Shard::cmd_role))
        .acl(acl::ADMIN | acl::DANGEROUS)
        .since("2.8.12"),
    repl(server("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, Shard::cmd_replconf)).since("3.0.0"),
    server("wait", 3, NOSCRIPT, Shard::cmd_wait)
        .group(Group::Generic)
        .acl(acl::CONNECTION)
        .since("3.0.0")
        .tips(&["request_policy:all_shards", "response_policy:agg_min"]),
    server("waitaof", 4, NOSCRIPT, Shard::cmd_waitaof)
        .group(Group::Generic)
        .acl(acl::CONNECTION)
        .since("7.2.0")
        .tips(&["request_policy:all_shards", "response_policy:agg_min"]),
];

impl Shard {
    /// REPLICAOF host port | REPLICAOF NO ONE [EPOCH n]: a promotion may
    /// carry the failover epoch (shardis-monitor's); it is kept durably,
    /// and replicas refuse masters of a lower one.
    fn cmd_replicaof(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let (a, b) = (String::from_utf8_lossy(args.get(1)), String::from_utf8_lossy(args.get(2)));
        let no_one = a.eq_ignore_ascii_case("no") && b.eq_ignore_ascii_case("one");
        let epoch = match args.len() {
            3 => None,
            5 if no_one && args.get(3).eq_ignore_ascii_case(b"epoch") => {
                match crate::util::num::parse_i64(args.get(4)).filter(|e| *e >= 0) {
                    Some(e) => Some(e as u64),
                    None => return Reply::new(&mut conn.out, resp3).error(crate::cmd::err::NOT_INT),
                }
            }
            _ => return Reply::new(&mut conn.out, resp3).error(crate::cmd::err::SYNTAX),
        };
        let target = if no_one {
            None
        } else {
            match b.parse::<u16>() {
                Ok(p) if p > 0 => Some((a.to_string(), p)),
                _ => return Reply::new(&mut conn.out, resp3).error("ERR Invalid master port"),
            }
        };
        let mut c = self.shared.config_snapshot();
        let want = target.as_ref().map_or(String::new(), |(h, p)| format!("{} {}", h, p));
        if want == c.replicaof && !want.is_empty() {
            return Reply::new(&mut conn.out, resp3).simple("OK Already connected to specified master");
        }
        let was_replica = !c.replicaof.is_empty();
        if no_one {
            if let Err(e) = self.promote(&c, was_replica, epoch) {
                return Reply::new(&mut conn.out, resp3).error(&format!("ERR {}", e));
            }
        }
        if let Some((h, p)) = &target {
            let own = c.bind.split_whitespace().any(|b| b == h) || (h == "localhost" && c.bind == "127.0.0.1");
            if own && *p == c.port {
                return Reply::new(&mut conn.out, resp3).error("ERR Master is this server itself");
            }
        }
        crate::log(&match &target {
            Some((h, p)) => format!("REPLICAOF {} {}: becoming a replica", h, p),
            None => "REPLICAOF NO ONE: becoming a master".to_string(),
        });
        c.replicaof = want;
        match self.shared.config.lock() {
            Ok(mut g) => *g = c.clone(),
            Err(p) => *p.into_inner() = c.clone(),
        }
        if target.is_some() && !was_replica {
            crate::repl::replica::adopt_own_history();
        }
        crate::repl::replica::set_master(&self.shared, target);
        let req = FanReq::ConfigUpdate { config: Box::new(c), switch: None };
        self.fan(conn, self.all_shards(), req, FanOp::Ok);
    }

    /// Becoming a master: a new replid; a replica's data continues its
    /// master's history, kept as replid2 with how far each shard holds it
    /// (when the shard counts match, its old master's replicas continue
    /// from there); the epoch only grows. Durable before the reply.
    fn promote(&self, c: &crate::config::Config, was_replica: bool, epoch: Option<u64>) -> Result<(), String> {
        let n = self.shared.nshards;
        let history = if was_replica { crate::repl::replica::positions_of_one_history(n) } else { None };
        if !was_replica && epoch.is_none() {
            return Ok(());
        }
        let dir = std::path::PathBuf::from(&c.dir);
        let ids = crate::repl::master::update_ids(&dir, |ids| {
            if was_replica {
                ids.replid = crate::repl::new_replid();
                match &history {
                    Some((r, lsns)) => {
                        ids.replid2 = r.clone();
                        ids.second = lsns.clone();
                    }
                    None => {
                        ids.replid2.clear();
                        ids.second.clear();
                    }
                }
            }
            ids.epoch = ids.epoch.max(epoch.unwrap_or(0));
        });
        match ids {
            Ok(ids) => {
                crate::log(&format!(
                    "promoted at failover epoch {}: replid {}, continuing history {} at {:?}",
                    ids.epoch, ids.replid, ids.replid2, ids.second
                ));
                Ok(())
            }
            // Without an AOF there is no history to continue: nothing to keep.
            Err(_) if !c.appendonly => Ok(()),
            Err(e) => Err(format!("cannot record the promotion: {}", e)),
        }
    }

    /// ROLE
    fn cmd_role(&mut self, conn: &mut Conn, _: &Args) {
        let c = self.shared.config_snapshot();
        crate::repl::info::role(&c, &mut Reply::new(&mut conn.out, conn.resp3));
    }

    /// REPLCONF option value ...: `SHARDIS-HELLO` answers a replica with
    /// [replication port, shard count, replid, epoch]; Redis's own options
    /// (listening-port, ip-address, capa, ...) are accepted.
    fn cmd_replconf(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if args.len() == 2 && args.get(1).eq_ignore_ascii_case(b"shardis-hello") {
            return match crate::repl::master::get() {
                Some(m) => {
                    let ids = crate::repl::master::ids().unwrap_or_default();
                    r.array(4);
                    r.int(m.port as i64);
                    r.int(self.shared.nshards as i64);
                    r.bulk_str(&ids.replid);
                    r.int(ids.epoch as i64);
                }
                None => r.error("ERR this server cannot be a master: replication needs appendonly yes"),
            };
        }
        if args.len().is_multiple_of(2) {
            return r.error(crate::cmd::err::SYNTAX);
        }
        r.ok()
    }
}

//! CONFIG GET, SET, RESETSTAT, REWRITE. The master copy of the
//! configuration is shared; CONFIG SET changes it and fans the new copy out
//! to every shard (`apply_config`), which keeps what its hot path reads.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;
use std::sync::Arc;

const ADMIN_CMD: Flags = ADMIN | NOSCRIPT | LOADING | STALE;

const fn cfg(d: CommandDef) -> CommandDef {
    d.group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[cfg(container("config", SUBCOMMANDS)).since("2.0.0")];

static SUBCOMMANDS: &[CommandDef] = &[
    cfg(server("config|get", -3, ADMIN_CMD, Shard::cmd_config_get)).since("2.0.0"),
    cfg(help("config|help", HELP)).since("5.0.0"),
    cfg(server("config|resetstat", 2, ADMIN_CMD, Shard::cmd_config_resetstat)).since("2.0.0"),
    cfg(server("config|rewrite", 2, ADMIN_CMD, Shard::cmd_config_rewrite)).since("2.8.0"),
    cfg(server("config|set", -4, ADMIN_CMD, Shard::cmd_config_set))
        .since("2.0.0")
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

const HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "SET <directive> <value>",
    "RESETSTAT",
    "REWRITE",
];

impl Shard {
    /// CONFIG GET pattern [pattern ...]
    fn cmd_config_get(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let c = self.shared.config_snapshot();
        let entries = c.entries();
        let mut hits: Vec<(String, String)> = Vec::new();
        for pat in args.iter().skip(2) {
            // A plain name (no glob) is answered under the name as given,
            // any case, as Redis does.
            if !pat.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                let given = String::from_utf8_lossy(pat);
                let name = given.to_ascii_lowercase();
                if let Some((_, v)) = entries.iter().find(|(k, _)| *k == name) {
                    if !hits.iter().any(|(h, _)| h.eq_ignore_ascii_case(&given)) {
                        hits.push((given.into_owned(), v.clone()));
                    }
                }
                continue;
            }
            for (k, v) in &entries {
                if crate::util::glob_match(pat, k.as_bytes(), true) && !hits.iter().any(|(h, _)| h == k) {
                    hits.push((k.to_string(), v.clone()));
                }
            }
        }
        let mut r = Reply::new(&mut conn.out, resp3);
        r.map(hits.len());
        for (k, v) in hits {
            r.bulk_str(&k);
            r.bulk_str(&v);
        }
    }

    /// CONFIG SET name value [name value ...]: all or nothing.
    fn cmd_config_set(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        if !args.len().is_multiple_of(2) {
            return Reply::new(&mut conn.out, resp3).error(crate::cmd::err::SYNTAX);
        }
        let mut c = self.shared.config_snapshot();
        // Every pair is applied to one copy, which replaces the running
        // configuration only if all of them were taken.
        for i in (2..args.len()).step_by(2) {
            let name = String::from_utf8_lossy(args.get(i)).to_string();
            let val = String::from_utf8_lossy(args.get(i + 1)).to_string();
            let duplicate = (2..i).step_by(2).any(|j| args.get(j).eq_ignore_ascii_case(args.get(i)));
            let taken = if duplicate { Err("duplicate parameter".to_string()) } else { c.set(&name, &val) };
            match taken {
                Ok(()) => {}
                Err(e) if e == crate::config::UNKNOWN_OPTION => {
                    return Reply::new(&mut conn.out, resp3).error(&format!("ERR {e} - '{name}'"));
                }
                Err(e) => {
                    return Reply::new(&mut conn.out, resp3)
                        .error(&format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"))
                }
            }
        }
        if c.maxclients > self.config.maxclients {
            if let Err(e) = crate::shard::fdlimit::check_maxclients(c.maxclients, self.shared.nshards) {
                return Reply::new(&mut conn.out, resp3)
                    .error(&format!("ERR CONFIG SET failed (possibly related to argument 'maxclients') - {}", e));
            }
        }
        if c.requirepass != self.shared.config_snapshot().requirepass {
            // `requirepass` is the default user's password (each shard
            // takes the new table in `apply_config`).
            let _ = self.shared.acl.update(|users| {
                let mut d = (*users.default_user()).clone();
                d.set_requirepass(&c.requirepass);
                users.map.insert("default".into(), std::sync::Arc::new(d));
                Ok(())
            });
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
        self.refresh_acl_for(conn);
    }

    /// CONFIG RESETSTAT: every shard's command statistics.
    fn cmd_config_resetstat(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::ResetStat, FanOp::Ok)
    }

    /// CONFIG REWRITE: the running configuration back to its file.
    fn cmd_config_rewrite(&mut self, conn: &mut Conn, _: &Args) {
        let resp3 = conn.resp3;
        let mut c = self.shared.config_snapshot();
        if c.aclfile.is_empty() {
            // ACL users live in the config (as Redis rewrites its `user`
            // lines); `default` only where it is not what requirepass makes.
            let plain = crate::acl::user::User::default_user(&c.requirepass);
            let users = self.shared.acl.snapshot();
            c.users = users
                .map
                .iter()
                .filter(|(name, u)| name.as_str() != "default" || ***u != plain)
                .map(|(name, u)| format!("{} {}", name, u.describe()))
                .collect();
        }
        let mut r = Reply::new(&mut conn.out, resp3);
        match &c.config_file {
            None => r.error("ERR The server is running without a config file"),
            Some(path) => match c.to_toml().and_then(|t| write_atomically(path, &t)) {
                Ok(()) => r.ok(),
                Err(e) => r.error(&format!("ERR Rewriting config file: {}", e)),
            },
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
        self.refresh_acl();
        self.shared.acl.set_log_max_len(c.acllog_max_len);
        self.slowlog.set_max_len(c.slowlog_max_len.min(usize::MAX as u64) as usize);
        self.slow_ticks = crate::shard::slowlog::threshold_ticks(c.slowlog_log_slower_than);
        self.latmon.threshold = c.latency_monitor_threshold;
        self.ks.lazy = c.lazy_free();
        self.shared.busy.threshold_ms.store(c.busy_reply_threshold, std::sync::atomic::Ordering::Relaxed);
        let sync_ack_was_on = self.sync_ack_on();
        self.config = c.clone();
        if !sync_ack_was_on && self.sync_ack_on() {
            self.start_sync_ack_gate();
        } else if sync_ack_was_on && !self.config.replicaof.is_empty() {
            self.on_demoted_under_sync_ack();
        } else if sync_ack_was_on && !self.sync_ack_on() {
            // The operator let go of the replicas' acks (e.g. they are gone
            // for good): what waited for them goes out now, not at the next
            // AOF event (there may be none: every client waits).
            self.release_held();
        }
        // A replica expires nothing itself (its master's DELs do).
        self.ks.no_expire = !c.replicaof.is_empty();
        self.ks.notify.flags = c.notify_flags();
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
            lfu: crate::keyspace::evict::Lfu { log_factor: c.lfu_log_factor, decay_time: c.lfu_decay_time },
        };
        self.ks.set_mem_limit(limit);
        // A lowered limit takes effect now, as in Redis, not at the next write.
        if self.ks.over_limit() && !self.txn.locked() {
            self.ks.free_memory(crate::util::now_ms());
            self.log_pending();
        }
        aof
    }
}

/// Replace the file at `path` with `text` so that a crash leaves the old or
/// the new file, never a mix: a temp file beside it, fsync, rename, fsync
/// of the directory. The new file keeps the old one's permissions (a
/// config holding `requirepass` may be 0600), 0644 if there was none.
pub fn write_atomically(path: &str, text: &str) -> Result<(), String> {
    write_atomically_mode(path, text, None)
}

/// `write_atomically` with the new file's permissions set to `mode` when
/// given (ACL SAVE: 0600, the file holds password hashes).
pub fn write_atomically_mode(path: &str, text: &str, mode: Option<u32>) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode =
        mode.unwrap_or_else(|| std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644));
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

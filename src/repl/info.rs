//! INFO replication and ROLE, in Redis's format. Offsets are one number
//! that only grows: the sum over shards of their lsns (what a master may
//! reveal; what a replica has applied), so tools that compare replicas by
//! offset (Sentinel, shardis-monitor) work unchanged.

use super::{master, replica};
use std::sync::atomic::Ordering;

/// One replica as the master sees it: its links merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub ip: String,
    pub port: u16,
    /// Sum of acknowledged lsns over its links.
    pub offset: u64,
    /// Shards it is linked to.
    pub links: usize,
    /// Sum of lsns held durably in its own AOF.
    pub durable: u64,
    /// Milliseconds since its oldest link last acknowledged.
    pub lag_ms: u64,
}

/// The replicas of this master (links grouped by announced address).
pub fn replicas() -> Vec<ReplicaView> {
    let Some(m) = master::get() else { return Vec::new() };
    let mut out: Vec<ReplicaView> = Vec::new();
    for links in &m.links {
        let Ok(g) = links.lock() else { continue };
        for l in g.iter() {
            let lag_ms = l.last_ack.elapsed().as_millis() as u64;
            match out.iter_mut().find(|r| r.ip == l.ip && r.port == l.port) {
                Some(r) => {
                    r.offset += l.acked;
                    r.durable += l.durable;
                    r.lag_ms = r.lag_ms.max(lag_ms);
                    r.links += 1;
                }
                None => out.push(ReplicaView {
                    ip: l.ip.clone(),
                    port: l.port,
                    offset: l.acked,
                    links: 1,
                    durable: l.durable,
                    lag_ms,
                }),
            }
        }
    }
    out
}

/// This node's own offset: the sum over shards of what they may reveal
/// (what replicas are sent).
pub fn master_offset() -> u64 {
    master::get().map_or(0, |m| m.safe.iter().map(|d| d.load(Ordering::Relaxed)).sum())
}

/// The `# Replication` section.
pub fn section(cfg: &crate::config::Config) -> String {
    let mut s = String::from("# Replication\r\n");
    let rep = replica::status().filter(|_| !cfg.replicaof.is_empty());
    let views = replicas();
    let ids = master::ids().unwrap_or_default();
    let replid = if ids.replid.is_empty() { "0".repeat(40) } else { ids.replid.clone() };
    let offset = match &rep {
        Some(r) => r.links.iter().map(|l| l.applied).sum(),
        None => master_offset(),
    };
    match &rep {
        None => s.push_str("role:master\r\n"),
        Some(r) => {
            let applied: u64 = r.links.iter().map(|l| l.applied).sum();
            let up = r.master_shards > 0 && r.links.iter().all(|l| l.up);
            let syncing = r.links.iter().any(|l| l.syncing);
            let last_io = r.links.iter().map(|l| l.last_io.elapsed().as_secs()).max().unwrap_or(0);
            s.push_str("role:slave\r\n");
            s.push_str(&format!("master_host:{}\r\nmaster_port:{}\r\n", r.host, r.port));
            s.push_str(&format!("master_link_status:{}\r\n", if up { "up" } else { "down" }));
            s.push_str(&format!("master_last_io_seconds_ago:{}\r\n", if up { last_io as i64 } else { -1 }));
            s.push_str(&format!("master_sync_in_progress:{}\r\n", syncing as u8));
            s.push_str(&format!("slave_read_repl_offset:{}\r\n", r.links.iter().map(|l| l.read).sum::<u64>()));
            s.push_str(&format!("slave_repl_offset:{}\r\n", applied));
            if !up {
                // The longest a shard's link has been down; -1 if one never came up (as Redis).
                let down = r.links.iter().filter(|l| !l.up).map(|l| l.down_since.map(|t| t.elapsed().as_secs() as i64));
                let secs = down.fold(Some(0), |a, d| Some(a?.max(d?))).unwrap_or(-1);
                s.push_str(&format!("master_link_down_since_seconds:{}\r\n", secs));
            }
            s.push_str(&format!("slave_priority:{}\r\n", cfg.replica_priority));
            s.push_str(&format!("slave_read_only:{}\r\n", cfg.replica_read_only as u8));
            s.push_str("replica_announced:1\r\n");
            for (m, l) in r.links.iter().enumerate() {
                s.push_str(&format!(
                    "master_shard{}:link={},applied={},syncing={}\r\n",
                    m,
                    if l.up { "up" } else { "down" },
                    l.applied,
                    l.syncing as u8
                ));
            }
        }
    }
    s.push_str(&format!("connected_slaves:{}\r\n", views.len()));
    if rep.is_none() && cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        let good = master::get().map_or(0, |m| m.good.load(Ordering::Relaxed));
        s.push_str(&format!("min_slaves_good_slaves:{}\r\n", good));
    }
    for (i, v) in views.iter().enumerate() {
        s.push_str(&format!(
            "slave{}:ip={},port={},state=online,offset={},lag={}\r\n",
            i,
            v.ip,
            v.port,
            v.offset,
            v.lag_ms / 1000
        ));
    }
    // shardis's detail: how far behind each replica is, in records and
    // milliseconds, and what it holds durably. Not named `slaveN…`:
    // Sentinel reads any such line without `ip=` as an old-style address.
    for (i, v) in views.iter().enumerate() {
        s.push_str(&format!(
            "replica{}_detail:links={},lag_records={},lag_ms={},durable_offset={}\r\n",
            i,
            v.links,
            offset.saturating_sub(v.offset),
            v.lag_ms,
            v.durable
        ));
    }
    s.push_str("master_failover_state:no-failover\r\n");
    s.push_str(&format!("master_replid:{}\r\n", replid));
    let replid2 = if ids.replid2.is_empty() { "0".repeat(40) } else { ids.replid2.clone() };
    s.push_str(&format!("master_replid2:{}\r\n", replid2));
    s.push_str(&format!("master_repl_offset:{}\r\n", offset));
    if ids.replid2.is_empty() {
        s.push_str("second_repl_offset:-1\r\n");
    } else {
        s.push_str(&format!("second_repl_offset:{}\r\n", ids.second.iter().sum::<u64>() + 1));
    }
    s.push_str(&format!("failover_epoch:{}\r\n", ids.epoch));
    let backlog = cfg.repl_backlog_size;
    s.push_str(&format!("repl_backlog_active:{}\r\n", master::get().is_some() as u8));
    s.push_str(&format!("repl_backlog_size:{}\r\n", backlog));
    s.push_str("repl_backlog_first_byte_offset:1\r\n");
    s.push_str(&format!("repl_backlog_histlen:{}\r\n", offset));
    s.push_str("\r\n");
    s
}

/// ROLE's reply, written into `r`.
pub fn role(cfg: &crate::config::Config, r: &mut crate::protocol::reply::Reply) {
    match replica::status().filter(|_| !cfg.replicaof.is_empty()) {
        None => {
            let views = replicas();
            r.array(3);
            r.bulk_str("master");
            r.int(master_offset() as i64);
            r.array(views.len());
            for v in views {
                r.array(3);
                r.bulk_str(&v.ip);
                r.bulk_str(&v.port.to_string());
                r.bulk_str(&v.offset.to_string());
            }
        }
        Some(st) => {
            let up = st.master_shards > 0 && st.links.iter().all(|l| l.up);
            let state = if st.links.iter().any(|l| l.syncing) {
                "sync"
            } else if up {
                "connected"
            } else {
                "connect"
            };
            r.array(5);
            r.bulk_str("slave");
            r.bulk_str(&st.host);
            r.int(st.port as i64);
            r.bulk_str(state);
            r.int(st.links.iter().map(|l| l.applied).sum::<u64>() as i64);
        }
    }
}

/// INFO stats' sync counters.
pub fn stats_lines() -> String {
    let c = master::counters();
    let get = |f: fn(&master::Counters) -> &std::sync::atomic::AtomicU64| c.map_or(0, |c| f(c).load(Ordering::Relaxed));
    format!(
        "sync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\n",
        get(|c| &c.sync_full),
        get(|c| &c.sync_partial_ok),
        get(|c| &c.sync_partial_err)
    )
}

//! Reads a server's `INFO` reply (redis-server or shardis-server) into the
//! few fields the election uses. Pure; unknown or malformed lines are
//! skipped, so a server with more or fewer fields is still understood.

use super::election::{Addr, InfoReport};

/// Parse the text of an INFO reply.
pub fn parse(text: &str) -> InfoReport {
    let mut r = InfoReport { priority: 100, link_up: false, ..InfoReport::default() };
    let (mut master_host, mut master_port) = (None, None);
    let mut master_offset = 0u64;
    let mut replica_offset = None;
    for line in text.lines() {
        let Some((k, v)) = line.trim_end_matches('\r').split_once(':') else { continue };
        match k {
            "run_id" => r.run_id = v.to_string(),
            "role" => r.is_master = v == "master",
            "master_host" => master_host = Some(v.to_string()),
            "master_port" => master_port = v.parse::<u16>().ok(),
            "master_link_status" => r.link_up = v == "up",
            "master_link_down_since_seconds" => {
                // -1 means "never connected": treat as very long.
                r.link_down_ms =
                    v.parse::<i64>().ok().map(|s| if s < 0 { u64::MAX / 2 } else { s as u64 * 1000 }).unwrap_or(0)
            }
            "slave_priority" | "replica_priority" => r.priority = v.parse().unwrap_or(100),
            "slave_repl_offset" => replica_offset = v.parse().ok(),
            "master_repl_offset" => master_offset = v.parse().unwrap_or(0),
            _ if k.starts_with("slave") && k[5..].bytes().all(|b| b.is_ascii_digit()) && k.len() > 5 => {
                if let Some(a) = replica_entry(v) {
                    r.replicas.push(a);
                }
            }
            _ => {}
        }
    }
    if let (Some(h), Some(p)) = (master_host, master_port) {
        r.master = Some(Addr::new(&h, p));
    }
    r.offset = replica_offset.unwrap_or(master_offset);
    r
}

/// Whether the reply came from shardis-server (its INFO server section has
/// `shardis_version`, redis-server's does not). The driver needs it to
/// promote with `REPLICAOF NO ONE EPOCH n`, which redis-server would refuse.
pub fn is_shardis(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("shardis_version:"))
}

/// `ip=127.0.0.3,port=6380,state=online,offset=42,lag=0`.
fn replica_entry(v: &str) -> Option<Addr> {
    let (mut ip, mut port) = (None, None);
    for kv in v.split(',') {
        match kv.split_once('=') {
            Some(("ip", x)) => ip = Some(x),
            Some(("port", x)) => port = x.parse::<u16>().ok(),
            _ => {}
        }
    }
    Some(Addr::new(ip?, port?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_replica_replies() {
        let m = parse("# Server\r\nrun_id:abc\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.3,port=6380,state=online,offset=42,lag=0\r\nslave1:ip=127.0.0.4,port=6381,state=online,offset=40,lag=1\r\nslave2:garbage\r\nmaster_repl_offset:42\r\n");
        assert!(m.is_master);
        assert_eq!(m.run_id, "abc");
        assert_eq!(m.offset, 42);
        assert_eq!(m.replicas, vec![Addr::new("127.0.0.3", 6380), Addr::new("127.0.0.4", 6381)]);
        let r = parse("role:slave\r\nmaster_host:127.0.0.2\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:3\r\nslave_repl_offset:40\r\nslave_priority:0\r\nmaster_repl_offset:41\r\n");
        assert!(!r.is_master && !r.link_up);
        assert_eq!(r.master, Some(Addr::new("127.0.0.2", 6379)));
        assert_eq!((r.link_down_ms, r.offset, r.priority), (3000, 40, 0));
        assert_eq!(parse("\u{0}\u{1}::::\r\n:x\r\nrole"), InfoReport { priority: 100, ..InfoReport::default() });
        assert!(is_shardis("# Server\r\nredis_version:7.2.0\r\nshardis_version:0.1.0\r\n"));
        assert!(!is_shardis("# Server\r\nredis_version:7.2.0\r\nredis_mode:standalone\r\n"));
    }
}

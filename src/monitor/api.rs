//! The Sentinel API on the monitor's port: `SENTINEL ...`, `ROLE`, `INFO`,
//! `PING`. Turns one parsed request into a reply over the election's state
//! (and the actions a command causes). No sockets: the driver's connection
//! threads call `handle` through the driver's loop. Replies follow Redis
//! Sentinel's (RESP2) shapes, so Sentinel clients read them unchanged.

use super::election::{check_config, Action, Addr, Event, Master, MasterConfig, Monitor, MAX_EPOCH};
use crate::protocol::reply::Reply;
use crate::util::glob_match;

/// What a request produced: a reply now, or later (a vote request is
/// answered by the `ReplyVote` its event produces, after the vote was
/// persisted).
pub struct Handled {
    pub reply: Option<Vec<u8>>,
    pub actions: Vec<Action>,
}

fn now_reply(resp3: bool, f: impl FnOnce(&mut Reply)) -> Handled {
    let mut out = Vec::new();
    f(&mut Reply::new(&mut out, resp3));
    Handled { reply: Some(out), actions: Vec::new() }
}

fn err(msg: &str) -> Handled {
    now_reply(false, |r| r.error(msg))
}

fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

fn text(a: &[u8]) -> String {
    String::from_utf8_lossy(a).into_owned()
}

/// `*3 :down $leader :epoch`, the answer to is-master-down-by-addr.
pub fn vote_reply(down: bool, leader: Option<&str>, leader_epoch: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reply::new(&mut out, false);
    r.array(3);
    r.int(down as i64);
    r.bulk_str(leader.unwrap_or("*"));
    r.int(leader_epoch as i64);
    out
}

/// `p`: the connection speaks RESP3 (maps for field lists, `_` for nulls),
/// as Sentinel answers after `HELLO 3`.
pub fn handle(mon: &mut Monitor, args: &[Vec<u8>], now: u64, token: u64, p: bool) -> Handled {
    let Some(cmd) = args.first() else { return err("ERR empty command") };
    match lower(cmd).as_str() {
        "ping" => now_reply(p, |r| r.simple("PONG")),
        "role" => now_reply(p, |r| {
            r.array(2);
            r.bulk_str("sentinel");
            r.array(mon.masters.len());
            for n in mon.masters.keys() {
                r.bulk_str(n);
            }
        }),
        "info" => now_reply(p, |r| r.bulk_str(&info(mon))),
        "sentinel" if args.len() >= 2 => sentinel(mon, args, now, token, p),
        "sentinel" => err("ERR wrong number of arguments for 'sentinel' command"),
        _ => {
            let shown: String = text(cmd).chars().take(128).collect();
            err(&format!("ERR unknown command '{shown}'"))
        }
    }
}

fn info(mon: &Monitor) -> String {
    let mut s = format!("# Server\r\nrun_id:{}\r\ntcp_port:{}\r\n\r\n# Sentinel\r\n", mon.my_id, mon.my_addr.port);
    s += &format!("sentinel_masters:{}\r\nsentinel_tilt:0\r\nsentinel_running_scripts:0\r\n", mon.masters.len());
    s += &format!("sentinel_current_epoch:{}\r\n", mon.current_epoch);
    for (i, (name, m)) in mon.masters.iter().enumerate() {
        let status = if m.odown_since.is_some() {
            "odown"
        } else if m.master.sdown_since.is_some() {
            "sdown"
        } else {
            "ok"
        };
        s += &format!(
            "master{i}:name={name},status={status},address={},slaves={},sentinels={}\r\n",
            m.master.addr,
            m.replicas.len(),
            m.voters()
        );
    }
    s
}

/// A field list: a map in RESP3, a flat array in RESP2 (as Sentinel).
fn flat(r: &mut Reply, fields: &[(&str, String)]) {
    r.map(fields.len());
    for (k, v) in fields {
        r.bulk_str(k);
        r.bulk_str(v);
    }
}

fn master_fields(m: &Master, now: u64) -> Vec<(&'static str, String)> {
    let mut flags = vec!["master"];
    if m.master.sdown_since.is_some() {
        flags.push("s_down");
    }
    if m.odown_since.is_some() {
        flags.push("o_down");
    }
    if m.in_failover() {
        flags.push("failover_in_progress");
    }
    vec![
        ("name", m.config.name.clone()),
        ("ip", m.master.addr.host.clone()),
        ("port", m.master.addr.port.to_string()),
        ("runid", m.master.run_id().to_string()),
        ("flags", flags.join(",")),
        ("last-ok-ping-reply", now.saturating_sub(m.master.last_ok).to_string()),
        ("num-slaves", m.replicas.len().to_string()),
        ("num-other-sentinels", m.peers.len().to_string()),
        ("quorum", m.config.quorum.to_string()),
        ("down-after-milliseconds", m.config.down_after_ms.to_string()),
        ("failover-timeout", m.config.failover_timeout_ms.to_string()),
        ("parallel-syncs", m.config.parallel_syncs.to_string()),
        ("config-epoch", m.config_epoch.to_string()),
        ("leader", m.leader.clone().unwrap_or_else(|| "*".into())),
        ("leader-epoch", m.leader_epoch.to_string()),
    ]
}

fn find<'a>(mon: &'a Monitor, name: &[u8]) -> Option<&'a Master> {
    mon.masters.get(&text(name))
}

fn sentinel(mon: &mut Monitor, args: &[Vec<u8>], now: u64, token: u64, p: bool) -> Handled {
    let sub = lower(&args[1]);
    let n = args.len();
    let no_master = || err("ERR No such master with that name");
    let arity = |want: bool| {
        if want {
            None
        } else {
            Some(err(&format!("ERR wrong number of arguments for 'sentinel|{sub}' command")))
        }
    };
    let take = |r: Result<Vec<Action>, String>| match r {
        Ok(actions) => Handled { reply: Some(b"+OK\r\n".to_vec()), actions },
        Err(e) => err(&e),
    };
    match sub.as_str() {
        "myid" => now_reply(p, |r| r.bulk_str(&mon.my_id)),
        "get-master-addr-by-name" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            match find(mon, &args[2]) {
                Some(m) => now_reply(p, |r| {
                    r.array(2);
                    r.bulk_str(&m.master.addr.host);
                    r.bulk_str(&m.master.addr.port.to_string());
                }),
                None => now_reply(p, |r| r.null_array()),
            }
        }
        "masters" => now_reply(p, |r| {
            r.array(mon.masters.len());
            for m in mon.masters.values() {
                flat(r, &master_fields(m, now));
            }
        }),
        "master" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            match find(mon, &args[2]) {
                Some(m) => now_reply(p, |r| flat(r, &master_fields(m, now))),
                None => no_master(),
            }
        }
        "replicas" | "slaves" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            let Some(m) = find(mon, &args[2]) else { return no_master() };
            now_reply(p, |r| {
                r.array(m.replicas.len());
                for (a, i) in &m.replicas {
                    let info = i.info.clone().unwrap_or_default();
                    let mut flags = vec![if info.is_master && i.info.is_some() { "master" } else { "slave" }];
                    if i.sdown_since.is_some() {
                        flags.push("s_down");
                    }
                    let (mh, mp) =
                        info.master.map(|m| (m.host, m.port.to_string())).unwrap_or_else(|| ("?".into(), "0".into()));
                    flat(
                        r,
                        &[
                            ("name", a.to_string()),
                            ("ip", a.host.clone()),
                            ("port", a.port.to_string()),
                            ("runid", info.run_id.clone()),
                            ("flags", flags.join(",")),
                            ("last-ok-ping-reply", now.saturating_sub(i.last_ok).to_string()),
                            ("master-link-status", if info.link_up { "ok" } else { "err" }.to_string()),
                            ("master-host", mh),
                            ("master-port", mp),
                            ("slave-priority", info.priority.to_string()),
                            ("slave-repl-offset", info.offset.to_string()),
                        ],
                    );
                }
            })
        }
        "sentinels" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            let Some(m) = find(mon, &args[2]) else { return no_master() };
            now_reply(p, |r| {
                r.array(m.peers.len());
                for (id, p) in &m.peers {
                    flat(
                        r,
                        &[
                            ("name", id.clone()),
                            ("ip", p.addr.host.clone()),
                            ("port", p.addr.port.to_string()),
                            ("runid", id.clone()),
                            ("flags", "sentinel".into()),
                            ("last-hello-message", now.saturating_sub(p.last_hello).to_string()),
                            ("voted-leader", p.leader.clone().unwrap_or_else(|| "?".into())),
                            ("voted-leader-epoch", p.leader_epoch.to_string()),
                        ],
                    );
                }
            })
        }
        "is-master-down-by-addr" => {
            if let Some(h) = arity(n == 6) {
                return h;
            }
            let port = text(&args[3]).parse::<u16>();
            let epoch = text(&args[4]).parse::<u64>();
            let (Ok(port), Ok(epoch)) = (port, epoch) else {
                return err("ERR value is not an integer or out of range");
            };
            if epoch > MAX_EPOCH {
                return err("ERR epoch out of range");
            }
            let ev =
                Event::VoteRequest { token, master: Addr::new(&text(&args[2]), port), epoch, run_id: text(&args[5]) };
            Handled { reply: None, actions: mon.step(ev, now) }
        }
        "failover" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            match mon.force_failover(&text(&args[2]), now) {
                Ok(actions) => Handled { reply: Some(b"+OK\r\n".to_vec()), actions },
                Err(e) => err(&e),
            }
        }
        "reset" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            let pat = args[2].clone();
            let names: Vec<String> =
                mon.masters.keys().filter(|k| glob_match(&pat, k.as_bytes(), false)).cloned().collect();
            let mut actions = Vec::new();
            for name in &names {
                actions.extend(mon.reset_master(name, now));
            }
            let mut out = Vec::new();
            Reply::new(&mut out, p).int(names.len() as i64);
            Handled { reply: Some(out), actions }
        }
        "ckquorum" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            let Some(m) = find(mon, &args[2]) else { return no_master() };
            // Peers heard from recently are the usable ones.
            let usable = 1 + m.peers.values().filter(|p| now.saturating_sub(p.last_hello) <= 5000).count();
            let need = m.votes_needed();
            if usable >= need && usable >= m.config.quorum as usize {
                now_reply(p, |r| {
                    r.simple(&format!("OK {usable} usable Sentinels. Quorum and failover authorization can be reached"))
                })
            } else {
                err(&format!("NOQUORUM {usable} usable Sentinels. Not enough available Sentinels to reach the majority and authorize a failover ({need} needed)"))
            }
        }
        "monitor" => {
            if let Some(h) = arity(n == 6) {
                return h;
            }
            let (Ok(port), Ok(quorum)) = (text(&args[4]).parse::<u16>(), text(&args[5]).parse::<u32>()) else {
                return err("ERR Invalid port or quorum");
            };
            let c = MasterConfig {
                name: text(&args[2]),
                addr: Addr::new(&text(&args[3]), port),
                quorum,
                down_after_ms: 30_000,
                failover_timeout_ms: 180_000,
                parallel_syncs: 1,
                auth_pass: String::new(),
                auth_user: String::new(),
            };
            take(mon.add_master(c, now))
        }
        "remove" => {
            if let Some(h) = arity(n == 3) {
                return h;
            }
            take(mon.remove_master(&text(&args[2])))
        }
        "set" => {
            if n < 5 || n % 2 == 0 {
                return err("ERR wrong number of arguments for 'sentinel|set' command");
            }
            let Some(m) = find(mon, &args[2]) else { return no_master() };
            let mut c = m.config.clone();
            for kv in args[3..].chunks(2) {
                let v = text(&kv[1]);
                let num = || {
                    v.parse::<u64>()
                        .map_err(|_| format!("ERR Invalid argument '{v}' for SENTINEL SET '{}'", text(&kv[0])))
                };
                let r = match lower(&kv[0]).as_str() {
                    "down-after-milliseconds" => num().map(|x| c.down_after_ms = x),
                    "failover-timeout" => num().map(|x| c.failover_timeout_ms = x),
                    "parallel-syncs" => num().map(|x| c.parallel_syncs = x.min(u32::MAX as u64) as u32),
                    "quorum" => num().map(|x| c.quorum = x.min(u32::MAX as u64) as u32),
                    "auth-pass" => {
                        c.auth_pass = v.clone();
                        Ok(())
                    }
                    "auth-user" => {
                        c.auth_user = v.clone();
                        Ok(())
                    }
                    other => Err(format!("ERR Invalid argument '{other}' for SENTINEL SET")),
                };
                if let Err(e) = r {
                    return err(&e);
                }
            }
            if let Err(e) = check_config(&c) {
                return err(&e);
            }
            take(mon.set_config(c))
        }
        "config" => {
            // Only what shardis-monitor has: its announce address.
            match (n, args.get(2).map(|a| lower(a))) {
                (4, Some(g)) if g == "get" => {
                    let pat = args[3].clone();
                    let all = [
                        ("announce-ip", mon.my_addr.host.clone()),
                        ("announce-port", mon.my_addr.port.to_string()),
                        ("resolve-hostnames", "no".into()),
                        ("announce-hostnames", "no".into()),
                    ];
                    let hits: Vec<(&str, String)> =
                        all.into_iter().filter(|(k, _)| glob_match(&pat, k.as_bytes(), true)).collect();
                    now_reply(p, |r| flat(r, &hits))
                }
                (5, Some(s)) if s == "set" => match lower(&args[3]).as_str() {
                    "announce-ip" => {
                        mon.my_addr.host = text(&args[4]);
                        now_reply(p, |r| r.ok())
                    }
                    "announce-port" => match text(&args[4]).parse::<u16>() {
                        Ok(port) => {
                            mon.my_addr.port = port;
                            now_reply(p, |r| r.ok())
                        }
                        Err(_) => err("ERR Invalid port"),
                    },
                    other => err(&format!("ERR Invalid argument '{other}' to SENTINEL CONFIG SET")),
                },
                _ => err("ERR wrong number of arguments for 'sentinel|config' command"),
            }
        }
        _ => {
            let shown: String = sub.chars().take(64).collect();
            err(&format!("ERR Unknown sentinel subcommand '{shown}'"))
        }
    }
}

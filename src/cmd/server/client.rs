//! CLIENT: ID, GETNAME, SETNAME, INFO, LIST, KILL and UNBLOCK (over every
//! shard), PAUSE/UNPAUSE (`shard::pause`), REPLY, and the options Redis
//! clients set that shardis accepts and ignores (SETINFO, NO-EVICT,
//! NO-TOUCH).

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{err, Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, ReplyMode, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::{ConnRef, FanReq, FanResp};

const OWN: Flags = NOSCRIPT | LOADING | STALE;
const OTHERS: Flags = ADMIN | NOSCRIPT | LOADING | STALE;

const fn cl(d: CommandDef) -> CommandDef {
    d.acl(acl::CONNECTION).group(Group::Connection)
}

pub static COMMANDS: &[CommandDef] = &[container("client", SUBCOMMANDS).group(Group::Connection).since("2.4.0")];

static SUBCOMMANDS: &[CommandDef] = &[
    cl(server("client|getname", 2, OWN, Shard::cmd_client_getname)).since("2.6.9"),
    cl(help("client|help", HELP)).since("5.0.0"),
    cl(server("client|id", 2, OWN, Shard::cmd_client_id)).since("5.0.0"),
    cl(server("client|info", 2, OWN, Shard::cmd_client_info)).since("6.2.0").tips(&["nondeterministic_output"]),
    cl(server("client|kill", -3, OTHERS, Shard::cmd_client_kill)).since("2.4.0"),
    cl(server("client|list", -2, OTHERS, Shard::cmd_client_list)).since("2.4.0").tips(&["nondeterministic_output"]),
    cl(server("client|no-evict", 3, OTHERS, Shard::cmd_client_no_evict)).since("7.0.0"),
    // From Redis 7.2, which clients (redis-py, ...) send on connect.
    cl(server("client|no-touch", 3, OWN, Shard::cmd_client_no_touch)).since("7.2.0"),
    cl(server("client|pause", -3, OTHERS | AFTER_TXN, Shard::cmd_client_pause)).since("2.9.50"),
    cl(server("client|reply", 3, OWN, Shard::cmd_client_reply)).since("3.2.0"),
    cl(server("client|setinfo", 4, OWN | SENTINEL, Shard::cmd_client_accept)).since("7.2.0"),
    cl(server("client|setname", 3, OWN, Shard::cmd_client_setname)).since("2.6.9"),
    cl(server("client|unblock", -3, OTHERS, Shard::cmd_client_unblock)).since("5.0.0"),
    cl(server("client|unpause", 2, OTHERS | AFTER_TXN, Shard::cmd_client_unpause)).since("6.2.0"),
];

/// Redis 7.0's CLIENT HELP, less what shardis does not have (CACHING,
/// GETREDIR, TRACKING, TRACKINGINFO).
const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * MAXAGE <seconds>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// A client's type, for the TYPE filters (Redis's getClientType): a
/// MONITOR client is a normal one; replication links are not clients here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    Master,
    Replica,
    PubSub,
}

impl ClientType {
    /// The TYPE argument, or Redis's error for it.
    fn parse(a: &[u8]) -> Result<ClientType, String> {
        match a.to_ascii_lowercase().as_slice() {
            b"normal" => Ok(ClientType::Normal),
            b"master" => Ok(ClientType::Master),
            b"replica" | b"slave" => Ok(ClientType::Replica),
            b"pubsub" => Ok(ClientType::PubSub),
            _ => Err(format!("ERR Unknown client type '{}'", String::from_utf8_lossy(a))),
        }
    }

    fn of(c: &Conn) -> ClientType {
        if c.in_pubsub() {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }
}

/// Which clients CLIENT KILL (new form) or CLIENT LIST selects.
#[derive(Clone, Debug, Default)]
pub struct KillFilter {
    pub ids: Option<Vec<u64>>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub kind: Option<ClientType>,
    pub user: Option<String>,
    /// Connected for longer than this many seconds.
    pub maxage: Option<i64>,
    pub skipme_id: Option<u64>,
}

impl KillFilter {
    fn matches(&self, c: &Conn, now: i64) -> bool {
        self.skipme_id != Some(c.id)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&c.id))
            && self.addr.as_deref().is_none_or(|a| a == c.addr)
            && self.laddr.as_deref().is_none_or(|a| a == c.laddr)
            && self.kind.is_none_or(|k| k == ClientType::of(c))
            && self.user.as_deref().is_none_or(|u| u == &*c.user.name)
            && self.maxage.is_none_or(|m| (now - c.created_ms) / 1000 >= m)
    }
}

impl Shard {
    fn cmd_client_id(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).int(conn.id as i64)
    }

    fn cmd_client_getname(&mut self, conn: &mut Conn, _: &Args) {
        let resp3 = conn.resp3;
        let mut r = Reply::new(&mut conn.out, resp3);
        if conn.name.is_empty() {
            r.null();
        } else {
            r.bulk(&conn.name);
        }
    }

    fn cmd_client_setname(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let n = args.get(2);
        if n.iter().any(|&b| b <= b' ' || b > b'~') {
            return Reply::new(&mut conn.out, resp3)
                .error("ERR Client names cannot contain spaces, newlines or special characters.");
        }
        conn.name = n.to_vec();
        Reply::new(&mut conn.out, resp3).ok();
    }

    fn cmd_client_info(&mut self, conn: &mut Conn, _: &Args) {
        let resp3 = conn.resp3;
        let line = self.client_line(conn);
        Reply::new(&mut conn.out, resp3).verbatim(line.as_bytes());
    }

    /// CLIENT LIST [TYPE type | ID id [id ...]]: every shard's connections.
    fn cmd_client_list(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let mut f = KillFilter::default();
        if args.len() == 4 && args.is(2, "TYPE") {
            match ClientType::parse(args.get(3)) {
                Ok(t) => f.kind = Some(t),
                Err(e) => return Reply::new(&mut conn.out, resp3).error(&e),
            }
        } else if args.len() >= 4 && args.is(2, "ID") {
            let mut ids = Vec::new();
            for i in 3..args.len() {
                match crate::util::parse_i64(args.get(i)) {
                    Some(id) => ids.push(id.max(0) as u64),
                    None => return Reply::new(&mut conn.out, resp3).error("ERR Invalid client ID"),
                }
            }
            f.ids = Some(ids);
        } else if args.len() != 2 {
            return Reply::new(&mut conn.out, resp3).error(err::SYNTAX);
        }
        // The calling client is out of the slot table while it runs;
        // its own line is added here.
        let mut mine = self.client_list(&f, Some(conn.conn_ref(self.id)));
        if f.matches(conn, self.now) {
            mine.push_str(&self.client_line(conn));
        }
        let me = self.id;
        let others: Vec<usize> = self.all_shards().into_iter().filter(|&s| s != me).collect();
        self.fan_with(
            conn,
            others,
            FanReq::ClientList { filter: f },
            FanOp::ClientList,
            vec![(me, FanResp::Text(mine))],
        );
    }

    /// CLIENT KILL addr:port | [ID id] [TYPE type] [USER user] [ADDR addr]
    /// [LADDR addr] [SKIPME yes|no] [MAXAGE secs], over every shard.
    fn cmd_client_kill(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        let old_style = args.len() == 3;
        let f = if old_style {
            KillFilter { addr: Some(String::from_utf8_lossy(args.get(2)).to_string()), ..Default::default() }
        } else {
            match self.kill_filter(conn, args) {
                Ok(f) => f,
                Err(e) => return Reply::new(&mut conn.out, resp3).error(&e),
            }
        };
        // The caller itself (not in the slot table now) may match.
        let self_match = f.matches(conn, self.now);
        if self_match {
            conn.close_after_flush = true;
        }
        let mine = self.client_kill(&f) + self_match as usize;
        let me = self.id;
        let others: Vec<usize> = self.all_shards().into_iter().filter(|&s| s != me).collect();
        let known = vec![(me, FanResp::Int(mine as i64))];
        self.fan_with(conn, others, FanReq::ClientKill { filter: f }, FanOp::ClientKill { old_style }, known);
    }

    /// The filters of CLIENT KILL's new form, with Redis's errors.
    fn kill_filter(&self, conn: &Conn, args: &Args) -> Result<KillFilter, String> {
        let mut f = KillFilter::default();
        let mut skipme = true;
        let mut i = 2;
        while i < args.len() {
            if i + 1 >= args.len() {
                return Err(err::SYNTAX.into());
            }
            let v = args.get(i + 1);
            if args.is(i, "ID") {
                match crate::util::parse_i64(v) {
                    Some(id) if id > 0 => f.ids = Some(vec![id as u64]),
                    _ => return Err("ERR client-id should be greater than 0".into()),
                }
            } else if args.is(i, "TYPE") {
                f.kind = Some(ClientType::parse(v)?);
            } else if args.is(i, "USER") {
                let name = String::from_utf8_lossy(v).to_string();
                if self.acl.get(&name).is_none() {
                    return Err(format!("ERR No such user '{name}'"));
                }
                f.user = Some(name);
            } else if args.is(i, "ADDR") {
                f.addr = Some(String::from_utf8_lossy(v).to_string());
            } else if args.is(i, "LADDR") {
                f.laddr = Some(String::from_utf8_lossy(v).to_string());
            } else if args.is(i, "SKIPME") {
                if v.eq_ignore_ascii_case(b"yes") {
                    skipme = true;
                } else if v.eq_ignore_ascii_case(b"no") {
                    skipme = false;
                } else {
                    return Err(err::SYNTAX.into());
                }
            } else if args.is(i, "MAXAGE") {
                // Redis 7.4's filter (7.0 has none): a syntax error there.
                match crate::util::parse_i64(v) {
                    Some(n) => f.maxage = Some(n),
                    None => return Err(err::NOT_INT.into()),
                }
            } else {
                return Err(err::SYNTAX.into());
            }
            i += 2;
        }
        if skipme {
            f.skipme_id = Some(conn.id);
        }
        Ok(f)
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the client may be blocked on
    /// any shard; 1 if it was.
    fn cmd_client_unblock(&mut self, conn: &mut Conn, args: &Args) {
        let resp3 = conn.resp3;
        if args.len() > 4 {
            return Reply::new(&mut conn.out, resp3).error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(args.get(1))
            ));
        }
        let Some(id) = crate::util::parse_i64(args.get(2)) else {
            return Reply::new(&mut conn.out, resp3).error(err::NOT_INT);
        };
        let error = if args.len() == 4 {
            if args.is(3, "error") {
                true
            } else if args.is(3, "timeout") {
                false
            } else {
                return Reply::new(&mut conn.out, resp3).error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
            }
        } else {
            false
        };
        let mine = id > 0 && self.unblock_client(id as u64, error);
        let me = self.id;
        let others: Vec<usize> = self.all_shards().into_iter().filter(|&s| s != me).collect();
        let known = vec![(me, FanResp::Int(mine as i64))];
        let req = FanReq::ClientUnblock { id: id.max(0) as u64, error };
        self.fan_with(conn, others, req, FanOp::ClientUnblock, known);
    }

    /// Options shardis accepts and does not act on.
    fn cmd_client_accept(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).ok()
    }

    /// CLIENT NO-EVICT ON|OFF: kept for CLIENT LIST's `e` flag (clients
    /// are never evicted: there is no maxmemory-clients).
    fn cmd_client_no_evict(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if args.is(2, "on") || args.is(2, "off") {
            conn.no_evict = args.is(2, "on");
            r.ok()
        } else {
            r.error(err::SYNTAX)
        }
    }

    /// CLIENT NO-TOUCH ON|OFF (Redis 7.2): the client's commands, on every
    /// shard they run on, leave the keys' LRU/LFU clocks alone (OBJECT
    /// IDLETIME/FREQ, eviction), TOUCH excepted.
    fn cmd_client_no_touch(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if args.is(2, "on") || args.is(2, "off") {
            conn.no_touch = args.is(2, "on");
            r.ok()
        } else {
            r.error(err::SYNTAX)
        }
    }

    /// CLIENT REPLY ON | OFF | SKIP. OFF and SKIP are not answered; ON
    /// is, and drops what OFF had muted (see `Conn::settle_reply`).
    fn cmd_client_reply(&mut self, conn: &mut Conn, args: &Args) {
        if args.is(2, "on") {
            conn.settle_reply();
            conn.reply = ReplyMode::On;
            Reply::new(&mut conn.out, conn.resp3).ok();
        } else if args.is(2, "off") {
            conn.settle_reply();
            conn.reply = ReplyMode::Off;
            conn.mute_from = conn.out.len();
        } else if args.is(2, "skip") {
            // SKIP under OFF changes nothing (Redis ignores it there).
            if conn.reply != ReplyMode::Off {
                conn.reply = ReplyMode::SkipNext;
            }
        } else {
            Reply::new(&mut conn.out, conn.resp3).error(err::SYNTAX);
        }
    }

    pub fn client_line(&self, c: &Conn) -> String {
        client_line(c, self.now, self.id)
    }

    pub fn client_list(&self, f: &KillFilter, skip: Option<ConnRef>) -> String {
        let mut s = String::new();
        for c in self.conns.iter().flatten() {
            if c.closing || Some(c.conn_ref(self.id)) == skip || !f.matches(c, self.now) {
                continue;
            }
            s.push_str(&self.client_line(c));
        }
        s
    }

    pub fn client_kill(&mut self, f: &KillFilter) -> usize {
        let now = self.now;
        let victims: Vec<u32> =
            self.conns.iter().flatten().filter(|c| !c.closing && f.matches(c, now)).map(|c| c.idx).collect();
        for &idx in &victims {
            self.close(idx);
        }
        victims.len()
    }
}

/// A connection's CLIENT LIST line at `now` (ms) on shard `shard` (also
/// what ACL LOG shows of a client, and what a busy script's hook logs).
pub fn client_line(c: &Conn, now: i64, shard: usize) -> String {
    let age = (now - c.created_ms).max(0) / 1000;
    let idle = (now - c.last_cmd_ms).max(0) / 1000;
    // Redis's letters, in its order; N for none.
    let mut flags = String::new();
    if c.in_pubsub() {
        flags.push('P');
    }
    if c.multi.is_some() {
        flags.push('x');
    }
    if matches!(c.wait, crate::shard::core::Wait::Blocked(_) | crate::shard::core::Wait::Paused) {
        flags.push('b');
    }
    if c.close_after_flush {
        flags.push('c');
    }
    if c.no_evict {
        flags.push('e');
    }
    if c.monitor {
        // A MONITOR client is a replica to Redis ('O').
        flags.insert(0, 'O');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir=-1 resp={} shard={}\n",
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
        c.ssubs.len(),
        c.multi.as_ref().map(|m| m.cmds.len() as i64).unwrap_or(-1),
        c.rbuf.len().saturating_sub(c.rpos),
        c.rbuf.capacity().saturating_sub(c.rbuf.len()),
        c.rbuf.capacity(),
        c.rbuf.capacity(),
        c.output_bytes(),
        c.mem_bytes(),
        c.last_cmd,
        c.user.name,
        if c.resp3 { 3 } else { 2 },
        shard
    )
}

//! SLOWLOG GET, LEN, RESET over every shard (each keeps its own log,
//! `crate::shard::slowlog`; ids come from one counter, so merging by id
//! gives Redis's order).

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;

const ADMIN_CMD: Flags = ADMIN | LOADING | STALE;

const fn sl(d: CommandDef) -> CommandDef {
    d.group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[sl(container("slowlog", SUBCOMMANDS)).since("2.2.12")];

static SUBCOMMANDS: &[CommandDef] = &[
    sl(server("slowlog|get", -2, ADMIN_CMD, Shard::cmd_slowlog_get))
        .since("2.2.12")
        .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
    sl(help("slowlog|help", HELP)).since("6.2.0"),
    sl(server("slowlog|len", 2, ADMIN_CMD, Shard::cmd_slowlog_len)).since("2.2.12").tips(&[
        "request_policy:all_nodes",
        "response_policy:agg_sum",
        "nondeterministic_output",
    ]),
    sl(server("slowlog|reset", 2, ADMIN_CMD, Shard::cmd_slowlog_reset))
        .since("2.2.12")
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

const HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    The <count> newest entries (10 by default, -1 for all), each as: id,",
    "    unix time, duration in microseconds, the command's arguments, the",
    "    client's address and its name.",
    "LEN",
    "    How many entries there are.",
    "RESET",
    "    Drop every entry.",
    "HELP",
    "    This text.",
];

impl Shard {
    /// SLOWLOG GET [count]: the newest `count` (10; -1 for all) over every
    /// shard.
    fn cmd_slowlog_get(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        if args.len() > 3 {
            // Redis 7.0's own text: GET checks its argument count itself.
            return r.error(&crate::cmd::subcommand_syntax_text("slowlog", args.get(1)));
        }
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

    fn cmd_slowlog_len(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::SlowlogLen, FanOp::SlowlogLen { max: self.slowlog_max() })
    }

    fn cmd_slowlog_reset(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::SlowlogReset, FanOp::Ok)
    }

    fn slowlog_max(&self) -> usize {
        self.config.slowlog_max_len.min(usize::MAX as u64) as usize
    }
}

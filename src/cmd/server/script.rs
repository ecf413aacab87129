//! SCRIPT LOAD / EXISTS / FLUSH / KILL / DEBUG / HELP: the script cache,
//! which every shard shares (`crate::script::Cache`).

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};

const fn sc(d: CommandDef) -> CommandDef {
    d.group(Group::Scripting).acl(acl::SCRIPTING | acl::SLOW)
}

pub static COMMANDS: &[CommandDef] =
    &[container("script", SUBCOMMANDS).group(Group::Scripting).acl(acl::SLOW).since("2.6.0")];

static SUBCOMMANDS: &[CommandDef] = &[
    sc(server("script|debug", 3, NOSCRIPT, Shard::cmd_script_debug)).since("3.2.0"),
    sc(server("script|exists", -3, NOSCRIPT, Shard::cmd_script_exists))
        .since("2.6.0")
        .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
    sc(server("script|flush", -2, NOSCRIPT, Shard::cmd_script_flush))
        .since("2.6.0")
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    sc(help("script|help", HELP)).since("5.0.0"),
    sc(server("script|kill", 2, NOSCRIPT | ALLOW_BUSY, Shard::cmd_script_kill))
        .since("2.6.0")
        .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    sc(server("script|load", 3, NOSCRIPT | STALE, Shard::cmd_script_load))
        .since("2.6.0")
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

impl Shard {
    pub fn cmd_script_load(&mut self, conn: &mut Conn, args: &Args) {
        let r = self.scripts.load(args.get(2));
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        match r {
            Ok(sha) => out.bulk(&sha),
            Err(e) => out.error(&e),
        }
    }

    pub fn cmd_script_exists(&mut self, conn: &mut Conn, args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        out.array(args.len() - 2);
        for sha in args.iter().skip(2) {
            out.int(self.scripts.cache.exists(sha) as i64);
        }
    }

    pub fn cmd_script_flush(&mut self, conn: &mut Conn, args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        if args.len() > 3 || (args.len() == 3 && !args.is(2, "sync") && !args.is(2, "async")) {
            return out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        }
        self.scripts.cache.flush();
        out.ok();
    }

    /// Stop a script running on another shard (see `crate::script::busy`).
    pub fn cmd_script_kill(&mut self, conn: &mut Conn, _args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        match crate::script::busy::kill(&self.shared.busy, false) {
            Ok(()) => out.ok(),
            Err(e) => out.error(e),
        }
    }

    /// The Lua debugger is not offered; turning it off always works.
    pub fn cmd_script_debug(&mut self, conn: &mut Conn, args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        if args.is(2, "no") {
            out.ok();
        } else if args.is(2, "yes") || args.is(2, "sync") {
            out.error("ERR SCRIPT DEBUG is not supported by shardis");
        } else {
            out.error("ERR Use SCRIPT DEBUG YES/SYNC/NO");
        }
    }
}

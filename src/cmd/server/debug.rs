//! DEBUG: the few subcommands tests and tools use. DEBUG is a plain
//! command in Redis 7.0's table (no subcommand rows), so it is here too:
//! COMMAND INFO shows it as Redis does.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::{err, Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};

pub static COMMANDS: &[CommandDef] =
    &[server("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE | PROTECTED, Shard::cmd_debug)
        .group(Group::Server)
        .since("1.0.0")];

impl Shard {
    /// DEBUG SLEEP seconds | SET-ACTIVE-EXPIRE 0|1 | PANIC, for clients
    /// `enable-debug-command` allows.
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
}

//! FUNCTION LOAD / DELETE / FLUSH / RESTORE (on every shard, logged),
//! LIST / DUMP / STATS / KILL / HELP (on the connection's shard: every
//! shard holds the same libraries). See `crate::script::functions`.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help, CommandDef, Handler, KeyspaceFn};
use crate::cmd::{Args, Ctx};
use crate::protocol::reply::Reply;
use crate::script::functions::{self, Libs, FLAG_NAMES};
use crate::script::Engine;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::{FanOp, GlobalPlan, PlanCtx};
use crate::shard::FanReq;
use std::sync::Arc;

const fn fc(d: CommandDef) -> CommandDef {
    d.group(Group::Scripting).acl(acl::SCRIPTING | acl::SLOW)
}

/// A change to the libraries: run on every shard (`plan`), or on one
/// shard's keyspace when its log is replayed (`change_here`).
const fn change(name: &'static str, arity: i32, flags: Flags) -> CommandDef {
    fc(CommandDef::new(name, arity, flags | WRITE | NOSCRIPT, &[], Handler::EveryShard { plan, here: CHANGE_HERE }))
}

const CHANGE_HERE: KeyspaceFn = change_here;

pub static COMMANDS: &[CommandDef] =
    &[container("function", SUBCOMMANDS).group(Group::Scripting).acl(acl::SLOW).since("7.0.0")];

static SUBCOMMANDS: &[CommandDef] = &[
    change("function|delete", 3, 0)
        .since("7.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    fc(server("function|dump", 2, NOSCRIPT, Shard::cmd_function_dump)).since("7.0.0"),
    change("function|flush", -2, 0)
        .since("7.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    fc(help("function|help", HELP)).since("7.0.0"),
    fc(server("function|kill", 2, NOSCRIPT | ALLOW_BUSY, Shard::cmd_function_kill))
        .since("7.0.0")
        .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    fc(server("function|list", -2, NOSCRIPT, Shard::cmd_function_list))
        .since("7.0.0")
        .tips(&["nondeterministic_output_order"]),
    change("function|load", -3, DENYOOM)
        .since("7.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    change("function|restore", -3, DENYOOM)
        .since("7.0.0")
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    fc(server("function|stats", 2, NOSCRIPT | ALLOW_BUSY, Shard::cmd_function_stats)).since("7.0.0").tips(&[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ]),
];

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Print this help.",
];

/// Every shard applies the change and logs it; the reply is the first's
/// (every shard holds the same libraries, so all answer alike).
fn plan(args: &Args, p: &PlanCtx) -> GlobalPlan {
    let cmd: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
    GlobalPlan::Fan(p.all_shards(), FanReq::Function { cmd }, FanOp::FirstReply)
}

fn change_here(ctx: &mut Ctx, args: &Args) {
    let mut engine = ctx.scripts.take();
    apply(&mut ctx.ks.functions, engine.as_deref_mut(), args, &mut ctx.out);
    ctx.scripts = engine;
}

/// Apply a FUNCTION LOAD / DELETE / FLUSH / RESTORE to `libs`, replying
/// to `out`; true if the libraries changed (the command is to be logged).
/// `engine`: None when the log is replayed (what was logged was checked
/// when it first ran: only its names are read).
pub fn apply(libs: &mut Libs, engine: Option<&mut Engine>, args: &Args, out: &mut Reply) -> bool {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"load") {
        let n = args.len();
        for i in 2..n - 1 {
            if !args.is(i, "replace") {
                out.error(&format!("ERR Unknown option given: {}", String::from_utf8_lossy(args.get(i))));
                return false;
            }
        }
        let replace = n > 3;
        let code = args.get(n - 1);
        let name = match functions::parse_library(code) {
            Ok((name, _)) => name,
            Err(e) => {
                out.error(&e);
                return false;
            }
        };
        if let Some(engine) = engine {
            if !replace && libs.libs.contains_key(&name) {
                out.error(&format!("ERR Library '{}' already exists", String::from_utf8_lossy(&name)));
                return false;
            }
            let same = name.clone();
            if let Err(e) = engine.check_libraries(libs, &[code.to_vec()], &move |l| l == same.as_slice()) {
                out.error(&e);
                return false;
            }
        }
        libs.insert(name.clone(), Arc::from(code));
        out.bulk(&name);
        true
    } else if sub.eq_ignore_ascii_case(b"delete") {
        if libs.remove(args.get(2)) {
            out.ok();
            true
        } else {
            out.error("ERR Library not found");
            false
        }
    } else if sub.eq_ignore_ascii_case(b"flush") {
        if args.len() > 3 || (args.len() == 3 && !args.is(2, "sync") && !args.is(2, "async")) {
            out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
            return false;
        }
        libs.clear();
        out.ok();
        true
    } else if sub.eq_ignore_ascii_case(b"restore") {
        restore(libs, engine, args, out)
    } else {
        out.error("ERR unknown FUNCTION subcommand");
        false
    }
}

fn restore(libs: &mut Libs, engine: Option<&mut Engine>, args: &Args, out: &mut Reply) -> bool {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy = match args.len() {
        3 => Policy::Append,
        4 if args.is(3, "flush") => Policy::Flush,
        4 if args.is(3, "append") => Policy::Append,
        4 if args.is(3, "replace") => Policy::Replace,
        _ => {
            out.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
            return false;
        }
    };
    let codes = match functions::undump(args.get(2)) {
        Ok(c) => c,
        Err(e) => {
            out.error(&e);
            return false;
        }
    };
    let mut named = Vec::new();
    for code in &codes {
        match functions::parse_library(code) {
            Ok((name, _)) => named.push((name, code)),
            Err(e) => {
                out.error(&e);
                return false;
            }
        }
    }
    if let Some(engine) = engine {
        if policy == Policy::Append {
            if let Some((name, _)) = named.iter().find(|(n, _)| libs.libs.contains_key(n)) {
                out.error(&format!("ERR Library {} already exists", String::from_utf8_lossy(name)));
                return false;
            }
        }
        let names: Vec<Vec<u8>> = named.iter().map(|(n, _)| n.clone()).collect();
        let flush = policy == Policy::Flush;
        let replacing = move |l: &[u8]| flush || names.iter().any(|n| n == l);
        if let Err(e) = engine.check_libraries(libs, &codes, &replacing) {
            out.error(&e);
            return false;
        }
    }
    if policy == Policy::Flush {
        libs.clear();
    }
    for (name, code) in named {
        libs.insert(name, Arc::from(code.as_slice()));
    }
    out.ok();
    true
}

impl Shard {
    /// A change on this shard, for the connection's shard (FanReq::Function):
    /// the reply bytes (RESP2: they read the same in RESP3).
    pub fn function_change(&mut self, cmd: &[Vec<u8>]) -> Vec<u8> {
        let owned = crate::cmd::OwnedArgs::from_slices(cmd);
        let args = owned.args();
        let mut out = Vec::new();
        let changed = apply(&mut self.ks.functions, Some(&mut self.scripts), &args, &mut Reply::new(&mut out, false));
        if changed {
            let parts: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            self.log_global(0, &parts);
            // Compiled now, so INFO's counts are current.
            self.scripts.sync_functions(&self.ks.functions);
        }
        out
    }

    pub fn cmd_function_list(&mut self, conn: &mut Conn, args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        let (mut pattern, mut with_code) = (None, false);
        let mut i = 2;
        while i < args.len() {
            if args.is(i, "withcode") && !with_code {
                with_code = true;
            } else if args.is(i, "libraryname") && pattern.is_none() {
                if i + 1 >= args.len() {
                    return out.error("ERR library name argument was not given");
                }
                pattern = Some(args.get(i + 1));
                i += 1;
            } else {
                return out.error(&format!("ERR Unknown argument {}", String::from_utf8_lossy(args.get(i))));
            }
            i += 1;
        }
        self.scripts.sync_functions(&self.ks.functions);
        let libs: Vec<_> = self
            .scripts
            .lib_meta
            .iter()
            .filter(|(name, _)| pattern.is_none_or(|p| crate::util::glob_match(p, name, false)))
            .collect();
        out.array(libs.len());
        for (name, funcs) in libs {
            out.map(3 + with_code as usize);
            out.bulk(b"library_name");
            out.bulk(name);
            out.bulk(b"engine");
            out.bulk(b"LUA");
            out.bulk(b"functions");
            out.array(funcs.len());
            for f in funcs {
                out.map(3);
                out.bulk(b"name");
                out.bulk(&f.name);
                out.bulk(b"description");
                match &f.description {
                    Some(d) => out.bulk(d),
                    None => out.null(),
                }
                out.bulk(b"flags");
                let names: Vec<&str> = FLAG_NAMES.iter().filter(|(_, b)| f.flags & b != 0).map(|(n, _)| *n).collect();
                out.set(names.len());
                for n in names {
                    out.simple(n);
                }
            }
            if with_code {
                out.bulk(b"library_code");
                out.bulk(self.ks.functions.libs.get(name).map_or(&b""[..], |c| c));
            }
        }
    }

    pub fn cmd_function_dump(&mut self, conn: &mut Conn, _args: &Args) {
        let payload = functions::dump(&self.ks.functions);
        Reply::new(&mut conn.out, conn.resp3).bulk(&payload);
    }

    pub fn cmd_function_stats(&mut self, conn: &mut Conn, _args: &Args) {
        self.scripts.sync_functions(&self.ks.functions);
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        let running = match self.shared.busy.running_function() {
            Ok(r) => r,
            Err(e) => return out.error(e),
        };
        out.map(2);
        out.bulk(b"running_script");
        match running {
            None => out.null(),
            Some(r) => {
                out.map(3);
                out.bulk(b"name");
                out.bulk(&r.name);
                out.bulk(b"command");
                out.array(r.command.len());
                for a in &r.command {
                    out.bulk(a);
                }
                out.bulk(b"duration_ms");
                out.int(r.start.elapsed().as_millis() as i64);
            }
        }
        out.bulk(b"engines");
        out.map(1);
        out.bulk(b"LUA");
        out.map(2);
        out.bulk(b"libraries_count");
        out.int(self.ks.functions.libs.len() as i64);
        out.bulk(b"functions_count");
        out.int(self.scripts.function_count() as i64);
    }

    pub fn cmd_function_kill(&mut self, conn: &mut Conn, _args: &Args) {
        let mut out = Reply::new(&mut conn.out, conn.resp3);
        match crate::script::busy::kill(&self.shared.busy, true) {
            Ok(()) => out.ok(),
            Err(e) => out.error(e),
        }
    }
}

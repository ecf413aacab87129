//! ACL: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT, GENPASS, LOG,
//! DRYRUN, SAVE, LOAD, HELP. The users and their rules are `crate::acl`'s
//! (SAVE and LOAD use the `aclfile` in Redis's format);
//! a change is made to the shared table and then taken by every shard
//! (`FanReq::AclRefresh`) before it is answered, so once a client has its
//! OK, no connection on any shard runs under the old rules.

use super::server;
use crate::acl::user::{has_space, merge_selector_args, Selector, User};
use crate::cmd::flags::*;
use crate::cmd::table::{container, CommandDef, Handler};
use crate::cmd::{Args, OwnedArgs};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;
use std::sync::Arc;

const ADM: Flags = ADMIN | NOSCRIPT | LOADING | STALE | SENTINEL;
const ANY: Flags = NOSCRIPT | LOADING | STALE | SENTINEL;

const fn a(d: CommandDef) -> CommandDef {
    d.group(Group::Server).since("6.0.0")
}

pub static COMMANDS: &[CommandDef] = &[a(container("acl", SUBCOMMANDS))];

static SUBCOMMANDS: &[CommandDef] = &[
    a(server("acl|cat", -2, ANY, Shard::cmd_acl_cat)),
    a(server("acl|deluser", -3, ADM, Shard::cmd_acl_deluser)),
    a(server("acl|dryrun", -4, ADM, Shard::cmd_acl_dryrun)).since("7.0.0"),
    a(server("acl|genpass", -2, ANY, Shard::cmd_acl_genpass)),
    a(server("acl|getuser", 3, ADM, Shard::cmd_acl_getuser)),
    a(CommandDef::new("acl|help", 2, LOADING | STALE | SENTINEL, &[], Handler::Help(HELP))),
    a(server("acl|list", 2, ADM, Shard::cmd_acl_list)),
    a(server("acl|load", 2, ADM, Shard::cmd_acl_load)),
    a(server("acl|log", -2, ADM, Shard::cmd_acl_log)),
    a(server("acl|save", 2, ADM, Shard::cmd_acl_save)),
    a(server("acl|setuser", -3, ADM, Shard::cmd_acl_setuser)),
    a(server("acl|users", 2, ADM, Shard::cmd_acl_users)),
    a(server("acl|whoami", 2, ANY, Shard::cmd_acl_whoami)),
];

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// GENPASS's largest size, in bits (Redis's).
const GENPASS_MAX_BITS: i64 = 4096;

/// Apply SETUSER's rules to `name` (created if new), all or nothing.
pub fn setuser(users: &mut crate::acl::Users, name: &[u8], rules: &[&[u8]]) -> Result<(), String> {
    if has_space(name) {
        return Err("ERR Usernames can't contain spaces or null characters".into());
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let rules = merge_selector_args(rules)?;
    let mut u = match users.get(&name) {
        Some(u) => (**u).clone(),
        None => User::new(&name),
    };
    for r in &rules {
        u.apply(r)
            .map_err(|e| format!("ERR Error in ACL SETUSER modifier '{}': {}", String::from_utf8_lossy(r), e.text()))?;
    }
    users.map.insert(name, Arc::new(u));
    Ok(())
}

impl Shard {
    /// A change to the table was made: every shard takes it, then the
    /// client gets `reply`.
    fn acl_changed(&mut self, conn: &mut Conn, reply: Vec<u8>) {
        self.fan(conn, self.all_shards(), FanReq::AclRefresh, FanOp::Reply(reply));
        self.refresh_acl_for(conn);
    }

    /// ACL SETUSER username [rule ...]
    fn cmd_acl_setuser(&mut self, conn: &mut Conn, args: &Args) {
        let rules: Vec<&[u8]> = args.iter().skip(3).collect();
        let name = args.get(2);
        match self.shared.acl.update(|users| setuser(users, name, &rules)) {
            Ok(()) => self.acl_changed(conn, b"+OK\r\n".to_vec()),
            Err(e) => Reply::new(&mut conn.out, conn.resp3).error(&e),
        }
    }

    /// ACL DELUSER username [username ...]
    fn cmd_acl_deluser(&mut self, conn: &mut Conn, args: &Args) {
        let names: Vec<String> = args.iter().skip(2).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        let r = self.shared.acl.update(|users| {
            if names.iter().any(|n| n == "default") {
                return Err("ERR The 'default' user cannot be removed".to_string());
            }
            Ok(names.iter().filter(|n| users.map.remove(n.as_str()).is_some()).count())
        });
        match r {
            Ok(n) => {
                let mut out = Vec::new();
                Reply::new(&mut out, conn.resp3).int(n as i64);
                self.acl_changed(conn, out);
            }
            Err(e) => Reply::new(&mut conn.out, conn.resp3).error(&e),
        }
    }

    /// ACL GETUSER username
    fn cmd_acl_getuser(&mut self, conn: &mut Conn, args: &Args) {
        let users = self.shared.acl.snapshot();
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let Some(u) = users.get(&String::from_utf8_lossy(args.get(2))) else { return r.null() };
        r.map(6);
        r.bulk(b"flags");
        let flags = u.flag_names();
        r.array(flags.len());
        for f in flags {
            r.bulk_str(f);
        }
        r.bulk(b"passwords");
        r.array(u.passwords.len());
        for p in &u.passwords {
            r.bulk_str(p);
        }
        describe_selector(&mut r, &u.root);
        r.bulk(b"selectors");
        r.array(u.selectors.len());
        for s in &u.selectors {
            r.map(3);
            describe_selector(&mut r, s);
        }
    }

    /// ACL USERS
    fn cmd_acl_users(&mut self, conn: &mut Conn, _: &Args) {
        let users = self.shared.acl.snapshot();
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.array(users.map.len());
        for name in users.map.keys() {
            r.bulk_str(name);
        }
    }

    /// ACL LIST: every user as a rule line.
    fn cmd_acl_list(&mut self, conn: &mut Conn, _: &Args) {
        let users = self.shared.acl.snapshot();
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.array(users.map.len());
        for (name, u) in &users.map {
            r.bulk_str(&format!("user {} {}", name, u.describe()));
        }
    }

    /// ACL WHOAMI
    fn cmd_acl_whoami(&mut self, conn: &mut Conn, _: &Args) {
        let name = conn.user.name.clone();
        Reply::new(&mut conn.out, conn.resp3).bulk_str(&name);
    }

    /// ACL CAT [category]
    fn cmd_acl_cat(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        match args.len() {
            2 => {
                r.array(acl::NAMES.len());
                for (_, n) in acl::NAMES {
                    r.bulk_str(n);
                }
            }
            3 => {
                let Some(c) = acl::by_name(args.get(2)) else {
                    return r.error(&format!("ERR Unknown category '{}'", String::from_utf8_lossy(args.get(2))));
                };
                let names: Vec<&str> = crate::cmd::table::all()
                    .iter()
                    .filter(|d| d.acl_categories() & c != 0 && !matches!(d.handler, Handler::Container))
                    .map(|d| d.name)
                    .collect();
                r.array(names.len());
                for n in names {
                    r.bulk_str(n);
                }
            }
            _ => r.error(&crate::cmd::subcommand_syntax_text("acl", args.get(1))),
        }
    }

    /// ACL GENPASS [bits]
    fn cmd_acl_genpass(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let bits = match args.len() {
            2 => 256,
            3 => match crate::util::parse_i64(args.get(2)) {
                None => return r.error(crate::cmd::err::NOT_INT),
                Some(b) if b <= 0 || b > GENPASS_MAX_BITS => {
                    return r.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
                }
                Some(b) => b,
            },
            _ => return r.error(&crate::cmd::subcommand_syntax_text("acl", args.get(1))),
        };
        let chars = (bits as usize).div_ceil(4);
        let mut raw = vec![0u8; chars.div_ceil(2)];
        if !fill_random(&mut raw) {
            return r.error("ERR cannot read random bytes for GENPASS");
        }
        let hex: String = raw.iter().map(|b| format!("{:02x}", b)).collect();
        r.bulk_str(&hex[..chars]);
    }

    /// ACL LOG [count | RESET]
    fn cmd_acl_log(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let count = match args.len() {
            2 => 10,
            3 if args.is(2, "RESET") => {
                match self.shared.acl.log.lock() {
                    Ok(mut g) => g.reset(),
                    Err(p) => p.into_inner().reset(),
                }
                return r.ok();
            }
            3 => match crate::util::parse_i64(args.get(2)) {
                Some(n) => n.max(0) as usize,
                None => return r.error(crate::cmd::err::NOT_INT),
            },
            _ => return r.error(&crate::cmd::subcommand_syntax_text("acl", args.get(1))),
        };
        let now = crate::util::now_ms();
        let log = match self.shared.acl.log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let entries: Vec<_> = log.newest(count).cloned().collect();
        drop(log);
        r.array(entries.len());
        for e in entries {
            r.map(10);
            r.bulk(b"count");
            r.int(e.count as i64);
            r.bulk(b"reason");
            r.bulk_str(e.reason);
            r.bulk(b"context");
            r.bulk_str(e.context);
            r.bulk(b"object");
            r.bulk_str(&e.object);
            r.bulk(b"username");
            r.bulk_str(&e.username);
            r.bulk(b"age-seconds");
            r.double((now - e.ms).max(0) as f64 / 1000.0);
            r.bulk(b"client-info");
            r.bulk_str(&e.client_info);
            // Redis 7.2's additions: which entry, first and last seen.
            r.bulk(b"entry-id");
            r.int(e.id as i64);
            r.bulk(b"timestamp-created");
            r.int(e.created_ms);
            r.bulk(b"timestamp-last-updated");
            r.int(e.ms);
        }
    }

    /// ACL DRYRUN username command [arg ...]
    fn cmd_acl_dryrun(&mut self, conn: &mut Conn, args: &Args) {
        let users = self.shared.acl.snapshot();
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let name = String::from_utf8_lossy(args.get(2));
        let Some(u) = users.get(&name) else { return r.error(&format!("ERR User '{}' not found", name)) };
        let owned = OwnedArgs::from_slices(&args.iter().skip(3).collect::<Vec<_>>());
        let cmd_args = owned.args();
        let Ok((id, def)) = crate::cmd::lookup_args(&cmd_args) else {
            return r.error(&format!("ERR Command '{}' not found", String::from_utf8_lossy(args.get(3))));
        };
        if !crate::cmd::arity_ok(def, cmd_args.len()) {
            return crate::cmd::arity_error(&mut r, def.name);
        }
        match crate::acl::check::check(u, id, def, &cmd_args) {
            Ok(()) => r.ok(),
            Err(d) => r.bulk_str(&d.dryrun_text(def, &cmd_args)),
        }
    }

    /// ACL SAVE: the users to the aclfile, atomically, mode 0600.
    fn cmd_acl_save(&mut self, conn: &mut Conn, _: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        let path = self.shared.config_snapshot().aclfile;
        if path.is_empty() {
            return r.error(NO_ACLFILE);
        }
        let text = crate::acl::file::render(&self.shared.acl.snapshot());
        match super::config::write_atomically_mode(&path, &text, Some(0o600)) {
            Ok(()) => r.ok(),
            Err(e) => {
                crate::log(&format!("ACL SAVE to {} failed: {}", path, e));
                r.error(
                    "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
                )
            }
        }
    }

    /// ACL LOAD: replace every user with the aclfile's (all or nothing);
    /// clients of users it no longer has, or disables, are closed.
    fn cmd_acl_load(&mut self, conn: &mut Conn, _: &Args) {
        let config = self.shared.config_snapshot();
        if config.aclfile.is_empty() {
            return Reply::new(&mut conn.out, conn.resp3).error(NO_ACLFILE);
        }
        match self.shared.acl.update(|users| {
            users.map = crate::acl::Users::load(&config)?.map;
            Ok(())
        }) {
            Ok(()) => self.acl_changed(conn, b"+OK\r\n".to_vec()),
            Err(e) => Reply::new(&mut conn.out, conn.resp3).error(&format!("ERR {}", e)),
        }
    }
}

/// GETUSER's commands, keys and channels of one selector.
fn describe_selector(r: &mut Reply, s: &Selector) {
    r.bulk(b"commands");
    r.bulk_str(&s.describe_commands());
    r.bulk(b"keys");
    r.bulk_str(&s.describe_keys());
    r.bulk(b"channels");
    r.bulk_str(&s.describe_channels());
}

/// Fill `buf` from the kernel's random source.
fn fill_random(buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most buf.len() - done bytes into buf[done..].
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

//! COMMAND: the command table as Redis 7.0 reports it. COMMAND and COMMAND
//! INFO give every row (subcommands nested under their container), COUNT
//! the top-level commands, LIST every name (`config|get` included), DOCS a
//! short description, GETKEYS/GETKEYSANDFLAGS the keys a request names.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::keyspec::{Begin, Find, KeySpec, FLAG_NAMES, NOT_KEY};
use crate::cmd::table::{self, help, CommandDef, Handler};
use crate::cmd::{self, err, Args, OwnedArgs};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};

const INTROSPECT: Flags = LOADING | STALE;

const fn ci(d: CommandDef) -> CommandDef {
    d.acl(acl::CONNECTION).group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[ci(server("command", -1, INTROSPECT | SENTINEL, Shard::cmd_command))
    .subcommands(SUBCOMMANDS)
    .since("2.8.13")
    .tips(&["nondeterministic_output_order"])];

static SUBCOMMANDS: &[CommandDef] = &[
    ci(server("command|count", 2, INTROSPECT, Shard::cmd_command_count)).since("2.8.13"),
    ci(server("command|docs", -2, INTROSPECT, Shard::cmd_command_docs))
        .since("7.0.0")
        .tips(&["nondeterministic_output_order"]),
    ci(server("command|getkeys", -4, INTROSPECT, Shard::cmd_command_getkeys)).since("2.8.13"),
    ci(server("command|getkeysandflags", -4, INTROSPECT, Shard::cmd_command_getkeysandflags)).since("7.0.0"),
    ci(help("command|help", HELP)).since("5.0.0"),
    ci(server("command|info", -2, INTROSPECT, Shard::cmd_command_info))
        .since("2.8.13")
        .tips(&["nondeterministic_output_order"]),
    ci(server("command|list", -2, INTROSPECT, Shard::cmd_command_list))
        .since("7.0.0")
        .tips(&["nondeterministic_output_order"]),
];

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Every command's details.",
    "COUNT",
    "    How many commands there are.",
    "INFO [<command-name> ...]",
    "    Details of the named commands (`container|subcommand` names a subcommand), or of all.",
    "DOCS [<command-name> ...]",
    "    A short description of the named commands, or of all.",
    "GETKEYS <full-command>",
    "    The keys of a full command line.",
    "GETKEYSANDFLAGS <full-command>",
    "    The keys of a full command line, and what the command does with each.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Every command's name, or the ones that pass the filter.",
    "HELP",
    "    This text.",
];

impl Shard {
    /// COMMAND: every command's details.
    fn cmd_command(&mut self, conn: &mut Conn, _: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.array(table::command_count());
        for d in table::commands() {
            command_info(&mut r, d);
        }
    }

    fn cmd_command_count(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).int(table::command_count() as i64)
    }

    /// COMMAND INFO [name ...]: a null for a name that is not a command.
    fn cmd_command_info(&mut self, conn: &mut Conn, args: &Args) {
        if args.len() == 2 {
            return self.cmd_command(conn, args);
        }
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.array(args.len() - 2);
        for n in args.iter().skip(2) {
            match table::by_full_name(n) {
                Some((_, d)) => command_info(&mut r, d),
                None => r.null(),
            }
        }
    }

    /// COMMAND DOCS [name ...]: names that are not commands are left out.
    fn cmd_command_docs(&mut self, conn: &mut Conn, args: &Args) {
        let defs: Vec<&CommandDef> = if args.len() == 2 {
            table::commands().collect()
        } else {
            args.iter().skip(2).filter_map(|n| table::by_full_name(n).map(|(_, d)| d)).collect()
        };
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        r.map(defs.len());
        for d in defs {
            r.bulk_str(d.name);
            command_docs(&mut r, d);
        }
    }

    fn cmd_command_getkeys(&mut self, conn: &mut Conn, args: &Args) {
        getkeys(&mut Reply::new(&mut conn.out, conn.resp3), args, false)
    }

    fn cmd_command_getkeysandflags(&mut self, conn: &mut Conn, args: &Args) {
        getkeys(&mut Reply::new(&mut conn.out, conn.resp3), args, true)
    }

    /// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]
    fn cmd_command_list(&mut self, conn: &mut Conn, args: &Args) {
        let mut r = Reply::new(&mut conn.out, conn.resp3);
        match list_filter(args) {
            Ok(keep) => {
                let names: Vec<&str> = table::all().iter().filter(|d| keep(d)).map(|d| d.name).collect();
                r.array(names.len());
                for n in names {
                    r.bulk_str(n);
                }
            }
            Err(e) => r.error(e),
        }
    }
}

/// One row as COMMAND INFO shows it (Redis 7 layout).
pub fn command_info(r: &mut Reply, d: &CommandDef) {
    r.array(10);
    r.bulk_str(d.name);
    r.int(d.arity as i64);
    let flags = d.flag_names();
    r.set(flags.len());
    for f in flags {
        r.simple(f);
    }
    r.int(d.first_key as i64);
    r.int(d.last_key as i64);
    r.int(d.step as i64);
    let cats = d.acl_categories();
    let names: Vec<&str> = acl::NAMES.iter().filter(|(c, _)| cats & c != 0).map(|(_, n)| *n).collect();
    r.set(names.len());
    for n in names {
        r.simple(&format!("@{n}"));
    }
    r.set(d.tips.len());
    for t in d.tips {
        r.bulk_str(t);
    }
    r.set(d.key_specs.len());
    for ks in d.key_specs {
        key_spec(r, ks);
    }
    // As Redis replies them: an empty set when there are none, else an array.
    if d.subcommands.is_empty() {
        r.set(0);
    } else {
        r.array(d.subcommands.len());
    }
    for s in d.subcommands {
        command_info(r, s);
    }
}

fn key_flags(r: &mut Reply, flags: u16) {
    let names: Vec<&str> = FLAG_NAMES.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    r.set(names.len());
    for n in names {
        r.simple(n);
    }
}

/// A key spec as COMMAND INFO shows it: flags, begin_search, find_keys.
fn key_spec(r: &mut Reply, ks: &KeySpec) {
    r.map(3);
    r.bulk(b"flags");
    key_flags(r, ks.flags);
    r.bulk(b"begin_search");
    match ks.begin {
        Begin::Index(i) => search_part(r, "index", &[("index", i)]),
        Begin::Keyword { keyword, from } => {
            // The one part with a string in it.
            r.map(2);
            r.bulk(b"type");
            r.bulk(b"keyword");
            r.bulk(b"spec");
            r.map(2);
            r.bulk(b"keyword");
            r.bulk_str(keyword);
            r.bulk(b"startfrom");
            r.int(from as i64);
        }
        Begin::Unknown => search_part(r, "unknown", &[]),
    }
    r.bulk(b"find_keys");
    match ks.find {
        Find::Range { last, step, limit } => {
            search_part(r, "range", &[("lastkey", last), ("keystep", step), ("limit", limit)])
        }
        Find::Keynum { keynum, first, step } => {
            search_part(r, "keynum", &[("keynumidx", keynum), ("firstkey", first), ("keystep", step)])
        }
        Find::Unknown => search_part(r, "unknown", &[]),
    }
}

/// `{type: kind, spec: {name: value, ...}}`, one half of a key spec.
fn search_part(r: &mut Reply, kind: &str, spec: &[(&str, i32)]) {
    r.map(2);
    r.bulk(b"type");
    r.bulk_str(kind);
    r.bulk(b"spec");
    r.map(spec.len());
    for (k, v) in spec {
        r.bulk_str(k);
        r.int(*v as i64);
    }
}

/// COMMAND DOCS's map for one row: Redis 7.0's docs of it (`cmd::docs`)
/// with the subcommands shardis has, or for a command Redis 7.0 lacks a
/// summary in shardis's words, since, group and the subcommands' docs.
fn command_docs(r: &mut Reply, d: &CommandDef) {
    if let Some(crate::cmd::docs::Node::Map(fields)) = crate::cmd::docs::of(d.name) {
        // Redis's subcommands give way to the ones shardis has.
        let own: Vec<_> = fields.iter().filter(|(k, _)| !k.is("subcommands")).collect();
        r.map(own.len() + usize::from(!d.subcommands.is_empty()));
        for (k, v) in own {
            k.emit(r);
            v.emit(r);
        }
        subcommand_docs(r, d);
        return;
    }
    r.map(if d.subcommands.is_empty() { 3 } else { 4 });
    r.bulk(b"summary");
    let what = if matches!(d.handler, Handler::Container) { "container" } else { "command" };
    r.bulk_str(&format!("The {} {}", d.name.replace('|', " ").to_ascii_uppercase(), what));
    r.bulk(b"since");
    r.bulk_str(d.since);
    r.bulk(b"group");
    r.bulk_str(d.group.name());
    subcommand_docs(r, d);
}

/// The `subcommands` entry of a row's docs, if it has subcommands.
fn subcommand_docs(r: &mut Reply, d: &CommandDef) {
    if d.subcommands.is_empty() {
        return;
    }
    r.bulk(b"subcommands");
    r.map(d.subcommands.len());
    for s in d.subcommands {
        r.bulk_str(s.name);
        command_docs(r, s);
    }
}

/// COMMAND GETKEYS[ANDFLAGS] command [arg ...], checked in Redis's order.
fn getkeys(r: &mut Reply, args: &Args, with_flags: bool) {
    let parts: Vec<&[u8]> = args.iter().skip(2).collect();
    let owned = OwnedArgs::from_slices(&parts);
    let a = owned.args();
    let Ok((_, d)) = table::lookup_args(&a) else { return r.error("ERR Invalid command specified") };
    // As Redis: specs that all name something else (SPUBLISH's shard
    // channel, NOT_KEY) are no key arguments.
    let only_not_keys = d.keys_fn.is_none() && d.key_specs.iter().all(|s| s.flags & NOT_KEY != 0);
    if !d.takes_keys() || only_not_keys {
        return r.error("ERR The command has no key arguments");
    }
    if !cmd::arity_ok(d, a.len()) {
        return r.error("ERR Invalid number of arguments specified for command");
    }
    let keys = cmd::key_refs(d, &a);
    if keys.is_empty() && !d.has(NO_MANDATORY_KEYS) {
        return r.error("ERR Invalid arguments specified for command");
    }
    r.array(keys.len());
    for k in keys {
        if with_flags {
            r.array(2);
            r.bulk(a.get(k.pos));
            key_flags(r, k.flags);
        } else {
            r.bulk(a.get(k.pos));
        }
    }
}

/// The test COMMAND LIST's filter puts a row to. There are no modules; an
/// ACL category that does not exist matches nothing, as in Redis.
type Filter<'a> = Box<dyn Fn(&CommandDef) -> bool + 'a>;

fn list_filter<'a>(args: &Args<'a>) -> Result<Filter<'a>, &'static str> {
    match args.len() {
        2 => return Ok(Box::new(|_| true)),
        5 if args.is(2, "filterby") => {}
        _ => return Err(err::SYNTAX),
    }
    let arg = args.get(4);
    if args.is(3, "module") {
        Ok(Box::new(|_| false))
    } else if args.is(3, "pattern") {
        Ok(Box::new(move |d| crate::util::glob_match(arg, d.name.as_bytes(), true)))
    } else if args.is(3, "aclcat") {
        match acl::by_name(arg) {
            Some(cat) => Ok(Box::new(move |d| d.acl_categories() & cat != 0)),
            None => Ok(Box::new(|_| false)),
        }
    } else {
        Err(err::SYNTAX)
    }
}

//! The static command table: one row per command, collected from each
//! family's `COMMANDS` block, looked up case-insensitively by name.

use super::flags::*;
use super::{Args, Ctx};
use std::collections::HashMap;
use std::sync::OnceLock;

pub type Handler = fn(&mut Ctx, &Args);

/// Key positions of a command whose keys depend on its arguments
/// (`numkeys` forms, `STREAMS`): Redis's "movablekeys". Positions past the
/// end must not be returned; a malformed command may return none.
pub type KeysFn = fn(&Args) -> Vec<usize>;

pub struct CommandDef {
    /// Lowercase, as Redis reports it in errors and COMMAND.
    pub name: &'static str,
    /// Positive: exact argc (including the name); negative: at least -arity.
    pub arity: i32,
    pub flags: u32,
    /// Key positions: first, last (negative counts from the end), step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// None for CONN/GLOBAL commands that the shard layer carries out.
    pub handler: Option<Handler>,
    /// Set for movable-keys commands; `first_key` must still be > 0.
    pub keys_fn: Option<KeysFn>,
}

impl CommandDef {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: (i32, i32, i32),
        handler: Option<Handler>,
    ) -> Self {
        CommandDef { name, arity, flags, first_key: keys.0, last_key: keys.1, step: keys.2, handler, keys_fn: None }
    }

    /// A command whose key positions come from its arguments.
    pub const fn movable(mut self, f: KeysFn) -> Self {
        self.keys_fn = Some(f);
        self
    }

    #[inline]
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.has(WRITE) {
            v.push("write");
        }
        if self.has(READONLY) {
            v.push("readonly");
        }
        if self.has(DENYOOM) {
            v.push("denyoom");
        }
        if self.has(FAST) {
            v.push("fast");
        }
        if self.has(PUBSUB) {
            v.push("pubsub");
        }
        if self.has(NO_MULTI) {
            v.push("no_multi");
        }
        if self.has(NO_AUTH) {
            v.push("no_auth");
        }
        v
    }
}

pub const NO_KEYS: (i32, i32, i32) = (0, 0, 0);

/// Connection- and server-level commands; the shard layer runs them.
pub static SERVER_COMMANDS: &[CommandDef] = &[
    CommandDef::new("ping", -1, FAST | CONN | PUBSUB, NO_KEYS, None),
    CommandDef::new("echo", 2, FAST | CONN, NO_KEYS, None),
    CommandDef::new("quit", -1, FAST | CONN | PUBSUB | NO_AUTH, NO_KEYS, None),
    CommandDef::new("reset", 1, FAST | CONN | PUBSUB | NO_AUTH, NO_KEYS, None),
    CommandDef::new("hello", -1, FAST | CONN | NO_AUTH, NO_KEYS, None),
    CommandDef::new("auth", -2, FAST | CONN | NO_AUTH, NO_KEYS, None),
    CommandDef::new("select", 2, FAST | CONN, NO_KEYS, None),
    CommandDef::new("time", 1, FAST | CONN, NO_KEYS, None),
    CommandDef::new("info", -1, CONN, NO_KEYS, None),
    CommandDef::new("config", -2, CONN, NO_KEYS, None),
    CommandDef::new("client", -2, CONN, NO_KEYS, None),
    CommandDef::new("command", -1, CONN, NO_KEYS, None),
    CommandDef::new("shutdown", -1, CONN | NO_MULTI, NO_KEYS, None),
    CommandDef::new("debug", -2, CONN, NO_KEYS, None),
    CommandDef::new("slowlog", -2, CONN, NO_KEYS, None),
    CommandDef::new("latency", -2, CONN, NO_KEYS, None),
    CommandDef::new("lastsave", 1, FAST | CONN, NO_KEYS, None),
    CommandDef::new("bgrewriteaof", 1, CONN | NO_MULTI, NO_KEYS, None),
    CommandDef::new("bgsave", -1, CONN | NO_MULTI, NO_KEYS, None),
    CommandDef::new("save", 1, CONN | NO_MULTI, NO_KEYS, None),
    CommandDef::new("multi", 1, FAST | CONN | TX_CONTROL, NO_KEYS, None),
    CommandDef::new("exec", 1, CONN | TX_CONTROL, NO_KEYS, None),
    CommandDef::new("discard", 1, FAST | CONN | TX_CONTROL, NO_KEYS, None),
    CommandDef::new("watch", -2, FAST | CONN | NO_MULTI, (1, -1, 1), None),
    CommandDef::new("unwatch", 1, FAST | CONN, NO_KEYS, None),
    CommandDef::new("subscribe", -2, CONN | PUBSUB | NO_MULTI, NO_KEYS, None),
    CommandDef::new("unsubscribe", -1, CONN | PUBSUB | NO_MULTI, NO_KEYS, None),
    CommandDef::new("psubscribe", -2, CONN | PUBSUB | NO_MULTI, NO_KEYS, None),
    CommandDef::new("punsubscribe", -1, CONN | PUBSUB | NO_MULTI, NO_KEYS, None),
    CommandDef::new("publish", 3, FAST | CONN, NO_KEYS, None),
    CommandDef::new("pubsub", -2, CONN, NO_KEYS, None),
    // Keyspace-wide commands: every shard takes part.
    CommandDef::new("dbsize", 1, READONLY | FAST | GLOBAL, NO_KEYS, None),
    CommandDef::new("keys", 2, READONLY | GLOBAL, NO_KEYS, None),
    CommandDef::new("scan", -2, READONLY | GLOBAL, NO_KEYS, None),
    CommandDef::new("randomkey", 1, READONLY | GLOBAL, NO_KEYS, None),
    CommandDef::new("flushdb", -1, WRITE | GLOBAL, NO_KEYS, None),
    CommandDef::new("flushall", -1, WRITE | GLOBAL, NO_KEYS, None),
    CommandDef::new("swapdb", 3, WRITE | FAST | GLOBAL, NO_KEYS, None),
];

struct Registry {
    defs: Vec<&'static CommandDef>,
    /// aHash, not std's SipHash: every request looks its command up here,
    /// and the table never changes after start-up.
    by_name: HashMap<&'static [u8], usize, ahash::RandomState>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut defs: Vec<&'static CommandDef> = Vec::new();
        for family in [
            SERVER_COMMANDS,
            super::string::COMMANDS,
            super::bitmap::COMMANDS,
            super::keys::COMMANDS,
            super::list::COMMANDS,
            super::hash::COMMANDS,
            super::set::COMMANDS,
            super::zset::COMMANDS,
            super::stream::COMMANDS,
            super::blocking::COMMANDS,
            super::dump::COMMANDS,
            super::hll::COMMANDS,
            super::geo::COMMANDS,
            super::sort::COMMANDS,
        ] {
            defs.extend(family.iter());
        }
        let by_name = defs.iter().enumerate().map(|(i, d)| (d.name.as_bytes(), i)).collect();
        Registry { defs, by_name }
    })
}

pub static TABLE: fn() -> &'static [&'static CommandDef] = || &registry().defs;

/// Find a command by name, case-insensitively; returns its id and row.
#[inline]
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandDef)> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let reg = registry();
    reg.by_name.get(&buf[..name.len()]).map(|&i| (i, reg.defs[i]))
}

pub fn by_id(id: usize) -> &'static CommandDef {
    registry().defs[id]
}

pub fn count() -> usize {
    registry().defs.len()
}

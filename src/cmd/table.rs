//! The static command table: one row per command and per subcommand of a
//! container command (CONFIG GET is the row `config|get`), collected from
//! each family's `COMMANDS` block and `cmd::server`'s, looked up
//! case-insensitively by name.
//!
//! A row answers every question the server asks about a command: its
//! arity, Redis's flags and ACL categories, shardis's routing flags, its
//! key specs (hence the legacy first/last/step and "movable keys"), what
//! runs it (`Handler`), how it blocks, and what COMMAND DOCS says. Callers
//! ask the row, never the name:
//!
//! - `lookup_args(&args)` finds the row for a request (the subcommand's
//!   row for a container) or why there is none; `arity_ok` checks it.
//! - `def.has(flags)` for the flag checks; `def.handler` says where it
//!   runs: `Keyspace` anywhere its keys are, `Session`/`Help`/`Server` on
//!   the connection's shard, `EveryShard` fanned out (`here` is one
//!   shard's part, what AOF replay applies).
//! - `cmd::key_positions(def, &args)` gives the key arguments (from the
//!   specs, or the row's `keys_fn` where specs cannot say).
//! - `def.block` says whether and how a blocking command waits;
//!   `def.other_db_key` names a key it writes in another database.

use super::blocking::BlockSpec;
use super::flags::{acl, Flags, Group, CONN_SHARD, EVERY_SHARD, LOADING, MOVABLE_KEYS, STALE};
use super::keyspec::{legacy_range, KeyRef, KeySpec};
use super::{Args, Ctx, Session};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A command that runs against one shard's keyspace: it reads and writes
/// a `Keyspace` and encodes a reply, and never sees a socket, so requests,
/// transactions and replay call it alike.
pub type KeyspaceFn = fn(&mut Ctx, &Args);
/// A command that needs only the connection's session (db, protocol).
pub type SessionFn = fn(&mut Session, &Args);
/// A command that needs the shard and the connection.
pub type ServerFn = fn(&mut crate::shard::core::Shard, &mut crate::shard::core::Conn, &Args);
/// How a keyspace-wide command runs over every shard.
pub type PlanFn = fn(&Args, &crate::shard::fanout::PlanCtx) -> crate::shard::fanout::GlobalPlan;
/// Keys of a command that its specs cannot fully describe (Redis's getkeys
/// procs), with what it does to each. Positions past the end must not be
/// returned; a malformed command may return none.
pub type KeysFn = fn(&Args) -> Vec<KeyRef>;
/// The (db, key) a command writes outside the connection's db (COPY ...
/// DB n, MOVE), so a transaction pulls that key too.
pub type OtherDbKeyFn = for<'a> fn(&Args<'a>) -> Option<(usize, &'a [u8])>;

/// Keys a command reads that its arguments do not name (SORT's BY and GET
/// patterns), beyond its key's own slot: in these slots, or anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Slots(Vec<u16>),
    Anywhere,
}
pub type ReachFn = fn(&Args) -> Option<Reach>;

/// What runs a command, and so where.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Runs against the keyspace of the shard that owns its keys.
    Keyspace(KeyspaceFn),
    /// Needs only the session: runs on the connection's shard, and inside
    /// any transaction (PING, ECHO, SELECT, TIME, LASTSAVE).
    Session(SessionFn),
    /// A container's HELP: replies these lines, anywhere.
    Help(&'static [&'static str]),
    /// Needs the shard and the connection (server and connection commands).
    Server(ServerFn),
    /// Every shard's keyspace takes part: `plan` says what each shard does
    /// and how the answers merge; `here` is this shard's part on its own
    /// keyspace (the whole answer on a one-shard server; what AOF replay
    /// applies).
    EveryShard { plan: PlanFn, here: KeyspaceFn },
    /// A container command: its arity needs a subcommand, whose row runs.
    Container,
}

pub struct CommandDef {
    /// Lowercase, as Redis reports it; `container|sub` for a subcommand.
    pub name: &'static str,
    /// Positive: exact argc (including the name); negative: at least -arity.
    pub arity: i32,
    /// Redis's flags and shardis's (`cmd::flags`).
    pub flags: Flags,
    /// The row's own ACL categories; `acl_categories` adds the implied ones.
    pub acl: acl::Categories,
    pub key_specs: &'static [KeySpec],
    /// The legacy key triple COMMAND INFO reports, derived from the specs.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub handler: Handler,
    /// For the keys its specs cannot describe exactly (see `keys_fn()`).
    pub keys_fn: Option<KeysFn>,
    pub subcommands: &'static [CommandDef],
    /// Redis's command tips (`nondeterministic_output`, request policies).
    pub tips: &'static [&'static str],
    pub group: Group,
    /// The Redis version that introduced it (COMMAND DOCS).
    pub since: &'static str,
    /// How it blocks, if it can (BLOCKING commands).
    pub block: Option<BlockSpec>,
    pub other_db_key: Option<OtherDbKeyFn>,
    /// Keys it may read besides its own (see `Reach`): with several
    /// shards it runs as a transaction over their shards.
    pub reach: Option<ReachFn>,
    /// Which arguments are pub/sub channels, for ACL channel rules.
    pub channels: Channels,
    /// Its keyspace notification for every key it changes, when that does
    /// not depend on what it did (`keyspace::notify`).
    pub event: Option<crate::keyspace::notify::RowEvent>,
}

/// The pub/sub channels among a command's arguments (Redis's
/// getChannelsFromCommand), checked against a user's `&pattern` rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    None,
    /// The first argument (PUBLISH).
    Publish,
    /// Every argument (SUBSCRIBE).
    Subscribe,
    /// Every argument, a pattern (PSUBSCRIBE).
    Patterns,
}

impl CommandDef {
    /// A row. Flags implied by the handler (CONN_SHARD, EVERY_SHARD) and by
    /// the key specs (MOVABLE_KEYS) are added here.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: Flags,
        key_specs: &'static [KeySpec],
        handler: Handler,
    ) -> Self {
        let ((first_key, last_key, step), movable) = legacy_range(key_specs);
        let mut flags = flags;
        if movable {
            flags |= MOVABLE_KEYS;
        }
        flags |= match handler {
            Handler::Session(_) | Handler::Help(_) | Handler::Server(_) => CONN_SHARD,
            Handler::EveryShard { .. } => EVERY_SHARD,
            Handler::Keyspace(_) | Handler::Container => 0,
        };
        CommandDef {
            name,
            arity,
            flags,
            acl: 0,
            key_specs,
            first_key,
            last_key,
            step,
            handler,
            keys_fn: None,
            subcommands: &[],
            tips: &[],
            group: Group::Generic,
            since: "1.0.0",
            block: None,
            other_db_key: None,
            reach: None,
            channels: Channels::None,
            event: None,
        }
    }

    /// The event published for every key the command changes (followed
    /// by `del` for a key it leaves empty).
    pub const fn event(mut self, class: u16, name: &'static str) -> Self {
        self.event = Some(crate::keyspace::notify::RowEvent { class, name, store: false });
        self
    }

    /// The event of a command that stores a result: published for its
    /// destination, which an empty result deletes (`del` alone).
    pub const fn store_event(mut self, class: u16, name: &'static str) -> Self {
        self.event = Some(crate::keyspace::notify::RowEvent { class, name, store: true });
        self
    }

    /// Keys, and what is done with each, come from `f` where the specs
    /// cannot tell: positions the specs cannot find (movable keys), or
    /// flags that depend on the arguments (VARIABLE_FLAGS, used only by
    /// COMMAND GETKEYSANDFLAGS: routing such a row reads the legacy triple).
    pub const fn keys_fn(mut self, f: KeysFn) -> Self {
        self.keys_fn = Some(f);
        self
    }

    /// The row's own ACL categories (replacing any set before).
    pub const fn acl(mut self, categories: acl::Categories) -> Self {
        self.acl = categories;
        self
    }

    pub const fn group(mut self, g: Group) -> Self {
        self.group = g;
        self
    }

    pub const fn since(mut self, v: &'static str) -> Self {
        self.since = v;
        self
    }

    pub const fn tips(mut self, t: &'static [&'static str]) -> Self {
        self.tips = t;
        self
    }

    pub const fn subcommands(mut self, subs: &'static [CommandDef]) -> Self {
        self.subcommands = subs;
        self
    }

    pub const fn blocks(mut self, b: BlockSpec) -> Self {
        self.block = Some(b);
        self
    }

    pub const fn channels(mut self, c: Channels) -> Self {
        self.channels = c;
        self
    }

    pub const fn other_db(mut self, f: OtherDbKeyFn) -> Self {
        self.other_db_key = Some(f);
        self
    }

    pub const fn reach(mut self, f: ReachFn) -> Self {
        self.reach = Some(f);
        self
    }

    #[inline]
    pub fn has(&self, f: Flags) -> bool {
        self.flags & f != 0
    }

    /// PUBLISH or SPUBLISH: (channel, message) delivered on every shard.
    /// The shard-channel one (SPUBLISH) names its channel as a not-key.
    #[inline]
    pub fn publishes(&self) -> Option<bool> {
        (self.has(super::flags::PUBSUB) && self.has(super::flags::MAY_REPLICATE)).then(|| self.takes_keys())
    }

    /// Whether any argument is a key (some may still be absent).
    #[inline]
    pub fn takes_keys(&self) -> bool {
        !self.key_specs.is_empty() || self.keys_fn.is_some()
    }

    /// The ACL categories, implied ones included.
    pub fn acl_categories(&self) -> acl::Categories {
        self.acl | acl::implied(self.flags, self.acl)
    }

    /// Redis's flags as COMMAND INFO names them, in its order.
    pub fn flag_names(&self) -> Vec<&'static str> {
        super::flags::REPORTED.iter().filter(|(f, _)| self.has(*f)).map(|(_, n)| *n).collect()
    }

    /// The subcommand part of a subcommand's name (`get` of `config|get`).
    pub fn sub_name(&self) -> &'static str {
        self.name.split_once('|').map_or(self.name, |(_, s)| s)
    }

    /// This container's subcommand named `sub` (any case), with its index.
    pub fn subcommand(&self, sub: &[u8]) -> Option<(usize, &'static CommandDef)> {
        self.subcommands.iter().enumerate().find(|(_, d)| d.sub_name().as_bytes().eq_ignore_ascii_case(sub))
    }
}

/// A container command (CONFIG, OBJECT, ...): never runs alone (arity -2
/// needs a subcommand), its subcommands' rows do.
pub const fn container(name: &'static str, subs: &'static [CommandDef]) -> CommandDef {
    CommandDef::new(name, -2, 0, &[], Handler::Container).subcommands(subs)
}

/// A container's HELP subcommand: replies `lines`, and runs while loading
/// and on a stale replica, as every HELP in Redis does.
pub const fn help(name: &'static str, lines: &'static [&'static str]) -> CommandDef {
    CommandDef::new(name, 2, LOADING | STALE, &[], Handler::Help(lines))
}

struct Registry {
    /// Every row: each command followed by its subcommands.
    defs: Vec<&'static CommandDef>,
    /// Ids of the top-level commands.
    top: Vec<usize>,
    /// aHash, not std's SipHash: every request looks its command up here,
    /// and the table never changes after start-up.
    by_name: HashMap<&'static [u8], usize, ahash::RandomState>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut defs: Vec<&'static CommandDef> = Vec::new();
        let mut top = Vec::new();
        let mut by_name = HashMap::default();
        let families = [
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
            super::migrate::COMMANDS,
            super::hll::COMMANDS,
            super::geo::COMMANDS,
            super::sort::COMMANDS,
            super::script::COMMANDS,
        ];
        for family in super::server::FAMILIES.iter().chain(families.iter()) {
            for d in family.iter() {
                by_name.insert(d.name.as_bytes(), defs.len());
                top.push(defs.len());
                defs.push(d);
                // A container's subcommands take the ids right after it
                // (`lookup_args` relies on it).
                defs.extend(d.subcommands.iter());
            }
        }
        Registry { defs, top, by_name }
    })
}

/// Find a top-level command by name, case-insensitively; returns its id
/// and row.
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

/// Why a request has no row.
#[derive(Clone, Copy)]
pub enum NotFound {
    Command,
    /// A container command without this subcommand.
    Subcommand(&'static CommandDef),
}

/// The row that runs a request: its command's, or for a container command
/// given a subcommand, the subcommand's (as Redis 7 looks commands up).
/// A container alone yields its own row, which its arity then refuses
/// unless it runs by itself (COMMAND).
#[inline]
pub fn lookup_args(args: &Args) -> Result<(usize, &'static CommandDef), NotFound> {
    let (id, def) = lookup(args.get(0)).ok_or(NotFound::Command)?;
    if def.subcommands.is_empty() || args.len() < 2 {
        return Ok((id, def));
    }
    match def.subcommand(args.get(1)) {
        Some((j, sub)) => Ok((id + 1 + j, sub)),
        None => Err(NotFound::Subcommand(def)),
    }
}

/// A row by its id (stats are kept per id).
pub fn by_id(id: usize) -> &'static CommandDef {
    registry().defs[id]
}

/// A row by its full name (`get`, `config|get`), case-insensitively.
pub fn by_full_name(name: &[u8]) -> Option<(usize, &'static CommandDef)> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name),
        Some(bar) => {
            let (id, def) = lookup(&name[..bar])?;
            def.subcommand(&name[bar + 1..]).map(|(j, d)| (id + 1 + j, d))
        }
    }
}

/// Rows: commands and subcommands (ids are indexes into this).
pub fn all() -> &'static [&'static CommandDef] {
    &registry().defs
}

/// Top-level commands (what COMMAND COUNT counts).
pub fn commands() -> impl Iterator<Item = &'static CommandDef> {
    let reg = registry();
    reg.top.iter().map(move |&i| reg.defs[i])
}

/// Number of rows, subcommands included.
pub fn count() -> usize {
    registry().defs.len()
}

/// Number of top-level commands.
pub fn command_count() -> usize {
    registry().top.len()
}

#[cfg(test)]
mod tests {
    use super::super::flags::*;
    use super::super::keyspec::{Begin, Find};
    use super::super::{arity_ok, key_positions, key_refs, OwnedArgs};
    use super::*;
    use rand::{Rng as _, SeedableRng};

    fn is_container(d: &CommandDef) -> bool {
        !d.subcommands.is_empty()
    }

    #[test]
    fn every_row_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for (id, d) in all().iter().enumerate() {
            let n = d.name;
            assert!(seen.insert(n), "{n}: two rows");
            assert_eq!(n, n.to_ascii_lowercase(), "{n}: names are lowercase");
            assert!(!n.contains(' ') && n.matches('|').count() <= 1, "{n}");
            assert_ne!(d.arity, 0, "{n}");
            assert!(!(d.has(WRITE) && d.has(READONLY)), "{n}: write and readonly");
            assert_eq!(d.has(BLOCKING), d.block.is_some(), "{n}: BLOCKING needs a BlockSpec, and only it");
            assert!(std::ptr::eq(by_id(id), *d), "{n}: id");
            assert!(std::ptr::eq(by_full_name(n.to_ascii_uppercase().as_bytes()).expect("by name").1, *d), "{n}");
            // Where it runs follows from the handler.
            let at_conn = matches!(d.handler, Handler::Session(_) | Handler::Help(_) | Handler::Server(_));
            assert_eq!(d.has(CONN_SHARD), at_conn, "{n}: CONN_SHARD");
            assert_eq!(d.has(EVERY_SHARD), matches!(d.handler, Handler::EveryShard { .. }), "{n}: EVERY_SHARD");
            // Flags that decide how the connection's shard runs it.
            for f in [NEVER_QUEUED, NO_EXEC, SUBSCRIBED_OK, SECRET_ARGS] {
                assert!(!d.has(f) || at_conn, "{n}: a connection flag on a keyspace row");
            }
            if let Handler::Help(_) = d.handler {
                assert!(n.ends_with("|help") && d.arity == 2 && d.has(LOADING | STALE), "{n}");
            }
            // Containers: a subcommand is needed (COMMAND alone runs).
            assert_eq!(matches!(d.handler, Handler::Container), is_container(d) && n != "command", "{n}");
            if matches!(d.handler, Handler::Container) {
                assert_eq!(d.arity, -2, "{n}: a container needs its subcommand");
            }
            for s in d.subcommands {
                assert_eq!(s.name.split_once('|').map(|(c, _)| c), Some(n), "{}: not {n}'s", s.name);
                assert!(s.arity >= 2 || s.arity <= -2, "{}: arity counts the container", s.name);
                assert!(s.subcommands.is_empty(), "{}: nested", s.name);
                assert_eq!(s.group, d.group, "{}: group", s.name);
            }
            // Key specs: where they begin, and what the legacy triple says.
            for ks in d.key_specs {
                match ks.begin {
                    Begin::Index(p) => assert!(p >= 1, "{n}"),
                    Begin::Keyword { keyword, from } => assert!(from != 0 && !keyword.is_empty(), "{n}"),
                    Begin::Unknown => assert!(matches!(ks.find, Find::Unknown), "{n}"),
                }
                assert!(ks.flags != 0, "{n}: key spec without flags");
            }
            if d.first_key > 0 && d.arity > 0 && d.last_key >= 0 {
                assert!(d.last_key < d.arity, "{n}: keys past a fixed arity");
            }
            if d.has(MOVABLE_KEYS) {
                // What the triple cannot say, the specs or keys_fn do.
                assert!(d.takes_keys(), "{n}");
            }
            // ACL: data-type rows name their type (MEMORY USAGE, a server
            // command, and the scripting commands have none in Redis
            // either); never both fast and slow.
            let cats = d.acl_categories();
            assert_ne!(cats & acl::FAST != 0, cats & acl::SLOW != 0, "{n}");
            let typeless = matches!(d.group, Group::Server | Group::Scripting);
            if matches!(d.handler, Handler::Keyspace(_)) && d.takes_keys() && !typeless {
                let types = acl::KEYSPACE
                    | acl::STRING
                    | acl::BITMAP
                    | acl::LIST
                    | acl::HASH
                    | acl::SET
                    | acl::SORTEDSET
                    | acl::STREAM
                    | acl::HYPERLOGLOG
                    | acl::GEO;
                assert!(cats & types != 0, "{n}: no data-type category");
            }
            assert!(d.since.split('.').count() == 3, "{n}: since {}", d.since);
        }
        assert!(command_count() > 200 && count() > command_count());
    }

    #[test]
    fn every_subcommand_is_reachable() {
        for d in commands().filter(|d| is_container(d)) {
            for (j, s) in d.subcommands.iter().enumerate() {
                // Any case of either name.
                let parts = [d.name.to_ascii_uppercase(), s.sub_name().to_string(), "x".into(), "y".into()];
                let a = OwnedArgs::from_slices(&parts);
                let Ok((id, row)) = lookup_args(&a.args()) else { panic!("{} unreachable", s.name) };
                assert!(std::ptr::eq(row, s), "{}", s.name);
                assert_eq!(id, lookup(d.name.as_bytes()).expect("container").0 + 1 + j);
                assert!(std::ptr::eq(by_id(id), s));
            }
            // The container alone is its own row; an unknown subcommand none.
            let a = OwnedArgs::from_slices(&[d.name]);
            assert!(lookup_args(&a.args()).is_ok_and(|(_, r)| std::ptr::eq(r, d)));
            let a = OwnedArgs::from_slices(&[d.name, "nosuch"]);
            assert!(matches!(lookup_args(&a.args()), Err(NotFound::Subcommand(c)) if std::ptr::eq(c, d)));
        }
        let a = OwnedArgs::from_slices(&["nosuch"]);
        assert!(matches!(lookup_args(&a.args()), Err(NotFound::Command)));
        // Names longer than any command are not looked up at all.
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    /// One random argument: numbers (counts, in and out of range), the
    /// keywords key specs search for, and plain words.
    fn random_arg(rng: &mut rand::rngs::StdRng) -> String {
        const WORDS: &[&str] = &[
            "STREAMS",
            "streams",
            "STORE",
            "STOREDIST",
            "KEYS",
            "GET",
            "SET",
            "INCRBY",
            "OVERFLOW",
            "BY",
            "LIMIT",
            "COUNT",
            "BLOCK",
            "GROUP",
            "WEIGHTS",
            "LEFT",
            "RIGHT",
            "DB",
            "0",
            "1",
            "2",
            "3",
            "7",
            "-1",
            "-5",
            "999999999999",
            "x",
            "",
        ];
        if rng.gen_bool(0.7) {
            WORDS[rng.gen_range(0..WORDS.len())].to_string()
        } else {
            rng.gen_range(0..20).to_string()
        }
    }

    #[test]
    fn key_specs_stay_within_the_arguments() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for d in all().iter().filter(|d| d.takes_keys()) {
            let (container, sub) = match d.name.split_once('|') {
                Some((c, s)) => (c, Some(s)),
                None => (d.name, None),
            };
            let min = d.arity.unsigned_abs() as usize;
            for _ in 0..300 {
                let argc = if d.arity > 0 { min } else { min + rng.gen_range(0..8) };
                let mut parts = vec![container.to_string()];
                parts.extend(sub.map(str::to_string));
                while parts.len() < argc {
                    parts.push(random_arg(&mut rng));
                }
                let a = OwnedArgs::from_slices(&parts);
                let args = a.args();
                assert!(arity_ok(d, args.len()));
                let pos: Vec<usize> = key_positions(d, &args).collect();
                for &p in &pos {
                    assert!(p >= 1 && p < args.len(), "{}: key at {p} of {parts:?}", d.name);
                }
                // GETKEYS names the same keys the router routes by.
                let refs: Vec<usize> = key_refs(d, &args).iter().map(|k| k.pos).collect();
                assert_eq!(refs, pos, "{}: {parts:?}", d.name);
                if !d.has(MOVABLE_KEYS) && d.keys_fn.is_none() {
                    // The triple says it all: same as walking the specs.
                    let specs: Vec<usize> =
                        super::super::keyspec::spec_positions(d.key_specs, &args).iter().map(|k| k.pos).collect();
                    assert_eq!(specs, pos, "{}: {parts:?}", d.name);
                }
            }
        }
    }

    #[test]
    fn non_movable_rows_route_without_allocating() {
        // The hot path reads the triple: GET and SET are not movable, and
        // SET's keys_fn (its argument-dependent flags) is not used to route.
        for name in ["get", "set", "incr", "mget", "mset", "hset", "lpush", "zadd", "sadd", "xadd", "del"] {
            let d = lookup(name.as_bytes()).expect(name).1;
            assert!(!d.has(MOVABLE_KEYS), "{name}");
            let a = OwnedArgs::from_slices(&[name, "k", "v", "w"]);
            assert!(matches!(key_positions(d, &a.args()), super::super::KeyPositions::Range(_)), "{name}");
        }
    }

    #[test]
    fn copy_and_move_name_their_key_in_the_other_db() {
        let other = |line: &str| {
            let parts: Vec<&str> = line.split(' ').collect();
            let a = OwnedArgs::from_slices(&parts);
            let d = lookup(parts[0].as_bytes()).expect("command").1;
            let f = d.other_db_key.expect("other_db hook");
            f(&a.args()).map(|(db, k)| (db, k.to_vec()))
        };
        assert_eq!(other("COPY a b DB 3"), Some((3, b"b".to_vec())));
        assert_eq!(other("COPY a b REPLACE db 0"), Some((0, b"b".to_vec())));
        assert_eq!(other("COPY a b"), None);
        assert_eq!(other("COPY a b DB 16"), None);
        assert_eq!(other("COPY a b DB"), None);
        assert_eq!(other("MOVE a 2"), Some((2, b"a".to_vec())));
        assert_eq!(other("MOVE a x"), None);
        assert_eq!(all().iter().filter(|d| d.other_db_key.is_some()).count(), 2);
    }

    #[test]
    fn implied_categories() {
        let d = lookup(b"get").expect("get").1;
        assert_eq!(d.acl_categories(), acl::READ | acl::STRING | acl::FAST);
        let d = by_full_name(b"config|set").expect("config|set").1;
        assert_eq!(d.acl_categories(), acl::ADMIN | acl::SLOW | acl::DANGEROUS);
        assert_eq!(acl::by_name(b"SortedSet"), Some(acl::SORTEDSET));
        assert_eq!(acl::by_name(b"@read"), None);
    }
}

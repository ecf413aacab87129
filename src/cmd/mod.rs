//! The command table and the execution context.
//!
//! Every command, and every subcommand of a container command, is one row
//! of the table (`table`): name, arity, Redis's flags and ACL categories,
//! key specs (`keyspec`), and what runs it. The router, MULTI, blocking,
//! cross-shard transactions, AOF replay and COMMAND INFO decide from these
//! rows (`flags`), never by comparing names.
//!
//! Keyspace commands are plain functions `fn(&mut Ctx, &Args)`: they read
//! and write a `Keyspace` and encode a reply, and never see a socket, so
//! tests, transactions and replay call them alike. Server and connection
//! commands (`server`) take the shard and the connection; the few that
//! need only the session (`Session`: PING, SELECT, ...) run anywhere.

pub mod admission;
pub mod bitmap;
pub mod blocking;
pub mod call;
pub mod cross_slot;
pub mod docs;
pub mod dump;
pub mod flags;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod keyspec;
pub mod list;
pub mod migrate;
pub mod script;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod table;
#[cfg(test)]
pub(crate) mod testing;
pub mod zset;

use crate::keyspace::{Keyspace, Typed, WrongType};
use crate::protocol::reply::Reply;
use std::ops::Range;

pub use table::{lookup, lookup_args, CommandDef, Handler, NotFound, Reach};

/// A request's arguments: ranges into a buffer owned by the caller.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    pub fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { buf, ranges }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The buffer the arguments point into.
    pub fn raw_buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Length of that buffer: the request's wire length when it was parsed
    /// from a connection (used to step back over a request to re-run it).
    pub fn buf_len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.buf[self.ranges[i].clone()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges.iter().map(move |r| &buf[r.clone()])
    }

    /// Argument `i` as an uppercase-insensitive keyword comparison.
    #[inline]
    pub fn is(&self, i: usize, kw: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(kw.as_bytes())
    }
}

impl<'a> std::ops::Index<usize> for Args<'a> {
    type Output = [u8];
    fn index(&self, i: usize) -> &[u8] {
        self.get(i)
    }
}

/// Owned arguments, for building commands in code (tests, transactions).
#[derive(Clone)]
#[derive(Default)]
pub struct OwnedArgs {
    pub buf: Vec<u8>,
    pub ranges: Vec<Range<usize>>,
}

impl OwnedArgs {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ranges.clear();
    }

    pub fn push(&mut self, part: &[u8]) {
        let s = self.buf.len();
        self.buf.extend_from_slice(part);
        self.ranges.push(s..self.buf.len());
    }

    pub fn from_slices<A: AsRef<[u8]>>(parts: &[A]) -> Self {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for p in parts {
            let s = buf.len();
            buf.extend_from_slice(p.as_ref());
            ranges.push(s..buf.len());
        }
        OwnedArgs { buf, ranges }
    }

    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.ranges)
    }
}

/// What a keyspace command runs against.
pub struct Ctx<'a> {
    pub ks: &'a mut Keyspace,
    pub db: usize,
    /// Unix ms, fixed for the duration of one command (as Redis caches it).
    pub now: i64,
    pub out: Reply<'a>,
    /// `proto-max-bulk-len`: the largest string a command may build.
    pub max_bulk_len: i64,
    /// Seeded per shard; commands with random choices draw from it.
    pub rng: &'a mut Rng,
    /// The server the command runs in.
    pub facts: &'a Facts,
    /// The shard's scripting engine, where scripts may run (EVAL).
    pub scripts: Option<&'a mut crate::script::Engine>,
}

/// What a command handler may know of the server it runs in, passed in
/// its context rather than read from process-wide statics. Replay and unit
/// tests run as a single shard (no cross-slot rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub shards: usize,
}

impl Facts {
    pub const SINGLE: Facts = Facts { shards: 1 };
}

impl<'a> Ctx<'a> {
    pub fn new(ks: &'a mut Keyspace, db: usize, now: i64, out: Reply<'a>, rng: &'a mut Rng) -> Self {
        Ctx { ks, db, now, out, max_bulk_len: 512 << 20, rng, facts: &Facts::SINGLE, scripts: None }
    }

    pub fn error(&mut self, msg: &str) {
        self.out.error(msg);
    }

    /// `Keyspace::get_typed` on this command's db and clock (borrowing the
    /// whole context; go through `ks` to write a reply meanwhile).
    #[inline]
    pub fn get_typed<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&T>, WrongType> {
        self.ks.get_typed(self.db, key, self.now)
    }

    /// `Keyspace::get_str` on this command's db and clock.
    #[inline]
    pub fn get_str<'b>(&'b mut self, key: &[u8], buf: &'b mut [u8; 24]) -> Result<Option<&'b [u8]>, WrongType> {
        self.ks.get_str(self.db, key, self.now, buf)
    }

    /// `Keyspace::get_typed_mut` on this command's db and clock.
    #[inline]
    pub fn get_typed_mut<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&mut T>, WrongType> {
        self.ks.get_typed_mut(self.db, key, self.now)
    }

    /// Log `parts` (a command on the current db) instead of this command's
    /// own arguments: for effects that depend on the clock or on chance.
    /// May be called several times; nothing is logged unless the AOF is on.
    pub fn propagate<A: AsRef<[u8]>>(&mut self, parts: &[A]) {
        if self.ks.effects.enabled {
            self.ks.effects.replace(self.db, parts);
        }
    }

    /// Publish keyspace event `name` (of class `class`) for `key` on this
    /// command's db: for the events that depend on what the command did.
    #[inline]
    pub fn notify(&mut self, class: u16, name: &'static str, key: &[u8]) {
        self.ks.notify.emit(class, name, self.db, key);
    }

    /// This command changed nothing that needs logging (its only change
    /// was already logged, or it is to be dropped).
    pub fn propagate_nothing(&mut self) {
        if self.ks.effects.enabled {
            self.ks.effects.suppress();
        }
    }
}

/// What a session command (PING, ECHO, SELECT, TIME, LASTSAVE, a HELP)
/// runs against: the connection's db, which it may change, and its reply.
pub struct Session<'a> {
    pub db: usize,
    pub out: Reply<'a>,
    /// A RESP2 connection in subscribe mode (PING answers as a push there).
    pub subscribed_resp2: bool,
}

/// Error texts shared by many commands (Redis 7 wording).
pub mod err {
    pub const SYNTAX: &str = "ERR syntax error";
    pub const WRONGTYPE: &str = crate::keyspace::WrongType::MSG;
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_KEY: &str = "ERR no such key";
    pub const INVALID_EXPIRE: &str = "ERR invalid expire time in '{}' command";
    pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const NOT_I32: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
    pub const NOT_INT_OR_RANGE_OFFSET: &str = "ERR bit offset is not an integer or out of range";
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
    pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
}

/// An `int` argument as Redis's getIntFromObjectOrReply reads it (DB
/// indexes): not an integer, or outside i32, is an error; `msg` replaces
/// both texts when given, as in Redis.
pub fn parse_int_arg(arg: &[u8], msg: Option<&'static str>) -> Result<i32, &'static str> {
    match crate::util::parse_i64(arg) {
        None => Err(msg.unwrap_or(err::NOT_INT)),
        Some(n) => i32::try_from(n).map_err(|_| msg.unwrap_or(err::NOT_I32)),
    }
}

/// A small fast PRNG (xorshift64*), seeded per shard. Commands that choose
/// randomly (RANDOMKEY, later SPOP) draw from it so a seed replays them.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Run a command that needs no shard layer (a keyspace, session or HELP
/// row; for a container row, the subcommand `args` name) and encode its
/// reply. Server and keyspace-wide commands are the shard layer's. A server
/// runs commands through `call::call` (the road's gates, then this, then
/// its observer); this is public for benches and tests.
pub fn exec(def: &CommandDef, ctx: &mut Ctx, args: &Args) {
    match def.handler {
        Handler::Keyspace(h) => {
            // Admission (maxmemory, MISCONF, ...) was decided by the caller's
            // road: see `admission`.
            // Key lookups of read-only commands count as hits or misses
            // (INFO keyspace_hits/keyspace_misses), as in Redis.
            ctx.ks.count_lookups = def.has(flags::READONLY);
            ctx.ks.begin_command(ctx.now, def.has(flags::WRITE));
            if ctx.ks.effects.enabled && def.has(flags::WRITE) {
                // Writes other than expiry deletions (those log themselves).
                let changes = |ks: &Keyspace| ks.dirty - ks.expired_keys;
                let before = changes(ctx.ks);
                let mark = ctx.ks.effects.mark();
                h(ctx, args);
                let replaced = ctx.ks.effects.take_replaced();
                let changed = changes(ctx.ks) != before;
                if !replaced && changed {
                    ctx.ks.effects.push_iter(ctx.db, args.len(), args.iter());
                }
                if (replaced || changed) && cross_slot::logs_by_state(def, args) {
                    cross_slot::log_states(ctx, def, args, mark);
                }
            } else {
                h(ctx, args);
            }
            ctx.ks.end_command();
            ctx.ks.count_lookups = false;
        }
        Handler::Session(_) | Handler::Help(_) => {
            let mut s =
                Session { db: ctx.db, out: Reply::new(&mut *ctx.out.out, ctx.out.resp3), subscribed_resp2: false };
            run_session(def, &mut s, args);
            ctx.db = s.db;
        }
        // A caller with the container's row (tests, tools): check as a
        // request would be, and run the subcommand's row.
        Handler::Container => match lookup_args(args) {
            _ if !arity_ok(def, args.len()) => arity_error(&mut ctx.out, def.name),
            Ok((_, sub)) if arity_ok(sub, args.len()) => exec(sub, ctx, args),
            Ok((_, sub)) => arity_error(&mut ctx.out, sub.name),
            Err(why) => not_found_error(&mut ctx.out, args, why),
        },
        Handler::Server(_) | Handler::EveryShard { .. } => ctx.error("ERR command not available in this context"),
    }
}

/// Run a session or HELP row; false if the row is of another kind.
pub fn run_session(def: &CommandDef, s: &mut Session, args: &Args) -> bool {
    match def.handler {
        Handler::Session(h) => h(s, args),
        Handler::Help(lines) => reply_help(&mut s.out, lines),
        _ => return false,
    }
    true
}

/// The row a stored, already checked request runs with (None if it names
/// no command: nothing is run for it).
#[inline]
pub fn find(args: &Args) -> Option<(usize, &'static CommandDef)> {
    lookup_args(args).ok()
}

/// Check arity as Redis does: positive = exact, negative = at least.
#[inline]
pub fn arity_ok(def: &CommandDef, argc: usize) -> bool {
    arity_matches(def.arity, argc)
}

/// `argc` fits `arity` (positive = exact, negative = at least).
#[inline]
pub fn arity_matches(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= (-arity) as usize
    }
}

pub fn arity_error(out: &mut Reply, name: &str) {
    out.error(&format!("ERR wrong number of arguments for '{}' command", name));
}

/// A container command's HELP reply: one simple string per line.
pub fn reply_help(out: &mut Reply, lines: &[&str]) {
    out.array(lines.len());
    for l in lines {
        out.simple(l);
    }
}

/// Redis 7's error for a subcommand its container does not have (the
/// subcommand cut to 128 bytes, as Redis prints it): what every road
/// replies when `lookup_args` finds no row.
pub fn unknown_subcommand_text(cmd: &str, sub: &[u8]) -> String {
    format!("ERR unknown subcommand '{}'. Try {} HELP.", cut128(sub), cmd.to_ascii_uppercase())
}

/// Redis's reply when a subcommand's own argument checks fail (its
/// addReplySubcommandSyntaxError): the subcommand cut to 128 bytes.
pub fn subcommand_syntax_text(cmd: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        cut128(sub),
        cmd.to_ascii_uppercase()
    )
}

fn cut128(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&b[..b.len().min(128)])
}

/// The error for a request `lookup_args` found no row for.
pub fn not_found_error(out: &mut Reply, args: &Args, why: NotFound) {
    match why {
        NotFound::Command => unknown_command_error(out, args),
        NotFound::Subcommand(container) => out.error(&unknown_subcommand_text(container.name, args.get(1))),
    }
}

pub fn unknown_command_error(out: &mut Reply, args: &Args) {
    // Byte-exact with Redis: the name cut at 128 bytes, then each argument
    // quoted while the message is under 128 bytes; C strings stop at NUL.
    let cstr = |b: &[u8]| -> Vec<u8> { b.iter().take_while(|&&c| c != 0).copied().collect() };
    let name = cstr(args.get(0));
    let mut arglist: Vec<u8> = Vec::new();
    for a in args.iter().skip(1) {
        if arglist.len() >= 128 {
            break;
        }
        let room = 128 - arglist.len();
        let a = cstr(a);
        arglist.push(b'\'');
        arglist.extend_from_slice(&a[..a.len().min(room)]);
        arglist.extend_from_slice(b"' ");
    }
    let mut msg = b"-ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..name.len().min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&arglist);
    for b in msg.iter_mut() {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    msg.extend_from_slice(b"\r\n");
    out.raw(&msg);
}

/// A command's key positions: from the legacy triple when it describes
/// them all (no allocation: the common case), else from the row's own
/// `keys_fn`, or from the key specs.
#[inline]
pub fn key_positions(def: &CommandDef, args: &Args) -> KeyPositions {
    if def.has(flags::MOVABLE_KEYS) {
        return KeyPositions::List(key_refs(def, args).into_iter());
    }
    let argc = args.len();
    let first = def.first_key as usize;
    let last = if def.last_key < 0 { (argc as i64 + def.last_key as i64) as usize } else { def.last_key as usize };
    let step = def.step.max(1) as usize;
    let valid = def.first_key > 0 && first < argc;
    let last = if valid { last.min(argc - 1) } else { 0 };
    KeyPositions::Range((if valid { first } else { 1 }..=if valid { last } else { 0 }).step_by(step))
}

/// Keys with what the command does to each (COMMAND GETKEYSANDFLAGS).
pub fn key_refs(def: &CommandDef, args: &Args) -> Vec<keyspec::KeyRef> {
    if let Some(f) = def.keys_fn {
        return f(args);
    }
    keyspec::spec_positions(def.key_specs, args)
}

/// `f` on each of `key_refs(def, args)`, stopping at the first Err, with
/// no Vec built when the row's key specs say where its keys are.
#[inline]
pub fn try_for_each_key_ref<E>(
    def: &CommandDef,
    args: &Args,
    mut f: impl FnMut(keyspec::KeyRef) -> Result<(), E>,
) -> Result<(), E> {
    if let Some(keys) = def.keys_fn {
        return keys(args).into_iter().try_for_each(f);
    }
    keyspec::try_for_each_spec_key(def.key_specs, args, &mut f)
}

pub enum KeyPositions {
    Range(std::iter::StepBy<std::ops::RangeInclusive<usize>>),
    List(std::vec::IntoIter<keyspec::KeyRef>),
}

impl Iterator for KeyPositions {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Range(r) => r.next(),
            KeyPositions::List(l) => l.next().map(|k| k.pos),
        }
    }
}

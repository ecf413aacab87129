//! The blocking forms of list and sorted-set pops: BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! Here they only *try*: serve from the first key that has data, exactly
//! as Redis replies when it serves a blocked client, or reply the timeout
//! reply (a null) and set `Keyspace::would_block`. Waiting, waking and
//! timing out are the shard layer's business (`crate::shard::blocking`):
//! it runs these same handlers again when a key they wait on changes. Inside
//! MULTI (and during AOF replay) the null simply stands, as in Redis.
//! Served pops are logged as their non-blocking forms.

use super::flags::{acl, Group, *};
use super::keyspec::*;
use super::list;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{Args, Ctx, OwnedArgs};
use crate::keyspace::list::{End, List};
use crate::keyspace::notify as ev;
use crate::keyspace::zset::ZSet;
use crate::util::parse_f64;

const fn c(
    name: &'static str,
    arity: i32,
    flags: Flags,
    keys: &'static [KeySpec],
    block: BlockSpec,
    h: KeyspaceFn,
) -> CommandDef {
    CommandDef::new(name, arity, flags | BLOCKING, keys, Handler::Keyspace(h)).blocks(block)
}

const fn list(d: CommandDef) -> CommandDef {
    d.acl(acl::LIST).group(Group::List)
}

const fn zset(d: CommandDef) -> CommandDef {
    d.acl(acl::SORTEDSET).group(Group::SortedSet)
}

pub static COMMANDS: &[CommandDef] = &[
    list(
        c("blpop", -3, WRITE | NOSCRIPT, &[at(1, RW | ACCESS | DELETE).range(-2, 1, 0)], POP, blpop)
            .event(ev::LIST, "lpop"),
    )
    .since("2.0.0"),
    list(
        c("brpop", -3, WRITE | NOSCRIPT, &[at(1, RW | ACCESS | DELETE).range(-2, 1, 0)], POP, brpop)
            .event(ev::LIST, "rpop"),
    )
    .since("2.0.0"),
    list(c("blmove", 6, WRITE | DENYOOM | NOSCRIPT, &[at(1, RW | ACCESS | DELETE), at(2, RW | INSERT)], MOVE, blmove))
        .since("6.2.0"),
    list(c(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT,
        &[at(1, RW | ACCESS | DELETE), at(2, RW | INSERT)],
        MOVE,
        brpoplpush,
    ))
    .since("2.2.0"),
    list(c("blmpop", -5, WRITE, &[at(2, RW | ACCESS | DELETE).keynum(0, 1, 1)], MPOP, blmpop)).since("7.0.0"),
    zset(
        c("bzpopmin", -3, WRITE | NOSCRIPT | FAST, &[at(1, RW | ACCESS | DELETE).range(-2, 1, 0)], POP, bzpopmin)
            .event(ev::ZSET, "zpopmin"),
    )
    .since("5.0.0"),
    zset(
        c("bzpopmax", -3, WRITE | NOSCRIPT | FAST, &[at(1, RW | ACCESS | DELETE).range(-2, 1, 0)], POP, bzpopmax)
            .event(ev::ZSET, "zpopmax"),
    )
    .since("5.0.0"),
    zset(c("bzmpop", -5, WRITE, &[at(2, RW | ACCESS | DELETE).keynum(0, 1, 1)], MPOP, bzmpop)).since("7.0.0"),
];

/// How a blocking command waits: where its timeout is, and how the
/// clients waiting on one key are served when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    pub timeout: Timeout,
    /// A waiter that still finds nothing lets the ones queued after it on
    /// the same key be tried too: stream readers each wait for their own
    /// ids or group. A list or sorted-set pop stops there: the key is
    /// empty for everyone behind it.
    pub independent: bool,
    pub on_error: WakeError,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Seconds (fractions allowed), the last argument.
    Last,
    /// Seconds, at this argument.
    Arg(usize),
    /// Milliseconds after BLOCK (before STREAMS); without BLOCK the command
    /// does not block at all.
    BlockOption,
}

/// What a waiter's retry failing with an error means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeError {
    /// Keep waiting: BLPOP/BZPOP* skip a key of another type (Redis serves
    /// only matching types) and XREAD a stream it cannot read yet.
    KeepWaiting,
    /// Reply the error (BLMOVE, BRPOPLPUSH: a destination of another type).
    Reply,
    /// The stream or the group it reads through is gone: reply UNBLOCKED
    /// or NOGROUP, as Redis 7 does for XREADGROUP.
    StreamGone,
}

/// BLPOP, BRPOP, BZPOPMIN, BZPOPMAX.
pub const POP: BlockSpec = BlockSpec { timeout: Timeout::Last, independent: false, on_error: WakeError::KeepWaiting };
/// BLMOVE, BRPOPLPUSH.
pub const MOVE: BlockSpec = BlockSpec { timeout: Timeout::Last, independent: false, on_error: WakeError::Reply };
/// BLMPOP, BZMPOP: the timeout comes first.
pub const MPOP: BlockSpec =
    BlockSpec { timeout: Timeout::Arg(1), independent: false, on_error: WakeError::KeepWaiting };
/// XREAD [BLOCK ms].
pub const XREAD: BlockSpec =
    BlockSpec { timeout: Timeout::BlockOption, independent: true, on_error: WakeError::KeepWaiting };
/// XREADGROUP [BLOCK ms].
pub const XREADGROUP: BlockSpec =
    BlockSpec { timeout: Timeout::BlockOption, independent: true, on_error: WakeError::StreamGone };

/// XREAD/XREADGROUP's BLOCK argument, if given (before STREAMS).
fn block_option<'a>(args: &Args<'a>) -> Option<&'a [u8]> {
    let mut i = 1;
    while i + 1 < args.len() {
        if args.is(i, "streams") {
            return None;
        }
        if args.is(i, "block") {
            return Some(args.get(i + 1));
        }
        i += 1;
    }
    None
}

impl BlockSpec {
    /// Whether this request may block: always for the list and sorted-set
    /// forms, only with BLOCK for the stream readers.
    pub fn blocks(&self, args: &Args) -> bool {
        self.timeout != Timeout::BlockOption || block_option(args).is_some()
    }

    /// The request's timeout in ms (0 = wait forever), parsed as Redis's
    /// getTimeoutFromObjectOrReply (seconds, fractions allowed; for BLOCK,
    /// integer milliseconds).
    pub fn timeout_ms(&self, args: &Args) -> Result<i64, &'static str> {
        let at = match self.timeout {
            Timeout::BlockOption => {
                return match block_option(args).map(crate::util::parse_i64) {
                    None => Ok(0),
                    Some(None) => Err("ERR timeout is not an integer or out of range"),
                    Some(Some(t)) if t < 0 => Err("ERR timeout is negative"),
                    Some(Some(t)) => Ok(t),
                }
            }
            Timeout::Last => args.len() - 1,
            Timeout::Arg(i) => i,
        };
        let secs =
            parse_f64(args.get(at)).filter(|v| v.is_finite()).ok_or("ERR timeout is not a float or out of range")?;
        if secs < 0.0 {
            return Err("ERR timeout is negative");
        }
        let ms = secs * 1000.0;
        if ms > (i64::MAX / 2) as f64 {
            return Err("ERR timeout is out of range");
        }
        // A positive timeout under 1 ms still waits (Redis rounds up to 1 ms).
        Ok(if ms > 0.0 { (ms as i64).max(1) } else { 0 })
    }
}

/// Nothing to serve: reply the null a timeout gives and ask to block.
fn nothing(ctx: &mut Ctx, null_array: bool) {
    if null_array {
        ctx.out.null_array();
    } else {
        ctx.out.null();
    }
    ctx.ks.would_block = true;
}

fn blpop(ctx: &mut Ctx, args: &Args) {
    bpop(ctx, args, End::Head)
}

fn brpop(ctx: &mut Ctx, args: &Args) {
    bpop(ctx, args, End::Tail)
}

/// BLPOP/BRPOP key [key ...] timeout
fn bpop(ctx: &mut Ctx, args: &Args, end: End) {
    if let Err(e) = POP.timeout_ms(args) {
        return ctx.error(e);
    }
    let (db, now) = (ctx.db, ctx.now);
    for i in 1..args.len() - 1 {
        match ctx.ks.get_typed::<List>(db, &args[i], now) {
            Err(e) => return ctx.error(e.msg()),
            Ok(Some(l)) if !l.is_empty() => {
                list::pop_for_block(ctx, &args[i], end, None);
                return;
            }
            Ok(_) => {}
        }
    }
    nothing(ctx, true)
}

/// Run the non-blocking twin `name` with `parts`; if it replied the null
/// it gives when there is nothing, turn that into a block. Served calls
/// are logged as the twin.
fn via_twin(ctx: &mut Ctx, name: &str, parts: Vec<&[u8]>, null_array: bool) {
    let Some((_, def)) = super::lookup(name.as_bytes()) else { return ctx.error("ERR internal: no twin command") };
    let Handler::Keyspace(h) = def.handler else { return ctx.error("ERR internal: no twin handler") };
    let owned = OwnedArgs::from_slices(&parts);
    let start = ctx.out.out.len();
    h(ctx, &owned.args());
    let written = &ctx.out.out[start..];
    let null: &[u8] = match (ctx.out.resp3, null_array) {
        (true, _) => b"_\r\n",
        (false, true) => b"*-1\r\n",
        (false, false) => b"$-1\r\n",
    };
    if written == null {
        ctx.ks.would_block = true;
        // The twin may have logged nothing; make sure nothing is logged.
        ctx.propagate_nothing();
    } else if !written.starts_with(b"-") {
        ctx.propagate(&parts);
    }
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
fn blmove(ctx: &mut Ctx, args: &Args) {
    if let Err(e) = MOVE.timeout_ms(args) {
        return ctx.error(e);
    }
    let parts = vec![&b"LMOVE"[..], &args[1], &args[2], &args[3], &args[4]];
    via_twin(ctx, "lmove", parts, false)
}

/// BRPOPLPUSH source destination timeout
fn brpoplpush(ctx: &mut Ctx, args: &Args) {
    if let Err(e) = MOVE.timeout_ms(args) {
        return ctx.error(e);
    }
    let parts = vec![&b"LMOVE"[..], &args[1], &args[2], b"RIGHT", b"LEFT"];
    via_twin(ctx, "lmove", parts, false)
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
fn blmpop(ctx: &mut Ctx, args: &Args) {
    if let Err(e) = MPOP.timeout_ms(args) {
        return ctx.error(e);
    }
    let parts: Vec<&[u8]> = std::iter::once(&b"LMPOP"[..]).chain(args.iter().skip(2)).collect();
    via_twin(ctx, "lmpop", parts, true)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
fn bzmpop(ctx: &mut Ctx, args: &Args) {
    if let Err(e) = MPOP.timeout_ms(args) {
        return ctx.error(e);
    }
    let parts: Vec<&[u8]> = std::iter::once(&b"ZMPOP"[..]).chain(args.iter().skip(2)).collect();
    via_twin(ctx, "zmpop", parts, true)
}

fn bzpopmin(ctx: &mut Ctx, args: &Args) {
    bzpop(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx, args: &Args) {
    bzpop(ctx, args, true)
}

/// BZPOPMIN/BZPOPMAX key [key ...] timeout: `[key, member, score]`.
fn bzpop(ctx: &mut Ctx, args: &Args, max: bool) {
    if let Err(e) = POP.timeout_ms(args) {
        return ctx.error(e);
    }
    let (db, now) = (ctx.db, ctx.now);
    for i in 1..args.len() - 1 {
        let key = &args[i];
        match ctx.ks.get_typed::<ZSet>(db, key, now) {
            Err(e) => return ctx.error(e.msg()),
            Ok(Some(z)) if !z.is_empty() => {
                let popped = super::zset::pop_n(ctx.ks, db, key, now, 1, max);
                if let Some((m, score)) = popped.first() {
                    ctx.out.array(3);
                    ctx.out.bulk(key);
                    ctx.out.bulk(m);
                    ctx.out.double(*score);
                    ctx.propagate(&[if max { &b"ZPOPMAX"[..] } else { b"ZPOPMIN" }, key]);
                    return;
                }
            }
            Ok(_) => {}
        }
    }
    nothing(ctx, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{self, Rng};
    use crate::keyspace::Keyspace;
    use crate::protocol::reply::Reply;

    fn run(ks: &mut Keyspace, line: &str) -> (String, bool) {
        let parts: Vec<&str> = line.split(' ').collect();
        let owned = OwnedArgs::from_slices(&parts);
        let args = owned.args();
        let (_, def) = cmd::lookup(args.get(0)).expect("known command");
        let mut buf = Vec::new();
        let mut rng = Rng::new(1);
        let mut ctx = Ctx::new(ks, 0, 1_000, Reply::new(&mut buf, false), &mut rng);
        cmd::exec(def, &mut ctx, &args);
        let blocked = std::mem::take(&mut ks.would_block);
        (String::from_utf8_lossy(&buf).into_owned(), blocked)
    }

    #[test]
    fn serve_or_ask_to_block() {
        let mut ks = Keyspace::new();
        assert_eq!(run(&mut ks, "BLPOP a b 0"), ("*-1\r\n".into(), true));
        run(&mut ks, "RPUSH b x y");
        assert_eq!(run(&mut ks, "BLPOP a b 0"), ("*2\r\n$1\r\nb\r\n$1\r\nx\r\n".into(), false));
        assert_eq!(run(&mut ks, "BRPOPLPUSH b c 0.5"), ("$1\r\ny\r\n".into(), false));
        assert_eq!(run(&mut ks, "BLMOVE b c LEFT LEFT 0"), ("$-1\r\n".into(), true));
        assert_eq!(run(&mut ks, "BLMPOP 0 2 b c LEFT COUNT 5"), ("*2\r\n$1\r\nc\r\n*1\r\n$1\r\ny\r\n".into(), false));
        run(&mut ks, "ZADD z 1 m 2 n");
        assert_eq!(run(&mut ks, "BZPOPMAX q z 0"), ("*3\r\n$1\r\nz\r\n$1\r\nn\r\n$1\r\n2\r\n".into(), false));
        assert_eq!(run(&mut ks, "BZMPOP 1 1 q MIN"), ("*-1\r\n".into(), true));
    }

    #[test]
    fn timeouts_parse_like_redis() {
        let mut ks = Keyspace::new();
        assert_eq!(run(&mut ks, "BLPOP a x").0, "-ERR timeout is not a float or out of range\r\n");
        assert_eq!(run(&mut ks, "BLPOP a -1").0, "-ERR timeout is negative\r\n");
        run(&mut ks, "SET s v");
        assert_eq!(run(&mut ks, "BLPOP s 0").0, format!("-{}\r\n", crate::keyspace::WrongType::MSG));
        let owned = OwnedArgs::from_slices(&["BLPOP", "a", "0.0001"]);
        assert_eq!(POP.timeout_ms(&owned.args()), Ok(1));
    }
}

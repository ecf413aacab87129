//! String commands: GET, SET and the rest of Redis's string family.

use super::flags::*;
use super::table::{CommandDef, Handler};
use super::{err, Args, Ctx};
use crate::keyspace::{Value, KEEP_TTL};
use crate::util::parse_i64;

const fn c(name: &'static str, arity: i32, flags: u32, keys: (i32, i32, i32), h: Handler) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Some(h))
}

pub static COMMANDS: &[CommandDef] = &[
    c("get", 2, READONLY | FAST, (1, 1, 1), get),
    c("set", -3, WRITE, (1, 1, 1), set),
    c("mget", -2, READONLY | FAST, (1, -1, 1), mget),
    c("mset", -3, WRITE, (1, -1, 2), mset),
];

/// The string value at `key`, `Ok(None)` if absent, `Err` after replying
/// WRONGTYPE. Integers are formatted into `buf`.
pub fn read_string<'b>(
    ctx: &'b mut Ctx,
    key: &[u8],
    buf: &'b mut [u8; 24],
) -> Result<Option<&'b [u8]>, ()> {
    let now = ctx.now;
    match ctx.ks.lookup(ctx.db, key, now) {
        None => Ok(None),
        Some(e) => match e.value.str_bytes(buf) {
            Some(s) => Ok(Some(s)),
            None => Err(()),
        },
    }
}

/// GET key
fn get(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let mut buf = [0u8; 24];
    match ctx.ks.lookup(ctx.db, &args[1], now) {
        None => ctx.out.null(),
        Some(e) => match e.value.str_bytes(&mut buf) {
            Some(s) => ctx.out.bulk(s),
            None => ctx.out.error(err::WRONGTYPE),
        },
    }
}

/// Options of SET, parsed before anything is touched.
#[derive(Default)]
pub struct SetOpts {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub keepttl: bool,
    /// Absolute expiry in ms, 0 = none.
    pub expire_at: i64,
}

/// Parse `[NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms|KEEPTTL]` from `from`.
/// `cmd` names the command in the invalid-expire error.
pub fn parse_set_opts(args: &Args, from: usize, now: i64, cmd: &str) -> Result<SetOpts, String> {
    let mut o = SetOpts::default();
    let mut have_expire = false;
    let mut i = from;
    while i < args.len() {
        let a = &args[i];
        let next = if i + 1 < args.len() { Some(&args[i + 1]) } else { None };
        if a.eq_ignore_ascii_case(b"NX") && !o.xx {
            o.nx = true;
        } else if a.eq_ignore_ascii_case(b"XX") && !o.nx {
            o.xx = true;
        } else if a.eq_ignore_ascii_case(b"GET") {
            o.get = true;
        } else if a.eq_ignore_ascii_case(b"KEEPTTL") && !have_expire {
            o.keepttl = true;
            have_expire = true;
        } else if !have_expire
            && next.is_some()
            && (a.eq_ignore_ascii_case(b"EX")
                || a.eq_ignore_ascii_case(b"PX")
                || a.eq_ignore_ascii_case(b"EXAT")
                || a.eq_ignore_ascii_case(b"PXAT"))
        {
            let v = parse_i64(next.unwrap_or_default()).ok_or_else(|| err::NOT_INT.to_string())?;
            let invalid = || format!("ERR invalid expire time in '{}' command", cmd);
            if v <= 0 {
                return Err(invalid());
            }
            let upper = a.to_ascii_uppercase();
            o.expire_at = match upper.as_slice() {
                b"EX" => v.checked_mul(1000).and_then(|ms| ms.checked_add(now)).ok_or_else(invalid)?,
                b"PX" => v.checked_add(now).ok_or_else(invalid)?,
                b"EXAT" => v.checked_mul(1000).ok_or_else(invalid)?,
                _ => v,
            };
            have_expire = true;
            i += 1;
        } else {
            return Err(err::SYNTAX.to_string());
        }
        i += 1;
    }
    Ok(o)
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]
fn set(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let opts = match parse_set_opts(args, 3, now, "set") {
        Ok(o) => o,
        Err(e) => return ctx.out.error(&e),
    };
    let key = &args[1];
    let db = ctx.db;
    let existing = ctx.ks.lookup(db, key, now);
    let exists = existing.is_some();
    if opts.get {
        let mut buf = [0u8; 24];
        match existing {
            None => ctx.out.null(),
            Some(e) => match e.value.str_bytes(&mut buf) {
                Some(s) => ctx.out.bulk(s),
                None => return ctx.out.error(err::WRONGTYPE),
            },
        }
    }
    if (opts.nx && exists) || (opts.xx && !exists) {
        if !opts.get {
            ctx.out.null();
        }
        return;
    }
    if opts.expire_at != 0 && opts.expire_at <= now {
        // An absolute time in the past: the key is gone at once (Redis
        // deletes it rather than storing an already-expired value).
        ctx.ks.delete(db, key, now);
    } else {
        let expire = if opts.keepttl { KEEP_TTL } else { opts.expire_at };
        ctx.ks.set(db, key, Value::from_bytes(&args[2]), expire);
    }
    if !opts.get {
        ctx.out.ok();
    }
}

/// MGET key [key ...]
fn mget(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    ctx.out.array(args.len() - 1);
    let mut buf = [0u8; 24];
    for i in 1..args.len() {
        match ctx.ks.lookup(ctx.db, &args[i], now) {
            Some(e) => match e.value.str_bytes(&mut buf) {
                Some(s) => ctx.out.bulk(s),
                None => ctx.out.null(),
            },
            None => ctx.out.null(),
        }
    }
}

/// MSET key value [key value ...]
fn mset(ctx: &mut Ctx, args: &Args) {
    if args.len() % 2 == 0 {
        return super::arity_error(&mut ctx.out, "mset");
    }
    for i in (1..args.len()).step_by(2) {
        ctx.ks.set(ctx.db, &args[i], Value::from_bytes(&args[i + 1]), 0);
    }
    ctx.out.ok();
}

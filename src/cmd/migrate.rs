//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password] [AUTH2 username password] [KEYS key ...], as Redis 7.0:
//! the keys' DUMP payloads are sent to the target as RESTORE commands
//! (after AUTH and SELECT), and deleted here once the target acknowledged
//! each one, unless COPY.
//!
//! A client's MIGRATE whose keys live on its connection's shard runs in
//! two steps around the network: the handler serialises the keys (a
//! `Job`) and the shard parks the client (as WAIT does) while a helper
//! thread talks to the target (`exchange`); its outcome comes back as a
//! message, and the same command runs again to finish: delete what the
//! target took (unless COPY) and answer. Other clients of the shard are
//! served meanwhile, and may change the keys in between (Redis holds its
//! whole server instead). Keys on another shard or on several take the
//! same two steps, each a cross-shard transaction (`shard::netio`): the
//! shards are locked while the keys are serialised and while the taken
//! ones are deleted, not across the network.
//!
//! Inside MULTI/EXEC or a script it is synchronous, as in Redis: the
//! commands around it must see its deletions at once and nothing else in
//! between, and a script's `redis.call` must return its reply, while the
//! shards' cores cannot wait on another thread without stopping (a
//! core's loop is the only thing that answers its messages). So there it
//! holds its shard (or its transaction's shards) for up to `timeout` per
//! network step (connect, write, read), as Redis holds its whole server.
//! It is never logged as itself (its deletions are logged as DEL) so that
//! AOF replay and replicas never reach the network.
//!
//! Sockets to targets are cached as Redis caches them: one per host:port,
//! reused by the next MIGRATE there, closed after 10 s idle (at most 64).

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler};
use super::{err, Args, Ctx};
use crate::protocol::client::{encode_command, read_value, Value};
use crate::util::parse_i64;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

pub static COMMANDS: &[CommandDef] = &[CommandDef::new(
    "migrate",
    -6,
    WRITE | MOVABLE_KEYS | NETWORK_IO,
    &[at(3, RW | ACCESS | DELETE), kw("KEYS", -2, RW | ACCESS | DELETE | INCOMPLETE).range(-1, 1, 0)],
    Handler::Keyspace(migrate),
)
.keys_fn(migrate_keys)
.acl(acl::KEYSPACE | acl::DANGEROUS)
.group(Group::Generic)
.since("2.6.0")
.tips(&["nondeterministic_output"])];

/// MIGRATE's keys as Redis finds them: the key argument, or with KEYS
/// (outside AUTH's and AUTH2's values) the names after it, and none when
/// KEYS comes with a non-empty key argument.
fn migrate_keys(args: &Args) -> Vec<KeyRef> {
    let flags = RW | ACCESS | DELETE;
    let mut i = 6;
    while i < args.len() {
        if args.is(i, "keys") {
            if !args[3].is_empty() {
                return Vec::new();
            }
            return (i + 1..args.len()).map(|pos| KeyRef { pos, flags }).collect();
        }
        if args.is(i, "auth") {
            i += 1;
        } else if args.is(i, "auth2") {
            i += 2;
        }
        i += 1;
    }
    if args.len() > 3 {
        vec![KeyRef { pos: 3, flags }]
    } else {
        Vec::new()
    }
}

struct Opts<'a> {
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    keys: Vec<&'a [u8]>,
}

fn parse<'a>(args: &'a Args) -> Result<Opts<'a>, &'static str> {
    let mut o = Opts { copy: false, replace: false, auth: None, keys: Vec::new() };
    let mut i = 6;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args.is(i, "copy") {
            o.copy = true;
        } else if args.is(i, "replace") {
            o.replace = true;
        } else if args.is(i, "auth") {
            if more < 1 {
                return Err(err::SYNTAX);
            }
            o.auth = Some((None, &args[i + 1]));
            i += 1;
        } else if args.is(i, "auth2") {
            if more < 2 {
                return Err(err::SYNTAX);
            }
            o.auth = Some((Some(&args[i + 1]), &args[i + 2]));
            i += 2;
        } else if args.is(i, "keys") {
            if !args[3].is_empty() {
                return Err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
            }
            o.keys = (i + 1..args.len()).map(|j| &args[j]).collect();
            break;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if o.keys.is_empty() {
        o.keys.push(&args[3]);
    }
    Ok(o)
}

/// An I/O step that failed, as Redis words it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fail {
    Connect,
    Write,
    Read,
}

impl Fail {
    fn msg(&self) -> &'static str {
        match self {
            Fail::Connect => "IOERR error or timeout connecting to the client",
            Fail::Write => "IOERR error or timeout writing to target instance",
            Fail::Read => "IOERR error or timeout reading to target instance",
        }
    }
}

/// What the network step needs: everything serialised on the shard.
pub struct Job {
    host: Vec<u8>,
    port: Vec<u8>,
    timeout: Duration,
    /// AUTH (encoded), if given: sent every time, as Redis does.
    auth: Vec<u8>,
    db: i64,
    /// The RESTORE commands, one per key in `keys`.
    restores: Vec<u8>,
    keys: Vec<Vec<u8>>,
    copy: bool,
}

/// The target's replies: to AUTH and SELECT (those sent), then to each
/// RESTORE; or the step that failed.
pub struct Outcome {
    head: Vec<Value>,
    restores: Vec<Value>,
}

pub type Result2 = Result<Outcome, Fail>;

/// Cached sockets by "host:port": the socket, the db it last selected,
/// when it was last used.
struct Cached {
    sock: TcpStream,
    db: i64,
    used: Instant,
}

const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 64;
static CACHE: Mutex<Option<HashMap<Vec<u8>, Cached>>> = Mutex::new(None);
static SWEEPER: Once = Once::new();

fn cache_key(job: &Job) -> Vec<u8> {
    let mut k = job.host.clone();
    k.push(b':');
    k.extend_from_slice(&job.port);
    k
}

fn cache_take(key: &[u8]) -> Option<Cached> {
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    c.as_mut()?.remove(key)
}

fn cache_put(key: Vec<u8>, entry: Cached) {
    SWEEPER.call_once(|| {
        // Closes sockets idle for 10 s (Redis's cron does this).
        let _ = std::thread::Builder::new().name("migrate-cache".into()).spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = c.as_mut() {
                m.retain(|_, e| e.used.elapsed() < CACHE_TTL);
            }
        });
    });
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let m = c.get_or_insert_with(HashMap::new);
    if m.len() >= CACHE_MAX {
        if let Some(oldest) = m.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) {
            m.remove(&oldest);
        }
    }
    m.insert(key, entry);
}

/// Cached sockets (tests and INFO-like checks).
pub fn cached_sockets() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |m| m.len())
}

fn connect(host: &[u8], port: &[u8], timeout: Duration) -> Result<TcpStream, Fail> {
    let host = std::str::from_utf8(host).map_err(|_| Fail::Connect)?;
    let port: u16 = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok()).ok_or(Fail::Connect)?;
    let addr = (host, port).to_socket_addrs().map_err(|_| Fail::Connect)?.next().ok_or(Fail::Connect)?;
    // Redis connects without blocking and learns of a refused or slow
    // connection only when it writes: those are write errors.
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|_| Fail::Write)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// The network step (blocking: a helper thread's, or the synchronous
/// road's). A cached socket that fails is dropped and the step tried
/// once more on a new one, unless it timed out, as Redis retries.
pub fn exchange(job: &Job) -> Result2 {
    let key = cache_key(job);
    let cached = cache_take(&key);
    let retry = cached.is_some();
    match exchange_on(job, cached) {
        Ok((out, entry)) => {
            cache_put(key, entry);
            Ok(out)
        }
        Err((_, timed_out)) if retry && !timed_out => match exchange_on(job, None) {
            Ok((out, entry)) => {
                cache_put(cache_key(job), entry);
                Ok(out)
            }
            Err((f, _)) => Err(f),
        },
        Err((f, _)) => Err(f),
    }
}

fn exchange_on(job: &Job, cached: Option<Cached>) -> Result<(Outcome, Cached), (Fail, bool)> {
    let (sock, last_db) = match cached {
        Some(c) => (c.sock, Some(c.db)),
        None => (connect(&job.host, &job.port, job.timeout).map_err(|f| (f, false))?, None),
    };
    let io = |f: Fail| {
        move |e: std::io::Error| (f, matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    };
    sock.set_read_timeout(Some(job.timeout)).map_err(io(Fail::Connect))?;
    sock.set_write_timeout(Some(job.timeout)).map_err(io(Fail::Connect))?;
    let mut wire = job.auth.clone();
    // A cached socket already in the db selects nothing (as Redis).
    let select = last_db != Some(job.db);
    if select {
        wire.extend(encode_command(&[b"SELECT".to_vec(), job.db.to_string().into_bytes()]));
    }
    wire.extend_from_slice(&job.restores);
    (&sock).write_all(&wire).map_err(io(Fail::Write))?;
    let mut r = BufReader::new(&sock);
    let nhead = usize::from(!job.auth.is_empty()) + usize::from(select);
    let mut read = |n: usize| -> Result<Vec<Value>, (Fail, bool)> {
        (0..n).map(|_| read_value(&mut r).map_err(io(Fail::Read))).collect()
    };
    let head = read(nhead)?;
    let restores = read(job.keys.len())?;
    drop(r);
    // After a refused AUTH or SELECT the db is not known to be selected.
    let db = if head.iter().any(|v| matches!(v, Value::Error(_))) { -1 } else { job.db };
    Ok((Outcome { head, restores }, Cached { sock, db, used: Instant::now() }))
}

/// Parse and serialise: the job, or None once the reply (an error, or
/// NOKEY) is written.
fn prepare(ctx: &mut Ctx, args: &Args) -> Option<Job> {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            ctx.error(e);
            return None;
        }
    };
    let Some(timeout) = parse_i64(&args[5]) else {
        ctx.error(err::NOT_INT);
        return None;
    };
    let Some(db) = parse_i64(&args[4]).filter(|d| i32::try_from(*d).is_ok()) else {
        ctx.error(err::NOT_INT);
        return None;
    };
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // The keys that exist, their payloads and remaining time to live.
    let now = ctx.now;
    let mut keys = Vec::new();
    let mut restores = Vec::new();
    for &k in &o.keys {
        if let Some(e) = ctx.ks.lookup(ctx.db, k, now) {
            let ttl = if e.expire() == 0 { 0 } else { (e.expire() - now).max(1) }.to_string();
            let payload = super::dump::serialize(&e.value);
            let mut cmd: Vec<&[u8]> = vec![b"RESTORE", k, ttl.as_bytes(), &payload];
            if o.replace {
                cmd.push(b"REPLACE");
            }
            restores.extend(encode_command(&cmd));
            keys.push(k.to_vec());
        }
    }
    if keys.is_empty() {
        ctx.propagate_nothing();
        ctx.out.simple("NOKEY");
        return None;
    }
    let auth = match o.auth {
        Some((None, pw)) => encode_command(&[&b"AUTH"[..], pw]),
        Some((Some(user), pw)) => encode_command(&[&b"AUTH"[..], user, pw]),
        None => Vec::new(),
    };
    Some(Job { host: args[1].to_vec(), port: args[2].to_vec(), timeout, auth, db, restores, keys, copy: o.copy })
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password] [AUTH2 username password] [KEYS key ...]
fn migrate(ctx: &mut Ctx, args: &Args) {
    // The second run of an offloaded MIGRATE: the target answered.
    if let Some((job, outcome)) = ctx.ks.io_done.take() {
        return finish(ctx, &job, outcome);
    }
    let Some(job) = prepare(ctx, args) else { return };
    if ctx.ks.offload_io {
        // The shard parks the client and hands the job to a helper thread.
        ctx.propagate_nothing();
        ctx.ks.io_job = Some(job);
        return;
    }
    let outcome = exchange(&job);
    finish(ctx, &job, outcome);
}

/// The keys the target took and MIGRATE deletes (none with COPY, or
/// when AUTH or SELECT failed): what `finish` deletes.
pub fn taken_keys(job: &Job, outcome: &Result2) -> Vec<Vec<u8>> {
    let Ok(out) = outcome else { return Vec::new() };
    if job.copy || out.head.iter().any(|v| matches!(v, Value::Error(_))) {
        return Vec::new();
    }
    job.keys.iter().zip(&out.restores).filter(|(_, v)| !matches!(v, Value::Error(_))).map(|(k, _)| k.clone()).collect()
}

/// Delete what the target took (unless COPY) and answer.
pub fn finish(ctx: &mut Ctx, job: &Job, outcome: Result2) {
    let out = match outcome {
        Ok(o) => o,
        Err(f) => {
            ctx.propagate_nothing();
            return ctx.error(f.msg());
        }
    };
    for v in &out.head {
        if let Value::Error(e) = v {
            ctx.propagate_nothing();
            return ctx.error(&format!("ERR Target instance replied with error: {e}"));
        }
    }
    // Each key the target took goes (unless COPY); the first refusal is the reply.
    let (db, now) = (ctx.db, ctx.now);
    let mut error = None;
    let mut deleted: Vec<&[u8]> = vec![b"DEL"];
    for (k, v) in job.keys.iter().zip(&out.restores) {
        match v {
            Value::Error(e) => {
                error.get_or_insert_with(|| format!("ERR Target instance replied with error: {e}"));
            }
            _ if !job.copy && ctx.ks.delete(db, k, now) => {
                deleted.push(k);
                ctx.notify(crate::keyspace::notify::GENERIC, "del", k);
            }
            _ => {}
        }
    }
    if deleted.len() > 1 {
        ctx.propagate(&deleted);
    } else {
        ctx.propagate_nothing();
    }
    match error {
        Some(e) => ctx.error(&e),
        None => ctx.out.ok(),
    }
}

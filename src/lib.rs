//! shardis: a Redis-compatible key-value server, one shard per core.
//!
//! # Layout
//! - `config`: options, defaults, TOML and CLI (pure).
//! - `acl`: ACL users, their rules, the permission check and ACL LOG
//!   (pure); the shared user table every shard takes a snapshot of.
//! - `protocol`: the wire protocol. `parse` and `reply`: RESP request
//!   parsing and reply encoding for the server (pure); `client`: a blocking
//!   RESP2/RESP3 client and reply parser for the tests, the load generator
//!   and the monitor (never used by the server).
//! - `net`: the reactor, the only socket code: one io_uring per shard
//!   thread, the listener and accept backoff, provided buffers, how long a
//!   turn may wait, and the submissions a shard core asks for.
//! - `shard`: what a shard does apart from I/O. `shard::core` owns the
//!   keyspace, sessions and their buffers and asks the reactor for I/O;
//!   `dispatch` takes a parsed request through lookup, arity, auth and
//!   MULTI queueing; `router` (the slot map) decides where it runs;
//!   `fanout` merges replies of every shard; `txn` runs atomic cross-shard
//!   transactions; `blocking`, `pubsub`, `aof` (the shard's side of its
//!   AOF), slowlog and latency figures, shutdown.
//! - `cmd`: the commands. `cmd::call` is the one execution path every road
//!   uses (the road's gates from `cmd::admission`, the handler, the
//!   caller's stats); `cmd::table` the command table (one row per command
//!   and per subcommand: arity, `cmd::flags` (Redis's flags, ACL
//!   categories, shardis's routing flags), `cmd::keyspec` key specs, the
//!   handler); one file per command family (`cmd::string` has GET/SET/INCR,
//!   `cmd::bitmap` SETBIT/BITCOUNT/BITFIELD, `cmd::keys` DEL/EXPIRE/SCAN,
//!   `cmd::list`, `hash`, `set`, `zset`, `stream`, `geo`, `hll`, `sort`,
//!   `dump`, `cmd::blocking` the blocking pops), which run against a
//!   `Keyspace` and never touch a socket; `cmd::server::*` the server and
//!   connection commands (INFO, CONFIG, CLIENT, COMMAND, SLOWLOG, LATENCY,
//!   DEBUG, MULTI/EXEC, pub/sub, the keyspace-wide ones).
//! - `keyspace`: the per-shard databases, values, expiry, eviction, WATCH
//!   bookkeeping, the effects a command logs (pure);
//!   `Keyspace::get_typed::<T>()` is the one typed key lookup (`WrongType`
//!   on another type).
//! - `persist`: the per-shard append-only file: record format, writer
//!   state (no I/O), loading, rewrite, MANIFEST, check-aof, and the log
//!   reader replication streams from.
//! - `rdb`: Redis's RDB serialisation (pure): DUMP/RESTORE payloads and
//!   `dump.rdb` files (`import-rdb`), with LZF, CRC-64 and listpacks.
//! - `repl`: replication: the master's listener and per-shard streaming
//!   threads, the replica's per-master-shard links, the wire format.
//! - `monitor`: shardis-monitor, the Sentinel-compatible failover process.
//!   `monitor::election` is where a failover is decided (a pure state
//!   machine); `monitor::driver` its only socket code.
//! - `script`: Lua scripting (EVAL, EVALSHA): one sandboxed Lua 5.1
//!   interpreter per shard (`script::sandbox`), Lua<->RESP conversions
//!   (`script::convert`), the script cache shared by the shards;
//!   `redis.call` runs commands through `cmd::call`.
//! - `acl`: ACL users and rules, the permission check, ACL LOG, the
//!   aclfile format (pure; the shard's side is `shard::acl`).
//! - `geo`: geohash math for the GEO commands (pure).
//! - `security`: protected mode, who may run DEBUG, password comparison (pure).
//! - `util`: `util::num` reads numbers from strings as Redis's several
//!   readers do (string2ll, getDoubleFromObject, strtod, ...);
//!   `util::longdouble` is INCRBYFLOAT's x87 arithmetic; plus double
//!   formatting, glob matching, hash slots, clocks.
//! - `crash`: a panic anywhere logs a crash report and takes the process down.

pub mod acl;
pub mod cmd;
pub mod config;
pub mod crash;
pub mod geo;
pub mod keyspace;
pub mod lazyfree;
pub mod monitor;
pub mod net;
pub mod persist;
pub mod protocol;
pub mod rdb;
pub mod repl;
pub mod script;
pub mod security;
pub mod shard;
pub mod util;

use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

static LOGFILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
/// The log's descriptor, for a signal handler (which may not lock).
static LOG_FD: AtomicI32 = AtomicI32::new(2);

/// Descriptor log lines go to (the log file, or standard error).
pub fn log_fd() -> i32 {
    LOG_FD.load(Ordering::Relaxed)
}

/// Use `path` for log lines instead of standard error (empty = stderr).
pub fn set_logfile(path: &str) {
    if path.is_empty() {
        return;
    }
    match std::fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => {
            LOG_FD.store(std::os::fd::AsRawFd::as_raw_fd(&f), Ordering::Relaxed);
            if let Ok(mut g) = LOGFILE.lock() {
                *g = Some(f);
            }
        }
        Err(e) => eprintln!("cannot open logfile {}: {}; logging to stderr", path, e),
    }
}

/// One log line with a timestamp: start, stop, and events that matter.
pub fn log(msg: &str) {
    let line = format!("{} {}\n", util::fmt_utc_ms(util::now_ms()), msg);
    if let Ok(mut g) = LOGFILE.lock() {
        if let Some(f) = g.as_mut() {
            let _ = f.write_all(line.as_bytes());
            return;
        }
    }
    let _ = std::io::stderr().write_all(line.as_bytes());
}

//! shardis: a Redis-compatible key-value server, one shard per core.
//!
//! # Layout
//! - `config`: options, defaults, TOML and CLI (pure).
//! - `protocol`: the wire protocol. `parse` and `reply`: RESP request
//!   parsing and reply encoding for the server (pure); `client`: a blocking
//!   RESP2/RESP3 client and reply parser for the tests, the load generator
//!   and the monitor (never used by the server).
//! - `cmd`: the command table (`cmd::table`), admission gates
//!   (`cmd::admission`) and one file per command family (`cmd::string` has
//!   GET/SET/INCR, `cmd::bitmap` SETBIT/BITCOUNT/BITFIELD, `cmd::keys`
//!   DEL/EXPIRE/SCAN, `cmd::list`, `hash`, `set`, `zset`, `stream`, `geo`,
//!   `hll`, `sort`, `dump`, and `cmd::blocking` the blocking pops);
//!   commands run against a `Keyspace` and never touch a socket.
//! - `keyspace`: the per-shard databases, values, expiry, eviction, WATCH
//!   bookkeeping (pure); `Keyspace::get_typed::<T>()` is the one typed key
//!   lookup (`WrongType` on another type).
//! - `persist`: the per-shard append-only file: record format, writer
//!   state (no I/O), loading, rewrite, MANIFEST, check-aof.
//! - `shard`: the per-core event loop on io_uring, connections, routing
//!   between shards, cross-shard transactions, blocking, pub/sub, server
//!   commands.
//! - `geo`: geohash math for the GEO commands (pure).
//! - `security`: protected mode, who may run DEBUG, password comparison (pure).
//! - `util`: `util::num` reads numbers from strings as Redis's several
//!   readers do (string2ll, getDoubleFromObject, strtod, ...);
//!   `util::longdouble` is INCRBYFLOAT's x87 arithmetic; plus double
//!   formatting, glob matching, hash slots, clocks.
//! - `crash`: a panic anywhere logs a crash report and takes the process down.

pub mod cmd;
pub mod config;
pub mod crash;
pub mod geo;
pub mod keyspace;
pub mod persist;
pub mod protocol;
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

//! shardis: a Redis-compatible key-value server, one shard per core.
//!
//! # Layout
//! - `config`: options, defaults, TOML and CLI (pure).
//! - `protocol::{parse, reply}`: RESP request parsing and reply encoding (pure).
//! - `cmd`: the commands. `cmd::table` is the command table (one row per
//!   command and per subcommand: arity, `cmd::flags` (Redis's flags, ACL
//!   categories, shardis's routing flags), `cmd::keyspec` key specs, the
//!   handler); one file per command family (`cmd::string` has GET/SET,
//!   `cmd::keys` has DEL/EXPIRE/OBJECT, ...), whose commands run against a
//!   `Keyspace` and never touch a socket; `cmd::server::*` the server and
//!   connection commands (INFO, CONFIG, CLIENT, COMMAND, SLOWLOG, LATENCY,
//!   DEBUG, MULTI/EXEC, pub/sub, the keyspace-wide ones); `cmd::blocking`
//!   the blocking pops; `cmd::admission` the gates a command passes first.
//! - `keyspace`: the per-shard databases, values, expiry, eviction, WATCH
//!   bookkeeping, the effects a command logs (pure).
//! - `shard`: the per-core event loop on io_uring and its connections
//!   (`event_loop`, `accept`, `obuf`), what a request does (`dispatch`),
//!   fan-outs over every shard (`fanout`), cross-shard transactions (`txn`),
//!   blocked clients (`blocking`), pub/sub delivery (`pubsub`), the AOF
//!   from the shard's side (`aof`), slowlog and latency figures, shutdown.
//! - `persist`: the per-shard AOF: record format, writer state (no I/O),
//!   recovery, rewrite, `check-aof`.
//! - `geo`: geohash math for the GEO commands (pure).
//! - `security`: protected mode, who may run DEBUG, password comparison (pure).
//! - `util`: number parsing, glob matching, hash slots.
//! - `crash`: a panic anywhere logs a crash report and takes the process down.

pub mod cmd;
pub mod config;
pub mod crash;
pub mod geo;
pub mod keyspace;
pub mod net;
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

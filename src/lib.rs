//! shardis: a Redis-compatible key-value server, one shard per core.
//!
//! # Layout
//! - `config`: options, defaults, TOML and CLI (pure).
//! - `protocol::{parse, reply}`: RESP request parsing and reply encoding (pure).
//! - `cmd`: the command table (`cmd::table`) and one file per command family
//!   (`cmd::string` has GET/SET, `cmd::keys` has DEL/EXPIRE/SCAN, ...);
//!   commands run against a `Keyspace` and never touch a socket.
//! - `keyspace`: the per-shard databases, values, expiry, WATCH bookkeeping (pure).
//! - `shard`: the per-core event loop on io_uring, connections, routing
//!   between shards, cross-shard transactions, pub/sub.
//! - `util`: number parsing, glob matching, hash slots.

pub mod cmd;
pub mod keyspace;
pub mod protocol;
pub mod util;

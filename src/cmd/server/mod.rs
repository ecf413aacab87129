//! Server and connection commands: the rows and handlers of everything
//! that is not a keyspace family, one file per concern. Their handlers
//! take the shard and the connection (`Handler::Server`), only the session
//! (`Handler::Session`: PING, SELECT, ...), or plan a fan-out over every
//! shard (`Handler::EveryShard`: DBSIZE, KEYS, FLUSHALL, ...).
//!
//! - `conn`: PING, ECHO, SELECT, TIME, QUIT, RESET, AUTH, HELLO.
//! - `acl`: the ACL container (users, rules, LOG, DRYRUN).
//! - `multi`: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//! - `pubsub`: SUBSCRIBE and friends, PUBLISH, PUBSUB.
//! - `keyspace`: the keyspace-wide commands (DBSIZE, KEYS, SCAN, ...).
//! - `info`: INFO and the per-shard figures it merges.
//! - `config`, `client`, `command`, `slowlog`, `latency`, `debug`, `lolwut`.
//! - `persist`: BGSAVE, BGREWRITEAOF, SAVE, LASTSAVE, SHUTDOWN.
//! - `script`: SCRIPT LOAD, EXISTS, FLUSH (the shared script cache).
//! - `repl`: REPLICAOF/SLAVEOF, ROLE, REPLCONF, REPLPOS.
//!
//! They are `impl Shard` blocks for now: the shard owns the state they
//! read (connections, config, stats), and runs them on the connection's
//! shard (`crate::shard::dispatch::server_command`).

pub mod acl;
pub mod client;
pub mod command;
pub mod config;
pub mod conn;
pub mod debug;
pub mod debug_keys;
pub mod function;
pub mod info;
pub mod keyspace;
pub mod latency;
pub mod lolwut;
pub mod memory;
pub mod multi;
pub mod persist;
pub mod pubsub;
pub mod repl;
pub mod script;
pub mod slowlog;

use super::flags::Flags;
use super::table::{CommandDef, Handler, ServerFn, SessionFn};

/// The Redis version shardis answers as (INFO, HELLO).
pub const REDIS_VERSION: &str = "7.0.15";

/// Every server command's rows, concern by concern.
pub const FAMILIES: &[&[CommandDef]] = &[
    conn::COMMANDS,
    acl::COMMANDS,
    multi::COMMANDS,
    pubsub::COMMANDS,
    keyspace::COMMANDS,
    info::COMMANDS,
    config::COMMANDS,
    client::COMMANDS,
    command::COMMANDS,
    slowlog::COMMANDS,
    latency::COMMANDS,
    debug::COMMANDS,
    lolwut::COMMANDS,
    persist::COMMANDS,
    script::COMMANDS,
    function::COMMANDS,
    repl::COMMANDS,
];

/// A row run with the shard and the connection.
const fn server(name: &'static str, arity: i32, flags: Flags, f: ServerFn) -> CommandDef {
    CommandDef::new(name, arity, flags, &[], Handler::Server(f))
}

/// A row that needs only the session.
const fn session(name: &'static str, arity: i32, flags: Flags, f: SessionFn) -> CommandDef {
    CommandDef::new(name, arity, flags, &[], Handler::Session(f))
}

//! shardis-monitor: watches masters and their replicas, and fails over by
//! epoch-numbered elections, speaking Redis Sentinel's protocol.
//!
//! - `election`: detection, votes, elections and promotions as a pure state
//!   machine (`step`/`tick` -> actions). *Where a failover is decided.*
//! - `info`: reads a server's INFO reply into what the election needs (pure).
//! - `api`: the Sentinel commands on the monitor's port, over the
//!   election's state (pure).
//! - `config`: `config/monitor.toml` and the flags (pure).
//! - `conn`: per-connection commands (HELLO, CLIENT, PING) and RESP3 (pure).
//! - `state_file`: the durable state (epoch, votes), fsync + rename.
//! - `driver`: the only socket code: probes, hellos, votes to peers, the
//!   listener; it drives the election and carries out its actions.

pub mod api;
pub mod config;
pub mod conn;
pub mod driver;
pub mod election;
pub mod info;
pub mod state_file;

//! Helpers shared by the integration tests (compiled into each test crate,
//! so not every crate uses every item).
#![allow(dead_code, unused_imports)]

pub mod dumpdata;
pub mod monitor;
pub mod procfs;
pub mod repl;
pub mod resp;
pub mod server;
pub mod shards;

pub use resp::{encode_command, fmt_command, RespConn, Value};
pub use server::{free_port, Kind, Server};

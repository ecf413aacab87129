//! The Redis wire protocol: request parsing and reply encoding for the
//! server (`parse`, `reply`: pure, no I/O), and the client side (`client`:
//! a blocking connection and reply parser for tests, the load generator
//! and the monitor).
pub mod client;
pub mod parse;
pub mod reply;

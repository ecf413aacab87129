//! The Redis wire protocol: request parsing and reply encoding (pure, no I/O).
pub mod parse;
pub mod reply;

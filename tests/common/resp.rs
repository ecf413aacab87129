//! The blocking RESP2/RESP3 client the integration tests use. It lives in
//! `shardis::protocol::client` (shared with the load generator and the
//! monitor); re-exported here under the names the tests use. Its reply
//! parser shares no code with the server's request parser, so a bug there
//! cannot hide itself.

pub use shardis::protocol::client::{
    encode_command, escape, fmt_command, latin1_bytes, read_value, RespConn, Value, READ_TIMEOUT,
};

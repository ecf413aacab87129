//! shardis-monitor: watches masters and their replicas, and fails over by
//! epoch-numbered elections, speaking Redis Sentinel's protocol.
//!
//! - `election`: detection, votes, elections and promotions as a pure state
//!   machine (`step`/`tick` -> actions). *Where a failover is decided.*
//! - `info`: reads a server's INFO reply into what the election needs (pure).

pub mod election;
pub mod info;

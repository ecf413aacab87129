//! Command flags: Redis 7.0's (what `COMMAND INFO` reports and what the
//! admission gates, MULTI and, later, replication and cluster mode decide
//! from), then shardis's own, for decisions Redis makes by comparing
//! command procedures or that exist only because the keyspace is sharded.
//!
//! ACL categories live in `acl` below; key-spec flags in `cmd::keyspec`.

/// A row's flags.
pub type Flags = u64;

// ---- Redis's command flags (src/commands/*.json `command_flags`) ----

/// May modify the keyspace.
pub const WRITE: Flags = 1 << 0;
/// Only reads the keyspace.
pub const READONLY: Flags = 1 << 1;
/// May grow memory: refused with -OOM when over maxmemory after eviction.
pub const DENYOOM: Flags = 1 << 2;
/// An administrative command (also puts it in @admin and @dangerous).
pub const ADMIN: Flags = 1 << 3;
/// A pub/sub command (PUBLISH, SUBSCRIBE, PUBSUB ...).
pub const PUBSUB: Flags = 1 << 4;
/// Not allowed from scripts.
pub const NOSCRIPT: Flags = 1 << 5;
/// May block the client (BLPOP, XREAD BLOCK ...): see `CommandDef::block`.
pub const BLOCKING: Flags = 1 << 6;
/// Allowed while the dataset is loading.
pub const LOADING: Flags = 1 << 7;
/// Allowed on a replica whose link to its master is down.
pub const STALE: Flags = 1 << 8;
/// Not shown to MONITOR.
pub const SKIP_MONITOR: Flags = 1 << 9;
/// Never added to the SLOWLOG.
pub const SKIP_SLOWLOG: Flags = 1 << 10;
/// Allowed on a cluster node importing the slot (after ASKING).
pub const ASKING: Flags = 1 << 11;
/// O(1) or O(log N): never blocks the server for long.
pub const FAST: Flags = 1 << 12;
/// Runs before the connection has authenticated.
pub const NO_AUTH: Flags = 1 << 13;
/// Read-only, but may write something replicas must see (PFCOUNT's cached
/// count, PUBLISH). Not reported by COMMAND INFO, as in Redis.
pub const MAY_REPLICATE: Flags = 1 << 14;
/// Also a Sentinel command. Not reported by COMMAND INFO.
pub const SENTINEL: Flags = 1 << 15;
/// Only a Sentinel command. Not reported by COMMAND INFO.
pub const ONLY_SENTINEL: Flags = 1 << 16;
/// May be called with no key even though it takes keys.
pub const NO_MANDATORY_KEYS: Flags = 1 << 17;
/// Refused unless enabled by configuration (DEBUG: enable-debug-command).
/// Not reported by COMMAND INFO.
pub const PROTECTED: Flags = 1 << 18;
/// Refused while a replica loads its dataset asynchronously.
pub const NO_ASYNC_LOADING: Flags = 1 << 19;
/// Refused inside MULTI: queuing it aborts the transaction.
pub const NO_MULTI: Flags = 1 << 20;
/// Key positions depend on the arguments. Never written in a row: the
/// row's constructor derives it from the key specs and `keys_fn`, as Redis
/// derives it at start-up.
pub const MOVABLE_KEYS: Flags = 1 << 21;
/// Allowed while a script or function is busy.
pub const ALLOW_BUSY: Flags = 1 << 22;

// ---- shardis's own flags: decisions Redis takes by other means ----

/// Runs on the connection's own shard and needs the connection or the
/// server (every server and connection command): never routed by key,
/// forwarded, squashed or run on a transaction's temporary keyspace.
/// Derived from the handler (`Handler::Session`, `Help`, `Server`).
pub const CONN_SHARD: Flags = 1 << 32;
/// Every shard's keyspace takes part (DBSIZE, KEYS, SCAN, FLUSHALL ...):
/// fanned out, and a MULTI holding one runs command by command with every
/// shard locked. Derived from the handler (`Handler::EveryShard`).
pub const EVERY_SHARD: Flags = 1 << 33;
/// Inside MULTI it runs at once instead of being queued: MULTI, EXEC,
/// DISCARD, WATCH, QUIT, RESET (Redis decides this by comparing procs).
pub const NEVER_QUEUED: Flags = 1 << 34;
/// shardis cannot run it from a transaction's queue (BGSAVE, SUBSCRIBE
/// ...), although Redis would: refused when queued, as NO_MULTI is.
pub const NO_EXEC: Flags = 1 << 35;
/// Allowed while a RESP2 connection is subscribed: (P)SUBSCRIBE,
/// (P)UNSUBSCRIBE, PING, QUIT, RESET (Redis compares procs; its PUBSUB
/// flag is something else: PUBLISH has it and is refused there).
pub const SUBSCRIBED_OK: Flags = 1 << 36;
/// Its arguments may carry a password (AUTH, HELLO): kept out of the
/// SLOWLOG altogether (Redis logs them with the password redacted).
pub const SECRET_ARGS: Flags = 1 << 37;
/// Runs the connection's MULTI queue (EXEC): MONITOR shows the queued
/// commands when it is dispatched, as Redis shows them when EXEC runs
/// them.
pub const RUNS_QUEUE: Flags = 1 << 40;
/// Writes the clock into what it stores (stream consumers' seen time).
/// AOF replay runs at clock 0 and afterwards stamps such times with the
/// load time, as Redis's load does by running at load time.
pub const RECORDS_NOW: Flags = 1 << 38;
/// Runs a Lua script (EVAL, EVALSHA, ...): runs on the connection's
/// shard or as a transaction, never forwarded or squashed (a script that
/// touches an undeclared key must be run again from its connection).
pub const RUNS_SCRIPT: Flags = 1 << 39;
/// Each key, with the arguments up to the next key, is a write of its own
/// (MSET, DEL, UNLINK): a logged one may be cut into one command per shard
/// (`repl::route`). Other writes whose keys span hash slots are logged as
/// the final states of their keys instead (`cmd::exec`).
pub const SPLITS_BY_KEY: Flags = 1 << 41;
/// Its handler talks to another server (MIGRATE): a client's request on
/// its own shard hands that to a helper thread and waits parked.
pub const NETWORK_IO: Flags = 1 << 42;
/// A server command a cross-shard EXEC runs once its transaction is done
/// (CLIENT PAUSE / UNPAUSE take effect at the end of EXEC in Redis too);
/// its reply takes its place in EXEC's array.
pub const AFTER_TXN: Flags = 1 << 43;

/// Redis's visible flags in COMMAND INFO's order, with their names.
pub const REPORTED: &[(Flags, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (PUBSUB, "pubsub"),
    (NOSCRIPT, "noscript"),
    (BLOCKING, "blocking"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (SKIP_MONITOR, "skip_monitor"),
    (SKIP_SLOWLOG, "skip_slowlog"),
    (ASKING, "asking"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (NO_MANDATORY_KEYS, "no_mandatory_keys"),
    (NO_ASYNC_LOADING, "no_async_loading"),
    (NO_MULTI, "no_multi"),
    (MOVABLE_KEYS, "movablekeys"),
    (ALLOW_BUSY, "allow_busy"),
];

/// ACL categories (Redis 7.0's, in its order, which is the order COMMAND
/// INFO lists them in). A row names its explicit categories; the ones its
/// flags imply are added by `implied` (as Redis adds them at start-up).
pub mod acl {
    use super::Flags;

    pub type Categories = u32;

    pub const KEYSPACE: Categories = 1 << 0;
    pub const READ: Categories = 1 << 1;
    pub const WRITE: Categories = 1 << 2;
    pub const SET: Categories = 1 << 3;
    pub const SORTEDSET: Categories = 1 << 4;
    pub const LIST: Categories = 1 << 5;
    pub const HASH: Categories = 1 << 6;
    pub const STRING: Categories = 1 << 7;
    pub const BITMAP: Categories = 1 << 8;
    pub const HYPERLOGLOG: Categories = 1 << 9;
    pub const GEO: Categories = 1 << 10;
    pub const STREAM: Categories = 1 << 11;
    pub const PUBSUB: Categories = 1 << 12;
    pub const ADMIN: Categories = 1 << 13;
    pub const FAST: Categories = 1 << 14;
    pub const SLOW: Categories = 1 << 15;
    pub const BLOCKING: Categories = 1 << 16;
    pub const DANGEROUS: Categories = 1 << 17;
    pub const CONNECTION: Categories = 1 << 18;
    pub const TRANSACTION: Categories = 1 << 19;
    pub const SCRIPTING: Categories = 1 << 20;

    /// Every category with its name (without the '@').
    pub const NAMES: &[(Categories, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (BITMAP, "bitmap"),
        (HYPERLOGLOG, "hyperloglog"),
        (GEO, "geo"),
        (STREAM, "stream"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (BLOCKING, "blocking"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (SCRIPTING, "scripting"),
    ];

    /// The categories a command's flags put it in: write → @write,
    /// readonly → @read (unless @scripting), admin → @admin @dangerous,
    /// pubsub → @pubsub, fast → @fast (else @slow), blocking → @blocking.
    pub const fn implied(flags: Flags, explicit: Categories) -> Categories {
        let mut c = 0;
        if flags & super::WRITE != 0 {
            c |= WRITE;
        }
        if flags & super::READONLY != 0 && explicit & SCRIPTING == 0 {
            c |= READ;
        }
        if flags & super::ADMIN != 0 {
            c |= ADMIN | DANGEROUS;
        }
        if flags & super::PUBSUB != 0 {
            c |= PUBSUB;
        }
        if flags & super::FAST != 0 {
            c |= FAST;
        } else {
            c |= SLOW;
        }
        if flags & super::BLOCKING != 0 {
            c |= BLOCKING;
        }
        c
    }

    /// A category by name, case-insensitively, without the '@' (as
    /// COMMAND LIST FILTERBY ACLCAT takes it).
    pub fn by_name(name: &[u8]) -> Option<Categories> {
        NAMES.iter().find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name)).map(|(c, _)| *c)
    }
}

/// COMMAND DOCS's `group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Generic,
    String,
    List,
    Set,
    SortedSet,
    Hash,
    Pubsub,
    Transactions,
    Connection,
    Server,
    Hyperloglog,
    Geo,
    Stream,
    Bitmap,
    Scripting,
}

impl Group {
    pub const fn name(self) -> &'static str {
        match self {
            Group::Generic => "generic",
            Group::String => "string",
            Group::List => "list",
            Group::Set => "set",
            Group::SortedSet => "sorted-set",
            Group::Hash => "hash",
            Group::Pubsub => "pubsub",
            Group::Transactions => "transactions",
            Group::Connection => "connection",
            Group::Server => "server",
            Group::Hyperloglog => "hyperloglog",
            Group::Geo => "geo",
            Group::Stream => "stream",
            Group::Bitmap => "bitmap",
            Group::Scripting => "scripting",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two flags sharing a bit make one command look like another (EXEC
    /// once looked like a script, EVAL like EXEC).
    #[test]
    fn every_flag_has_its_own_bit() {
        let all = [
            SPLITS_BY_KEY,
            WRITE,
            READONLY,
            DENYOOM,
            ADMIN,
            PUBSUB,
            NOSCRIPT,
            BLOCKING,
            LOADING,
            STALE,
            SKIP_MONITOR,
            SKIP_SLOWLOG,
            ASKING,
            FAST,
            NO_AUTH,
            MAY_REPLICATE,
            SENTINEL,
            ONLY_SENTINEL,
            NO_MANDATORY_KEYS,
            PROTECTED,
            NO_ASYNC_LOADING,
            NO_MULTI,
            MOVABLE_KEYS,
            ALLOW_BUSY,
            CONN_SHARD,
            EVERY_SHARD,
            NEVER_QUEUED,
            NO_EXEC,
            SUBSCRIBED_OK,
            SECRET_ARGS,
            RUNS_QUEUE,
            RECORDS_NOW,
            RUNS_SCRIPT,
        ];
        let union = all.iter().fold(0, |u, f| u | f);
        assert_eq!(union.count_ones() as usize, all.len());
    }
}

//! Server options: embedded defaults, an optional TOML file, CLI flags on
//! top, and the subset `CONFIG SET` may change at run time. Pure: no I/O
//! beyond reading the file named on the command line.

use serde::{Deserialize, Serialize};

pub mod redis_options;

use redis_options::Here;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// TCP port every shard listens on (SO_REUSEPORT).
    pub port: u16,
    /// Address to bind.
    pub bind: String,
    /// Number of shards (threads); 0 = one per core the process may use.
    pub shards: usize,
    /// Data directory.
    pub dir: String,
    /// Password for AUTH; empty = no password. It is the `default` ACL
    /// user's password (unless `aclfile` or `users` define `default`).
    pub requirepass: String,
    /// ACL users file in Redis's format (`user <name> <rules>` lines, as
    /// ACL LIST prints them): loaded at start and by ACL LOAD, written by
    /// ACL SAVE. Empty = none. Not together with `users`.
    pub aclfile: String,
    /// ACL users defined here instead, one `<name> <rules>` string each
    /// (Redis's `user` directive), e.g. "alice on >secret ~app:* +@read".
    pub users: Vec<String>,
    /// Entries ACL LOG keeps (the oldest go first); 0 keeps none.
    pub acllog_max_len: u64,
    /// With no password set, refuse clients that are not on the loopback.
    pub protected_mode: bool,
    /// Who may run DEBUG: no | local (loopback clients) | yes.
    pub enable_debug_command: String,
    /// Largest bulk string a client may send, in bytes.
    pub proto_max_bulk_len: i64,
    /// Largest query buffer of one client before it is disconnected.
    pub client_query_buffer_limit: i64,
    /// Maximum simultaneous clients (over all shards).
    pub maxclients: u64,
    /// Unsent-reply limits per client class, in Redis's syntax:
    /// `<class> <hard> <soft> <soft seconds>` for normal, replica, pubsub.
    pub client_output_buffer_limit: String,
    /// Close idle clients after this many seconds (0 = never).
    pub timeout: u64,
    /// Background task frequency per second (active expiry).
    pub hz: u32,
    /// Pin shard threads to cores (shard i -> i-th allowed core, wrapping).
    pub pin_threads: bool,
    /// Longest extra wait (µs) a shard takes to gather a batch of
    /// completions under heavy concurrent load; 0 = never (lowest latency).
    pub batch_wait_us: u32,
    /// Turn transparent huge pages off for this process, as Redis's
    /// `disable-thp` does: the allocator asks for huge pages, and the
    /// kernel zeroing 2 MiB on a fault made list pushes bimodal
    /// (0.5 or 1.4 µs per request at -P 16, benches/RESULTS.md).
    pub disable_thp: bool,
    /// Per-shard append-only file under `dir`; recovered at start-up.
    pub appendonly: bool,
    /// always (no reply before fdatasync; group commit) | everysec | no
    /// (no reply before its write() completed).
    pub appendfsync: String,
    /// Start a new AOF segment past this many bytes.
    pub aof_segment_size: i64,
    /// Rewrite the AOF automatically when the log grew by this percentage
    /// of the last rewrite's size (0 = never) ...
    pub auto_aof_rewrite_percentage: u32,
    /// ... and by at least this many bytes.
    pub auto_aof_rewrite_min_size: i64,
    /// How a rewrite builds the new bases (`persist::rewrite`): `snapshot`
    /// (each shard serialises its live keyspace in chunks between
    /// requests, copy-before-write; no second copy) or `replay` (a
    /// background thread replays the log into a second copy of the data).
    pub rewrite_method: String,
    /// Log file; empty = stderr.
    pub logfile: String,
    /// Memory limit in bytes over all shards (each shard keeps to its
    /// equal share); 0 = no limit.
    pub maxmemory: i64,
    /// What to evict at the limit: noeviction (refuse writes with -OOM),
    /// allkeys-lru|lfu|random, volatile-lru|lfu|random|ttl.
    pub maxmemory_policy: String,
    /// Keys sampled per eviction step: more is closer to true LRU/LFU.
    pub maxmemory_samples: u32,
    /// LFU: how slowly a key's use counter grows (Redis's
    /// `lfu-log-factor`; 10 saturates it at about a million hits).
    pub lfu_log_factor: u32,
    /// LFU: minutes per step of an idle key's counter decay (0: never).
    pub lfu_decay_time: u32,
    /// SLOWLOG keeps commands that ran at least this many µs (0: all,
    /// negative: none).
    pub slowlog_log_slower_than: i64,
    /// Entries SLOWLOG keeps on each shard.
    pub slowlog_max_len: u64,
    /// The latency monitor records events (commands, expiry and eviction
    /// cycles, AOF writes) that took at least this many ms; 0 = off.
    pub latency_monitor_threshold: u64,
    /// Free big values on a helper thread instead of the shard's loop:
    /// when evicting, expiring, replacing a value (SET over it), on DEL
    /// (as UNLINK), on FLUSHALL/FLUSHDB without a mode. UNLINK and FLUSH*
    /// ASYNC always do. `replica-lazy-flush`: a replica's full resync
    /// frees the keys it drops there too.
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub replica_lazy_flush: bool,
    /// Milliseconds a script may run before other clients get -BUSY and
    /// SCRIPT KILL / FUNCTION KILL may stop it (`lua-time-limit`).
    pub busy_reply_threshold: i64,
    /// Replicate from this master: "host port" (empty = be a master).
    pub replicaof: String,
    /// Password (and user) the replica authenticates to its master with.
    pub masterauth: String,
    pub masteruser: String,
    /// A replica refuses clients' writes (-READONLY).
    pub replica_read_only: bool,
    /// Bytes of sealed AOF segments kept for replicas that are behind
    /// (the AOF is the backlog; compaction keeps at most this much past
    /// the base for them).
    pub repl_backlog_size: i64,
    /// Seconds without traffic after which a replication link is dropped.
    pub repl_timeout: u64,
    /// Seconds between the master's pings on an idle replication link.
    pub repl_ping_replica_period: u64,
    /// Failover preference (lower first; 0 = never promoted).
    pub replica_priority: u64,
    /// Address and port a replica gives its master to list it under
    /// (empty / 0: its own bind address and port).
    pub replica_announce_ip: String,
    pub replica_announce_port: u16,
    /// A master refuses writes (-NOREPLICAS) unless at least this many
    /// replicas acknowledged within `min_replicas_max_lag` seconds (0 = off).
    pub min_replicas_to_write: u32,
    pub min_replicas_max_lag: u64,
    /// With `min_replicas_to_write` N > 0: a write is answered only once N
    /// replicas hold it durably (no acknowledged write lost on failover).
    pub repl_sync_ack: bool,
    /// Collection-encoding thresholds by their Redis names
    /// (`hash-max-listpack-entries`, ...; the pre-7.0 `ziplist` names
    /// too), as a `[encoding]` table; the ones not given keep Redis's
    /// defaults. Sizes (`*-value`) may be written as Redis's memory values
    /// ("2kb").
    #[serde(deserialize_with = "encoding_values")]
    pub encoding: std::collections::BTreeMap<String, i64>,
    /// Redis's RDB snapshot schedule, kept so that CONFIG GET returns what
    /// CONFIG SET stored (tools save and restore it); shardis persists
    /// through its AOF and takes no RDB snapshots.
    pub save: String,
    /// Keyspace notification classes (Redis's flag string: `KEA`, `Ex`,
    /// ...); empty: none published.
    pub notify_keyspace_events: String,
    /// Redis 7.0 options shardis accepts and keeps without acting on them
    /// (`redis_options`: `Inert`, and `Unsupported` ones at Redis's
    /// default), by current name, in the form CONFIG GET shows; only those
    /// set to something other than Redis's default.
    #[serde(deserialize_with = "compat_values")]
    pub redis_compat: std::collections::BTreeMap<String, String>,
    /// The file this config was read from (for CONFIG REWRITE).
    #[serde(skip)]
    pub config_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            shards: 0,
            dir: "./data".into(),
            requirepass: String::new(),
            aclfile: String::new(),
            users: Vec::new(),
            acllog_max_len: 128,
            protected_mode: true,
            enable_debug_command: "no".into(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            maxclients: 10000,
            client_output_buffer_limit: crate::shard::obuf::Limits::default().to_string(),
            timeout: 0,
            hz: 10,
            pin_threads: true,
            batch_wait_us: crate::net::wait_policy::DEFAULT_BUDGET_US,
            disable_thp: true,
            appendonly: true,
            appendfsync: "everysec".into(),
            aof_segment_size: 64 << 20,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            rewrite_method: "snapshot".into(),
            logfile: String::new(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            replica_lazy_flush: false,
            busy_reply_threshold: 5000,
            replicaof: String::new(),
            masterauth: String::new(),
            masteruser: String::new(),
            replica_read_only: true,
            repl_backlog_size: 128 << 20,
            repl_timeout: 60,
            repl_ping_replica_period: 10,
            replica_priority: 100,
            replica_announce_ip: String::new(),
            replica_announce_port: 0,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            repl_sync_ack: false,
            encoding: Default::default(),
            save: String::new(),
            notify_keyspace_events: String::new(),
            redis_compat: Default::default(),
            config_file: None,
        }
    }
}

#[derive(clap::Parser, Debug, Default)]
#[command(name = "shardis-server", version, about = "Redis-compatible shard-per-core key-value server")]
pub struct Cli {
    /// TOML config file (see config/shardis.toml)
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long)]
    pub bind: Option<String>,
    #[arg(long)]
    pub shards: Option<usize>,
    #[arg(long)]
    pub dir: Option<String>,
    #[arg(long)]
    pub requirepass: Option<String>,
    /// ACL users file (Redis's format)
    #[arg(long)]
    pub aclfile: Option<String>,
    #[arg(long = "protected-mode")]
    pub protected_mode: Option<String>,
    /// no | local | yes
    #[arg(long = "enable-debug-command")]
    pub enable_debug_command: Option<String>,
    #[arg(long)]
    pub appendonly: Option<String>,
    #[arg(long)]
    pub appendfsync: Option<String>,
    #[arg(long = "aof-segment-size")]
    pub aof_segment_size: Option<String>,
    #[arg(long = "auto-aof-rewrite-percentage")]
    pub auto_aof_rewrite_percentage: Option<u32>,
    #[arg(long = "auto-aof-rewrite-min-size")]
    pub auto_aof_rewrite_min_size: Option<String>,
    /// replay | snapshot
    #[arg(long = "rewrite-method")]
    pub rewrite_method: Option<String>,
    #[arg(long)]
    pub hz: Option<u32>,
    #[arg(long)]
    pub maxclients: Option<u64>,
    /// e.g. "pubsub 32mb 8mb 60" (classes not named keep their limits)
    #[arg(long = "client-output-buffer-limit")]
    pub client_output_buffer_limit: Option<String>,
    #[arg(long = "proto-max-bulk-len")]
    pub proto_max_bulk_len: Option<i64>,
    #[arg(long = "pin-threads")]
    pub pin_threads: Option<String>,
    #[arg(long = "batch-wait-us")]
    pub batch_wait_us: Option<u32>,
    #[arg(long = "disable-thp")]
    pub disable_thp: Option<String>,
    #[arg(long)]
    pub logfile: Option<String>,
    /// Memory limit (bytes, or 100mb, 1gb, ...); 0 = none
    #[arg(long)]
    pub maxmemory: Option<String>,
    #[arg(long = "maxmemory-policy")]
    pub maxmemory_policy: Option<String>,
    #[arg(long = "maxmemory-samples")]
    pub maxmemory_samples: Option<u32>,
    #[arg(long = "lfu-log-factor")]
    pub lfu_log_factor: Option<u32>,
    #[arg(long = "lfu-decay-time")]
    pub lfu_decay_time: Option<u32>,
    #[arg(long = "slowlog-log-slower-than", allow_hyphen_values = true)]
    pub slowlog_log_slower_than: Option<i64>,
    #[arg(long = "slowlog-max-len")]
    pub slowlog_max_len: Option<u64>,
    #[arg(long = "latency-monitor-threshold")]
    pub latency_monitor_threshold: Option<u64>,
    #[arg(long = "busy-reply-threshold", alias = "lua-time-limit")]
    pub busy_reply_threshold: Option<i64>,
    /// "host port", or host and port as two words (redis-server's form)
    #[arg(long, num_args = 1..=2, alias = "slaveof")]
    pub replicaof: Option<Vec<String>>,
    #[arg(long)]
    pub masterauth: Option<String>,
    #[arg(long)]
    pub masteruser: Option<String>,
    #[arg(long = "replica-read-only", alias = "slave-read-only")]
    pub replica_read_only: Option<String>,
    #[arg(long = "repl-backlog-size")]
    pub repl_backlog_size: Option<String>,
    #[arg(long = "repl-timeout")]
    pub repl_timeout: Option<u64>,
    #[arg(long = "repl-ping-replica-period")]
    pub repl_ping_replica_period: Option<u64>,
    #[arg(long = "replica-priority", alias = "slave-priority")]
    pub replica_priority: Option<u64>,
    #[arg(long = "replica-announce-ip")]
    pub replica_announce_ip: Option<String>,
    #[arg(long = "replica-announce-port")]
    pub replica_announce_port: Option<u16>,
    #[arg(long = "min-replicas-to-write", alias = "min-slaves-to-write")]
    pub min_replicas_to_write: Option<u32>,
    #[arg(long = "min-replicas-max-lag", alias = "min-slaves-max-lag")]
    pub min_replicas_max_lag: Option<u64>,
    #[arg(long = "repl-sync-ack")]
    pub repl_sync_ack: Option<String>,
    /// Accepted for redis-server's command lines (`--save ''`): shardis
    /// snapshots through its AOF.
    #[arg(long, allow_hyphen_values = true)]
    pub save: Option<String>,
    #[arg(long = "notify-keyspace-events", allow_hyphen_values = true)]
    pub notify_keyspace_events: Option<String>,
    /// Any other option as `--name value` (redis-server's form), applied
    /// as CONFIG SET would (`split_args` takes them out of the command line).
    #[arg(skip)]
    pub extra: Vec<(String, String)>,
}

impl Cli {
    /// The command line with every `--name value` whose name has no flag of
    /// its own taken out as a generic option, so that command lines
    /// written for redis-server (`--min-replicas-to-write 1`,
    /// `--hash-max-ziplist-entries 64`, ...) start shardis-server unchanged.
    pub fn parse_args(argv: Vec<String>) -> Result<Cli, String> {
        use clap::{CommandFactory, Parser};
        let cmd = Cli::command();
        let known = |name: &str| {
            matches!(name, "help" | "version")
                || cmd
                    .get_arguments()
                    .any(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name)))
        };
        let mut args = Vec::new();
        let mut extra = Vec::new();
        let mut it = argv.into_iter();
        args.extend(it.next());
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--").filter(|n| !n.is_empty()) else {
                args.push(a);
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            if known(&name) {
                args.push(a);
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("option --{} needs a value", name))?,
            };
            extra.push((name, value));
        }
        let mut cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        cli.extra = extra;
        Ok(cli)
    }
}

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("argument must be 'yes' or 'no', got '{}'", s)),
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config = toml::from_str(text).map_err(|e| e.to_string());
        if config.is_ok() {
            return config;
        }
        // A Redis option shardis keeps without acting on it may also be
        // written at the top (`loglevel = "notice"`), as in a redis.conf:
        // it belongs to `[redis-compat]`.
        let Ok(mut table) = text.parse::<toml::Table>() else { return config };
        let compat_names: Vec<String> = table
            .keys()
            .filter(|k| redis_options::find(&canonical_name(k)).is_some_and(|o| o.here != Here::Real))
            .cloned()
            .collect();
        if compat_names.is_empty() {
            return config;
        }
        let mut compat = match table.remove("redis-compat") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err("redis-compat must be a table".into()),
            None => toml::Table::new(),
        };
        for name in compat_names {
            if let Some(v) = table.remove(&name) {
                if compat.insert(name.clone(), v).is_some() {
                    return Err(format!("{name} is given at the top and in [redis-compat]"));
                }
            }
        }
        table.insert("redis-compat".into(), toml::Value::Table(compat));
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())
    }

    /// Defaults, then the file named by `--config`, then the flags.
    pub fn load(cli: &Cli) -> Result<Config, String> {
        let mut c = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("reading config file {}: {}", path, e))?;
                let mut c = Config::from_toml(&text).map_err(|e| format!("config file {}: {}", path, e))?;
                c.config_file = Some(path.clone());
                c
            }
            None => Config::default(),
        };
        if let Some(v) = cli.port {
            c.port = v;
        }
        if let Some(v) = &cli.bind {
            c.bind = v.clone();
        }
        if let Some(v) = cli.shards {
            c.shards = v;
        }
        if let Some(v) = &cli.dir {
            c.dir = v.clone();
        }
        if let Some(v) = &cli.aclfile {
            c.aclfile = v.clone();
        }
        if let Some(v) = &cli.requirepass {
            c.requirepass = v.clone();
        }
        if let Some(v) = &cli.protected_mode {
            c.protected_mode = parse_bool(v)?;
        }
        if let Some(v) = &cli.enable_debug_command {
            c.enable_debug_command = v.to_ascii_lowercase();
        }
        if let Some(v) = &cli.appendonly {
            c.appendonly = parse_bool(v)?;
        }
        if let Some(v) = &cli.aof_segment_size {
            c.aof_segment_size = parse_memory(v)?;
        }
        if let Some(v) = cli.auto_aof_rewrite_percentage {
            c.auto_aof_rewrite_percentage = v;
        }
        if let Some(v) = &cli.auto_aof_rewrite_min_size {
            c.auto_aof_rewrite_min_size = parse_memory(v)?;
        }
        if let Some(v) = &cli.appendfsync {
            c.appendfsync = v.clone();
        }
        if let Some(v) = &cli.rewrite_method {
            c.rewrite_method = v.to_ascii_lowercase();
        }
        if let Some(v) = cli.hz {
            c.hz = v;
        }
        if let Some(v) = cli.maxclients {
            c.maxclients = v;
        }
        if let Some(v) = &cli.client_output_buffer_limit {
            c.client_output_buffer_limit = c.output_limits()?.updated(v)?.to_string();
        }
        if let Some(v) = cli.proto_max_bulk_len {
            c.proto_max_bulk_len = v;
        }
        if let Some(v) = &cli.pin_threads {
            c.pin_threads = parse_bool(v)?;
        }
        if let Some(v) = cli.batch_wait_us {
            c.batch_wait_us = v;
        }
        if let Some(v) = &cli.disable_thp {
            c.disable_thp = parse_bool(v)?;
        }
        if let Some(v) = &cli.logfile {
            c.logfile = v.clone();
        }
        if let Some(v) = &cli.notify_keyspace_events {
            c.notify_keyspace_events = v.clone();
        }
        if let Some(v) = &cli.maxmemory {
            c.maxmemory = parse_memory(v)?;
        }
        if let Some(v) = &cli.maxmemory_policy {
            c.maxmemory_policy = v.to_ascii_lowercase();
        }
        if let Some(v) = cli.maxmemory_samples {
            c.maxmemory_samples = v;
        }
        if let Some(v) = cli.lfu_log_factor {
            c.lfu_log_factor = v;
        }
        if let Some(v) = cli.lfu_decay_time {
            c.lfu_decay_time = v;
        }
        if let Some(v) = cli.slowlog_log_slower_than {
            c.slowlog_log_slower_than = v;
        }
        if let Some(v) = cli.slowlog_max_len {
            c.slowlog_max_len = v;
        }
        if let Some(v) = cli.latency_monitor_threshold {
            c.latency_monitor_threshold = v;
        }
        if let Some(v) = cli.busy_reply_threshold {
            c.busy_reply_threshold = v;
        }
        if let Some(v) = &cli.replicaof {
            c.replicaof = v.join(" ");
        }
        if let Some(v) = &cli.masterauth {
            c.masterauth = v.clone();
        }
        if let Some(v) = &cli.masteruser {
            c.masteruser = v.clone();
        }
        if let Some(v) = &cli.replica_read_only {
            c.replica_read_only = parse_bool(v)?;
        }
        if let Some(v) = &cli.repl_backlog_size {
            c.repl_backlog_size = parse_memory(v)?;
        }
        if let Some(v) = cli.repl_timeout {
            c.repl_timeout = v;
        }
        if let Some(v) = cli.repl_ping_replica_period {
            c.repl_ping_replica_period = v;
        }
        if let Some(v) = cli.replica_priority {
            c.replica_priority = v;
        }
        if let Some(v) = &cli.replica_announce_ip {
            c.replica_announce_ip = v.clone();
        }
        if let Some(v) = cli.replica_announce_port {
            c.replica_announce_port = v;
        }
        if let Some(v) = cli.min_replicas_to_write {
            c.min_replicas_to_write = v;
        }
        if let Some(v) = cli.min_replicas_max_lag {
            c.min_replicas_max_lag = v;
        }
        if let Some(v) = &cli.repl_sync_ack {
            c.repl_sync_ack = parse_bool(v)?;
        }
        if let Some(v) = &cli.save {
            c.save = redis_options::normalize_save(v).map_err(|e| format!("--save '{}': {}", v, e))?;
            crate::log(&format!(
                "save '{}' kept and ignored: shardis snapshots through its AOF (BGSAVE rewrites it)",
                v
            ));
        }
        for (name, value) in &cli.extra {
            c.set_at_start(name, value).map_err(|e| {
                if e == UNKNOWN_OPTION {
                    format!("unknown option --{}", name)
                } else {
                    format!("--{} {}: {}", name, value, e)
                }
            })?;
        }
        c.replicaof = normalize_replicaof(&c.replicaof)?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self.encoding.keys().find(|k| encoding_limit(k).is_none()) {
            return Err(format!("unknown [encoding] option '{}'", bad));
        }
        if !matches!(self.appendfsync.as_str(), "always" | "everysec" | "no") {
            return Err(format!("appendfsync must be always, everysec or no, got '{}'", self.appendfsync));
        }
        if !REWRITE_METHODS.contains(&self.rewrite_method.as_str()) {
            return Err(format!("rewrite-method must be replay or snapshot, got '{}'", self.rewrite_method));
        }
        if self.shards > 1024 {
            return Err("shards must be at most 1024".into());
        }
        if !crate::security::DEBUG_POLICIES.contains(&self.enable_debug_command.as_str()) {
            return Err(format!("enable-debug-command must be no, local or yes, got '{}'", self.enable_debug_command));
        }
        let encoding = self.encoding.iter().map(|(k, v)| (k.as_str(), *v as i128));
        for (name, v) in self.bounded_values().into_iter().chain(encoding) {
            in_bounds(name, v).map_err(|e| format!("{}: {}", name, e))?;
        }
        if !self.aclfile.is_empty() && !self.users.is_empty() {
            return Err("ACL users are defined in the config and an aclfile is set: use one of them".into());
        }
        if !self.replicaof.is_empty() {
            parse_replicaof(&self.replicaof)?;
        }
        if self.repl_timeout == 0 || self.repl_ping_replica_period == 0 {
            return Err("repl-timeout and repl-ping-replica-period must be at least 1".into());
        }
        if self.hz == 0 || self.hz > 500 {
            return Err("hz must be between 1 and 500".into());
        }
        redis_options::normalize_save(&self.save).map_err(|e| format!("save: {}", e))?;
        if crate::keyspace::notify::parse_flags(&self.notify_keyspace_events).is_none() {
            return Err(crate::keyspace::notify::BAD_FLAGS.into());
        }
        if crate::keyspace::evict::Policy::parse(&self.maxmemory_policy).is_none() {
            return Err(format!(
                "argument(s) must be one of the following: {}",
                crate::keyspace::evict::POLICY_NAMES.join(", ")
            ));
        }
        self.output_limits()?;
        Ok(())
    }

    /// The options `BOUNDS` limits, with their values.
    fn bounded_values(&self) -> Vec<(&'static str, i128)> {
        vec![
            ("acllog-max-len", self.acllog_max_len as i128),
            ("proto-max-bulk-len", self.proto_max_bulk_len as i128),
            ("client-query-buffer-limit", self.client_query_buffer_limit as i128),
            ("maxclients", self.maxclients as i128),
            ("timeout", self.timeout as i128),
            ("batch-wait-us", self.batch_wait_us as i128),
            ("auto-aof-rewrite-percentage", self.auto_aof_rewrite_percentage as i128),
            ("auto-aof-rewrite-min-size", self.auto_aof_rewrite_min_size as i128),
            ("maxmemory", self.maxmemory as i128),
            ("maxmemory-samples", self.maxmemory_samples as i128),
            ("lfu-log-factor", self.lfu_log_factor as i128),
            ("lfu-decay-time", self.lfu_decay_time as i128),
            ("slowlog-log-slower-than", self.slowlog_log_slower_than as i128),
            ("slowlog-max-len", self.slowlog_max_len as i128),
            ("latency-monitor-threshold", self.latency_monitor_threshold as i128),
            ("busy-reply-threshold", self.busy_reply_threshold as i128),
            ("repl-backlog-size", self.repl_backlog_size as i128),
            ("repl-timeout", self.repl_timeout as i128),
            ("repl-ping-replica-period", self.repl_ping_replica_period as i128),
            ("min-replicas-to-write", self.min_replicas_to_write as i128),
            ("min-replicas-max-lag", self.min_replicas_max_lag as i128),
        ]
    }

    /// The `lazyfree-lazy-*` options as the keyspace follows them.
    pub fn lazy_free(&self) -> crate::keyspace::LazyFree {
        crate::keyspace::LazyFree {
            eviction: self.lazyfree_lazy_eviction,
            expire: self.lazyfree_lazy_expire,
            server_del: self.lazyfree_lazy_server_del,
            user_del: self.lazyfree_lazy_user_del,
            user_flush: self.lazyfree_lazy_user_flush,
            replica_flush: self.replica_lazy_flush,
        }
    }

    /// Every option as CONFIG GET reports it: (name, value).
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let yn = |b: bool| if b { "yes".to_string() } else { "no".to_string() };
        vec![
            ("port", self.port.to_string()),
            ("bind", self.bind.clone()),
            ("shards", self.shards.to_string()),
            ("dir", self.dir.clone()),
            ("requirepass", self.requirepass.clone()),
            ("aclfile", self.aclfile.clone()),
            ("acllog-max-len", self.acllog_max_len.to_string()),
            ("protected-mode", yn(self.protected_mode)),
            ("enable-debug-command", self.enable_debug_command.clone()),
            ("proto-max-bulk-len", self.proto_max_bulk_len.to_string()),
            ("client-query-buffer-limit", self.client_query_buffer_limit.to_string()),
            ("maxclients", self.maxclients.to_string()),
            ("client-output-buffer-limit", self.client_output_buffer_limit.clone()),
            ("timeout", self.timeout.to_string()),
            ("hz", self.hz.to_string()),
            ("pin-threads", yn(self.pin_threads)),
            ("batch-wait-us", self.batch_wait_us.to_string()),
            ("disable-thp", yn(self.disable_thp)),
            ("appendonly", yn(self.appendonly)),
            ("appendfsync", self.appendfsync.clone()),
            ("aof-segment-size", self.aof_segment_size.to_string()),
            ("auto-aof-rewrite-percentage", self.auto_aof_rewrite_percentage.to_string()),
            ("auto-aof-rewrite-min-size", self.auto_aof_rewrite_min_size.to_string()),
            ("rewrite-method", self.rewrite_method.clone()),
            ("logfile", self.logfile.clone()),
            // Read-only compatibility values that tools ask for.
            ("save", self.save.clone()),
            ("notify-keyspace-events", crate::keyspace::notify::flags_string(self.notify_flags())),
            ("databases", "16".into()),
            ("maxmemory", self.maxmemory.to_string()),
            ("maxmemory-policy", self.maxmemory_policy.clone()),
            ("maxmemory-samples", self.maxmemory_samples.to_string()),
            ("lfu-log-factor", self.lfu_log_factor.to_string()),
            ("lfu-decay-time", self.lfu_decay_time.to_string()),
            ("slowlog-log-slower-than", self.slowlog_log_slower_than.to_string()),
            ("slowlog-max-len", self.slowlog_max_len.to_string()),
            ("latency-monitor-threshold", self.latency_monitor_threshold.to_string()),
            ("lazyfree-lazy-eviction", yn(self.lazyfree_lazy_eviction)),
            ("lazyfree-lazy-expire", yn(self.lazyfree_lazy_expire)),
            ("lazyfree-lazy-server-del", yn(self.lazyfree_lazy_server_del)),
            ("lazyfree-lazy-user-del", yn(self.lazyfree_lazy_user_del)),
            ("lazyfree-lazy-user-flush", yn(self.lazyfree_lazy_user_flush)),
            ("replica-lazy-flush", yn(self.replica_lazy_flush)),
            ("busy-reply-threshold", self.busy_reply_threshold.to_string()),
            ("replicaof", self.replicaof.clone()),
            ("masterauth", self.masterauth.clone()),
            ("masteruser", self.masteruser.clone()),
            ("replica-read-only", yn(self.replica_read_only)),
            ("repl-backlog-size", self.repl_backlog_size.to_string()),
            ("repl-timeout", self.repl_timeout.to_string()),
            ("repl-ping-replica-period", self.repl_ping_replica_period.to_string()),
            ("replica-priority", self.replica_priority.to_string()),
            ("replica-announce-ip", self.replica_announce_ip.clone()),
            ("replica-announce-port", self.replica_announce_port.to_string()),
            ("min-replicas-to-write", self.min_replicas_to_write.to_string()),
            ("min-replicas-max-lag", self.min_replicas_max_lag.to_string()),
            ("repl-sync-ack", yn(self.repl_sync_ack)),
        ]
        .into_iter()
        .chain(crate::keyspace::limits::ALL.iter().map(|l| (l.name, l.get().to_string())))
        .chain(
            redis_options::OPTIONS
                .iter()
                .filter(|o| o.here != Here::Real)
                .map(|o| (o.name, self.redis_compat.get(o.name).cloned().unwrap_or_else(|| o.default.to_string()))),
        )
        .collect::<Vec<_>>()
        .with_aliases()
    }

    /// CONFIG SET: change one option at run time, or say why not. Numbers
    /// outside Redis 7's range for the option are refused (`BOUNDS`), so
    /// no value can disconnect every client or stop the server working.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let cname = canonical_name(name);
        let n = cname.as_str();
        let int = |v: &str| redis_options::parse_int(v).and_then(|v| in_bounds(n, v as i128).map(|_| v));
        let mem = |v: &str| parse_memory(v).and_then(|v| in_bounds(n, v as i128).map(|_| v));
        let redis = redis_options::find(n);
        match redis.map(|o| o.mutability) {
            Some(redis_options::Mutability::Immutable) => return Err("can't set immutable config".into()),
            Some(redis_options::Mutability::Protected) => return Err("can't set protected config".into()),
            _ => {}
        }
        let mut next = self.clone();
        match n {
            "requirepass" => next.requirepass = value.to_string(),
            "acllog-max-len" => next.acllog_max_len = int(value)? as u64,
            "protected-mode" => next.protected_mode = parse_yes_no(value)?,
            "proto-max-bulk-len" => next.proto_max_bulk_len = mem(value)?,
            "client-query-buffer-limit" => next.client_query_buffer_limit = mem(value)?,
            "maxclients" => next.maxclients = int(value)? as u64,
            "client-output-buffer-limit" => {
                next.client_output_buffer_limit = self.output_limits()?.updated(value)?.to_string()
            }
            "timeout" => next.timeout = int(value)? as u64,
            // Redis takes any hz in range and runs within 1..=500.
            "hz" => next.hz = int(value)?.clamp(1, 500) as u32,
            "auto-aof-rewrite-percentage" => next.auto_aof_rewrite_percentage = int(value)? as u32,
            "auto-aof-rewrite-min-size" => next.auto_aof_rewrite_min_size = mem(value)?,
            "batch-wait-us" => next.batch_wait_us = int(value)? as u32,
            "appendfsync" => next.appendfsync = one_of(value, FSYNC_POLICIES)?,
            "rewrite-method" => next.rewrite_method = one_of(value, REWRITE_METHODS)?,
            "appendonly" => next.appendonly = parse_yes_no(value)?,
            "save" => next.save = redis_options::normalize_save(value)?,
            "notify-keyspace-events" => next.notify_keyspace_events = value.to_string(),
            "maxmemory" => next.maxmemory = mem(value)?,
            "maxmemory-policy" => next.maxmemory_policy = one_of(value, crate::keyspace::evict::POLICY_NAMES)?,
            "maxmemory-samples" => next.maxmemory_samples = int(value)? as u32,
            "lfu-log-factor" => next.lfu_log_factor = int(value)? as u32,
            "lfu-decay-time" => next.lfu_decay_time = int(value)? as u32,
            "slowlog-log-slower-than" => next.slowlog_log_slower_than = int(value)?,
            "slowlog-max-len" => next.slowlog_max_len = int(value)? as u64,
            "latency-monitor-threshold" => next.latency_monitor_threshold = int(value)? as u64,
            "lazyfree-lazy-eviction" => next.lazyfree_lazy_eviction = parse_yes_no(value)?,
            "lazyfree-lazy-expire" => next.lazyfree_lazy_expire = parse_yes_no(value)?,
            "lazyfree-lazy-server-del" => next.lazyfree_lazy_server_del = parse_yes_no(value)?,
            "lazyfree-lazy-user-del" => next.lazyfree_lazy_user_del = parse_yes_no(value)?,
            "lazyfree-lazy-user-flush" => next.lazyfree_lazy_user_flush = parse_yes_no(value)?,
            "replica-lazy-flush" => next.replica_lazy_flush = parse_yes_no(value)?,
            "busy-reply-threshold" => next.busy_reply_threshold = int(value)?,
            "masterauth" => next.masterauth = value.to_string(),
            "masteruser" => next.masteruser = value.to_string(),
            "replica-read-only" => next.replica_read_only = parse_yes_no(value)?,
            "repl-backlog-size" => next.repl_backlog_size = mem(value)?,
            "repl-timeout" => next.repl_timeout = int(value)? as u64,
            "repl-ping-replica-period" => next.repl_ping_replica_period = int(value)? as u64,
            "replica-priority" => next.replica_priority = int(value)? as u64,
            "replica-announce-ip" => next.replica_announce_ip = value.to_string(),
            "replica-announce-port" => next.replica_announce_port = int(value)? as u16,
            "min-replicas-to-write" => next.min_replicas_to_write = int(value)? as u32,
            "min-replicas-max-lag" => next.min_replicas_max_lag = int(value)? as u64,
            "repl-sync-ack" => next.repl_sync_ack = parse_yes_no(value)?,
            n if encoding_limit(n).is_some() => {
                let v = encoding_value(n, value)?;
                if let Some(l) = encoding_limit(n) {
                    in_bounds(n, v as i128)?;
                    next.encoding.insert(l.name.to_string(), v);
                }
            }
            // Redis may change port and bind at run time; shardis's shards
            // listen from start to end. (Redis's own immutable ones, and
            // `replicaof`, which REPLICAOF changes, are refused above.)
            "port" | "bind" | "shards" | "aof-segment-size" | "pin-threads" | "users" => {
                return Err("can't set immutable config".into())
            }
            _ => match redis {
                Some(o) if o.here != Here::Real => next.set_compat(o, value)?,
                _ => return Err(UNKNOWN_OPTION.into()),
            },
        }
        next.validate()?;
        next.apply_encoding_limits()?;
        *self = next;
        Ok(())
    }

    /// A Redis option shardis keeps without acting on it, validated as
    /// Redis does (mutability aside: the caller decides).
    fn set_compat(&mut self, o: &redis_options::RedisOption, value: &str) -> Result<(), String> {
        let v = o.normalize(value)?;
        if o.here == Here::Unsupported && !o.is_default(&v) {
            return Err(redis_options::unsupported_reason(o.name).into());
        }
        match o.is_default(&v) {
            true => self.redis_compat.remove(o.name),
            false => self.redis_compat.insert(o.name.to_string(), v),
        };
        Ok(())
    }

    /// An option from the command line (`--name value`): as CONFIG SET,
    /// except that the options Redis takes only at start (`--daemonize no`,
    /// `--io-threads 4`, `--dbfilename x`) are taken too.
    pub fn set_at_start(&mut self, name: &str, value: &str) -> Result<(), String> {
        let cname = canonical_name(name);
        match redis_options::find(&cname) {
            Some(o) if o.here != Here::Real => {
                let mut next = self.clone();
                next.set_compat(o, value)?;
                *self = next;
                Ok(())
            }
            // shardis has Redis's 16 databases, always.
            Some(o) if o.name == "databases" => match redis_options::parse_int(value)? {
                16 => Ok(()),
                _ => Err("shardis has 16 databases".into()),
            },
            _ => self.set(name, value),
        }
    }

    /// `notify-keyspace-events` as class bits (validated at load and SET).
    pub fn notify_flags(&self) -> u16 {
        crate::keyspace::notify::parse_flags(&self.notify_keyspace_events).unwrap_or(0)
    }

    /// `client-output-buffer-limit`, parsed.
    pub fn output_limits(&self) -> Result<crate::shard::obuf::Limits, String> {
        crate::shard::obuf::Limits::parse(&self.client_output_buffer_limit)
    }

    /// The config as TOML (CONFIG REWRITE).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}

impl Config {
    /// Make the `[encoding]` thresholds current (process-wide statics the
    /// commands read); an unknown name is an error.
    pub fn apply_encoding_limits(&self) -> Result<(), String> {
        for (name, v) in &self.encoding {
            match encoding_limit(name) {
                Some(l) => l.set(*v),
                None => return Err(format!("unknown [encoding] option '{}'", name)),
            }
        }
        Ok(())
    }
}

/// `replicaof` as given ("host port", "no one", empty) in its one stored
/// form: "host port", or empty for a master.
pub fn normalize_replicaof(v: &str) -> Result<String, String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(String::new()),
        [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => Ok(String::new()),
        [host, port] => {
            parse_replicaof(&format!("{} {}", host, port))?;
            Ok(format!("{} {}", host, port))
        }
        _ => Err(format!("replicaof must be \"host port\" or \"no one\", got '{}'", v)),
    }
}

/// The master's host and port of a stored `replicaof`.
pub fn parse_replicaof(v: &str) -> Result<(String, u16), String> {
    let mut it = v.split_whitespace();
    let (Some(host), Some(port), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!("replicaof must be \"host port\", got '{}'", v));
    };
    let port: u16 =
        port.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("replicaof: invalid master port '{}'", port))?;
    Ok((host.to_string(), port))
}

/// Redis 7's accepted range of each numeric option (CONFIG SET and the
/// config file alike; `hz` is clamped instead, as Redis does). A missing
/// name has no bound.
const BOUNDS: &[(&str, i64, i64)] = &[
    ("acllog-max-len", 0, i64::MAX),
    // Below 1mb Redis refuses these: a tiny query buffer limit disconnects
    // every client on its next request.
    ("proto-max-bulk-len", 1 << 20, i64::MAX),
    ("client-query-buffer-limit", 1 << 20, i64::MAX),
    ("maxclients", 1, u32::MAX as i64),
    ("timeout", 0, i32::MAX as i64),
    ("hz", 0, i32::MAX as i64),
    // shardis's own option: the wait is taken inside one event-loop turn.
    ("batch-wait-us", 0, 10_000),
    ("auto-aof-rewrite-percentage", 0, i32::MAX as i64),
    ("auto-aof-rewrite-min-size", 0, i64::MAX),
    ("maxmemory", 0, i64::MAX),
    ("maxmemory-samples", 1, i32::MAX as i64),
    ("lfu-log-factor", 0, i32::MAX as i64),
    ("lfu-decay-time", 0, i32::MAX as i64),
    ("slowlog-log-slower-than", -1, i64::MAX),
    ("slowlog-max-len", 0, i64::MAX),
    ("latency-monitor-threshold", 0, i64::MAX),
    ("busy-reply-threshold", 0, i64::MAX),
    ("repl-backlog-size", 1, i64::MAX),
    ("repl-timeout", 1, i32::MAX as i64),
    ("repl-ping-replica-period", 1, i32::MAX as i64),
    ("replica-priority", 0, i32::MAX as i64),
    ("replica-announce-port", 0, 65535),
    ("min-replicas-to-write", 0, i32::MAX as i64),
    ("min-replicas-max-lag", 0, i32::MAX as i64),
    ("list-max-listpack-size", i32::MIN as i64, i32::MAX as i64),
];

/// The other encoding thresholds: sizes and counts, never negative.
const ENCODING_BOUND: (&str, i64, i64) = ("", 0, i64::MAX);

/// `v` within `name`'s bounds, or Redis's complaint.
fn in_bounds(name: &str, v: i128) -> Result<(), String> {
    let limit = encoding_limit(name);
    let name = limit.map_or(name, |l| l.name);
    // Redis's own range where shardis has none of its own.
    let redis = redis_options::find(name).and_then(|o| match o.kind {
        redis_options::Kind::Int(lo, hi) | redis_options::Kind::Mem(lo, hi) => Some((name, lo, hi)),
        _ => None,
    });
    let bound = BOUNDS.iter().find(|(n, ..)| *n == name).or(redis.as_ref()).or(limit.map(|_| &ENCODING_BOUND));
    match bound {
        Some(&(_, lo, hi)) if v < lo as i128 || v > hi as i128 => {
            Err(format!("argument must be between {} and {} inclusive", lo, hi))
        }
        _ => Ok(()),
    }
}

/// A collection-encoding threshold by name (the pre-7.0 `ziplist` names too).
fn encoding_limit(name: &str) -> Option<&'static crate::keyspace::limits::Limit> {
    let name = name.replace("ziplist", "listpack");
    crate::keyspace::limits::ALL.iter().copied().find(|l| l.name == name)
}

/// What `Config::set` answers for a name it does not know (CONFIG SET
/// words this error differently from the others).
pub const UNKNOWN_OPTION: &str = "Unknown option or number of arguments for CONFIG SET";

/// Redis 7's older names, accepted wherever the current name is (CONFIG
/// GET and SET, the file) and listed beside it by CONFIG GET, as Redis
/// does. Names shardis does not have yet are here too, so they keep their
/// alias when they arrive.
pub const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("slaveof", "replicaof"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-priority", "replica-priority"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
];

/// An option's current name, lowercase (options are case-insensitive).
pub fn canonical_name(name: &str) -> String {
    let l = name.to_ascii_lowercase();
    ALIASES.iter().find(|(alias, _)| *alias == l).map_or(l, |(_, current)| current.to_string())
}

/// CONFIG GET's entries plus each alias whose current name is there.
trait WithAliases {
    fn with_aliases(self) -> Self;
}

impl WithAliases for Vec<(&'static str, String)> {
    fn with_aliases(mut self) -> Self {
        for (alias, current) in ALIASES {
            if let Some(v) = self.iter().find(|(n, _)| n == current).map(|(_, v)| v.clone()) {
                self.push((alias, v));
            }
        }
        self
    }
}

/// rewrite-method's values.
const REWRITE_METHODS: &[&str] = &["replay", "snapshot"];

/// appendfsync's values, in the order Redis's error lists them.
const FSYNC_POLICIES: &[&str] = &["everysec", "always", "no"];

/// A boolean option as CONFIG SET takes it: yes or no, any case.
pub fn parse_yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// An enumerated option's value, lowercase, if it is one of `names`.
fn one_of(v: &str, names: &[&str]) -> Result<String, String> {
    let l = v.to_ascii_lowercase();
    match names.contains(&l.as_str()) {
        true => Ok(l),
        false => Err(format!("argument(s) must be one of the following: {}", names.join(", "))),
    }
}

/// An encoding threshold's value: sizes (`*-value`, `*-bytes`) are memory values
/// ("1k", "2kb"), counts plain integers (negative list sizes included).
fn encoding_value(name: &str, v: &str) -> Result<i64, String> {
    if name.ends_with("-value") || name.ends_with("-bytes") {
        parse_memory(v)
    } else {
        redis_options::parse_int(v)
    }
}

/// The `[encoding]` table: integers, or Redis's memory values as strings.
fn encoding_values<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    let raw = std::collections::BTreeMap::<String, Raw>::deserialize(d)?;
    let mut out = std::collections::BTreeMap::new();
    for (name, v) in raw {
        let v = match v {
            Raw::Int(n) => n,
            Raw::Text(t) => encoding_value(&canonical_name(&name), &t)
                .map_err(|e| serde::de::Error::custom(format!("[encoding] {name}: {e}")))?,
        };
        out.insert(canonical_name(&name), v);
    }
    Ok(out)
}

/// The `[redis-compat]` table: each a Redis option shardis keeps without
/// acting on it (`redis_options`), as a string, integer or boolean,
/// validated as Redis validates it.
fn compat_values<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    let raw = std::collections::BTreeMap::<String, Raw>::deserialize(d)?;
    let mut c = Config::default();
    for (name, v) in raw {
        let text = match v {
            Raw::Bool(b) => if b { "yes" } else { "no" }.to_string(),
            Raw::Int(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        let e = |e: String| serde::de::Error::custom(format!("[redis-compat] {name}: {e}"));
        match redis_options::find(&canonical_name(&name)) {
            Some(o) if o.here != Here::Real => c.set_compat(o, &text).map_err(e)?,
            Some(_) => return Err(e("shardis implements it: set it outside [redis-compat]".into())),
            None => return Err(e("not a Redis 7.0 option".into())),
        }
    }
    Ok(c.redis_compat)
}

/// Memory sizes as Redis accepts them: 512mb, 1gb, 1024k, plain bytes.
pub fn parse_memory(v: &str) -> Result<i64, String> {
    let l = v.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1i64 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (l.as_str(), 1)
    };
    // As Redis: a memory value is never negative, and an empty one is 0.
    if num.is_empty() && mul == 1 {
        return Ok(0);
    }
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err("argument must be a memory value".to_string());
    }
    num.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| "argument must be a memory value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_through_toml() {
        let c = Config::default();
        let text = c.to_toml().expect("serialise");
        assert_eq!(Config::from_toml(&text).expect("parse"), c);
    }

    #[test]
    fn shipped_config_file_parses() {
        let text = include_str!("../config/shardis.toml");
        let c = Config::from_toml(text).expect("config/shardis.toml must parse");
        c.validate().expect("and be valid");
    }

    #[test]
    fn config_set_rules() {
        let mut c = Config::default();
        c.set("proto-max-bulk-len", "2mb").expect("settable");
        assert_eq!(c.proto_max_bulk_len, 2 << 20);
        assert!(c.set("port", "1").is_err());
        assert!(c.set("appendfsync", "sometimes").is_err());
        assert_eq!(c.appendfsync, "everysec");
    }

    #[test]
    fn config_set_keeps_to_redis_ranges() {
        let mut c = Config::default();
        for (name, bad) in [
            ("client-query-buffer-limit", "-1"),
            ("client-query-buffer-limit", "1"),
            ("client-query-buffer-limit", "1023kb"),
            ("proto-max-bulk-len", "1000"),
            ("maxclients", "0"),
            ("maxclients", "-5"),
            ("maxclients", "4294967296"),
            ("timeout", "-1"),
            ("timeout", "2147483648"),
            ("auto-aof-rewrite-percentage", "-1"),
            ("auto-aof-rewrite-min-size", "-1"),
            ("maxmemory", "-1"),
            ("maxmemory-samples", "0"),
            ("maxmemory-samples", "-1"),
            ("slowlog-log-slower-than", "-2"),
            ("slowlog-max-len", "-1"),
            ("batch-wait-us", "-1"),
            ("batch-wait-us", "10001"),
            ("hash-max-listpack-entries", "-1"),
            ("hash-max-ziplist-value", "-1"),
            ("list-max-listpack-size", "2147483648"),
            ("protected-mode", "maybe"),
        ] {
            assert!(c.set(name, bad).is_err(), "CONFIG SET {name} {bad} was taken");
        }
        assert_eq!(c, Config::default(), "a refused value changes nothing");
        assert_eq!(c.set("maxclients", "0").unwrap_err(), "argument must be between 1 and 4294967295 inclusive");
        assert_eq!(c.set("client-query-buffer-limit", "-1").unwrap_err(), "argument must be a memory value");
        for (name, good) in [
            ("client-query-buffer-limit", "1mb"),
            ("maxclients", "1"),
            ("slowlog-log-slower-than", "-1"),
            ("timeout", "0"),
            ("protected-mode", "no"),
        ] {
            c.set(name, good).unwrap_or_else(|e| panic!("CONFIG SET {name} {good}: {e}"));
        }
        // Redis clamps hz into 1..=500 rather than refusing it (negatives it refuses).
        c.set("hz", "0").expect("hz 0");
        assert_eq!(c.hz, 1);
        c.set("hz", "100000").expect("hz 100000");
        assert_eq!(c.hz, 500);
        assert!(c.set("hz", "-1").is_err());
        assert_eq!(c.set("enable-debug-command", "yes").unwrap_err(), "can't set immutable config");
        // The file is held to the same ranges.
        let e = Config::from_toml("maxclients = 0\n").expect("toml").validate().unwrap_err();
        assert_eq!(e, "maxclients: argument must be between 1 and 4294967295 inclusive");
        assert!(Config::from_toml("enable-debug-command = \"sometimes\"\n").expect("toml").validate().is_err());
        assert!(Config::from_toml("[encoding]\nzset-max-listpack-value = -3\n").expect("toml").validate().is_err());
    }

    #[test]
    fn old_names_and_redis_value_forms() {
        assert_eq!(canonical_name("HASH-MAX-ZIPLIST-VALUE"), "hash-max-listpack-value");
        assert_eq!(canonical_name("slave-read-only"), "replica-read-only");
        assert_eq!(canonical_name("maxmemory"), "maxmemory");
        let mut c = Config::default();
        c.set("hash-max-ziplist-value", "1k").expect("alias with a memory unit");
        c.set("list-max-ziplist-size", "-4").expect("negative list size");
        assert_eq!(c.encoding.get("hash-max-listpack-value"), Some(&1000));
        assert_eq!(c.encoding.get("list-max-listpack-size"), Some(&-4));
        let entries = c.entries();
        let get = |n: &str| entries.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("hash-max-ziplist-value"), get("hash-max-listpack-value"));
        assert_eq!(c.set("protected-mode", "true").unwrap_err(), "argument must be 'yes' or 'no'");
        assert_eq!(c.set("nosuch", "1").unwrap_err(), UNKNOWN_OPTION);
        assert_eq!(parse_memory(""), Ok(0));
        let c = Config::from_toml("[encoding]\nzset-max-ziplist-value = \"2kb\"\nhash-max-listpack-entries = 64\n")
            .expect("units in the file");
        assert_eq!(c.encoding.get("zset-max-listpack-value"), Some(&2048));
        assert!(Config::from_toml("[encoding]\nhash-max-listpack-entries = \"1kb\"\n").is_err(), "counts take no unit");
    }

    #[test]
    fn redis_options_shardis_keeps_without_acting_on_them() {
        let mut c = Config::default();
        c.set("loglevel", "WARNING").expect("inert option");
        c.set("slave-serve-stale-data", "no").expect("by its alias");
        c.set("hll-sparse-max-bytes", "2k").expect("memory value");
        let get = |c: &Config, n: &str| c.entries().into_iter().find(|(k, _)| *k == n).map(|(_, v)| v);
        assert_eq!(get(&c, "loglevel").as_deref(), Some("warning"));
        assert_eq!(get(&c, "replica-serve-stale-data").as_deref(), Some("no"));
        assert_eq!(get(&c, "slave-serve-stale-data").as_deref(), Some("no"));
        assert_eq!(get(&c, "hll-sparse-max-bytes").as_deref(), Some("2000"));
        assert_eq!(get(&c, "rdbcompression").as_deref(), Some("yes"), "Redis's default until set");
        assert_eq!(
            c.set("loglevel", "loud").unwrap_err(),
            "argument(s) must be one of the following: debug, verbose, notice, warning"
        );
        assert_eq!(c.set("daemonize", "no").unwrap_err(), "can't set immutable config");
        assert_eq!(c.set("dir", "/tmp").unwrap_err(), "can't set protected config");
        assert_eq!(c.set("tls-port", "6380").unwrap_err(), "shardis has no TLS");
        c.set("tls-port", "0").expect("Redis's default is taken");
        // REWRITE writes them and the file gives them back.
        let back = Config::from_toml(&c.to_toml().expect("toml")).expect("parse");
        assert_eq!(back, c);
        assert!(Config::from_toml("[redis-compat]\nloglevel = \"loud\"\n").is_err());
        assert!(Config::from_toml("[redis-compat]\nmaxmemory = 5\n").is_err(), "implemented: not here");
        assert!(Config::from_toml("[redis-compat]\nnosuch = 5\n").is_err());
        assert!(Config::from_toml("save = \"900\"\n").expect("toml").validate().is_err(), "save as Redis parses it");
        let f = Config::from_toml("[redis-compat]\nio-threads = 4\nactiverehashing = false\n").expect("toml");
        assert_eq!(f.redis_compat.get("activerehashing").map(String::as_str), Some("no"));
        // At the top of the file too, as in a redis.conf.
        let f =
            Config::from_toml("loglevel = \"verbose\"\nport = 7000\n[redis-compat]\nio-threads = 4\n").expect("toml");
        assert_eq!(f.redis_compat.get("loglevel").map(String::as_str), Some("verbose"));
        assert_eq!(f.redis_compat.get("io-threads").map(String::as_str), Some("4"));
        assert_eq!(f.port, 7000);
        assert!(Config::from_toml("loglevel = \"loud\"\n").is_err());
        assert!(Config::from_toml("loglevel = \"debug\"\nnosuch = 1\n").is_err());
        // The command line takes the start-only ones.
        let mut c = Config::default();
        c.set_at_start("daemonize", "no").expect("Redis's default");
        c.set_at_start("io-threads", "4").expect("start-only option");
        assert_eq!(c.set_at_start("daemonize", "yes").unwrap_err(), redis_options::unsupported_reason("daemonize"));
        c.set_at_start("databases", "16").expect("16 databases");
        assert!(c.set_at_start("databases", "32").is_err());
    }

    #[test]
    fn security_defaults_are_redis_7s() {
        let c = Config::default();
        assert!(c.protected_mode);
        assert_eq!(c.enable_debug_command, "no");
    }

    #[test]
    fn maxmemory_options() {
        let mut c = Config::default();
        assert_eq!((c.maxmemory, c.maxmemory_policy.as_str(), c.maxmemory_samples), (0, "noeviction", 5));
        c.set("maxmemory", "2mb").expect("settable");
        c.set("maxmemory-policy", "ALLKEYS-LFU").expect("settable");
        c.set("maxmemory-samples", "10").expect("settable");
        assert_eq!((c.maxmemory, c.maxmemory_policy.as_str(), c.maxmemory_samples), (2 << 20, "allkeys-lfu", 10));
        let e = c.set("maxmemory-policy", "lru").expect_err("unknown policy");
        assert!(e.starts_with("argument(s) must be one of the following: volatile-lru"), "{e}");
        assert!(c.set("maxmemory-samples", "0").is_err());
        assert!(c.set("maxmemory", "3x").is_err());
        assert_eq!(c.maxmemory_policy, "allkeys-lfu");
        let c = Config::from_toml("maxmemory = 1048576\nmaxmemory-policy = \"volatile-ttl\"\n").expect("toml");
        assert_eq!((c.maxmemory, c.maxmemory_policy.as_str(), c.maxmemory_samples), (1 << 20, "volatile-ttl", 5));
    }
}

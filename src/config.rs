//! Server options: embedded defaults, an optional TOML file, CLI flags on
//! top, and the subset `CONFIG SET` may change at run time. Pure: no I/O
//! beyond reading the file named on the command line.

use serde::{Deserialize, Serialize};

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
    /// Password for AUTH; empty = no password.
    pub requirepass: String,
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
    /// SLOWLOG keeps commands that ran at least this many µs (0: all,
    /// negative: none).
    pub slowlog_log_slower_than: i64,
    /// Entries SLOWLOG keeps on each shard.
    pub slowlog_max_len: u64,
    /// Collection-encoding thresholds by their Redis names
    /// (`hash-max-listpack-entries`, ...), as a `[encoding]` table; the
    /// ones not given keep Redis's defaults.
    pub encoding: std::collections::BTreeMap<String, i64>,
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
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            maxclients: 10000,
            client_output_buffer_limit: crate::shard::obuf::Limits::default().to_string(),
            timeout: 0,
            hz: 10,
            pin_threads: true,
            batch_wait_us: crate::shard::wait_policy::DEFAULT_BUDGET_US,
            disable_thp: true,
            appendonly: true,
            appendfsync: "everysec".into(),
            aof_segment_size: 64 << 20,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            logfile: String::new(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            encoding: Default::default(),
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
    #[arg(long = "slowlog-log-slower-than", allow_hyphen_values = true)]
    pub slowlog_log_slower_than: Option<i64>,
    #[arg(long = "slowlog-max-len")]
    pub slowlog_max_len: Option<u64>,
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
        toml::from_str(text).map_err(|e| e.to_string())
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
        if let Some(v) = &cli.requirepass {
            c.requirepass = v.clone();
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
        if let Some(v) = &cli.maxmemory {
            c.maxmemory = parse_memory(v)?;
        }
        if let Some(v) = &cli.maxmemory_policy {
            c.maxmemory_policy = v.to_ascii_lowercase();
        }
        if let Some(v) = cli.maxmemory_samples {
            c.maxmemory_samples = v;
        }
        if let Some(v) = cli.slowlog_log_slower_than {
            c.slowlog_log_slower_than = v;
        }
        if let Some(v) = cli.slowlog_max_len {
            c.slowlog_max_len = v;
        }
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
        if self.shards > 1024 {
            return Err("shards must be at most 1024".into());
        }
        if self.proto_max_bulk_len < 1024 * 1024 {
            return Err("proto-max-bulk-len must be at least 1mb".into());
        }
        if self.batch_wait_us > 10_000 {
            return Err("batch-wait-us must be at most 10000".into());
        }
        if self.hz == 0 || self.hz > 500 {
            return Err("hz must be between 1 and 500".into());
        }
        if crate::keyspace::evict::Policy::parse(&self.maxmemory_policy).is_none() {
            return Err(format!(
                "argument(s) must be one of the following: {}",
                crate::keyspace::evict::POLICY_NAMES.join(", ")
            ));
        }
        self.output_limits()?;
        if self.maxmemory < 0 {
            return Err("maxmemory must not be negative".into());
        }
        if self.maxmemory_samples == 0 || self.maxmemory_samples > i32::MAX as u32 {
            return Err("argument must be between 1 and 2147483647 inclusive".into());
        }
        Ok(())
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
            ("logfile", self.logfile.clone()),
            // Read-only compatibility values that tools ask for.
            ("save", String::new()),
            ("databases", "16".into()),
            ("maxmemory", self.maxmemory.to_string()),
            ("maxmemory-policy", self.maxmemory_policy.clone()),
            ("maxmemory-samples", self.maxmemory_samples.to_string()),
            ("slowlog-log-slower-than", self.slowlog_log_slower_than.to_string()),
            ("slowlog-max-len", self.slowlog_max_len.to_string()),
        ]
        .into_iter()
        .chain(crate::keyspace::limits::ALL.iter().map(|l| (l.name, l.get().to_string())))
        .collect()
    }

    /// CONFIG SET: change one option at run time, or say why not.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| v.parse::<i64>().map_err(|_| "argument couldn't be parsed into an integer".to_string());
        let mut next = self.clone();
        match name.to_ascii_lowercase().as_str() {
            "requirepass" => next.requirepass = value.to_string(),
            "proto-max-bulk-len" => next.proto_max_bulk_len = parse_memory(value)?,
            "client-query-buffer-limit" => next.client_query_buffer_limit = parse_memory(value)?,
            "maxclients" => next.maxclients = int(value)?.max(1) as u64,
            "client-output-buffer-limit" => {
                next.client_output_buffer_limit = self.output_limits()?.updated(value)?.to_string()
            }
            "timeout" => next.timeout = int(value)?.max(0) as u64,
            "hz" => next.hz = int(value)?.clamp(1, 500) as u32,
            "auto-aof-rewrite-percentage" => next.auto_aof_rewrite_percentage = int(value)?.max(0) as u32,
            "auto-aof-rewrite-min-size" => next.auto_aof_rewrite_min_size = parse_memory(value)?,
            "batch-wait-us" => next.batch_wait_us = int(value)?.clamp(0, 10_000) as u32,
            "appendfsync" => next.appendfsync = value.to_ascii_lowercase(),
            "appendonly" => next.appendonly = parse_bool(value)?,
            "save" => {}
            "maxmemory" => next.maxmemory = parse_memory(value)?,
            "maxmemory-policy" => next.maxmemory_policy = value.to_ascii_lowercase(),
            "maxmemory-samples" => next.maxmemory_samples = int(value)?.clamp(0, u32::MAX as i64) as u32,
            "slowlog-log-slower-than" => next.slowlog_log_slower_than = int(value)?,
            "slowlog-max-len" => next.slowlog_max_len = int(value)?.clamp(0, i64::MAX) as u64,
            n if encoding_limit(n).is_some() => {
                let v = int(value)?;
                if let Some(l) = encoding_limit(n) {
                    next.encoding.insert(l.name.to_string(), v);
                }
            }
            "port" | "bind" | "shards" | "dir" | "aof-segment-size" | "pin-threads" | "logfile" | "databases"
            | "disable-thp" => return Err("can't set immutable config".into()),
            _ => return Err("Unknown option or number of arguments for CONFIG SET".into()),
        }
        next.validate()?;
        next.apply_encoding_limits()?;
        *self = next;
        Ok(())
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

/// A collection-encoding threshold by name (the pre-7.0 `ziplist` names too).
fn encoding_limit(name: &str) -> Option<&'static crate::keyspace::limits::Limit> {
    let name = name.replace("ziplist", "listpack");
    crate::keyspace::limits::ALL.iter().copied().find(|l| l.name == name)
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
    num.parse::<i64>()
        .ok()
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

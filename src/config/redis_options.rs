//! Every option redis-server 7.0 has, as a table: its kind (and so how
//! CONFIG SET validates a value and how CONFIG GET shows it), Redis's
//! default, whether Redis lets CONFIG SET change it, and what shardis does
//! with it. Kinds, bounds, defaults and error texts were read off a
//! running redis-server 7.0.15 (tests/config_all.rs compares them).
//!
//! - `Real`: shardis implements the option; `Config` holds it in a field
//!   of its own (`Config::entries` / `Config::set`).
//! - `Inert`: accepted and kept (CONFIG GET returns what was set, CONFIG
//!   REWRITE writes it to the `[redis-compat]` table), validated as Redis
//!   validates it, but it changes nothing here: so that configurations,
//!   tools and test suites written for Redis work unchanged.
//! - `Unsupported`: only Redis's default is accepted; another value is
//!   refused with the reason (`unsupported_reason`), because taking it
//!   silently would leave a user believing in e.g. a TLS port that is not
//!   there.

/// How a value is written, validated and shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// yes / no, any case.
    Bool,
    /// An integer (Redis's strict form: no `+`, no leading zeros) in range.
    Int(i64, i64),
    /// A memory value (`1k`, `2mb`, `1gb`, plain bytes) in range; shown in bytes.
    Mem(i64, i64),
    /// One of the names, any case; shown lowercase.
    Enum(&'static [&'static str]),
    /// Several of the names (shutdown-on-sig*): `default` alone or with the others.
    Flags(&'static [&'static str]),
    /// Any string.
    Str,
    /// A form of its own (`normalize_special`, or shardis's own code for `Real` ones).
    Special,
}

/// Whether redis-server 7.0 lets CONFIG SET change the option.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mutability {
    Mutable,
    /// `can't set immutable config`: only the file and the command line set it.
    Immutable,
    /// `can't set protected config` (Redis's `enable-protected-configs no`, its default).
    Protected,
}

/// What shardis does with the option (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Here {
    Real,
    Inert,
    Unsupported,
}

#[derive(Debug)]
pub struct RedisOption {
    pub name: &'static str,
    /// Its pre-7.0 name, which Redis also lists in CONFIG GET.
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub mutability: Mutability,
    /// As redis-server's CONFIG GET shows it with no config file.
    pub default: &'static str,
    pub here: Here,
}

use Here::*;
use Kind::*;
use Mutability::*;

const I64: i64 = i64::MAX;
const I32: i64 = i32::MAX as i64;
const I32_MIN: i64 = i32::MIN as i64;
const U32: i64 = u32::MAX as i64;
const NO_YES_LOCAL: &[&str] = &["no", "yes", "local"];

const fn opt(name: &'static str, kind: Kind, mutability: Mutability, default: &'static str, here: Here) -> RedisOption {
    RedisOption { name, alias: None, kind, mutability, default, here }
}

const fn aka(o: RedisOption, alias: &'static str) -> RedisOption {
    RedisOption { alias: Some(alias), ..o }
}

/// Every redis-server 7.0 option, by its current name.
pub static OPTIONS: &[RedisOption] = &[
    opt("acl-pubsub-default", Enum(&["allchannels", "resetchannels"]), Mutable, "resetchannels", Inert),
    opt("aclfile", Str, Immutable, "", Real),
    opt("acllog-max-len", Int(0, I64), Mutable, "128", Real),
    opt("active-defrag-cycle-max", Int(1, 99), Mutable, "25", Inert),
    opt("active-defrag-cycle-min", Int(1, 99), Mutable, "1", Inert),
    opt("active-defrag-ignore-bytes", Mem(1, I64), Mutable, "104857600", Inert),
    opt("active-defrag-max-scan-fields", Int(1, I64), Mutable, "1000", Inert),
    opt("active-defrag-threshold-lower", Int(0, 1000), Mutable, "10", Inert),
    opt("active-defrag-threshold-upper", Int(0, 1000), Mutable, "100", Inert),
    opt("active-expire-effort", Int(1, 10), Mutable, "1", Inert),
    opt("activedefrag", Bool, Mutable, "no", Unsupported),
    opt("activerehashing", Bool, Mutable, "yes", Inert),
    opt("always-show-logo", Bool, Immutable, "no", Inert),
    opt("aof-disable-auto-gc", Bool, Mutable, "no", Inert),
    opt("aof-load-truncated", Bool, Mutable, "yes", Inert),
    opt("aof-rewrite-incremental-fsync", Bool, Mutable, "yes", Inert),
    opt("aof-timestamp-enabled", Bool, Mutable, "no", Inert),
    opt("aof-use-rdb-preamble", Bool, Mutable, "yes", Inert),
    opt("aof_rewrite_cpulist", Str, Immutable, "", Inert),
    opt("appenddirname", Str, Immutable, "appendonlydir", Inert),
    opt("appendfilename", Str, Immutable, "appendonly.aof", Inert),
    opt("appendfsync", Enum(&["everysec", "always", "no"]), Mutable, "everysec", Real),
    opt("appendonly", Bool, Mutable, "no", Real),
    opt("auto-aof-rewrite-min-size", Mem(0, I64), Mutable, "67108864", Real),
    opt("auto-aof-rewrite-percentage", Int(0, I32), Mutable, "100", Real),
    opt("bgsave_cpulist", Str, Immutable, "", Inert),
    opt("bind", Special, Mutable, "* -::*", Real),
    opt("bind-source-addr", Str, Mutable, "", Inert),
    opt("bio_cpulist", Str, Immutable, "", Inert),
    aka(opt("busy-reply-threshold", Int(0, I64), Mutable, "5000", Real), "lua-time-limit"),
    opt(
        "client-output-buffer-limit",
        Special,
        Mutable,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Real,
    ),
    opt("client-query-buffer-limit", Mem(1048576, I64), Mutable, "1073741824", Real),
    opt("cluster-allow-pubsubshard-when-down", Bool, Mutable, "yes", Inert),
    opt("cluster-allow-reads-when-down", Bool, Mutable, "no", Inert),
    opt("cluster-allow-replica-migration", Bool, Mutable, "yes", Inert),
    opt("cluster-announce-bus-port", Int(0, 65535), Mutable, "0", Inert),
    opt("cluster-announce-hostname", Special, Mutable, "", Inert),
    opt("cluster-announce-ip", Str, Mutable, "", Inert),
    opt("cluster-announce-port", Int(0, 65535), Mutable, "0", Inert),
    opt("cluster-announce-tls-port", Int(0, 65535), Mutable, "0", Inert),
    opt("cluster-config-file", Str, Immutable, "nodes.conf", Inert),
    opt("cluster-enabled", Bool, Immutable, "no", Unsupported),
    opt("cluster-link-sendbuf-limit", Mem(0, I64), Mutable, "0", Inert),
    opt("cluster-migration-barrier", Int(0, I32), Mutable, "1", Inert),
    opt("cluster-node-timeout", Int(0, I64), Mutable, "15000", Inert),
    opt("cluster-port", Int(0, 65535), Immutable, "0", Inert),
    opt("cluster-preferred-endpoint-type", Enum(&["ip", "hostname", "unknown-endpoint"]), Mutable, "ip", Inert),
    aka(opt("cluster-replica-no-failover", Bool, Mutable, "no", Inert), "cluster-slave-no-failover"),
    aka(opt("cluster-replica-validity-factor", Int(0, I32), Mutable, "10", Inert), "cluster-slave-validity-factor"),
    opt("cluster-require-full-coverage", Bool, Mutable, "yes", Inert),
    opt("crash-log-enabled", Bool, Mutable, "yes", Inert),
    opt("crash-memcheck-enabled", Bool, Mutable, "yes", Inert),
    opt("daemonize", Bool, Immutable, "no", Unsupported),
    opt("databases", Int(1, I32), Immutable, "16", Real),
    opt("dbfilename", Str, Protected, "dump.rdb", Inert),
    opt("dir", Special, Protected, "./", Real),
    opt("disable-thp", Bool, Immutable, "yes", Real),
    opt("dynamic-hz", Bool, Mutable, "yes", Inert),
    opt("enable-debug-command", Enum(NO_YES_LOCAL), Immutable, "no", Real),
    opt("enable-module-command", Enum(NO_YES_LOCAL), Immutable, "no", Inert),
    opt("enable-protected-configs", Enum(NO_YES_LOCAL), Immutable, "no", Inert),
    aka(opt("hash-max-listpack-entries", Int(0, I64), Mutable, "512", Real), "hash-max-ziplist-entries"),
    aka(opt("hash-max-listpack-value", Mem(0, I64), Mutable, "64", Real), "hash-max-ziplist-value"),
    opt("hll-sparse-max-bytes", Mem(0, I64), Mutable, "3000", Inert),
    opt("hz", Int(0, I32), Mutable, "10", Real),
    opt("ignore-warnings", Str, Mutable, "", Inert),
    opt("io-threads", Int(1, 128), Immutable, "1", Inert),
    opt("io-threads-do-reads", Bool, Immutable, "no", Inert),
    opt("jemalloc-bg-thread", Bool, Mutable, "yes", Inert),
    opt("latency-monitor-threshold", Int(0, I64), Mutable, "0", Real),
    opt("latency-tracking", Bool, Mutable, "yes", Inert),
    opt("latency-tracking-info-percentiles", Special, Mutable, "50 99 99.9", Inert),
    opt("lazyfree-lazy-eviction", Bool, Mutable, "no", Real),
    opt("lazyfree-lazy-expire", Bool, Mutable, "no", Real),
    opt("lazyfree-lazy-server-del", Bool, Mutable, "no", Real),
    opt("lazyfree-lazy-user-del", Bool, Mutable, "no", Real),
    opt("lazyfree-lazy-user-flush", Bool, Mutable, "no", Real),
    opt("lfu-decay-time", Int(0, I32), Mutable, "1", Real),
    opt("lfu-log-factor", Int(0, I32), Mutable, "10", Real),
    opt("list-compress-depth", Int(0, I32), Mutable, "0", Real),
    aka(opt("list-max-listpack-size", Int(I32_MIN, I32), Mutable, "-2", Real), "list-max-ziplist-size"),
    opt("logfile", Str, Immutable, "", Real),
    opt("loglevel", Enum(&["debug", "verbose", "notice", "warning"]), Mutable, "notice", Inert),
    opt("masterauth", Str, Mutable, "", Real),
    opt("masteruser", Str, Mutable, "", Real),
    opt("maxclients", Int(1, U32), Mutable, "10000", Real),
    opt("maxmemory", Mem(0, I64), Mutable, "0", Real),
    opt("maxmemory-clients", Special, Mutable, "0", Inert),
    opt("maxmemory-eviction-tenacity", Int(0, 100), Mutable, "10", Inert),
    opt("maxmemory-policy", Enum(crate::keyspace::evict::POLICY_NAMES), Mutable, "noeviction", Real),
    opt("maxmemory-samples", Int(1, I32), Mutable, "5", Real),
    aka(opt("min-replicas-max-lag", Int(0, I32), Mutable, "10", Real), "min-slaves-max-lag"),
    aka(opt("min-replicas-to-write", Int(0, I32), Mutable, "0", Real), "min-slaves-to-write"),
    opt("no-appendfsync-on-rewrite", Bool, Mutable, "no", Inert),
    opt("notify-keyspace-events", Special, Mutable, "", Real),
    opt("oom-score-adj", Enum(&["no", "yes", "relative", "absolute"]), Mutable, "no", Inert),
    opt("oom-score-adj-values", Special, Mutable, "0 200 800", Inert),
    opt("pidfile", Str, Immutable, "", Unsupported),
    opt("port", Int(0, 65535), Mutable, "6379", Real),
    opt("proc-title-template", Special, Mutable, "{title} {listen-addr} {server-mode}", Inert),
    opt("propagation-error-behavior", Enum(&["ignore", "panic", "panic-on-replicas"]), Mutable, "ignore", Inert),
    opt("protected-mode", Bool, Mutable, "yes", Real),
    opt("proto-max-bulk-len", Mem(1048576, I64), Mutable, "536870912", Real),
    opt("rdb-del-sync-files", Bool, Mutable, "no", Inert),
    opt("rdb-save-incremental-fsync", Bool, Mutable, "yes", Inert),
    opt("rdbchecksum", Bool, Immutable, "yes", Inert),
    opt("rdbcompression", Bool, Mutable, "yes", Inert),
    opt("repl-backlog-size", Mem(1, I64), Mutable, "1048576", Real),
    opt("repl-backlog-ttl", Int(0, I64), Mutable, "3600", Inert),
    opt("repl-disable-tcp-nodelay", Bool, Mutable, "no", Inert),
    opt("repl-diskless-load", Enum(&["disabled", "on-empty-db", "swapdb"]), Mutable, "disabled", Inert),
    opt("repl-diskless-sync", Bool, Mutable, "yes", Inert),
    opt("repl-diskless-sync-delay", Int(0, I32), Mutable, "5", Inert),
    opt("repl-diskless-sync-max-replicas", Int(0, I32), Mutable, "0", Inert),
    aka(opt("repl-ping-replica-period", Int(1, I32), Mutable, "10", Real), "repl-ping-slave-period"),
    opt("repl-timeout", Int(1, I32), Mutable, "60", Real),
    aka(opt("replica-announce-ip", Str, Mutable, "", Real), "slave-announce-ip"),
    aka(opt("replica-announce-port", Int(0, 65535), Mutable, "0", Real), "slave-announce-port"),
    opt("replica-announced", Bool, Mutable, "yes", Inert),
    opt("replica-ignore-disk-write-errors", Bool, Mutable, "no", Inert),
    aka(opt("replica-ignore-maxmemory", Bool, Mutable, "yes", Inert), "slave-ignore-maxmemory"),
    aka(opt("replica-lazy-flush", Bool, Mutable, "no", Real), "slave-lazy-flush"),
    aka(opt("replica-priority", Int(0, I32), Mutable, "100", Real), "slave-priority"),
    aka(opt("replica-read-only", Bool, Mutable, "yes", Real), "slave-read-only"),
    aka(opt("replica-serve-stale-data", Bool, Mutable, "yes", Inert), "slave-serve-stale-data"),
    aka(opt("replicaof", Special, Immutable, "", Real), "slaveof"),
    opt("requirepass", Str, Mutable, "", Real),
    opt("sanitize-dump-payload", Enum(&["no", "yes", "clients"]), Mutable, "no", Inert),
    opt("save", Special, Mutable, "3600 1 300 100 60 10000", Real),
    opt("server_cpulist", Str, Immutable, "", Inert),
    opt("set-max-intset-entries", Int(0, I64), Mutable, "512", Real),
    opt("set-proc-title", Bool, Immutable, "yes", Inert),
    opt("shutdown-on-sigint", Flags(&["default", "save", "nosave", "now", "force"]), Mutable, "default", Inert),
    opt("shutdown-on-sigterm", Flags(&["default", "save", "nosave", "now", "force"]), Mutable, "default", Inert),
    opt("shutdown-timeout", Int(0, I32), Mutable, "10", Inert),
    opt("slowlog-log-slower-than", Int(-1, I64), Mutable, "10000", Real),
    opt("slowlog-max-len", Int(0, I64), Mutable, "128", Real),
    opt("socket-mark-id", Int(0, U32), Immutable, "0", Inert),
    opt("stop-writes-on-bgsave-error", Bool, Mutable, "yes", Inert),
    opt("stream-node-max-bytes", Mem(0, I64), Mutable, "4096", Real),
    opt("stream-node-max-entries", Int(0, I64), Mutable, "100", Real),
    opt("supervised", Enum(&["upstart", "systemd", "auto", "no"]), Immutable, "no", Unsupported),
    opt("syslog-enabled", Bool, Immutable, "no", Unsupported),
    opt(
        "syslog-facility",
        Enum(&["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]),
        Immutable,
        "local0",
        Inert,
    ),
    opt("syslog-ident", Str, Immutable, "redis", Inert),
    opt("tcp-backlog", Int(0, I32), Immutable, "511", Inert),
    opt("tcp-keepalive", Int(0, I32), Mutable, "300", Inert),
    opt("timeout", Int(0, I32), Mutable, "0", Real),
    opt("tls-auth-clients", Enum(&["no", "yes", "optional"]), Mutable, "yes", Inert),
    opt("tls-ca-cert-dir", Str, Mutable, "", Inert),
    opt("tls-ca-cert-file", Str, Mutable, "", Inert),
    opt("tls-cert-file", Str, Mutable, "", Inert),
    opt("tls-ciphers", Str, Mutable, "", Inert),
    opt("tls-ciphersuites", Str, Mutable, "", Inert),
    opt("tls-client-cert-file", Str, Mutable, "", Inert),
    opt("tls-client-key-file", Str, Mutable, "", Inert),
    opt("tls-client-key-file-pass", Str, Mutable, "", Inert),
    opt("tls-cluster", Bool, Mutable, "no", Unsupported),
    opt("tls-dh-params-file", Str, Mutable, "", Inert),
    opt("tls-key-file", Str, Mutable, "", Inert),
    opt("tls-key-file-pass", Str, Mutable, "", Inert),
    opt("tls-port", Int(0, 65535), Mutable, "0", Unsupported),
    opt("tls-prefer-server-ciphers", Bool, Mutable, "no", Inert),
    opt("tls-protocols", Str, Mutable, "", Inert),
    opt("tls-replication", Bool, Mutable, "no", Unsupported),
    opt("tls-session-cache-size", Int(0, I32), Mutable, "20480", Inert),
    opt("tls-session-cache-timeout", Int(0, I32), Mutable, "300", Inert),
    opt("tls-session-caching", Bool, Mutable, "yes", Inert),
    opt("tracking-table-max-keys", Int(0, I64), Mutable, "1000000", Inert),
    opt("unixsocket", Str, Immutable, "", Unsupported),
    opt("unixsocketperm", Special, Immutable, "0", Inert),
    aka(opt("zset-max-listpack-entries", Int(0, I64), Mutable, "128", Real), "zset-max-ziplist-entries"),
    aka(opt("zset-max-listpack-value", Mem(0, I64), Mutable, "64", Real), "zset-max-ziplist-value"),
];

/// The option by its current name (lowercase; `canonical_name` maps aliases).
pub fn find(name: &str) -> Option<&'static RedisOption> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// Why an `Unsupported` option takes only Redis's default.
pub fn unsupported_reason(name: &str) -> &'static str {
    match name {
        "daemonize" => "shardis does not daemonize (run it under a supervisor)",
        "supervised" => "shardis does not notify a supervisor",
        "pidfile" => "shardis writes no pid file",
        "syslog-enabled" => "shardis logs to its logfile or stderr, not to syslog",
        "unixsocket" => "shardis listens on TCP only",
        "cluster-enabled" => "shardis has no cluster mode",
        "activedefrag" => "Active defragmentation cannot be enabled: shardis has no active defragmentation",
        _ => "shardis has no TLS",
    }
}

/// An integer as Redis's `string2ll` takes it: an optional `-`, digits,
/// no leading zero (except "0" itself), no `+`, no spaces.
pub fn parse_int(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !digits.starts_with('0'));
    ok.then(|| v.parse::<i64>().ok()).flatten().ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

fn between(v: i64, lo: i64, hi: i64) -> Result<i64, String> {
    if v < lo || v > hi {
        return Err(format!("argument must be between {} and {} inclusive", lo, hi));
    }
    Ok(v)
}

fn enum_error(names: &[&str]) -> String {
    format!("argument(s) must be one of the following: {}", names.join(", "))
}

impl RedisOption {
    /// `value` validated as redis-server 7.0 validates it for this option,
    /// in the form its CONFIG GET shows it afterwards; or Redis's error text.
    pub fn normalize(&self, value: &str) -> Result<String, String> {
        match self.kind {
            Bool => super::parse_yes_no(value).map(|b| if b { "yes" } else { "no" }.to_string()),
            Int(lo, hi) => between(parse_int(value)?, lo, hi).map(|v| v.to_string()),
            Mem(lo, hi) => between(super::parse_memory(value)?, lo, hi).map(|v| v.to_string()),
            Enum(names) => {
                let l = value.to_ascii_lowercase();
                match names.iter().find(|n| **n == l) {
                    // Two names for one value: Redis shows the first.
                    Some(&"relative") if self.name == "oom-score-adj" => Ok("yes".into()),
                    Some(n) => Ok(n.to_string()),
                    None => Err(enum_error(names)),
                }
            }
            Flags(names) => normalize_flags(names, value),
            Str => Ok(value.to_string()),
            Special => normalize_special(self.name, value),
        }
    }

    /// Whether `normalized` is Redis's default (what an `Unsupported` option may hold).
    pub fn is_default(&self, normalized: &str) -> bool {
        normalized == self.default
    }
}

/// shutdown-on-sigint / -sigterm: names separated by spaces; `default`
/// stands for none of the others; SAVE and NOSAVE exclude each other.
/// Shown in the table's order.
fn normalize_flags(names: &[&str], value: &str) -> Result<String, String> {
    let words: Vec<String> = value.split(' ').filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect();
    if words.is_empty() || words.iter().any(|w| !names.contains(&w.as_str())) {
        return Err(enum_error(names));
    }
    if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
    }
    let set: Vec<&str> = names.iter().copied().filter(|n| *n != "default" && words.iter().any(|w| w == n)).collect();
    Ok(if set.is_empty() { "default".to_string() } else { set.join(" ") })
}

/// Redis's `save`: empty, or pairs of "<seconds> <changes>" (seconds at
/// least 1, changes at least 0) separated by single spaces.
pub fn normalize_save(value: &str) -> Result<String, String> {
    const BAD: &str = "Invalid save parameters";
    if value.is_empty() {
        return Ok(String::new());
    }
    let words: Vec<&str> = value.split(' ').collect();
    if !words.len().is_multiple_of(2) {
        return Err(BAD.into());
    }
    for pair in words.chunks(2) {
        let secs = parse_int(pair[0]).map_err(|_| BAD.to_string())?;
        let changes = parse_int(pair[1]).map_err(|_| BAD.to_string())?;
        if secs < 1 || changes < 0 {
            return Err(BAD.into());
        }
    }
    Ok(words.join(" "))
}

/// The `Special` options shardis keeps without acting on them.
fn normalize_special(name: &str, value: &str) -> Result<String, String> {
    match name {
        "save" => normalize_save(value),
        "maxmemory-clients" => match value.strip_suffix('%') {
            Some(p) => match parse_int(p) {
                Ok(p) if p > 100 => Err("percentage argument must be less or equal to 100".into()),
                Ok(p) if p >= 0 => Ok(format!("{}%", p)),
                _ => Err("argument must be a memory or percent value".into()),
            },
            None => super::parse_memory(value)
                .map(|v| v.to_string())
                .map_err(|_| "argument must be a memory or percent value".into()),
        },
        "oom-score-adj-values" => {
            let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let vals = words
                .iter()
                .map(|w| parse_int(w).ok().filter(|v| (-2000..=2000).contains(v)))
                .collect::<Option<Vec<i64>>>()
                .ok_or("Invalid oom-score-adj-values, elements must be between -2000 and 2000.")?;
            Ok(vals.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "))
        }
        "latency-tracking-info-percentiles" => {
            let mut out = Vec::new();
            for w in value.split(' ').filter(|w| !w.is_empty()) {
                let p: f64 = w
                    .parse()
                    .ok()
                    .filter(|p: &f64| p.is_finite())
                    .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&p) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                out.push(p.to_string());
            }
            Ok(out.join(" "))
        }
        "proc-title-template" => {
            const VARS: &[&str] =
                &["title", "listen-addr", "server-mode", "port", "tls-port", "unixsocket", "config-file"];
            let bad = || "template format is invalid or contains unknown variables".to_string();
            let mut rest = value;
            if value.is_empty() {
                return Err(bad());
            }
            while let Some(i) = rest.find(['{', '}']) {
                if rest.as_bytes()[i] == b'}' {
                    return Err(bad());
                }
                let after = &rest[i + 1..];
                let end = after.find('}').ok_or_else(bad)?;
                if !VARS.contains(&&after[..end]) {
                    return Err(bad());
                }
                rest = &after[end + 1..];
            }
            Ok(value.to_string())
        }
        "cluster-announce-hostname" => {
            if value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                Ok(value.to_string())
            } else {
                Err("Hostnames may only contain alphanumeric characters, hyphens or dots".into())
            }
        }
        "unixsocketperm" => u32::from_str_radix(value, 8)
            .ok()
            .filter(|p| *p <= 0o777)
            .map(|p| format!("{:o}", p))
            .ok_or_else(|| "Invalid socket file permissions".into()),
        _ => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_agrees_with_the_aliases() {
        assert!(OPTIONS.windows(2).all(|w| w[0].name < w[1].name), "sorted, no duplicates");
        let from_table: Vec<(&str, &str)> = OPTIONS.iter().filter_map(|o| o.alias.map(|a| (a, o.name))).collect();
        let mut listed = super::super::ALIASES.to_vec();
        let mut from_table_sorted = from_table.clone();
        listed.sort();
        from_table_sorted.sort();
        assert_eq!(listed, from_table_sorted);
        assert_eq!(OPTIONS.len() + from_table.len(), 192, "redis-server 7.0's CONFIG GET * lists 192 names");
        // Every default is a value the option itself takes.
        for o in OPTIONS.iter().filter(|o| o.here != Real) {
            assert_eq!(o.normalize(o.default).as_deref(), Ok(o.default), "{}", o.name);
        }
    }

    #[test]
    fn values_as_redis_takes_them() {
        assert_eq!(parse_int("05"), Err("argument couldn't be parsed into an integer".into()));
        assert!(parse_int("+5").is_err() && parse_int("-0").is_err() && parse_int(" 5").is_err());
        assert_eq!(parse_int("-12"), Ok(-12));
        let n = |name: &str, v: &str| find(name).expect(name).normalize(v);
        assert_eq!(n("loglevel", "WARNING"), Ok("warning".into()));
        assert_eq!(n("oom-score-adj", "Relative"), Ok("yes".into()));
        assert_eq!(n("hll-sparse-max-bytes", "1k"), Ok("1000".into()));
        assert_eq!(n("active-expire-effort", "11"), Err("argument must be between 1 and 10 inclusive".into()));
        assert_eq!(n("shutdown-on-sigint", "now NOSAVE force"), Ok("nosave now force".into()));
        assert_eq!(n("shutdown-on-sigint", "default now"), Ok("now".into()));
        assert!(n("shutdown-on-sigint", "save nosave").unwrap_err().contains("simultaneously"));
        assert_eq!(n("maxmemory-clients", "10%"), Ok("10%".into()));
        assert_eq!(n("maxmemory-clients", "1kb"), Ok("1024".into()));
        assert!(n("maxmemory-clients", "101%").is_err());
        assert_eq!(n("latency-tracking-info-percentiles", "50 99.90"), Ok("50 99.9".into()));
        assert_eq!(n("oom-score-adj-values", "0 100 200"), Ok("0 100 200".into()));
        assert!(n("oom-score-adj-values", "0 100 2001").is_err());
        assert!(n("proc-title-template", "{nope}").is_err());
        assert!(n("proc-title-template", "{title} {port}").is_ok());
        assert!(n("cluster-announce-hostname", "a b").is_err());
        assert_eq!(normalize_save("900 1 300 10"), Ok("900 1 300 10".into()));
        for bad in ["900", "0 1", "-1 1", " 900 1", "abc 1"] {
            assert!(normalize_save(bad).is_err(), "{bad}");
        }
    }
}

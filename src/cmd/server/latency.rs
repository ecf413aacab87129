//! LATENCY: HISTOGRAM from the per-command histograms of every shard, and
//! the latency monitor's LATEST, HISTORY, GRAPH, DOCTOR and RESET over
//! every shard's events merged (`crate::shard::latmon`).

use super::info::{CmdStatInfo, ShardInfo};
use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::latmon::{self, Series};
use crate::shard::FanReq;
use std::collections::BTreeMap;

const ADMIN_CMD: Flags = ADMIN | NOSCRIPT | LOADING | STALE;
const PER_NODE: &[&str] = &["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"];

const fn lt(d: CommandDef) -> CommandDef {
    d.group(Group::Server)
}

pub static COMMANDS: &[CommandDef] = &[lt(container("latency", SUBCOMMANDS)).since("2.8.13")];

static SUBCOMMANDS: &[CommandDef] = &[
    lt(server("latency|doctor", 2, ADMIN_CMD, Shard::cmd_latency_doctor)).since("2.8.13").tips(PER_NODE),
    lt(server("latency|graph", 3, ADMIN_CMD, Shard::cmd_latency_graph)).since("2.8.13").tips(PER_NODE),
    lt(help("latency|help", HELP)).since("2.8.13"),
    lt(server("latency|histogram", -2, ADMIN_CMD, Shard::cmd_latency_histogram)).since("7.0.0").tips(PER_NODE),
    lt(server("latency|history", 3, ADMIN_CMD, Shard::cmd_latency_history)).since("2.8.13").tips(PER_NODE),
    lt(server("latency|latest", 2, ADMIN_CMD, Shard::cmd_latency_latest)).since("2.8.13").tips(PER_NODE),
    lt(server("latency|reset", -2, ADMIN_CMD, Shard::cmd_latency_reset))
        .since("2.8.13")
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

impl Shard {
    /// LATENCY HISTOGRAM [command ...]: every shard's histograms, merged.
    fn cmd_latency_histogram(&mut self, conn: &mut Conn, args: &Args) {
        let names = args.iter().skip(2).map(|n| String::from_utf8_lossy(n).to_ascii_lowercase()).collect();
        self.fan(conn, self.all_shards(), FanReq::Info, FanOp::LatencyHistogram { names });
    }

    fn ask(&mut self, conn: &mut Conn, ask: Ask) {
        self.fan(conn, self.all_shards(), FanReq::LatencyEvents, FanOp::Latency(ask));
    }

    fn cmd_latency_latest(&mut self, conn: &mut Conn, _: &Args) {
        self.ask(conn, Ask::Latest)
    }

    fn cmd_latency_history(&mut self, conn: &mut Conn, args: &Args) {
        self.ask(conn, Ask::History(event_arg(args)))
    }

    fn cmd_latency_graph(&mut self, conn: &mut Conn, args: &Args) {
        self.ask(conn, Ask::Graph(event_arg(args)))
    }

    fn cmd_latency_doctor(&mut self, conn: &mut Conn, _: &Args) {
        self.ask(conn, Ask::Doctor)
    }

    /// RESET [event ...]: how many of the named events (all, if none is
    /// named) some shard had.
    fn cmd_latency_reset(&mut self, conn: &mut Conn, args: &Args) {
        let names = args.iter().skip(2).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        self.fan(conn, self.all_shards(), FanReq::LatencyReset { names }, FanOp::LatencyReset);
    }

    /// The reply to `ask` from every shard's events, merged.
    pub fn reply_latency(&self, r: &mut Reply, ask: &Ask, events: &BTreeMap<&'static str, Series>) {
        let now_sec = crate::util::now_ms() / 1000;
        match ask {
            Ask::Latest => {
                r.array(events.len());
                for (name, s) in events {
                    let (t, ms) = s.samples.last().copied().unwrap_or((0, 0));
                    r.array(4);
                    r.bulk_str(name);
                    r.int(t);
                    r.int(ms as i64);
                    r.int(s.max as i64);
                }
            }
            Ask::History(name) => {
                let samples = events.get(name.as_str()).map_or(&[][..], |s| &s.samples[..]);
                r.array(samples.len());
                for &(t, ms) in samples {
                    r.array(2);
                    r.int(t);
                    r.int(ms as i64);
                }
            }
            Ask::Graph(name) => match events.get(name.as_str()) {
                Some(s) => r.verbatim(latmon::graph(name, s, now_sec).as_bytes()),
                None => r.error(&format!("ERR No samples available for event '{name}'")),
            },
            Ask::Doctor => {
                let cfg = latmon::DoctorConfig {
                    threshold: self.config.latency_monitor_threshold,
                    slowlog_slower_than: self.config.slowlog_log_slower_than,
                    hz: self.config.hz,
                    fsync_always: self.config.appendfsync == "always",
                };
                r.verbatim(latmon::doctor(events, &cfg, now_sec).as_bytes())
            }
        }
    }
}

/// What a LATENCY subcommand asks of the merged events.
#[derive(Debug)]
pub enum Ask {
    Latest,
    History(String),
    Graph(String),
    Doctor,
}

/// The event argument (HISTORY, GRAPH), as text (event names are ASCII).
fn event_arg(args: &Args) -> String {
    String::from_utf8_lossy(&args.get(2)[..args.get(2).len().min(128)]).into_owned()
}

/// Whether LATENCY HISTOGRAM's `name` asks for the row `row`: itself, or
/// for a container, each of its subcommands (as Redis reports them).
fn named(name: &str, row: &str) -> bool {
    row == name || row.strip_prefix(name).is_some_and(|rest| rest.starts_with('|'))
}

/// LATENCY HISTOGRAM's reply for the commands in `names` (all that ran if
/// empty): calls, and cumulative counts per power-of-two µs bucket, as Redis
/// reports them.
pub fn latency_histogram(r: &mut Reply, infos: &[ShardInfo], names: &[String]) {
    let merged: Vec<CmdStatInfo> = super::info::merge_cmdstats(infos)
        .into_iter()
        .filter(|m| m.calls > 0 && !m.hist.is_empty() && (names.is_empty() || names.iter().any(|n| named(n, m.name))))
        .collect();
    r.map(merged.len());
    for m in &merged {
        r.bulk_str(m.name);
        r.map(2);
        r.bulk(b"calls");
        r.int(m.calls as i64);
        r.bulk(b"histogram_usec");
        // Our histograms count clock ticks; Redis's buckets are in ns.
        let Ok(mut ns) = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 56, 2) else {
            r.map(0);
            continue;
        };
        for &(ticks, count) in m.hist.buckets() {
            let _ = ns.record_n(crate::shard::ticks::to_ns(ticks).max(1), count);
        }
        let mut buckets = Vec::new();
        let mut cumulative = 0;
        for v in ns.iter_log(1024, 2.0) {
            let before = cumulative;
            cumulative += v.count_since_last_iteration();
            if cumulative > before {
                buckets.push((ns.highest_equivalent(v.value_iterated_to()) / 1000, cumulative));
            }
        }
        r.map(buckets.len());
        for (us, n) in buckets {
            r.int(us as i64);
            r.int(n as i64);
        }
    }
}

const HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    A report on the latency events seen, with advice.",
    "GRAPH <event>",
    "    An ASCII graph of the <event>'s latency spikes.",
    "HISTORY <event>",
    "    The <event>'s spikes: [unix time, ms] for each second that had one.",
    "LATEST",
    "    Per event: its latest spike's time and ms, and its worst ever.",
    "RESET [<event> ...]",
    "    Forget the named events (all of them when none is named).",
    "HISTOGRAM [COMMAND ...]",
    "    Per command: calls, and how many took at most 1, 2, 4, 8, ... microseconds",
    "    (every command that ran, when none is named).",
    "Events are recorded when latency-monitor-threshold (ms) is not 0.",
    "HELP",
    "    Print this help.",
];

//! LATENCY HISTOGRAM from the per-command histograms of every shard.
//! There is no latency monitor (Redis's is off by default too), so LATEST
//! and HISTORY have no events and RESET resets none.

use super::info::{CmdStatInfo, ShardInfo};
use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::FanReq;

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
    lt(server("latency|history", 3, ADMIN_CMD, Shard::cmd_latency_no_events)).since("2.8.13").tips(PER_NODE),
    lt(server("latency|latest", 2, ADMIN_CMD, Shard::cmd_latency_no_events)).since("2.8.13").tips(PER_NODE),
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

    /// LATEST, HISTORY: no monitor, no events.
    fn cmd_latency_no_events(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).array(0)
    }

    /// RESET [event ...]: none to reset.
    fn cmd_latency_reset(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).int(0)
    }

    fn cmd_latency_graph(&mut self, conn: &mut Conn, args: &Args) {
        Reply::new(&mut conn.out, conn.resp3).error(&format!(
            "ERR No samples available for event '{}'",
            String::from_utf8_lossy(&args.get(2)[..args.get(2).len().min(128)])
        ))
    }

    fn cmd_latency_doctor(&mut self, conn: &mut Conn, _: &Args) {
        Reply::new(&mut conn.out, conn.resp3).verbatim(
            b"shardis has no latency monitor, so there are no latency events to analyse. \
              LATENCY HISTOGRAM shows each command's latency distribution, INFO latencystats its \
              percentiles, and SLOWLOG the slowest commands.\n",
        )
    }
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
    "HISTOGRAM [COMMAND ...]",
    "    Per command: calls, and how many took at most 1, 2, 4, 8, ... microseconds",
    "    (every command that ran, when none is named).",
    "LATEST, HISTORY <event>, GRAPH <event>, RESET [<event> ...]",
    "    Latency monitor events: shardis has no latency monitor, so there are none.",
    "DOCTOR",
    "    Where to look for latency figures.",
    "HELP",
    "    Print this help.",
];

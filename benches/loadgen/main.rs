//! `shardis-loadgen`: a load generator for latency under a fixed offered
//! rate (open loop) and for peak throughput (closed loop), against any
//! Redis-protocol server. One thread drives all connections through epoll
//! (see `event_loop`), so on a small machine the client's own noise stays
//! on one core.
//!
//! Output: one line per run, human-readable or `--csv`:
//! mode,rate_target,rate_achieved,requests,errors,p50_us,p99_us,p999_us,max_us,unanswered,send_lag_p99_us
//! (`send_lag_p99_us`: open loop only, how late the client itself sent; if
//! it is large the client, not the server, was saturated.)

use shardis::protocol::client::scan_reply;
use shardis::protocol::reply::encode_command;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod event_loop;
mod keys;
mod workload;

use event_loop::{Driver, Outcome, Plan};
use keys::KeyChooser;
use workload::{Mix, Workload};

#[derive(clap::Parser, Debug, Clone)]
#[command(name = "shardis-loadgen", about = "Open- and closed-loop Redis load generator")]
struct Opts {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// Connections.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Offered load in requests/s over all connections; 0 = closed loop.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests even if time is left (0 = no limit).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Seconds to wait for outstanding replies after sending stops.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// getset (GET/SET mix) or mset (two-key MSETs, see --cross).
    #[arg(long, default_value = "getset")]
    workload: String,
    /// Fraction of GETs (the rest are SETs).
    #[arg(long, default_value_t = 0.9)]
    get_ratio: f64,
    /// mset: fraction of MSETs whose two keys live on different shards.
    #[arg(long, default_value_t = 0.0)]
    cross: f64,
    /// mset: the server's shard count (to place keys on shards).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Key distribution: uniform, or zipf:S (e.g. zipf:0.99).
    #[arg(long, default_value = "uniform")]
    dist: String,
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// Closed loop: requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// SET every key once before measuring.
    #[arg(long)]
    preload: bool,
    #[arg(long)]
    csv: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    let opts: Opts = clap::Parser::parse();
    if let Err(e) = run(&opts) {
        eprintln!("shardis-loadgen: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Result<(), String> {
    if o.conns == 0 || o.pipeline == 0 {
        return Err("--conns and --pipeline must be at least 1".into());
    }
    if !(o.duration > 0.0 && o.duration <= 3600.0 && o.drain >= 0.0 && o.drain <= 600.0) {
        return Err("--duration must be in (0, 3600] and --drain in [0, 600] seconds".into());
    }
    let chooser = KeyChooser::parse(&o.dist, o.keys)?;
    let mix = Mix::parse(&o.workload, o.get_ratio, o.cross, o.shards)?;
    let mut work = Workload::new(mix, chooser, o.value_size, o.seed);
    // Timers fire within the default 50 µs slack; intended-time latency would
    // count that lateness, so ask for precise wake-ups.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    if o.preload {
        preload(o).map_err(|e| format!("preload: {e}"))?;
    }
    let plan = Plan {
        rate: o.rate,
        duration: Duration::from_secs_f64(o.duration),
        pipeline: if o.rate == 0 { o.pipeline } else { 1 },
        max_requests: if o.requests == 0 { u64::MAX } else { o.requests },
        drain: Duration::from_secs_f64(o.drain),
    };
    let outcome = Driver::connect(&o.host, o.port, o.conns)?.run(&plan, &mut work)?;
    print(o, &outcome);
    Ok(())
}

fn print(o: &Opts, r: &Outcome) {
    let achieved = r.completed as f64 / r.elapsed.as_secs_f64();
    let q = |p: f64| r.hist.value_at_quantile(p);
    let mode = if o.rate == 0 { "closed" } else { "open" };
    let lag = if o.rate == 0 { 0 } else { r.send_lag.value_at_quantile(0.99) };
    if o.csv {
        println!(
            "{mode},{},{:.0},{},{},{},{},{},{},{},{}",
            o.rate,
            achieved,
            r.completed,
            r.errors,
            q(0.5),
            q(0.99),
            q(0.999),
            r.hist.max(),
            r.unanswered,
            lag
        );
    } else {
        println!(
            "{mode} loop: target {} req/s, achieved {:.0} req/s, {} requests, {} errors, {} unanswered; \
             latency µs p50 {} p99 {} p99.9 {} max {}; client send lag p99 {} µs",
            o.rate,
            achieved,
            r.completed,
            r.errors,
            r.unanswered,
            q(0.5),
            q(0.99),
            q(0.999),
            r.hist.max(),
            lag
        );
    }
}

/// SET `key:%012d` for every key once, over one blocking connection in
/// pipelined batches (not measured, so simplicity wins).
fn preload(o: &Opts) -> Result<(), String> {
    let mut s = TcpStream::connect((o.host.as_str(), o.port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let value = vec![b'v'; o.value_size];
    let mut key = Vec::new();
    let mut buf = Vec::new();
    let mut rbuf = vec![0u8; 64 * 1024];
    let batch = 1000u64;
    let mut i = 0;
    while i < o.keys {
        let n = batch.min(o.keys - i);
        buf.clear();
        for k in i..i + n {
            workload::key_into(&mut key, k);
            encode_command(&mut buf, &[&b"SET"[..], &key, &value]);
        }
        s.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        let (mut got, mut start, mut end) = (0, 0, 0);
        while got < n {
            while let Some(r) = scan_reply(&rbuf[start..end])? {
                if r.error {
                    return Err(format!(
                        "error reply: {}",
                        String::from_utf8_lossy(&rbuf[start..start + r.len]).trim()
                    ));
                }
                start += r.len;
                got += 1;
            }
            if got == n {
                break;
            }
            rbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            let m = s.read(&mut rbuf[end..]).map_err(|e| format!("read: {e}"))?;
            if m == 0 {
                return Err("server closed the connection".into());
            }
            end += m;
        }
        i += n;
    }
    Ok(())
}

//! `shardis-loadgen`: a load generator for latency under a fixed offered
//! rate (open loop) and for peak throughput (closed loop), against any
//! Redis-protocol server.
//!
//! Open loop: every connection has a schedule of intended send times
//! (rate / conns per second, evenly spaced). A request's latency runs from
//! its *intended* send time to its reply, so a server stall shows up in full
//! for every request it delayed (no coordinated omission). Each connection
//! has a writer thread that follows the schedule and a reader thread that
//! matches replies (in order) to intended times.
//!
//! Closed loop: each connection keeps `--pipeline` requests in flight and
//! sends the next as soon as a reply arrives.
//!
//! Output: one line per run, human-readable or `--csv`:
//! mode,rate_target,rate_achieved,requests,errors,p50_us,p99_us,p999_us,max_us

use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

mod keys;
use keys::KeyChooser;

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
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Fraction of GETs (the rest are SETs).
    #[arg(long, default_value_t = 0.9)]
    get_ratio: f64,
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
    let chooser = match KeyChooser::parse(&opts.dist, opts.keys) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("shardis-loadgen: {e}");
            std::process::exit(2);
        }
    };
    if opts.preload {
        if let Err(e) = preload(&opts) {
            eprintln!("shardis-loadgen: preload: {e}");
            std::process::exit(1);
        }
    }
    let result = if opts.rate == 0 { closed_loop(&opts, chooser) } else { open_loop(&opts, chooser) };
    match result {
        Ok(r) => r.print(&opts),
        Err(e) => {
            eprintln!("shardis-loadgen: {e}");
            std::process::exit(1);
        }
    }
}

struct RunResult {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    elapsed: Duration,
}

impl RunResult {
    fn print(&self, o: &Opts) {
        let achieved = self.requests as f64 / self.elapsed.as_secs_f64();
        let q = |p: f64| self.hist.value_at_quantile(p);
        let mode = if o.rate == 0 { "closed" } else { "open" };
        if o.csv {
            println!(
                "{mode},{},{:.0},{},{},{},{},{},{}",
                o.rate,
                achieved,
                self.requests,
                self.errors,
                q(0.5),
                q(0.99),
                q(0.999),
                self.hist.max()
            );
        } else {
            println!(
                "{mode} loop: target {} req/s, achieved {:.0} req/s, {} requests, {} errors; latency µs p50 {} p99 {} p99.9 {} max {}",
                o.rate,
                achieved,
                self.requests,
                self.errors,
                q(0.5),
                q(0.99),
                q(0.999),
                self.hist.max()
            );
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds")
}

fn connect(o: &Opts) -> Result<TcpStream, String> {
    let s = TcpStream::connect((o.host.as_str(), o.port)).map_err(|e| format!("connect {}:{}: {e}", o.host, o.port))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    Ok(s)
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// One request of the mix.
fn request(out: &mut Vec<u8>, rng: &mut keys::Rng, o: &Opts, chooser: &KeyChooser, value: &[u8]) {
    let key = format!("key:{:012}", chooser.pick(rng));
    if rng.next_f64() < o.get_ratio {
        encode(out, &[b"GET", key.as_bytes()]);
    } else {
        encode(out, &[b"SET", key.as_bytes(), value]);
    }
}

/// Read one reply; true if it was an error reply.
fn read_reply(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<bool, String> {
    line.clear();
    r.read_until(b'\n', line).map_err(|e| format!("read: {e}"))?;
    if line.is_empty() {
        return Err("server closed the connection".into());
    }
    match line[0] {
        b'$' => {
            let n: i64 = std::str::from_utf8(&line[1..line.len().saturating_sub(2)])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad bulk header")?;
            if n >= 0 {
                let mut body = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(r, &mut body).map_err(|e| format!("read: {e}"))?;
            }
            Ok(false)
        }
        b'-' => Ok(true),
        _ => Ok(false),
    }
}

fn preload(o: &Opts) -> Result<(), String> {
    let s = connect(o)?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let value = vec![b'v'; o.value_size];
    let mut line = Vec::new();
    let batch = 1000u64;
    let mut i = 0;
    while i < o.keys {
        let mut buf = Vec::new();
        let n = batch.min(o.keys - i);
        for k in i..i + n {
            encode(&mut buf, &[b"SET", format!("key:{:012}", k).as_bytes(), &value]);
        }
        w.write_all(&buf).map_err(|e| e.to_string())?;
        for _ in 0..n {
            read_reply(&mut r, &mut line)?;
        }
        i += n;
    }
    Ok(())
}

fn closed_loop(o: &Opts, chooser: Arc<KeyChooser>) -> Result<RunResult, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(new_hist()));
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..o.conns {
        let s = connect(o)?;
        let (o, chooser, stop, total, errors, merged) =
            (o.clone(), chooser.clone(), stop.clone(), total.clone(), errors.clone(), merged.clone());
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut w = s.try_clone().map_err(|e| e.to_string())?;
            let mut r = BufReader::new(s);
            let mut rng = keys::Rng::new(o.seed.wrapping_mul(1000).wrapping_add(c as u64));
            let value = vec![b'v'; o.value_size];
            let mut hist = new_hist();
            let mut line = Vec::new();
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                buf.clear();
                for _ in 0..o.pipeline {
                    request(&mut buf, &mut rng, &o, &chooser, &value);
                }
                let t = Instant::now();
                w.write_all(&buf).map_err(|e| e.to_string())?;
                for _ in 0..o.pipeline {
                    if read_reply(&mut r, &mut line)? {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let us = t.elapsed().as_micros() as u64;
                let _ = hist.record(us.max(1));
                total.fetch_add(o.pipeline as u64, Ordering::Relaxed);
            }
            merged.lock().map_err(|_| "poisoned")?.add(&hist).map_err(|e| e.to_string())?;
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(o.duration));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "worker panicked")??;
    }
    let elapsed = start.elapsed();
    let hist = merged.lock().map_err(|_| "poisoned")?.clone();
    Ok(RunResult { hist, requests: total.load(Ordering::Relaxed), errors: errors.load(Ordering::Relaxed), elapsed })
}

fn open_loop(o: &Opts, chooser: Arc<KeyChooser>) -> Result<RunResult, String> {
    let per_conn = o.rate as f64 / o.conns as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(new_hist()));
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(o.duration);
    let mut handles = Vec::new();
    for c in 0..o.conns {
        let s = connect(o)?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<Instant>();
        // Stagger connections across one interval so sends do not bunch up.
        let offset = interval.mul_f64(c as f64 / o.conns as f64);
        let (o2, chooser) = (o.clone(), chooser.clone());
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut rng = keys::Rng::new(o2.seed.wrapping_mul(1000).wrapping_add(c as u64));
            let value = vec![b'v'; o2.value_size];
            let mut buf = Vec::new();
            let mut next = start + offset;
            while next < end {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                // Send everything that is due (catching up after a stall).
                buf.clear();
                let now = Instant::now();
                while next <= now && next < end {
                    request(&mut buf, &mut rng, &o2, &chooser, &value);
                    if tx.send(next).is_err() {
                        return Ok(());
                    }
                    next += interval;
                }
                if !buf.is_empty() {
                    w.write_all(&buf).map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }));
        let (total, errors, merged) = (total.clone(), errors.clone(), merged.clone());
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut r = BufReader::new(s);
            let mut hist = new_hist();
            let mut line = Vec::new();
            for intended in rx {
                if read_reply(&mut r, &mut line)? {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                let us = Instant::now().saturating_duration_since(intended).as_micros() as u64;
                let _ = hist.record(us.max(1));
                total.fetch_add(1, Ordering::Relaxed);
            }
            merged.lock().map_err(|_| "poisoned")?.add(&hist).map_err(|e| e.to_string())?;
            Ok(())
        }));
    }
    for h in handles {
        h.join().map_err(|_| "worker panicked")??;
    }
    let elapsed = start.elapsed();
    let hist = merged.lock().map_err(|_| "poisoned")?.clone();
    Ok(RunResult { hist, requests: total.load(Ordering::Relaxed), errors: errors.load(Ordering::Relaxed), elapsed })
}

//! Microbenchmarks of the pure hot paths, in ns per operation:
//! the RESP request parser, the command table (what a request's routing
//! asks of its row, and a command run through `cmd::exec`), the keyspace
//! (set/lookup over 1M keys) and the AOF record codec with its CRC32C. Plain `harness = false` with
//! `std::time`, so `cargo bench` needs no extra crates.
//!
//! `cargo bench --bench micro [-- --quick] [-- NAME-SUBSTRING]`. Each case
//! runs a fixed number of operations per round for a fixed number of
//! rounds (bounded in count, not time) and prints the best and the median
//! round: the best approaches the code's cost, the spread shows the noise.
//! With `--csv`, lines are `name,ops_per_round,best_ns_per_op,median_ns_per_op`.

use shardis::keyspace::value::Value;
use shardis::keyspace::Keyspace;
use shardis::persist::{crc32c::crc32c, record};
use shardis::protocol::parse::{parse_request, parse_request_resume, Limits, ParseOutcome, Resume};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Opts {
    quick: bool,
    csv: bool,
    filter: Vec<String>,
}

fn main() {
    let mut o = Opts { quick: false, csv: false, filter: Vec::new() };
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--csv" => o.csv = true,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            s if s.starts_with("--") => {}
            s => o.filter.push(s.to_string()),
        }
    }
    if !o.csv {
        println!("{:<32} {:>12} {:>12} {:>12}", "case", "ops/round", "best ns/op", "median ns/op");
    }
    parser(&o);
    table(&o);
    keyspace(&o);
    aof_codec(&o);
}

fn wanted(o: &Opts, name: &str) -> bool {
    o.filter.is_empty() || o.filter.iter().any(|f| name.contains(f.as_str()))
}

/// Time `rounds` calls of `round`, each doing `ops` operations; print ns/op.
fn report(o: &Opts, name: &str, ops: u64, rounds: usize, mut round: impl FnMut()) {
    report_timed(o, name, ops, rounds, || {
        let t = Instant::now();
        round();
        t.elapsed()
    })
}

/// As `report`, for rounds that time only part of themselves (setup excluded).
fn report_timed(o: &Opts, name: &str, ops: u64, rounds: usize, mut round: impl FnMut() -> Duration) {
    let mut ns: Vec<f64> = (0..rounds).map(|_| round().as_nanos() as f64 / ops as f64).collect();
    ns.sort_by(|a, b| a.total_cmp(b));
    let (best, median) = (ns[0], ns[ns.len() / 2]);
    if o.csv {
        println!("{name},{ops},{best:.2},{median:.2}");
    } else {
        println!("{name:<32} {ops:>12} {best:>12.2} {median:>12.2}");
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

/// A shuffled 0..n (xorshift; repeatable).
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn resp(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn parser(o: &Opts) {
    // A pipeline of alternating SET/GET, as redis-benchmark -P sends it.
    for size in [3usize, 256] {
        let name = format!("parse SET/GET pipeline {size}B");
        if !wanted(o, &name) {
            continue;
        }
        let value = vec![b'x'; size];
        let mut buf = Vec::new();
        let reqs = 1000u64;
        for i in 0..reqs / 2 {
            resp(&mut buf, &[b"SET", &key(i), &value]);
            resp(&mut buf, &[b"GET", &key(i)]);
        }
        let limits = Limits::default();
        let mut args = Vec::with_capacity(8);
        report(o, &name, reqs, if o.quick { 50 } else { 500 }, || {
            let mut pos = 0;
            while pos < buf.len() {
                match parse_request(black_box(&mut buf[pos..]), &limits, &mut args) {
                    ParseOutcome::Done { consumed } => pos += consumed,
                    other => panic!("benchmark pipeline did not parse: {other:?}"),
                }
                black_box(&args);
            }
        });
        // The same through the resuming entry point a connection uses.
        let name = format!("parse SET/GET pipeline {size}B resume");
        let mut resume = Resume::default();
        report(o, &name, reqs, if o.quick { 50 } else { 500 }, || {
            let mut pos = 0;
            while pos < buf.len() {
                match parse_request_resume(black_box(&mut buf[pos..]), &limits, &mut args, &mut resume) {
                    ParseOutcome::Done { consumed } => pos += consumed,
                    other => panic!("benchmark pipeline did not parse: {other:?}"),
                }
                black_box(&args);
            }
        });
    }
    big_multibulk_in_reads(o);
}

/// One `*1048576` request of 1-byte elements (7.3 MB) arriving in 16 KiB
/// reads, parsed after each read as a connection does: ns per element.
fn big_multibulk_in_reads(o: &Opts) {
    let name = "parse 1M-element request, 16K reads";
    if !wanted(o, name) {
        return;
    }
    let n = 1024 * 1024;
    let mut wire = format!("*{n}\r\n").into_bytes();
    wire.extend(b"$1\r\na\r\n".repeat(n));
    let limits = Limits::default();
    let mut args = Vec::new();
    report(o, name, n as u64, if o.quick { 2 } else { 5 }, || {
        let (mut resume, mut need) = (Resume::default(), 0);
        for end in (16 * 1024..wire.len() + 16 * 1024).step_by(16 * 1024) {
            let end = end.min(wire.len());
            if end < need {
                continue;
            }
            match parse_request_resume(black_box(&mut wire[..end]), &limits, &mut args, &mut resume) {
                ParseOutcome::Incomplete { need: n } => need = n,
                ParseOutcome::Done { consumed } => assert_eq!(consumed, wire.len()),
                ParseOutcome::Error(e) => panic!("{e:?}"),
            }
        }
        black_box(&args);
    });
}

/// What every request asks of the command table before it runs: its row
/// (a subcommand's for a container), arity and routing flags, its keys and
/// their shard; then GET and SET run through `cmd::exec` on a small keyspace.
fn table(o: &Opts) {
    use shardis::cmd::{self, flags::*, Ctx, OwnedArgs, Rng};
    use shardis::protocol::reply::Reply;
    let n: u64 = if o.quick { 1_000_000 } else { 10_000_000 };
    let rounds = if o.quick { 3 } else { 7 };
    let get = OwnedArgs::from_slices(&["GET", "key:000000000001"]);
    let set = OwnedArgs::from_slices(&["SET", "key:000000000001", "abc"]);
    let map = shardis::shard::router::SlotMap::contiguous(4);
    for (name, req) in [("GET", &get), ("SET", &set)] {
        let case = format!("table route {name}");
        if !wanted(o, &case) {
            continue;
        }
        let args = req.args();
        report(o, &case, n, rounds, || {
            for _ in 0..n {
                let args = black_box(&args);
                let Some((id, def)) = cmd::find(args) else { panic!("{name}") };
                let local = !def.has(CONN_SHARD | EVERY_SHARD | BLOCKING) && cmd::arity_ok(def, args.len());
                let route = shardis::shard::router::route(&map, 0, def, args);
                black_box((id, local, route));
            }
        });
    }
    let mut ks = Keyspace::new();
    let mut rng = Rng::new(1);
    let mut out = Vec::with_capacity(64);
    for (name, req) in [("SET", &set), ("GET", &get)] {
        let case = format!("table exec {name}");
        if !wanted(o, &case) {
            continue;
        }
        let args = req.args();
        let n = n / 10;
        report(o, &case, n, rounds, || {
            for _ in 0..n {
                let Some((_, def)) = cmd::find(&args) else { panic!("{name}") };
                out.clear();
                let mut ctx = Ctx::new(&mut ks, 0, 1, Reply::new(&mut out, false), &mut rng);
                cmd::exec(def, &mut ctx, &args);
                black_box(&out);
            }
        });
    }
}

fn keyspace(o: &Opts) {
    let n: u64 = if o.quick { 100_000 } else { 1_000_000 };
    if !["keyspace set", "keyspace lookup"].iter().any(|c| wanted(o, c)) {
        return;
    }
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();
    let order = shuffled(n);
    // As SET stores a 3-byte value (inline in the entry, no allocation).
    const VALUE: &[u8] = b"abc";
    let rounds = if o.quick { 3 } else { 5 };
    // Insert into an empty keyspace (grows the table), then overwrite.
    let mut ks = Keyspace::new();
    report_timed(o, &format!("keyspace set new ({n} keys)"), n, rounds, || {
        // Freeing the previous round's keyspace is not part of the cost.
        ks = Keyspace::new();
        let t = Instant::now();
        for &i in &order {
            ks.set(0, &keys[i as usize], Value::from_bytes(VALUE), 0);
        }
        t.elapsed()
    });
    report(o, &format!("keyspace set existing ({n} keys)"), n, rounds, || {
        for &i in &order {
            ks.set(0, &keys[i as usize], Value::from_bytes(VALUE), 0);
        }
    });
    let now = shardis::util::now_ms();
    report(o, &format!("keyspace lookup hit ({n} keys)"), n, rounds, || {
        for &i in &order {
            black_box(ks.lookup(0, &keys[i as usize], now).is_some());
        }
    });
    let misses: Vec<Vec<u8>> = (n..2 * n).map(key).collect();
    report(o, &format!("keyspace lookup miss ({n} keys)"), n, rounds, || {
        for k in &misses {
            black_box(ks.lookup(0, k, now).is_none());
        }
    });
}

fn aof_codec(o: &Opts) {
    let payload = {
        // One 100-byte SET as it would be logged.
        let mut p = Vec::new();
        resp(&mut p, &[b"SET", b"key:000000000001", &[b'v'; 57]]);
        assert_eq!(p.len(), 100, "payload size");
        p
    };
    let recs = 10_000u64;
    let rounds = if o.quick { 20 } else { 200 };
    let mut out = Vec::with_capacity(recs as usize * (record::HEADER_LEN + payload.len()));
    if wanted(o, "aof record append") {
        report(o, "aof record append (100B)", recs, rounds, || {
            out.clear();
            for lsn in 0..recs {
                record::append(&mut out, lsn, 0, 0, 0, |b| b.extend_from_slice(&payload));
            }
            black_box(&out);
        });
    }
    out.clear();
    for lsn in 0..recs {
        record::append(&mut out, lsn, 0, 0, 0, |b| b.extend_from_slice(&payload));
    }
    if wanted(o, "aof record decode") {
        report(o, "aof record decode (100B)", recs, rounds, || {
            let mut pos = 0;
            while pos < out.len() {
                let (rec, len) = record::decode(black_box(&out[pos..])).expect("valid record");
                black_box(rec.lsn);
                pos += len;
            }
        });
    }
    if wanted(o, "crc32c") {
        report(o, "crc32c (100B)", recs, rounds, || {
            for _ in 0..recs {
                black_box(crc32c(black_box(&payload)));
            }
        });
    }
}

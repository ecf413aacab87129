//! Cross-shard transaction invariants, checked against a real shardis-server
//! (4 shards, and 1 shard where cheap) with concurrent clients:
//! - MSET is all-or-nothing to every reader (MGET and MULTI/EXEC);
//! - MULTI/EXEC transfers between accounts on different shards conserve the
//!   total at every instant and end in the exact expected balances;
//! - WATCH detects conflicting writes from any shard;
//! - RENAME/COPY/MSETNX/DEL/EXISTS across shards behave like redis;
//! - pub/sub fans out across shards, in order, with correct counts.
//!
//! Every loop is bounded in iterations and in wall time, every connection has
//! a read timeout (see `common::resp::READ_TIMEOUT`), and threads report
//! failures through `Failures` so one failure stops the others quickly.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::shards::{conn_on_shard, conn_shard};
use common::{fmt_command, RespConn, Server, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Wall-time cap for each concurrent phase. Loops also have iteration caps;
/// whichever comes first ends them. Never asserted on.
const WALL: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Key placement (independent re-implementation, used only to pick keys).

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

fn key_slot(key: &[u8]) -> u16 {
    let mut part = key;
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                part = &key[open + 1..open + 1 + len];
            }
        }
    }
    crc16(part) % 16384
}

fn shard_of(key: &str, nshards: usize) -> usize {
    key_slot(key.as_bytes()) as usize * nshards / 16384
}

/// First key `prefix:<i>` owned by `shard`.
fn key_on_shard(prefix: &str, shard: usize, nshards: usize) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| shard_of(k, nshards) == shard % nshards)
        .expect("no key found for shard")
}

/// `--shards` of a test server, from its name ("shardis-4").
fn server_shards(server: &Server) -> usize {
    server.name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(1)
}

fn placement(keys: &[String], nshards: usize) -> String {
    keys.iter().map(|k| format!("{k}->shard{}", shard_of(k, nshards))).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Small helpers.

#[test]
fn crc16_matches_redis_cluster_reference() {
    // Reference value from the Redis Cluster specification.
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
}

/// Failures reported by worker threads. The first failure raises `stop` so
/// every other thread ends its loop early.
#[derive(Default)]
struct Failures {
    stop: AtomicBool,
    msgs: Mutex<Vec<String>>,
}

impl Failures {
    fn fail(&self, msg: String) {
        self.stop.store(true, Ordering::SeqCst);
        let mut m = self.msgs.lock().unwrap();
        if m.len() < 30 {
            m.push(msg);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn assert_none(&self, what: &str, server: &Server) {
        let m = self.msgs.lock().unwrap();
        if !m.is_empty() {
            panic!(
                "{what} on {}: {} failure(s):\n  {}\n--- server log tail ---\n{}",
                server.name,
                m.len(),
                m.join("\n  "),
                log_tail(server)
            );
        }
    }
}

fn log_tail(server: &Server) -> String {
    let logs = server.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs `body` in a thread of `scope`; an `Err` or a panic is recorded in
/// `fails` (and stops the other threads) instead of being lost.
fn spawn_worker<'scope, 'env, T: Send + Default + 'scope>(
    s: &'scope thread::Scope<'scope, 'env>,
    fails: &'scope Failures,
    name: String,
    body: impl FnOnce() -> Result<T, String> + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    s.spawn(move || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            fails.fail(format!("[{name}] {e}"));
            T::default()
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            fails.fail(format!("[{name}] panicked: {msg}"));
            T::default()
        }
    })
}

fn connect(port: u16) -> Result<RespConn, String> {
    RespConn::connect(port).map_err(|e| format!("connect to {port}: {e}"))
}

/// One command; I/O errors (including the read timeout) become `Err`.
fn q<A: AsRef<[u8]>>(c: &mut RespConn, args: &[A]) -> Result<Value, String> {
    c.try_cmd(args).map_err(|e| format!("`{}`: I/O error: {e}", fmt_command(args)))
}

/// Several commands in one write, then all their replies.
fn pipeline(c: &mut RespConn, cmds: &[Vec<String>]) -> Result<Vec<Value>, String> {
    let mut buf = Vec::new();
    for cmd in cmds {
        buf.extend_from_slice(&common::encode_command(cmd));
    }
    let show = || cmds.iter().map(|c| fmt_command(c)).collect::<Vec<_>>().join("; ");
    c.send_raw(&buf).map_err(|e| format!("write `{}`: {e}", show()))?;
    cmds.iter()
        .map(|_| c.read_value().map_err(|e| format!("reading replies to `{}`: I/O error: {e}", show())))
        .collect()
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
}

fn cmdv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn text(v: &Value) -> Option<String> {
    v.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

fn ok_queued_exec(replies: &[Value], ncmds: usize) -> Result<(), String> {
    if replies[0] != Value::ok() {
        return Err(format!("MULTI replied {}", replies[0]));
    }
    for (i, r) in replies[1..=ncmds].iter().enumerate() {
        if *r != Value::Simple("QUEUED".into()) {
            return Err(format!("queued command #{i} replied {r} (all replies: {replies:?})"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. MSET atomicity.

fn mset_atomic(nshards: usize) {
    mset_atomic_with(nshards, &[]);
}

fn mset_atomic_with(nshards: usize, extra: &[&str]) {
    const WRITERS: usize = 6;
    const ITERS: usize = 300;
    const READERS: usize = 4;
    const MAX_READS: usize = 200_000;

    let server = Server::start(nshards, extra);
    let port = server.port;
    let keys: Vec<String> = (0..8).map(|i| format!("acct:{i}")).collect();
    let spread: BTreeSet<usize> = keys.iter().map(|k| shard_of(k, nshards)).collect();
    eprintln!("{}: {}", server.name, placement(&keys, nshards));
    assert_eq!(spread.len(), nshards.min(4), "keys should cover every shard");
    // Pairs of keys on different shards for the MULTI readers.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for a in 0..keys.len() {
        for b in 0..keys.len() {
            if a != b && (nshards == 1 || shard_of(&keys[a], nshards) != shard_of(&keys[b], nshards)) {
                pairs.push((a, b));
            }
        }
    }
    assert!(pairs.contains(&(0, 5)));

    let mset_cmd = |v: &str| {
        let mut c = vec!["MSET".to_string()];
        for k in &keys {
            c.push(k.clone());
            c.push(v.to_string());
        }
        c
    };
    let mut c = server.conn();
    assert_eq!(c.cmd(&mset_cmd("init")), Value::ok());

    let fails = Failures::default();
    let writers_done = AtomicUsize::new(0);
    let start = Instant::now();

    let (writes, reads) = thread::scope(|s| {
        let mut wh = Vec::new();
        for w in 0..WRITERS {
            let (fails, writers_done, mset_cmd) = (&fails, &writers_done, &mset_cmd);
            wh.push(spawn_worker(s, fails, format!("writer {w}"), move || {
                let r = (|| {
                    let mut c = connect(port)?;
                    let mut n = 0usize;
                    for i in 0..ITERS {
                        if fails.stopped() || start.elapsed() > WALL {
                            break;
                        }
                        let cmd = mset_cmd(&format!("{w}-{i}"));
                        let r = q(&mut c, &cmd)?;
                        if r != Value::ok() {
                            return Err(format!("MSET (iteration {i}) replied {r}"));
                        }
                        n += 1;
                    }
                    Ok(n)
                })();
                writers_done.fetch_add(1, Ordering::SeqCst);
                r
            }));
        }
        let mut rh = Vec::new();
        for r in 0..READERS {
            let (fails, writers_done, keys, pairs) = (&fails, &writers_done, &keys, &pairs);
            let use_multi = r % 2 == 1;
            rh.push(spawn_worker(s, fails, format!("reader {r} ({})", if use_multi { "MULTI" } else { "MGET" }), move || {
                let mut c = connect(port)?;
                // Linearizability: once a reader has seen writer w's
                // iteration i, it can never see an older iteration of w.
                let mut last_seen: HashMap<String, usize> = HashMap::new();
                let mut n = 0usize;
                let mut mget = vec!["MGET".to_string()];
                mget.extend(keys.iter().cloned());
                while n < MAX_READS && !fails.stopped() && start.elapsed() < WALL {
                    // Read once more after the writers finished.
                    let finished = writers_done.load(Ordering::SeqCst) == WRITERS;
                    let (what, vals): (String, Vec<Value>) = if use_multi {
                        let (a, b) = pairs[n % pairs.len()];
                        let cmds = vec![
                            cmdv(&["MULTI"]),
                            cmdv(&["GET", &keys[a]]),
                            cmdv(&["GET", &keys[b]]),
                            cmdv(&["EXEC"]),
                        ];
                        let rep = pipeline(&mut c, &cmds)?;
                        ok_queued_exec(&rep, 2)?;
                        let items = rep[3]
                            .as_items()
                            .ok_or_else(|| format!("EXEC replied {} for GET {} GET {}", rep[3], keys[a], keys[b]))?;
                        (format!("MULTI GET {} GET {} EXEC", keys[a], keys[b]), items.to_vec())
                    } else {
                        let rep = q(&mut c, &mget)?;
                        let items = rep.as_items().ok_or_else(|| format!("MGET replied {rep}"))?;
                        ("MGET".to_string(), items.to_vec())
                    };
                    let texts: Vec<Option<String>> = vals.iter().map(text).collect();
                    if texts.iter().any(|t| t.is_none()) || texts.windows(2).any(|w| w[0] != w[1]) {
                        return Err(format!(
                            "read #{n}: {what} saw a mix of MSETs (or a missing value): {vals:?}"
                        ));
                    }
                    let v = texts[0].clone().unwrap();
                    if v != "init" {
                        let (wr, it) = v
                            .split_once('-')
                            .and_then(|(a, b)| Some((a.to_string(), b.parse::<usize>().ok()?)))
                            .ok_or_else(|| format!("{what}: unexpected value {v:?}"))?;
                        if let Some(&prev) = last_seen.get(&wr) {
                            if it < prev {
                                return Err(format!(
                                    "read #{n}: {what} saw writer {wr} iteration {it} after already seeing iteration {prev} (stale read)"
                                ));
                            }
                        }
                        last_seen.insert(wr, it);
                    }
                    n += 1;
                    if finished {
                        break;
                    }
                }
                Ok(n)
            }));
        }
        let writes: Vec<usize> = wh.into_iter().map(|h| h.join().unwrap()).collect();
        let reads: Vec<usize> = rh.into_iter().map(|h| h.join().unwrap()).collect();
        (writes, reads)
    });
    fails.assert_none("mset_is_atomic", &server);

    // Final state: all keys hold one writer's last MSET.
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    let fin = c.cmd(&mget);
    let vals: Vec<Option<String>> = fin.as_items().expect("MGET array").iter().map(text).collect();
    assert!(vals.windows(2).all(|w| w[0] == w[1]), "final MGET is mixed: {fin}");
    let last_values: Vec<String> =
        writes.iter().enumerate().filter(|(_, &n)| n > 0).map(|(w, &n)| format!("{w}-{}", n - 1)).collect();
    let v = vals[0].clone().unwrap_or_default();
    assert!(last_values.contains(&v), "final value {v:?} is not the last MSET of any writer ({last_values:?})");
    eprintln!(
        "{}: mset_is_atomic: {} MSETs ({writes:?}), reads per reader {reads:?}, final {v:?}, {:?}",
        server.name,
        writes.iter().sum::<usize>(),
        start.elapsed()
    );
}

#[test]
fn mset_is_atomic() {
    mset_atomic(4);
}

#[test]
fn mset_is_atomic_one_shard() {
    mset_atomic(1);
}

/// Liveness: a cross-shard MULTI/EXEC must complete while cross-shard MSETs
/// keep arriving. Writers run until the reader is done (bounded by WALL and
/// an iteration cap); a starved EXEC shows up as the reader's read timeout.
fn multi_progress(nshards: usize, reader_shard: usize, all_keys: bool) {
    const WRITERS: usize = 6;
    const MAX_WRITES: usize = 50_000;
    const READS: usize = 50;
    let server = Server::start(nshards, &[]);
    let port = server.port;
    let keys: Vec<String> = (0..8).map(|i| format!("acct:{i}")).collect();
    let mut init = vec!["MSET".to_string()];
    for k in &keys {
        init.push(k.clone());
        init.push("init".into());
    }
    let mut reader = conn_on_shard(&server, reader_shard);
    let rshard = conn_shard(&mut reader);
    assert_eq!(reader.cmd(&init), Value::ok());
    let fails = Failures::default();
    let reader_done = AtomicBool::new(false);
    let start = Instant::now();
    let gets: Vec<&String> = if all_keys { keys.iter().collect() } else { vec![&keys[0], &keys[5]] };
    let writes: Vec<usize> = thread::scope(|s| {
        let hs: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (fails, reader_done, init) = (&fails, &reader_done, &init);
                spawn_worker(s, fails, format!("writer {w}"), move || {
                    let mut c = connect(port)?;
                    let mut n = 0;
                    while n < MAX_WRITES
                        && !reader_done.load(Ordering::SeqCst)
                        && !fails.stopped()
                        && start.elapsed() < WALL
                    {
                        let r = q(&mut c, init)?;
                        if r != Value::ok() {
                            return Err(format!("MSET replied {r}"));
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let mut cmds = vec![cmdv(&["MULTI"])];
        cmds.extend(gets.iter().map(|k| cmdv(&["GET", k])));
        cmds.push(cmdv(&["EXEC"]));
        for i in 0..READS {
            if fails.stopped() || start.elapsed() > WALL {
                break;
            }
            match pipeline(&mut reader, &cmds) {
                Ok(rep) => {
                    if let Err(e) = ok_queued_exec(&rep, gets.len()) {
                        fails.fail(format!("reader: {e}"));
                    }
                }
                Err(e) => fails.fail(format!(
                    "reader on shard {rshard:?}: MULTI/EXEC #{i} (GET {:?}) got no reply within the read timeout while MSETs kept running: {e}",
                    gets
                )),
            }
        }
        reader_done.store(true, Ordering::SeqCst);
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    fails.assert_none("multi_exec_not_starved_by_cross_shard_msets", &server);
    eprintln!(
        "{}: reader on shard {rshard:?}: {READS} MULTI/EXEC of {} keys alongside {writes:?} MSETs, {:?}",
        server.name,
        gets.len(),
        start.elapsed()
    );
}

#[test]
fn multi_exec_not_starved_by_cross_shard_msets() {
    for reader_shard in 0..4 {
        multi_progress(4, reader_shard, false);
        multi_progress(4, reader_shard, true);
    }
}

// ---------------------------------------------------------------------------
// 2. Transfers conserve the total.

fn transfers(nshards: usize) {
    transfers_with(nshards, &[]);
}

fn transfers_with(nshards: usize, extra: &[&str]) {
    const ACCOUNTS: usize = 8;
    const INITIAL: i64 = 1000;
    const TOTAL: i64 = ACCOUNTS as i64 * INITIAL;
    const MOVERS: usize = 4;
    const ITERS: usize = 300;
    const AUDITORS: usize = 3;
    const MAX_AUDITS: usize = 100_000;

    let server = Server::start(nshards, extra);
    let port = server.port;
    let keys: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct:{i}")).collect();
    eprintln!("{}: {}", server.name, placement(&keys, nshards));
    let mut c = server.conn();
    let mut init = vec!["MSET".to_string()];
    for k in &keys {
        init.push(k.clone());
        init.push(INITIAL.to_string());
    }
    assert_eq!(c.cmd(&init), Value::ok());

    let fails = Failures::default();
    let movers_done = AtomicUsize::new(0);
    let start = Instant::now();

    let (deltas, audits) = thread::scope(|s| {
        let mut mh = Vec::new();
        for t in 0..MOVERS {
            let (fails, movers_done, keys) = (&fails, &movers_done, &keys);
            mh.push(spawn_worker(s, fails, format!("mover {t}"), move || {
                let r = (|| {
                    let mut c = connect(port)?;
                    let mut rng = StdRng::seed_from_u64(0xacc0_0000 + t as u64);
                    // Net effect of this thread's completed transfers.
                    let mut delta = vec![0i64; ACCOUNTS];
                    let mut done = 0usize;
                    for i in 0..ITERS {
                        if fails.stopped() || start.elapsed() > WALL {
                            break;
                        }
                        let a = rng.gen_range(0..ACCOUNTS);
                        let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                        let x: i64 = rng.gen_range(1..=100);
                        let cmds = vec![
                            cmdv(&["MULTI"]),
                            cmdv(&["DECRBY", &keys[a], &x.to_string()]),
                            cmdv(&["INCRBY", &keys[b], &x.to_string()]),
                            cmdv(&["EXEC"]),
                        ];
                        let rep = pipeline(&mut c, &cmds)?;
                        ok_queued_exec(&rep, 2)?;
                        match rep[3].as_items() {
                            Some([Value::Int(_), Value::Int(_)]) => {
                                delta[a] -= x;
                                delta[b] += x;
                                done += 1;
                            }
                            _ => {
                                return Err(format!(
                                    "transfer #{i} {} -> {} of {x}: EXEC replied {}",
                                    keys[a], keys[b], rep[3]
                                ))
                            }
                        }
                    }
                    Ok((delta, done))
                })();
                movers_done.fetch_add(1, Ordering::SeqCst);
                r
            }));
        }
        let mut ah = Vec::new();
        for a in 0..AUDITORS {
            let (fails, movers_done, keys) = (&fails, &movers_done, &keys);
            let use_multi = a % 2 == 1;
            ah.push(spawn_worker(
                s,
                fails,
                format!("auditor {a} ({})", if use_multi { "MULTI" } else { "MGET" }),
                move || {
                    let mut c = connect(port)?;
                    let mut mget = vec!["MGET".to_string()];
                    mget.extend(keys.iter().cloned());
                    let mut multi = vec![cmdv(&["MULTI"])];
                    multi.extend(keys.iter().map(|k| cmdv(&["GET", k])));
                    multi.push(cmdv(&["EXEC"]));
                    let mut n = 0usize;
                    while n < MAX_AUDITS && !fails.stopped() && start.elapsed() < WALL {
                        let finished = movers_done.load(Ordering::SeqCst) == MOVERS;
                        let vals: Vec<Value> = if use_multi {
                            let rep = pipeline(&mut c, &multi)?;
                            ok_queued_exec(&rep, ACCOUNTS)?;
                            rep[ACCOUNTS + 1]
                                .as_items()
                                .ok_or_else(|| format!("audit EXEC replied {}", rep[ACCOUNTS + 1]))?
                                .to_vec()
                        } else {
                            let rep = q(&mut c, &mget)?;
                            rep.as_items().ok_or_else(|| format!("MGET replied {rep}"))?.to_vec()
                        };
                        let nums: Option<Vec<i64>> =
                            vals.iter().map(|v| text(v).and_then(|t| t.parse::<i64>().ok())).collect();
                        let nums = nums.ok_or_else(|| format!("audit #{n}: non-integer balance in {vals:?}"))?;
                        let sum: i64 = nums.iter().sum();
                        if sum != TOTAL || nums.len() != ACCOUNTS {
                            return Err(format!(
                                "audit #{n} ({}): sum of balances is {sum}, expected {TOTAL}; balances {nums:?}",
                                if use_multi { "MULTI/GET/EXEC" } else { "MGET" }
                            ));
                        }
                        n += 1;
                        if finished {
                            break;
                        }
                    }
                    Ok(n)
                },
            ));
        }
        let deltas: Vec<(Vec<i64>, usize)> = mh.into_iter().map(|h| h.join().unwrap()).collect();
        let audits: Vec<usize> = ah.into_iter().map(|h| h.join().unwrap()).collect();
        (deltas, audits)
    });
    fails.assert_none("transfers_conserve_total", &server);

    let mut expected = vec![INITIAL; ACCOUNTS];
    for (d, _) in &deltas {
        for (e, x) in expected.iter_mut().zip(d) {
            *e += x;
        }
    }
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    let fin = c.cmd(&mget);
    let got: Vec<i64> = fin
        .as_items()
        .expect("MGET array")
        .iter()
        .map(|v| text(v).and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("bad balance in {fin}")))
        .collect();
    assert_eq!(got.iter().sum::<i64>(), TOTAL, "final balances {got:?} do not sum to {TOTAL}");
    assert_eq!(got, expected, "final balances (left) differ from the net effect of the completed transfers (right)");
    let done: Vec<usize> = deltas.iter().map(|d| d.1).collect();
    eprintln!(
        "{}: transfers_conserve_total: transfers per thread {done:?}, audits per auditor {audits:?}, final {got:?}, {:?}",
        server.name,
        start.elapsed()
    );
}

#[test]
fn transfers_conserve_total() {
    transfers(4);
}

/// With the AOF off, transactions lock only their keys (`shard::locks`):
/// transfers on disjoint accounts run side by side, and single-key reads
/// race them; MSETs too.
#[test]
fn key_locked_transactions_stay_atomic_and_isolated() {
    transfers_with(4, &["--appendonly", "no"]);
    mset_atomic_with(4, &["--appendonly", "no"]);
}

#[test]
fn transfers_conserve_total_one_shard() {
    transfers(1);
}

// ---------------------------------------------------------------------------
// 3. WATCH.

/// Optimistic increments of `keys` (all incremented in one transaction) by
/// concurrent clients. Returns the number of successful EXECs.
fn watch_increments(server: &Server, keys: &[String], clients: usize, per_client: usize) -> usize {
    const MAX_ATTEMPTS: usize = 20_000;
    let port = server.port;
    let mut c = server.conn();
    for k in keys {
        assert_eq!(c.cmd(&["SET", k.as_str(), "0"]), Value::ok());
    }
    let fails = Failures::default();
    let start = Instant::now();
    let results: Vec<(usize, usize, Option<usize>)> = thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|i| {
                let fails = &fails;
                spawn_worker(s, fails, format!("client {i}"), move || {
                    let mut c = connect(port)?;
                    let shard = conn_shard(&mut c);
                    let (mut ok, mut aborted) = (0usize, 0usize);
                    let mut attempts = 0;
                    while ok < per_client && attempts < MAX_ATTEMPTS && !fails.stopped() && start.elapsed() < WALL {
                        attempts += 1;
                        let mut watch = vec!["WATCH".to_string()];
                        watch.extend(keys.iter().cloned());
                        let r = q(&mut c, &watch)?;
                        if r != Value::ok() {
                            return Err(format!("WATCH replied {r}"));
                        }
                        // Read the first key; every key holds the same value
                        // (they only change together).
                        let mut mget = vec!["MGET".to_string()];
                        mget.extend(keys.iter().cloned());
                        let r = q(&mut c, &mget)?;
                        let vals: Vec<i64> = r
                            .as_items()
                            .and_then(|v| v.iter().map(|x| text(x).and_then(|t| t.parse().ok())).collect())
                            .ok_or_else(|| format!("MGET replied {r}"))?;
                        if vals.windows(2).any(|w| w[0] != w[1]) {
                            return Err(format!("keys {keys:?} out of step: {vals:?}"));
                        }
                        let next = (vals[0] + 1).to_string();
                        let mut cmds = vec![cmdv(&["MULTI"])];
                        cmds.extend(keys.iter().map(|k| cmdv(&["SET", k, &next])));
                        cmds.push(cmdv(&["EXEC"]));
                        let rep = pipeline(&mut c, &cmds)?;
                        ok_queued_exec(&rep, keys.len())?;
                        let exec = &rep[keys.len() + 1];
                        match exec {
                            Value::NilArray | Value::Null => aborted += 1,
                            Value::Array(v) if v.len() == keys.len() && v.iter().all(|x| *x == Value::ok()) => ok += 1,
                            other => return Err(format!("EXEC replied {other}")),
                        }
                    }
                    Ok((ok, aborted, shard))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    fails.assert_none("watch_detects_cross_shard_conflicts (increments)", server);
    let total: usize = results.iter().map(|r| r.0).sum();
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    let fin = c.cmd(&mget);
    let expect = Value::Array(keys.iter().map(|_| Value::bulk(total.to_string())).collect());
    assert_eq!(
        fin, expect,
        "{}: {keys:?} after {total} successful optimistic increments (per client (ok, aborted, conn shard): {results:?}) — lost updates mean WATCH missed a conflict",
        server.name
    );
    eprintln!(
        "{}: watch increments of {keys:?} ({}): per client (ok, aborted, conn shard) {results:?}, {:?}",
        server.name,
        placement(keys, server_shards(server)),
        start.elapsed()
    );
    total
}

/// Conn `a` WATCHes `x`; `b` writes x with `write`; `a`'s transaction must
/// abort. Then without interference it must succeed.
fn watch_pair_checks(a: &mut RespConn, b: &mut RespConn, x: &str, y: &str, ctx: &str) {
    // Interfering write from another connection: EXEC aborts.
    assert_eq!(b.cmd(&["SET", x, "orig"]), Value::ok());
    assert_eq!(a.cmd(&["WATCH", x]), Value::ok(), "{ctx}");
    assert_eq!(b.cmd(&["SET", x, "from-b"]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["MULTI"]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["SET", x, "from-a"]), Value::Simple("QUEUED".into()), "{ctx}");
    let r = a.cmd(&["EXEC"]);
    assert_eq!(
        r,
        Value::NilArray,
        "{ctx}: WATCH {x}; other conn SET {x}; MULTI; SET {x}; EXEC must return a null array"
    );
    assert_eq!(b.cmd(&["GET", x]), Value::bulk("from-b"), "{ctx}: aborted transaction must not write");

    // Nothing touches x: EXEC succeeds.
    assert_eq!(a.cmd(&["WATCH", x]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["MULTI"]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["SET", x, "from-a"]), Value::Simple("QUEUED".into()), "{ctx}");
    assert_eq!(a.cmd(&["EXEC"]), Value::Array(vec![Value::ok()]), "{ctx}: untouched WATCHed key must not abort EXEC");
    assert_eq!(b.cmd(&["GET", x]), Value::bulk("from-a"), "{ctx}");

    // A write to an unrelated key on another shard does not abort.
    assert_eq!(a.cmd(&["WATCH", x]), Value::ok(), "{ctx}");
    assert_eq!(b.cmd(&["SET", y, "unrelated"]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["MULTI"]), Value::ok(), "{ctx}");
    assert_eq!(a.cmd(&["SET", x, "again"]), Value::Simple("QUEUED".into()), "{ctx}");
    assert_eq!(a.cmd(&["EXEC"]), Value::Array(vec![Value::ok()]), "{ctx}: write to unrelated key {y} aborted EXEC");
}

#[test]
fn watch_detects_cross_shard_conflicts() {
    for nshards in [4, 1] {
        let server = Server::start(nshards, &[]);
        // Concurrent optimistic increments of one counter (on one shard),
        // then of a pair of counters on different shards.
        let one = vec!["counter".to_string()];
        watch_increments(&server, &one, 6, 60);
        let two = vec![key_on_shard("ctra", 0, nshards), key_on_shard("ctrb", nshards - 1, nshards)];
        watch_increments(&server, &two, 6, 40);

        // Deterministic: every (conn shard, key shard) combination.
        for conn_shard_id in 0..nshards {
            let mut a = conn_on_shard(&server, conn_shard_id);
            for b_shard in 0..nshards {
                let mut b = conn_on_shard(&server, b_shard);
                for key_shard in 0..nshards {
                    let x = key_on_shard("wx", key_shard, nshards);
                    let y = key_on_shard("wy", key_shard + 1, nshards);
                    let ctx = format!(
                        "{}: conn A on shard {conn_shard_id}, conn B on shard {b_shard}, key {x} on shard {key_shard}, other key {y}",
                        server.name
                    );
                    watch_pair_checks(&mut a, &mut b, &x, &y, &ctx);
                }
            }
        }
    }
}

/// Redis semantics: WATCH is invalidated by any write to the key, whoever
/// makes it and whichever command it is (including ones that leave the
/// value unchanged and multi-key commands spanning shards).
#[test]
fn watch_invalidated_by_any_write() {
    let nshards = 4;
    let server = Server::start(nshards, &[]);
    let mut failures = Vec::new();
    for a_shard in 0..nshards {
        let mut a = conn_on_shard(&server, a_shard);
        let mut b = server.conn();
        for key_shard in 0..nshards {
            let x = key_on_shard("ix", key_shard, nshards);
            let y = key_on_shard("iy", key_shard + 1, nshards);
            type Setup = &'static str;
            // (setup by B, interfering command by B, should abort)
            let cases: Vec<(Setup, String, bool)> = vec![
                ("SET {x} v", "SET {x} v".into(), true),
                ("SET {x} v", "DEL {x}".into(), true),
                ("DEL {x}", "SET {x} new".into(), true),
                ("SET {x} v", "EXPIRE {x} 100".into(), true),
                ("SET {x} v", "MSET {y} 1 {x} 2".into(), true),
                ("SET {x} v", "DEL {y} {x}".into(), true),
                ("SET {y} v", "RENAME {y} {x}".into(), true),
                ("SET {x} v", "RENAME {x} {y}".into(), true),
                ("SET {y} v", "COPY {y} {x} REPLACE".into(), true),
                ("SET {x} 1", "INCR {x}".into(), true),
                ("SET {x} v", "GET {x}".into(), false),
                ("SET {x} v", "SET {y} v".into(), false),
                ("SET {x} v", "MGET {x} {y}".into(), false),
                ("SET {x} v", "EXISTS {x} {y}".into(), false),
                ("DEL {x}", "DEL {x}".into(), false),
            ];
            for (setup, interfere, aborts) in cases {
                let sub = |s: &str| s.replace("{x}", &x).replace("{y}", &y);
                b.cmd(&["DEL", x.as_str(), y.as_str()]);
                let setup = sub(setup);
                let interfere = sub(&interfere);
                b.cmd(&words(&setup));
                assert_eq!(a.cmd(&["WATCH", x.as_str()]), Value::ok());
                let ir = b.cmd(&words(&interfere));
                assert_eq!(a.cmd(&["MULTI"]), Value::ok());
                assert_eq!(a.cmd(&["PING"]), Value::Simple("QUEUED".into()));
                let r = a.cmd(&["EXEC"]);
                let aborted = r == Value::NilArray;
                if aborted != aborts || !(aborted || r == Value::Array(vec![Value::Simple("PONG".into())])) {
                    failures.push(format!(
                        "A on shard {a_shard} WATCH {x} (shard {key_shard}); B: `{setup}`, then `{interfere}` -> {ir}; A: MULTI PING EXEC -> {r} (expected {})",
                        if aborts { "abort (nil)" } else { "[PONG]" }
                    ));
                }
            }
            // The watching client's own write also invalidates (redis).
            b.cmd(&["SET", x.as_str(), "v"]);
            assert_eq!(a.cmd(&["WATCH", x.as_str()]), Value::ok());
            a.cmd(&["SET", x.as_str(), "mine"]);
            assert_eq!(a.cmd(&["MULTI"]), Value::ok());
            a.cmd(&["PING"]);
            let r = a.cmd(&["EXEC"]);
            if r != Value::NilArray {
                failures.push(format!(
                    "A on shard {a_shard}: WATCH {x}; SET {x} mine (same conn); MULTI PING EXEC -> {r} (expected nil)"
                ));
            }
            // UNWATCH forgets.
            assert_eq!(a.cmd(&["WATCH", x.as_str()]), Value::ok());
            assert_eq!(a.cmd(&["UNWATCH"]), Value::ok());
            b.cmd(&["SET", x.as_str(), "b"]);
            assert_eq!(a.cmd(&["MULTI"]), Value::ok());
            a.cmd(&["PING"]);
            let r = a.cmd(&["EXEC"]);
            if r != Value::Array(vec![Value::Simple("PONG".into())]) {
                failures.push(format!(
                    "A on shard {a_shard}: WATCH {x}; UNWATCH; B SET {x}; MULTI PING EXEC -> {r} (expected [PONG])"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}: {} WATCH mismatches:\n  {}", server.name, failures.len(), failures.join("\n  "));
}

// ---------------------------------------------------------------------------
// 4. Cross-shard RENAME/COPY/MSETNX/DEL/EXISTS.

struct Checker<'a> {
    c: &'a mut RespConn,
    name: String,
    failures: Vec<String>,
}

impl Checker<'_> {
    fn expect(&mut self, cmd: &str, want: Value) -> Value {
        let got = self.c.cmd(&words(cmd));
        if got != want {
            self.failures.push(format!("`{cmd}` -> {got}, expected {want}"));
        }
        got
    }

    fn expect_range(&mut self, cmd: &str, lo: i64, hi: i64) {
        let got = self.c.cmd(&words(cmd));
        match got.as_int() {
            Some(n) if (lo..=hi).contains(&n) => {}
            _ => self.failures.push(format!("`{cmd}` -> {got}, expected an integer in {lo}..={hi}")),
        }
    }
}

fn rename_copy(nshards: usize) -> Vec<String> {
    let server = Server::start(nshards, &[]);
    let mut conn = server.conn();
    let k = |p: &str, s: usize| key_on_shard(p, s, nshards);
    // Keys deliberately on different shards.
    let (src, dst, src2, dst2, dst3, dst4, missing) =
        (k("src", 0), k("dst", 1), k("srctwo", 2), k("dsttwo", 3), k("dstthree", 2), k("dstfour", 1), k("missing", 3));
    let (a, b, cc, d) = (k("ka", 0), k("kb", 1), k("kc", 2), k("kd", 3));
    let (n1, n2) = (k("num", 1), k("num", 3));
    let all = [&src, &dst, &src2, &dst2, &dst3, &dst4, &missing, &a, &b, &cc, &d, &n1, &n2];
    eprintln!("{}: {}", server.name, placement(&all.iter().map(|s| s.to_string()).collect::<Vec<_>>(), nshards));
    let ok = Value::ok;
    let int = Value::Int;
    let nil = || Value::NilBulk;
    let mut t = Checker { c: &mut conn, name: server.name.clone(), failures: Vec::new() };

    // RENAME moves value and TTL.
    t.expect(&format!("SET {src} hello EX 1000"), ok());
    t.expect(&format!("RENAME {src} {dst}"), ok());
    t.expect(&format!("EXISTS {src}"), int(0));
    t.expect(&format!("GET {src}"), nil());
    t.expect(&format!("GET {dst}"), Value::bulk("hello"));
    t.expect_range(&format!("TTL {dst}"), 990, 1000);
    t.expect_range(&format!("PTTL {dst}"), 990_000, 1_000_000);
    // Missing source.
    t.expect(&format!("RENAME {src} {dst}"), Value::err("ERR no such key"));
    t.expect(&format!("RENAMENX {src} {dst}"), Value::err("ERR no such key"));
    t.expect(&format!("RENAME {missing} {missing}"), Value::err("ERR no such key"));
    t.expect(&format!("GET {dst}"), Value::bulk("hello"));
    // RENAMENX onto an existing key does nothing.
    t.expect(&format!("SET {src2} world"), ok());
    t.expect(&format!("RENAMENX {src2} {dst}"), int(0));
    t.expect(&format!("GET {src2}"), Value::bulk("world"));
    t.expect(&format!("GET {dst}"), Value::bulk("hello"));
    // RENAME replaces the destination, including its TTL (source had none).
    t.expect(&format!("SET {dst2} old EX 500"), ok());
    t.expect(&format!("RENAME {src2} {dst2}"), ok());
    t.expect(&format!("GET {dst2}"), Value::bulk("world"));
    t.expect(&format!("TTL {dst2}"), int(-1));
    t.expect(&format!("EXISTS {src2}"), int(0));
    // RENAMENX to a free key on another shard.
    t.expect(&format!("RENAMENX {dst2} {src2}"), int(1));
    t.expect(&format!("GET {src2}"), Value::bulk("world"));
    t.expect(&format!("EXISTS {dst2}"), int(0));
    // Renaming a key onto itself.
    t.expect(&format!("RENAME {dst} {dst}"), ok());
    t.expect(&format!("GET {dst}"), Value::bulk("hello"));
    t.expect_range(&format!("TTL {dst}"), 990, 1000);
    // Integer values survive the move.
    t.expect(&format!("SET {n1} 10"), ok());
    t.expect(&format!("RENAME {n1} {n2}"), ok());
    t.expect(&format!("INCR {n2}"), int(11));

    // COPY keeps the source, copies value and TTL.
    t.expect(&format!("COPY {dst} {dst3}"), int(1));
    t.expect(&format!("GET {dst3}"), Value::bulk("hello"));
    t.expect(&format!("GET {dst}"), Value::bulk("hello"));
    t.expect_range(&format!("TTL {dst3}"), 990, 1000);
    t.expect(&format!("SET {dst2} other"), ok());
    t.expect(&format!("COPY {dst} {dst2}"), int(0));
    t.expect(&format!("GET {dst2}"), Value::bulk("other"));
    t.expect(&format!("COPY {dst} {dst2} REPLACE"), int(1));
    t.expect(&format!("GET {dst2}"), Value::bulk("hello"));
    t.expect_range(&format!("TTL {dst2}"), 990, 1000);
    t.expect(&format!("COPY {missing} {dst4}"), int(0));
    t.expect(&format!("EXISTS {dst4}"), int(0));
    // COPY of a persistent key over one with a TTL: the TTL goes.
    t.expect(&format!("SET {dst4} ttl EX 100"), ok());
    t.expect(&format!("COPY {src2} {dst4} REPLACE"), int(1));
    t.expect(&format!("TTL {dst4}"), int(-1));
    t.expect(&format!("GET {dst4}"), Value::bulk("world"));
    // The copy is independent of the source.
    t.expect(&format!("APPEND {dst4} !"), int(6));
    t.expect(&format!("GET {src2}"), Value::bulk("world"));

    // MSETNX: all or nothing.
    t.expect(&format!("MSETNX {a} 1 {b} 2"), int(1));
    t.expect(&format!("MGET {a} {b}"), Value::Array(vec![Value::bulk("1"), Value::bulk("2")]));
    t.expect(&format!("MSETNX {b} 3 {cc} 4"), int(0));
    t.expect(&format!("MSETNX {cc} 4 {d} 5 {a} 9"), int(0));
    t.expect(&format!("MGET {a} {b} {cc} {d}"), Value::Array(vec![Value::bulk("1"), Value::bulk("2"), nil(), nil()]));
    t.expect(&format!("MSETNX {cc} 5 {d} 6"), int(1));
    t.expect(&format!("MSETNX {a} 1"), int(0));

    // EXISTS counts repeats; DEL counts what it removed.
    t.expect(&format!("EXISTS {a} {b} {cc} {d} {missing}"), int(4));
    t.expect(&format!("EXISTS {a} {a} {b} {missing} {missing}"), int(3));
    t.expect(&format!("DEL {a} {b} {missing}"), int(2));
    t.expect(&format!("EXISTS {a} {b} {cc} {d}"), int(2));
    t.expect(&format!("DEL {cc} {cc} {d}"), int(2));
    t.expect(&format!("DEL {a} {b} {cc} {d}"), int(0));
    t.expect(&format!("MGET {a} {b} {cc} {d}"), Value::Array(vec![nil(), nil(), nil(), nil()]));

    // Inside MULTI too.
    t.expect("MULTI", ok());
    t.expect(&format!("SET {a} x"), Value::Simple("QUEUED".into()));
    t.expect(&format!("RENAME {a} {b}"), Value::Simple("QUEUED".into()));
    t.expect(&format!("COPY {b} {cc}"), Value::Simple("QUEUED".into()));
    t.expect(&format!("MSETNX {d} y {a} z"), Value::Simple("QUEUED".into()));
    t.expect(&format!("RENAME {missing} {a}"), Value::Simple("QUEUED".into()));
    t.expect(&format!("EXISTS {a} {b} {cc} {d}"), Value::Simple("QUEUED".into()));
    t.expect("EXEC", Value::Array(vec![ok(), ok(), int(1), int(1), Value::err("ERR no such key"), int(4)]));
    t.expect(
        &format!("MGET {a} {b} {cc} {d}"),
        Value::Array(vec![Value::bulk("z"), Value::bulk("x"), Value::bulk("x"), Value::bulk("y")]),
    );

    // COPY ... DB n and MOVE write in another db: a transaction pulls the
    // key there too, so one that exists is seen and left alone.
    let queued = || Value::Simple("QUEUED".into());
    t.expect("SELECT 1", ok());
    t.expect(&format!("SET {dst} there"), ok());
    t.expect(&format!("SET {src} here1"), ok());
    t.expect("SELECT 0", ok());
    t.expect(&format!("SET {src} here0"), ok());
    t.expect(&format!("COPY {src} {dst} DB 1"), int(0));
    t.expect("MULTI", ok());
    t.expect(&format!("MOVE {src} 1"), queued());
    t.expect(&format!("SET {n1} y"), queued());
    t.expect("EXEC", Value::Array(vec![int(0), ok()]));
    t.expect(&format!("GET {src}"), Value::bulk("here0"));
    t.expect("SELECT 1", ok());
    t.expect(&format!("GET {dst}"), Value::bulk("there"));
    t.expect(&format!("GET {src}"), Value::bulk("here1"));
    t.expect("SELECT 0", ok());

    let name = t.name.clone();
    t.failures.into_iter().map(|f| format!("{name}: {f}")).collect()
}

#[test]
fn cross_shard_rename_and_copy() {
    let mut failures = rename_copy(4);
    failures.extend(rename_copy(1));
    assert!(failures.is_empty(), "{} mismatches with redis semantics:\n  {}", failures.len(), failures.join("\n  "));
}

// ---------------------------------------------------------------------------
// 5. Pub/sub across shards.

struct Sub {
    conn: RespConn,
    resp3: bool,
    pattern: bool,
    shard: Option<usize>,
    label: String,
}

/// Parse a delivered message into (kind, channel, payload); checks the frame
/// type matches the protocol.
fn parse_msg(v: &Value, resp3: bool, chan: &str, pat: &str) -> Result<(&'static str, String), String> {
    let items = match (v, resp3) {
        (Value::Push(x), true) | (Value::Array(x), false) => x,
        _ => return Err(format!("unexpected frame {v} (resp3={resp3})")),
    };
    let t: Vec<Option<String>> = items.iter().map(text).collect();
    match t.as_slice() {
        [Some(k), Some(c), Some(p)] if k == "message" && c == chan => Ok(("message", p.clone())),
        [Some(k), Some(pt), Some(c), Some(p)] if k == "pmessage" && pt == pat && c == chan => {
            Ok(("pmessage", p.clone()))
        }
        _ => Err(format!("unexpected message frame {v}")),
    }
}

fn pubsub(nshards: usize) {
    const PUBLISHERS: usize = 2;
    const MSGS: usize = 100;
    let chan = "news.x";
    let pat = "news.*";
    let server = Server::start(nshards, &[]);
    let port = server.port;

    // Subscribers: two per shard (one also pattern-subscribed) plus a RESP3
    // one with both kinds.
    let mut subs: Vec<Sub> = Vec::new();
    for i in 0..2 * nshards {
        let mut c = conn_on_shard(&server, i % nshards);
        let shard = conn_shard(&mut c);
        subs.push(Sub { conn: c, resp3: false, pattern: i < nshards, shard, label: format!("sub{i}") });
    }
    {
        let mut c = conn_on_shard(&server, nshards - 1);
        let shard = conn_shard(&mut c);
        let hello = c.cmd(&["HELLO", "3"]);
        assert!(matches!(hello, Value::Map(_)), "HELLO 3 replied {hello}");
        subs.push(Sub { conn: c, resp3: true, pattern: true, shard, label: "resp3-sub".into() });
    }
    for s in subs.iter_mut() {
        let wrap = |v: Vec<Value>| if s.resp3 { Value::Push(v) } else { Value::Array(v) };
        let r = s.conn.cmd(&["SUBSCRIBE", chan]);
        assert_eq!(r, wrap(vec![Value::bulk("subscribe"), Value::bulk(chan), Value::Int(1)]), "{}", s.label);
        if s.pattern {
            let r = s.conn.cmd(&["PSUBSCRIBE", pat]);
            assert_eq!(r, wrap(vec![Value::bulk("psubscribe"), Value::bulk(pat), Value::Int(2)]), "{}", s.label);
        }
    }
    let n_chan = subs.len() as i64;
    let n_pat = subs.iter().filter(|s| s.pattern).count() as i64;
    eprintln!(
        "{}: subscribers on shards {:?}",
        server.name,
        subs.iter().map(|s| (s.label.as_str(), s.shard)).collect::<Vec<_>>()
    );

    let mut ctl = server.conn();
    assert_eq!(
        ctl.cmd(&["PUBSUB", "NUMSUB", chan, "news.none"]),
        Value::Array(vec![Value::bulk(chan), Value::Int(n_chan), Value::bulk("news.none"), Value::Int(0)])
    );
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMSUB"]), Value::Array(vec![]));
    assert_eq!(ctl.cmd(&["PUBSUB", "CHANNELS"]), Value::Array(vec![Value::bulk(chan)]));
    assert_eq!(ctl.cmd(&["PUBSUB", "CHANNELS", "news.*"]), Value::Array(vec![Value::bulk(chan)]));
    assert_eq!(ctl.cmd(&["PUBSUB", "CHANNELS", "zzz*"]), Value::Array(vec![]));
    // NUMPAT counts distinct patterns (redis >= 6.2), not subscriptions.
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMPAT"]), Value::Int(1));
    // Nobody listens on another channel.
    assert_eq!(ctl.cmd(&["PUBLISH", "other", "x"]), Value::Int(0));

    // Concurrent publishers; the subscription set is fixed meanwhile.
    let fails = Failures::default();
    let start = Instant::now();
    let published: Vec<usize> = thread::scope(|s| {
        let hs: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let fails = &fails;
                spawn_worker(s, fails, format!("publisher {p}"), move || {
                    let mut c = connect(port)?;
                    let mut n = 0;
                    for i in 0..MSGS {
                        if fails.stopped() || start.elapsed() > WALL {
                            break;
                        }
                        let r = q(&mut c, &["PUBLISH", chan, &format!("p{p}-{i}")])?;
                        if r != Value::Int(n_chan + n_pat) {
                            return Err(format!(
                                "PUBLISH {chan} p{p}-{i} replied {r}, expected {} ({n_chan} channel + {n_pat} pattern receivers)",
                                n_chan + n_pat
                            ));
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    fails.assert_none("pubsub_across_shards (publish)", &server);
    assert_eq!(published, vec![MSGS; PUBLISHERS]);

    // Every subscriber gets every message (once per subscription kind), in
    // each publisher's order, and a publish's frames never overtake an
    // earlier publish's.
    let mut problems = Vec::new();
    for s in subs.iter_mut() {
        let kinds: &[&str] = if s.pattern { &["message", "pmessage"] } else { &["message"] };
        let expect = PUBLISHERS * MSGS * kinds.len();
        // next[publisher][kind]: next expected index.
        let mut next = vec![vec![0usize; kinds.len()]; PUBLISHERS];
        let mut latest = vec![0usize; PUBLISHERS];
        for n in 0..expect {
            let v = match s.conn.read_value() {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{} (shard {:?}): frame {n} of {expect}: {e}", s.label, s.shard));
                    break;
                }
            };
            let (kind, payload) = match parse_msg(&v, s.resp3, chan, pat) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{}: frame {n}: {e}", s.label));
                    break;
                }
            };
            let parsed = payload
                .strip_prefix('p')
                .and_then(|r| r.split_once('-'))
                .and_then(|(p, i)| Some((p.parse::<usize>().ok()?, i.parse::<usize>().ok()?)));
            let Some((p, i)) = parsed.filter(|(p, _)| *p < PUBLISHERS) else {
                problems.push(format!("{}: frame {n}: unexpected payload {payload:?}", s.label));
                break;
            };
            let ki = kinds.iter().position(|k| *k == kind).unwrap_or(0);
            if !kinds.contains(&kind) || i != next[p][ki] || i < latest[p] {
                problems.push(format!(
                    "{} (shard {:?}): frame {n} is {kind} {payload:?}; expected next {} from publisher {p}, latest seen p{p}-{}",
                    s.label, s.shard, kinds.iter().map(|k| format!("{k} p{p}-{}", next[p][kinds.iter().position(|x| x == k).unwrap()])).collect::<Vec<_>>().join(" / "), latest[p]
                ));
                break;
            }
            next[p][ki] += 1;
            latest[p] = i;
        }
    }
    assert!(problems.is_empty(), "{}: delivery problems:\n  {}", server.name, problems.join("\n  "));

    // Nothing extra was delivered.
    for s in subs.iter_mut() {
        let (extra, closed) = s.conn.read_until_idle(Duration::from_millis(100));
        assert!(
            extra.is_empty() && !closed,
            "{}: unexpected extra data {:?} (closed={closed})",
            s.label,
            String::from_utf8_lossy(&extra)
        );
    }
}

/// UNSUBSCRIBE / PUNSUBSCRIBE by a subscriber on one shard change what
/// PUBSUB reports and who PUBLISH reaches, from every shard.
fn pubsub_counts_after_unsubscribe(nshards: usize) {
    let chan = "news.y";
    let pat = "news.*";
    let server = Server::start(nshards, &[]);
    let mut subs: Vec<RespConn> = (0..nshards).map(|s| conn_on_shard(&server, s)).collect();
    // Every subscriber also has a pattern of its own, matching nothing.
    let own = |i: usize| format!("zz{i}*");
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(
            c.cmd(&["SUBSCRIBE", chan]),
            Value::Array(vec![Value::bulk("subscribe"), Value::bulk(chan), Value::Int(1)])
        );
        assert_eq!(
            c.cmd(&["PSUBSCRIBE", pat]),
            Value::Array(vec![Value::bulk("psubscribe"), Value::bulk(pat), Value::Int(2)])
        );
        assert_eq!(
            c.cmd(&["PSUBSCRIBE", own(i).as_str()]),
            Value::Array(vec![Value::bulk("psubscribe"), Value::bulk(own(i)), Value::Int(3)])
        );
    }
    let n = nshards as i64;
    let mut ctl = server.conn();
    // Distinct patterns: news.* plus one per subscriber.
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMPAT"]), Value::Int(1 + n));
    assert_eq!(ctl.cmd(&["PUBLISH", chan, "m1"]), Value::Int(2 * n));
    let msg = |p: &str| Value::Array(vec![Value::bulk("message"), Value::bulk(chan), Value::bulk(p)]);
    let pmsg =
        |p: &str| Value::Array(vec![Value::bulk("pmessage"), Value::bulk(pat), Value::bulk(chan), Value::bulk(p)]);
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(c.read_value().unwrap(), msg("m1"), "sub on shard {i}");
        assert_eq!(c.read_value().unwrap(), pmsg("m1"), "sub on shard {i}");
    }
    // Sub 0 drops its channel subscription.
    assert_eq!(
        subs[0].cmd(&["UNSUBSCRIBE", chan]),
        Value::Array(vec![Value::bulk("unsubscribe"), Value::bulk(chan), Value::Int(2)])
    );
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMSUB", chan]), Value::Array(vec![Value::bulk(chan), Value::Int(n - 1)]));
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMPAT"]), Value::Int(1 + n));
    assert_eq!(ctl.cmd(&["PUBLISH", chan, "m2"]), Value::Int(2 * n - 1));
    assert_eq!(subs[0].read_value().unwrap(), pmsg("m2"));
    // And its pattern subscription.
    assert_eq!(
        subs[0].cmd(&["PUNSUBSCRIBE", pat]),
        Value::Array(vec![Value::bulk("punsubscribe"), Value::bulk(pat), Value::Int(1)])
    );
    let others_have_pat = (nshards > 1) as i64;
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMPAT"]), Value::Int(others_have_pat + n));
    assert_eq!(ctl.cmd(&["PUBLISH", chan, "m3"]), Value::Int(2 * n - 2));
    assert_eq!(
        subs[0].cmd(&["PUNSUBSCRIBE", own(0).as_str()]),
        Value::Array(vec![Value::bulk("punsubscribe"), Value::bulk(own(0)), Value::Int(0)])
    );
    assert_eq!(ctl.cmd(&["PUBSUB", "NUMPAT"]), Value::Int(others_have_pat + n - 1));
    // Out of subscribed mode: ordinary commands work again, nothing queued.
    assert_eq!(subs[0].cmd(&["PING"]), Value::Simple("PONG".into()));
    for (i, c) in subs.iter_mut().enumerate().skip(1) {
        for m in ["m2", "m3"] {
            assert_eq!(c.read_value().unwrap(), msg(m), "sub on shard {i}");
            assert_eq!(c.read_value().unwrap(), pmsg(m), "sub on shard {i}");
        }
    }
    if nshards > 1 {
        // Channels listed once even with subscribers on several shards.
        assert_eq!(ctl.cmd(&["PUBSUB", "CHANNELS"]), Value::Array(vec![Value::bulk(chan)]));
    }
}

#[test]
fn pubsub_across_shards() {
    pubsub(4);
    pubsub(1);
}

#[test]
fn pubsub_unsubscribe_updates_counts() {
    pubsub_counts_after_unsubscribe(4);
    pubsub_counts_after_unsubscribe(1);
}

/// SORT BY/GET patterns without a hash tag read keys on every shard: a
/// writer MSETs every weight and value key to one generation at a time (a
/// cross-shard transaction); every SORT must see one generation whole:
/// the BY order and every GET value from the same MSET.
#[test]
fn sort_patterns_see_one_transaction() {
    let server = Server::start(4, &[]);
    let port = server.port;
    let n = 8;
    let mut c = connect(port).expect("connect");
    let elems: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut rpush = vec!["RPUSH".to_string(), "sortiso:list".to_string()];
    rpush.extend(elems.iter().cloned());
    q(&mut c, &rpush).expect("RPUSH");
    let shards: BTreeSet<usize> = elems.iter().map(|e| shard_of(&format!("sortiso:w_{e}"), 4)).collect();
    assert!(shards.len() > 1, "the weight keys span shards: {shards:?}");
    let fails = Failures::default();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        spawn_worker(s, &fails, "writer".into(), || {
            let mut w = connect(port)?;
            let start = Instant::now();
            for g in 0..1_000_000u32 {
                if stop.load(Ordering::Relaxed) || start.elapsed() > WALL {
                    break;
                }
                let mut mset = vec!["MSET".to_string()];
                for (i, e) in elems.iter().enumerate() {
                    // Generation g orders the elements by a rotation.
                    let weight = (i as u32 + g) % n as u32;
                    mset.extend([format!("sortiso:w_{e}"), weight.to_string()]);
                    mset.extend([format!("sortiso:o_{e}"), g.to_string()]);
                }
                let r = q(&mut w, &mset)?;
                if r != Value::ok() {
                    return Err(format!("MSET replied {r}"));
                }
            }
            Ok(())
        });
        spawn_worker(s, &fails, "reader".into(), || {
            let mut r = connect(port)?;
            let start = Instant::now();
            let mut seen = BTreeSet::new();
            for _ in 0..300 {
                if start.elapsed() > WALL {
                    break;
                }
                let v = q(&mut r, &["SORT", "sortiso:list", "BY", "sortiso:w_*", "GET", "#", "GET", "sortiso:o_*"])?;
                let items: Vec<String> = v
                    .as_items()
                    .ok_or(format!("SORT replied {v}"))?
                    .iter()
                    .map(|x| text(x).unwrap_or_default())
                    .collect();
                if items.len() != 2 * n || items[1].is_empty() {
                    continue;
                }
                let g: u32 = items[1].parse().map_err(|_| format!("generation {:?}", items[1]))?;
                // Every GET value from one generation, in that generation's order.
                let mut want: Vec<(u32, usize)> = (0..n).map(|i| ((i as u32 + g) % n as u32, i)).collect();
                want.sort();
                for (j, &(_, i)) in want.iter().enumerate() {
                    if items[2 * j] != elems[i] || items[2 * j + 1] != g.to_string() {
                        return Err(format!("SORT mixed generations (first {g}): {items:?}"));
                    }
                }
                seen.insert(g);
            }
            stop.store(true, Ordering::Relaxed);
            if seen.len() < 2 {
                return Err(format!("the reader saw too few generations: {seen:?}"));
            }
            Ok(())
        });
    });
    fails.assert_none("SORT isolation", &server);
}

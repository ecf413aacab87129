//! Deterministic simulation of several shard cores in one thread (issue 14;
//! TigerBeetle's VOPR and FoundationDB's simulation are the models).
//!
//! The cores are the server's own (`shard::core::Shard`), with their AOF
//! writers on a real directory; only the reactor is replaced: a seeded
//! scheduler decides, step by step, which client sends its next requests,
//! which message between shards is delivered (any sender first; each
//! sender's messages in order, as in the queues), when a core ends its
//! turn, when an AOF write or sync completes, when the cron ticks, and when
//! a client vanishes mid-transaction. Clients:
//! - movers transfer amounts between accounts on different shards in
//!   MULTI/EXEC (DECRBY + INCRBY) or move a token with cross-shard RENAME;
//! - auditors read every account at once (cross-shard MGET, or MULTI/GET
//!   .../EXEC) and check the total never changes (atomicity, isolation);
//! - counters increment a shared counter with WATCH/GET/MULTI/SET/EXEC and
//!   count their successes (no lost update);
//! - pairers write two keys on two shards with one MSET in db 1 while a
//!   swapper runs SWAPDB 1 2 and FLUSHDB 3, and pair readers check both
//!   keys always match (global locks interleaved with transactions);
//! - producers push numbered items and consumers pop them with BLPOP and
//!   cross-shard BLMOVE (no item twice, none lost, no lost wake-up).
//!
//! At the end every message is delivered and every write completed; then:
//! no client waits for a reply it should have had (no deadlock), the model
//! of what was acknowledged matches the state, and the data directory
//! replays (`persist::load::recover`) to exactly the cores' keyspaces.
//!
//! `SHARDIS_SIM_SEEDS` (default 300) seeds run from `SHARDIS_SIM_SEED`
//! (default 1); a failure names its seed, and `SHARDIS_SIM_SEED=<n>
//! SHARDIS_SIM_SEEDS=1` replays it step for step. `scripts/simulate` runs
//! thousands.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Cursor};
use std::path::PathBuf;
use std::sync::Arc;

use common::resp::read_value;
use common::{encode_command, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardis::config::Config;
use shardis::net::{OP_AOF_EXTEND, OP_AOF_EXTEND_SYNC, OP_AOF_FSYNC, OP_AOF_ROTATE_SYNC, OP_AOF_WRITE};
use shardis::shard::core::{AofIo, Shard};
use shardis::shard::router::SlotMap;
use shardis::shard::Shared;

const ACCOUNTS: usize = 6;
const START: i64 = 1000;
const STEPS: usize = 6000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Mover,
    Auditor,
    Counter,
    Pairer,
    PairReader,
    Swapper,
    Producer,
    Consumer,
}

/// What a client expects back for a request it sent.
#[derive(Clone, Debug)]
enum Expect {
    /// Any reply (SELECT, MULTI, QUEUED, ...).
    Any,
    /// EXEC of a transfer of `amount` from account `from` to `to`.
    Transfer { from: usize, to: usize, amount: i64 },
    /// RENAME of the token from account-token `from` to `to`.
    Rename,
    /// MGET of every account / EXEC of GETs of every account.
    Audit,
    /// GET of the counter (then MULTI/SET/EXEC follows).
    CounterGet,
    /// EXEC of the counter increment.
    CounterExec,
    /// MGET of the pair.
    Pair,
    /// LPUSH of an item.
    Push,
    /// BLPOP / BLMOVE: an item or nothing.
    Pop { moved: bool },
}

struct Client {
    role: Role,
    core: usize,
    idx: u32,
    gen: u32,
    alive: bool,
    inbox: Vec<u8>,
    expect: VecDeque<Expect>,
    /// Requests sent in its current exchange are not all answered yet.
    busy: bool,
    /// Counter clients: the value read after WATCH.
    read: Option<i64>,
}

struct Sim {
    rng: StdRng,
    shared: Arc<Shared>,
    cores: Vec<Shard>,
    clients: Vec<Client>,
    /// Per core: AOF operations submitted and not completed yet.
    aof: Vec<VecDeque<AofIo>>,
    clock: i64,
    slots: SlotMap,
    accounts: Vec<String>,
    tokens: Vec<String>,
    counter: String,
    pair: (String, String),
    queues: (String, String),
    // The model of what was acknowledged.
    balances: Vec<i64>,
    uncertain: Vec<(usize, usize, i64)>,
    counter_ok: i64,
    counter_uncertain: i64,
    pushed: u64,
    popped: HashMap<String, u32>,
    failures: Vec<String>,
    trace: u64,
    /// Replies checked, by what they answered (how much a seed exercised).
    counts: BTreeMap<&'static str, u64>,
}

fn key_on(slots: &SlotMap, shard: usize, prefix: &str) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| slots.shard_of(k.as_bytes()) == shard)
        .expect("a key on every shard")
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

impl Sim {
    fn new(seed: u64, nshards: usize, dir: PathBuf) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let policy = ["always", "everysec", "no"][rng.gen_range(0..3)];
        let mut config = Config::default();
        config.dir = dir.to_string_lossy().into_owned();
        config.appendfsync = policy.to_string();
        config.shards = nshards;
        let shared = Arc::new(Shared::new(nshards, config.clone()));
        let loaded = shardis::persist::load::recover(&dir, nshards).expect("fresh data directory");
        let mut cores = Vec::new();
        for (id, l) in loaded.into_iter().enumerate() {
            let (ks, aof) = shardis::shard::open_aof(&config, id, l).expect("AOF opens");
            let mut core = Shard::new(id, shared.clone(), &config, ks, aof, "simulated").expect("core");
            core.apply_config(&config, None).expect("config applies");
            cores.push(core);
        }
        let slots = SlotMap::contiguous(nshards);
        let accounts = (0..ACCOUNTS).map(|i| key_on(&slots, i % nshards, &format!("acct{i}"))).collect();
        let tokens = (0..2).map(|i| key_on(&slots, i % nshards, &format!("token{i}"))).collect();
        let counter = key_on(&slots, nshards - 1, "counter");
        let pair = (key_on(&slots, 0, "pa"), key_on(&slots, nshards - 1, "pb"));
        let queues = (key_on(&slots, 0, "q"), key_on(&slots, nshards - 1, "dst"));
        let mut sim = Sim {
            rng,
            shared,
            cores,
            clients: Vec::new(),
            aof: (0..nshards).map(|_| VecDeque::new()).collect(),
            clock: 1_700_000_000_000,
            slots,
            accounts,
            tokens,
            counter,
            pair,
            queues,
            balances: vec![START; ACCOUNTS],
            uncertain: Vec::new(),
            counter_ok: 0,
            counter_uncertain: 0,
            pushed: 0,
            popped: HashMap::new(),
            failures: Vec::new(),
            trace: 0,
            counts: BTreeMap::new(),
        };
        let roles = [
            Role::Mover,
            Role::Mover,
            Role::Mover,
            Role::Auditor,
            Role::Auditor,
            Role::Counter,
            Role::Counter,
            Role::Pairer,
            Role::PairReader,
            Role::Swapper,
            Role::Producer,
            Role::Consumer,
            Role::Consumer,
        ];
        for (i, role) in roles.into_iter().enumerate() {
            let core = i % nshards;
            sim.connect(role, core);
        }
        // Opening balances and the counter, through a client like any other.
        let setup = sim.connect(Role::Auditor, 0);
        let mut mset: Vec<String> = vec!["MSET".into()];
        for a in sim.accounts.clone() {
            mset.extend([a, START.to_string()]);
        }
        mset.extend([sim.counter.clone(), "0".into(), sim.tokens[0].clone(), "token".into()]);
        sim.send(setup, &[mset], vec![Expect::Any]);
        sim.quiesce();
        sim.clients[setup].alive = false;
        sim
    }

    fn connect(&mut self, role: Role, core: usize) -> usize {
        let addr = format!("127.0.0.{}:{}", core + 1, 1000 + self.clients.len());
        let (idx, gen) = self.cores[core].accept_client(-1, addr, "127.0.0.1:6379".into()).expect("client accepted");
        self.clients.push(Client {
            role,
            core,
            idx,
            gen,
            alive: true,
            inbox: Vec::new(),
            expect: VecDeque::new(),
            busy: false,
            read: None,
        });
        self.clients.len() - 1
    }

    /// Client `c` sends `cmds` in one write, expecting `expect`.
    fn send(&mut self, c: usize, cmds: &[Vec<String>], expect: Vec<Expect>) {
        let cl = &mut self.clients[c];
        let (core, idx, gen) = (cl.core, cl.idx, cl.gen);
        cl.expect.extend(expect);
        cl.busy = true;
        let mut bytes = Vec::new();
        for cmd in cmds {
            bytes.extend(encode_command(cmd));
        }
        let Some(conn) = self.cores[core].conn_mut(idx, gen) else { return };
        conn.rbuf.extend_from_slice(&bytes);
        self.cores[core].on_input(idx);
        self.io(core);
    }

    /// Do what core `core` asked of its reactor: sends reach their clients
    /// at once, closes are released, AOF operations wait for the scheduler.
    fn io(&mut self, core: usize) {
        let mut io = std::mem::take(&mut self.cores[core].io);
        for op in io.aof.drain(..) {
            self.aof[core].push_back(op);
        }
        for idx in io.send.drain(..) {
            let Some(Some(conn)) = self.cores[core].conns.get_mut(idx as usize) else { continue };
            let bytes = conn.sending[conn.sent..].to_vec();
            conn.sent = conn.sending.len();
            let gen = conn.gen;
            if let Some(cl) = self.clients.iter_mut().find(|c| c.core == core && c.idx == idx && c.gen == gen) {
                cl.inbox.extend(bytes);
            }
            self.cores[core].on_sent(idx);
        }
        for idx in io.close.drain(..) {
            self.cores[core].release(idx);
        }
        io.recv.clear();
        io.pause.clear();
        for d in io.doorbells.iter_mut() {
            *d = false;
        }
        self.cores[core].io = io;
        // on_sent may have produced more to send (next turn's flush).
    }

    fn settle(&mut self, core: usize) {
        self.cores[core].now = self.clock;
        self.cores[core].settle();
        self.io(core);
    }

    fn complete_aof(&mut self, core: usize) -> bool {
        let Some(op) = self.aof[core].pop_front() else { return false };
        let c = &mut self.cores[core];
        c.now = self.clock;
        match op {
            AofIo::Write(w) => {
                // SAFETY: the writer keeps the buffer until this completion.
                let res = unsafe { libc::pwrite(w.fd, w.ptr as *const libc::c_void, w.len as usize, w.offset as i64) };
                c.on_aof_cqe(OP_AOF_WRITE, w.seq, res as i32);
            }
            AofIo::Fsync { upto, .. } => c.on_aof_cqe(OP_AOF_FSYNC, upto, 0),
            AofIo::RotationSync { .. } => c.on_aof_cqe(OP_AOF_ROTATE_SYNC, 0, 0),
            AofIo::Extend { fd, ptr, len, offset } => {
                // SAFETY: the writer's zero buffer lives as long as it does.
                let res = unsafe { libc::pwrite(fd, ptr as *const libc::c_void, len as usize, offset as i64) };
                c.on_aof_cqe(OP_AOF_EXTEND, 0, res as i32);
                c.on_aof_cqe(OP_AOF_EXTEND_SYNC, 0, 0);
            }
        }
        self.io(core);
        true
    }

    fn deliver(&mut self, to: usize, from: usize) -> bool {
        self.cores[to].now = self.clock;
        let delivered = self.cores[to].deliver_one(from);
        if delivered {
            self.io(to);
        }
        delivered
    }

    fn pending_pairs(&self) -> Vec<(usize, usize)> {
        let n = self.cores.len();
        (0..n).flat_map(|t| (0..n).map(move |f| (t, f))).filter(|&(t, f)| self.shared.pending(t, f)).collect()
    }

    /// Parse every complete reply a client got and check it.
    fn read_replies(&mut self, c: usize) {
        let inbox = std::mem::take(&mut self.clients[c].inbox);
        let mut cur = Cursor::new(&inbox[..]);
        while cur.fill_buf().is_ok_and(|b| !b.is_empty()) {
            let v = match read_value(&mut cur) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(format!("client {c}: unreadable reply: {e}"));
                    return;
                }
            };
            let Some(exp) = self.clients[c].expect.pop_front() else {
                self.fail(format!("client {c} ({:?}): a reply nobody asked for: {v}", self.clients[c].role));
                continue;
            };
            self.trace = self.trace.wrapping_mul(31).wrapping_add(format!("{c}{v}").len() as u64);
            self.check(c, exp, v);
        }
        if self.clients[c].expect.is_empty() {
            self.clients[c].busy = false;
        }
    }

    fn fail(&mut self, msg: String) {
        if self.failures.len() < 20 {
            self.failures.push(msg);
        }
    }

    fn check(&mut self, c: usize, exp: Expect, v: Value) {
        let kind = match &exp {
            Expect::Any => "other",
            Expect::Transfer { .. } => "transfer",
            Expect::Rename => "rename",
            Expect::Audit => "audit",
            Expect::CounterGet => "counter-get",
            Expect::CounterExec => "counter-exec",
            Expect::Pair => "pair",
            Expect::Push => "push",
            Expect::Pop { .. } => "pop",
        };
        *self.counts.entry(kind).or_insert(0) += 1;
        match exp {
            Expect::Any | Expect::Rename => {}
            Expect::Transfer { from, to, amount } => match v {
                Value::Array(items) if items.len() == 2 => {
                    self.balances[from] -= amount;
                    self.balances[to] += amount;
                }
                other => self.fail(format!("client {c}: transfer EXEC replied {other}")),
            },
            Expect::Audit => {
                let items = match v {
                    Value::Array(items) => items,
                    other => return self.fail(format!("client {c}: audit replied {other}")),
                };
                let vals: Option<Vec<i64>> = items.iter().map(int).collect();
                match vals {
                    Some(vals) if vals.iter().sum::<i64>() == START * ACCOUNTS as i64 => {}
                    _ => self.fail(format!("client {c}: an audit saw half a transfer: {items:?}")),
                }
            }
            Expect::CounterGet => {
                if std::env::var("SHARDIS_SIM_VERBOSE").as_deref() == Ok("2") {
                    eprintln!("  client {c} (core {}) read counter {v}", self.clients[c].core);
                }
                self.clients[c].read = int(&v)
            }
            Expect::CounterExec => match v {
                Value::Array(_) => {
                    if std::env::var("SHARDIS_SIM_VERBOSE").as_deref() == Ok("2") {
                        eprintln!("  client {c} (core {}) EXEC ok: {v}", self.clients[c].core);
                    }
                    self.counter_ok += 1
                }
                Value::NilArray | Value::Null => {}
                other => self.fail(format!("client {c}: counter EXEC replied {other}")),
            },
            Expect::Pair => {
                if let Value::Array(items) = &v {
                    if items.len() == 2 && items[0] != items[1] {
                        self.fail(format!("client {c}: saw half an MSET: {v}"));
                    }
                }
            }
            Expect::Push => {}
            Expect::Pop { moved } => {
                let item = match (&v, moved) {
                    (Value::Array(kv), false) if kv.len() == 2 => kv[1].as_bytes().map(|b| b.to_vec()),
                    (Value::Bulk(b), true) => Some(b.clone()),
                    (Value::NilBulk | Value::NilArray | Value::Null, _) => None,
                    _ => return self.fail(format!("client {c}: pop replied {v}")),
                };
                if let Some(item) = item {
                    let item = String::from_utf8_lossy(&item).into_owned();
                    let n = self.popped.entry(item.clone()).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        self.fail(format!("item {item} popped twice"));
                    }
                }
            }
        }
    }

    /// Client `c`'s next exchange.
    fn act(&mut self, c: usize) {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        match self.clients[c].role {
            Role::Mover => {
                if self.rng.gen_bool(0.2) {
                    // A token moves between two shards by RENAME (the
                    // target is overwritten: the token exists once).
                    let (a, b) = (self.tokens[0].clone(), self.tokens[1].clone());
                    let (from, to) = if self.rng.gen_bool(0.5) { (a, b) } else { (b, a) };
                    return self.send(c, &[s(&["RENAME", &from, &to])], vec![Expect::Rename]);
                }
                let from = self.rng.gen_range(0..ACCOUNTS);
                let to = (from + self.rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                let amount = self.rng.gen_range(1..50);
                let (a, b) = (self.accounts[from].clone(), self.accounts[to].clone());
                let cmds = [
                    s(&["MULTI"]),
                    s(&["DECRBY", &a, &amount.to_string()]),
                    s(&["INCRBY", &b, &amount.to_string()]),
                    s(&["EXEC"]),
                ];
                let expect = vec![Expect::Any, Expect::Any, Expect::Any, Expect::Transfer { from, to, amount }];
                self.send(c, &cmds, expect)
            }
            Role::Auditor => {
                if self.rng.gen_bool(0.5) {
                    let mut mget = vec!["MGET".to_string()];
                    mget.extend(self.accounts.iter().cloned());
                    return self.send(c, &[mget], vec![Expect::Audit]);
                }
                let mut cmds = vec![s(&["MULTI"])];
                let mut expect = vec![Expect::Any];
                for a in self.accounts.clone() {
                    cmds.push(s(&["GET", &a]));
                    expect.push(Expect::Any);
                }
                cmds.push(s(&["EXEC"]));
                expect.push(Expect::Audit);
                self.send(c, &cmds, expect)
            }
            Role::Counter => {
                let k = self.counter.clone();
                match self.clients[c].read.take() {
                    None => self.send(c, &[s(&["WATCH", &k]), s(&["GET", &k])], vec![Expect::Any, Expect::CounterGet]),
                    Some(v) => {
                        let cmds = [s(&["MULTI"]), s(&["SET", &k, &(v + 1).to_string()]), s(&["EXEC"])];
                        self.send(c, &cmds, vec![Expect::Any, Expect::Any, Expect::CounterExec])
                    }
                }
            }
            Role::Pairer => {
                let v = self.rng.gen_range(0..1_000_000).to_string();
                let (a, b) = self.pair.clone();
                let cmds = [s(&["SELECT", "1"]), s(&["MSET", &a, &v, &b, &v])];
                self.send(c, &cmds, vec![Expect::Any, Expect::Any])
            }
            Role::PairReader => {
                let db = if self.rng.gen_bool(0.5) { "1" } else { "2" };
                let (a, b) = self.pair.clone();
                self.send(c, &[s(&["SELECT", db]), s(&["MGET", &a, &b])], vec![Expect::Any, Expect::Pair])
            }
            Role::Swapper => {
                let cmd = if self.rng.gen_bool(0.7) { s(&["SWAPDB", "1", "2"]) } else { s(&["FLUSHDB"]) };
                self.send(c, &[s(&["SELECT", "3"]), cmd], vec![Expect::Any, Expect::Any])
            }
            Role::Producer => {
                self.pushed += 1;
                let n = self.pushed;
                let q = self.queues.0.clone();
                self.send(c, &[s(&["LPUSH", &q, &format!("item{n}")])], vec![Expect::Push])
            }
            Role::Consumer => {
                let (q, dst) = self.queues.clone();
                if self.rng.gen_bool(0.5) {
                    self.send(c, &[s(&["BLPOP", &q, "0"])], vec![Expect::Pop { moved: false }])
                } else {
                    // Cross-shard BLMOVE; the moved item is counted as popped
                    // here and then removed from dst.
                    let cmds = [s(&["BLMOVE", &q, &dst, "RIGHT", "LEFT", "0"]), s(&["LPOP", &dst])];
                    self.send(c, &cmds, vec![Expect::Pop { moved: true }, Expect::Any])
                }
            }
        }
    }

    /// A client vanishes (its connection is closed) whatever it was doing.
    fn drop_client(&mut self, c: usize) {
        let cl = &mut self.clients[c];
        if !cl.alive {
            return;
        }
        cl.alive = false;
        let (core, idx) = (cl.core, cl.idx);
        let pending: Vec<Expect> = cl.expect.drain(..).collect();
        for e in pending {
            match e {
                Expect::Transfer { from, to, amount } => self.uncertain.push((from, to, amount)),
                Expect::CounterExec => self.counter_uncertain += 1,
                _ => {}
            }
        }
        self.cores[core].close(idx);
        self.io(core);
        // Its place is taken by a new client of the same role.
        let role = self.clients[c].role;
        self.connect(role, core);
    }

    fn step(&mut self) {
        self.clock += 1;
        let n = self.cores.len();
        match self.rng.gen_range(0..100) {
            0..=24 => {
                let idle: Vec<usize> =
                    (0..self.clients.len()).filter(|&c| self.clients[c].alive && !self.clients[c].busy).collect();
                if !idle.is_empty() {
                    let c = idle[self.rng.gen_range(0..idle.len())];
                    self.act(c);
                }
            }
            25..=59 => {
                let pairs = self.pending_pairs();
                if !pairs.is_empty() {
                    let (to, from) = pairs[self.rng.gen_range(0..pairs.len())];
                    self.deliver(to, from);
                }
            }
            60..=79 => {
                let core = self.rng.gen_range(0..n);
                self.settle(core);
            }
            80..=94 => {
                let core = self.rng.gen_range(0..n);
                self.complete_aof(core);
            }
            95..=97 => {
                let core = self.rng.gen_range(0..n);
                self.cores[core].now = self.clock;
                self.cores[core].cron();
                self.io(core);
            }
            _ => {
                let movers: Vec<usize> = (0..self.clients.len())
                    .filter(|&c| self.clients[c].alive && self.clients[c].busy && self.clients[c].role != Role::Auditor)
                    .collect();
                if !movers.is_empty() && self.rng.gen_bool(0.1) {
                    let c = movers[self.rng.gen_range(0..movers.len())];
                    self.drop_client(c);
                }
            }
        }
        for c in 0..self.clients.len() {
            if !self.clients[c].inbox.is_empty() {
                self.read_replies(c);
            }
        }
    }

    /// Deliver everything, settle every core, complete every write, until
    /// nothing moves.
    fn quiesce(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for (to, from) in self.pending_pairs() {
                while self.deliver(to, from) {
                    moved = true;
                }
            }
            for core in 0..self.cores.len() {
                self.settle(core);
                while self.complete_aof(core) {
                    moved = true;
                }
                self.settle(core);
            }
            for c in 0..self.clients.len() {
                if !self.clients[c].inbox.is_empty() {
                    self.read_replies(c);
                    moved = true;
                }
            }
            if !moved && self.pending_pairs().is_empty() {
                return;
            }
        }
        self.fail("the cores never went quiet".into());
    }

    /// A value of `key` in db `db` on its shard, rendered comparably.
    fn dump_all(&self) -> BTreeMap<(usize, Vec<u8>), String> {
        dump_keyspaces(self.cores.iter().map(|c| &c.ks))
    }
}

fn dump_keyspaces<'a>(
    kss: impl Iterator<Item = &'a shardis::keyspace::Keyspace>,
) -> BTreeMap<(usize, Vec<u8>), String> {
    let mut out = BTreeMap::new();
    for ks in kss {
        for (db, d) in ks.dbs.iter().enumerate() {
            for e in d.dict.iter() {
                let mut cmds = Vec::new();
                shardis::persist::rebuild::state_commands(&mut cmds, e.key(), Some((&e.value, e.expire())));
                out.insert((db, e.key().to_vec()), String::from_utf8_lossy(&cmds).into_owned());
            }
        }
    }
    out
}

/// The integer in string `key` (db 0), read from its shard.
fn int_at(sim: &Sim, key: &str) -> Option<i64> {
    let owner = sim.slots.shard_of(key.as_bytes());
    let e = sim.cores[owner].ks.peek(0, key.as_bytes(), 0)?;
    let mut buf = [0u8; 24];
    std::str::from_utf8(e.value.str_bytes(&mut buf)?).ok()?.parse().ok()
}

fn run_seed(seed: u64) -> Result<u64, String> {
    let nshards = 2 + (seed % 3) as usize;
    let dir = common::server::test_data_root().join(format!("sim-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sim = Sim::new(seed, nshards, dir.clone());
    for _ in 0..STEPS {
        sim.step();
        if !sim.failures.is_empty() {
            break;
        }
    }
    sim.quiesce();
    // No deadlock: every client that is not a blocked consumer got all its
    // replies.
    for (c, cl) in sim.clients.iter().enumerate() {
        let blocked_pop = cl.role == Role::Consumer && matches!(cl.expect.front(), Some(Expect::Pop { .. }));
        if cl.alive && !cl.expect.is_empty() && !blocked_pop {
            sim.failures.push(format!("client {c} ({:?}) still waits for {:?}", cl.role, cl.expect));
        }
    }
    // Balances: the acknowledged transfers, plus some subset of those whose
    // client vanished before the reply (each all or nothing).
    let counter = sim.counter.clone();
    let q = sim.queues.0.clone();
    let final_state: Vec<i64> = sim.accounts.iter().map(|a| int_at(&sim, a).unwrap_or(i64::MIN)).collect();
    let k = sim.uncertain.len().min(16);
    let explained = (0u32..1 << k).any(|mask| {
        let mut b = sim.balances.clone();
        for (i, &(from, to, amount)) in sim.uncertain.iter().enumerate().take(k) {
            if mask & (1 << i) != 0 {
                b[from] -= amount;
                b[to] += amount;
            }
        }
        b == final_state
    });
    if !explained {
        sim.failures.push(format!(
            "balances {final_state:?} are not the acknowledged {:?} plus whole vanished transfers {:?}",
            sim.balances, sim.uncertain
        ));
    }
    // No lost update: the counter is the successes (plus vanished ones
    // that may have committed).
    let cv = int_at(&sim, &counter).unwrap_or(-1);
    if cv < sim.counter_ok || cv > sim.counter_ok + sim.counter_uncertain {
        sim.failures.push(format!("counter {cv} after {} acknowledged increments", sim.counter_ok));
    }
    // Items: none lost, none twice (checked as popped); what was not
    // popped is still queued, and no consumer sleeps beside a full list.
    let qowner = sim.slots.shard_of(q.as_bytes());
    let left = sim.cores[qowner].ks.peek(0, q.as_bytes(), 0).and_then(|e| e.value.as_list()).map_or(0, |l| l.len());
    let popped = sim.popped.len() as u64;
    if popped + left as u64 > sim.pushed {
        sim.failures.push(format!("{popped} popped + {left} left > {} pushed", sim.pushed));
    }
    let waiting = sim.clients.iter().any(|c| c.alive && c.role == Role::Consumer && !c.expect.is_empty());
    if waiting && left > 0 {
        sim.failures.push(format!("lost wake-up: a consumer waits while {left} items are queued"));
    }
    if std::env::var_os("SHARDIS_SIM_VERBOSE").is_some() {
        eprintln!(
            "seed {seed}: {nshards} shards, replies {:?}, {} vanished transfers",
            sim.counts,
            sim.uncertain.len()
        );
    }
    // The AOF replays to exactly what the cores hold.
    let live = sim.dump_all();
    let trace = sim.trace;
    let failures = std::mem::take(&mut sim.failures);
    drop(sim);
    if failures.is_empty() {
        match shardis::persist::load::recover(&dir, nshards) {
            Ok(loaded) => {
                let replayed = dump_keyspaces(loaded.iter().map(|l| &l.ks));
                if replayed != live {
                    let diff: Vec<_> = live
                        .iter()
                        .filter(|(k, v)| replayed.get(k) != Some(v))
                        .map(|(k, _)| String::from_utf8_lossy(&k.1).into_owned())
                        .chain(
                            replayed
                                .keys()
                                .filter(|k| !live.contains_key(k))
                                .map(|k| String::from_utf8_lossy(&k.1).into_owned()),
                        )
                        .take(10)
                        .collect();
                    return Err(format!("seed {seed}: the AOF replays to another state; keys differing: {diff:?}"));
                }
            }
            Err(e) => return Err(format!("seed {seed}: recovery failed: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures.is_empty() {
        Ok(trace)
    } else {
        Err(format!("seed {seed} ({nshards} shards):\n  {}", failures.join("\n  ")))
    }
}

#[test]
fn seeded_schedules_keep_the_transaction_invariants() {
    let first: u64 = std::env::var("SHARDIS_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let count: u64 = std::env::var("SHARDIS_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut failures = Vec::new();
    for seed in first..first + count {
        if let Err(e) = run_seed(seed) {
            failures.push(e);
            if failures.len() >= 3 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(replay one with SHARDIS_SIM_SEED=<seed> SHARDIS_SIM_SEEDS=1)",
        failures.join("\n")
    );
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_seed(7).expect("seed 7 passes");
    let b = run_seed(7).expect("seed 7 passes again");
    assert_eq!(a, b, "the same seed gave two different runs");
}

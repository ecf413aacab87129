//! Seeded simulation of shardis-monitor's election (`monitor::election`):
//! N monitors and M fake servers (one master, replicas) on a simulated
//! network that loses, delays and reorders messages and cuts links, with
//! monitors and servers crashing and restarting (a monitor restarts from
//! the last state it persisted; a crash may fall between two actions of
//! one step, so "persist, then send" is put to the test). After the fault
//! phase everything heals and the run must converge.
//!
//! Checked on every step:
//! - no monitor gives two different votes in one epoch (also across
//!   restarts): every vote it persists or sends is recorded;
//! - at most one leader per epoch (a monitor that sends `REPLICAOF NO ONE`
//!   for an epoch led it);
//! - never two servers promoted for one epoch;
//! - a monitor's epoch never goes down, across restarts too.
//! At the end: every monitor names the same master, which is alive and a
//! master, and every other server replicates from it (progress once a
//! majority can talk).
//!
//! `SHARDIS_MONITOR_SIM_SEEDS` (default 200) seeds from
//! `SHARDIS_MONITOR_SIM_SEED` (default 1); a failure names its seed, and
//! `SHARDIS_MONITOR_SIM_SEED=<n> SHARDIS_MONITOR_SIM_SEEDS=1` replays it
//! step for step (`SHARDIS_SIM_VERBOSE=1` prints the events).
//! `scripts/simulate 5000 1 monitor` runs thousands.

use shardis::monitor::election::{
    Action, Addr, Event, Hello, InfoReport, MasterConfig, Monitor, Persisted, Rng, Stage, HELLO_PERIOD_MS,
    PROBE_PERIOD_MS,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

const NAME: &str = "m";
const DOWN_AFTER: u64 = 1000;
const FAILOVER_TIMEOUT: u64 = 3000;
const TICK: u64 = 10;
const FAULT_PHASE: u64 = 20_000;
const HEAL_PHASE: u64 = 25_000;

#[derive(Clone, Debug)]
struct FakeServer {
    addr: Addr,
    run_id: String,
    alive: bool,
    /// None: a master; Some(a): a replica of `a`.
    master: Option<Addr>,
    offset: u64,
    priority: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Node {
    Mon(usize),
    Srv(usize),
}

#[derive(Debug)]
enum Payload {
    /// An event for monitor `to` (incarnation `inc`).
    ToMon { to: usize, inc: u64, ev: Event },
    /// A REPLICAOF arriving at server `to`; the monitor then learns the result.
    ReplicaOf { to: usize, from: usize, inc: u64, target: Option<Addr> },
}

struct MonNode {
    m: Option<Monitor>,
    inc: u64,
    disk: Option<Persisted>,
    addr: Addr,
    id: String,
    last_epoch: u64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: BTreeMap<usize, Payload>,
    next_payload: usize,
    mons: Vec<MonNode>,
    servers: Vec<FakeServer>,
    /// Cut links (unordered pairs).
    cuts: Vec<(Node, Node)>,
    loss_pct: u64,
    faults: bool,
    /// Vote tokens: token -> (asking monitor, its incarnation, peer id).
    tokens: BTreeMap<u64, (usize, u64, String)>,
    next_token: u64,
    votes: BTreeMap<(usize, u64), String>,
    leaders: BTreeMap<u64, usize>,
    promoted: BTreeMap<u64, Addr>,
    quorum: u32,
    verbose: bool,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    promotions: usize,
    mon_crashes: usize,
    srv_crashes: usize,
    mid_batch_crashes: usize,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let n_mon = 3 + 2 * rng.below(2) as usize;
        let n_srv = 2 + rng.below(3) as usize;
        let quorum = 1 + rng.below((n_mon / 2 + 1) as u64) as u32;
        let servers = (0..n_srv)
            .map(|i| FakeServer {
                addr: Addr::new(&format!("10.0.1.{i}"), 6379),
                run_id: format!("srv{i:02}{:08x}", rng.next_u64() as u32),
                alive: true,
                master: if i == 0 { None } else { Some(Addr::new("10.0.1.0", 6379)) },
                offset: 0,
                // At most one server that may never be promoted, and only
                // with two others: otherwise a replication loop between the
                // master and a priority-0 replica could not be repaired by
                // any rule, Sentinel's included.
                priority: if n_srv >= 3 && i == n_srv - 1 && rng.below(2) == 0 {
                    0
                } else {
                    100 - rng.below(3) as u32 * 10
                },
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            payloads: BTreeMap::new(),
            next_payload: 0,
            mons: Vec::new(),
            servers,
            cuts: Vec::new(),
            loss_pct: 0,
            faults: true,
            tokens: BTreeMap::new(),
            next_token: 1,
            votes: BTreeMap::new(),
            leaders: BTreeMap::new(),
            promoted: BTreeMap::new(),
            quorum,
            verbose: std::env::var_os("SHARDIS_SIM_VERBOSE").is_some(),
            stats: Stats::default(),
        };
        for i in 0..n_mon {
            let addr = Addr::new(&format!("10.0.0.{i}"), 26379);
            let id = format!("{:040x}", sim.rng.next_u64() as u128 * 7 + i as u128);
            sim.mons.push(MonNode { m: None, inc: 0, disk: None, addr, id, last_epoch: 0 });
            sim.start_monitor(i);
        }
        sim
    }

    fn config(&self) -> MasterConfig {
        MasterConfig {
            name: NAME.into(),
            addr: Addr::new("10.0.1.0", 6379),
            quorum: self.quorum,
            down_after_ms: DOWN_AFTER,
            failover_timeout_ms: FAILOVER_TIMEOUT,
            parallel_syncs: 1,
            auth_pass: String::new(),
            auth_user: String::new(),
        }
    }

    fn start_monitor(&mut self, i: usize) {
        let seed = self.rng.next_u64();
        let cfg = self.config();
        let now = self.now;
        let node = &mut self.mons[i];
        node.inc += 1;
        match &node.disk {
            Some(p) => {
                let m = Monitor::restore(p, node.addr.clone(), seed, now);
                assert!(m.current_epoch >= node.last_epoch, "monitor {i} epoch went back on restart");
                node.m = Some(m);
            }
            None => {
                let mut m = Monitor::new(node.id.clone(), node.addr.clone(), seed);
                let out = m.add_master(cfg, now).expect("valid config");
                node.m = Some(m);
                self.run_actions(i, out);
            }
        }
    }

    fn cut(&self, a: Node, b: Node) -> bool {
        self.cuts.iter().any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    fn delay(&mut self) -> u64 {
        if self.faults {
            1 + self.rng.below(60)
        } else {
            1 + self.rng.below(5)
        }
    }

    fn lost(&mut self) -> bool {
        self.faults && self.rng.below(100) < self.loss_pct
    }

    fn schedule(&mut self, at: u64, p: Payload) {
        let id = self.next_payload;
        self.next_payload += 1;
        self.seq += 1;
        self.payloads.insert(id, p);
        self.queue.push(Reverse((at, self.seq, id)));
    }

    fn to_mon(&mut self, to: usize, delay: u64, ev: Event) {
        let inc = self.mons[to].inc;
        self.schedule(self.now + delay, Payload::ToMon { to, inc, ev });
    }

    fn info_of(&self, s: usize) -> InfoReport {
        let srv = &self.servers[s];
        let master_alive = |a: &Addr| self.servers.iter().any(|x| x.addr == *a && x.alive && x.master.is_none());
        InfoReport {
            run_id: srv.run_id.clone(),
            is_master: srv.master.is_none(),
            master: srv.master.clone(),
            link_up: srv.master.as_ref().is_some_and(master_alive),
            link_down_ms: if srv.master.as_ref().is_some_and(master_alive) { 0 } else { 5000 },
            priority: srv.priority,
            offset: srv.offset,
            replicas: self
                .servers
                .iter()
                .filter(|x| x.alive && x.master.as_ref() == Some(&srv.addr))
                .map(|x| x.addr.clone())
                .collect(),
        }
    }

    fn server_index(&self, a: &Addr) -> Option<usize> {
        self.servers.iter().position(|s| s.addr == *a)
    }

    /// Carry out a monitor's actions in order; a crash may stop it between two.
    fn run_actions(&mut self, i: usize, out: Vec<Action>) {
        for a in out {
            if self.faults && self.rng.below(2000) == 0 {
                self.stats.mid_batch_crashes += 1;
                self.crash_monitor(i);
                return;
            }
            self.do_action(i, a);
        }
    }

    fn record_vote(&mut self, i: usize, epoch: u64, leader: &str) {
        if epoch == 0 {
            return;
        }
        match self.votes.get(&(i, epoch)) {
            Some(prev) => assert_eq!(prev, leader, "seed {}: monitor {i} voted twice in epoch {epoch}", self.seed),
            None => {
                self.votes.insert((i, epoch), leader.to_string());
            }
        }
    }

    fn do_action(&mut self, i: usize, a: Action) {
        if self.verbose && !matches!(a, Action::Persist(_)) {
            eprintln!("{:>6} mon{i}: {a:?}", self.now);
        }
        match a {
            Action::Persist(p) => {
                for pm in &p.masters {
                    if let Some(l) = &pm.leader {
                        self.record_vote(i, pm.leader_epoch, l);
                    }
                }
                assert!(p.current_epoch >= self.mons[i].last_epoch, "seed {}: epoch went back", self.seed);
                self.mons[i].last_epoch = p.current_epoch;
                self.mons[i].disk = Some(p);
            }
            Action::ReplyVote { token, down, leader, leader_epoch } => {
                if let Some(l) = &leader {
                    self.record_vote(i, leader_epoch, l);
                }
                let Some((asker, inc, peer)) = self.tokens.remove(&token) else { return };
                if self.cut(Node::Mon(i), Node::Mon(asker)) || self.lost() || self.mons[asker].inc != inc {
                    return;
                }
                let d = self.delay();
                let peer_id = peer;
                self.to_mon(
                    asker,
                    d,
                    Event::VoteReply { peer: peer_id, master_name: NAME.into(), down, leader, leader_epoch },
                );
            }
            Action::AskPeer { peer, peer_id, master, epoch, run_id, .. } => {
                let Some(to) = self.mons.iter().position(|m| m.addr == peer) else { return };
                if self.cut(Node::Mon(i), Node::Mon(to)) || self.lost() {
                    return;
                }
                let token = self.next_token;
                self.next_token += 1;
                self.tokens.insert(token, (i, self.mons[i].inc, peer_id));
                let d = self.delay();
                let run_id = run_id.unwrap_or_else(|| "*".into());
                self.to_mon(to, d, Event::VoteRequest { token, master, epoch, run_id });
            }
            Action::ReplicaOf { addr, target, epoch } => {
                if target.is_none() {
                    match self.leaders.get(&epoch) {
                        Some(&l) => assert_eq!(l, i, "seed {}: two leaders in epoch {epoch}", self.seed),
                        None => {
                            self.leaders.insert(epoch, i);
                        }
                    }
                    match self.promoted.get(&epoch) {
                        Some(prev) => assert_eq!(*prev, addr, "seed {}: two promotions in epoch {epoch}", self.seed),
                        None => {
                            self.promoted.insert(epoch, addr.clone());
                            self.stats.promotions += 1;
                        }
                    }
                }
                let Some(s) = self.server_index(&addr) else { return };
                let d = self.delay();
                if self.cut(Node::Mon(i), Node::Srv(s)) || self.lost() {
                    self.to_mon(i, d + DOWN_AFTER, Event::ReplicaOfFailed { addr });
                    return;
                }
                let inc = self.mons[i].inc;
                self.schedule(self.now + d, Payload::ReplicaOf { to: s, from: i, inc, target });
            }
            Action::Hello { .. } => self.hello_from(i),
            Action::Event { .. } => {}
        }
    }

    fn hello_from(&mut self, i: usize) {
        let Some(m) = &self.mons[i].m else { return };
        let st = &m.masters[NAME];
        let h = Hello {
            addr: m.my_addr.clone(),
            run_id: m.my_id.clone(),
            current_epoch: m.current_epoch,
            master_name: NAME.into(),
            master: st.master.addr.clone(),
            config_epoch: st.config_epoch,
        };
        for to in 0..self.mons.len() {
            if to != i && !self.cut(Node::Mon(i), Node::Mon(to)) && !self.lost() {
                let d = self.delay();
                self.to_mon(to, d, Event::Hello(h.clone()));
            }
        }
    }

    /// The shell's periodic work for monitor `i`: probe and INFO every
    /// server it knows.
    fn probe_from(&mut self, i: usize) {
        let Some(m) = &self.mons[i].m else { return };
        let st = &m.masters[NAME];
        let addrs: Vec<Addr> = std::iter::once(st.master.addr.clone()).chain(st.replicas.keys().cloned()).collect();
        for a in addrs {
            let Some(s) = self.server_index(&a) else { continue };
            let at = self.now;
            let d = self.delay();
            if !self.servers[s].alive {
                self.to_mon(i, d, Event::Probe { addr: a, ok: false, at });
            } else if self.cut(Node::Mon(i), Node::Srv(s)) || self.lost() {
                // No answer: the shell's probe times out.
                self.to_mon(i, d + DOWN_AFTER, Event::Probe { addr: a, ok: false, at });
            } else {
                let info = self.info_of(s);
                self.to_mon(i, d, Event::Probe { addr: a.clone(), ok: true, at });
                self.to_mon(i, d, Event::Info { addr: a, info });
            }
        }
    }

    fn crash_monitor(&mut self, i: usize) {
        self.mons[i].m = None;
        self.mons[i].inc += 1;
        self.stats.mon_crashes += 1;
    }

    fn deliver(&mut self, p: Payload) {
        match p {
            Payload::ToMon { to, inc, ev } => {
                if self.mons[to].inc != inc {
                    return;
                }
                let now = self.now;
                let Some(m) = self.mons[to].m.as_mut() else { return };
                let out = m.step(ev, now);
                self.after_step(to, out);
            }
            Payload::ReplicaOf { to, from, inc, target } => {
                if !self.servers[to].alive {
                    let a = self.servers[to].addr.clone();
                    let d = self.delay();
                    self.to_mon(from, d, Event::ReplicaOfFailed { addr: a });
                    return;
                }
                self.servers[to].master = target;
                let info = self.info_of(to);
                let a = self.servers[to].addr.clone();
                if self.mons[from].inc == inc {
                    let d = self.delay();
                    self.to_mon(from, d, Event::Info { addr: a, info });
                }
            }
        }
    }

    fn after_step(&mut self, i: usize, out: Vec<Action>) {
        self.run_actions(i, out);
        if let Some(m) = &self.mons[i].m {
            if let Some(Stage::Promoting { epoch, .. }) = &m.masters[NAME].failover {
                match self.leaders.get(epoch) {
                    Some(&l) => assert_eq!(l, i, "seed {}: two leaders in epoch {epoch}", self.seed),
                    None => {
                        self.leaders.insert(*epoch, i);
                    }
                }
            }
        }
    }

    fn random_fault(&mut self) {
        let n_mon = self.mons.len();
        let n_srv = self.servers.len();
        match self.rng.below(100) {
            0..=7 => {
                let i = self.rng.below(n_mon as u64) as usize;
                if self.mons[i].m.is_some() {
                    self.crash_monitor(i);
                } else {
                    self.start_monitor(i);
                }
            }
            8..=15 => {
                let s = self.rng.below(n_srv as u64) as usize;
                self.servers[s].alive = !self.servers[s].alive;
                self.stats.srv_crashes += 1;
            }
            16..=25 => {
                let nodes: Vec<Node> = (0..n_mon).map(Node::Mon).chain((0..n_srv).map(Node::Srv)).collect();
                let a = nodes[self.rng.below(nodes.len() as u64) as usize];
                let b = nodes[self.rng.below(nodes.len() as u64) as usize];
                if a != b {
                    self.cuts.push((a, b));
                }
            }
            26..=35 => {
                if !self.cuts.is_empty() {
                    let k = self.rng.below(self.cuts.len() as u64) as usize;
                    self.cuts.swap_remove(k);
                }
            }
            36..=40 => self.loss_pct = self.rng.below(40),
            _ => {}
        }
    }

    fn run(&mut self) {
        // Stagger each monitor's periodic work.
        let phase: Vec<u64> = (0..self.mons.len()).map(|_| self.rng.below(PROBE_PERIOD_MS)).collect();
        let end = FAULT_PHASE + HEAL_PHASE;
        while self.now < end {
            self.now += TICK;
            if self.faults && self.now >= FAULT_PHASE {
                self.heal();
            }
            if self.faults && self.rng.below(100) < 3 {
                self.random_fault();
            }
            // Replicas with a live master replicate.
            let masters: Vec<Addr> =
                self.servers.iter().filter(|s| s.alive && s.master.is_none()).map(|s| s.addr.clone()).collect();
            for s in self.servers.iter_mut() {
                if s.alive && (s.master.is_none() || s.master.as_ref().is_some_and(|m| masters.contains(m))) {
                    s.offset += 1;
                }
            }
            while let Some(&Reverse((at, _, id))) = self.queue.peek() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                if let Some(p) = self.payloads.remove(&id) {
                    self.deliver(p);
                }
            }
            for i in 0..self.mons.len() {
                if self.mons[i].m.is_none() {
                    continue;
                }
                if (self.now + phase[i]) % PROBE_PERIOD_MS < TICK {
                    self.probe_from(i);
                }
                if (self.now + phase[i]) % HELLO_PERIOD_MS < TICK {
                    self.hello_from(i);
                }
                let now = self.now;
                let out = self.mons[i].m.as_mut().map(|m| m.tick(now)).unwrap_or_default();
                self.after_step(i, out);
            }
        }
        self.check_converged();
    }

    /// End of the fault phase: links heal, nothing is lost, every monitor
    /// and server runs again.
    fn heal(&mut self) {
        self.faults = false;
        self.cuts.clear();
        self.loss_pct = 0;
        for i in 0..self.mons.len() {
            if self.mons[i].m.is_none() {
                self.start_monitor(i);
            }
        }
        for s in &mut self.servers {
            s.alive = true;
        }
    }

    fn check_converged(&self) {
        let seed = self.seed;
        let names: Vec<Addr> =
            self.mons.iter().map(|m| m.m.as_ref().expect("all run").masters[NAME].master.addr.clone()).collect();
        assert!(names.windows(2).all(|w| w[0] == w[1]), "seed {seed}: monitors disagree on the master: {names:?}");
        let master = &names[0];
        let s = self.server_index(master).expect("a known server");
        let servers: Vec<(String, Option<String>)> =
            self.servers.iter().map(|s| (s.addr.to_string(), s.master.as_ref().map(|m| m.to_string()))).collect();
        assert!(
            self.servers[s].master.is_none(),
            "seed {seed}: the monitors' master {master} is not a master: {servers:?}"
        );
        for x in &self.servers {
            if x.addr != *master {
                assert_eq!(x.master.as_ref(), Some(master), "seed {seed}: {} not re-pointed: {servers:?}", x.addr);
            }
        }
    }
}

#[test]
fn seeded_elections_keep_their_invariants() {
    let first: u64 = std::env::var("SHARDIS_MONITOR_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let count: u64 = std::env::var("SHARDIS_MONITOR_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut totals = Stats::default();
    for seed in first..first + count {
        let r = std::panic::catch_unwind(|| {
            let mut sim = Sim::new(seed);
            sim.run();
            sim.stats
        });
        match r {
            Ok(s) => {
                totals.promotions += s.promotions;
                totals.mon_crashes += s.mon_crashes;
                totals.srv_crashes += s.srv_crashes;
                totals.mid_batch_crashes += s.mid_batch_crashes;
            }
            Err(_) => panic!(
                "monitor simulation failed at seed {seed}\n(replay it with SHARDIS_MONITOR_SIM_SEED={seed} SHARDIS_MONITOR_SIM_SEEDS=1)"
            ),
        }
    }
    eprintln!("{count} seeds: {totals:?}");
    // The faults must have happened, or the test checks nothing.
    assert!(totals.promotions > 0 && totals.mon_crashes > 0 && totals.srv_crashes > 0, "{totals:?}");
}

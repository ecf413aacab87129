//! Where a failover is decided: the monitor's detection, election and
//! promotion logic as a pure state machine, in the manner of raft-rs and
//! etcd's raft. Input is an `Event` (a probe result, an INFO report, a hello
//! or a vote from another monitor) or a `tick(now)`; output is a list of
//! `Action`s the I/O shell (`monitor::driver`) carries out *in order*. No
//! sockets, no clock (every call is given `now` in milliseconds), no
//! randomness of its own (a seeded generator is passed in), so that
//! `tests/monitor_sim.rs` can run thousands of schedules of many monitors and
//! servers and replay any of them exactly.
//!
//! # Safety rules, and where they are kept
//! - One vote per (master, epoch): `vote_for` gives a vote only for an epoch
//!   above the last one voted in, and emits `Action::Persist` *before* the
//!   reply that carries the vote; the shell fsyncs and renames the state
//!   file before it sends anything after a `Persist`.
//! - Epochs only grow: `current_epoch` is persisted whenever it rises and is
//!   restored at start-up (`Monitor::restore`).
//! - One leader per epoch: a leader needs votes from a majority of the
//!   monitors it knows and at least `quorum`; every voter gives one vote per
//!   epoch, so two majorities would share a voter.
//! - One promotion per epoch: only the leader of an epoch sends `REPLICAOF NO
//!   ONE` for it, and it picks the replica once per election.

use std::collections::BTreeMap;
use std::fmt;

/// How often the shell probes every server (PING) and asks INFO.
pub const PROBE_PERIOD_MS: u64 = 1000;
/// How often hellos are published (Sentinel: 2 s; faster hellos spread a
/// new configuration to the other monitors sooner).
pub const HELLO_PERIOD_MS: u64 = 1000;
/// While the master looks down, other monitors are asked this often for
/// their opinion (and votes). Asks are one small request; 10 a second per
/// peer for a few seconds is nothing, and it lets ODOWN follow within a
/// tenth of a second of the last peer's own SDOWN.
pub const ASK_PERIOD_MS: u64 = 100;
/// A peer's "down" answer counts towards ODOWN for this long.
pub const ASK_VALIDITY_MS: u64 = 3000;
/// Monitors that reach ODOWN together would split the vote; each waits a
/// random part of this before it starts an election (Sentinel uses up to 1 s;
/// on one network a few hundred ms separate candidates by many round trips).
pub const ELECTION_DESYNC_MS: u64 = 300;
/// Longest an election may take before it is abandoned (capped further by
/// `failover_timeout`), as Sentinel's 10 s.
pub const ELECTION_TIMEOUT_MS: u64 = 10_000;
/// A server that reports a role or master other than the configuration
/// says is re-pointed only after it has done so this long, so a monitor
/// whose configuration is stale hears the newer one (hellos every
/// `HELLO_PERIOD_MS`) before it re-points anything. The leader of the last
/// failover does not wait: it made the configuration.
pub const ROLE_GRACE_MS: u64 = 2 * HELLO_PERIOD_MS + 500;
/// INFO older than this makes a replica unfit for promotion.
pub const INFO_VALIDITY_MS: u64 = 5 * PROBE_PERIOD_MS;
/// REPLICAOF commands not yet confirmed by INFO are sent again this often.
pub const RESEND_MS: u64 = 1000;
/// Epochs above this are refused, so a forged epoch cannot push the
/// counter to where `+ 1` overflows.
pub const MAX_EPOCH: u64 = 1 << 62;

/// A server or monitor address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: &str, port: u16) -> Addr {
        Addr { host: host.to_string(), port }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A small seeded generator (splitmix64): the machine's only randomness, so
/// that a simulation seed decides everything.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        crate::util::splitmix64(&mut self.0)
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Options of one watched master (`SENTINEL MONITOR` plus `SENTINEL SET`).
#[derive(Clone, Debug, PartialEq)]
pub struct MasterConfig {
    pub name: String,
    pub addr: Addr,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    /// Password for the watched servers (empty: none).
    pub auth_pass: String,
    /// The ACL user it is for (empty: `default`; Sentinel's auth-user).
    pub auth_user: String,
}

/// What an INFO reply said (parsed by `monitor::info`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoReport {
    pub run_id: String,
    pub is_master: bool,
    /// A replica's master, as it reports it.
    pub master: Option<Addr>,
    pub link_up: bool,
    /// `master_link_down_since_seconds`, in ms (0 when up).
    pub link_down_ms: u64,
    /// `replica-priority` (0: never promote).
    pub priority: u32,
    /// Replicated offset (a replica's `slave_repl_offset`, a master's
    /// `master_repl_offset`).
    pub offset: u64,
    /// A master's replicas, as listed in its INFO.
    pub replicas: Vec<Addr>,
}

/// A hello: one monitor telling the others who it is and what it believes
/// (Sentinel's `__sentinel__:hello` message, field for field).
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    pub addr: Addr,
    pub run_id: String,
    pub current_epoch: u64,
    pub master_name: String,
    pub master: Addr,
    pub config_epoch: u64,
}

impl Hello {
    /// `ip,port,runid,current_epoch,master_name,master_ip,master_port,config_epoch`.
    pub fn encode(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.addr.host,
            self.addr.port,
            self.run_id,
            self.current_epoch,
            self.master_name,
            self.master.host,
            self.master.port,
            self.config_epoch
        )
    }

    /// None for anything that is not a well-formed hello.
    pub fn decode(s: &str) -> Option<Hello> {
        let f: Vec<&str> = s.split(',').collect();
        if f.len() != 8 || f[2].is_empty() || f[4].is_empty() {
            return None;
        }
        let epoch = |s: &str| s.parse::<u64>().ok().filter(|e| *e <= MAX_EPOCH);
        Some(Hello {
            addr: Addr::new(f[0], f[1].parse().ok()?),
            run_id: f[2].to_string(),
            current_epoch: epoch(f[3])?,
            master_name: f[4].to_string(),
            master: Addr::new(f[5], f[6].parse().ok()?),
            config_epoch: epoch(f[7])?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A probe (PING) of `addr` that was sent or failed at `at`: `ok` for a
    /// valid reply (PONG, LOADING, MASTERDOWN), not for errors, timeouts
    /// or a closed connection.
    Probe { addr: Addr, ok: bool, at: u64 },
    /// An INFO reply from `addr`.
    Info { addr: Addr, info: InfoReport },
    /// A hello from another monitor (or our own, echoed: ignored).
    Hello(Hello),
    /// `SENTINEL is-master-down-by-addr ip port epoch runid` from a client;
    /// `token` names the connection to answer on.
    VoteRequest { token: u64, master: Addr, epoch: u64, run_id: String },
    /// A peer's answer to our `AskPeer`.
    VoteReply { peer: String, master_name: String, down: bool, leader: Option<String>, leader_epoch: u64 },
    /// A REPLICAOF we sent failed (refused or unreachable).
    ReplicaOfFailed { addr: Addr },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write this state durably (fsync, then atomic rename) before doing
    /// any of the actions after it.
    Persist(Persisted),
    /// Answer a `VoteRequest`: `*3 :down $leader :leader_epoch`.
    ReplyVote { token: u64, down: bool, leader: Option<String>, leader_epoch: u64 },
    /// `SENTINEL is-master-down-by-addr` to a peer monitor; `run_id` is ours
    /// to ask for a vote in `epoch`, None to ask only whether it is down.
    AskPeer { peer: Addr, peer_id: String, master_name: String, master: Addr, epoch: u64, run_id: Option<String> },
    /// `REPLICAOF NO ONE` (target None) or `REPLICAOF host port` on `addr`,
    /// for `epoch`; then INFO at once so the result is known without
    /// waiting for the next poll.
    ReplicaOf { addr: Addr, target: Option<Addr>, epoch: u64 },
    /// Publish a hello for this master on every server of it now.
    Hello { master_name: String },
    /// A Sentinel event: publish `msg` on pub/sub `channel` and log it.
    Event { channel: String, msg: String },
}

/// What survives a restart: the epoch, the votes, the masters and what was
/// learnt about them. Written by the shell as TOML (`monitor::state_file`).
#[derive(Clone, Debug, PartialEq)]
pub struct Persisted {
    pub my_id: String,
    pub current_epoch: u64,
    pub masters: Vec<PersistedMaster>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PersistedMaster {
    pub config: MasterConfig,
    pub config_epoch: u64,
    /// The last vote given for this master, and its epoch.
    pub leader: Option<String>,
    pub leader_epoch: u64,
    pub replicas: Vec<Addr>,
    pub monitors: Vec<(String, Addr)>,
}

/// What this monitor knows of one server.
#[derive(Clone, Debug)]
pub struct Instance {
    pub addr: Addr,
    pub last_ok: u64,
    /// First failed probe since the last good one.
    pub failing_since: Option<u64>,
    pub sdown_since: Option<u64>,
    pub info: Option<InfoReport>,
    pub info_at: u64,
    /// Since when it has reported a role or master the configuration does
    /// not expect.
    pub wrong_since: Option<u64>,
    /// Last REPLICAOF we sent it (to resend, not flood).
    pub reconf_sent: Option<u64>,
}

impl Instance {
    fn new(addr: Addr, now: u64) -> Instance {
        Instance {
            addr,
            last_ok: now,
            failing_since: None,
            sdown_since: None,
            info: None,
            info_at: 0,
            wrong_since: None,
            reconf_sent: None,
        }
    }

    pub fn run_id(&self) -> &str {
        self.info.as_ref().map(|i| i.run_id.as_str()).unwrap_or("")
    }
}

/// Another monitor watching the same master.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: Addr,
    pub last_hello: u64,
    pub current_epoch: u64,
    pub says_down: bool,
    pub reply_at: Option<u64>,
    pub leader: Option<String>,
    pub leader_epoch: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Asking for votes in `epoch` since `started`.
    Election { epoch: u64, started: u64, forced: bool },
    /// Elected for `epoch`; `REPLICAOF NO ONE` sent to `chosen`.
    Promoting { epoch: u64, chosen: Addr, since: u64, sent: u64 },
}

/// One watched master and everything around it.
#[derive(Clone, Debug)]
pub struct Master {
    pub config: MasterConfig,
    pub config_epoch: u64,
    pub master: Instance,
    pub replicas: BTreeMap<Addr, Instance>,
    pub peers: BTreeMap<String, Peer>,
    pub odown_since: Option<u64>,
    pub leader: Option<String>,
    pub leader_epoch: u64,
    pub failover: Option<Stage>,
    /// No new election before this.
    pub next_attempt_at: u64,
    pub last_ask: u64,
    /// We led the failover that made the current configuration.
    pub made_config: bool,
}

impl Master {
    /// Ask every known monitor whether it sees this master down; with
    /// `run_id` (ours), also for its vote in `epoch`.
    fn ask_peers(&self, name: &str, epoch: u64, run_id: Option<&str>, out: &mut Vec<Action>) {
        for (id, p) in &self.peers {
            out.push(Action::AskPeer {
                peer: p.addr.clone(),
                peer_id: id.clone(),
                master_name: name.to_string(),
                master: self.master.addr.clone(),
                epoch,
                run_id: run_id.map(str::to_string),
            });
        }
    }

    fn new(config: MasterConfig, now: u64) -> Master {
        Master {
            master: Instance::new(config.addr.clone(), now),
            config,
            config_epoch: 0,
            replicas: BTreeMap::new(),
            peers: BTreeMap::new(),
            odown_since: None,
            leader: None,
            leader_epoch: 0,
            failover: None,
            next_attempt_at: 0,
            last_ask: 0,
            made_config: false,
        }
    }

    /// Monitors that take part: the peers we know and ourselves.
    pub fn voters(&self) -> usize {
        self.peers.len() + 1
    }

    /// Votes a leader needs: a majority of the monitors known, and quorum.
    pub fn votes_needed(&self) -> usize {
        (self.voters() / 2 + 1).max(self.config.quorum as usize)
    }

    fn instance_mut(&mut self, addr: &Addr) -> Option<&mut Instance> {
        if self.master.addr == *addr {
            Some(&mut self.master)
        } else {
            self.replicas.get_mut(addr)
        }
    }

    /// "master name ip port", the tail of most Sentinel events about it.
    pub fn describe(&self) -> String {
        format!("master {} {} {}", self.config.name, self.master.addr.host, self.master.addr.port)
    }

    fn describe_replica(&self, r: &Addr) -> String {
        format!("slave {r} {} {} @ {}", r.host, r.port, self.tail())
    }

    fn tail(&self) -> String {
        format!("{} {} {}", self.config.name, self.master.addr.host, self.master.addr.port)
    }

    pub fn in_failover(&self) -> bool {
        self.failover.is_some()
    }

    pub fn in_election(&self) -> Option<u64> {
        match self.failover {
            Some(Stage::Election { epoch, .. }) => Some(epoch),
            _ => None,
        }
    }
}

/// The whole monitor: its identity, epoch and masters.
#[derive(Clone, Debug)]
pub struct Monitor {
    pub my_id: String,
    pub my_addr: Addr,
    pub current_epoch: u64,
    pub masters: BTreeMap<String, Master>,
    pub rng: Rng,
}

fn event(out: &mut Vec<Action>, channel: &str, msg: String) {
    out.push(Action::Event { channel: channel.to_string(), msg });
}

impl Monitor {
    pub fn new(my_id: String, my_addr: Addr, seed: u64) -> Monitor {
        Monitor { my_id, my_addr, current_epoch: 0, masters: BTreeMap::new(), rng: Rng::new(seed) }
    }

    /// A monitor restarted from its state file. Probe times start at `now`,
    /// so nothing is down merely because the monitor was.
    pub fn restore(p: &Persisted, my_addr: Addr, seed: u64, now: u64) -> Monitor {
        let mut m = Monitor::new(p.my_id.clone(), my_addr, seed);
        m.current_epoch = p.current_epoch;
        for pm in &p.masters {
            let mut st = Master::new(pm.config.clone(), now);
            st.config_epoch = pm.config_epoch;
            st.leader = pm.leader.clone();
            st.leader_epoch = pm.leader_epoch;
            for r in &pm.replicas {
                if *r != st.master.addr {
                    st.replicas.insert(r.clone(), Instance::new(r.clone(), now));
                }
            }
            for (id, addr) in &pm.monitors {
                st.peers.insert(id.clone(), Peer::new(addr.clone(), now));
            }
            // A vote given just before a crash must not be followed at once by
            // an election of our own.
            st.next_attempt_at = now + ELECTION_DESYNC_MS;
            m.masters.insert(pm.config.name.clone(), st);
        }
        m
    }

    pub fn snapshot(&self) -> Persisted {
        Persisted {
            my_id: self.my_id.clone(),
            current_epoch: self.current_epoch,
            masters: self
                .masters
                .values()
                .map(|m| PersistedMaster {
                    config: MasterConfig { addr: m.master.addr.clone(), ..m.config.clone() },
                    config_epoch: m.config_epoch,
                    leader: m.leader.clone(),
                    leader_epoch: m.leader_epoch,
                    replicas: m.replicas.keys().cloned().collect(),
                    monitors: m.peers.iter().map(|(id, p)| (id.clone(), p.addr.clone())).collect(),
                })
                .collect(),
        }
    }

    fn persist(&self, out: &mut Vec<Action>) {
        out.push(Action::Persist(self.snapshot()));
    }

    /// `SENTINEL MONITOR`: start watching a master.
    pub fn add_master(&mut self, config: MasterConfig, now: u64) -> Result<Vec<Action>, String> {
        if self.masters.contains_key(&config.name) {
            return Err("ERR Duplicated master name".into());
        }
        check_config(&config)?;
        let mut out = Vec::new();
        let name = config.name.clone();
        let st = Master::new(config, now);
        event(&mut out, "+monitor", format!("{} quorum {}", st.describe(), st.config.quorum));
        self.masters.insert(name, st);
        self.persist(&mut out);
        Ok(out)
    }

    /// `SENTINEL REMOVE`.
    pub fn remove_master(&mut self, name: &str) -> Result<Vec<Action>, String> {
        let Some(st) = self.masters.remove(name) else { return Err("ERR No such master with that name".into()) };
        let mut out = Vec::new();
        event(&mut out, "-monitor", st.describe());
        self.persist(&mut out);
        Ok(out)
    }

    /// `SENTINEL RESET`: forget replicas, monitors and failover state of the
    /// master (it rediscovers them); the epoch and votes are kept.
    pub fn reset_master(&mut self, name: &str, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(st) = self.masters.get_mut(name) {
            let mut fresh = Master::new(st.config.clone(), now);
            fresh.master.addr = st.master.addr.clone();
            fresh.config_epoch = st.config_epoch;
            fresh.leader = st.leader.take();
            fresh.leader_epoch = st.leader_epoch;
            *st = fresh;
            event(&mut out, "+reset-master", st.describe());
            self.persist(&mut out);
        }
        out
    }

    /// `SENTINEL SET` and the like: change options (already validated).
    pub fn set_config(&mut self, config: MasterConfig) -> Result<Vec<Action>, String> {
        check_config(&config)?;
        let Some(st) = self.masters.get_mut(&config.name) else {
            return Err("ERR No such master with that name".into());
        };
        st.config = MasterConfig { addr: st.master.addr.clone(), ..config };
        let mut out = Vec::new();
        self.persist(&mut out);
        Ok(out)
    }

    /// `SENTINEL FAILOVER`: fail over now, without agreement (as Sentinel:
    /// the operator asked), in a new epoch of our own.
    pub fn force_failover(&mut self, name: &str, now: u64) -> Result<Vec<Action>, String> {
        let Some(st) = self.masters.get(name) else { return Err("ERR No such master with that name".into()) };
        if st.in_failover() {
            return Err("INPROG Failover already in progress".into());
        }
        if choose_replica(st, now).is_none() {
            return Err("NOGOODSLAVE No suitable replica to promote".into());
        }
        let mut out = Vec::new();
        self.start_election(name, now, true, &mut out);
        out.extend(self.tick(now));
        Ok(out)
    }

    pub fn step(&mut self, ev: Event, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Probe { addr, ok, at } => {
                for st in self.masters.values_mut() {
                    if let Some(i) = st.instance_mut(&addr) {
                        if ok {
                            i.last_ok = i.last_ok.max(at);
                            i.failing_since = None;
                        } else if i.failing_since.is_none() {
                            i.failing_since = Some(at);
                        }
                    }
                }
                out.extend(self.tick(now));
            }
            Event::Info { addr, info } => {
                let mut learnt = false;
                let names: Vec<String> = self.masters.keys().cloned().collect();
                for name in names {
                    learnt |= self.on_info(&name, &addr, &info, now, &mut out);
                }
                if learnt {
                    self.persist(&mut out);
                }
                out.extend(self.tick(now));
            }
            Event::Hello(h) => self.on_hello(h, now, &mut out),
            Event::VoteRequest { token, master, epoch, run_id } => {
                self.on_vote_request(token, master, epoch, run_id, now, &mut out)
            }
            Event::VoteReply { peer, master_name, down, leader, leader_epoch } => {
                if let Some(st) = self.masters.get_mut(&master_name) {
                    if let Some(p) = st.peers.get_mut(&peer) {
                        p.says_down = down;
                        p.reply_at = Some(now);
                        if leader.is_some() && leader_epoch >= p.leader_epoch {
                            p.leader = leader;
                            p.leader_epoch = leader_epoch;
                        }
                    }
                }
                out.extend(self.tick(now));
            }
            Event::ReplicaOfFailed { addr } => {
                // Resent on the next tick after RESEND_MS; nothing else changes.
                for st in self.masters.values_mut() {
                    if let Some(i) = st.instance_mut(&addr) {
                        i.failing_since.get_or_insert(now);
                    }
                }
            }
        }
        out
    }

    /// An INFO report about `addr`, seen from master `name`; true when a
    /// new replica was learnt (to persist).
    fn on_info(&mut self, name: &str, addr: &Addr, info: &InfoReport, now: u64, out: &mut Vec<Action>) -> bool {
        let Some(st) = self.masters.get_mut(name) else { return false };
        if st.master.addr != *addr && !st.replicas.contains_key(addr) {
            return false;
        }
        // Replicas are learnt from any server of the group that lists them
        // (a replica of a replica too: a failover re-points it).
        let mut learnt = false;
        for r in &info.replicas {
            if *r != st.master.addr && !st.replicas.contains_key(r) {
                st.replicas.insert(r.clone(), Instance::new(r.clone(), now));
                let d = st.describe_replica(r);
                event(out, "+slave", d);
                learnt = true;
            }
        }
        if st.master.addr == *addr {
            st.master.info = Some(info.clone());
            st.master.info_at = now;
            st.master.wrong_since = if info.is_master { None } else { st.master.wrong_since.or(Some(now)) };
            return learnt;
        }
        let Some(r) = st.replicas.get_mut(addr) else { return false };
        r.info = Some(info.clone());
        r.info_at = now;
        let right = !info.is_master && info.master.as_ref() == Some(&st.master.addr);
        r.wrong_since = if right { None } else { r.wrong_since.or(Some(now)) };
        if right {
            r.reconf_sent = None;
        }
        // Our promotion took effect: switch the configuration.
        if let Some(Stage::Promoting { epoch, chosen, .. }) = &st.failover {
            if chosen == addr && info.is_master {
                let (epoch, chosen) = (*epoch, chosen.clone());
                self.switch_master(name, chosen, epoch, true, now, out);
            }
        }
        learnt
    }

    /// Make `new` the master of `name` under `config_epoch`: the old master
    /// becomes a replica to re-point when it returns.
    fn switch_master(&mut self, name: &str, new: Addr, config_epoch: u64, ours: bool, now: u64, out: &mut Vec<Action>) {
        let Some(st) = self.masters.get_mut(name) else { return };
        let old = st.master.addr.clone();
        if ours {
            event(out, "+failover-end", st.describe());
        }
        event(out, "+switch-master", format!("{} {} {} {} {}", name, old.host, old.port, new.host, new.port));
        let mut fresh = st.replicas.remove(&new).unwrap_or_else(|| Instance::new(new.clone(), now));
        fresh.wrong_since = None;
        fresh.reconf_sent = None;
        let mut old_inst = std::mem::replace(&mut st.master, fresh);
        if old != new {
            old_inst.wrong_since = Some(now);
            old_inst.reconf_sent = None;
            old_inst.sdown_since = None;
            st.replicas.insert(old.clone(), old_inst);
        }
        for r in st.replicas.values_mut() {
            r.wrong_since.get_or_insert(now);
            r.reconf_sent = None;
        }
        st.config_epoch = config_epoch;
        st.failover = None;
        st.odown_since = None;
        st.made_config = ours;
        st.next_attempt_at = now + st.config.failover_timeout_ms;
        self.persist(out);
        out.push(Action::Hello { master_name: name.to_string() });
    }

    fn on_hello(&mut self, h: Hello, now: u64, out: &mut Vec<Action>) {
        if h.run_id == self.my_id {
            return;
        }
        let mut changed = false;
        if h.current_epoch > self.current_epoch {
            self.current_epoch = h.current_epoch;
            event(out, "+new-epoch", self.current_epoch.to_string());
            changed = true;
        }
        let Some(st) = self.masters.get_mut(&h.master_name) else {
            if changed {
                self.persist(out);
            }
            return;
        };
        // A monitor that restarted under a new address replaces its entry;
        // another run id at the same address replaces the old one.
        let stale: Vec<String> =
            st.peers.iter().filter(|(id, p)| p.addr == h.addr && **id != h.run_id).map(|(id, _)| id.clone()).collect();
        for id in stale {
            st.peers.remove(&id);
            changed = true;
        }
        match st.peers.get_mut(&h.run_id) {
            Some(p) => {
                if p.addr != h.addr {
                    p.addr = h.addr.clone();
                    changed = true;
                }
                p.last_hello = now;
                p.current_epoch = h.current_epoch;
            }
            None => {
                let mut p = Peer::new(h.addr.clone(), now);
                p.current_epoch = h.current_epoch;
                st.peers.insert(h.run_id.clone(), p);
                let d = format!("sentinel {} {} {} @ {}", h.run_id, h.addr.host, h.addr.port, st.tail());
                event(out, "+sentinel", d);
                changed = true;
            }
        }
        let newer = h.config_epoch > st.config_epoch;
        if newer && h.master != st.master.addr {
            let name = h.master_name.clone();
            event(
                out,
                "+config-update-from",
                format!("sentinel {} {} {} @ {}", h.run_id, h.addr.host, h.addr.port, st.tail()),
            );
            self.switch_master(&name, h.master, h.config_epoch, false, now, out);
            return;
        }
        if newer {
            st.config_epoch = h.config_epoch;
            changed = true;
        }
        if changed {
            self.persist(out);
        }
    }

    fn on_vote_request(&mut self, token: u64, addr: Addr, epoch: u64, run_id: String, now: u64, out: &mut Vec<Action>) {
        let Some(name) = self.masters.iter().find(|(_, m)| m.master.addr == addr).map(|(n, _)| n.clone()) else {
            out.push(Action::ReplyVote { token, down: false, leader: None, leader_epoch: 0 });
            return;
        };
        let mut changed = false;
        if run_id != "*" && epoch <= MAX_EPOCH {
            if epoch > self.current_epoch {
                self.current_epoch = epoch;
                event(out, "+new-epoch", epoch.to_string());
                changed = true;
            }
            let jitter = self.rng.below(ELECTION_DESYNC_MS);
            let me = self.my_id.clone();
            let st = self.masters.get_mut(&name).expect("found above");
            if st.leader_epoch < epoch && self.current_epoch <= epoch {
                st.leader = Some(run_id.clone());
                st.leader_epoch = epoch;
                changed = true;
                event(out, "+vote-for-leader", format!("{run_id} {epoch}"));
                if run_id != me {
                    // Let the candidate we voted for finish before we compete.
                    st.next_attempt_at = st.next_attempt_at.max(now + st.config.failover_timeout_ms + jitter);
                }
            }
        }
        if changed {
            self.persist(out);
        }
        let st = &self.masters[&name];
        out.push(Action::ReplyVote {
            token,
            down: st.master.sdown_since.is_some(),
            leader: st.leader.clone(),
            leader_epoch: st.leader_epoch,
        });
    }

    /// Begin an election in a new epoch; votes for ourselves and persists
    /// that before anyone is asked.
    fn start_election(&mut self, name: &str, now: u64, forced: bool, out: &mut Vec<Action>) {
        self.current_epoch += 1;
        let epoch = self.current_epoch;
        let me = self.my_id.clone();
        let Some(st) = self.masters.get_mut(name) else { return };
        st.leader = Some(me);
        st.leader_epoch = epoch;
        st.failover = Some(Stage::Election { epoch, started: now, forced });
        for p in st.peers.values_mut() {
            p.reply_at = None;
        }
        let d = st.describe();
        event(out, "+new-epoch", epoch.to_string());
        event(out, "+try-failover", d);
        self.persist(out);
        // Ask for votes now (after the Persist of our own), not at the next
        // ask period: up to 100 ms later, other monitors reaching ODOWN
        // meanwhile started elections of their own and split the vote.
        let Some(st) = self.masters.get_mut(name) else { return };
        st.last_ask = now;
        st.ask_peers(name, epoch, Some(&self.my_id), out);
    }

    fn abort(&mut self, name: &str, why: &str, now: u64, out: &mut Vec<Action>) {
        let max = self.masters.get(name).map(|m| m.config.failover_timeout_ms).unwrap_or(1000);
        self.abort_retry(name, why, max, now, out)
    }

    /// Abandon the failover; the next attempt comes after a random part of
    /// `retry_max` (plus the desync).
    fn abort_retry(&mut self, name: &str, why: &str, retry_max: u64, now: u64, out: &mut Vec<Action>) {
        let retry = self.rng.below(retry_max);
        if let Some(st) = self.masters.get_mut(name) {
            st.failover = None;
            st.next_attempt_at = now + ELECTION_DESYNC_MS + retry;
            event(out, why, st.describe());
        }
    }

    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let names: Vec<String> = self.masters.keys().cloned().collect();
        for name in names {
            self.tick_master(&name, now, &mut out);
        }
        out
    }

    fn tick_master(&mut self, name: &str, now: u64, out: &mut Vec<Action>) {
        let my_epoch = self.current_epoch;
        let my_id = self.my_id.clone();
        let Some(st) = self.masters.get_mut(name) else { return };
        let down_after = st.config.down_after_ms;

        // Subjective down, for the master and each replica.
        let tail = st.tail();
        let master_desc = st.describe();
        let mut sdown_events = Vec::new();
        for (is_master, i) in
            std::iter::once((true, &mut st.master)).chain(st.replicas.values_mut().map(|r| (false, r)))
        {
            // A master that keeps saying it is a replica is as good as down
            // (as Sentinel): a failover then names a master again.
            let demoted =
                is_master && i.wrong_since.is_some_and(|w| now.saturating_sub(w) >= down_after + 2 * PROBE_PERIOD_MS);
            let down = i.failing_since.is_some_and(|f| now.saturating_sub(f) >= down_after)
                || now.saturating_sub(i.last_ok) >= down_after + PROBE_PERIOD_MS
                || demoted;
            let desc = if is_master {
                master_desc.clone()
            } else {
                format!("slave {} {} {} @ {tail}", i.addr, i.addr.host, i.addr.port)
            };
            match (down, i.sdown_since) {
                (true, None) => {
                    i.sdown_since = Some(now);
                    sdown_events.push(("+sdown", desc));
                }
                (false, Some(_)) => {
                    i.sdown_since = None;
                    sdown_events.push(("-sdown", desc));
                }
                _ => {}
            }
        }
        for (c, d) in sdown_events {
            event(out, c, d);
        }

        // Ask the peers while the master looks down: their opinion, and
        // their vote when we are a candidate.
        let candidate = match st.failover {
            Some(Stage::Election { epoch, .. }) => Some(epoch),
            _ => None,
        };
        if (st.master.sdown_since.is_some() || candidate.is_some()) && now >= st.last_ask + ASK_PERIOD_MS {
            st.last_ask = now;
            st.ask_peers(name, candidate.unwrap_or(my_epoch), candidate.map(|_| my_id.as_str()), out);
        }

        // Objective down.
        let agree = 1 + st
            .peers
            .values()
            .filter(|p| p.says_down && p.reply_at.is_some_and(|t| now.saturating_sub(t) <= ASK_VALIDITY_MS))
            .count();
        let odown = st.master.sdown_since.is_some() && agree >= st.config.quorum as usize;
        match (odown, st.odown_since) {
            (true, None) => {
                st.odown_since = Some(now);
                // Monitors that see ODOWN together would each start an
                // election in the same epoch and split the vote: each waits
                // a random moment first, and the first to ask wins the others'
                // votes (which hold them back in turn).
                st.next_attempt_at = st.next_attempt_at.max(now + self.rng.below(ELECTION_DESYNC_MS));
                let d = format!("{} #quorum {}/{}", st.describe(), agree, st.config.quorum);
                event(out, "+odown", d);
            }
            (false, Some(_)) => {
                st.odown_since = None;
                let d = st.describe();
                event(out, "-odown", d);
            }
            _ => {}
        }

        match st.failover.clone() {
            None if odown && now >= st.next_attempt_at => self.start_election(name, now, false, out),
            None => self.reconfigure(name, now, out),
            Some(Stage::Election { epoch, started, forced, .. }) => {
                let votes = 1 + st
                    .peers
                    .values()
                    .filter(|p| p.reply_at.is_some() && p.leader.as_deref() == Some(&my_id) && p.leader_epoch == epoch)
                    .count();
                // Votes already given to others in this epoch: when too few
                // monitors are left to win, the vote was split; retry soon
                // (a randomised short delay, as raft's election timeout)
                // rather than waiting out the election.
                let against = st
                    .peers
                    .values()
                    .filter(|p| p.reply_at.is_some() && p.leader_epoch >= epoch && p.leader.as_deref() != Some(&my_id))
                    .count();
                let lost = st.voters() - against < st.votes_needed();
                let timeout = st.config.failover_timeout_ms.min(ELECTION_TIMEOUT_MS);
                if forced || (votes >= st.votes_needed() && self.current_epoch == epoch) {
                    event(out, "+elected-leader", st.describe());
                    event(out, "+failover-state-select-slave", st.describe());
                    match choose_replica(st, now) {
                        Some(chosen) => {
                            let d = st.describe_replica(&chosen);
                            event(out, "+selected-slave", d.clone());
                            event(out, "+failover-state-send-slaveof-noone", d);
                            st.failover =
                                Some(Stage::Promoting { epoch, chosen: chosen.clone(), since: now, sent: now });
                            out.push(Action::ReplicaOf { addr: chosen, target: None, epoch });
                        }
                        None => self.abort(name, "-failover-abort-no-good-slave", now, out),
                    }
                } else if lost {
                    self.abort_retry(name, "-failover-abort-not-elected", 2 * ELECTION_DESYNC_MS, now, out);
                } else if now.saturating_sub(started) >= timeout || self.current_epoch != epoch {
                    // Timed out, or a later epoch began elsewhere: this one cannot win.
                    self.abort(name, "-failover-abort-not-elected", now, out);
                }
            }
            Some(Stage::Promoting { epoch, chosen, since, sent }) => {
                if now.saturating_sub(since) >= st.config.failover_timeout_ms {
                    self.abort(name, "-failover-abort-slave-timeout", now, out);
                } else if now.saturating_sub(sent) >= RESEND_MS {
                    st.failover = Some(Stage::Promoting { epoch, chosen: chosen.clone(), since, sent: now });
                    out.push(Action::ReplicaOf { addr: chosen, target: None, epoch });
                }
            }
        }
    }

    /// Re-point servers that report a master other than ours: replicas left
    /// behind by a failover, and the old master when it returns. Only while
    /// our master is up and says it is a master; others wait `ROLE_GRACE_MS`
    /// in case our configuration is the stale one.
    fn reconfigure(&mut self, name: &str, now: u64, out: &mut Vec<Action>) {
        let Some(st) = self.masters.get_mut(name) else { return };
        let master_sane = st.master.sdown_since.is_none()
            && st.master.info.as_ref().is_some_and(|i| i.is_master)
            && now.saturating_sub(st.master.info_at) <= INFO_VALIDITY_MS;
        if !master_sane {
            return;
        }
        let grace = if st.made_config { 0 } else { ROLE_GRACE_MS };
        let target = st.master.addr.clone();
        let epoch = st.config_epoch;
        let tail = st.tail();
        for r in st.replicas.values_mut() {
            let Some(since) = r.wrong_since else { continue };
            if r.sdown_since.is_some() || r.info.is_none() || now.saturating_sub(since) < grace {
                continue;
            }
            if r.reconf_sent.is_some_and(|t| now.saturating_sub(t) < RESEND_MS) {
                continue;
            }
            r.reconf_sent = Some(now);
            let was_master = r.info.as_ref().is_some_and(|i| i.is_master);
            let what = if was_master { "+convert-to-slave" } else { "+slave-reconf-sent" };
            event(out, what, format!("slave {} {} {} @ {tail}", r.addr, r.addr.host, r.addr.port));
            out.push(Action::ReplicaOf { addr: r.addr.clone(), target: Some(target.clone()), epoch });
        }
    }
}

impl Peer {
    fn new(addr: Addr, now: u64) -> Peer {
        Peer {
            addr,
            last_hello: now,
            current_epoch: 0,
            says_down: false,
            reply_at: None,
            leader: None,
            leader_epoch: 0,
        }
    }
}

pub fn check_config(c: &MasterConfig) -> Result<(), String> {
    if c.quorum == 0 {
        return Err("ERR Quorum must be 1 or greater.".into());
    }
    if c.down_after_ms == 0 || c.failover_timeout_ms == 0 {
        return Err("ERR down-after-milliseconds and failover-timeout must be positive".into());
    }
    if c.name.is_empty() || c.name.contains([',', ' ', '\r', '\n']) {
        return Err("ERR invalid master name".into());
    }
    Ok(())
}

/// The replica to promote: reachable, with recent INFO, its link to the
/// master not down for long (Sentinel's rule: down no longer than the master
/// has been down plus ten times `down-after`), priority not 0; then the
/// lowest priority, the highest offset, the smallest run id. A replica that
/// already says it is a master (promoted by a leader that died before it
/// could tell anyone) may be chosen: `REPLICAOF NO ONE` is idempotent.
pub fn choose_replica(st: &Master, now: u64) -> Option<Addr> {
    let master_down_for = st.master.sdown_since.map(|s| now.saturating_sub(s)).unwrap_or(0);
    let max_link_down = master_down_for + 10 * st.config.down_after_ms;
    st.replicas
        .values()
        .filter_map(|r| {
            let info = r.info.as_ref()?;
            let fit = r.sdown_since.is_none()
                && now.saturating_sub(r.info_at) <= INFO_VALIDITY_MS
                && info.priority != 0
                && (info.link_up || info.link_down_ms <= max_link_down);
            fit.then_some((info.priority, std::cmp::Reverse(info.offset), info.run_id.clone(), r.addr.clone()))
        })
        .min()
        .map(|(_, _, _, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(quorum: u32) -> MasterConfig {
        MasterConfig {
            name: "m".into(),
            addr: Addr::new("10.0.0.1", 6379),
            quorum,
            down_after_ms: 1000,
            failover_timeout_ms: 5000,
            parallel_syncs: 1,
            auth_pass: String::new(),
            auth_user: String::new(),
        }
    }

    fn replica_info(run_id: &str, priority: u32, offset: u64) -> InfoReport {
        InfoReport {
            run_id: run_id.into(),
            is_master: false,
            master: Some(Addr::new("10.0.0.1", 6379)),
            link_up: true,
            link_down_ms: 0,
            priority,
            offset,
            replicas: vec![],
        }
    }

    #[test]
    fn hello_round_trips_and_refuses_garbage() {
        let h = Hello {
            addr: Addr::new("127.0.0.2", 26379),
            run_id: "abc".into(),
            current_epoch: 7,
            master_name: "mymaster".into(),
            master: Addr::new("127.0.0.3", 6379),
            config_epoch: 5,
        };
        assert_eq!(Hello::decode(&h.encode()), Some(h));
        for bad in [
            "",
            "a,b",
            "1,2,3,4,5,6,7",
            "h,99999,id,1,m,h,1,1",
            "h,1,id,x,m,h,1,1",
            "h,1,id,9223372036854775807,m,h,1,1",
        ] {
            assert_eq!(Hello::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn replica_choice_follows_priority_offset_run_id() {
        let mut m = Monitor::new("me".into(), Addr::new("x", 1), 1);
        m.add_master(cfg(1), 0).unwrap();
        let st = m.masters.get_mut("m").unwrap();
        let mut add = |port: u16, info: InfoReport| {
            let a = Addr::new("10.0.0.2", port);
            let mut i = Instance::new(a.clone(), 0);
            i.info = Some(info);
            st.replicas.insert(a, i);
        };
        add(1, replica_info("b", 100, 10));
        add(2, replica_info("a", 100, 10));
        add(3, replica_info("c", 100, 11));
        add(4, replica_info("d", 0, 99));
        add(5, replica_info("e", 50, 1));
        assert_eq!(choose_replica(st, 0).map(|a| a.port), Some(5));
        st.replicas.remove(&Addr::new("10.0.0.2", 5));
        assert_eq!(choose_replica(st, 0).map(|a| a.port), Some(3));
        st.replicas.remove(&Addr::new("10.0.0.2", 3));
        assert_eq!(choose_replica(st, 0).map(|a| a.port), Some(2), "equal offsets: smallest run id");
        // Stale INFO and a long-down link make a replica unfit.
        st.replicas.get_mut(&Addr::new("10.0.0.2", 2)).unwrap().info_at = 0;
        assert_eq!(choose_replica(st, INFO_VALIDITY_MS + 1), None);
    }

    #[test]
    fn a_candidate_persists_its_own_vote_then_asks_for_votes_in_the_same_step() {
        let mut m = Monitor::new("me".into(), Addr::new("x", 1), 1);
        m.add_master(cfg(1), 0).unwrap();
        let master = Addr::new("10.0.0.1", 6379);
        m.step(Event::Probe { addr: master.clone(), ok: true, at: 0 }, 0);
        let peer = Hello {
            addr: Addr::new("10.0.0.9", 26379),
            run_id: "peer".into(),
            current_epoch: 0,
            master_name: "m".into(),
            master: master.clone(),
            config_epoch: 0,
        };
        m.step(Event::Hello(peer), 0);
        // No reply from the master after 0: SDOWN, ODOWN (quorum 1), then an
        // election within the desync.
        for now in (20..3000).step_by(20) {
            let out = m.tick(now);
            let Some(start) =
                out.iter().position(|a| matches!(a, Action::Event { channel, .. } if channel == "+try-failover"))
            else {
                continue;
            };
            let persist = out.iter().position(|a| matches!(a, Action::Persist(p) if p.current_epoch == 1));
            let ask = out.iter().position(|a| {
                matches!(a, Action::AskPeer { peer_id, epoch: 1, run_id: Some(r), .. } if peer_id == "peer" && r == "me")
            });
            assert!(start < persist.unwrap_or(0) && persist < ask, "{out:?}");
            return;
        }
        panic!("no election started");
    }

    #[test]
    fn a_vote_is_persisted_before_it_is_given_and_given_once_per_epoch() {
        let mut m = Monitor::new("me".into(), Addr::new("x", 1), 1);
        m.add_master(cfg(2), 0).unwrap();
        let ask = |run_id: &str, epoch| Event::VoteRequest {
            token: 1,
            master: Addr::new("10.0.0.1", 6379),
            epoch,
            run_id: run_id.into(),
        };
        let out = m.step(ask("a", 3), 10);
        let persist = out.iter().position(|a| matches!(a, Action::Persist(p) if p.current_epoch == 3));
        let reply = out
            .iter()
            .position(|a| matches!(a, Action::ReplyVote { leader: Some(l), leader_epoch: 3, .. } if l == "a"));
        assert!(persist.is_some() && reply.is_some() && persist < reply, "{out:?}");
        // b asks in the same epoch: the vote stays a's, nothing to persist.
        let out = m.step(ask("b", 3), 11);
        assert!(!out.iter().any(|a| matches!(a, Action::Persist(_))));
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::ReplyVote { leader: Some(l), leader_epoch: 3, .. } if l == "a")));
        // An old epoch changes nothing either.
        let out = m.step(ask("b", 2), 12);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::ReplyVote { leader: Some(l), leader_epoch: 3, .. } if l == "a")));
        // After a restart from the persisted state the vote is still a's.
        let mut r = Monitor::restore(&m.snapshot(), Addr::new("x", 1), 2, 100);
        let out = r.step(ask("b", 3), 101);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::ReplyVote { leader: Some(l), leader_epoch: 3, .. } if l == "a")));
        // A forged epoch past MAX_EPOCH is not taken.
        let out = r.step(ask("z", u64::MAX), 102);
        assert_eq!(r.current_epoch, 3);
        assert!(out.iter().any(|a| matches!(a, Action::ReplyVote { leader_epoch: 3, .. })));
    }
}

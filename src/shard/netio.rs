//! A client's NETWORK_IO command (MIGRATE): the core does no blocking
//! I/O. The handler's first run leaves its network step
//! (`Keyspace::io_job`); the client is parked (`Wait::Io`, as WAIT parks
//! it) while a helper thread performs the step; the outcome comes back as
//! `Msg::IoDone` and the command runs a second time with it to finish
//! (deleting what the target took, answering). The shards serve their
//! other clients meanwhile.
//!
//! Keys on the client's own shard: both runs are ordinary local runs.
//! Keys on another shard or on several: each run is a cross-shard
//! transaction (`shard::txn`) that locks the keys' shards only while it
//! serialises them or deletes them, never across the network step.

use super::core::{Conn, Shard, Wait};
use super::{ConnRef, Msg};
use crate::cmd::admission::Road;
use crate::cmd::migrate::{Job, Result2};
use crate::cmd::{Args, CommandDef, OwnedArgs};

/// What the second run needs, carried by the message (the client may be
/// gone by then: what the target took is deleted all the same).
pub struct IoCall {
    pub to: ConnRef,
    pub args: OwnedArgs,
    pub db: usize,
    pub resp3: bool,
    pub job: Job,
    pub outcome: Option<Result2>,
    /// The keys' shards when they are not (only) the client's: the second
    /// run is a transaction over them.
    pub cross: Option<Vec<usize>>,
}

impl IoCall {
    pub fn new(to: ConnRef, args: OwnedArgs, (db, resp3): (usize, bool), job: Job, cross: Option<Vec<usize>>) -> Self {
        IoCall { to, args, db, resp3, job, outcome: None, cross }
    }
}

impl Shard {
    /// Run `def` for `conn` on this shard's keys; if its handler left a
    /// network step, park the client and start the step.
    pub fn run_offloaded(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        self.ks.offload_io = true;
        self.exec_local(conn, id, def, args, Road::Client);
        self.ks.offload_io = false;
        let Some(job) = self.ks.io_job.take() else { return };
        let cmd = OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>());
        let call = IoCall::new(conn.conn_ref(self.id), cmd, (conn.db, conn.resp3), job, None);
        self.spawn_io(conn, call);
    }

    /// A cross-shard MIGRATE's first run ended (its transaction unlocked):
    /// park its client `r`, still waiting for transaction `txid`, and
    /// start the network step.
    pub fn start_io(&mut self, r: ConnRef, txid: u64, call: IoCall) {
        let Some(slot) = self.conns.get_mut(r.idx as usize) else { return };
        let Some(mut conn) = slot.take() else { return };
        if conn.gen == r.gen && matches!(conn.wait, Wait::Txn(id) if id == txid) {
            conn.wait = Wait::None;
            self.spawn_io(&mut conn, call);
            if !matches!(conn.wait, Wait::Io) {
                // It could not start: the client has its error.
                self.mark_dirty(r.idx);
                self.runnable.push_back(r.idx);
            }
        }
        if let Some(slot) = self.conns.get_mut(r.idx as usize) {
            *slot = Some(conn);
        }
    }

    /// Park `conn` while a helper thread performs `call`'s network step.
    fn spawn_io(&mut self, conn: &mut Conn, call: IoCall) {
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new().name("shardis-migrate".into()).spawn(move || {
            let mut call = call;
            call.outcome = Some(crate::cmd::migrate::exchange(&call.job));
            let to = call.to.shard;
            if shared.post_external(to, Msg::IoDone(Box::new(call))) {
                let mut bells = vec![false; shared.nshards];
                bells[to] = true;
                crate::net::ring_doorbells_now(&shared, &bells);
            }
        });
        match spawned {
            Ok(_) => conn.wait = Wait::Io,
            Err(e) => {
                crate::protocol::reply::Reply::new(&mut conn.out, conn.resp3)
                    .error(&format!("ERR cannot start the network step: {e}"));
            }
        }
    }

    /// The network step ended: run the command again with its outcome,
    /// answer the client (if it is still there) and let it go on.
    pub fn on_io_done(&mut self, mut call: IoCall) {
        let Some(outcome) = call.outcome.take() else { return };
        let args = call.args.args();
        let Some(row) = crate::cmd::find(&args) else { return };
        let r = call.to;
        let mut conn = self.conns.get_mut(r.idx as usize).and_then(|slot| slot.take());
        let waiting = conn.as_ref().is_some_and(|c| c.gen == r.gen && matches!(c.wait, Wait::Io));
        if let Some(shards) = call.cross.take() {
            match conn.as_mut() {
                Some(c) if waiting => {
                    c.wait = Wait::None;
                    let cmd = OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>());
                    self.start_io_finish(c, cmd, shards, (call.job, outcome));
                }
                // The client left: delete what the target took anyway.
                _ => self.delete_taken(&call, &outcome),
            }
            if let (Some(c), Some(slot)) = (conn, self.conns.get_mut(r.idx as usize)) {
                *slot = Some(c);
            }
            return;
        }
        let mut scratch = Vec::new();
        let out = match conn.as_mut() {
            Some(c) if waiting => &mut c.out,
            _ => &mut scratch,
        };
        self.ks.io_done = Some((call.job, outcome));
        self.call(out, (call.resp3, call.db), row, &args, Road::Admitted);
        self.ks.io_done = None;
        if let Some(mut c) = conn {
            if waiting {
                c.wait = Wait::None;
            }
            if let Some(slot) = self.conns.get_mut(r.idx as usize) {
                *slot = Some(c);
            }
            if waiting {
                self.mark_dirty(r.idx);
                self.runnable.push_back(r.idx);
            }
        }
    }

    /// A cross-shard MIGRATE whose client left during the network step:
    /// each owner deletes the keys the target took, as a DEL of its own
    /// (its reply goes nowhere).
    fn delete_taken(&mut self, call: &IoCall, outcome: &Result2) {
        let mut by_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.shared.nshards];
        for k in crate::cmd::migrate::taken_keys(&call.job, outcome) {
            let s = self.shared.slots.shard_of(&k);
            by_shard[s].push(k);
        }
        for (s, keys) in by_shard.into_iter().enumerate().filter(|(_, k)| !k.is_empty()) {
            let mut del: Vec<&[u8]> = vec![b"DEL"];
            del.extend(keys.iter().map(|k| k.as_slice()));
            let cmds = crate::protocol::client::encode_command(&del);
            let msg = Msg::Batch { from: call.to, db: call.db as u8, resp3: call.resp3, no_touch: false, cmds };
            self.send(s, msg);
        }
    }
}

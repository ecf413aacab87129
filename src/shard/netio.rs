//! A client's NETWORK_IO command (MIGRATE) on its own shard: the core does
//! no blocking I/O, so the handler's first run leaves its network step
//! (`Keyspace::io_job`); the client is parked (`Wait::Io`, as WAIT parks
//! it) while a helper thread performs the step; the outcome comes back as
//! `Msg::IoDone` and the command runs a second time with it to finish
//! (deleting what the target took, answering). The shard serves its other
//! clients meanwhile.

use super::core::{Conn, Shard, Wait};
use super::{ConnRef, Msg};
use crate::cmd::admission::Road;
use crate::cmd::migrate::{Job, Result2};
use crate::cmd::{Args, CommandDef, OwnedArgs};

/// What the second run needs, carried by the message (the client may be
/// gone by then: what the target took is deleted all the same).
pub struct IoCall {
    pub to: ConnRef,
    pub id: usize,
    pub args: OwnedArgs,
    pub db: usize,
    pub resp3: bool,
    pub job: Job,
    pub outcome: Option<Result2>,
}

impl Shard {
    /// Run `def` for `conn`; if its handler left a network step, park the
    /// client and start the step on a helper thread.
    pub fn run_offloaded(&mut self, conn: &mut Conn, id: usize, def: &CommandDef, args: &Args) {
        self.ks.offload_io = true;
        self.exec_local(conn, id, def, args, Road::Client);
        self.ks.offload_io = false;
        let Some(job) = self.ks.io_job.take() else { return };
        let call = IoCall {
            to: conn.conn_ref(self.id),
            id,
            args: OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>()),
            db: conn.db,
            resp3: conn.resp3,
            job,
            outcome: None,
        };
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
        let def = crate::cmd::table::by_id(call.id);
        let args = call.args.args();
        let r = call.to;
        let mut conn = self.conns.get_mut(r.idx as usize).and_then(|slot| slot.take());
        let waiting = conn.as_ref().is_some_and(|c| c.gen == r.gen && matches!(c.wait, Wait::Io));
        let mut scratch = Vec::new();
        let out = match conn.as_mut() {
            Some(c) if waiting => &mut c.out,
            _ => &mut scratch,
        };
        self.ks.io_done = Some((call.job, outcome));
        self.call(out, (call.resp3, call.db), (call.id, def), &args, Road::Admitted);
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
}

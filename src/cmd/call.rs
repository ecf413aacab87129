//! `call`: the one way a command runs, whatever road brought it (Redis's
//! `call()` after `processCommand()` is the model).
//!
//! A local request, a batch forwarded or squashed from another shard, the
//! commands of a cross-shard transaction on its temporary keyspace, a
//! routed MULTI, a blocked client being served, AOF replay and DUMP
//! payload replay all come here: the road's admission gates
//! (`admission`), then the handler (which captures its effects for the
//! AOF), then the observer's bookkeeping (command stats, latency, slowlog).
//! Lookup, arity, authentication and the ACL check (`shard::acl`)
//! happened where the request was read, once per request, before it was
//! queued, routed or forwarded; the caller passes the row it looked up.
//!
//! What runs a command decides what observes it: a shard counts stats and
//! keeps a slowlog; replay observes nothing (`()`).

use super::admission::{self, Conditions, Refusal, Road};
use super::{exec, Args, CommandDef, Ctx};

/// Bookkeeping around a call. Every method has a do-nothing default.
pub trait Observer {
    /// The clock at the start of a call (ticks; 0 when not timing).
    fn start(&mut self) -> u64 {
        0
    }
    /// Command `id` was refused by a gate: it did not run.
    fn refused(&mut self, _id: usize) {}
    /// Command `id` ran from `t0` (as `start` said); `failed`: it replied
    /// with an error.
    fn finished(&mut self, _id: usize, _t0: u64, _failed: bool, _args: &Args) {}
}

/// Observes nothing: replay and tests.
impl Observer for () {}

/// Run command `id` (row `def`) with `args` on `ctx`, arriving by `road`.
/// A refusal is replied (Redis's text) and returned.
pub fn call(
    ctx: &mut Ctx,
    road: Road,
    cond: &mut impl Conditions,
    obs: &mut impl Observer,
    (id, def): (usize, &CommandDef),
    args: &Args,
) -> Result<(), Refusal> {
    if let Err(refusal) = admission::check(road, def.flags, cond, ctx.ks) {
        ctx.error(&refusal.message());
        obs.refused(id);
        return Err(refusal);
    }
    let t0 = obs.start();
    let before = ctx.out.out.len();
    let notify = ctx.ks.notify.on();
    if notify {
        ctx.ks.notify.begin();
    }
    exec(def, ctx, args);
    if notify {
        // The row's event for the keys it changed (`keyspace::notify`).
        ctx.ks.notify.end(def.event);
    }
    let failed = ctx.out.out.get(before) == Some(&b'-');
    obs.finished(id, t0, failed, args);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::admission::Local;
    use crate::cmd::{lookup, OwnedArgs, Rng};
    use crate::keyspace::evict::{MemLimit, Policy};
    use crate::keyspace::Keyspace;
    use crate::protocol::reply::Reply;

    #[derive(Default)]
    struct Counts {
        refused: Vec<usize>,
        ran: Vec<(usize, bool)>,
    }

    impl Observer for Counts {
        fn refused(&mut self, id: usize) {
            self.refused.push(id);
        }
        fn finished(&mut self, id: usize, _t0: u64, failed: bool, _args: &Args) {
            self.ran.push((id, failed));
        }
    }

    fn run(ks: &mut Keyspace, road: Road, obs: &mut Counts, parts: &[&str]) -> (String, Result<(), Refusal>) {
        let owned = OwnedArgs::from_slices(parts);
        let args = owned.args();
        let row = lookup(args.get(0)).expect("known command");
        let mut out = Vec::new();
        let mut rng = Rng::new(1);
        let mut cond = Local { now: 1, aof_error: Some("EIO"), read_only: false };
        let mut ctx = Ctx::new(ks, 0, 1_000, Reply::new(&mut out, false), &mut rng);
        let r = call(&mut ctx, road, &mut cond, obs, row, &args);
        (String::from_utf8_lossy(&out).into_owned(), r)
    }

    #[test]
    fn gates_then_handler_then_observer() {
        let mut ks = Keyspace::new();
        let mut obs = Counts::default();
        // The conditions say the AOF fails: a client's write is refused,
        // a read runs, and an admitted write (replay) runs.
        let (out, r) = run(&mut ks, Road::Client, &mut obs, &["SET", "k", "v"]);
        assert_eq!(out, "-MISCONF Errors writing to the AOF file: EIO\r\n");
        assert!(r.is_err());
        let (out, _) = run(&mut ks, Road::Client, &mut obs, &["GET", "k"]);
        assert_eq!(out, "$-1\r\n");
        let (out, r) = run(&mut ks, Road::Admitted, &mut obs, &["SET", "k", "v"]);
        assert_eq!((out.as_str(), r), ("+OK\r\n", Ok(())));
        let (out, _) = run(&mut ks, Road::Admitted, &mut obs, &["INCR", "k"]);
        assert!(out.starts_with("-ERR"));
        let id = |n: &str| lookup(n.as_bytes()).expect("known").0;
        assert_eq!(obs.refused, vec![id("set")]);
        assert_eq!(obs.ran, vec![(id("get"), false), (id("set"), false), (id("incr"), true)]);
    }

    #[test]
    fn out_of_memory_evicts_or_refuses() {
        let mut ks = Keyspace::new();
        for i in 0..10 {
            ks.set(0, format!("k{i}").as_bytes(), crate::keyspace::Value::from_bytes(b"v"), 0);
        }
        ks.set_mem_limit(MemLimit { maxmemory: 1, policy: Policy::NoEviction, samples: 5, ..Default::default() });
        let owned = OwnedArgs::from_slices(&["SET", "new", "v"]);
        let args = owned.args();
        let row = lookup(args.get(0)).expect("set");
        let (mut out, mut rng) = (Vec::new(), Rng::new(1));
        let mut cond = Local { now: 1, aof_error: None, read_only: false };
        let mut ctx = Ctx::new(&mut ks, 0, 1, Reply::new(&mut out, false), &mut rng);
        assert_eq!(call(&mut ctx, Road::Client, &mut cond, &mut (), row, &args), Err(Refusal::Oom));
        assert_eq!(String::from_utf8_lossy(&out), "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    }
}

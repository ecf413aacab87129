//! Admission gates: the checks a command passes before it may run, and the
//! one table of which checks apply on which road.
//!
//! Redis checks a command once, in `processCommand`, in a fixed order; in
//! shardis a command can reach its keyspace by several roads (a local
//! request, a request forwarded or squashed to its keys' shard, a MULTI
//! queue, EXEC, a cross-shard transaction, a routed MULTI, a blocked client
//! being served, AOF or DUMP-payload replay). Every road asks `check` with
//! its `Road`, so a gate cannot be present on one road and missing on
//! another. Gates are listed in Redis's order; LOADING, client pause and
//! MOVED will join `Road::gates` here.
//!
//! A transaction (EXEC, a multi-key command whose keys span shards, a
//! routed MULTI) is checked once as a whole, with the union of its
//! commands' flags and the conditions of every participant, as Redis
//! checks EXEC with the flags of what it queued. Commands inside an
//! admitted transaction run unchecked, as inside Redis's EXEC.

use super::flags::{Flags, DENYOOM, MAY_REPLICATE, WRITE};
use crate::keyspace::Keyspace;

/// How a command reached the point where it would run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Road {
    /// A client's request run at its keys' shard: locally, forwarded in a
    /// batch, squashed from a pipeline, or the first try of a blocking
    /// command.
    Client,
    /// A request being queued inside MULTI: any command is refused while
    /// memory is full (the queue itself grows), writes while the AOF fails.
    Queue,
    /// A transaction checked as a whole before it runs: EXEC, a
    /// cross-shard command, a routed MULTI.
    Transaction,
    /// A command a script runs (`redis.call`): Redis's rules for scripts
    /// (a read-only script may not write; MISCONF and OOM refuse only
    /// until the script's first write, since it cannot stop half way).
    Script,
    /// Already admitted or never refused: commands inside an admitted
    /// transaction, a blocked client being served, AOF replay, DUMP
    /// payload replay.
    Admitted,
    /// A replica applying its master's stream: the master admitted these
    /// writes, so a replica that is full, failing to log, or read-only
    /// still applies them (Redis's master client is never refused).
    Replica,
}

/// One check, in Redis's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Over maxmemory after eviction: refuse commands that may grow memory.
    DenyOom,
    /// Over maxmemory after eviction: refuse any command (MULTI queueing).
    AnyOom,
    /// The AOF cannot be written: refuse writes (Redis's MISCONF).
    Misconf,
    /// A master with fewer good replicas than `min-replicas-to-write`:
    /// refuse writes (Redis's NOREPLICAS).
    NoReplicas,
    /// A read-only script (EVAL_RO): refuse writes and commands that may
    /// replicate.
    ScriptReadOnly,
    /// A read-only replica: refuse writes (Redis's READONLY).
    ReadOnly,
}

impl Road {
    /// The gates this road applies, in order. The one table.
    pub const fn gates(self) -> &'static [Gate] {
        match self {
            Road::Client | Road::Transaction => &[Gate::DenyOom, Gate::Misconf, Gate::NoReplicas, Gate::ReadOnly],
            Road::Queue => &[Gate::AnyOom, Gate::Misconf, Gate::NoReplicas, Gate::ReadOnly],
            Road::Script => &[Gate::ScriptReadOnly, Gate::ReadOnly, Gate::Misconf, Gate::NoReplicas, Gate::DenyOom],
            Road::Admitted | Road::Replica => &[],
        }
    }
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Oom,
    /// The AOF's last write error.
    Misconf(String),
    /// A write from a read-only script.
    ScriptWrite,
    NoReplicas,
    ReadOnly,
}

impl Refusal {
    /// The error reply, as Redis words it.
    pub fn message(&self) -> String {
        match self {
            Refusal::Oom => super::err::OOM.to_string(),
            Refusal::Misconf(e) => format!("MISCONF Errors writing to the AOF file: {}", e),
            Refusal::ScriptWrite => "ERR Write commands are not allowed from read-only scripts.".to_string(),
            Refusal::NoReplicas => "NOREPLICAS Not enough good replicas to write.".to_string(),
            Refusal::ReadOnly => super::err::READONLY_REPLICA.to_string(),
        }
    }

    /// EXEC refused as a whole (Redis's execCommandAbort).
    pub fn exec_abort_message(&self) -> String {
        format!("EXECABORT Transaction discarded because of: {}", self.message())
    }
}

/// What the gates ask of the place the command would run, `ks` being the
/// keyspace it would run on.
pub trait Conditions {
    /// Over maxmemory even after evicting what the policy allows. Asked
    /// only when a gate needs it (eviction has a cost and logs DELs).
    fn out_of_memory(&mut self, ks: &mut Keyspace) -> bool;
    /// The AOF's last write error, if writes currently fail.
    fn aof_error(&self) -> Option<&str>;
    /// A read-only script is running (only asked on `Road::Script`).
    fn script_read_only(&self) -> bool {
        false
    }
    /// This server is a replica that takes no writes from clients.
    fn read_only(&self) -> bool {
        false
    }
    /// This master has fewer good replicas than `min-replicas-to-write`
    /// (process-wide, kept by the replication threads).
    fn no_replicas(&self) -> bool {
        crate::repl::master::writes_refused()
    }
}

/// Run `road`'s gates for a command (or transaction) with `flags` that
/// would run on `ks`.
pub fn check(road: Road, flags: Flags, cond: &mut impl Conditions, ks: &mut Keyspace) -> Result<(), Refusal> {
    for gate in road.gates() {
        match gate {
            Gate::DenyOom if flags & DENYOOM != 0 && cond.out_of_memory(ks) => return Err(Refusal::Oom),
            Gate::AnyOom if cond.out_of_memory(ks) => return Err(Refusal::Oom),
            Gate::ScriptReadOnly if flags & (WRITE | MAY_REPLICATE) != 0 && cond.script_read_only() => {
                return Err(Refusal::ScriptWrite)
            }
            Gate::Misconf if flags & WRITE != 0 => {
                if let Some(e) = cond.aof_error() {
                    return Err(Refusal::Misconf(e.to_string()));
                }
            }
            Gate::NoReplicas if flags & WRITE != 0 && cond.no_replicas() => return Err(Refusal::NoReplicas),
            Gate::ReadOnly if flags & WRITE != 0 && cond.read_only() => return Err(Refusal::ReadOnly),
            _ => {}
        }
    }
    Ok(())
}

/// One shard's own conditions: its keyspace (evicting when over the limit)
/// and its AOF writer's state.
pub struct Local<'a> {
    pub now: i64,
    pub aof_error: Option<&'a str>,
    /// A replica with replica-read-only on.
    pub read_only: bool,
}

impl Conditions for Local<'_> {
    fn out_of_memory(&mut self, ks: &mut Keyspace) -> bool {
        ks.over_limit() && !ks.free_memory(self.now)
    }

    fn aof_error(&self) -> Option<&str> {
        self.aof_error
    }

    fn read_only(&self) -> bool {
        self.read_only
    }
}

/// For roads that check nothing (`Road::Admitted`): never asked.
pub struct Unchecked;

impl Conditions for Unchecked {
    fn out_of_memory(&mut self, _: &mut Keyspace) -> bool {
        false
    }

    fn aof_error(&self) -> Option<&str> {
        None
    }
}

/// The conditions of a transaction's participants, gathered as its lock
/// message travels them: out of memory on any, the first AOF error seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub oom: bool,
    pub aof_error: Option<String>,
    pub read_only: bool,
    pub no_replicas: bool,
}

impl Report {
    /// Add one participant's conditions (its keyspace `ks`), asking only
    /// what a transaction with `flags` needs (a read-only one evicts
    /// nothing).
    pub fn add(&mut self, flags: Flags, cond: &mut impl Conditions, ks: &mut Keyspace) {
        if flags & DENYOOM != 0 && !self.oom {
            self.oom = cond.out_of_memory(ks);
        }
        if flags & WRITE != 0 && self.aof_error.is_none() {
            self.aof_error = cond.aof_error().map(str::to_string);
        }
        if flags & WRITE != 0 {
            self.read_only |= cond.read_only();
            self.no_replicas |= cond.no_replicas();
        }
    }
}

impl Conditions for Report {
    fn out_of_memory(&mut self, _: &mut Keyspace) -> bool {
        self.oom
    }

    fn aof_error(&self) -> Option<&str> {
        self.aof_error.as_deref()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn no_replicas(&self) -> bool {
        self.no_replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::flags::{FAST, READONLY};

    /// Conditions with counters, to see which were asked.
    #[derive(Default)]
    struct Fake {
        oom: bool,
        err: Option<String>,
        oom_asked: u32,
        ro: bool,
    }

    impl Conditions for Fake {
        fn out_of_memory(&mut self, _: &mut Keyspace) -> bool {
            self.oom_asked += 1;
            self.oom
        }
        fn aof_error(&self) -> Option<&str> {
            self.err.as_deref()
        }
        fn read_only(&self) -> bool {
            self.ro
        }
    }

    const ROADS: [Road; 6] =
        [Road::Client, Road::Queue, Road::Transaction, Road::Script, Road::Admitted, Road::Replica];

    #[test]
    fn healthy_shard_admits_everything_everywhere() {
        for road in ROADS {
            for flags in [WRITE | DENYOOM, WRITE, READONLY | FAST, 0] {
                assert_eq!(
                    check(road, flags, &mut Fake::default(), &mut Keyspace::new()),
                    Ok(()),
                    "{road:?} {flags:#x}"
                );
            }
        }
    }

    #[test]
    fn oom_refuses_denyoom_commands_except_when_admitted() {
        for road in ROADS {
            let mut f = Fake { oom: true, ..Fake::default() };
            let r = check(road, WRITE | DENYOOM, &mut f, &mut Keyspace::new());
            let want = if matches!(road, Road::Admitted | Road::Replica) { Ok(()) } else { Err(Refusal::Oom) };
            assert_eq!(r, want, "{road:?}");
        }
        // A write that frees memory (DEL) and a read run; memory is not
        // even asked about on those roads.
        for road in [Road::Client, Road::Transaction] {
            let mut f = Fake { oom: true, ..Fake::default() };
            assert_eq!(check(road, WRITE, &mut f, &mut Keyspace::new()), Ok(()));
            assert_eq!(check(road, READONLY, &mut f, &mut Keyspace::new()), Ok(()));
            assert_eq!(f.oom_asked, 0);
        }
        // Queueing refuses even a read while out of memory.
        let mut f = Fake { oom: true, ..Fake::default() };
        assert_eq!(check(Road::Queue, READONLY, &mut f, &mut Keyspace::new()), Err(Refusal::Oom));
    }

    #[test]
    fn misconf_refuses_writes_only() {
        for road in [Road::Client, Road::Queue, Road::Transaction] {
            let mut f = Fake { err: Some("No space left on device".into()), ..Fake::default() };
            let r = check(road, WRITE, &mut f, &mut Keyspace::new());
            assert_eq!(r, Err(Refusal::Misconf("No space left on device".into())), "{road:?}");
            assert_eq!(check(road, READONLY | FAST, &mut f, &mut Keyspace::new()), Ok(()), "{road:?}");
        }
        let mut f = Fake { err: Some("EIO".into()), ..Fake::default() };
        assert_eq!(check(Road::Admitted, WRITE, &mut f, &mut Keyspace::new()), Ok(()));
    }

    #[test]
    fn oom_comes_before_misconf_as_in_redis() {
        let mut f = Fake { oom: true, err: Some("EIO".into()), ..Fake::default() };
        assert_eq!(check(Road::Client, WRITE | DENYOOM, &mut f, &mut Keyspace::new()), Err(Refusal::Oom));
        assert_eq!(check(Road::Client, WRITE, &mut f, &mut Keyspace::new()), Err(Refusal::Misconf("EIO".into())));
    }

    #[test]
    fn report_gathers_every_participant() {
        let mut r = Report::default();
        r.add(WRITE | DENYOOM, &mut Fake::default(), &mut Keyspace::new());
        let mut full = Fake { oom: true, ..Fake::default() };
        r.add(WRITE | DENYOOM, &mut full, &mut Keyspace::new());
        r.add(WRITE | DENYOOM, &mut Fake { err: Some("EIO".into()), ..Fake::default() }, &mut Keyspace::new());
        assert_eq!(r, Report { oom: true, aof_error: Some("EIO".into()), read_only: false, no_replicas: false });
        assert_eq!(check(Road::Transaction, WRITE | DENYOOM, &mut r, &mut Keyspace::new()), Err(Refusal::Oom));
        // A read-only transaction asks nothing (no eviction on its behalf).
        let mut r = Report::default();
        let mut full = Fake { oom: true, err: Some("EIO".into()), ..Fake::default() };
        r.add(READONLY, &mut full, &mut Keyspace::new());
        assert_eq!(full.oom_asked, 0);
        assert_eq!(r, Report::default());
    }

    /// Conditions of a running script.
    struct ScriptFake {
        read_only: bool,
        oom: bool,
        err: Option<String>,
    }

    impl Conditions for ScriptFake {
        fn out_of_memory(&mut self, _: &mut Keyspace) -> bool {
            self.oom
        }
        fn aof_error(&self) -> Option<&str> {
            self.err.as_deref()
        }
        fn script_read_only(&self) -> bool {
            self.read_only
        }
    }

    #[test]
    fn scripts_follow_redis_rules() {
        let ks = &mut Keyspace::new();
        // A read-only script: writes and may-replicate commands refused
        // first, before anything else is asked.
        let mut f = ScriptFake { read_only: true, oom: true, err: Some("EIO".into()) };
        assert_eq!(check(Road::Script, WRITE | DENYOOM, &mut f, ks), Err(Refusal::ScriptWrite));
        assert_eq!(check(Road::Script, READONLY | MAY_REPLICATE, &mut f, ks), Err(Refusal::ScriptWrite));
        assert_eq!(check(Road::Script, READONLY, &mut f, ks), Ok(()));
        // A writing script: MISCONF, then OOM for denyoom commands.
        let mut f = ScriptFake { read_only: false, oom: true, err: Some("EIO".into()) };
        assert_eq!(check(Road::Script, WRITE, &mut f, ks), Err(Refusal::Misconf("EIO".into())));
        f.err = None;
        assert_eq!(check(Road::Script, WRITE | DENYOOM, &mut f, ks), Err(Refusal::Oom));
        assert_eq!(check(Road::Script, WRITE, &mut f, ks), Ok(()));
        assert_eq!(Refusal::ScriptWrite.message(), "ERR Write commands are not allowed from read-only scripts.");
    }

    #[test]
    fn a_read_only_replica_refuses_client_writes_but_applies_its_stream() {
        for road in [Road::Client, Road::Queue, Road::Transaction] {
            let mut f = Fake { ro: true, ..Fake::default() };
            assert_eq!(check(road, WRITE | DENYOOM, &mut f, &mut Keyspace::new()), Err(Refusal::ReadOnly), "{road:?}");
            assert_eq!(check(road, READONLY | FAST, &mut f, &mut Keyspace::new()), Ok(()), "{road:?}");
        }
        // Full and failing to log too: the replication road still applies.
        let mut f = Fake { ro: true, oom: true, err: Some("EIO".into()), ..Fake::default() };
        assert_eq!(check(Road::Replica, WRITE | DENYOOM, &mut f, &mut Keyspace::new()), Ok(()));
        assert_eq!(f.oom_asked, 0);
        // Redis's order: MISCONF before READONLY.
        assert!(matches!(check(Road::Client, WRITE, &mut f, &mut Keyspace::new()), Err(Refusal::Misconf(_))));
        // A transaction learns it from a participant.
        let mut r = Report::default();
        r.add(WRITE, &mut Fake { ro: true, ..Fake::default() }, &mut Keyspace::new());
        assert_eq!(check(Road::Transaction, WRITE, &mut r, &mut Keyspace::new()), Err(Refusal::ReadOnly));
        assert_eq!(Refusal::ReadOnly.message(), "READONLY You can't write against a read only replica.");
    }

    #[test]
    fn messages_are_redis_texts() {
        assert_eq!(Refusal::Oom.message(), "OOM command not allowed when used memory > 'maxmemory'.");
        assert_eq!(
            Refusal::Misconf("Input/output error (os error 5)".into()).exec_abort_message(),
            "EXECABORT Transaction discarded because of: MISCONF Errors writing to the AOF file: Input/output error (os error 5)"
        );
    }
}

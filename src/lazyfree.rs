//! Lazy freeing: big values (and whole databases) dropped on a helper
//! thread instead of the shard's loop, for UNLINK, FLUSHALL/FLUSHDB ASYNC
//! and the `lazyfree-lazy-*` options (DESIGN.md allows helper threads for
//! background work). One thread for the server, started on first use;
//! INFO's `lazyfree_pending_objects` and `lazyfreed_objects` count what
//! it holds and what it freed, as Redis's do.

use crate::keyspace::{Dict, EntryBox, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

/// Values costing more than this many allocations to free go to the
/// thread (Redis's LAZYFREE_THRESHOLD); smaller ones are freed at once.
pub const THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static QUEUE: OnceLock<Mutex<Option<Sender<Job>>>> = OnceLock::new();

enum Job {
    Entry(EntryBox),
    Value(Value),
    Dict(Dict, u64),
    Entries(Vec<EntryBox>),
}

// SAFETY: a job owns what it carries outright: the entry or dict left the
// keyspace (nothing else points into it: `Keyspace::remove`/`flush_db`
// drop the measured pointers first), so the thread is its only user and
// merely drops it.
unsafe impl Send for Job {}

/// Objects handed to the thread and not freed yet.
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Objects the thread freed since start.
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// Roughly how many allocations freeing `v` takes (Redis's free effort):
/// 1 for strings and packed encodings, elements or nodes otherwise.
pub fn effort(v: &Value) -> usize {
    match v {
        Value::List(l) if v.encoding() == "quicklist" => l.nodes().count(),
        Value::Set(s) if v.encoding() == "hashtable" => s.len(),
        Value::Hash(h) if v.encoding() == "hashtable" => h.len(),
        Value::ZSet(z) if v.encoding() == "skiplist" => z.len(),
        Value::Stream(s) => s.len() / 100 + 1,
        _ => 1,
    }
}

fn send(job: Job, n: u64) -> Result<(), Job> {
    let q = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            for job in rx {
                let n = match job {
                    Job::Entry(e) => {
                        drop(e);
                        1
                    }
                    Job::Value(v) => {
                        drop(v);
                        1
                    }
                    Job::Dict(d, n) => {
                        drop(d);
                        n
                    }
                    Job::Entries(v) => {
                        let n = v.len() as u64;
                        drop(v);
                        n
                    }
                };
                PENDING.fetch_sub(n, Ordering::Relaxed);
                FREED.fetch_add(n, Ordering::Relaxed);
            }
        });
        match spawned {
            Ok(_) => Mutex::new(Some(tx)),
            Err(e) => {
                crate::log(&format!("lazyfree: no helper thread ({e}); values are freed in place"));
                Mutex::new(None)
            }
        }
    });
    let tx = match q.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let Some(tx) = tx else { return Err(job) };
    PENDING.fetch_add(n, Ordering::Relaxed);
    tx.send(job).map_err(|e| {
        PENDING.fetch_sub(n, Ordering::Relaxed);
        e.0
    })
}

/// Free a removed entry: on the thread if it is big, here otherwise.
pub fn release(e: EntryBox) {
    if effort(&e.value) > THRESHOLD {
        let _ = send(Job::Entry(e), 1);
    }
}

/// Free a value that was replaced: on the thread if it is big.
pub fn release_value(v: Value) {
    if effort(&v) > THRESHOLD {
        let _ = send(Job::Value(v), 1);
    }
}

/// Free removed entries on the thread, whatever their size (a replica's
/// full resync dropping its old keys: `replica-lazy-flush`).
pub fn release_entries(v: Vec<EntryBox>) {
    let n = v.len() as u64;
    if n > 0 {
        let _ = send(Job::Entries(v), n);
    }
}

/// Free a whole database's dict of `n` keys on the thread.
pub fn release_dict(d: Dict, n: usize) {
    if n > 0 {
        let _ = send(Job::Dict(d, n as u64), n as u64);
    }
}

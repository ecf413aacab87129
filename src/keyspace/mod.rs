//! The per-shard keyspace: 16 databases of keys with lazy and active expiry,
//! and the WATCH bookkeeping that write commands touch. Pure data, no I/O:
//! live traffic, cross-shard transactions (on a temporary keyspace holding
//! only the keys involved) and tests all drive it through the same calls.
//! Commands find a key's value by its type with `get_typed::<T>()`,
//! `get_typed_mut`, `get_str` and `modify_typed` (create if missing, delete
//! if left empty): a key of another type is `Err(WrongType)`, whose text is
//! Redis's WRONGTYPE reply.

pub mod dict;
pub mod effects;
mod entry;
pub mod evict;
pub mod hash;
pub mod limits;
pub mod list;
pub mod notify;
pub mod set;
pub mod stream;
pub mod stream_node;
pub mod value;
pub mod zset;
mod zset_tree;

pub use dict::{Dict, Entry, EntryBox};
pub use effects::Effects;
pub use value::{Typed, Value, WrongType};

use std::collections::HashMap;

pub const NUM_DBS: usize = 16;

/// Where big values are freed on the lazyfree thread (`crate::lazyfree`)
/// rather than in place, per Redis's `lazyfree-lazy-*` options.
#[derive(Debug, Default, Clone, Copy)]
pub struct LazyFree {
    pub eviction: bool,
    pub expire: bool,
    /// Values replaced as a side effect (SET over a value).
    pub server_del: bool,
    /// DEL as UNLINK.
    pub user_del: bool,
    /// FLUSHALL/FLUSHDB without ASYNC|SYNC as ASYNC.
    pub user_flush: bool,
    /// A replica's full resync drops its old keys on the thread
    /// (`replica-lazy-flush`).
    pub replica_flush: bool,
}

#[derive(Default)]
pub struct Db {
    pub dict: Dict,
    /// Keys with an expiry (INFO keyspace `expires=`).
    pub volatile: usize,
    /// Bucket cursor of the active expiry walk.
    expire_cursor: usize,
    /// Keys per hash slot, when tracked (`Keyspace::track_slots`): what
    /// CLUSTER COUNTKEYSINSLOT answers and slot migration walks. Off by
    /// default, since it costs a CRC16 of every key added or removed.
    slot_keys: Option<Box<[u32]>>,
}

impl Db {
    #[inline]
    fn count_slot(&mut self, key: &[u8], add: bool) {
        if let Some(counts) = &mut self.slot_keys {
            let c = &mut counts[crate::util::key_slot(key) as usize];
            *c = if add { *c + 1 } else { c.saturating_sub(1) };
        }
    }

    /// Keys in hash slot `slot` (None when slots are not tracked).
    pub fn keys_in_slot(&self, slot: u16) -> Option<u32> {
        self.slot_keys.as_ref().map(|c| c[(slot & (crate::util::SLOTS - 1)) as usize])
    }
}

/// Identifies a watching client anywhere in the server: (shard, client id).
pub type WatcherId = u64;

pub struct Keyspace {
    pub dbs: Vec<Db>,
    /// A replica's keyspace: keys past their expiry are hidden, never
    /// deleted here (the master's DELs delete them), so nothing this
    /// server logs on its own can fork its copy from the master's.
    pub no_expire: bool,
    /// CLIENT PAUSE: expired keys are hidden, not deleted, and nothing is
    /// evicted until it ends.
    pub expire_paused: bool,
    /// The running command is a CLIENT NO-TOUCH client's: lookups leave
    /// the keys' access clocks as they were (TOUCH excepted).
    pub no_touch: bool,
    /// Replica: per master shard, the (replid, lsn) applied here
    /// (`REPLPOS` in the AOF; see `repl::replica`).
    pub repl_pos: std::collections::BTreeMap<u16, (Box<str>, u64)>,
    /// FUNCTION libraries: every shard holds them all (see
    /// `script::functions`); logged and written into base images.
    pub functions: crate::script::functions::Libs,
    /// (db, key) -> clients watching it; empty unless WATCH is in use, so
    /// touching a key costs one `is_empty` check otherwise.
    watched: HashMap<(u8, Box<[u8]>), Vec<WatcherId>>,
    /// Watchers whose keys were modified since they started watching.
    dirty_watchers: std::collections::HashSet<WatcherId>,
    /// Count of key modifications (Redis's `dirty`, for INFO/LASTSAVE).
    pub dirty: u64,
    pub expired_keys: u64,
    /// When set, every touched (db, key) is recorded: a cross-shard
    /// transaction runs on a temporary keyspace and ships back what changed.
    pub track_touched: Option<Vec<(u8, Box<[u8]>)>>,
    /// A transaction's temporary keyspace: the (db, key)s pulled into it,
    /// the only keys a script running on it may touch.
    pub pulled: Option<std::collections::HashSet<(u8, Vec<u8>)>>,
    /// Keys a command on such a keyspace needed and were not pulled (SORT's
    /// pattern keys): the transaction runs again with them.
    pub missing: Vec<(u8, Vec<u8>)>,
    /// Set by the shard around a client's NETWORK_IO command that may
    /// wait parked: its handler leaves the network step in `io_job`; the
    /// step's outcome comes back in `io_done` for the second run.
    pub offload_io: bool,
    pub io_job: Option<crate::cmd::migrate::Job>,
    pub io_done: Option<(crate::cmd::migrate::Job, crate::cmd::migrate::Result2)>,
    /// Set while a read-only command runs: lookups count as hits/misses.
    pub count_lookups: bool,
    pub hits: u64,
    pub misses: u64,
    /// The log of what changed, for the AOF (disabled unless it is on).
    pub effects: Effects,
    /// Keyspace notifications gathered for publishing (off by default).
    pub notify: notify::Notify,
    /// Estimated bytes of all keys and values (`evict::entry_mem` summed),
    /// kept current by every insert, replace and removal and, for values
    /// changed in place, by `begin_command`/`end_command`.
    pub used: usize,
    /// Highest `used` seen (INFO used_memory_peak).
    pub used_peak: usize,
    pub evicted_keys: u64,
    /// The `lazyfree-lazy-*` options this keyspace follows.
    pub lazy: LazyFree,
    /// The longest eviction cycle (ms) since the shard last took it for
    /// its latency monitor.
    pub evict_cycle_ms: Option<u64>,
    /// This shard's share of maxmemory and its policy.
    limit: evict::MemLimit,
    pool: evict::Pool,
    evict_rand: u64,
    /// Next database the random policies take a key from.
    evict_next_db: usize,
    /// State of the coin LFU increments flip.
    lfu_rand: u64,
    /// Entries (addresses, only compared) the running command already
    /// counted as used, or created: a command uses a key once however
    /// often it looks it up, as Redis's single lookup per key does.
    /// Kept only between `begin_command` and `end_command`.
    used_now: Vec<usize>,
    in_command: bool,
    /// Time of the running command: the access clock of keys it creates.
    clock_ms: i64,
    /// While a write command runs: entries it looked up, with their size
    /// then, so growth in place is counted when it ends.
    measuring: bool,
    measured: Measured,
    /// Set by a blocking command that found nothing to serve; with the
    /// command to retry instead of the original, if it must differ (XREAD
    /// pins `$` to the ids it meant when it blocked).
    pub would_block: bool,
    pub block_rewrite: Option<Vec<Vec<u8>>>,
    /// Keys some client is blocked on (any db); touching one queues it in
    /// `ready_keys` so the shard retries its waiters.
    pub blocking_keys: std::collections::HashSet<Box<[u8]>>,
    pub ready_keys: Vec<(u8, Box<[u8]>)>,
    /// A rewrite's snapshot of this keyspace in progress: every change
    /// to a key tells it first (`before_write`).
    pub snap: Option<Box<crate::persist::snapshot::Snapshot>>,
}

/// Entries the running write command looked up, with their size then.
/// Raw pointers into this keyspace's own dicts, held only from
/// `begin_command` to `end_command` on the shard's thread.
#[derive(Default)]
struct Measured(Vec<(*const Entry, usize)>);

// SAFETY: the list is empty whenever a keyspace changes threads (it is
// filled and drained within one command), and its pointers only ever
// point into the keyspace that owns it.
unsafe impl Send for Measured {}

impl std::ops::Deref for Measured {
    type Target = Vec<(*const Entry, usize)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Measured {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Keyspace {
    pub fn new() -> Self {
        Keyspace {
            dbs: (0..NUM_DBS).map(|_| Db::default()).collect(),
            no_expire: false,
            expire_paused: false,
            no_touch: false,
            repl_pos: Default::default(),
            functions: Default::default(),
            watched: HashMap::new(),
            dirty_watchers: Default::default(),
            dirty: 0,
            expired_keys: 0,
            track_touched: None,
            pulled: None,
            missing: Vec::new(),
            offload_io: false,
            io_job: None,
            io_done: None,
            count_lookups: false,
            hits: 0,
            misses: 0,
            effects: Effects::default(),
            notify: notify::Notify::default(),
            used: 0,
            used_peak: 0,
            evicted_keys: 0,
            lazy: LazyFree::default(),
            evict_cycle_ms: None,
            limit: evict::MemLimit::default(),
            pool: evict::Pool::default(),
            evict_rand: 0x9e37_79b9_7f4a_7c15,
            evict_next_db: 0,
            lfu_rand: 0x2545_f491_4f6c_dd1d,
            used_now: Vec::new(),
            in_command: false,
            clock_ms: 0,
            measuring: false,
            measured: Measured::default(),
            would_block: false,
            block_rewrite: None,
            blocking_keys: Default::default(),
            ready_keys: Vec::new(),
            snap: None,
        }
    }

    /// `key` in `db` is about to change (or go): a running snapshot
    /// writes its value as of the snapshot's start first.
    #[inline]
    fn before_write(&mut self, db: usize, key: &[u8]) {
        if let Some(s) = self.snap.as_deref_mut() {
            s.before_write(&self.dbs[db].dict, db, key);
        }
    }

    /// A command starts at `now`; `write`: measure the entries it looks
    /// up, since it may change them in place.
    #[inline]
    pub fn begin_command(&mut self, now: i64, write: bool) {
        self.clock_ms = now;
        self.measuring = write;
        self.in_command = true;
    }

    /// The command ended: count what the entries it looked up grew or
    /// shrank by in place.
    #[inline]
    pub fn end_command(&mut self) {
        self.measuring = false;
        self.in_command = false;
        self.used_now.clear();
        if !self.measured.is_empty() {
            let mut used = self.used as isize;
            for (e, before) in self.measured.drain(..) {
                // SAFETY: an entry leaves `measured` when it is removed
                // (`forget_measured`), so every pointer here is live.
                used += evict::entry_mem(unsafe { &*e }) as isize - before as isize;
            }
            self.used = used.max(0) as usize;
        }
        self.used_peak = self.used_peak.max(self.used);
    }

    /// Stop measuring `e` (about to be removed or replaced whole),
    /// counting its change in place so far.
    fn forget_measured(&mut self, e: *const Entry) {
        if let Some(i) = self.measured.iter().rposition(|m| std::ptr::eq(m.0, e)) {
            let (_, before) = self.measured.swap_remove(i);
            // SAFETY: `e` is still allocated: the caller removes it after.
            let now = evict::entry_mem(unsafe { &*e });
            self.used = (self.used as isize + now as isize - before as isize).max(0) as usize;
        }
    }

    /// Count a use of the entry `e`, once per command.
    #[inline]
    fn use_once(&mut self, e: &mut Entry, now: i64) {
        let addr = e as *const Entry as usize;
        if !self.no_touch && !self.used_now.contains(&addr) {
            e.set_clock(evict::touched_clock(&self.limit, e.clock(), now, &mut self.lfu_rand));
            if self.in_command {
                self.used_now.push(addr);
            }
        }
    }

    /// The running command looks its next argument up on its own, as
    /// Redis's MGET/MSET/MSETNX look each key up: a key named twice in
    /// one command is used twice.
    #[inline]
    pub fn next_lookup(&mut self) {
        self.used_now.clear();
    }

    /// The running command uses `key` once more, counted now: Redis's
    /// GETSET and SET ... GET look it up twice (to read, then to
    /// overwrite), each use counted.
    pub fn use_again(&mut self, db: usize, key: &[u8]) {
        let Some(e) = self.dbs[db].dict.get_mut(key).map(|e| e as *mut Entry) else { return };
        let addr = e as usize;
        self.used_now.retain(|&a| a != addr);
        // SAFETY: `e` points into this keyspace's dict, which `use_once`
        // does not touch.
        self.use_once(unsafe { &mut *e }, self.clock_ms);
    }

    /// Update the access clock of an entry just looked up and, in a write
    /// command, remember its size.
    #[inline]
    fn accessed(&mut self, e: *mut Entry, now: i64) {
        // SAFETY: `e` points into this keyspace's dict, which the fields
        // used here do not alias.
        self.use_once(unsafe { &mut *e }, now);
        if self.measuring && !self.measured.iter().any(|m| std::ptr::eq(m.0, e)) {
            let size = evict::entry_mem(unsafe { &*e });
            self.measured.push((e, size));
        }
    }

    /// Look a key up without counting it as a use of the key (OBJECT,
    /// TYPE, TTL, EXISTS: Redis's LOOKUP_NOTOUCH); expired keys are still
    /// deleted and hits/misses still counted.
    pub fn lookup_no_touch(&mut self, db: usize, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup_flags(db, key, now, false)
    }

    /// The access clock of `key` (None if absent): RENAME and MOVE carry it
    /// to the new name, as Redis moves the object itself.
    pub fn clock_of(&self, db: usize, key: &[u8]) -> Option<u32> {
        self.dbs[db].dict.get(key).map(|e| e.clock())
    }

    pub fn set_clock_of(&mut self, db: usize, key: &[u8], clock: u32) {
        if let Some(e) = self.dbs[db].dict.get_mut(key) {
            e.set_clock(clock);
        }
    }

    /// RESTORE's IDLETIME / FREQ: the key's clock as if last used `idle`
    /// seconds ago (LRU policies) or with use counter `freq` (LFU); the
    /// one the policy does not keep is ignored, as in Redis.
    pub fn restore_clock(&mut self, db: usize, key: &[u8], idle: Option<i64>, freq: Option<u8>) {
        let (policy, now) = (self.limit.policy, self.clock_ms);
        let clock = match (policy.is_lfu(), idle, freq) {
            (true, _, Some(f)) => evict::lfu_pack(now, f),
            (false, Some(idle), _) => evict::lru_clock(now.saturating_sub(idle.saturating_mul(1000)).max(0)),
            _ => return,
        };
        self.set_clock_of(db, key, clock);
    }

    /// Look a key up for reading or writing; an expired key is deleted first.
    #[inline]
    pub fn lookup(&mut self, db: usize, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup_flags(db, key, now, true)
    }

    #[inline]
    fn lookup_flags(&mut self, db: usize, key: &[u8], now: i64, touch: bool) -> Option<&mut Entry> {
        let found = self.lookup_inner(db, key, now).map(|e| e as *mut Entry);
        if let Some(e) = found {
            if touch {
                self.accessed(e, now);
            }
        }
        if self.count_lookups {
            if found.is_some() {
                self.hits += 1;
            } else {
                self.misses += 1;
                self.notify.emit(notify::KEY_MISS, "keymiss", db, key);
            }
        }
        // SAFETY: the pointer came from a live &mut into this keyspace and
        // nothing has touched the dict since.
        found.map(|e| unsafe { &mut *e })
    }

    fn lookup_inner(&mut self, db: usize, key: &[u8], now: i64) -> Option<&mut Entry> {
        // What a write command (or work outside commands: transactions,
        // replication) looks up it may change in place.
        if self.snap.is_some() && (self.measuring || !self.in_command) {
            self.before_write(db, key);
        }
        let e: *mut Entry = self.dbs[db].dict.get_mut(key)?;
        // SAFETY: `e` points into this keyspace's dict; either we return it
        // (and touch nothing else) or we stop using it before deleting.
        // One hash walk instead of two on the hottest path.
        let live = unsafe { (*e).expire() == 0 || (*e).expire() > now };
        if live {
            return Some(unsafe { &mut *e });
        }
        if !self.no_expire && !self.expire_paused {
            self.expire_key(db, key);
        }
        None
    }

    /// The collection at `key` as a `T`: Ok(None) if absent (or expired),
    /// Err if the key holds another type. A use of the key, as `lookup`.
    #[inline]
    pub fn get_typed<T: Typed>(&mut self, db: usize, key: &[u8], now: i64) -> Result<Option<&T>, WrongType> {
        match self.lookup(db, key, now) {
            None => Ok(None),
            Some(e) => T::of(&e.value).map(Some).ok_or(WrongType),
        }
    }

    /// `get_typed` for changing the collection in place (the caller
    /// touches the key, or removes it if it left it empty).
    #[inline]
    pub fn get_typed_mut<T: Typed>(&mut self, db: usize, key: &[u8], now: i64) -> Result<Option<&mut T>, WrongType> {
        match self.lookup(db, key, now) {
            None => Ok(None),
            Some(e) => T::of_mut(&mut e.value).map(Some).ok_or(WrongType),
        }
    }

    /// The string at `key` (an integer is formatted into `buf`): Ok(None)
    /// if absent, Err if the key holds another type.
    #[inline]
    pub fn get_str<'a>(
        &'a mut self,
        db: usize,
        key: &[u8],
        now: i64,
        buf: &'a mut [u8; 24],
    ) -> Result<Option<&'a [u8]>, WrongType> {
        match self.lookup(db, key, now) {
            None => Ok(None),
            Some(e) => e.value.str_bytes(buf).map(Some).ok_or(WrongType),
        }
    }

    /// Run `f` on the collection at `key` or, if the key is absent and
    /// `new` is given, on a fresh one from it. `f` returns its result and
    /// whether it changed the collection; a change touches the key, stores
    /// the new collection, or deletes one left empty (Redis keeps no empty
    /// collections). Ok(None): absent and not created.
    pub fn modify_typed<T: Typed, R>(
        &mut self,
        db: usize,
        key: &[u8],
        now: i64,
        new: Option<&dyn Fn() -> T>,
        f: impl FnOnce(&mut T) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        match self.lookup(db, key, now) {
            Some(e) => {
                let c = T::of_mut(&mut e.value).ok_or(WrongType)?;
                let (r, changed) = f(c);
                if changed {
                    if c.leaves_key_empty() {
                        self.remove(db, key);
                    } else {
                        self.touch(db, key);
                    }
                }
                Ok(Some(r))
            }
            None => match new {
                Some(new) => {
                    let mut c = new();
                    let (r, changed) = f(&mut c);
                    if changed && !c.leaves_key_empty() {
                        self.set(db, key, c.into_value(), 0);
                    }
                    Ok(Some(r))
                }
                None => Ok(None),
            },
        }
    }

    /// Read-only presence check that honours expiry without deleting.
    pub fn peek(&self, db: usize, key: &[u8], now: i64) -> Option<&Entry> {
        self.dbs[db].dict.get(key).filter(|e| e.expire() == 0 || e.expire() > now)
    }

    fn expire_key(&mut self, db: usize, key: &[u8]) {
        self.before_write(db, key);
        if let Some(e) = self.dbs[db].dict.remove(key) {
            self.dbs[db].count_slot(key, false);
            if e.expire() != 0 {
                self.dbs[db].volatile -= 1;
            }
            self.account_removed(&e);
            self.expired_keys += 1;
            if self.effects.enabled {
                self.effects.push(db, &[&b"DEL"[..], key]);
            }
            self.touch_quiet(db, key);
            self.notify.emit(notify::EXPIRED, "expired", db, key);
            if self.lazy.expire {
                crate::lazyfree::release(e);
            }
        }
    }

    /// Store a value, replacing any previous one (and its expiry, unless
    /// `expire` says to keep it: pass `KEEP_TTL`).
    pub fn set(&mut self, db: usize, key: &[u8], value: Value, expire: i64) {
        self.before_write(db, key);
        if !self.measured.is_empty() {
            if let Some(e) = self.dbs[db].dict.get(key).map(|e| e as *const Entry) {
                self.forget_measured(e);
            }
        }
        let (policy, now) = (self.limit.policy, self.clock_ms);
        let d = &mut self.dbs[db];
        if let Some(e) = d.dict.get_mut(key) {
            let old = evict::value_mem(&e.value);
            self.used = (self.used + evict::value_mem(&value)).saturating_sub(old);
            let old_value = std::mem::replace(&mut e.value, value);
            if self.lazy.server_del {
                crate::lazyfree::release_value(old_value);
            }
            // A new value is a new object to LRU; LFU keeps the key's
            // frequency, as Redis's overwrite does, and counts the write as
            // a use (Redis looks the key up to replace it).
            if !policy.is_lfu() {
                e.set_clock(evict::new_clock(policy, now));
            } else if self.in_command {
                let addr = &*e as *const Entry as usize;
                let (no_touch, seen) = (self.no_touch, self.used_now.contains(&addr));
                if !no_touch && !seen {
                    e.set_clock(evict::touched_clock(&self.limit, e.clock(), now, &mut self.lfu_rand));
                    self.used_now.push(addr);
                }
            }
            if expire != KEEP_TTL && expire != e.expire() {
                self.store_expire(db, key, expire);
            }
        } else {
            let expire = if expire == KEEP_TTL { 0 } else { expire };
            if expire != 0 {
                d.volatile += 1;
            }
            let e = d.dict.insert_new(key, value, expire);
            e.set_clock(evict::new_clock(policy, now));
            // Created: that is this command's use of it.
            if self.in_command {
                self.used_now.push(e as *const Entry as usize);
            }
            self.used += evict::entry_mem(e);
            d.count_slot(key, true);
            self.notify.emit(notify::NEW, "new", db, key);
        }
        self.touch(db, key);
    }

    /// Set a key's expiry (0 removes it); the key must exist.
    pub fn set_expire(&mut self, db: usize, key: &[u8], expire: i64) {
        self.before_write(db, key);
        if self.store_expire(db, key, expire) {
            self.touch(db, key);
        }
    }

    /// Store `key`'s expiry, keeping the volatile count; false if absent.
    /// Giving an entry its first expiry can move it (`Dict::set_expire`):
    /// the running command's records of it follow.
    fn store_expire(&mut self, db: usize, key: &[u8], expire: i64) -> bool {
        let d = &mut self.dbs[db];
        let Some(e) = d.dict.get(key) else { return false };
        let (old_expire, old_addr, old_size) = (e.expire(), e as *const Entry, e.alloc_size());
        if old_expire != 0 && expire == 0 {
            d.volatile -= 1;
        } else if old_expire == 0 && expire != 0 {
            d.volatile += 1;
        }
        let Some(e) = d.dict.set_expire(key, expire) else { return false };
        let (new_addr, new_size) = (e as *const Entry, e.alloc_size());
        if new_addr != old_addr || new_size != old_size {
            // A measured entry's growth counts when the command ends.
            match self.measured.iter_mut().find(|m| std::ptr::eq(m.0, old_addr)) {
                Some(m) => m.0 = new_addr,
                None => self.used = (self.used + new_size).saturating_sub(old_size),
            }
            for a in self.used_now.iter_mut().filter(|a| **a == old_addr as usize) {
                *a = new_addr as usize;
            }
        }
        true
    }

    /// Delete a key; true if it existed (and was not already expired).
    pub fn delete(&mut self, db: usize, key: &[u8], now: i64) -> bool {
        if self.lookup(db, key, now).is_none() {
            return false;
        }
        self.remove(db, key).is_some()
    }

    /// DEL's delete, or UNLINK's (`lazy`): a big value is freed on the
    /// lazyfree thread.
    pub fn delete_maybe_lazy(&mut self, db: usize, key: &[u8], now: i64, lazy: bool) -> bool {
        if !lazy {
            return self.delete(db, key, now);
        }
        if self.lookup(db, key, now).is_none() {
            return false;
        }
        match self.remove(db, key) {
            Some(e) => {
                crate::lazyfree::release(e);
                true
            }
            None => false,
        }
    }

    /// Remove a key, returning its entry (for RENAME, GETDEL, transfers).
    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<EntryBox> {
        self.before_write(db, key);
        let e = self.dbs[db].dict.remove(key)?;
        self.dbs[db].count_slot(key, false);
        if e.expire() != 0 {
            self.dbs[db].volatile -= 1;
        }
        self.account_removed(&e);
        self.touch_quiet(db, key);
        self.notify.touched(db, key, true);
        Some(e)
    }

    /// `e` left the dict: it no longer counts (as measured, if it was).
    fn account_removed(&mut self, e: &Entry) {
        if !self.measured.is_empty() {
            self.forget_measured(e);
        }
        self.used = self.used.saturating_sub(evict::entry_mem(e));
    }

    /// Record that a key changed: counts toward `dirty` and invalidates
    /// WATCHes on it (Redis's signalModifiedKey).
    #[inline]
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        self.touch_quiet(db, key);
        self.notify.touched(db, key, false);
    }

    /// `touch` without counting as the running command's change for its
    /// keyspace notification (expiry, eviction, removal: they have their own).
    #[inline]
    fn touch_quiet(&mut self, db: usize, key: &[u8]) {
        self.dirty += 1;
        if let Some(t) = &mut self.track_touched {
            t.push((db as u8, key.into()));
        }
        if !self.watched.is_empty() {
            self.touch_watched(db, key);
        }
        self.signal_ready(db, key);
    }

    /// Queue `key` for the clients blocked on it to be retried (Redis's
    /// signalKeyAsReady).
    #[inline]
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if !self.blocking_keys.is_empty() && self.blocking_keys.contains(key) {
            self.ready_keys.push((db as u8, key.into()));
        }
    }

    /// Every key someone is blocked on in `db`: a flush or swap may have
    /// deleted them (a blocked XREADGROUP is then answered with an error).
    fn signal_all_ready(&mut self, db: usize) {
        let keys: Vec<Box<[u8]>> = self.blocking_keys.iter().cloned().collect();
        self.ready_keys.extend(keys.into_iter().map(|k| (db as u8, k)));
    }

    fn touch_watched(&mut self, db: usize, key: &[u8]) {
        // Building the lookup key allocates, but only when WATCH is in use.
        if let Some(ws) = self.watched.get(&(db as u8, key.into())) {
            self.dirty_watchers.extend(ws.iter().copied());
        }
    }

    /// Count keys per hash slot from now on (cluster mode), or stop.
    pub fn track_slots(&mut self, on: bool) {
        for d in &mut self.dbs {
            d.slot_keys = on.then(|| {
                let mut c = vec![0u32; crate::util::SLOTS as usize].into_boxed_slice();
                for e in d.dict.iter() {
                    c[crate::util::key_slot(e.key()) as usize] += 1;
                }
                c
            });
        }
    }

    pub fn flush_db(&mut self, db: usize) -> usize {
        self.flush_db_mode(db, false)
    }

    /// FLUSHDB, freeing the keys on the lazyfree thread if `lazy` (ASYNC).
    pub fn flush_db_mode(&mut self, db: usize, lazy: bool) -> usize {
        // Watchers of keys that existed are invalidated (as Redis 7 does
        // for FLUSHDB/FLUSHALL); a watched key that did not exist is
        // unchanged by a flush.
        let dirty: Vec<WatcherId> = self
            .watched
            .iter()
            .filter(|((d, k), _)| *d as usize == db && self.dbs[db].dict.get(k).is_some())
            .flat_map(|(_, ws)| ws.iter().copied())
            .collect();
        self.dirty_watchers.extend(dirty);
        let n = self.dbs[db].dict.len();
        // Nothing measured may point into the freed entries.
        self.measured.clear();
        let freed: usize = self.dbs[db].dict.iter().map(evict::entry_mem).sum();
        self.used = self.used.saturating_sub(freed);
        if self.total_keys() == n {
            self.used = 0;
        }
        if let Some(snap) = self.snap.as_deref_mut() {
            // A snapshot still walking this table keeps it (and frees it).
            if let Some(d) = snap.detach(db, std::mem::take(&mut self.dbs[db].dict)) {
                crate::lazyfree::release_dict(d, n);
            }
        } else if lazy {
            crate::lazyfree::release_dict(std::mem::take(&mut self.dbs[db].dict), n);
        } else {
            self.dbs[db].dict.clear();
        }
        self.dbs[db].volatile = 0;
        if let Some(c) = &mut self.dbs[db].slot_keys {
            c.fill(0);
        }
        self.dirty += n as u64;
        self.signal_all_ready(db);
        n
    }

    pub fn swap_db(&mut self, a: usize, b: usize) {
        // Swapping a db with itself changes nothing (Redis returns early:
        // WATCHed keys there stay clean).
        if a == b {
            return;
        }
        // A watched key changes if it exists on either side of the swap.
        let exists = |d: &Db, k: &[u8]| d.dict.get(k).is_some();
        let dirty: Vec<WatcherId> = self
            .watched
            .iter()
            .filter(|((d, k), _)| {
                let d = *d as usize;
                (d == a || d == b) && (exists(&self.dbs[a], k) || exists(&self.dbs[b], k))
            })
            .flat_map(|(_, ws)| ws.iter().copied())
            .collect();
        self.dirty_watchers.extend(dirty);
        self.dbs.swap(a, b);
        if let Some(snap) = self.snap.as_deref_mut() {
            snap.swap(a, b);
        }
        self.signal_all_ready(a);
        self.signal_all_ready(b);
    }

    /// Remove the keys of `db` that `owned` picks (a replica applying one
    /// master shard's FLUSHDB, `repl::route`); how many went.
    /// Like FLUSHDB it publishes no keyspace events.
    pub fn flush_db_where(&mut self, db: usize, owned: impl Fn(&[u8]) -> bool) -> usize {
        let keys = self.keys_where(db, &owned);
        let flags = std::mem::take(&mut self.notify.flags);
        let n = keys.iter().filter(|k| self.remove(db, k).is_some()).count();
        self.notify.flags = flags;
        n
    }

    fn keys_where(&self, db: usize, owned: &impl Fn(&[u8]) -> bool) -> Vec<Box<[u8]>> {
        self.dbs[db].dict.iter().filter(|e| owned(e.key())).map(|e| Box::from(e.key())).collect()
    }

    /// Swap the keys `owned` picks between dbs `a` and `b`, leaving the
    /// others where they are (one master shard's SWAPDB on a replica).
    /// Like SWAPDB it publishes no keyspace events.
    pub fn swap_db_where(&mut self, a: usize, b: usize, owned: impl Fn(&[u8]) -> bool) {
        if a == b {
            return;
        }
        let flags = std::mem::take(&mut self.notify.flags);
        let mut take = |db: usize| -> Vec<(Box<[u8]>, EntryBox)> {
            let keys = self.keys_where(db, &owned);
            keys.into_iter().filter_map(|k| self.remove(db, &k).map(|e| (k, e))).collect()
        };
        let (from_a, from_b) = (take(a), take(b));
        for (db, moved) in [(b, from_a), (a, from_b)] {
            for (k, e) in moved {
                let (value, expire) = e.into_parts();
                self.set(db, &k, value, expire);
            }
        }
        self.notify.flags = flags;
    }

    pub fn watch(&mut self, db: usize, key: &[u8], who: WatcherId) {
        let ws = self.watched.entry((db as u8, key.into())).or_default();
        if !ws.contains(&who) {
            ws.push(who);
        }
    }

    /// Drop every watch of `who`; returns whether any of them was touched.
    pub fn unwatch_all(&mut self, who: WatcherId) -> bool {
        self.watched.retain(|_, ws| {
            ws.retain(|w| *w != who);
            !ws.is_empty()
        });
        self.dirty_watchers.remove(&who)
    }

    pub fn watch_dirty(&self, who: WatcherId) -> bool {
        self.dirty_watchers.contains(&who)
    }

    /// One step of active expiry on `db`: walk up to `max_buckets` buckets
    /// from where the last step stopped, deleting expired keys. Returns
    /// (keys checked, keys expired) so the caller can decide to continue.
    pub fn active_expire_step(&mut self, db: usize, now: i64, max_buckets: usize) -> (usize, usize) {
        if self.no_expire || self.expire_paused {
            return (0, 0);
        }
        let mut keys = Vec::new();
        let (mut checked, mut expired) = (0, 0);
        let d = &mut self.dbs[db];
        if d.volatile == 0 || d.dict.buckets() == 0 {
            return (0, 0);
        }
        let nb = d.dict.buckets();
        for _ in 0..max_buckets.min(nb) {
            let idx = d.expire_cursor % nb;
            d.expire_cursor = (idx + 1) % nb;
            d.dict.bucket_keys(idx, &mut keys);
        }
        for (k, exp) in keys {
            checked += 1;
            if exp != 0 && exp <= now {
                self.expire_key(db, &k);
                expired += 1;
            }
        }
        (checked, expired)
    }

    /// Background rehashing for the cron: move buckets of the dicts that
    /// are growing or shrinking, for about `budget` in all, so a rehash
    /// finishes even when its db sees few writes.
    pub fn rehash_step(&mut self, budget: std::time::Duration) {
        let start = std::time::Instant::now();
        for d in self.dbs.iter_mut().filter(|d| d.dict.rehashing()) {
            let left = budget.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            d.dict.rehash_step(left);
        }
    }

    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.dict.len()).sum()
    }
}

/// `expire` argument of `Keyspace::set` meaning "keep the current TTL".
pub const KEEP_TTL: i64 = -1;

#[cfg(test)]
mod tests {
    use super::*;

    /// Giving a key its first expiry reallocates its entry: `used` follows
    /// the size class, and a write command that looked the entry up
    /// before (measured, used once) keeps valid records of it.
    #[test]
    fn an_expiry_that_moves_the_entry_keeps_the_accounting() {
        let k = b"key:000000000001";
        let mut ks = Keyspace::new();
        ks.set(0, k, Value::from_bytes(b"0123456789abcdef"), 0);
        let base = ks.used;
        assert_eq!(base, 64 + 8, "a 64-byte entry and its bucket slot");
        ks.set_expire(0, k, 1_000_000);
        assert_eq!((ks.used, ks.dbs[0].volatile), (base + 16, 1), "80-byte class with the expiry");
        ks.set_expire(0, k, 0);
        assert_eq!((ks.used, ks.dbs[0].volatile), (base + 16, 0), "the slot stays");
        // Inside a write command: looked up (measured), then moved.
        ks.set(0, b"key:000000000002", Value::from_bytes(b"x"), 0);
        let before = ks.used;
        ks.begin_command(1, true);
        let e = ks.lookup(0, b"key:000000000002", 1).expect("present");
        e.value = Value::from_bytes(&[b'y'; 100]);
        ks.set_expire(0, b"key:000000000002", 2_000_000);
        ks.end_command();
        let e = ks.peek(0, b"key:000000000002", 1).expect("present");
        assert_eq!(e.expire(), 2_000_000);
        assert_eq!(ks.used, before + 16 + evict::value_mem(&e.value));
        assert!(ks.delete(0, b"key:000000000002", 1) && ks.delete(0, k, 1));
        assert_eq!(ks.used, 0);
    }

    /// Per-slot counts follow every way a key comes and goes, and agree
    /// with a recount from the dict.
    #[test]
    fn slot_counts_follow_the_keys() {
        let slot = |k: &[u8]| crate::util::key_slot(k);
        let recount =
            |ks: &Keyspace, db: usize, sl: u16| ks.dbs[db].dict.iter().filter(|e| slot(e.key()) == sl).count() as u32;
        let mut ks = Keyspace::new();
        ks.set(0, b"before", Value::from_bytes(b"1"), 0);
        assert_eq!(ks.dbs[0].keys_in_slot(slot(b"before")), None, "off by default");
        ks.track_slots(true);
        assert_eq!(ks.dbs[0].keys_in_slot(slot(b"before")), Some(1), "counted when turned on");
        let tagged: Vec<Vec<u8>> = (0..10).map(|i| format!("{{t}}:{i}").into_bytes()).collect();
        for k in &tagged {
            ks.set(0, k, Value::from_bytes(b"v"), 0);
        }
        ks.set(0, &tagged[0], Value::from_bytes(b"again"), 0);
        let st = slot(b"{t}");
        assert_eq!(ks.dbs[0].keys_in_slot(st), Some(10));
        ks.remove(0, &tagged[1]);
        assert!(ks.delete(0, &tagged[2], 0));
        ks.set(0, &tagged[3], Value::from_bytes(b"v"), 500);
        assert!(ks.lookup(0, &tagged[3], 1000).is_none(), "expired on access");
        assert_eq!(ks.dbs[0].keys_in_slot(st), Some(7));
        assert_eq!(recount(&ks, 0, st), 7);
        ks.swap_db(0, 1);
        assert_eq!(ks.dbs[1].keys_in_slot(st), Some(7));
        assert_eq!(ks.dbs[0].keys_in_slot(st), Some(0));
        ks.flush_db(1);
        assert_eq!(ks.dbs[1].keys_in_slot(st), Some(0));
        ks.track_slots(false);
        assert_eq!(ks.dbs[1].keys_in_slot(st), None);
    }

    #[test]
    fn lazy_expiry_and_volatile_count() {
        let mut ks = Keyspace::new();
        ks.set(0, b"a", Value::from_bytes(b"1"), 1000);
        ks.set(0, b"b", Value::from_bytes(b"2"), 0);
        assert_eq!(ks.dbs[0].volatile, 1);
        assert!(ks.lookup(0, b"a", 999).is_some());
        assert!(ks.lookup(0, b"a", 1000).is_none());
        assert_eq!(ks.dbs[0].volatile, 0);
        assert_eq!(ks.dbs[0].dict.len(), 1);
        assert_eq!(ks.expired_keys, 1);
    }

    #[test]
    fn typed_lookups() {
        use super::set::Set;
        let mut ks = Keyspace::new();
        ks.set(0, b"n", Value::from_bytes(b"42"), 0);
        ks.set(0, b"s", Value::from_bytes(b"abc"), 0);
        ks.set(0, b"old", Value::from_bytes(b"x"), 10);
        let mut buf = [0u8; 24];
        assert_eq!(ks.get_str(0, b"n", 0, &mut buf), Ok(Some(&b"42"[..])));
        assert_eq!(ks.get_str(0, b"s", 0, &mut buf), Ok(Some(&b"abc"[..])));
        assert_eq!(ks.get_str(0, b"none", 0, &mut buf), Ok(None));
        // An expired key is absent (and goes).
        assert_eq!(ks.get_str(0, b"old", 10, &mut buf), Ok(None));
        assert_eq!(ks.dbs[0].dict.len(), 2);
        assert_eq!(ks.get_typed::<Set>(0, b"s", 0).err(), Some(WrongType));
        assert_eq!(WrongType.msg(), "WRONGTYPE Operation against a key holding the wrong kind of value");
        assert!(ks.get_typed_mut::<Set>(0, b"none", 0).is_ok_and(|s| s.is_none()));

        // modify_typed: created only when asked, touched when changed,
        // removed when left empty, refused on another type.
        let new = || Set::new();
        let add = |m: &'static [u8]| move |s: &mut Set| (s.add(m), true);
        assert_eq!(ks.modify_typed(0, b"t", 0, None, add(b"a")), Ok(None));
        assert_eq!(ks.modify_typed(0, b"t", 0, Some(&new), add(b"a")), Ok(Some(true)));
        assert_eq!(ks.get_typed::<Set>(0, b"t", 0).map(|s| s.map(|s| s.len())), Ok(Some(1)));
        let dirty = ks.dirty;
        assert_eq!(ks.modify_typed(0, b"t", 0, None, |s: &mut Set| (s.add(b"a"), false)), Ok(Some(false)));
        assert_eq!(ks.dirty, dirty);
        assert_eq!(ks.modify_typed(0, b"t", 0, None, |s: &mut Set| (s.remove(b"a"), true)), Ok(Some(true)));
        assert!(ks.peek(0, b"t", 0).is_none());
        assert_eq!(ks.modify_typed(0, b"s", 0, Some(&new), add(b"a")), Err(WrongType));
        // A fresh collection left empty is not stored.
        assert_eq!(ks.modify_typed(0, b"u", 0, Some(&new), |_: &mut Set| ((), true)), Ok(Some(())));
        assert!(ks.peek(0, b"u", 0).is_none());
    }

    /// SWAPDB of a db with itself leaves WATCHed keys clean (Redis);
    /// a real swap dirties a watched key that exists on either side.
    #[test]
    fn swap_db_with_itself_touches_no_watch() {
        let mut ks = Keyspace::new();
        ks.set(0, b"k", Value::from_bytes(b"1"), 0);
        ks.watch(0, b"k", 7);
        ks.swap_db(0, 0);
        assert!(!ks.watch_dirty(7));
        ks.swap_db(0, 1);
        assert!(ks.watch_dirty(7));
    }

    #[test]
    fn keep_ttl_and_persist() {
        let mut ks = Keyspace::new();
        ks.set(0, b"a", Value::from_bytes(b"1"), 5000);
        ks.set(0, b"a", Value::from_bytes(b"2"), KEEP_TTL);
        assert_eq!(ks.peek(0, b"a", 0).map(|e| e.expire()), Some(5000));
        ks.set_expire(0, b"a", 0);
        assert_eq!(ks.dbs[0].volatile, 0);
    }

    #[test]
    fn active_expiry_removes_expired_keys() {
        let mut ks = Keyspace::new();
        for i in 0..1000 {
            let exp = if i % 2 == 0 { 10 } else { 0 };
            ks.set(0, format!("k{i}").as_bytes(), Value::from_bytes(b"v"), exp);
        }
        let mut total = 0;
        for _ in 0..100 {
            total += ks.active_expire_step(0, 20, 64).1;
        }
        assert_eq!(total, 500);
        assert_eq!(ks.dbs[0].dict.len(), 500);
        assert_eq!(ks.dbs[0].volatile, 0);
    }

    #[test]
    fn cron_rehash_step_finishes_rehashes_and_expiry_walks_both_tables() {
        let mut ks = Keyspace::new();
        let mut i = 0usize;
        while i < 5000 || !ks.dbs[3].dict.rehashing() {
            ks.set(3, format!("k{i}").as_bytes(), Value::from_bytes(b"v"), if i.is_multiple_of(2) { 10 } else { 0 });
            i += 1;
        }
        // Mid-rehash the expiry walk still finds every expired key.
        let mut total = 0;
        for _ in 0..1000 {
            total += ks.active_expire_step(3, 20, 64).1;
        }
        assert_eq!(total, i.div_ceil(2));
        assert_eq!(ks.dbs[3].dict.len(), i / 2);
        while ks.dbs[3].dict.rehashing() {
            ks.rehash_step(std::time::Duration::from_millis(1));
        }
        for j in (1..i).step_by(2) {
            assert!(ks.peek(3, format!("k{j}").as_bytes(), 20).is_some());
        }
    }

    #[test]
    fn watch_is_invalidated_by_writes() {
        let mut ks = Keyspace::new();
        ks.watch(0, b"a", 7);
        assert!(!ks.watch_dirty(7));
        ks.set(0, b"b", Value::from_bytes(b"1"), 0);
        assert!(!ks.watch_dirty(7));
        ks.set(0, b"a", Value::from_bytes(b"1"), 0);
        assert!(ks.watch_dirty(7));
        assert!(ks.unwatch_all(7));
        assert!(!ks.watch_dirty(7));
    }
}

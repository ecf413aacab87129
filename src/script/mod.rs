//! Lua scripting (EVAL, EVALSHA and their read-only forms), as Redis 7
//! embeds Lua 5.1.
//!
//! Every shard has its own interpreter (`Engine`), created the first time
//! a script runs there: a script runs on the thread that owns its keys,
//! and `redis.call` inside it goes through `cmd::call` (the one execution
//! path) on that keyspace, by `Road::Script` with Redis's rules for
//! scripts (writes refused in a read-only script; MISCONF and OOM only
//! before the script's first write).
//!
//! The script cache (`Cache`) is shared by all shards: SCRIPT LOAD on one
//! connection makes the script known to EVALSHA on every shard. Each
//! engine keeps its own compiled functions and checks the cache's
//! generation (bumped by SCRIPT FLUSH) before using them, so a flush
//! reaches every shard without a message.
//!
//! Where a script runs is decided by its declared keys (see
//! `shard::dispatch`): on this shard's keyspace when they all live here,
//! otherwise on the temporary keyspace of a cross-shard transaction at
//! the connection's shard. A script that reaches for a key the place it
//! runs does not hold (a key it did not declare, on another shard) is
//! stopped at that call, its writes so far are undone (`Undo`), and it is
//! run again as a transaction that locks every shard with that key pulled
//! (`Engine::retry` tells the caller which keys).
//!
//! The AOF never sees a script: the commands it ran log their effects,
//! which the caller writes as one record (or one transaction).

pub mod acl;
pub mod busy;
pub mod busy_io;
pub mod convert;
pub mod functions;
pub mod libs;
pub mod sandbox;
pub mod sha1;

use crate::cmd::admission::{Conditions, Road};
use crate::cmd::{self, flags::*, Ctx, OwnedArgs};
use crate::keyspace::{Keyspace, Value as KValue};
use crate::protocol::reply::Reply;
use crate::shard::router::SlotMap;
use mlua::{Function, MultiValue, Table, Value};
use std::rc::Rc;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A (db, key) pair.
pub type DbKey = (u8, Vec<u8>);

/// Script bodies by SHA-1 (lowercase hex), shared by every shard.
#[derive(Default)]
pub struct Cache {
    bodies: Mutex<HashMap<[u8; 40], Arc<[u8]>>>,
    /// Bumped by SCRIPT FLUSH: engines drop their compiled functions.
    generation: AtomicU64,
}

impl Cache {
    pub fn insert(&self, sha: [u8; 40], body: &[u8]) {
        if let Ok(mut m) = self.bodies.lock() {
            m.entry(sha).or_insert_with(|| Arc::from(body));
        }
    }

    pub fn get(&self, sha: &[u8; 40]) -> Option<Arc<[u8]>> {
        self.bodies.lock().ok().and_then(|m| m.get(sha).cloned())
    }

    /// Whether a script with this name (any case) is cached.
    pub fn exists(&self, sha: &[u8]) -> bool {
        parse_sha(sha).is_some_and(|s| self.bodies.lock().map(|m| m.contains_key(&s)).unwrap_or(false))
    }

    pub fn flush(&self) {
        if let Ok(mut m) = self.bodies.lock() {
            m.clear();
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Scripts cached, and the bytes of their bodies (INFO memory).
    pub fn stats(&self) -> (usize, usize) {
        self.bodies.lock().map(|m| (m.len(), m.values().map(|b| b.len() + 40).sum())).unwrap_or((0, 0))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A client-given script name: 40 characters, compared without case (as
/// Redis lowercases it). Anything else names no script.
pub fn parse_sha(s: &[u8]) -> Option<[u8; 40]> {
    let arr: [u8; 40] = s.try_into().ok()?;
    Some(arr.map(|b| b.to_ascii_lowercase()))
}

/// What the running script may do (Redis's script run flags).
pub struct ScriptConds {
    /// EVAL_RO / EVALSHA_RO: no write commands.
    pub read_only: bool,
    /// The script has changed the dataset: later commands can no longer
    /// be refused for OOM or MISCONF (it cannot stop half way).
    pub wrote: bool,
    /// Over maxmemory when the script started (Redis's pre-command state).
    pub oom_at_start: bool,
    /// The AOF's last write error when the script started.
    pub aof_error: Option<String>,
    /// The script's `allow-oom` flag: no OOM refusals.
    pub allow_oom: bool,
    /// This server is a read-only replica: writes are refused.
    pub replica_read_only: bool,
}

impl Conditions for ScriptConds {
    fn out_of_memory(&mut self, _: &mut Keyspace) -> bool {
        self.oom_at_start && !self.wrote && !self.allow_oom
    }

    fn aof_error(&self) -> Option<&str> {
        if self.wrote {
            None
        } else {
            self.aof_error.as_deref()
        }
    }

    fn script_read_only(&self) -> bool {
        self.read_only
    }

    // The trait's question is "a read-only replica?", not `read_only`.
    #[allow(clippy::misnamed_getters)]
    fn read_only(&self) -> bool {
        self.replica_read_only
    }
}

/// Which keys a run may touch.
enum Reach {
    /// Every key (one shard only, or every shard's keys pulled).
    Any,
    /// The keys this shard owns (the run is on the shard's own keyspace).
    Shard,
    /// The keys pulled into a transaction's temporary keyspace.
    Pulled,
}

/// The states of keys a script changed, to put back if it must stop.
#[derive(Default)]
struct Undo {
    saved: Vec<(DbKey, Option<(KValue, i64)>)>,
}

impl Undo {
    fn save(&mut self, ks: &Keyspace, db: usize, key: &[u8], now: i64) {
        if self.saved.iter().any(|((d, k), _)| *d as usize == db && k == key) {
            return;
        }
        let st = ks.peek(db, key, now).map(|e| (e.value.deep_clone(), e.expire()));
        self.saved.push(((db as u8, key.to_vec()), st));
    }

    /// Put every saved key back, logging the restored states (so the
    /// record of this call replays to the same state).
    fn restore(self, ks: &mut Keyspace) {
        for ((db, key), st) in self.saved.into_iter().rev() {
            if ks.effects.enabled {
                let state = st.as_ref().map(|(v, exp)| (v, *exp));
                ks.effects.push_encoded(db as usize, |out| {
                    crate::persist::rebuild::state_commands(out, &key, state);
                });
            }
            match st {
                Some((v, exp)) => ks.set(db as usize, &key, v, exp),
                None => {
                    ks.remove(db as usize, &key);
                }
            }
        }
    }
}

/// A function a library registered (FUNCTION LIST).
pub struct FuncMeta {
    pub name: Vec<u8>,
    pub description: Option<Vec<u8>>,
    pub flags: u32,
}

/// A compiled library function, found by its name in lowercase.
struct Compiled {
    f: Rc<Function>,
    name: Vec<u8>,
    lib: Vec<u8>,
    flags: u32,
}

/// Hashes a script's SHA1 (hex) by its first 16 digits: a lookup on every
/// EVALSHA, where SipHash over 40 bytes cost more than the rest of it.
/// Only real SHA1s are inserted, so colliding keys cannot be chosen.
#[derive(Default, Clone, Copy)]
pub struct ShaHash;

impl std::hash::BuildHasher for ShaHash {
    type Hasher = ShaHasher;
    fn build_hasher(&self) -> ShaHasher {
        ShaHasher(0)
    }
}

pub struct ShaHasher(u64);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A hex digit's value (any other byte gives some value too).
        for &b in bytes.iter().take(16) {
            self.0 = self.0 << 4 | u64::from((b & 0xf) + 9 * (b >> 6));
        }
    }
    fn write_usize(&mut self, _len: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

/// One shard's scripting: its interpreters (created on first use: one
/// for EVAL scripts, one for FUNCTION libraries, as Redis keeps them
/// apart) and what is compiled in them.
pub struct Engine {
    pub cache: Arc<Cache>,
    here: usize,
    slots: SlotMap,
    vm: Option<sandbox::Vm>,
    /// Compiled EVAL scripts and their shebang flags (None: no shebang).
    funcs: HashMap<[u8; 40], (Rc<Function>, Option<u32>), ShaHash>,
    seen_generation: u64,
    /// The functions interpreter, rebuilt when the libraries change.
    fvm: Option<sandbox::Vm>,
    /// The `functions::Libs::version` compiled into `fvm`.
    libs_version: u64,
    /// Library name -> its functions (FUNCTION LIST).
    pub lib_meta: std::collections::BTreeMap<Vec<u8>, Vec<FuncMeta>>,
    fmap: HashMap<Vec<u8>, Compiled>,
    /// Set by a run stopped for touching keys it could not reach here:
    /// the keys, for the caller to run it again with them pulled.
    pub retry: Option<Vec<DbKey>>,
    /// The AOF's write error, set by the shard before a script runs.
    pub aof_error: Option<String>,
    /// A read-only replica, set by the shard before a script runs.
    pub replica_read_only: bool,
    /// Every shard's running-script state (None: not watched, e.g. tests).
    pub busy: Option<Arc<busy::Busy>>,
    /// Runs that had to lock every shard (INFO).
    pub all_shard_runs: u64,
    /// The restricted user the next script runs for, set by the shard
    /// (see `acl`); None: no check.
    pub acl: Option<acl::ScriptAcl>,
    /// Commands scripts ran since the shard last took them, for its
    /// commandstats: (command id, ticks, outcome).
    pub nested: Vec<(usize, u64, Outcome)>,
    /// The FCALL under way, as the client sent it (see `busy::Watch::describe`).
    fcall_command: Vec<Vec<u8>>,
    /// New clients of this shard, served while a script is busy (set by
    /// the reactor; see `busy_io`).
    pub busy_io: Option<std::rc::Rc<busy_io::BusyIo>>,
    /// `Running::call`'s buffers between runs.
    bufs: CallBufs,
}

/// How a command called from a script went (commandstats).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Ok,
    Failed,
    Refused,
}

/// Records the commands a script runs.
struct ScriptObserver<'a>(&'a mut Vec<(usize, u64, Outcome)>);

impl cmd::call::Observer for ScriptObserver<'_> {
    fn start(&mut self) -> u64 {
        crate::shard::ticks::now()
    }

    fn refused(&mut self, id: usize) {
        self.0.push((id, 0, Outcome::Refused));
    }

    fn finished(&mut self, id: usize, t0: u64, failed: bool, _: &cmd::Args) {
        let ticks = crate::shard::ticks::now().wrapping_sub(t0);
        self.0.push((id, ticks, if failed { Outcome::Failed } else { Outcome::Ok }));
    }
}

/// How a script is named by the command that runs it.
pub struct Script<'a> {
    pub sha: [u8; 40],
    /// EVAL's body; None for EVALSHA (taken from the cache).
    pub body: Option<&'a [u8]>,
}

/// What runs: an EVAL script or a library function.
enum Which {
    Eval,
    Function,
}

/// Compile a library's code into `vm` and run it with the library API:
/// its name and functions, or the reply's error.
/// A library's name and the functions it registered.
type Loaded = (Vec<u8>, Vec<(FuncMeta, Function)>);

fn load_library(vm: &sandbox::Vm, code: &[u8]) -> Result<Loaded, String> {
    let (name, body) = functions::parse_library(code)?;
    let f = vm.compile(&body).map_err(|e| format!("ERR Error compiling function: {e}"))?;
    vm.load_deadline.set(Some(std::time::Instant::now() + sandbox::LOAD_TIMEOUT));
    vm.load_timed_out.set(false);
    let called = vm.load_library.call::<(bool, Value)>(f);
    vm.load_deadline.set(None);
    if vm.load_timed_out.take() {
        // Redis's text, whatever the code's error handlers made of it.
        return Err(format!("ERR Error registering functions: ERR {}", sandbox::LOAD_TIMED_OUT));
    }
    let (ok, v) = called.map_err(|e| format!("ERR Error registering functions: {e}"))?;
    let text = |v: &Value| v.as_string_lossy().unwrap_or_default();
    if !ok {
        return Err(format!("ERR Error registering functions: {}", text(&v)));
    }
    let Value::Table(list) = v else { return Err("ERR No functions registered".into()) };
    let mut out = Vec::new();
    for entry in list.sequence_values::<Table>() {
        let t = entry.map_err(|e| format!("ERR {e}"))?;
        let name: mlua::String = t.raw_get("name").map_err(|e| format!("ERR {e}"))?;
        let desc: Option<mlua::String> = t.raw_get("description").unwrap_or(None);
        let flags: u32 = t.raw_get("flags").unwrap_or(0);
        let f: Function = t.raw_get("callback").map_err(|e| format!("ERR {e}"))?;
        let meta = FuncMeta { name: name.as_bytes().to_vec(), description: desc.map(|d| d.as_bytes().to_vec()), flags };
        out.push((meta, f));
    }
    if out.is_empty() {
        return Err("ERR No functions registered".into());
    }
    Ok((name, out))
}

impl Engine {
    pub fn new(cache: Arc<Cache>, here: usize, slots: SlotMap) -> Engine {
        Engine {
            cache,
            here,
            slots,
            vm: None,
            funcs: HashMap::default(),
            seen_generation: 0,
            fvm: None,
            libs_version: 0,
            lib_meta: Default::default(),
            fmap: HashMap::new(),
            retry: None,
            aof_error: None,
            replica_read_only: false,
            busy: None,
            all_shard_runs: 0,
            acl: None,
            nested: Vec::new(),
            fcall_command: Vec::new(),
            busy_io: None,
            bufs: CallBufs::default(),
        }
    }

    /// An engine for tests and tools: one shard, its own cache.
    pub fn standalone() -> Engine {
        Engine::new(Arc::new(Cache::default()), 0, SlotMap::contiguous(1))
    }

    /// Bytes the EVAL interpreter uses (INFO used_memory_lua), 0 before use.
    pub fn vm_memory(&self) -> usize {
        self.vm.as_ref().map_or(0, |v| v.lua.used_memory())
    }

    /// Bytes the functions interpreter uses (INFO used_memory_vm_functions).
    pub fn functions_memory(&self) -> usize {
        self.fvm.as_ref().map_or(0, |v| v.lua.used_memory())
    }

    /// Functions compiled here (INFO, FUNCTION STATS).
    pub fn function_count(&self) -> usize {
        self.fmap.len()
    }

    /// Compile `body` (checking it, as SCRIPT LOAD does); Err: the reply.
    pub fn load(&mut self, body: &[u8]) -> Result<[u8; 40], String> {
        let sha = sha1::sha1_hex(body);
        self.function(&Script { sha, body: Some(body) })?;
        Ok(sha)
    }

    /// The compiled function of a script and its shebang flags,
    /// compiling (and caching) it.
    fn function(&mut self, s: &Script) -> Result<(Rc<Function>, Option<u32>), String> {
        let generation = self.cache.generation();
        if generation != self.seen_generation {
            self.funcs.clear();
            self.seen_generation = generation;
        }
        if let Some(f) = self.funcs.get(&s.sha) {
            return Ok(f.clone());
        }
        let body: Arc<[u8]> = match s.body {
            Some(b) => Arc::from(b),
            None => self.cache.get(&s.sha).ok_or("NOSCRIPT No matching script. Please use EVAL.")?,
        };
        let shebang = functions::parse_shebang(&body)?;
        if self.vm.is_none() {
            self.vm = Some(runnable(sandbox::Vm::new()).map_err(|e| format!("ERR {e}"))?);
        }
        let vm = self.vm.as_ref().ok_or("ERR no interpreter")?;
        // The shebang line stays as an empty line (line numbers).
        let code = shebang.map_or(&body[..], |(_, at)| &body[at..]);
        let f = vm.compile(code).map_err(|e| format!("ERR Error compiling script (new function): {e}"))?;
        if s.body.is_some() {
            self.cache.insert(s.sha, &body);
        }
        let entry = (Rc::new(f), shebang.map(|(flags, _)| flags));
        self.funcs.insert(s.sha, entry.clone());
        Ok(entry)
    }

    /// Compile the shard's libraries into the functions interpreter if
    /// they changed since it was built (a new interpreter each time, so
    /// nothing of a deleted library stays behind).
    pub fn sync_functions(&mut self, libs: &functions::Libs) {
        if libs.version == self.libs_version {
            return;
        }
        self.libs_version = libs.version;
        self.fmap.clear();
        self.lib_meta.clear();
        self.fvm = None;
        if libs.libs.is_empty() {
            return;
        }
        let vm = match runnable(sandbox::Vm::for_functions()) {
            Ok(vm) => vm,
            Err(e) => return crate::log(&format!("functions: cannot create the interpreter: {e}")),
        };
        for (lib, code) in &libs.libs {
            match load_library(&vm, code) {
                Ok((_, fs)) => {
                    let mut metas = Vec::new();
                    for (meta, f) in fs {
                        let key = meta.name.to_ascii_lowercase();
                        self.fmap
                            .insert(key, Compiled { f: Rc::new(f), name: meta.name.clone(), lib: lib.clone(), flags: meta.flags });
                        metas.push(meta);
                    }
                    self.lib_meta.insert(lib.clone(), metas);
                }
                Err(e) => crate::log(&format!("functions: library {} did not load: {e}", String::from_utf8_lossy(lib))),
            }
        }
        self.fvm = Some(vm);
    }

    /// Check that the libraries `codes` can be added to `libs` (FUNCTION
    /// LOAD, RESTORE): each compiles and registers functions, and no
    /// function name is taken by a library that stays (`replacing`: the
    /// names that go). Ok: their names.
    pub fn check_libraries(
        &mut self,
        libs: &functions::Libs,
        codes: &[Vec<u8>],
        replacing: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>, String> {
        self.sync_functions(libs);
        let vm = sandbox::Vm::for_functions().map_err(|e| format!("ERR {e}"))?;
        let mut names = Vec::new();
        let mut taken: HashMap<Vec<u8>, ()> = HashMap::new();
        for code in codes {
            let (name, fs) = load_library(&vm, code)?;
            for (meta, _) in &fs {
                let key = meta.name.to_ascii_lowercase();
                let clash = self.fmap.get(&key).is_some_and(|c| !replacing(&c.lib) && c.lib != name);
                if clash || taken.insert(key, ()).is_some() {
                    return Err(format!("ERR Function {} already exists", String::from_utf8_lossy(&meta.name)));
                }
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Run a script with `keys` and `argv` on `ctx`, replying to
    /// `ctx.out`. `read_only`: EVAL_RO. On a stop for unreachable keys
    /// (see the module doc) the reply is an error and `retry` is set.
    pub fn eval(&mut self, ctx: &mut Ctx, s: &Script, keys: &[&[u8]], argv: &[&[u8]], read_only: bool) {
        self.retry = None;
        let (f, flags) = match self.function(s) {
            Ok(f) => f,
            Err(e) => return ctx.error(&e),
        };
        self.execute(ctx, Which::Eval, f, flags, &s.sha, keys, argv, read_only);
    }

    /// Whether a library function is named `name` (any case).
    pub fn has_function(&mut self, ks: &Keyspace, name: &[u8]) -> bool {
        // A transaction's temporary keyspace holds no libraries (version
        // 0): the shard synced from its own before running it.
        if ks.functions.version != 0 {
            self.sync_functions(&ks.functions);
        }
        self.fmap.contains_key(&name.to_ascii_lowercase())
    }

    /// FCALL / FCALL_RO of a library function; `command`: the call as the
    /// client sent it (FUNCTION STATS shows it while the function is busy).
    pub fn fcall(
        &mut self,
        ctx: &mut Ctx,
        command: &crate::cmd::Args,
        name: &[u8],
        keys: &[&[u8]],
        argv: &[&[u8]],
        read_only: bool,
    ) {
        self.retry = None;
        if ctx.ks.functions.version != 0 {
            self.sync_functions(&ctx.ks.functions);
        }
        let Some(c) = self.fmap.get(&name.to_ascii_lowercase()) else {
            return ctx.error("ERR Function not found");
        };
        let (f, flags, fname) = (c.f.clone(), c.flags, c.name.clone());
        self.fcall_command = command.iter().map(<[u8]>::to_vec).collect();
        self.execute(ctx, Which::Function, f, Some(flags), &fname, keys, argv, read_only);
    }

    /// Run `f`; `flags`: None for a script without a shebang (Redis's
    /// legacy rules), else the script's or function's flags.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        ctx: &mut Ctx,
        which: Which,
        f: Rc<Function>,
        flags: Option<u32>,
        label: &[u8],
        keys: &[&[u8]],
        argv: &[&[u8]],
        read_only: bool,
    ) {
        let oom_at_start = ctx.ks.over_limit() && !ctx.ks.free_memory(ctx.now);
        let mut read_only = read_only;
        let mut allow_oom = false;
        if let Some(flags) = flags {
            let no_writes = flags & functions::NO_WRITES != 0;
            if read_only && !no_writes {
                return ctx.error("ERR Can not execute a script with write flag using *_ro command.");
            }
            allow_oom = flags & functions::ALLOW_OOM != 0;
            if !no_writes && oom_at_start && !allow_oom {
                return ctx.error("OOM command not allowed when used memory > 'maxmemory'.");
            }
            if !no_writes && self.replica_read_only {
                return ctx.error(crate::cmd::err::READONLY_REPLICA);
            }
            read_only |= no_writes;
        }
        let vm = match which {
            Which::Eval => self.vm.as_ref(),
            Which::Function => self.fvm.as_ref(),
        };
        let Some(vm) = vm else { return ctx.error("ERR no interpreter") };
        let reach = if ctx.ks.pulled.is_some() {
            Reach::Pulled
        } else if self.slots.shards() == 1 {
            Reach::Any
        } else {
            Reach::Shard
        };
        let conds = ScriptConds {
            read_only,
            wrote: false,
            oom_at_start,
            aof_error: self.aof_error.clone(),
            allow_oom,
            replica_read_only: self.replica_read_only,
        };
        let undo = (!matches!(reach, Reach::Any)).then(Undo::default);
        *vm.watch.borrow_mut() = self.busy.as_ref().map(|b| {
            let mut w = b.start(self.here, matches!(which, Which::Function));
            w.io = self.busy_io.clone();
            if matches!(which, Which::Function) {
                w.describe = Some((label.to_vec(), std::mem::take(&mut self.fcall_command)));
            }
            w
        });
        let mut run = Running {
            db: ctx.db,
            ctx,
            conds,
            reach,
            here: self.here,
            slots: &self.slots,
            undo,
            stopped: None,
            resp: vm.resp.clone(),
            acl: self.acl.as_mut(),
            watch: vm.watch.clone(),
            nested: std::mem::take(&mut self.nested),
            bufs: std::mem::take(&mut self.bufs),
        };
        vm.begin_function_call();
        let entry = match which {
            Which::Eval => &vm.run,
            Which::Function => &vm.runf,
        };
        // Cleared right after; `redis_call` is the only reader.
        vm.running.set(&mut run as *mut Running as *mut ());
        let outcome = vm.call(entry, &f, keys, argv);
        vm.running.set(std::ptr::null_mut());
        let resp3_script = vm.resp.get() == 3;
        let killed = vm.watch.borrow_mut().take().is_some_and(|w| w.killed);
        let Running { ctx, undo, stopped, nested, bufs, .. } = run;
        self.nested = nested;
        self.bufs = bufs;
        if let Some(keys) = stopped {
            if let Some(u) = undo {
                u.restore(ctx.ks);
            }
            self.retry = Some(keys);
            ctx.error("ERR script touched a key it did not declare, on another shard; declare it in KEYS");
            return;
        }
        let label = || String::from_utf8_lossy(label);
        if killed {
            let line = vm.line.get();
            return ctx.error(&format!("ERR {} script: {}, on {}:{line}.", sandbox::KILLED, label(), vm.chunk));
        }
        match outcome {
            Ok((true, v)) => convert::lua_to_reply(&v, &mut ctx.out, resp3_script, 0),
            Ok((false, Value::Table(t))) => {
                let text = |k: &str| match t.raw_get::<Value>(k) {
                    Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
                    Ok(Value::Number(n)) => Some(format!("{}", n as i64)),
                    Ok(Value::Integer(n)) => Some(n.to_string()),
                    _ => None,
                };
                let mut msg = text("err").unwrap_or_else(|| "ERR unknown error".into());
                if let (Some(src), Some(line)) = (text("source"), text("line")) {
                    msg.push_str(&format!(" script: {}, on {src}:{line}.", label()));
                }
                ctx.error(&msg);
            }
            Ok((false, v)) => {
                ctx.error(&format!("ERR Error running script {}, {:.100}", label(), v.to_string().unwrap_or_default()))
            }
            Err(e) => ctx.error(&format!("ERR Error running script {}, {e:.100}", label())),
        }
    }
}

/// A new interpreter that scripts will run in: `redis.call` installed.
fn runnable(vm: Result<sandbox::Vm, String>) -> Result<sandbox::Vm, String> {
    let vm = vm?;
    vm.install_call(redis_call).map_err(|e| e.to_string())?;
    Ok(vm)
}

/// `redis.call`'s implementation (`sandbox::CallFn`): `running` is the
/// `Running` of the call in progress, set by `Engine::execute`.
fn redis_call(lua: &mlua::Lua, running: *mut (), args: MultiValue) -> mlua::Result<(bool, Value)> {
    // SAFETY: `execute` sets the pointer to its `run` (a live local it
    // does not touch while the script runs) just before calling into Lua
    // and clears it right after; `install_call`'s wrapper only calls here
    // with a non-null pointer and takes it for the duration, so this is
    // the only reference. The lifetimes are erased in the pointer; nothing
    // borrowed from `run` outlives this call.
    let run = unsafe { &mut *(running as *mut Running<'_, '_>) };
    run.call(lua, args)
}

/// The state of one script call, seen by `redis.call`.
struct Running<'r, 'c> {
    ctx: &'r mut Ctx<'c>,
    /// The db the script's commands run in (SELECT inside a script
    /// changes it for the script only).
    db: usize,
    conds: ScriptConds,
    reach: Reach,
    here: usize,
    slots: &'r SlotMap,
    undo: Option<Undo>,
    /// Keys out of reach, once a call touched one: the script is stopping.
    stopped: Option<Vec<DbKey>>,
    resp: std::rc::Rc<std::cell::Cell<u8>>,
    acl: Option<&'r mut acl::ScriptAcl>,
    watch: std::rc::Rc<std::cell::RefCell<Option<busy::Watch>>>,
    nested: Vec<(usize, u64, Outcome)>,
    /// The call's arguments and its reply, kept between calls (and runs:
    /// see `Engine::bufs`) so a call allocates neither.
    bufs: CallBufs,
}

/// `Running::call`'s reusable buffers.
#[derive(Default)]
struct CallBufs {
    args: OwnedArgs,
    reply: Vec<u8>,
}

impl Running<'_, '_> {
    /// `redis.call` (raise = true) or `redis.pcall`: (true, reply) or, for
    /// a failure `redis.call` is to raise, (false, the error text).
    fn call(&mut self, lua: &mlua::Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
        let mut it = args.into_iter();
        let raise = matches!(it.next(), Some(Value::Boolean(true)));
        let fail = |msg: &str| -> mlua::Result<(bool, Value)> {
            if raise {
                Ok((false, Value::String(lua.create_string(msg)?)))
            } else {
                let t = lua.create_table()?;
                t.raw_set("err", lua.create_string(msg)?)?;
                Ok((true, Value::Table(t)))
            }
        };
        let mut owned = std::mem::take(&mut self.bufs.args);
        owned.clear();
        for v in it {
            match v {
                Value::String(s) => owned.push(&s.as_bytes()),
                Value::Number(d) => owned.push(&convert::number_arg(d)),
                Value::Integer(n) => owned.push(&convert::number_arg(n as f64)),
                _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
            }
        }
        let reply = self.run_call(lua, &owned, &fail);
        self.bufs.args = owned;
        reply
    }

    /// `call` with its arguments gathered.
    fn run_call(
        &mut self,
        lua: &mlua::Lua,
        owned: &OwnedArgs,
        fail: &dyn Fn(&str) -> mlua::Result<(bool, Value)>,
    ) -> mlua::Result<(bool, Value)> {
        if owned.ranges.is_empty() {
            return fail("ERR Please specify at least one argument for this redis lib call");
        }
        if self.stopped.is_some() {
            return fail("ERR script is being stopped");
        }
        let args = owned.args();
        let Ok((id, def)) = cmd::lookup_args(&args) else {
            return fail("ERR Unknown Redis command called from script");
        };
        if !cmd::arity_ok(def, args.len()) {
            return fail("ERR Wrong number of args calling Redis command from script");
        }
        if def.has(NOSCRIPT) {
            return fail("ERR This Redis command is not allowed from script");
        }
        if let Some(Err(e)) = self.acl.as_mut().map(|a| a.check((id, def), &args)) {
            return fail(e);
        }
        if let Some(out) = self.out_of_reach(def, &args) {
            self.stopped = Some(out);
            return fail("ERR script touched a key it did not declare, on another shard");
        }
        if let Some(u) = self.undo.as_mut().filter(|_| def.has(WRITE)) {
            for i in cmd::key_positions(def, &args) {
                u.save(self.ctx.ks, self.db, args.get(i), self.ctx.now);
            }
            if let Some((db, key)) = def.other_db_key.and_then(|f| f(&args)) {
                u.save(self.ctx.ks, db, key, self.ctx.now);
            }
        }
        let resp3 = self.resp.get() == 3;
        let mut buf = std::mem::take(&mut self.bufs.reply);
        buf.clear();
        let dirty = self.ctx.ks.dirty;
        {
            let mut nested = Ctx {
                ks: &mut *self.ctx.ks,
                db: self.db,
                now: self.ctx.now,
                out: Reply::new(&mut buf, resp3),
                max_bulk_len: self.ctx.max_bulk_len,
                rng: &mut *self.ctx.rng,
                facts: self.ctx.facts,
                scripts: None,
            };
            let mut obs = ScriptObserver(&mut self.nested);
            let _ = cmd::call::call(&mut nested, Road::Script, &mut self.conds, &mut obs, (id, def), &args);
            self.db = nested.db;
        }
        if def.has(WRITE) && self.ctx.ks.dirty != dirty {
            self.conds.wrote = true;
            if let Some(w) = self.watch.try_borrow().ok().as_ref().and_then(|w| w.as_ref()) {
                w.wrote();
            }
        }
        if std::mem::take(&mut self.ctx.ks.would_block) {
            // Scripts never block: a blocking command that would wait
            // answers as if it timed out.
            self.ctx.ks.block_rewrite = None;
            buf.clear();
            Reply::new(&mut buf, resp3).null_array();
        }
        let out = if buf.first() == Some(&b'-') {
            let end = buf.len().saturating_sub(2).max(1);
            fail(&String::from_utf8_lossy(&buf[1..end]))
        } else {
            let mut pos = 0;
            match sandbox::Vm::unlimited(lua, || convert::reply_to_lua(lua, &buf, &mut pos)) {
                Ok(v) => Ok((true, v)),
                Err(_) => fail("ERR reply could not be read"),
            }
        };
        self.bufs.reply = buf;
        out
    }

    /// The command's keys this run cannot reach, if any.
    fn out_of_reach(&self, def: &cmd::CommandDef, args: &cmd::Args) -> Option<Vec<DbKey>> {
        if matches!(self.reach, Reach::Any) || !def.takes_keys() && def.other_db_key.is_none() {
            return None;
        }
        let mut keys: Vec<DbKey> =
            cmd::key_positions(def, args).map(|i| (self.db as u8, args.get(i).to_vec())).collect();
        if let Some((db, key)) = def.other_db_key.and_then(|f| f(args)) {
            keys.push((db as u8, key.to_vec()));
        }
        // A SORT whose BY/GET patterns may name keys outside its key's
        // slot needs a transaction that pulls what they name (as the
        // router gives a client's): the script runs again as one.
        if matches!(self.reach, Reach::Shard) && def.reach.is_some_and(|f| f(args).is_some()) {
            return Some(keys);
        }
        let reachable = |(db, key): &DbKey| match self.reach {
            Reach::Any => true,
            Reach::Shard => self.slots.shard_of(key) == self.here,
            Reach::Pulled => self.ctx.ks.pulled.as_ref().is_none_or(|p| p.contains(&(*db, key.clone()))),
        };
        if keys.iter().all(reachable) {
            None
        } else {
            Some(keys)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{lookup, Rng};

    /// Run one command (EVAL ...) through `cmd::call` with `engine`,
    /// as a client's request; returns the RESP2 reply.
    fn run(ks: &mut Keyspace, engine: &mut Engine, parts: &[&str]) -> String {
        let owned = OwnedArgs::from_slices(parts);
        let args = owned.args();
        let row = lookup(args.get(0)).expect("known command");
        let (mut out, mut rng) = (Vec::new(), Rng::new(1));
        let mut ctx = Ctx::new(ks, 0, 1_000, Reply::new(&mut out, false), &mut rng);
        ctx.scripts = Some(engine);
        let mut cond = crate::cmd::admission::Local { now: 1_000, aof_error: None, read_only: false };
        let _ = cmd::call::call(&mut ctx, Road::Client, &mut cond, &mut (), row, &args);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn eval_runs_commands_through_call() {
        let (mut ks, mut e) = (Keyspace::new(), Engine::standalone());
        let r = run(
            &mut ks,
            &mut e,
            &["EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])", "1", "k", "v"],
        );
        assert_eq!(r, "$1\r\nv\r\n");
        let r = run(&mut ks, &mut e, &["EVAL", "return redis.call('LPUSH', KEYS[1], 1)", "1", "k"]);
        assert!(r.starts_with("-WRONGTYPE Operation against a key holding the wrong kind of value script: "), "{r}");
        assert!(r.ends_with(", on @user_script:1.\r\n"), "{r}");
        let r = run(&mut ks, &mut e, &["EVAL_RO", "return redis.call('DEL', KEYS[1])", "1", "k"]);
        assert!(r.starts_with("-ERR Write commands are not allowed from read-only scripts. script:"), "{r}");
        let sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db";
        assert!(run(&mut ks, &mut e, &["EVALSHA", sha, "0"]).starts_with("-NOSCRIPT"));
        assert_eq!(run(&mut ks, &mut e, &["EVAL", "return 1", "0"]), ":1\r\n");
        assert_eq!(run(&mut ks, &mut e, &["EVALSHA", sha, "0"]), ":1\r\n");
        e.cache.flush();
        assert!(run(&mut ks, &mut e, &["EVALSHA", sha, "0"]).starts_with("-NOSCRIPT"));
    }

    #[test]
    fn effects_not_the_script_are_logged() {
        let (mut ks, mut e) = (Keyspace::new(), Engine::standalone());
        ks.effects.enabled = true;
        let r = run(
            &mut ks,
            &mut e,
            &[
                "EVAL",
                "redis.call('SET', 'a', '1') redis.call('INCR', 'a') redis.call('EXPIRE', 'a', 100) return 1",
                "0",
            ],
        );
        assert_eq!(r, ":1\r\n");
        let mut logged = Vec::new();
        ks.effects.drain_each(|_, b| logged.push(String::from_utf8_lossy(b).into_owned()));
        assert_eq!(logged.len(), 3, "{logged:?}");
        assert!(
            logged[0].contains("SET") && logged[1].contains("INCR") && logged[2].contains("PEXPIREAT"),
            "{logged:?}"
        );
        assert!(!logged.iter().any(|l| l.contains("EVAL")));
    }

    #[test]
    fn a_key_out_of_reach_stops_and_undoes_the_script() {
        let slots = SlotMap::contiguous(2);
        let here = slots.shard_of(b"mine");
        let other = (0..1000).map(|i| format!("k{i}")).find(|k| slots.shard_of(k.as_bytes()) != here).expect("key");
        let mut e = Engine::new(Arc::new(Cache::default()), here, slots);
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        run(&mut ks, &mut e, &["SET", "mine", "old"]);
        let r = run(
            &mut ks,
            &mut e,
            &[
                "EVAL",
                "redis.call('SET', KEYS[1], 'new') redis.call('SET', ARGV[1], 'x') return 1",
                "1",
                "mine",
                &other,
            ],
        );
        assert!(r.starts_with("-ERR"), "{r}");
        assert_eq!(e.retry.take(), Some(vec![(0, other.into_bytes())]));
        assert_eq!(run(&mut ks, &mut e, &["GET", "mine"]), "$3\r\nold\r\n");
    }
}

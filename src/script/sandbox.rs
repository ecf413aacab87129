//! The Lua interpreter a shard runs scripts in, sandboxed as Redis's is.
//!
//! Scripts see a read-only view of the globals: `os`, `io`, `loadfile`,
//! `dofile`, `print`, `getfenv`/`setfenv`, `load` and `debug` are not
//! there; reading a global that does not exist and creating or changing
//! one are errors with Redis's texts, and so is changing the library
//! tables. So one script cannot leave anything behind for the next (the
//! interpreter lives as long as the shard). `math.random` is Redis's
//! rand48, reseeded to 0 before every script call, so a script draws the
//! same numbers every time it runs. `loadstring` refuses bytecode (which
//! could break out of the interpreter) and compiles into the same view.
//!
//! How it is built: the real globals table `G` is hidden behind an empty
//! proxy `P` (the environment scripts run in) whose metatable reads
//! through to `G` and refuses writes; `G`'s own metatable raises the
//! "nonexistent global" error. Library tables are replaced in `G` by
//! read-only proxies of themselves. `rawset`/`setmetatable` refuse the
//! protected tables.

use mlua::{ffi, Function, Lua, LuaOptions, StdLib, Table, Value};
use std::cell::Cell;
use std::rc::Rc;

/// How much memory one shard's interpreter may allocate: a script that
/// builds a huge table or string gets Lua's "not enough memory" instead
/// of taking the server's memory (Redis sets no limit; a runaway script
/// there can exhaust the host).
pub const MEMORY_LIMIT: usize = 256 << 20;

/// Built once per interpreter, with the real globals as its environment.
/// `...` are the Rust helpers; returns what the engine calls per run.
const PRELUDE: &str = r#"
local rand, srand, sha1hex, log, setresp, curline, libs, FAIL = ...
local G = _G
local dbg = debug
local rawset0, setmetatable0, getmetatable0, rawget0, type0, tostring0, error0 =
    rawset, setmetatable, getmetatable, rawget, type, tostring, error
local floor, select0, tonumber0, xpcall0, loadstring0, setfenv0 =
    math.floor, select, tonumber, xpcall, loadstring, setfenv

local protected = setmetatable0({}, {__mode = 'k'})
local function readonly(real)
    local p = {}
    protected[p] = true
    setmetatable0(p, {
        __index = real,
        __newindex = function() error0("Attempt to modify a readonly table", 2) end,
        __metatable = false,
    })
    return p
end

-- Strings raised by redis.call and friends already carry their error
-- code; the script line that called them is noted as they are raised.
local marks = {}
-- (`return redis.call(...)` is a tail call, which loses the script's
-- frame; the line hook has kept its last line.)
local function script_line()
    local line = curline()
    if line > 0 then return line end
    return true
end
local function raise(msg)
    marks[msg] = script_line()
    error0(msg, 0)
end

-- redis.call and redis.pcall are C functions set from Rust (`gate`):
-- a script's `return redis.call(...)` then keeps the script's frame.
local redis = {}
redis.sha1hex = function(...)
    if select0('#', ...) ~= 1 then raise("ERR wrong number of arguments") end
    local s = ...
    if type0(s) ~= 'string' and type0(s) ~= 'number' then s = '' end
    return sha1hex(tostring0(s))
end
local function error_table(msg)
    return {err = msg}
end
redis.error_reply = function(...)
    local msg = ...
    if select0('#', ...) ~= 1 or type0(msg) ~= 'string' then
        return error_table("ERR wrong number or type of arguments")
    end
    if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
    local sp = msg:find(' ', 1, true)
    if sp then
        msg = msg:sub(2)
    else
        msg = 'ERR ' .. msg:sub(2)
    end
    return error_table((msg:gsub('[\r\n]+$', '')))
end
redis.status_reply = function(...)
    local msg = ...
    if select0('#', ...) ~= 1 or type0(msg) ~= 'string' then
        return error_table("ERR wrong number or type of arguments")
    end
    return {ok = msg}
end
redis.log = function(...)
    local n = select0('#', ...)
    if n < 2 then raise("ERR redis.log() requires two arguments or more.") end
    local level = ...
    if type0(level) ~= 'number' then raise("ERR First argument must be a number") end
    if level < 0 or level > 3 then raise("ERR Invalid debug level.") end
    local parts = {}
    for i = 2, n do
        local v = select0(i, ...)
        if type0(v) == 'string' or type0(v) == 'number' then parts[#parts + 1] = tostring0(v) end
    end
    log(level, table.concat(parts, ' '))
end
redis.setresp = function(...)
    if select0('#', ...) ~= 1 then raise("ERR redis.setresp() requires one argument.") end
    local v = tonumber0((...))
    if v ~= 2 and v ~= 3 then raise("ERR RESP version must be 2 or 3.") end
    setresp(v)
end
redis.set_repl = function(...)
    if select0('#', ...) ~= 1 then raise("ERR redis.set_repl() requires one argument.") end
    local v = tonumber0((...))
    if v == nil or v < 0 or v > 3 or v ~= floor(v) then
        raise("ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
    end
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION = REDIS_VERSION_STR
redis.REDIS_VERSION_NUM = REDIS_VERSION_NUM_VAL
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3

-- Redis's math.random: rand48 from seed 0 at every call.
local function checkint(v, i)
    local n = tonumber0(v)
    if n == nil then
        error0("bad argument #" .. i .. " to 'random' (number expected, got " .. (v == nil and 'no value' or type0(v)) .. ")", 3)
    end
    return n >= 0 and floor(n) or -floor(-n)
end
math.random = function(...)
    local r = rand()
    local n = select0('#', ...)
    if n == 0 then return r end
    local a, b = ...
    if n == 1 then
        local u = checkint(a, 1)
        if u < 1 then error0("bad argument #1 to 'random' (interval is empty)", 2) end
        return floor(r * u) + 1
    elseif n == 2 then
        local l, u = checkint(a, 1), checkint(b, 2)
        if l > u then error0("bad argument #2 to 'random' (interval is empty)", 2) end
        return floor(r * (u - l + 1)) + l
    end
    error0("wrong number of arguments", 2)
end
math.randomseed = function(v) srand(checkint(v, 1)) end

local P = {}
loadstring = function(s, name)
    if type0(s) == 'string' and s:byte(1) == 27 then return nil, "binary chunks are not allowed" end
    local f, e = loadstring0(s, name)
    if f then setfenv0(f, P) end
    return f, e
end
rawset = function(t, k, v)
    if protected[t] then error0("Attempt to modify a readonly table", 0) end
    return rawset0(t, k, v)
end
setmetatable = function(t, mt)
    if protected[t] then error0("Attempt to modify a readonly table", 0) end
    return setmetatable0(t, mt)
end

for _, name in ipairs({'os', 'io', 'loadfile', 'dofile', 'print', 'getfenv', 'setfenv', 'load',
                       'debug', 'module', 'require', 'package', 'newproxy', 'gcinfo'}) do
    rawset0(G, name, nil)
end
for _, name in ipairs({'string', 'math', 'table', 'coroutine'}) do
    rawset0(G, name, readonly(rawget0(G, name)))
end
rawset0(G, 'redis', readonly(redis))
-- cjson, cmsgpack, bit, struct: Rust functions that return FAIL, msg
-- for an error, raised here as a string (see script::libs).
-- The message gets the caller's position, as luaL_error gives it (level
-- 3: past this function and the wrapper's tail call into it; no position
-- when the caller is C, e.g. pcall).
local function raise_if_failed(first, ...)
    if first == FAIL then
        local msg = ...
        local i = dbg.getinfo(3, 'Sl')
        if i and i.what == 'tail' then
            -- `return lib.f(...)` lost the caller's frame; the line hook
            -- has its line.
            local line = curline()
            if line > 0 then msg = SHORT_NAME .. ':' .. line .. ': ' .. msg end
        elseif i and i.what ~= 'C' and i.currentline and i.currentline > 0 then
            msg = i.short_src .. ':' .. i.currentline .. ': ' .. msg
        end
        error0(msg, 0)
    end
    return first, ...
end
for lib, raw in pairs(libs) do
    local t = {}
    for name, f in pairs(raw) do
        if type0(f) == 'function' then
            t[name] = function(...) return raise_if_failed(f(...)) end
        else
            t[name] = f
        end
    end
    rawset0(G, lib, readonly(t))
end
-- The strings' metatable would lead back to the real string table.
local smt = getmetatable0('')
if smt then smt.__metatable = false end

protected[P] = true
rawset0(G, '_G', P)
local pmeta = {
    __index = G,
    __newindex = function() error0("Attempt to modify a readonly table", 2) end,
    __metatable = false,
}
setmetatable0(P, pmeta)
setmetatable0(G, {
    __index = function(_, n)
        error0("Script attempted to access nonexistent global variable '" .. tostring0(n) .. "'", 2)
    end,
})

-- Error objects as Redis builds them: {err=..., source=..., line=...}.
local function handler(e)
    local t
    if type0(e) == 'table' then
        t = e
    elseif type0(e) == 'string' and marks[e] then
        t = {err = e}
        if type0(marks[e]) == 'number' then
            rawset0(t, 'source', CHUNK_NAME)
            rawset0(t, 'line', marks[e])
            return t
        end
    else
        t = {err = 'ERR ' .. tostring0(e)}
    end
    for level = 2, 64 do
        local i = dbg.getinfo(level, 'Sl')
        if not i then break end
        if i.source == CHUNK_NAME then
            rawset0(t, 'source', i.source)
            rawset0(t, 'line', i.currentline)
            return t
        end
    end
    local line = curline()
    if line > 0 then
        rawset0(t, 'source', CHUNK_NAME)
        rawset0(t, 'line', line)
    end
    return t
end

-- A script: KEYS and ARGV become globals. (`marks` is replaced only
-- when used: a new table per call was garbage for every call.)
local next0 = next
-- On one line: the line hook runs once per line reached.
local function run(f, k, a)
    if next0(marks) ~= nil then marks = {} end rawset0(G, 'KEYS', k) rawset0(G, 'ARGV', a) return xpcall0(f, handler)
end
-- A function of a library: called with its keys and arguments.
local function runf(f, k, a)
    if next0(marks) ~= nil then marks = {} end
    return xpcall0(function() return f(k, a) end, handler)
end

-- FUNCTION LOAD runs a library's code with only the library API in
-- sight (as Redis): `redis` with register_function, log and constants;
-- any other global is an error. Functions it registers run later with
-- the ordinary globals (and no register_function).
local pending
local FLAGS = {['no-writes'] = 1, ['allow-oom'] = 2, ['allow-stale'] = 4, ['no-cluster'] = 8,
               ['allow-cross-slot-keys'] = 16}
local function regerr(msg) error0({err = 'ERR ' .. msg}, 0) end
local function isstr(v) return type0(v) == 'string' or type0(v) == 'number' end
local function register(...)
    local n = select0('#', ...)
    if n < 1 or n > 2 then regerr('wrong number of arguments to redis.register_function') end
    local name, cb, flags, desc = nil, nil, 0, nil
    if n == 1 then
        local t = ...
        if type0(t) ~= 'table' then
            regerr('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
        end
        for k, v in pairs(t) do
            if k == 'function_name' then
                if not isstr(v) then regerr('function_name argument given to redis.register_function must be a string') end
                name = tostring0(v)
            elseif k == 'description' then
                if not isstr(v) then regerr('description argument given to redis.register_function must be a string') end
                desc = tostring0(v)
            elseif k == 'callback' then
                if type0(v) ~= 'function' then regerr('callback argument given to redis.register_function must be a function') end
                cb = v
            elseif k == 'flags' then
                if type0(v) ~= 'table' then
                    regerr('flags argument to redis.register_function must be a table representing function flags')
                end
                for _, fl in pairs(v) do
                    local b = type0(fl) == 'string' and FLAGS[fl]
                    if not b then regerr('unknown flag given') end
                    if flags % (2 * b) < b then flags = flags + b end
                end
            else
                regerr('unknown argument given to redis.register_function')
            end
        end
        if not name then regerr('redis.register_function must get a function name argument') end
        if not cb then regerr('redis.register_function must get a callback argument') end
    else
        local a, b = ...
        if not isstr(a) then regerr('first argument to redis.register_function must be a string') end
        if type0(b) ~= 'function' then regerr('second argument to redis.register_function must be a function') end
        name, cb = tostring0(a), b
    end
    if not name:find('^[%w_]+$') then
        regerr('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
    end
    local key = name:lower()
    for _, p in ipairs(pending) do
        if p.key == key then regerr('Function already exists in the library') end
    end
    pending[#pending + 1] = {key = key, name = name, callback = cb, flags = flags, description = desc}
end
local function missing(_, n)
    error0("Script attempted to access nonexistent global variable '" .. tostring0(n) .. "'", 2)
end
local libredis = setmetatable0({register_function = register, log = redis.log,
    LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
    REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM}, {__index = missing})
local LIBAPI = setmetatable0({redis = readonly(libredis)}, {__index = missing})
local function load_library(f)
    pending = {}
    pmeta.__index = LIBAPI
    local ok, e = xpcall0(f, function(e)
        if type0(e) == 'table' and type0(rawget0(e, 'err')) == 'string' then return rawget0(e, 'err') end
        return 'ERR ' .. tostring0(e)
    end)
    pmeta.__index = G
    local got = pending
    pending = nil
    if ok then return true, got end
    return false, e
end
return P, run, runf, load_library, redis, raise
"#;

/// One shard's interpreter and what the engine needs of it.
pub struct Vm {
    pub lua: Lua,
    /// The environment scripts run in (the read-only view of the globals).
    pub env: Table,
    /// The real globals (KEYS and ARGV are set here for each call).
    pub globals: Table,
    /// `run(f, keys, argv)`: xpcall of a compiled script with Redis's
    /// error handler, KEYS and ARGV set.
    pub run: Function,
    /// `runf(f, keys, args)`: the same for a library's function.
    pub runf: Function,
    /// `load_library(f)`: run a library's code with the library API;
    /// (true, registrations) or (false, error text).
    pub load_library: Function,
    /// The chunk name of compiled code (`@user_script`, `@user_function`).
    pub chunk: &'static str,
    /// `slot[1]` is the `redis.call` implementation (`install_call`).
    pub slot: Table,
    /// The running call's state, which `slot[1]` hands to the engine's
    /// `CallFn`; null between calls (see `install_call`).
    pub running: Rc<Cell<*mut ()>>,
    /// The RESP version the running script chose (`redis.setresp`).
    pub resp: Rc<Cell<u8>>,
    /// rand48 state of `math.random`.
    pub rand: Rc<Cell<u64>>,
    /// The last line of the script that ran (error messages).
    pub line: Rc<Cell<i64>>,
    /// The running call's busy watch (see `script::busy`), if any.
    pub watch: Rc<std::cell::RefCell<Option<super::busy::Watch>>>,
    /// While a library's code loads: when it is to stop (Redis's 500 ms
    /// load timeout). Past it every line raises, so pcall cannot keep
    /// the code running.
    pub load_deadline: Rc<Cell<Option<std::time::Instant>>>,
    /// The hook stopped library code at `load_deadline`.
    pub load_timed_out: Rc<Cell<bool>>,
    /// What `line_hook` reads; after `lua`, so it outlives the interpreter.
    _hook: Box<HookState>,
}

/// What the line hook needs, reached from the registry.
struct HookState {
    /// The sandbox environment's table (`Vm::env`).
    env: *const std::ffi::c_void,
    line: Rc<Cell<i64>>,
    watch: Rc<std::cell::RefCell<Option<super::busy::Watch>>>,
    load_deadline: Rc<Cell<Option<std::time::Instant>>>,
    load_timed_out: Rc<Cell<bool>>,
}

/// `redis.call`: the engine's function (`slot[1]`, see `install_call`)
/// called with `true` first; its (false, message) is raised by the
/// prelude's `raise`.
unsafe extern "C-unwind" fn call_gate(l: *mut ffi::lua_State) -> std::ffi::c_int {
    gate(l, true)
}

/// `redis.pcall`: the same with `false` (errors come back as tables).
unsafe extern "C-unwind" fn pcall_gate(l: *mut ffi::lua_State) -> std::ffi::c_int {
    gate(l, false)
}

/// Being C functions, the gates keep the script's frame on the stack
/// even when the script tail-calls them, and they cost no line events.
unsafe fn gate(l: *mut ffi::lua_State, raise: bool) -> std::ffi::c_int {
    let n = ffi::lua_gettop(l);
    ffi::lua_rawgeti(l, ffi::lua_upvalueindex(1), 1);
    ffi::lua_insert(l, 1);
    ffi::lua_pushboolean(l, raise as std::ffi::c_int);
    ffi::lua_insert(l, 2);
    ffi::lua_call(l, n + 1, 2);
    if ffi::lua_toboolean(l, -2) != 0 {
        return 1;
    }
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_insert(l, -2);
    ffi::lua_call(l, 1, 0);
    0
}

/// The registry key of the `HookState` pointer: this static's address.
fn hook_key() -> *const std::ffi::c_void {
    static KEY: u8 = 0;
    &KEY as *const u8 as *const std::ffi::c_void
}

/// Runs on every line of Lua code: notes the script's line (error
/// messages of tail calls, which lose the script's frame), stops library
/// code past its load deadline, and ticks the busy watch (which may kill
/// the script). A plain C hook: mlua's hook API decoded the source name
/// into Rust strings on every line, a fifth of a small script call.
unsafe extern "C-unwind" fn line_hook(l: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    let raise = line_event(l, ar);
    if let Some(msg) = raise {
        // Nothing with a destructor is alive here: lua_error does not return.
        ffi::lua_pushlstring(l, msg.as_ptr() as *const std::ffi::c_char, msg.len());
        ffi::lua_error(l);
    }
}

/// The hook's work; Some(message) to raise.
unsafe fn line_event(l: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) -> Option<&'static str> {
    ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, hook_key());
    let st = ffi::lua_touserdata(l, -1) as *const HookState;
    ffi::lua_pop(l, 1);
    // SAFETY: set by `with_chunk` to the Vm's own HookState (see there).
    let st = st.as_ref()?;
    // Script code is what runs in the sandbox's environment (the prelude
    // runs in the real globals): comparing environments costs far less
    // than decoding the source name.
    if ffi::lua_getinfo(l, c"f".as_ptr(), ar) != 0 {
        ffi::lua_getfenv(l, -1);
        let script = ffi::lua_topointer(l, -1) == st.env;
        ffi::lua_pop(l, 2);
        if script {
            st.line.set((*ar).currentline as i64);
        }
    }
    if st.load_deadline.get().is_some_and(|d| std::time::Instant::now() >= d) {
        st.load_timed_out.set(true);
        return Some(LOAD_TIMED_OUT);
    }
    // A loop jumps back, which is a line event too: a script that never
    // ends still comes here.
    if let Ok(mut w) = st.watch.try_borrow_mut() {
        if w.as_mut().is_some_and(|w| !w.tick()) {
            return Some(KILLED);
        }
    }
    None
}

/// How long a library's top-level code may run (Redis's LOAD_TIMEOUT_MS).
pub const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
/// The error a library's code stops with past `LOAD_TIMEOUT`.
pub const LOAD_TIMED_OUT: &str = "FUNCTION LOAD timeout";

/// The error a killed script stops with.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// rand48, as Redis's `redisLrand48` (the C library's lrand48 algorithm).
pub fn rand48_seed(seed: i32) -> u64 {
    (((seed as u32 as u64) << 16) | 0x330e) & ((1 << 48) - 1)
}

/// Next value of rand48 in [0, 2^31), advancing `state`.
pub fn rand48_next(state: &mut u64) -> u32 {
    *state = (state.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xb)) & ((1 << 48) - 1);
    (*state >> 17) as u32
}

impl Vm {
    /// A fresh sandboxed interpreter for EVAL scripts.
    pub fn new() -> Result<Vm, String> {
        Vm::with_chunk("@user_script")
    }

    /// A fresh sandboxed interpreter for FUNCTION libraries.
    pub fn for_functions() -> Result<Vm, String> {
        Vm::with_chunk("@user_function")
    }

    fn with_chunk(chunk: &'static str) -> Result<Vm, String> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: the debug library is loaded only for the error handler
        // (line numbers); the prelude removes it from what scripts see.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::new()) };
        lua.set_memory_limit(MEMORY_LIMIT).map_err(|e| format!("lua memory limit: {e}"))?;
        let resp = Rc::new(Cell::new(2u8));
        let rand = Rc::new(Cell::new(rand48_seed(0)));
        let e = |e: mlua::Error| format!("creating the Lua interpreter: {e}");
        let r = rand.clone();
        let rand_fn = lua
            .create_function(move |_, ()| {
                let mut s = r.get();
                let v = rand48_next(&mut s);
                r.set(s);
                // REDIS_LRAND48_MAX is INT32_MAX.
                Ok((v % 0x7fff_ffff) as f64 / 0x7fff_ffff as f64)
            })
            .map_err(e)?;
        let r = rand.clone();
        let srand_fn = lua
            .create_function(move |_, seed: f64| {
                r.set(rand48_seed(seed as i64 as i32));
                Ok(())
            })
            .map_err(e)?;
        let sha_fn = lua
            .create_function(|lua, s: mlua::String| lua.create_string(super::sha1::sha1_hex(&s.as_bytes())))
            .map_err(e)?;
        let log_fn = lua
            .create_function(|_, (level, msg): (i64, mlua::String)| {
                // Notice and warning reach the log; debug and verbose are
                // below shardis's one log level.
                if level >= 2 {
                    crate::log(&format!("script: {}", String::from_utf8_lossy(&msg.as_bytes())));
                }
                Ok(())
            })
            .map_err(e)?;
        let rr = resp.clone();
        let setresp_fn = lua
            .create_function(move |_, v: u8| {
                rr.set(v);
                Ok(())
            })
            .map_err(e)?;
        let slot = lua.create_table().map_err(e)?;
        let line = Rc::new(Cell::new(0i64));
        let watch: Rc<std::cell::RefCell<Option<super::busy::Watch>>> = Rc::default();
        let load_deadline: Rc<Cell<Option<std::time::Instant>>> = Rc::default();
        let load_timed_out: Rc<Cell<bool>> = Rc::default();
        let l = line.clone();
        let line_fn = lua.create_function(move |_, ()| Ok(l.get())).map_err(e)?;
        let code = PRELUDE
            .replace("REDIS_VERSION_STR", &format!("'{}'", crate::cmd::server::REDIS_VERSION))
            .replace("REDIS_VERSION_NUM_VAL", &redis_version_num().to_string())
            .replace("SHORT_NAME", &format!("'{}'", &chunk[1..]))
            .replace("CHUNK_NAME", &format!("'{chunk}'"));
        let prelude = lua.load(code).set_name("=prelude").into_function().map_err(e)?;
        let libs = super::libs::tables(&lua).map_err(e)?;
        let (env, run, runf, load_library, redis, raise): (Table, Function, Function, Function, Table, Function) =
            prelude
                .call((rand_fn, srand_fn, sha_fn, log_fn, setresp_fn, line_fn, libs, super::libs::fail_marker()))
                .map_err(e)?;
        for (name, gate) in [("call", call_gate as ffi::lua_CFunction), ("pcall", pcall_gate)] {
            // SAFETY: pushes a C closure over (slot, raise); `gate` reads
            // exactly those two upvalues.
            let f: Function =
                unsafe { lua.exec_raw((slot.clone(), raise.clone()), |l| ffi::lua_pushcclosure(l, gate, 2)) }
                    .map_err(e)?;
            redis.raw_set(name, f).map_err(e)?;
        }
        let hook = Box::new(HookState {
            env: env.to_pointer(),
            line: line.clone(),
            watch: watch.clone(),
            load_deadline: load_deadline.clone(),
            load_timed_out: load_timed_out.clone(),
        });
        let hook_ptr = &*hook as *const HookState as *mut std::ffi::c_void;
        // SAFETY: the registry entry points at `hook`, which the Vm owns
        // and drops after `lua` (field order); `line_hook` is the only
        // reader. The hook is per thread and copied to coroutines the
        // script creates.
        unsafe {
            lua.exec_raw::<()>((), |l| {
                ffi::lua_pushlightuserdata(l, hook_ptr);
                ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, hook_key());
                ffi::lua_sethook(l, Some(line_hook), ffi::LUA_MASKLINE, 0);
            })
            .map_err(e)?;
        }
        let globals = lua.globals();
        Ok(Vm {
            lua,
            env,
            globals,
            run,
            runf,
            load_library,
            chunk,
            slot,
            running: Rc::new(Cell::new(std::ptr::null_mut())),
            resp,
            rand,
            line,
            watch,
            load_deadline,
            load_timed_out,
            _hook: hook,
        })
    }

    /// Compile a script body as Redis names it (`@user_script`), in the
    /// sandbox's environment. Err: Lua's message.
    pub fn compile(&self, body: &[u8]) -> Result<Function, String> {
        if body.first() == Some(&27) {
            // Bytecode is refused (luaL_loadbuffer would take it).
            return Err(format!("{}: binary chunks are not allowed", &self.chunk[1..]));
        }
        self.lua.load(body).set_name(self.chunk).set_environment(self.env.clone()).into_function().map_err(
            |e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            },
        )
    }

    /// Call `entry` (`run` or `runf`) with the compiled `f` and tables of
    /// `keys` and `argv`: (true, result) or (false, error object). The
    /// tables are built with Lua's own API inside one protected call:
    /// through mlua, each value created was its own protected call (with a
    /// memory limit set), most of a small script call's cost.
    pub fn call(&self, entry: &Function, f: &Function, keys: &[&[u8]], argv: &[&[u8]]) -> mlua::Result<(bool, Value)> {
        let too_many = |n: usize| n > i32::MAX as usize;
        if too_many(keys.len()) || too_many(argv.len()) {
            return Err(mlua::Error::runtime("too many arguments"));
        }
        // SAFETY: the closure runs inside mlua's protected call with
        // (entry, f) on the stack and holds nothing that needs dropping, so
        // a Lua error (out of memory) thrown out of it skips no destructor.
        // A C function has LUA_MINSTACK (20) free slots; this uses 3 at
        // most besides the call's own arguments.
        unsafe {
            self.lua.exec_raw::<(bool, Value)>((entry, f), |l| {
                for items in [keys, argv] {
                    ffi::lua_createtable(l, items.len() as std::ffi::c_int, 0);
                    for (i, b) in items.iter().enumerate() {
                        ffi::lua_pushlstring(l, b.as_ptr() as *const std::ffi::c_char, b.len());
                        ffi::lua_rawseti(l, -2, (i + 1) as _);
                    }
                }
                ffi::lua_call(l, 3, 2);
            })
        }
    }

    /// Make `call` the implementation behind `redis.call`/`redis.pcall`,
    /// once for the interpreter's life. The engine points `running` at
    /// its per-call state for the length of a call; `call` gets that
    /// pointer. (A function created per call, scoped to the call's
    /// borrows, cost about a tenth of a small EVALSHA.)
    pub fn install_call(&self, call: CallFn) -> mlua::Result<()> {
        let running = self.running.clone();
        let f = self.lua.create_function(move |lua, args: mlua::MultiValue| {
            // Taken for the call, so a nested use finds null rather than
            // a second `&mut` to the same state.
            let p = running.replace(std::ptr::null_mut());
            if p.is_null() {
                return Err(mlua::Error::runtime("redis.call is only available while a script runs"));
            }
            let r = call(lua, p, args);
            running.set(p);
            r
        })?;
        self.slot.raw_set(1, f)
    }

    /// Run `f` with the interpreter's memory limit lifted: for what the
    /// engine itself builds through mlua (the replies of `redis.call`).
    /// With a limit set, mlua guards every value it creates with a
    /// protected call, which made that building a large part of a small
    /// script call; a reply is bounded by what the command returned, and
    /// the script's own allocations stay limited.
    pub fn unlimited<R>(lua: &Lua, f: impl FnOnce() -> R) -> R {
        let before = lua.set_memory_limit(0).unwrap_or(MEMORY_LIMIT);
        let r = f();
        let _ = lua.set_memory_limit(before);
        r
    }
}

/// The engine's `redis.call`: (the interpreter, the running call's state
/// as given to `Vm::running`, the arguments) -> (true, reply) or (false,
/// error text to raise).
pub type CallFn = fn(&Lua, *mut (), mlua::MultiValue) -> mlua::Result<(bool, Value)>;

impl Vm {
    /// Reset per-call state before `call`: RESP 2, math.random from seed
    /// 0, the last line (KEYS/ARGV are set by `run` itself).
    pub fn begin_function_call(&self) {
        self.resp.set(2);
        self.line.set(0);
        self.rand.set(rand48_seed(0));
    }
}

/// REDIS_VERSION_NUM: 0x00MMmmpp.
fn redis_version_num() -> u32 {
    let mut parts = crate::cmd::server::REDIS_VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a << 16) | (b << 8) | c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `code` as a script with no keys; Ok(value) or Err(error table's err).
    fn run(vm: &Vm, code: &str) -> Result<Value, String> {
        let f = vm.compile(code.as_bytes())?;
        vm.begin_function_call();
        let (ok, v) = vm.call(&vm.run, &f, &[], &[]).expect("run");
        if ok {
            return Ok(v);
        }
        match v {
            Value::Table(t) => Err(t.raw_get::<String>("err").unwrap_or_default()),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn escapes_are_refused() {
        let vm = Vm::new().expect("vm");
        for name in ["os", "io", "loadfile", "dofile", "print", "getfenv", "setfenv", "debug", "require"] {
            let err = run(&vm, &format!("return {name}")).expect_err(name);
            assert_eq!(
                err,
                format!("ERR user_script:1: Script attempted to access nonexistent global variable '{name}'")
            );
        }
        assert_eq!(run(&vm, "a = 5").expect_err("global"), "ERR user_script:1: Attempt to modify a readonly table");
        assert_eq!(run(&vm, "rawset(_G, 'y', 1)").expect_err("rawset"), "ERR Attempt to modify a readonly table");
        assert!(run(&vm, "setmetatable(_G, nil)").is_err());
        assert!(run(&vm, "redis.call = nil").is_err());
        assert!(run(&vm, "string.rep = nil").is_err());
        assert!(run(&vm, "getmetatable('').__index.rep = nil").is_err());
        assert!(run(&vm, "return loadstring(string.dump(function() end))")
            .map(|v| matches!(v, Value::Nil))
            .unwrap_or(false));
        // A chunk from loadstring sees the same read-only view.
        assert!(run(&vm, "local f = loadstring('x = 1') f()").is_err());
        // Nothing leaked into the next script.
        assert_eq!(run(&vm, "return type(redis.call)").ok().and_then(|v| v.as_string_lossy()), Some("function".into()));
        assert!(vm.compile(b"\x1bLua").is_err());
    }

    #[test]
    fn math_random_is_redis_rand48_from_zero() {
        let vm = Vm::new().expect("vm");
        // rand48 from seed 0 draws 366850414 first: 0.1708... -> 2 of 10,
        // at every call (Redis 7.0 no longer reseeds per call; Redis 6 did).
        assert_eq!(run(&vm, "return math.random(10)").ok().and_then(|v| v.as_i64()), Some(2));
        assert_eq!(run(&vm, "return math.random(10)").ok().and_then(|v| v.as_i64()), Some(2));
        assert_eq!(
            run(&vm, "local a, b = math.random(10), math.random(10) return b").ok().and_then(|v| v.as_i64()),
            Some(8)
        );
        let a = run(&vm, "return {math.random(1000), math.random(1000)}").expect("ok");
        let b = run(&vm, "return {math.random(1000), math.random(1000)}").expect("ok");
        assert_eq!(format!("{a:?}").len(), format!("{b:?}").len());
        assert!(run(&vm, "return math.random(0)").is_err());
    }

    #[test]
    fn hostile_scripts_fail_cleanly() {
        let vm = Vm::new().expect("vm");
        let err = run(&vm, "local function f(n) return f(n+1)+1 end return f(1)").expect_err("recursion");
        assert!(err.contains("stack overflow"), "{err}");
        let err = run(&vm, "local s = string.rep('x', 1048576) while true do s = s .. s end").expect_err("huge string");
        assert!(err.contains("memory"), "{err}");
        // Still usable afterwards.
        assert_eq!(run(&vm, "return 1").ok().and_then(|v| v.as_i64()), Some(1));
    }

    #[test]
    fn error_texts_carry_the_line() {
        let vm = Vm::new().expect("vm");
        assert_eq!(run(&vm, "\n\nerror('boom')").expect_err("e"), "ERR user_script:3: boom");
        assert_eq!(run(&vm, "error({err='custom'})").expect_err("e"), "custom");
        assert_eq!(run(&vm, "error()").expect_err("e"), "ERR nil");
        assert_eq!(run(&vm, "redis.log(99, 'x')").expect_err("e"), "ERR Invalid debug level.");
        assert_eq!(run(&vm, "\nreturn redis.log(99, 'x')").expect_err("e"), "ERR Invalid debug level.");
        assert_eq!(run(&vm, "redis.setresp(4)").expect_err("e"), "ERR RESP version must be 2 or 3.");
        let compile = vm.compile(b"return x +").expect_err("syntax");
        assert_eq!(compile, "user_script:1: unexpected symbol near '<eof>'");
    }
}

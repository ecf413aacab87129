//! A shard stuck in a busy script still answers its clients.
//!
//! Other shards answer -BUSY and take SCRIPT KILL for a busy shard (see
//! `busy`), but with one shard — or for a client whose connection lives
//! on the stuck shard — no other loop is there. The stuck shard's reactor
//! cannot run (its core is deep inside the script), so the interpreter's
//! hook (`Watch::tick`, acting every ~16,000 instructions) calls `poll` a
//! few times a millisecond once the run is past the threshold. `poll`
//! works beside the ring rather than through it, with plain accept4, recv
//! and send:
//!
//! - **New clients**: accepted from the shard's listener (the ring's
//!   multishot accept is not reaped meanwhile: with DEFER_TASKRUN its work
//!   waits for this thread to enter the ring) as connections of their own
//!   (`Conn::new`, as the `default` user); when the script ends they go to
//!   the reactor (`take_handover`) with what they sent and their login.
//! - **The shard's own connections**, reached through the table the core
//!   lends for the script's duration (`Lend`; the script itself never
//!   touches other connections). Only on rings with DEFER_TASKRUN, where no
//!   receive or send can complete behind the hook's back.
//!
//! Each served connection is answered in order: its pending output first
//! (sent directly), then each complete request in turn, checked in the
//! core's order — lookup and arity, NOAUTH, the ACL (a refusal is NOPERM,
//! counted and in ACL LOG as the core logs it), the RESP2 subscribe
//! context — then -BUSY, which inside MULTI also marks the transaction
//! aborted (EXEC answers EXECABORT later); EXEC itself is refused with
//! EXECABORT and its transaction discarded, as Redis 7.0 does. Of the
//! commands allowed while busy, these run here: AUTH and HELLO (protocol,
//! AUTH, SETNAME) against the shard's users (a failed password counted and
//! logged as the core does); MULTI; DISCARD, UNWATCH and RESET of a client
//! that WATCHes nothing (RESET also subscribing to nothing); QUIT; SCRIPT
//! KILL / FUNCTION KILL; FUNCTION STATS during a busy EVAL (refused);
//! SHUTDOWN NOSAVE (exits). CLIENT REPLY OFF / SKIP mute replies as the
//! core does. A protocol error gets the core's error, and the connection's
//! sending side is shut. Any other command allowed while busy (WATCH,
//! REPLCONF, FUNCTION STATS of a busy function, EXEC / DISCARD / UNWATCH /
//! RESET of a client with WATCHes, RESET of a subscriber; inside MULTI
//! every allowed-busy one but DISCARD and RESET, which the core queues or
//! runs) — and everything after it — waits for the core, in order: the
//! bytes stay in the connection's input. When the script ends the reactor
//! re-runs each served connection (`take_served`).
//!
//! Left waiting until the script ends (not safe from the hook):
//! - the script's own client (as Redis: its next requests wait);
//! - a connection with a send in the ring (`Conn::sending`: a client that
//!   does not read its replies), or whose output is held for the AOF or
//!   for replicas (appendfsync always, `repl-sync-ack`): what it sent next
//!   cannot be answered before that output;
//! - one waiting for anything (another shard, a lock, CLIENT PAUSE, a
//!   blocking command — as Redis, a blocked client's next requests are not
//!   read), one with requests an EXEC replays, and a MONITOR;
//! - on rings without provided buffers, one whose receive the reactor
//!   reaped but had not handled when the script started (it holds bytes
//!   sent before what the socket has now; with provided buffers the
//!   reactor moves a batch's bytes into the connections first,
//!   `Net::take_received`);
//! - every existing connection when the script runs inside a cross-shard
//!   transaction or on a ring without DEFER_TASKRUN (new clients are still
//!   answered when the shard's table is lent).
//!
//! Not counted: a command refused -BUSY here is not in INFO commandstats'
//! rejected_calls (other shards count theirs). protected-mode refuses
//! non-loopback peers while the default user has no password, as the core
//! does.

use super::busy::{self, Busy};
use crate::acl::Users;
use crate::cmd::flags::{ALLOW_BUSY, NO_AUTH, RUNS_QUEUE, SUBSCRIBED_OK};
use crate::cmd::{self, Args};
use crate::protocol::parse::{parse_request, Limits, ParseOutcome};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, ReplyMode};
use crate::shard::Shared;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a busy script looks at its shard's clients.
const EVERY: Duration = Duration::from_millis(2);
/// Unanswered input read from one connection at most (the rest stays in
/// the socket).
const READ_CAP: usize = 1 << 20;
/// New connections taken while busy at most.
const MAX_FRESH: usize = 1024;

/// What the core lends the hook for one script call (`Shard::lend_busy_io`).
#[derive(Clone, Copy)]
pub struct Host {
    conns: *mut Vec<Option<Box<Conn>>>,
    users: *const Arc<Users>,
    /// Output stamped past this lsn waits (`Shard::release_gate`); it
    /// cannot move while the script runs (no completion is reaped).
    released: Option<u64>,
    limits: Limits,
    protected: bool,
}

impl Host {
    /// The core's connection table and users, for the script about to run.
    /// The core must not touch `conns` until the `Lend` is dropped.
    pub fn new(
        conns: &mut Vec<Option<Box<Conn>>>,
        users: &Arc<Users>,
        released: Option<u64>,
        limits: Limits,
        protected: bool,
    ) -> Host {
        Host { conns, users, released, limits, protected }
    }
}

/// The host lent for one script call; dropping it takes it back.
pub struct Lend(Rc<BusyIo>);

impl Drop for Lend {
    fn drop(&mut self) {
        self.0.host.set(None);
    }
}

pub struct BusyIo {
    shard: usize,
    listen_fd: RawFd,
    /// The ring defers its task work (DEFER_TASKRUN): the shard's own
    /// connections may be served.
    own: bool,
    shared: OnceCell<Arc<Shared>>,
    host: Cell<Option<Host>>,
    last: Cell<Option<Instant>>,
    /// Connections accepted while busy (boxed, as the core keeps them).
    #[allow(clippy::vec_box)]
    fresh: RefCell<Vec<Box<Conn>>>,
    /// `fresh`, for the reactor once the script ended.
    #[allow(clippy::vec_box)]
    handover: RefCell<Vec<Box<Conn>>>,
    /// The core's connections served while busy (index, generation).
    touched: RefCell<HashSet<(u32, u32)>>,
    /// `touched`, for the reactor once the script ended.
    served: RefCell<Vec<(u32, u32)>>,
    /// The core's connections whose peer went away (read no more).
    gone: RefCell<HashSet<(u32, u32)>>,
    /// Connections with a receive the reactor reaped and has not handled.
    batch: RefCell<Vec<u32>>,
}

/// What answering needs besides the connection.
struct Env<'a> {
    busy: &'a Busy,
    users: &'a Users,
    shared: &'a Shared,
    limits: Limits,
    now: i64,
    shard: usize,
}

impl BusyIo {
    /// `own`: the ring defers its task work, so the shard's connections
    /// may be served too.
    pub fn new(shard: usize, listen_fd: RawFd, own: bool) -> BusyIo {
        BusyIo {
            shard,
            listen_fd,
            own,
            shared: OnceCell::new(),
            host: Cell::new(None),
            last: Cell::new(None),
            fresh: RefCell::default(),
            handover: RefCell::default(),
            touched: RefCell::default(),
            served: RefCell::default(),
            gone: RefCell::default(),
            batch: RefCell::default(),
        }
    }

    /// The server's shared state (ACL LOG and counters, client ids).
    pub fn set_shared(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    /// Lend `host` until the returned guard is dropped.
    pub fn lend(self: &Rc<Self>, host: Host) -> Lend {
        self.host.set(Some(host));
        Lend(self.clone())
    }

    /// The receives of this turn's completions (before they are handled).
    #[inline]
    pub fn note_batch(&self, idxs: impl Iterator<Item = u32>) {
        let mut b = self.batch.borrow_mut();
        b.clear();
        b.extend(idxs);
    }

    /// Whether connections wait for the reactor (checked every turn).
    #[inline]
    pub fn has_handover(&self) -> bool {
        !self.handover.borrow().is_empty() || !self.served.borrow().is_empty()
    }

    /// Connections accepted while busy, with what they sent and did.
    pub fn take_handover(&self) -> Vec<Box<Conn>> {
        std::mem::take(&mut *self.handover.borrow_mut())
    }

    /// The core's connections served while busy: (index, generation).
    pub fn take_served(&self) -> Vec<(u32, u32)> {
        std::mem::take(&mut *self.served.borrow_mut())
    }

    /// The script ended: what was accepted and served goes to the reactor.
    pub fn script_ended(&self) {
        self.last.set(None);
        self.handover.borrow_mut().append(&mut self.fresh.borrow_mut());
        self.served.borrow_mut().extend(self.touched.borrow_mut().drain());
        self.gone.borrow_mut().clear();
    }

    /// Serve clients while the script runs (from the hook; rate-limited).
    pub fn poll(&self, busy: &Busy) {
        let now = Instant::now();
        if self.last.get().is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last.set(Some(now));
        let (Some(host), Some(shared)) = (self.host.get(), self.shared.get()) else { return };
        // SAFETY: `Lend` clears the host before the core's `users` may
        // change or move; only read here.
        let users: &Users = unsafe { &*host.users };
        let env = Env { busy, users, shared, limits: host.limits, now: crate::util::now_ms(), shard: self.shard };
        self.accept_new(&env, host.protected);
        let mut fresh = self.fresh.borrow_mut();
        fresh.retain_mut(|c| {
            let s = serve(c, &env, true);
            let done = s.gone || (c.close_after_flush && c.out.is_empty());
            if done {
                // SAFETY: accepted here; nothing else holds it.
                unsafe { libc::close(c.fd) };
            }
            !done
        });
        if !self.own {
            return;
        }
        // SAFETY: the core lent its table for this script call and touches
        // no connection until the `Lend` is dropped (the script's commands
        // reach the keyspace, not connections; the script's own client is
        // out of the table while it runs). Nothing here outlives the call.
        let conns = unsafe { &mut *host.conns };
        let batch = self.batch.borrow();
        let mut gone = self.gone.borrow_mut();
        let mut touched = self.touched.borrow_mut();
        for c in conns.iter_mut().filter_map(|s| s.as_deref_mut()) {
            if !servable(c, host.released) || batch.contains(&c.idx) {
                continue;
            }
            let key = (c.idx, c.gen);
            let was_gone = gone.contains(&key);
            let s = serve(c, &env, !was_gone);
            if s.gone {
                gone.insert(key);
            }
            if s.changed {
                touched.insert(key);
            }
        }
    }

    fn accept_new(&self, env: &Env, protected: bool) {
        let fd = self.listen_fd;
        let mut fresh = self.fresh.borrow_mut();
        let user = env.users.default_user();
        // The listener blocks for the ring's sake; non-blocking just here.
        // SAFETY: plain fcntl/accept4 on the shard's own listener.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return;
            }
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            while fresh.len() < MAX_FRESH {
                let c = libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC);
                if c < 0 {
                    break;
                }
                let peer = crate::net::listener::sockaddr_string(c, true);
                if crate::security::protected_mode_refuses(protected, !user.nopass, &peer) {
                    crate::net::listener::refuse(c, crate::security::DENIED);
                    continue;
                }
                crate::net::listener::set_nodelay(c);
                let laddr = crate::net::listener::sockaddr_string(c, false);
                let id = env.shared.next_client_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                fresh.push(Conn::new(c, (u32::MAX, 0, id), peer, laddr, user.clone(), env.now));
            }
            libc::fcntl(fd, libc::F_SETFL, flags);
        }
    }
}

/// A connection of the core the hook may answer (see the module doc).
fn servable(c: &Conn, released: Option<u64>) -> bool {
    let held = !c.out.is_empty() && released.is_some_and(|r| c.out_gate > r);
    !c.closing
        && c.sending.is_empty()
        && c.wait.is_none()
        && c.replay.is_empty()
        && !c.monitor
        && c.reply != ReplyMode::Skipping
        && !held
}

#[derive(Default)]
struct Served {
    /// Its buffers or session changed: the core looks at it afterwards.
    changed: bool,
    /// The peer went away (or the socket failed): read no more.
    gone: bool,
}

/// Answer what `c` sent (`read`: read its socket first), in order.
fn serve(c: &mut Conn, env: &Env, read: bool) -> Served {
    let mut s = Served::default();
    send_out(c, &mut s);
    if !c.out.is_empty() {
        // Its socket is full: what it sent next waits behind this.
        return s;
    }
    if c.close_after_flush {
        shut_wr(c.fd);
        return s;
    }
    if read && !c.read_eof {
        recv_into(c, &mut s);
    }
    if answer_all(c, env) {
        s.changed = true;
        send_out(c, &mut s);
    }
    if c.close_after_flush && c.out.is_empty() {
        shut_wr(c.fd);
    }
    s
}

/// Send `c.out` as far as the socket takes it.
fn send_out(c: &mut Conn, s: &mut Served) {
    let mut done = 0;
    while done < c.out.len() {
        let rest = &c.out[done..];
        // SAFETY: sending from a live buffer of that length.
        let n = unsafe { libc::send(c.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                s.gone = true;
            }
            break;
        }
        done += n as usize;
    }
    if done > 0 {
        c.out.drain(..done);
        c.mute_from = c.mute_from.saturating_sub(done);
        s.changed = true;
    }
}

/// Read what the peer sent into `c.rbuf` (up to `READ_CAP` unanswered).
fn recv_into(c: &mut Conn, s: &mut Served) {
    let mut chunk = [0u8; 16 * 1024];
    while c.rbuf.len() - c.rpos < READ_CAP {
        // SAFETY: reading into a local buffer of that size.
        let n = unsafe { libc::recv(c.fd, chunk.as_mut_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            c.rbuf.extend_from_slice(&chunk[..n as usize]);
            s.changed = true;
            continue;
        }
        let e = std::io::Error::last_os_error().raw_os_error();
        if n < 0 && (e == Some(libc::EAGAIN) || e == Some(libc::EINTR)) {
            break;
        }
        // End of stream or a failed socket: the ring will see it too.
        s.gone = true;
        break;
    }
}

fn shut_wr(fd: RawFd) {
    // SAFETY: shutting down the sending side of a socket; the reactor
    // still closes it.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Answer `c`'s complete requests until one must wait for the core; true
/// if any was consumed.
fn answer_all(c: &mut Conn, env: &Env) -> bool {
    let start = c.rpos;
    let mut rbuf = std::mem::take(&mut c.rbuf);
    let mut ranges = Vec::new();
    let mut line = Vec::new();
    while c.rpos < rbuf.len() && !c.close_after_flush {
        let limits = Limits { unauthenticated: !c.authed, ..env.limits };
        let at = c.rpos;
        // Inline parsing unescapes in place: parse a copy of the line, so
        // a request left for the core is as it arrived.
        let inline = rbuf[at] != b'*';
        let req: &mut [u8] = if inline {
            let Some(nl) = rbuf[at..].iter().position(|&b| b == b'\n') else { break };
            line.clear();
            line.extend_from_slice(&rbuf[at..at + nl + 1]);
            &mut line
        } else {
            &mut rbuf[at..]
        };
        match parse_request(req, &limits, &mut ranges) {
            ParseOutcome::Done { consumed } => {
                if ranges.is_empty() {
                    c.rpos += consumed;
                    continue;
                }
                let args = Args::new(&req[..consumed], &ranges);
                let Some(reply) = answer(c, &args, env) else { break };
                c.rpos += consumed;
                emit(c, &reply);
            }
            ParseOutcome::Incomplete { .. } => break,
            ParseOutcome::Error(e) => {
                // As the core: the error, then the connection closes.
                Reply::new(&mut c.out, c.resp3).error(&e.message());
                c.close_after_flush = true;
                c.rpos = rbuf.len();
            }
        }
    }
    let consumed = c.rpos != start;
    if consumed {
        // The core's resume state was for the request now answered.
        c.parse = Default::default();
        c.need = 0;
        rbuf.drain(..c.rpos);
        c.rpos = 0;
    }
    c.rbuf = rbuf;
    consumed
}

/// Add a reply to `c`'s output, unless CLIENT REPLY mutes it.
fn emit(c: &mut Conn, reply: &[u8]) {
    match c.reply {
        ReplyMode::Off => {}
        // This was the skipped command; replies are on again after it.
        ReplyMode::SkipNext | ReplyMode::Skipping => c.reply = ReplyMode::On,
        ReplyMode::On => c.out.extend_from_slice(reply),
    }
}

/// The reply to one request while busy (the core's checks in its order);
/// None: it is left for the core, with everything after it.
fn answer(c: &mut Conn, args: &Args, env: &Env) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = Reply::new(&mut out, c.resp3);
    let (id, def) = match cmd::lookup_args(args) {
        Ok(found) => found,
        Err(why) => {
            cmd::not_found_error(&mut r, args, why);
            abort(c);
            return Some(out);
        }
    };
    let busy_text = env.busy.busy_reply().unwrap_or(busy::BUSY_EVAL);
    let refusal = if !cmd::arity_ok(def, args.len()) {
        Some(format!("ERR wrong number of arguments for '{}' command", def.name))
    } else if !c.authed && !def.has(NO_AUTH) {
        Some("NOAUTH Authentication required.".to_string())
    } else if let Some(d) = (!c.acl_free).then(|| crate::acl::check::check(&c.user, id, def, args).err()).flatten() {
        let context = if c.multi.is_some() { "multi" } else { "toplevel" };
        crate::shard::acl::log_denied(&env.shared.acl, (env.now, env.shard), c, d, def, args, context);
        Some(d.error(def))
    } else if c.in_pubsub() && !c.resp3 && !def.has(SUBSCRIBED_OK) {
        Some(crate::shard::dispatch::subscribed_context_error(def))
    } else if !def.has(ALLOW_BUSY) {
        Some(busy_text.to_string())
    } else {
        None
    };
    if let Some(e) = refusal {
        if def.has(RUNS_QUEUE) {
            // EXEC refused: the transaction is discarded, as the core does
            // (`Shard::refuse`); its WATCHes are the core's to drop.
            if !c.watch_shards.is_empty() {
                return None;
            }
            c.multi = None;
            let why = e.strip_prefix("ERR ").unwrap_or(&e);
            r.error(&format!("EXECABORT Transaction discarded because of: {why}"));
        } else {
            r.error(&e);
            abort(c);
        }
        return Some(out);
    }
    // Allowed while busy: run here what needs nothing of the core.
    let no_watches = c.watch_shards.is_empty();
    match def.name {
        // DISCARD and RESET run inside MULTI too (never queued).
        "discard" if no_watches => crate::cmd::server::multi::discard(c, &mut r),
        "reset" if no_watches && !c.in_pubsub() => {
            // Its reply goes out whatever CLIENT REPLY said (RESET ends it).
            crate::cmd::server::conn::reset(env.users, c);
            return Some(Vec::new());
        }
        // The rest inside MULTI is queued (or run) by the core.
        _ if c.multi.is_some() => return None,
        "multi" => crate::cmd::server::multi::multi(c, &mut r),
        "unwatch" if no_watches => r.ok(),
        "script|kill" | "function|kill" => match busy::kill(env.busy, def.name == "function|kill") {
            Ok(()) => r.ok(),
            Err(e) => r.error(e),
        },
        // FUNCTION STATS during a busy EVAL is refused (`Busy::running_function`).
        "function|stats" => match env.busy.running_function() {
            Err(e) => r.error(e),
            Ok(_) => return None,
        },
        "quit" => {
            r.ok();
            c.close_after_flush = true;
        }
        "auth" => match crate::cmd::server::conn::auth(env.users, c, args) {
            Ok(()) => r.ok(),
            Err(e) => {
                if let Some(name) = e.failed {
                    let at = (env.now, env.shard);
                    crate::shard::acl::log_acl(&env.shared.acl, at, c, "auth", "toplevel", "AUTH".into(), name);
                }
                r.error(e.text);
            }
        },
        "hello" => {
            let mut reply = Vec::new();
            if let Some(name) = crate::cmd::server::conn::hello(env.users, c, args, &mut reply) {
                let at = (env.now, env.shard);
                crate::shard::acl::log_acl(&env.shared.acl, at, c, "auth", "toplevel", "AUTH".into(), name);
            }
            return Some(reply);
        }
        "shutdown" if args.iter().skip(1).any(|a| a.eq_ignore_ascii_case(b"nosave")) => {
            // As SHUTDOWN NOSAVE on another shard (cmd_shutdown): the stuck
            // shard would never drain.
            crate::log("SHUTDOWN while a script is busy: exiting now");
            std::process::exit(0);
        }
        // SHUTDOWN that would save: refused, as Redis does while busy.
        "shutdown" => r.error(busy_text),
        _ => return None,
    }
    Some(out)
}

/// A request of `c` was refused: inside MULTI, EXEC then aborts.
fn abort(c: &mut Conn) {
    if let Some(m) = &mut c.multi {
        m.aborted = true;
    }
}

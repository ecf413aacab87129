//! A shard stuck in a busy script still answers new clients.
//!
//! Other shards answer -BUSY and take SCRIPT KILL for a busy shard (see
//! `busy`), but with one shard — or for a client whose connection lands on
//! the stuck shard — no other loop is there. The stuck shard's reactor
//! cannot run (its core is deep inside the script), so the interpreter's
//! hook (`Watch::tick`, acting every ~16,000 instructions) calls `poll` a
//! few times a millisecond once the run is past the threshold. `poll`
//! works beside the ring rather than through it: it accepts from the
//! shard's listener with accept4 (the ring's multishot accept is not
//! reaped meanwhile: with DEFER_TASKRUN its work waits for this thread to
//! enter the ring), reads those new connections with plain recv, answers
//! -BUSY, and acts on SCRIPT KILL / FUNCTION KILL and SHUTDOWN NOSAVE. A
//! command allowed while busy (AUTH, HELLO, MULTI, FUNCTION STATS...) and
//! everything after it wait. When the script ends, the connections and
//! their unread bytes go to the reactor (`take_handover`), which registers
//! them as if just accepted.
//!
//! The shard's own connections are served the same way while idle
//! (`Conn::idle_for_busy`: nothing unread or unsent, no MULTI, pub/sub,
//! blocking or CLIENT REPLY state, a user that may run everything), which
//! the reactor records on each finished send and clears on each receive;
//! bytes left unanswered go back in front of the connection's input. Only
//! on rings with DEFER_TASKRUN, where no receive can complete behind the
//! hook's back. Not covered: connections that are not idle (they wait
//! until the script ends, as before), and servers where the
//! default user needs a password or may not run every command (a new
//! client could not authenticate here, nor be checked: `poll` leaves the
//! listener alone). protected-mode refuses non-loopback peers, as the
//! core does.

use super::busy::{self, Busy};
use crate::protocol::parse::{parse_request, Limits, ParseOutcome};
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// An idle connection's bytes read while busy: (index, generation,
/// bytes not answered, peer gone).
type Held = (u32, u32, Vec<u8>, bool);

/// How often a busy script looks at its shard's clients.
const EVERY: Duration = Duration::from_millis(2);

pub struct BusyIo {
    listen_fd: RawFd,
    /// New clients may run any command without AUTH (the default user
    /// needs no password and may run everything); kept current by the
    /// reactor's timer (see `refresh`).
    open: Cell<bool>,
    /// protected-mode: only loopback clients without a password.
    protected: Cell<bool>,
    last: Cell<Option<Instant>>,
    /// Connections accepted while busy, with their unanswered bytes.
    pending: RefCell<Vec<(RawFd, Vec<u8>, bool)>>,
    /// Connections for the reactor once the script ended.
    handover: RefCell<Vec<(RawFd, Vec<u8>)>>,
    /// The reactor's connections by index, while idle (`Conn::idle_for_busy`
    /// and nothing in flight): (fd, generation).
    idle: RefCell<Vec<Option<(RawFd, u32)>>>,
    /// Bytes read from idle connections while busy and not answered:
    /// (index, generation, bytes, peer gone).
    held: RefCell<Vec<Held>>,
    /// `held`, for the reactor once the script ended.
    held_over: RefCell<Vec<(u32, u32, Vec<u8>)>>,
}

impl BusyIo {
    pub fn new(listen_fd: RawFd) -> BusyIo {
        BusyIo {
            listen_fd,
            open: Cell::new(false),
            protected: Cell::new(true),
            last: Cell::new(None),
            pending: RefCell::default(),
            handover: RefCell::default(),
            idle: RefCell::default(),
            held: RefCell::default(),
            held_over: RefCell::default(),
        }
    }

    /// What new clients may do, from the default user and protected-mode
    /// (the reactor calls this on each timer tick).
    pub fn refresh(&self, default_user: &crate::acl::user::User, protected_mode: bool) {
        self.open.set(default_user.nopass && default_user.enabled && default_user.unrestricted());
        self.protected.set(protected_mode);
    }

    /// Connection `idx` is idle (Some) or not (None) (from the reactor).
    #[inline]
    pub fn set_idle(&self, idx: u32, fd_gen: Option<(RawFd, u32)>) {
        let mut idle = self.idle.borrow_mut();
        let i = idx as usize;
        if idle.len() <= i {
            if fd_gen.is_none() {
                return;
            }
            idle.resize(i + 1, None);
        }
        idle[i] = fd_gen;
    }

    /// Whether connections or bytes wait for the reactor (checked every turn).
    #[inline]
    pub fn has_handover(&self) -> bool {
        !self.handover.borrow().is_empty() || !self.held_over.borrow().is_empty()
    }

    /// Unanswered bytes of the reactor's own connections: (index,
    /// generation, bytes to put before anything it reads next).
    pub fn take_held(&self) -> Vec<(u32, u32, Vec<u8>)> {
        std::mem::take(&mut *self.held_over.borrow_mut())
    }

    pub fn take_handover(&self) -> Vec<(RawFd, Vec<u8>)> {
        std::mem::take(&mut *self.handover.borrow_mut())
    }

    /// The script ended: what was accepted goes to the reactor.
    pub fn script_ended(&self) {
        self.last.set(None);
        let mut pending = self.pending.borrow_mut();
        let mut handover = self.handover.borrow_mut();
        for (fd, buf, closed) in pending.drain(..) {
            if closed {
                // SAFETY: fd was accepted here and nothing else holds it.
                unsafe { libc::close(fd) };
            } else {
                handover.push((fd, buf));
            }
        }
        let mut over = self.held_over.borrow_mut();
        for (idx, gen, buf, _) in self.held.borrow_mut().drain(..) {
            if !buf.is_empty() {
                over.push((idx, gen, buf));
            }
        }
    }

    /// Serve new clients while the script runs (from the hook; rate-limited).
    pub fn poll(&self, busy: &Busy) {
        let now = Instant::now();
        if self.last.get().is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last.set(Some(now));
        if !self.open.get() {
            return;
        }
        self.accept_new();
        let mut pending = self.pending.borrow_mut();
        for (fd, buf, closed) in pending.iter_mut() {
            if !*closed {
                *closed = serve(*fd, buf, busy);
            }
        }
        // The reactor's idle connections: their bytes wait in the socket
        // (the ring's receive completes only when this thread enters it).
        let idle = self.idle.borrow();
        let mut held = self.held.borrow_mut();
        for (idx, slot) in idle.iter().enumerate() {
            let Some((fd, gen)) = *slot else { continue };
            let idx = idx as u32;
            let h = match held.iter().position(|h| h.0 == idx && h.1 == gen) {
                Some(i) => i,
                None => {
                    held.push((idx, gen, Vec::new(), false));
                    held.len() - 1
                }
            };
            let entry = &mut held[h];
            if !entry.3 {
                // A peer gone: the ring sees the end of stream too.
                entry.3 = serve(fd, &mut entry.2, busy);
            }
        }
    }

    fn accept_new(&self) {
        let fd = self.listen_fd;
        let mut pending = self.pending.borrow_mut();
        // The listener blocks for the ring's sake; non-blocking just here.
        // SAFETY: plain fcntl/accept4 on the shard's own listener.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return;
            }
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            while pending.len() < 1024 {
                let c = libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC);
                if c < 0 {
                    break;
                }
                let peer = crate::net::listener::sockaddr_string(c, true);
                if crate::security::protected_mode_refuses(self.protected.get(), false, &peer) {
                    crate::net::listener::refuse(c, crate::security::DENIED);
                    continue;
                }
                pending.push((c, Vec::new(), false));
            }
            libc::fcntl(fd, libc::F_SETFL, flags);
        }
    }
}

/// Read what `fd` sent and answer its complete commands; true: the peer
/// went away (or broke the protocol).
fn serve(fd: RawFd, buf: &mut Vec<u8>, busy: &Busy) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: reading into a local buffer of that size.
        let n = unsafe { libc::recv(fd, chunk.as_mut_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e == Some(libc::EAGAIN) || e == Some(libc::EINTR) {
                break;
            }
            return true;
        }
        buf.extend_from_slice(&chunk[..n as usize]);
        if buf.len() > 1 << 20 {
            break;
        }
    }
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    let mut done = 0;
    while done < buf.len() {
        let limits = Limits { unauthenticated: true, ..Limits::default() };
        match parse_request(&mut buf[done..], &limits, &mut ranges) {
            ParseOutcome::Done { consumed } => {
                let args: Vec<&[u8]> = ranges.iter().map(|r| &buf[done + r.start..done + r.end]).collect();
                match answer(&args, busy) {
                    Some(reply) => out.extend_from_slice(reply.as_bytes()),
                    // Allowed while busy: it and what follows wait for the core.
                    None => break,
                }
                done += consumed;
            }
            ParseOutcome::Incomplete { .. } => break,
            ParseOutcome::Error(_) => return true,
        }
    }
    buf.drain(..done);
    if !out.is_empty() {
        // SAFETY: writing a local buffer; a short write on a full socket
        // loses the rest of these error replies (a client that does not
        // read its replies while pipelining into a busy server).
        unsafe { libc::send(fd, out.as_ptr().cast(), out.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    }
    false
}

/// The reply to one command while busy; None: left for the core.
fn answer(args: &[&[u8]], busy: &Busy) -> Option<String> {
    let Some(name) = args.first() else { return Some(String::new()) };
    let is = |i: usize, s: &str| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()));
    let kill = |function: bool| match busy::kill(busy, function) {
        Ok(()) => "+OK\r\n".to_string(),
        Err(e) => format!("-{e}\r\n"),
    };
    if is(0, "script") && is(1, "kill") && args.len() == 2 {
        return Some(kill(false));
    }
    if is(0, "function") && is(1, "kill") && args.len() == 2 {
        return Some(kill(true));
    }
    if is(0, "shutdown") && args.iter().skip(1).any(|a| a.eq_ignore_ascii_case(b"nosave")) {
        // As SHUTDOWN NOSAVE on another shard (cmd_shutdown): the stuck
        // shard would never drain.
        crate::log("SHUTDOWN while a script is busy: exiting now");
        std::process::exit(0);
    }
    let _ = name;
    let owned = crate::cmd::OwnedArgs::from_slices(args);
    if let Ok((_, def)) = crate::cmd::lookup_args(&owned.args()) {
        if def.has(crate::cmd::flags::ALLOW_BUSY) && !is(0, "shutdown") {
            return None;
        }
    }
    let text = busy.busy_reply().unwrap_or(busy::BUSY_EVAL);
    Some(format!("-{text}\r\n"))
}

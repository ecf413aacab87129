//! One thread drives every connection through epoll, so the load
//! generator's own scheduling noise is one thread's, not 2 × conns threads'.
//!
//! Open loop: request i is due at `start + i / rate` and goes to connection
//! i mod conns (the rate is spread evenly). Its latency runs from that
//! intended time to its reply, so a stall on either side counts in full for
//! every request it delayed (no coordinated omission). The loop sleeps in
//! `epoll_pwait2` with a nanosecond timeout until the next request is due.
//!
//! Closed loop: each connection keeps `pipeline` requests in flight and
//! sends the next one as soon as a reply arrives; latency runs from the
//! actual send.
//!
//! Both stop issuing at `duration` (or after `max_requests`) and then wait at
//! most `drain` for outstanding replies; the ones still missing are counted
//! as unanswered and recorded at the latency they had reached by then.

use crate::workload::Workload;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

pub struct Plan {
    /// Requests per second over all connections; 0 = closed loop.
    pub rate: u64,
    pub duration: Duration,
    pub pipeline: usize,
    pub max_requests: u64,
    pub drain: Duration,
}

pub struct Outcome {
    /// Latency in µs of every answered (and unanswered) request.
    pub hist: Histogram<u64>,
    /// Open loop: how late requests left the client (µs after their
    /// intended time); large values mean the client, not the server, lagged.
    pub send_lag: Histogram<u64>,
    pub completed: u64,
    pub errors: u64,
    pub unanswered: u64,
    /// From the first intended send to the last reply.
    pub elapsed: Duration,
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds")
}

const READ_BUF: usize = 256 * 1024;

struct Conn {
    stream: TcpStream,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Intended (open) or actual (closed) send time, ns after `base`, of each
    /// request awaiting a reply, oldest first (replies come in order).
    pending: VecDeque<u64>,
    /// EPOLLOUT is registered (the socket was full).
    want_out: bool,
    /// Listed in `dirty` (has unsent bytes to try).
    dirty: bool,
}

struct Epoll {
    fd: i32,
}

impl Epoll {
    fn new() -> Result<Epoll, String> {
        // SAFETY: plain syscall; the fd is owned by the returned value.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
        }
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> Result<(), String> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives across the call; `fd` is a socket we own.
        if unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) } < 0 {
            return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Wait at most `timeout` (None = forever); returns the number of events.
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Option<Duration>) -> Result<usize, String> {
        let ts = timeout.map(|t| libc::timespec { tv_sec: t.as_secs() as _, tv_nsec: t.subsec_nanos() as _ });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `events` is a valid writable array of its length; `tsp` is
        // null or points at `ts`, which outlives the call.
        let n = unsafe { libc::epoll_pwait2(self.fd, events.as_mut_ptr(), events.len() as i32, tsp, std::ptr::null()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(format!("epoll_pwait2: {e}"));
        }
        Ok(n as usize)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it once.
        unsafe { libc::close(self.fd) };
    }
}

pub struct Driver {
    conns: Vec<Conn>,
    epoll: Epoll,
    base: Instant,
    dirty: Vec<usize>,
    hist: Histogram<u64>,
    completed: u64,
    errors: u64,
    last_reply: u64,
}

impl Driver {
    /// Connect `n` sockets (blocking connect, then non-blocking I/O).
    pub fn connect(host: &str, port: u16, n: usize) -> Result<Driver, String> {
        let epoll = Epoll::new()?;
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let stream = TcpStream::connect((host, port)).map_err(|e| format!("connect {host}:{port}: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            epoll.ctl(libc::EPOLL_CTL_ADD, stream.as_raw_fd(), libc::EPOLLIN as u32, i as u64)?;
            conns.push(Conn {
                stream,
                wbuf: Vec::with_capacity(64 * 1024),
                wpos: 0,
                rbuf: vec![0; READ_BUF],
                rstart: 0,
                rend: 0,
                pending: VecDeque::new(),
                want_out: false,
                dirty: false,
            });
        }
        Ok(Driver {
            conns,
            epoll,
            base: Instant::now(),
            dirty: Vec::new(),
            hist: new_hist(),
            completed: 0,
            errors: 0,
            last_reply: 0,
        })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn issue(&mut self, c: usize, at: u64, work: &mut Workload) {
        let conn = &mut self.conns[c];
        work.next(&mut conn.wbuf);
        conn.pending.push_back(at);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(c);
        }
    }

    /// Write what the socket takes; register for EPOLLOUT if it is full.
    fn flush(&mut self, c: usize) -> Result<(), String> {
        let conn = &mut self.conns[c];
        conn.dirty = false;
        while conn.wpos < conn.wbuf.len() {
            match conn.stream.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => conn.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if conn.wpos == conn.wbuf.len() {
            conn.wbuf.clear();
            conn.wpos = 0;
        } else if conn.wpos > conn.wbuf.len() / 2 {
            // The server is behind; keep the backlog from growing the buffer.
            conn.wbuf.drain(..conn.wpos);
            conn.wpos = 0;
        }
        let want_out = !conn.wbuf.is_empty();
        if want_out != conn.want_out {
            conn.want_out = want_out;
            let ev = libc::EPOLLIN as u32 | if want_out { libc::EPOLLOUT as u32 } else { 0 };
            self.epoll.ctl(libc::EPOLL_CTL_MOD, conn.stream.as_raw_fd(), ev, c as u64)?;
        }
        Ok(())
    }

    fn flush_dirty(&mut self) -> Result<(), String> {
        while let Some(c) = self.dirty.pop() {
            self.flush(c)?;
        }
        Ok(())
    }

    /// Read what has arrived and account every complete reply; returns how
    /// many replies this connection got.
    fn read(&mut self, c: usize) -> Result<usize, String> {
        let now = self.now();
        let conn = &mut self.conns[c];
        let mut replies = 0;
        loop {
            if conn.rend == conn.rbuf.len() {
                if conn.rstart > 0 {
                    conn.rbuf.copy_within(conn.rstart..conn.rend, 0);
                    conn.rend -= conn.rstart;
                    conn.rstart = 0;
                } else {
                    // One reply larger than the buffer.
                    conn.rbuf.resize(conn.rbuf.len() * 2, 0);
                }
            }
            let space = conn.rbuf.len() - conn.rend;
            let n = match conn.stream.read(&mut conn.rbuf[conn.rend..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            };
            conn.rend += n;
            while let Some(r) = shardis::protocol::client::scan_reply(&conn.rbuf[conn.rstart..conn.rend])? {
                conn.rstart += r.len;
                let sent = conn.pending.pop_front().ok_or("a reply to a request never sent")?;
                let _ = self.hist.record((now.saturating_sub(sent) / 1000).max(1));
                self.errors += r.error as u64;
                replies += 1;
            }
            if conn.rstart == conn.rend {
                conn.rstart = 0;
                conn.rend = 0;
            }
            if n < space {
                // A short read drained the socket; skip the EAGAIN round trip.
                break;
            }
        }
        self.completed += replies as u64;
        if replies > 0 {
            self.last_reply = now;
        }
        Ok(replies)
    }

    fn outstanding(&self) -> bool {
        self.conns.iter().any(|c| !c.pending.is_empty())
    }

    /// Record the requests that never got a reply, at the latency reached.
    fn give_up(&mut self, now: u64) -> u64 {
        let mut n = 0;
        for c in &self.conns {
            for &sent in &c.pending {
                let _ = self.hist.record((now.saturating_sub(sent) / 1000).max(1));
                n += 1;
            }
        }
        n
    }

    pub fn run(mut self, plan: &Plan, work: &mut Workload) -> Result<Outcome, String> {
        let open = plan.rate > 0;
        let nconns = self.conns.len();
        // Start a little later so the first requests are not already late.
        let start = self.now() + 2_000_000;
        let end = start + plan.duration.as_nanos() as u64;
        let deadline = end + plan.drain.as_nanos() as u64;
        let interval = if open { 1e9 / plan.rate as f64 } else { 0.0 };
        let total = if open {
            ((plan.rate as f64 * plan.duration.as_secs_f64()).round() as u64).min(plan.max_requests)
        } else {
            plan.max_requests
        };
        let due = |i: u64| start + (i as f64 * interval) as u64;
        let mut send_lag = new_hist();
        let mut issued: u64 = 0;
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];

        if !open {
            while self.now() < start {
                std::hint::spin_loop();
            }
            let now = self.now();
            'fill: for _ in 0..plan.pipeline {
                for c in 0..nconns {
                    if issued == total {
                        break 'fill;
                    }
                    self.issue(c, now, work);
                    issued += 1;
                }
            }
            self.flush_dirty()?;
        }

        let mut unanswered = 0;
        loop {
            let now = self.now();
            if open {
                while issued < total && due(issued) <= now {
                    let at = due(issued);
                    let _ = send_lag.record(((now - at) / 1000).max(1));
                    self.issue((issued % nconns as u64) as usize, at, work);
                    issued += 1;
                }
                self.flush_dirty()?;
            }
            let sending = issued < total && now < end;
            if !sending && !self.outstanding() {
                break;
            }
            if now >= deadline {
                unanswered = self.give_up(now);
                break;
            }
            let timeout = if open && sending {
                Duration::from_nanos(due(issued).saturating_sub(now))
            } else {
                Duration::from_nanos(if sending { end - now } else { deadline - now })
            };
            let n = self.epoll.wait(&mut events, Some(timeout))?;
            for ev in &events[..n] {
                let (c, flags) = (ev.u64 as usize, ev.events);
                if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                    let got = self.read(c)?;
                    if !open {
                        // Refill this connection's pipeline, within bounds.
                        let now = self.last_reply;
                        for _ in 0..got {
                            if issued == total || now >= end {
                                break;
                            }
                            self.issue(c, now, work);
                            issued += 1;
                        }
                    }
                }
                if flags & libc::EPOLLOUT as u32 != 0 {
                    self.flush(c)?;
                }
            }
            self.flush_dirty()?;
        }
        let elapsed = Duration::from_nanos(self.last_reply.max(start + 1) - start);
        Ok(Outcome { hist: self.hist, send_lag, completed: self.completed, errors: self.errors, unanswered, elapsed })
    }
}

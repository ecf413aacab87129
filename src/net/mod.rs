//! The reactor: one io_uring ring per shard driving the listening socket
//! (multishot accept), every client socket (multishot recv into provided
//! buffers, sends), the cron timer, doorbells from other shards (MSG_RING)
//! and the AOF's writes and fdatasyncs. This is the only code that touches
//! sockets or the ring.
//!
//! The shard core (`shard::core::Shard`) performs no I/O: bytes arrive in
//! its connections' input buffers and it answers by filling their output
//! buffers and by asking, through `Shard::io`, for what only the reactor
//! can do (arm or pause a receive, send, close, write or sync the AOF, ring
//! another shard's doorbell). One loop turn: reap every completion and hand
//! it to the core, let the core run what became runnable and drain its
//! messages, then perform what it asked and enter the kernel once
//! (`submit_and_wait`). Pipelined requests therefore cost no syscall each.

pub mod accept;
pub mod bufring;
pub mod listener;
pub mod wait_policy;

use crate::config::Config;
use crate::shard::core::{AofIo, Shard};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

pub const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_TIMER: u64 = 4;
pub const OP_DOORBELL: u64 = 5;
pub const OP_MSGRING: u64 = 6;
pub const OP_AOF_WRITE: u64 = 7;
pub const OP_AOF_FSYNC: u64 = 8;
pub const OP_AOF_EXTEND: u64 = 9;
pub const OP_AOF_EXTEND_SYNC: u64 = 10;
pub const OP_AOF_ROTATE_SYNC: u64 = 11;

const RING_ENTRIES: u32 = 4096;
/// A receive's provided buffer `bid`: its `res` bytes go to the
/// connection's input (if it is still open) and the buffer back to the ring.
fn take_buffer(br: &mut bufring::BufRing, core: &mut Shard, (idx, gen): (u32, u32), res: i32, bid: u16) {
    if res > 0 {
        if let Some(c) = core.conn_mut(idx, gen).filter(|c| !c.closing) {
            c.rbuf.extend_from_slice(br.data(bid, res as usize));
        }
    }
    br.recycle(bid);
}

/// IORING_CQE_F_BUFFER: the completion names a provided buffer.
const CQE_F_BUFFER: u32 = 1;
/// Bytes asked of one plain (not multishot) receive.
const READ_CHUNK: usize = 16 * 1024;

#[inline]
fn ud(op: u64, idx: u32, gen: u32) -> u64 {
    op | ((idx as u64) << 8) | ((gen as u64) << 32)
}

#[inline]
fn ud_split(u: u64) -> (u64, u32, u32) {
    (u & 0xff, ((u >> 8) & 0xff_ffff) as u32, (u >> 32) as u32)
}

/// A client socket as the ring sees it (the core's `Conn` at the same
/// index holds the session and the buffers).
struct Sock {
    fd: RawFd,
    gen: u32,
    recv_inflight: bool,
    send_inflight: bool,
    /// A cancel of its multishot recv is in flight (paused for output).
    recv_cancel: bool,
    /// The core closed it: shut down, freed once nothing is in flight.
    closing: bool,
    /// Wait-policy window in which it last received data.
    wait_window: u32,
    /// Without a buffer ring: what a plain receive reads into, copied into
    /// the core's buffer when it completes (the core's buffer is never
    /// lent to the kernel).
    scratch: Vec<u8>,
}

pub struct Net {
    id: usize,
    ring: IoUring,
    /// Provided buffers for multishot recv; None = one recv per read.
    bufring: Option<bufring::BufRing>,
    listen_fd: RawFd,
    /// The listener's accept and its out-of-descriptors backoff.
    accept: accept::AcceptGate,
    timer_ts: Box<types::Timespec>,
    /// How many completions a turn waits for (see `wait_for_completions`).
    wait_policy: wait_policy::WaitPolicy,
    /// Sends submitted this turn.
    sends_this_turn: usize,
    socks: Vec<Option<Sock>>,
    cqes: Vec<(u64, i32, u32)>,
    /// What a busy script's hook serves (see `script::busy_io`).
    busy_io: std::rc::Rc<crate::script::busy_io::BusyIo>,
    /// The ring defers its task work to this thread (DEFER_TASKRUN): a
    /// busy script's hook may then serve the shard's connections.
    deferred: bool,
}

impl Net {
    /// The ring (with SINGLE_ISSUER + DEFER_TASKRUN + COOP_TASKRUN where the
    /// kernel has them), the listener and the buffer ring of shard `id`.
    /// Returns the ring's flags for INFO.
    pub fn new(id: usize, config: &Config) -> Result<(Net, &'static str), String> {
        let (ring, ring_flags) = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(RING_ENTRIES)
        {
            Ok(r) => (r, "single_issuer+defer_taskrun+coop_taskrun"),
            Err(e) => {
                crate::log(&format!(
                    "shard {}: io_uring without SINGLE_ISSUER/DEFER_TASKRUN ({}); using a plain ring",
                    id, e
                ));
                let r = IoUring::new(RING_ENTRIES)
                    .map_err(|e| format!("io_uring setup failed: {} (is io_uring enabled? RLIMIT_MEMLOCK?)", e))?;
                (r, "plain")
            }
        };
        let listen_fd = listener::make_listener(&config.bind, config.port)?;
        let bufring = match bufring::BufRing::new(&ring, 512, 8192) {
            Ok(b) => Some(b),
            Err(e) => {
                crate::log(&format!("shard {}: no provided-buffer ring ({}); using one recv per read", id, e));
                None
            }
        };
        let net = Net {
            id,
            ring,
            bufring,
            listen_fd,
            accept: Default::default(),
            timer_ts: Box::new(types::Timespec::new().nsec(1_000_000_000 / config.hz.max(1))),
            wait_policy: wait_policy::WaitPolicy::new(std::time::Instant::now(), config.batch_wait_us),
            sends_this_turn: 0,
            socks: Vec::new(),
            cqes: Vec::with_capacity(1024),
            busy_io: std::rc::Rc::new(crate::script::busy_io::BusyIo::new(
                id,
                listen_fd,
                ring_flags.contains("defer_taskrun"),
            )),
            deferred: ring_flags.contains("defer_taskrun"),
        };
        Ok((net, ring_flags))
    }

    /// This ring's descriptor, for other shards' MSG_RING doorbells.
    pub fn ring_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.ring.as_raw_fd()
    }

    fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an SQE points to (the core's connection
        // buffers, boxed and kept until `release`; scratch buffers; the
        // timer timespec; the AOF writer's buffers) lives until its
        // completion arrives.
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                // Queue full: hand what we have to the kernel and retry.
                let _ = self.ring.submit();
            }
        }
    }

    /// Before handling a batch: what its receives brought goes into the
    /// connections' input at once, so that a script run while the batch
    /// is handled finds every received byte there (a busy script's hook
    /// reads sockets directly: bytes the ring holds would come after).
    /// Without provided buffers such connections are left to the core.
    fn take_received(&mut self, core: &mut Shard, cqes: &mut [(u64, i32, u32)]) {
        let Some(br) = self.bufring.as_mut() else {
            self.busy_io.note_batch(cqes.iter().filter(|c| c.0 & 0xff == OP_RECV).map(|c| ud_split(c.0).1));
            return;
        };
        for (u, res, flags) in cqes.iter_mut() {
            let (op, idx, gen) = ud_split(*u);
            if op != OP_RECV {
                continue;
            }
            let Some(bid) = cqueue::buffer_select(*flags) else { continue };
            take_buffer(br, core, (idx, gen), *res, bid);
            // Taken: `on_recv` sees no buffer left to copy.
            *flags &= !CQE_F_BUFFER;
        }
    }

    /// Run shard `core` until it stops.
    pub fn run(&mut self, core: &mut Shard) -> Result<(), String> {
        // The start-up config reaches the keyspace (maxmemory) as CONFIG SET does.
        core.apply_config(&core.config.clone(), None)?;
        self.arm_accept(core);
        self.arm_timer();
        core.scripts.busy_io = Some(self.busy_io.clone());
        self.busy_io.set_shared(core.shared.clone());
        core.shared.ready.fetch_add(1, Ordering::SeqCst);
        loop {
            core.now = crate::util::now_ms();
            if self.busy_io.has_handover() {
                // Before anything the ring reads next.
                for pre in self.busy_io.take_handover() {
                    self.on_accept_with(core, pre.fd, Some(pre));
                }
                for (idx, gen) in self.busy_io.take_served() {
                    core.busy_served(idx, gen);
                }
            }
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.clear();
            cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            if self.deferred {
                self.take_received(core, &mut cqes);
            }
            for &(u, res, flags) in cqes.iter() {
                self.on_completion(core, u, res, flags);
            }
            core.turns += 1;
            core.completions += cqes.len() as u64;
            let idle = cqes.is_empty();
            self.cqes = cqes;
            core.run_turn();
            core.snapshot_step(idle);
            self.perform(core);
            if core.drain.active || core.stop_requested() {
                if !core.drain.active {
                    core.begin_drain();
                }
                if core.drain_finished() {
                    break;
                }
            }
            let waited = self.wait_for_completions(core);
            self.wait_policy.woke(std::time::Instant::now());
            match waited {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EINTR)
                        || e.raw_os_error() == Some(libc::EBUSY)
                        || e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) => return Err(format!("io_uring_enter: {}", e)),
            }
        }
        self.shutdown(core);
        Ok(())
    }

    /// Enter the kernel: submit this turn's SQEs and sleep until there is
    /// work. Under a high completion rate, ask for as many completions as
    /// arrive within the batch budget (the kernel's min-wait), so one enter
    /// and one wake-up serve many requests instead of one each; under light
    /// load this is a plain wait for one completion, adding no latency.
    fn wait_for_completions(&mut self, core: &Shard) -> std::io::Result<usize> {
        let sends = std::mem::take(&mut self.sends_this_turn);
        if !core.runnable.is_empty() {
            // Work is waiting in the core: do not sleep.
            return self.ring.submit();
        }
        // A rewrite's snapshot walks the keyspace between requests: come
        // back for its next step when it is due (at once when idle).
        if let Some(us) = core.snapshot_wait_us() {
            if us == 0 {
                return self.ring.submit();
            }
            let ts = types::Timespec::new().nsec(us * 1000);
            let args = types::SubmitArgs::new().timespec(&ts);
            return self.ring.submitter().submit_with_args(1, &args);
        }
        self.wait_policy.budget_us = core.config.batch_wait_us;
        let Some(want) = self.wait_policy.want(std::time::Instant::now(), sends) else {
            // Wake up for the earliest blocked-client deadline.
            if let Some(d) = core.next_block_deadline() {
                let ms = (d - crate::util::now_ms()).clamp(0, 60_000) as u64;
                let ts = types::Timespec::new().sec(ms / 1000).nsec(((ms % 1000) * 1_000_000) as u32);
                let args = types::SubmitArgs::new().timespec(&ts);
                return self.ring.submitter().submit_with_args(1, &args);
            }
            return self.ring.submit_and_wait(1);
        };
        // `min_wait_usec` returns once the budget is spent and at least one
        // completion is there; the timeout bounds it on kernels without it.
        let budget = self.wait_policy.wait_us();
        let ts = types::Timespec::new().nsec(budget * 1000);
        let args = types::SubmitArgs::new().min_wait_usec(budget).timespec(&ts);
        self.ring.submitter().submit_with_args(want, &args)
    }

    fn arm_timer(&mut self) {
        let e = opcode::Timeout::new(&*self.timer_ts as *const types::Timespec).build().user_data(OP_TIMER);
        self.push_sqe(e);
    }

    fn on_completion(&mut self, core: &mut Shard, u: u64, res: i32, flags: u32) {
        let (op, idx, gen) = ud_split(u);
        match op {
            OP_ACCEPT => self.on_accept_cqe(core, res, flags),
            OP_RECV => self.on_recv(core, idx, gen, res, flags),
            OP_SEND => self.on_send(core, idx, gen, res),
            OP_TIMER => {
                core.cron();
                self.accept_tick(core);
                self.arm_timer();
            }
            OP_DOORBELL => {}
            OP_AOF_WRITE..=OP_AOF_ROTATE_SYNC => core.on_aof_cqe(op, u >> 8, res),
            OP_MSGRING if res < 0 => {
                crate::log(&format!("shard {}: MSG_RING failed: {}", self.id, errno_str(res)));
            }
            _ => {}
        }
    }

    /// A client connected: the core decides whether to take it.
    fn on_accept(&mut self, core: &mut Shard, fd: RawFd) {
        self.on_accept_with(core, fd, None);
    }

    /// `on_accept`, or taking over a client a busy script's hook accepted
    /// (`pre`: what it sent, did and was answered).
    fn on_accept_with(&mut self, core: &mut Shard, fd: RawFd, pre: Option<Box<crate::shard::core::Conn>>) {
        let addr = listener::sockaddr_string(fd, true);
        let laddr = listener::sockaddr_string(fd, false);
        let (idx, gen) = match core.accept_client(fd, addr, laddr) {
            Ok(slot) => slot,
            Err(error) => return listener::refuse(fd, error),
        };
        listener::set_nodelay(fd);
        let i = idx as usize;
        if self.socks.len() <= i {
            self.socks.resize_with(i + 1, || None);
        }
        let scratch = if self.bufring.is_some() { Vec::new() } else { Vec::with_capacity(READ_CHUNK) };
        self.socks[i] = Some(Sock {
            fd,
            gen,
            recv_inflight: false,
            send_inflight: false,
            recv_cancel: false,
            closing: false,
            wait_window: 0,
            scratch,
        });
        if pre.is_some_and(|p| core.adopt_busy_client(idx, gen, p)) {
            core.on_input(idx);
        }
        self.arm_recv(core, idx);
    }

    fn sock(&mut self, idx: u32, gen: u32) -> Option<&mut Sock> {
        match self.socks.get_mut(idx as usize) {
            Some(Some(s)) if s.gen == gen => Some(s),
            _ => None,
        }
    }

    fn arm_recv(&mut self, core: &mut Shard, idx: u32) {
        let multishot = self.bufring.is_some();
        let Some(Some(s)) = self.socks.get_mut(idx as usize) else { return };
        let wants = core.conns.get(idx as usize).and_then(|c| c.as_ref()).is_some_and(|c| c.wants_input());
        if s.recv_inflight || s.closing || !wants {
            return;
        }
        s.recv_inflight = true;
        let user_data = ud(OP_RECV, idx, s.gen);
        if multishot {
            // Stays armed across many completions; the kernel picks buffers.
            let e = opcode::RecvMulti::new(types::Fd(s.fd), bufring::BGID).build().user_data(user_data);
            self.push_sqe(e);
            return;
        }
        // A big value still arriving: read up to what it needs at once.
        let need = core.conns.get(idx as usize).and_then(|c| c.as_ref()).map_or(0, |c| c.need);
        let want = READ_CHUNK.max(need.min(64 * 1024 * 1024)).min(u32::MAX as usize);
        s.scratch.clear();
        s.scratch.reserve(want);
        let ptr = s.scratch.as_mut_ptr();
        let e = opcode::Recv::new(types::Fd(s.fd), ptr, want as u32).build().user_data(user_data);
        self.push_sqe(e);
    }

    /// Stop a multishot recv while the connection's output is over
    /// OUTPUT_PAUSE (it would keep delivering); a finished send resumes
    /// it. A plain recv is simply not re-armed.
    fn pause_recv(&mut self, idx: u32) {
        if self.bufring.is_none() {
            return;
        }
        let Some(Some(s)) = self.socks.get_mut(idx as usize) else { return };
        if !s.recv_inflight || s.recv_cancel || s.closing {
            return;
        }
        s.recv_cancel = true;
        let target = ud(OP_RECV, idx, s.gen);
        self.push_sqe(opcode::AsyncCancel::new(target).build().user_data(0));
    }

    fn on_recv(&mut self, core: &mut Shard, idx: u32, gen: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        // Copy the bytes into the core's buffer and hand a provided buffer
        // back first, whatever happens to the connection.
        if let (Some(br), Some(bid)) = (self.bufring.as_mut(), cqueue::buffer_select(flags)) {
            take_buffer(br, core, (idx, gen), res, bid);
        }
        let plain = self.bufring.is_none();
        let s = match self.socks.get_mut(idx as usize) {
            Some(Some(s)) if s.gen == gen => s,
            _ => return,
        };
        if !more {
            s.recv_inflight = false;
        }
        if s.closing {
            return self.maybe_free(core, idx);
        }
        if res == -libc::ECANCELED && s.recv_cancel {
            // Our pause; resume if the output drained meanwhile.
            s.recv_cancel = false;
            if !more {
                core.resume(idx);
            }
            return;
        }
        if res <= 0 {
            if res == -libc::EINTR || res == -libc::EAGAIN || res == -libc::ENOBUFS {
                if !more {
                    self.arm_recv(core, idx);
                }
                return;
            }
            if res == 0 {
                core.on_eof(idx);
            } else {
                core.close(idx);
            }
            return;
        }
        let n = res as usize;
        self.wait_policy.on_recv(&mut s.wait_window);
        if plain {
            // SAFETY: the kernel wrote `n` bytes into the scratch's spare capacity.
            unsafe { s.scratch.set_len(n.min(s.scratch.capacity())) };
            if let Some(c) = core.conn_mut(idx, gen).filter(|c| !c.closing) {
                c.rbuf.extend_from_slice(&s.scratch);
            }
        }
        core.net_in += n as u64;
        core.on_input(idx);
        if !more {
            self.arm_recv(core, idx);
        }
    }

    /// Send what the connection has handed over (`Conn::sending`).
    fn start_send(&mut self, core: &mut Shard, idx: u32) {
        let Some(Some(s)) = self.socks.get_mut(idx as usize) else { return };
        let Some(Some(c)) = core.conns.get(idx as usize) else { return };
        if s.send_inflight || s.closing || c.sent >= c.sending.len() {
            return;
        }
        s.send_inflight = true;
        let e = send_rest(s, &c.sending[c.sent..], idx);
        self.sends_this_turn += 1;
        self.push_sqe(e);
    }

    fn on_send(&mut self, core: &mut Shard, idx: u32, gen: u32, res: i32) {
        let Some(s) = self.sock(idx, gen) else { return };
        s.send_inflight = false;
        if s.closing {
            return self.maybe_free(core, idx);
        }
        if res < 0 {
            if res == -libc::EINTR || res == -libc::EAGAIN {
                return self.start_send(core, idx);
            }
            return core.close(idx);
        }
        let recv_inflight = s.recv_inflight;
        let Some(c) = core.conn_mut(idx, gen) else { return };
        c.sent += res as usize;
        core.net_out += res as u64;
        if core.conn_mut(idx, gen).is_some_and(|c| c.sent < c.sending.len()) {
            return self.start_send(core, idx);
        }
        core.on_sent(idx);
        if !recv_inflight {
            // Output drained: a paused reader may continue.
            core.resume(idx);
        }
    }

    /// Do what the core asked for this turn.
    fn perform(&mut self, core: &mut Shard) {
        let mut io = std::mem::take(&mut core.io);
        for op in io.aof.drain(..) {
            self.push_aof(op);
        }
        for idx in io.close.drain(..) {
            self.close(core, idx);
        }
        for idx in io.send.drain(..) {
            self.start_send(core, idx);
        }
        for idx in io.pause.drain(..) {
            self.pause_recv(idx);
        }
        for idx in io.recv.drain(..) {
            self.arm_recv(core, idx);
        }
        // Doorbells last, so they ride this turn's single enter.
        for to in 0..io.doorbells.len() {
            if std::mem::take(&mut io.doorbells[to]) {
                let fd = core.shared.ring_fd(to);
                if fd >= 0 {
                    let e = opcode::MsgRingData::new(types::Fd(fd), 0, OP_DOORBELL, None)
                        .build()
                        .user_data(OP_MSGRING)
                        .flags(squeue::Flags::SKIP_SUCCESS);
                    self.push_sqe(e);
                }
            }
        }
        // Hand the (emptied) lists back to keep their capacity.
        core.io = io;
    }

    fn push_aof(&mut self, op: AofIo) {
        match op {
            AofIo::Write(w) => {
                let flags = if w.dsync { libc::RWF_DSYNC } else { 0 };
                let e = opcode::Write::new(types::Fd(w.fd), w.ptr, w.len)
                    .offset(w.offset)
                    .rw_flags(flags)
                    .build()
                    .user_data(OP_AOF_WRITE | (w.seq << 8));
                self.push_sqe(e);
            }
            AofIo::Fsync { fd, upto } => {
                let e = opcode::Fsync::new(types::Fd(fd))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(OP_AOF_FSYNC | (upto << 8));
                self.push_sqe(e);
            }
            AofIo::RotationSync { fd } => {
                // fsync, not fdatasync: for a directory it is what makes
                // the new name durable; for the old segment the same.
                let e = opcode::Fsync::new(types::Fd(fd)).build().user_data(OP_AOF_ROTATE_SYNC);
                self.push_sqe(e);
            }
            AofIo::Extend { fd, ptr, len, offset } => {
                // SAFETY (buffer lifetime): the writer keeps its zero buffer for good.
                let zeros = opcode::Write::new(types::Fd(fd), ptr, len).offset(offset).build().user_data(OP_AOF_EXTEND);
                self.push_sqe(zeros.flags(squeue::Flags::IO_LINK));
                let sync = opcode::Fsync::new(types::Fd(fd))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(OP_AOF_EXTEND_SYNC);
                self.push_sqe(sync);
            }
        }
    }

    /// The core closed connection `idx`: shut the socket down so pending
    /// operations complete promptly, and free it once none is left.
    fn close(&mut self, core: &mut Shard, idx: u32) {
        let Some(Some(s)) = self.socks.get_mut(idx as usize) else { return };
        if s.closing {
            return;
        }
        s.closing = true;
        // SAFETY: shutting down a socket we own.
        unsafe {
            libc::shutdown(s.fd, libc::SHUT_RDWR);
        }
        self.maybe_free(core, idx);
    }

    fn maybe_free(&mut self, core: &mut Shard, idx: u32) {
        let Some(Some(s)) = self.socks.get(idx as usize) else { return };
        if s.recv_inflight || s.send_inflight {
            return;
        }
        // SAFETY: no operation refers to this fd or its buffers any more.
        unsafe {
            libc::close(s.fd);
        }
        self.socks[idx as usize] = None;
        core.release(idx);
        self.accept_fd_freed(core);
    }

    fn shutdown(&mut self, core: &mut Shard) {
        core.close_all();
        self.perform(core);
        // Let in-flight AOF writes finish, then write and sync the rest.
        while core.aof.as_ref().is_some_and(|w| w.busy()) {
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
            for (u, res) in cqes {
                let op = u & 0xff;
                if (OP_AOF_WRITE..=OP_AOF_ROTATE_SYNC).contains(&op) {
                    core.on_aof_cqe(op, u >> 8, res);
                }
            }
        }
        core.aof_shutdown();
        // SAFETY: closing our own listening socket.
        unsafe {
            libc::close(self.listen_fd);
        }
    }
}

fn errno_str(ret: i32) -> String {
    std::io::Error::from_raw_os_error(-ret).to_string()
}

/// A backlog of reply bytes larger than `SEND_WHOLE` goes out in
/// `SEND_CHUNK` pieces. A pipeline of big replies (16 LRANGE_100 of 256 B
/// values is 420 KB) sent in one call sat in the receiver's socket queue
/// long enough to go cold in the cache: the client spent twice the system
/// time copying it out, and LRANGE_100 -P 16 ran at 85–89k/s against
/// 104–118k/s in 64 KiB pieces (Redis also writes at most 64 KiB per client
/// per turn). One reply of up to 256 KiB still goes in one send: splitting
/// LRANGE_300/600 at -P 1 cost 7–10% more server CPU per request.
const SEND_CHUNK: usize = 64 * 1024;
const SEND_WHOLE: usize = 256 * 1024;

/// A send of `rest`, the connection's not-yet-sent reply bytes. The buffer
/// stays put until the completion arrives (the core only touches
/// `sending` again after `on_sent`).
fn send_rest(s: &Sock, rest: &[u8], idx: u32) -> squeue::Entry {
    let n = if rest.len() > SEND_WHOLE { SEND_CHUNK } else { rest.len() };
    opcode::Send::new(types::Fd(s.fd), rest.as_ptr(), n as u32).build().user_data(ud(OP_SEND, idx, s.gen))
}

/// Doorbells outside a loop turn (a shard about to block): a small ring of
/// its own carries the MSG_RINGs, so the core needs no access to the
/// reactor's ring.
pub fn ring_doorbells_now(shared: &crate::shard::Shared, targets: &[bool]) {
    // One small ring per calling thread, kept: a replica's link thread
    // rings for every transaction it hands over, and setting up a ring
    // (two mmaps and a syscall) per ring was a good part of its time.
    thread_local! {
        static RING: std::cell::RefCell<Option<IoUring>> = const { std::cell::RefCell::new(None) };
    }
    RING.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = IoUring::new(8).ok();
        }
        if let Some(ring) = cell.as_mut() {
            ring_with(ring, shared, targets);
        }
    })
}

fn ring_with(ring: &mut IoUring, shared: &crate::shard::Shared, targets: &[bool]) {
    for (to, _) in targets.iter().enumerate().filter(|(_, &t)| t) {
        let fd = shared.ring_fd(to);
        if fd < 0 {
            continue;
        }
        let e = opcode::MsgRingData::new(types::Fd(fd), 0, OP_DOORBELL, None).build().user_data(OP_MSGRING);
        // SAFETY: the entry refers to no memory of ours.
        unsafe {
            if ring.submission().push(&e).is_err() {
                let _ = ring.submit_and_wait(1);
                ring.completion().for_each(drop);
                let _ = ring.submission().push(&e);
            }
        }
    }
    let n = ring.submission().len();
    let _ = ring.submit_and_wait(n);
    // Reap what completed so the kept ring's queue never fills.
    ring.completion().for_each(drop);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for (op, idx, gen) in [(OP_RECV, 0, 1), (OP_SEND, 0xff_ffff, u32::MAX), (OP_AOF_FSYNC, 5, 7)] {
            assert_eq!(ud_split(ud(op, idx, gen)), (op, idx, gen));
        }
    }
}

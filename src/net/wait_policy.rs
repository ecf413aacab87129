//! How long a shard's loop sleeps in the kernel. Each `io_uring_enter`
//! plus the wake-up after it costs about as much as a small request, so
//! when CPU is scarce the loop asks the kernel for a batch of completions
//! (with a bounded min-wait) instead of waking for each one. Waiting adds
//! latency, so it is used only as much as the loop's busy share calls
//! for (pure logic, no I/O):
//!
//! - The loop measures its busy share: time awake over each 2 ms window.
//! - The wait grows (doubling from `STEP_US`, up to `batch-wait-us`)
//!   while the busy share is above `HIGH`, and halves down to nothing
//!   while it is below `LOW`. Below saturation the loop has idle CPU to
//!   spend and never waits; near it, the wait settles at the smallest
//!   that keeps the loop under `HIGH`.
//! - The batch asked for is what can actually arrive within the wait:
//!   bounded by the recent receive rate and by how many connections are
//!   active, so a single client or a few slow ones never wait.
//!
//! Before (a fixed 200 µs wait whenever the rate could fill a batch): with
//! ~50 busy request/response clients this cut the server's CPU per request
//! by about 15%, but held the median latency at 40-80% of saturation near
//! the budget (benches/RESULTS.md). `batch-wait-us 0` turns it off.

use std::time::{Duration, Instant};

/// Default longest extra wait for a batch, in µs (`batch-wait-us`).
pub const DEFAULT_BUDGET_US: u32 = 200;
const WINDOW: Duration = Duration::from_millis(2);
/// Below this many expected receives per wait, batching is not worth it.
const MIN_BATCH: usize = 4;
/// Busy share of the loop above which the wait grows, below which it shrinks.
const HIGH: f64 = 0.90;
const LOW: f64 = 0.75;
/// The smallest wait, µs: the first step up from none.
const STEP_US: u32 = 10;

pub struct WaitPolicy {
    /// Longest extra wait for a batch, µs; 0 = never batch.
    pub budget_us: u32,
    window_start: Instant,
    window_id: u32,
    recvs: u64,
    active: u32,
    /// Time awake in this window, and when the loop last woke.
    busy: Duration,
    woke: Instant,
    /// From the last full window.
    recv_per_us: f64,
    active_conns: u32,
    /// The wait in use now, µs (adapted per window, ≤ budget_us).
    wait_us: u32,
}

impl WaitPolicy {
    pub fn new(now: Instant, budget_us: u32) -> Self {
        WaitPolicy {
            budget_us,
            window_start: now,
            window_id: 1,
            recvs: 0,
            active: 0,
            busy: Duration::ZERO,
            woke: now,
            recv_per_us: 0.0,
            active_conns: 0,
            wait_us: 0,
        }
    }

    /// A receive completion with data for a connection whose window stamp
    /// is `conn_window` (updated here to count distinct active connections).
    #[inline]
    pub fn on_recv(&mut self, conn_window: &mut u32) {
        self.recvs += 1;
        if *conn_window != self.window_id {
            *conn_window = self.window_id;
            self.active += 1;
        }
    }

    /// The loop came back from the kernel.
    #[inline]
    pub fn woke(&mut self, now: Instant) {
        self.woke = now;
    }

    /// The wait to ask the kernel for with `want`'s batch, µs.
    pub fn wait_us(&self) -> u32 {
        self.wait_us
    }

    /// The loop is about to sleep: how many completions to wait for (None:
    /// just wait for one). `sends` is the number of sends submitted this
    /// turn: they complete on their own and must not be mistaken for
    /// incoming work.
    pub fn want(&mut self, now: Instant, sends: usize) -> Option<usize> {
        self.busy += now.saturating_duration_since(self.woke);
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= WINDOW {
            let us = elapsed.as_micros().max(1) as f64;
            self.recv_per_us = self.recvs as f64 / us;
            self.active_conns = self.active;
            self.adapt(self.busy.as_micros() as f64 / us);
            self.recvs = 0;
            self.active = 0;
            self.busy = Duration::ZERO;
            self.window_id = self.window_id.wrapping_add(1).max(1);
            self.window_start = now;
        }
        if self.wait_us == 0 {
            return None;
        }
        // At most one request per active connection can be in flight
        // toward us for request/response clients; expect half of them.
        let by_rate = (self.recv_per_us * self.wait_us as f64) as usize;
        let by_conns = (self.active_conns / 2) as usize;
        let recvs = by_rate.min(by_conns).min(64);
        if recvs < MIN_BATCH {
            return None;
        }
        Some(sends + recvs)
    }

    /// A window ended with the loop awake `busy` of the time.
    fn adapt(&mut self, busy: f64) {
        if busy > HIGH {
            self.wait_us = (self.wait_us * 2).max(STEP_US);
        } else if busy < LOW {
            self.wait_us /= 2;
            if self.wait_us < STEP_US {
                self.wait_us = 0;
            }
        }
        self.wait_us = self.wait_us.min(self.budget_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One 2 ms window: `conns` connections each sending `per_conn`
    /// requests, the loop awake `busy` of the time; then what it asks for.
    fn window(p: &mut WaitPolicy, t: &mut Instant, conns: u32, per_conn: u32, busy: f64) -> Option<usize> {
        let mut stamps = vec![0u32; conns as usize];
        for _ in 0..per_conn {
            for s in stamps.iter_mut() {
                p.on_recv(s);
            }
        }
        // Asleep for the first (1 - busy) of the window, then awake.
        p.woke(*t + WINDOW.mul_f64(1.0 - busy));
        *t += WINDOW;
        p.want(*t, 0)
    }

    fn windows(p: &mut WaitPolicy, t: &mut Instant, n: usize, conns: u32, per_conn: u32, busy: f64) -> Option<usize> {
        let mut last = None;
        for _ in 0..n {
            last = window(p, t, conns, per_conn, busy);
        }
        last
    }

    #[test]
    fn one_client_never_waits_for_a_batch() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 1 client at a high rate, the loop fully busy.
        assert_eq!(windows(&mut p, &mut t, 10, 1, 60, 1.0), None);
    }

    #[test]
    fn few_clients_never_wait_for_a_batch() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        assert_eq!(windows(&mut p, &mut t, 10, 4, 50, 1.0), None);
    }

    #[test]
    fn many_clients_below_saturation_do_not_wait() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 50 clients, 100k req/s, the loop awake 60% of the time.
        assert_eq!(windows(&mut p, &mut t, 20, 50, 4, 0.6), None);
        assert_eq!(p.wait_us(), 0);
    }

    #[test]
    fn many_clients_near_saturation_batch() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 50 clients, 100k req/s, the loop awake all the time.
        let w = windows(&mut p, &mut t, 6, 50, 4, 1.0).expect("batching");
        assert!((MIN_BATCH..=25).contains(&w), "{w}");
        assert!(p.wait_us() > 0 && p.wait_us() <= DEFAULT_BUDGET_US);
    }

    #[test]
    fn the_wait_grows_only_to_the_budget_and_shrinks_to_none() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, 50);
        windows(&mut p, &mut t, 30, 50, 10, 1.0);
        assert_eq!(p.wait_us(), 50);
        // Between LOW and HIGH it holds.
        windows(&mut p, &mut t, 5, 50, 10, 0.8);
        assert_eq!(p.wait_us(), 50);
        windows(&mut p, &mut t, 10, 50, 10, 0.3);
        assert_eq!(p.wait_us(), 0);
        assert_eq!(window(&mut p, &mut t, 50, 10, 0.3), None);
    }

    #[test]
    fn zero_budget_disables_batching() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, 0);
        assert_eq!(windows(&mut p, &mut t, 10, 50, 4, 1.0), None);
    }

    #[test]
    fn many_slow_clients_do_not_batch() {
        let mut t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 50 clients but only 3 requests a window, the loop busy anyway.
        let mut stamps = vec![0u32; 3];
        let mut last = Some(0);
        for _ in 0..10 {
            for s in stamps.iter_mut() {
                p.on_recv(s);
            }
            p.woke(t);
            t += WINDOW;
            last = p.want(t, 0);
        }
        assert_eq!(last, None);
    }
}

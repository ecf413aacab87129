//! How long a shard's loop sleeps in the kernel. Each `io_uring_enter`
//! plus the wake-up after it costs about as much as a small request, so
//! under heavy concurrent load the loop asks the kernel for a batch of
//! completions (with a bounded min-wait) instead of waking for each one.
//! The batch size is what can actually arrive within the budget: bounded by
//! the recent receive rate and by how many connections are active, so a
//! single client or a few slow ones never wait (pure logic, no I/O).
//!
//! The trade: with ~50 busy request/response clients this cut the server's
//! CPU per request by about 15% and raised median latency by up to the
//! budget (benches/RESULTS.md); `batch-wait-us 0` turns it off.

use std::time::{Duration, Instant};

/// Default longest extra wait for a batch, in µs (`batch-wait-us`).
pub const DEFAULT_BUDGET_US: u32 = 200;
const WINDOW: Duration = Duration::from_millis(2);
/// Below this many expected receives per wait, batching is not worth it.
const MIN_BATCH: usize = 8;

pub struct WaitPolicy {
    /// Longest extra wait for a batch, µs; 0 = never batch.
    pub budget_us: u32,
    window_start: Instant,
    window_id: u32,
    recvs: u64,
    active: u32,
    /// From the last full window.
    recv_per_us: f64,
    active_conns: u32,
}

impl WaitPolicy {
    pub fn new(now: Instant, budget_us: u32) -> Self {
        WaitPolicy {
            budget_us,
            window_start: now,
            window_id: 1,
            recvs: 0,
            active: 0,
            recv_per_us: 0.0,
            active_conns: 0,
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

    /// How many completions to wait for (None: just wait for one). `sends`
    /// is the number of sends submitted this turn: they complete on their
    /// own and must not be mistaken for incoming work.
    pub fn want(&mut self, now: Instant, sends: usize) -> Option<usize> {
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= WINDOW {
            self.recv_per_us = self.recvs as f64 / elapsed.as_micros().max(1) as f64;
            self.active_conns = self.active;
            self.recvs = 0;
            self.active = 0;
            self.window_id = self.window_id.wrapping_add(1).max(1);
            self.window_start = now;
        }
        // At most one request per active connection can be in flight
        // toward us for request/response clients; expect half of them.
        if self.budget_us == 0 {
            return None;
        }
        let by_rate = (self.recv_per_us * self.budget_us as f64) as usize;
        let by_conns = (self.active_conns / 2) as usize;
        let recvs = by_rate.min(by_conns).min(64);
        if recvs < MIN_BATCH {
            return None;
        }
        Some(sends + recvs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &mut WaitPolicy, start: Instant, conns: u32, recvs_per_conn: u32) -> Option<usize> {
        let mut stamps = vec![0u32; conns as usize];
        for _ in 0..recvs_per_conn {
            for s in stamps.iter_mut() {
                policy.on_recv(s);
            }
        }
        policy.want(start + WINDOW, 0)
    }

    #[test]
    fn one_client_never_waits_for_a_batch() {
        let t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 1 client at a high rate: 60 requests in 2 ms.
        assert_eq!(run(&mut p, t, 1, 60), None);
    }

    #[test]
    fn few_clients_never_wait_for_a_batch() {
        let t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        assert_eq!(run(&mut p, t, 4, 50), None);
    }

    #[test]
    fn many_busy_clients_batch() {
        let t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 50 clients, 4 requests each in 2 ms = 100k req/s.
        let w = run(&mut p, t, 50, 4).expect("batching");
        assert!((MIN_BATCH..=25).contains(&w), "{w}");
    }

    #[test]
    fn zero_budget_disables_batching() {
        let t = Instant::now();
        let mut p = WaitPolicy::new(t, 0);
        assert_eq!(run(&mut p, t, 50, 4), None);
    }

    #[test]
    fn many_slow_clients_do_not_batch() {
        let t = Instant::now();
        let mut p = WaitPolicy::new(t, DEFAULT_BUDGET_US);
        // 50 clients but only 3 requests in the whole window.
        let mut stamps = vec![0u32; 3];
        for s in stamps.iter_mut() {
            p.on_recv(s);
        }
        assert_eq!(p.want(t + WINDOW, 0), None);
    }
}

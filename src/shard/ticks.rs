//! The clock that times each command for INFO commandstats/latencystats.
//!
//! Two `clock_gettime` calls per command were 5–6% of a shard's CPU under
//! -P 16 load (55 cycles each here, against 24 for RDTSC). Commands are
//! timed in TSC ticks where the TSC is invariant (constant rate, not stopped
//! in idle states) and converted to nanoseconds only when INFO reports them;
//! elsewhere ticks are nanoseconds from `Instant`.

use std::sync::OnceLock;
use std::time::Instant;

struct Calibration {
    /// Whether `now()` reads the TSC.
    tsc: bool,
    /// A (TSC, Instant) pair taken at calibration, for the long-run rate.
    start: (u64, Instant),
    /// Ticks per nanosecond measured over a short spin at calibration.
    spin_rate: f64,
}

static CAL: OnceLock<Calibration> = OnceLock::new();

#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    // CPUID leaf 0x8000_0007, EDX bit 8: invariant TSC.
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn read_tsc() -> u64 {
    0
}

fn calibration() -> &'static Calibration {
    CAL.get_or_init(|| {
        let t0 = Instant::now();
        let tsc = invariant_tsc();
        if !tsc {
            return Calibration { tsc, start: (0, t0), spin_rate: 1.0 };
        }
        let c0 = read_tsc();
        // 2 ms is enough for a rate good to a fraction of a percent; the
        // start pair refines it as the server runs.
        while t0.elapsed().as_micros() < 2000 {
            std::hint::spin_loop();
        }
        let spin_rate = (read_tsc() - c0) as f64 / t0.elapsed().as_nanos().max(1) as f64;
        Calibration { tsc, start: (c0, t0), spin_rate: if spin_rate > 0.0 { spin_rate } else { 1.0 } }
    })
}

/// Measure the tick rate now (once per process), so the first command
/// does not pay for it. Call before the shards start.
pub fn calibrate() {
    calibration();
}

/// The current tick count.
#[inline]
pub fn now() -> u64 {
    let c = calibration();
    if c.tsc {
        read_tsc()
    } else {
        c.start.1.elapsed().as_nanos() as u64
    }
}

/// Ticks per nanosecond.
fn rate() -> f64 {
    let c = calibration();
    if !c.tsc {
        return 1.0;
    }
    let ns = c.start.1.elapsed().as_nanos();
    // After a second of uptime the long-run rate is the better one.
    if ns >= 1_000_000_000 {
        let ticks = read_tsc().wrapping_sub(c.start.0) as f64;
        let r = ticks / ns as f64;
        if r > 0.0 {
            return r;
        }
    }
    c.spin_rate
}

/// Nanoseconds in `ticks`.
pub fn to_ns(ticks: u64) -> u64 {
    (ticks as f64 / rate()) as u64
}

/// Ticks in `us` microseconds (thresholds compared against raw ticks).
pub fn from_us(us: u64) -> u64 {
    (us as f64 * 1000.0 * rate()) as u64
}

/// Microseconds in `ticks`, fractional (histogram percentiles).
pub fn to_us(ticks: u64) -> f64 {
    ticks as f64 / rate() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_elapsed_time() {
        calibrate();
        let (t, i) = (now(), Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (ticks, real) = (now() - t, i.elapsed().as_nanos() as f64);
        let ns = to_ns(ticks) as f64;
        // Generous: the two clocks are read a few instructions apart, and
        // a loaded machine can preempt between them.
        assert!((ns - real).abs() < real * 0.1 + 200_000.0, "ticks say {ns} ns, Instant says {real} ns");
        assert!((to_us(ticks) * 1000.0 - ns).abs() < 1000.0);
    }
}

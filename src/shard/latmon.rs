//! The latency monitor (Redis's `latency-monitor-threshold`): per event
//! name, the latest 160 seconds that had a spike at or above the threshold
//! (the worst of each second) and the worst ever. Each shard keeps its own;
//! LATENCY merges them (`merge`), and the reports are pure functions of the
//! merged series.

use std::collections::BTreeMap;

/// Samples an event keeps, as Redis's LATENCY_TS_LEN.
pub const SERIES_LEN: usize = 160;

/// One event's spikes: (unix second, ms), oldest first, one per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub samples: Vec<(i64, u64)>,
    pub max: u64,
}

impl Series {
    fn add(&mut self, sec: i64, ms: u64) {
        let ms = ms.min(u32::MAX as u64);
        self.max = self.max.max(ms);
        match self.samples.last_mut() {
            Some(last) if last.0 == sec => last.1 = last.1.max(ms),
            _ => {
                if self.samples.len() == SERIES_LEN {
                    self.samples.remove(0);
                }
                self.samples.push((sec, ms));
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// ms; 0 = off.
    pub threshold: u64,
    pub events: BTreeMap<&'static str, Series>,
}

impl LatencyMonitor {
    /// Record `event` if it took `ms` and the monitor is on and that is
    /// at least the threshold.
    #[inline]
    pub fn note(&mut self, event: &'static str, ms: u64, now_ms: i64) {
        if self.threshold > 0 && ms >= self.threshold {
            self.events.entry(event).or_default().add(now_ms / 1000, ms);
        }
    }

    /// Forget `names` (every event if empty); how many this shard had.
    pub fn reset(&mut self, names: &[String]) -> usize {
        if names.is_empty() {
            let n = self.events.len();
            self.events.clear();
            return n;
        }
        names.iter().filter(|n| self.events.remove(n.as_str()).is_some()).count()
    }
}

/// Spikes measured off the shards' threads (the AOF rewrite's install of
/// its new bases, Redis's `aof-rename`): (event, ms, unix ms), waiting for
/// shard 0's cron to record them against its threshold.
static BACKGROUND: std::sync::Mutex<Vec<(&'static str, u64, i64)>> = std::sync::Mutex::new(Vec::new());

/// Record a background step's duration (kept only if over the threshold
/// when shard 0 picks it up; at most a few are waiting at once).
pub fn note_background(event: &'static str, took: std::time::Duration) {
    let mut q = BACKGROUND.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() < 64 {
        q.push((event, took.as_millis() as u64, crate::util::now_ms()));
    }
}

/// The background spikes noted since the last call.
pub fn take_background() -> Vec<(&'static str, u64, i64)> {
    std::mem::take(&mut *BACKGROUND.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Every shard's series merged by event: the worst of each second, the
/// latest `SERIES_LEN` seconds, the worst ever.
pub fn merge(all: impl IntoIterator<Item = BTreeMap<&'static str, Series>>) -> BTreeMap<&'static str, Series> {
    let mut out: BTreeMap<&'static str, Series> = BTreeMap::new();
    for events in all {
        for (name, s) in events {
            let m = out.entry(name).or_default();
            m.max = m.max.max(s.max);
            m.samples.extend(s.samples);
        }
    }
    for s in out.values_mut() {
        s.samples.sort_unstable();
        let mut merged: Vec<(i64, u64)> = Vec::with_capacity(s.samples.len());
        for &(t, ms) in &s.samples {
            match merged.last_mut() {
                Some(last) if last.0 == t => last.1 = last.1.max(ms),
                _ => merged.push((t, ms)),
            }
        }
        let skip = merged.len().saturating_sub(SERIES_LEN);
        s.samples = merged.split_off(skip);
    }
    out
}

/// LATENCY GRAPH's text: a header, and Redis's sparkline of the samples
/// (4 rows, filled), each column labelled with how long ago it was.
pub fn graph(event: &str, s: &Series, now_sec: i64) -> String {
    const COLS: usize = 80;
    const ROWS: usize = 4;
    const FILL: &[u8] = b"_o#";
    let min = s.samples.iter().map(|x| x.1).min().unwrap_or(0);
    let max = s.samples.iter().map(|x| x.1).max().unwrap_or(0);
    let mut out = format!("{event} - high {max} ms, low {min} ms (all time high {} ms)\n", s.max);
    out.push_str(&"-".repeat(COLS));
    out.push('\n');
    let labels: Vec<String> = s
        .samples
        .iter()
        .map(|&(t, _)| {
            let ago = (now_sec - t).max(0);
            match ago {
                a if a < 60 => format!("{a}s"),
                a if a < 3600 => format!("{}m", a / 60),
                a if a < 86400 => format!("{}h", a / 3600),
                a => format!("{}d", a / 86400),
            }
        })
        .collect();
    let span = (max - min) as f64;
    let span = if span == 0.0 { 1.0 } else { span };
    let steps = (FILL.len() * ROWS) as i64;
    for (chunk_i, chunk) in s.samples.chunks(COLS).enumerate() {
        if chunk_i > 0 {
            out.push('\n');
        }
        let first = chunk_i * COLS;
        let step_of = |v: u64| (((v - min) as f64 * steps as f64 / span) as i64).clamp(0, steps - 1);
        for row in 0..ROWS {
            let line: String = chunk
                .iter()
                .map(|&(_, v)| {
                    let idx = step_of(v) - ((ROWS - row - 1) * FILL.len()) as i64;
                    if idx >= FILL.len() as i64 {
                        '|'
                    } else if idx >= 0 {
                        FILL[idx as usize] as char
                    } else {
                        ' '
                    }
                })
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
        // One blank row, then the labels top to bottom.
        let tallest = labels[first..first + chunk.len()].iter().map(|l| l.len()).max().unwrap_or(0);
        if tallest > 0 {
            out.push_str(&" ".repeat(chunk.len()));
            out.push('\n');
        }
        for r in 0..tallest {
            let line: String = labels[first..first + chunk.len()]
                .iter()
                .map(|l| l.as_bytes().get(r).map_or(' ', |&b| b as char))
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// What LATENCY DOCTOR's advice depends on besides the events.
pub struct DoctorConfig {
    pub threshold: u64,
    pub slowlog_slower_than: i64,
    pub hz: u32,
    pub fsync_always: bool,
}

/// LATENCY DOCTOR's report, with Redis 7.0's texts.
pub fn doctor(events: &BTreeMap<&'static str, Series>, cfg: &DoctorConfig, now_sec: i64) -> String {
    if cfg.threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    #[derive(Default)]
    struct Advice {
        slowlog_enabled: bool,
        slowlog_tuning: bool,
        slowlog_inspect: bool,
        large_objects: bool,
        scheduler: bool,
        local_disk: bool,
        ssd: bool,
        data_writeback: bool,
        relax_fsync: bool,
        write_load_info: bool,
        hz: bool,
        count: usize,
    }
    let mut a = Advice::default();
    let mut out = String::new();
    for (n, (event, s)) in events.iter().enumerate() {
        if n == 0 {
            out.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let count = s.samples.len() as u64;
        let avg = s.samples.iter().map(|x| x.1).sum::<u64>() / count.max(1);
        let mad = s.samples.iter().map(|x| x.1.abs_diff(avg)).sum::<u64>() / count.max(1);
        let first = s.samples.first().map_or(now_sec, |x| x.0);
        let period = (now_sec - first).max(1) as f64;
        out.push_str(&format!(
            "{}. {event}: {count} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            period / count.max(1) as f64,
            s.max
        ));
        match *event {
            "command" => {
                if cfg.slowlog_slower_than < 0 {
                    a.slowlog_enabled = true;
                    a.count += 1;
                } else if cfg.slowlog_slower_than / 1000 > cfg.threshold as i64 {
                    a.slowlog_tuning = true;
                    a.count += 1;
                }
                a.slowlog_inspect = true;
                a.large_objects = true;
                a.count += 2;
            }
            "fast-command" => {
                a.scheduler = true;
                a.count += 1;
            }
            "aof-write" => {
                a.local_disk = true;
                a.data_writeback = true;
                a.ssd = true;
                a.count += 3;
            }
            "aof-fsync-always" => {
                a.relax_fsync = true;
                a.count += 1;
            }
            "aof-rename" => {
                a.write_load_info = true;
                a.data_writeback = true;
                a.ssd = true;
                a.local_disk = true;
                a.count += 4;
            }
            "expire-cycle" => {
                a.hz = true;
                a.large_objects = true;
                a.count += 2;
            }
            "eviction-cycle" => {
                a.large_objects = true;
                a.count += 1;
            }
            _ => {}
        }
        out.push('\n');
    }
    if events.is_empty() && a.count == 0 {
        out.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return out;
    }
    if a.count == 0 {
        out.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return out;
    }
    out.push_str("\nI have a few advices for you:\n\n");
    let us = cfg.threshold * 1000;
    if a.slowlog_enabled {
        out.push_str(&format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {us}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n"));
    }
    if a.slowlog_tuning {
        out.push_str(&format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {us}'.\n"));
    }
    if a.slowlog_inspect {
        out.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if a.scheduler {
        out.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if a.local_disk {
        out.push_str("- It is strongly advised to use local disks for persistence, especially if you are using AOF. Remote disks provided by platform-as-a-service providers are known to be slow.\n");
    }
    if a.ssd {
        out.push_str("- SSD disks are able to reduce fsync latency, and total time needed for snapshotting and AOF log rewriting (resulting in smaller memory usage). With extremely high write load SSD disks can be a good option. However Redis should perform reasonably with high load using normal disks. Use this advice as a last resort.\n");
    }
    if a.data_writeback {
        out.push_str("- Mounting ext3/4 filesystems with data=writeback can provide a performance boost compared to data=ordered, however this mode of operation provides less guarantees, and sometimes it can happen that after a hard crash the AOF file will have a half-written command at the end and will require to be repaired before Redis restarts.\n");
    }
    if a.relax_fsync && cfg.fsync_always {
        out.push_str("- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n");
    }
    if a.write_load_info {
        out.push_str("- Latency during the AOF atomic rename operation or when the final difference is flushed to the AOF file at the end of the rewrite, sometimes is caused by very high write load, causing the AOF buffer to get very large. If possible try to send less commands to accomplish the same work, or use Lua scripts to group multiple operations into a single EVALSHA call.\n");
    }
    if a.hz && cfg.hz < 100 {
        out.push_str("- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n");
    }
    if a.large_objects {
        out.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_the_worst() {
        let mut m = LatencyMonitor { threshold: 5, ..Default::default() };
        m.note("command", 4, 1000);
        m.note("command", 7, 1500);
        m.note("command", 9, 1900);
        m.note("command", 6, 2100);
        assert_eq!(m.events["command"].samples, vec![(1, 9), (2, 6)]);
        assert_eq!(m.events["command"].max, 9);
        let other = BTreeMap::from([("command", Series { samples: vec![(2, 8), (3, 1)], max: 8 })]);
        let merged = merge([std::mem::take(&mut m.events), other]);
        assert_eq!(merged["command"].samples, vec![(1, 9), (2, 8), (3, 1)]);
    }

    #[test]
    fn graph_as_redis_draws_it() {
        let s = Series { samples: vec![(100, 10), (101, 50), (102, 20)], max: 50 };
        let g = graph("command", &s, 102);
        assert_eq!(
            g,
            format!(
                "command - high 50 ms, low 10 ms (all time high 50 ms)\n{}\n # \n | \n |_\n_||\n   \n210\nsss\n",
                "-".repeat(80)
            )
        );
    }
}

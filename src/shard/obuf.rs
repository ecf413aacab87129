//! Client output buffer limits, as Redis's `client-output-buffer-limit`:
//! per class of client (normal, replica, pubsub) a hard limit and a soft
//! limit with seconds. A client whose unsent replies reach the hard limit,
//! or stay over the soft limit for longer than the seconds, is closed: a
//! subscriber that never reads must not grow the server until the machine
//! runs out of memory. 0 disables a limit. Pure: the shard measures, this
//! decides.

/// One class's limits, in bytes and seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Normal,
    Replica,
    Pubsub,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub normal: ClassLimit,
    pub replica: ClassLimit,
    pub pubsub: ClassLimit,
}

/// Redis's defaults: `normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60`.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            normal: ClassLimit::default(),
            replica: ClassLimit { hard: 256 << 20, soft: 64 << 20, soft_secs: 60 },
            pubsub: ClassLimit { hard: 32 << 20, soft: 8 << 20, soft_secs: 60 },
        }
    }
}

impl Limits {
    /// `self` with the classes named in `text` replaced: groups of
    /// `<class> <hard> <soft> <soft seconds>` (CONFIG SET's syntax; sizes
    /// as `32mb`, `1gb`, ... or bytes). Nothing changes on an error.
    pub fn updated(&self, text: &str) -> Result<Limits, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut next = *self;
        for g in words.chunks(4) {
            let slot = match g[0].to_ascii_lowercase().as_str() {
                "normal" => &mut next.normal,
                "replica" | "slave" => &mut next.replica,
                "pubsub" => &mut next.pubsub,
                _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
            };
            let size = |v: &str| crate::config::parse_memory(v).ok().and_then(|n| u64::try_from(n).ok());
            let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string();
            *slot = ClassLimit {
                hard: size(g[1]).ok_or_else(bad)?,
                soft: size(g[2]).ok_or_else(bad)?,
                soft_secs: g[3].parse().map_err(|_| bad())?,
            };
        }
        Ok(next)
    }

    /// Parse a whole setting (classes not named keep Redis's defaults).
    pub fn parse(text: &str) -> Result<Limits, String> {
        Limits::default().updated(text)
    }

    pub fn get(&self, class: Class) -> ClassLimit {
        match class {
            Class::Normal => self.normal,
            Class::Replica => self.replica,
            Class::Pubsub => self.pubsub,
        }
    }
}

/// As CONFIG GET shows it (Redis 7 says `slave` for the replica class).
impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        for (name, l) in [("normal", self.normal), ("slave", self.replica), ("pubsub", self.pubsub)] {
            write!(f, "{sep}{name} {} {} {}", l.hard, l.soft, l.soft_secs)?;
            sep = " ";
        }
        Ok(())
    }
}

impl ClassLimit {
    /// A client with `used` bytes of unsent output at `now_ms`: over its
    /// limit? `soft_since` is when it went over the soft limit (0: it is
    /// not over), kept by the caller between checks.
    pub fn exceeded(&self, used: u64, now_ms: i64, soft_since: &mut i64) -> bool {
        if self.hard > 0 && used >= self.hard {
            return true;
        }
        if self.soft == 0 || used < self.soft {
            *soft_since = 0;
            return false;
        }
        if *soft_since == 0 {
            *soft_since = now_ms;
            return false;
        }
        now_ms - *soft_since > (self.soft_secs as i64).saturating_mul(1000)
    }
}

/// The largest value seen over the last few seconds (INFO's
/// `client_recent_max_output_buffer`): one maximum per second, in a ring.
#[derive(Default)]
pub struct RecentMax {
    slots: [u64; RECENT_SECS],
    /// The second each slot belongs to.
    secs: [i64; RECENT_SECS],
}

/// Seconds `RecentMax` remembers (Redis keeps 8).
const RECENT_SECS: usize = 8;

impl RecentMax {
    #[inline]
    pub fn note(&mut self, v: u64, now_ms: i64) {
        let sec = now_ms.div_euclid(1000);
        let i = sec.rem_euclid(RECENT_SECS as i64) as usize;
        if self.secs[i] != sec {
            self.secs[i] = sec;
            self.slots[i] = 0;
        }
        self.slots[i] = self.slots[i].max(v);
    }

    pub fn get(&self, now_ms: i64) -> u64 {
        let sec = now_ms.div_euclid(1000);
        (0..RECENT_SECS).filter(|&i| sec - self.secs[i] < RECENT_SECS as i64).map(|i| self.slots[i]).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_syntax_in_and_out() {
        let d = Limits::default();
        assert_eq!(d.to_string(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        let l = d.updated("pubsub 1mb 512kb 5 Replica 0 0 0").expect("valid");
        assert_eq!(l.pubsub, ClassLimit { hard: 1 << 20, soft: 512 << 10, soft_secs: 5 });
        assert_eq!(l.replica, ClassLimit::default());
        assert_eq!(l.normal, d.normal);
        assert_eq!(Limits::parse(&l.to_string()), Ok(l));
        assert!(d.updated("pubsub 1mb 512kb").is_err());
        assert!(d.updated("master 1 1 1").is_err());
        assert!(d.updated("pubsub -1 0 0").is_err());
        assert!(d.updated("pubsub 1x 0 0").is_err());
    }

    #[test]
    fn hard_at_once_soft_after_its_seconds() {
        let l = ClassLimit { hard: 100, soft: 50, soft_secs: 2 };
        let mut since = 0;
        assert!(!l.exceeded(49, 1_000, &mut since));
        assert!(l.exceeded(100, 1_000, &mut since));
        assert!(!l.exceeded(60, 1_000, &mut since), "first time over soft starts the clock");
        assert_eq!(since, 1_000);
        assert!(!l.exceeded(60, 3_000, &mut since), "exactly the seconds is still allowed");
        assert!(l.exceeded(60, 3_001, &mut since));
        assert!(!l.exceeded(10, 3_002, &mut since));
        assert_eq!(since, 0, "under soft again resets the clock");
        let off = ClassLimit::default();
        assert!(!off.exceeded(u64::MAX, 0, &mut since));
    }

    #[test]
    fn recent_max_forgets_after_its_window() {
        let mut m = RecentMax::default();
        m.note(500, 10_000);
        m.note(20, 11_000);
        assert_eq!(m.get(11_500), 500);
        assert_eq!(m.get(17_999), 500);
        assert_eq!(m.get(18_000), 20, "the 500 was 8 s ago");
        assert_eq!(m.get(19_000), 0);
    }
}

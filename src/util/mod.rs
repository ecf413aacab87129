//! Small pure helpers shared by the parser and the commands: number
//! parsing as Redis does it (`num`), the x87 long double arithmetic of
//! INCRBYFLOAT (`longdouble`), double formatting, glob matching, the
//! cluster hash slot, clocks.

pub mod longdouble;
pub mod num;

/// string2ll and string2ld's reader: the two nearly every command uses.
pub use num::{parse_f64, parse_i64};

/// Format a double for a reply the way Redis 7.0 does (`%.17g`), with
/// `inf`/`-inf` spelled as Redis spells them.
pub fn fmt_double_reply(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    fmt_g17(d)
}

/// Whether `%.17g` prints `d` as a plain integer: integral and below
/// 1e17 (so at most 17 digits, no exponent), and not -0. Integral scores
/// are the common case, and the general path below cost ZPOPMIN a sixth of
/// its CPU (exact 17-digit formatting falls back to bignum arithmetic).
pub fn g17_is_integer(d: f64) -> bool {
    d.fract() == 0.0 && d.abs() < 1e17 && !(d == 0.0 && d.is_sign_negative())
}

/// C's `%.17g`.
pub fn fmt_g17(d: f64) -> String {
    if g17_is_integer(d) {
        return (d as i64).to_string();
    }
    if d == 0.0 {
        return "-0".into();
    }
    let exp = d.abs().log10().floor() as i32;
    // %g uses scientific notation when exp < -4 or exp >= precision.
    let sci = format!("{:.16e}", d);
    let (mant, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let e: i32 = e.parse().unwrap_or(exp);
    if !(-4..17).contains(&e) {
        let mant = trim_zeros(mant);
        format!("{}e{}{:02}", mant, if e < 0 { '-' } else { '+' }, e.abs())
    } else {
        let decimals = (16 - e).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Glob-style matching with Redis's rules: `*`, `?`, `[...]` with ranges,
/// `^` negation and `\` escapes (an escape inside brackets compares case
/// sensitively even with `nocase`, as Redis's does), and `\` escapes
/// outside. `nocase` folds ASCII case. As in Redis, an empty string matches
/// only the empty pattern (callers treat a lone `*` as "everything" first).
///
/// Every token but `*` consumes exactly one byte, so only the last `*` seen
/// ever needs to take more bytes: on a mismatch the match restarts just
/// after that star with the star eating one more byte, and an earlier star
/// never needs revisiting (whatever it could take, the later star can take
/// too). That bounds the work by pattern × string length; the recursive
/// matcher this replaces was exponential in the number of stars
/// (`a*a*…*b` against a run of `a`s hung a shard, cf. CVE-2022-36021).
/// splitmix64: advance `state` and return the next value. The seeded
/// generator of the load generator and of the monitor's election (whose
/// simulation needs every run of one seed to be the same).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    glob_match_steps(pattern, string, nocase, &mut 0)
}

/// `glob_match`, adding the work done to `steps` (tests bound it).
fn glob_match_steps(p: &[u8], s: &[u8], nocase: bool, steps: &mut u64) -> bool {
    if s.is_empty() {
        return p.is_empty();
    }
    let (mut pi, mut si) = (0, 0);
    // Restart point: pattern index after the last star run, and the string
    // index where the star's share currently ends.
    let mut restart: Option<(usize, usize)> = None;
    while si < s.len() {
        *steps += 1;
        if p.get(pi) == Some(&b'*') {
            while p.get(pi) == Some(&b'*') {
                pi += 1;
            }
            if pi == p.len() {
                return true;
            }
            restart = Some((pi, si));
            continue;
        }
        if pi < p.len() {
            let (hit, len) = glob_token(&p[pi..], s[si], nocase);
            *steps += len as u64;
            if hit {
                pi += len;
                si += 1;
                continue;
            }
        }
        let Some((rp, rs)) = restart else { return false };
        restart = Some((rp, rs + 1));
        (pi, si) = (rp, rs + 1);
    }
    // The string is used up: only stars may be left. (Giving an earlier
    // star more bytes cannot help: what is left needs at least one.)
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Does the single-byte token at the start of `p` (not `*`) match `c`, and
/// how many pattern bytes is it? A `[` class left open runs to the end.
fn glob_token(p: &[u8], c: u8, nocase: bool) -> (bool, usize) {
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    match p[0] {
        b'?' => (true, 1),
        b'\\' if p.len() >= 2 => (eq(p[1], c), 2),
        b'[' => {
            let negate = p.get(1) == Some(&b'^');
            let mut i = if negate { 2 } else { 1 };
            let mut hit = false;
            while i < p.len() {
                match p[i] {
                    b'\\' if i + 1 < p.len() => {
                        hit |= p[i + 1] == c;
                        i += 2;
                    }
                    b']' => {
                        i += 1;
                        return (hit != negate, i);
                    }
                    lo if i + 2 < p.len() && p[i + 1] == b'-' => {
                        let (mut lo, mut hi) = (lo.min(p[i + 2]), lo.max(p[i + 2]));
                        let mut c = c;
                        if nocase {
                            (lo, hi, c) = (lo.to_ascii_lowercase(), hi.to_ascii_lowercase(), c.to_ascii_lowercase());
                        }
                        hit |= lo <= c && c <= hi;
                        i += 3;
                    }
                    b => {
                        hit |= eq(b, c);
                        i += 1;
                    }
                }
            }
            (hit != negate, p.len())
        }
        b => (eq(b, c), 1),
    }
}

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for hash slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

pub const SLOTS: u16 = 16384;

/// The Redis Cluster hash slot of a key, honouring `{hash tags}`.
pub fn key_slot(key: &[u8]) -> u16 {
    let mut part = key;
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                part = &key[open + 1..open + 1 + len];
            }
        }
    }
    crc16(part) & (SLOTS - 1)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_millis() as i64
}

pub fn now_us() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_micros() as i64
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) for log lines.
pub fn fmt_utc_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        y,
        m,
        d,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// Background work (AOF rewrite) runs at the lowest priority so that a
/// shard sharing its core preempts it at once. `SHARDIS_REWRITE_SCHED=idle`
/// uses SCHED_IDLE instead (starves under full load), `normal` leaves it
/// alone: both only for measurements.
pub fn lower_thread_priority() {
    let how = std::env::var("SHARDIS_REWRITE_SCHED").unwrap_or_default();
    if how == "normal" {
        return;
    }
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        if how == "idle" {
            let p = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
        } else {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(fmt_utc_ms(0), "1970-01-01 00:00:00.000");
        assert_eq!(fmt_utc_ms(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(fmt_utc_ms(951_782_400_000), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values from the Redis Cluster specification / CLUSTER KEYSLOT.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}x"), crc16(b"{}x") & 16383);
    }

    #[test]
    fn globbing() {
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        // Redis matches an empty string only with the empty pattern.
        assert!(!glob_match(b"*", b"", false));
        assert!(glob_match(b"", b"", false));
        assert!(glob_match(b"a\\*", b"a*", false));
        assert!(!glob_match(b"a\\*", b"ab", false));
        assert!(glob_match(b"KEY:*", b"key:1", true));
    }

    /// The recursive matcher glob_match replaced, kept as the reference
    /// for its semantics on small inputs (exponential on star bombs), with
    /// two corrections to Redis's behaviour: an empty string matches only
    /// the empty pattern, and an escape inside brackets ignores `nocase`.
    /// Counts its steps so the step bound can be shown to catch it.
    fn reference(p: &[u8], s: &[u8], nocase: bool, steps: &mut u64) -> bool {
        if s.is_empty() {
            return p.is_empty();
        }
        reference_inner(p, s, nocase, steps)
    }

    fn reference_inner(mut p: &[u8], mut s: &[u8], nocase: bool, steps: &mut u64) -> bool {
        let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
        while !p.is_empty() {
            *steps += 1;
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    return (0..=s.len()).any(|i| reference_inner(&p[1..], &s[i..], nocase, steps));
                }
                b'?' => {
                    if s.is_empty() {
                        return false;
                    }
                    s = &s[1..];
                }
                b'[' => {
                    if s.is_empty() {
                        return false;
                    }
                    p = &p[1..];
                    let not = !p.is_empty() && p[0] == b'^';
                    if not {
                        p = &p[1..];
                    }
                    let mut matched = false;
                    while !p.is_empty() {
                        if p[0] == b'\\' && p.len() >= 2 {
                            p = &p[1..];
                            matched |= p[0] == s[0];
                        } else if p[0] == b']' {
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            let (mut lo, mut hi) = (p[0].min(p[2]), p[0].max(p[2]));
                            let mut c = s[0];
                            if nocase {
                                (lo, hi, c) =
                                    (lo.to_ascii_lowercase(), hi.to_ascii_lowercase(), c.to_ascii_lowercase());
                            }
                            matched |= c >= lo && c <= hi;
                            p = &p[2..];
                        } else {
                            matched |= eq(p[0], s[0]);
                        }
                        p = &p[1..];
                    }
                    if matched == not {
                        return false;
                    }
                    s = &s[1..];
                    if p.is_empty() {
                        return s.is_empty();
                    }
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if s.is_empty() || !eq(p[0], s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if s.is_empty() || !eq(c, s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while !p.is_empty() && p[0] == b'*' {
                    p = &p[1..];
                }
                return p.is_empty();
            }
        }
        s.is_empty()
    }

    /// The work glob_match may do: a few steps per (pattern, string) byte pair.
    fn step_bound(p: &[u8], s: &[u8]) -> u64 {
        4 * (p.len() as u64 + 1) * (s.len() as u64 + 1)
    }

    fn steps_of(p: &[u8], s: &[u8]) -> (bool, u64) {
        let mut steps = 0;
        let hit = glob_match_steps(p, s, false, &mut steps);
        (hit, steps)
    }

    #[test]
    fn redis_quirks() {
        // Inside brackets an escaped byte compares exactly, even with nocase
        // (CONFIG GET '*[\Y]' finds nothing on Redis 7; '*[\y]' does).
        assert!(!glob_match(b"*[\\Y]", b"replica-priority", true));
        assert!(glob_match(b"*[\\y]", b"replica-priority", true));
        assert!(glob_match(b"maxmemor[Y]", b"maxmemory", true));
        assert!(glob_match(b"\\M*ory", b"maxmemory", true));
        // Reversed ranges, unterminated classes, a trailing backslash.
        assert!(glob_match(b"h[z-a]llo", b"hello", false));
        assert!(glob_match(b"a[bc", b"ac", false));
        assert!(!glob_match(b"a[bc", b"acx", false));
        assert!(glob_match(b"a[^", b"ax", false));
        assert!(glob_match(b"a\\", b"a\\", false));
        assert!(glob_match(b"*\\", b"xx\\", false));
        assert!(!glob_match(b"[", b"[", false));
    }

    #[test]
    fn star_bomb_is_polynomial() {
        // The pattern: 20 stars against 40 a's.
        let pattern = [&b"a*".repeat(20)[..], b"b"].concat();
        let key = b"a".repeat(40);
        let (hit, steps) = steps_of(&pattern, &key);
        assert!(!hit);
        assert!(steps <= step_bound(&pattern, &key), "{steps} steps");
        assert!(glob_match(&pattern, &[&key[..], b"b"].concat(), false));
    }

    #[test]
    fn the_step_bound_catches_backtracking() {
        // The bound is tight enough to fail the recursive matcher: this
        // smaller bomb already costs it far more.
        let pattern = [&b"a*".repeat(8)[..], b"b"].concat();
        let key = b"a".repeat(30);
        let mut steps = 0;
        assert!(!reference(&pattern, &key, false, &mut steps));
        assert!(steps > 100 * step_bound(&pattern, &key), "{steps} steps");
    }

    fn bytes_of(alphabet: &'static [u8], max: usize) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn same_as_the_reference(
            p in bytes_of(b"aAbB*?[]^-\\z", 12),
            s in bytes_of(b"aAbB-\\]^z", 10),
            nocase in proptest::bool::ANY,
        ) {
            let mut ref_steps = 0;
            let want = reference(&p, &s, nocase, &mut ref_steps);
            proptest::prop_assert_eq!(glob_match(&p, &s, nocase), want, "{:?} vs {:?}",
                String::from_utf8_lossy(&p), String::from_utf8_lossy(&s));
        }

        #[test]
        fn stars_finish_within_the_bound(
            p in bytes_of(b"a*a*a*?b", 40),
            s in bytes_of(b"aaaaaaab", 80),
        ) {
            let (_, steps) = steps_of(&p, &s);
            proptest::prop_assert!(steps <= step_bound(&p, &s), "{} steps for {:?} vs {:?}", steps,
                String::from_utf8_lossy(&p), String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn g17() {
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(1e20), "1e+20");
        assert_eq!(fmt_g17(3.0), "3");
        // The integer fast path and its edges, as glibc's %.17g prints them.
        assert_eq!(fmt_g17(-5.0), "-5");
        assert_eq!(fmt_g17(-0.0), "-0");
        assert_eq!(fmt_g17(0.0), "0");
        assert_eq!(fmt_g17(99999999999999984.0), "99999999999999984");
        assert_eq!(fmt_g17(-99999999999999984.0), "-99999999999999984");
        assert_eq!(fmt_g17(1e17), "1e+17");
        assert_eq!(fmt_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(fmt_g17(9007199254740993.0), "9007199254740992");
    }
}

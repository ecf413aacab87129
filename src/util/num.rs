//! Numbers from strings, read the way Redis reads them.
//!
//! Redis has several readers, and they do not accept the same strings: a
//! score must be the whole argument with no leading space, a range end may
//! have leading spaces and stops at a NUL, SORT takes hex floats and refuses
//! subnormals, INCRBYFLOAT works in 80-bit long doubles. Clients see the
//! differences (an error or not, which error), so each reader here mimics
//! one of Redis's, named in its doc, and they share one grammar scanner
//! (`scan_literal`: C's strtod grammar, optionally with hex floats) and the
//! range checks (`huge_or_zero`, `erange`). The tests pin what each accepts
//! and where they differ.
//!
//! | reader | Redis | used by | hex | leading space | stops at NUL | "" | overflow | underflow |
//! |---|---|---|---|---|---|---|---|---|
//! | `parse_f64` | string2ld (on a double) | blocking timeouts, DEBUG SLEEP | no¹ | refused | no | refused | ±inf | 0 |
//! | `parse_double` | getDoubleFromObject | scores, weights, GEO numbers | no¹ | refused | no | refused | refused | refused if 0 |
//! | `parse_range_double` | zslParseRange (strtod) | ZRANGEBYSCORE & co. min/max | no¹ | skipped | yes | 0 | ±inf | 0 |
//! | `parse_sort_double` | sortCommand (strtod, errno) | SORT's numeric keys | yes | skipped | yes | 0 | refused | refused below the normals |
//! | `longdouble::parse` | string2ld | INCRBYFLOAT, HINCRBYFLOAT | yes | refused | no | refused | refused (80-bit range) | refused if 0 |
//!
//! ¹ Redis's strtod/strtold take hex floats there too; shardis does not
//! (yet): changing it is a behaviour change, to be made with a test.
//!
//! Integers: `parse_i64` (string2ll, the strict form almost every command
//! uses), `parse_u64_strtoull` (string2ull: stream ids) and
//! `parse_scan_cursor` (SCAN's strtoul).

/// C's `isspace` in the "C" locale (Rust's `is_ascii_whitespace` lacks
/// the vertical tab).
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// An argument as a C string function sees it: up to its first NUL.
pub fn c_str(s: &[u8]) -> &[u8] {
    s.iter().position(|&b| b == 0).map_or(s, |i| &s[..i])
}

/// An optional leading sign: (negative, the rest).
fn split_sign(s: &[u8]) -> (bool, &[u8]) {
    match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

// ---- integers -------------------------------------------------------------

/// All of `digits` as a decimal u64 (every byte a digit); None on overflow.
#[inline]
fn decimal_u64(digits: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Redis's string2ll: optional '-', digits only, no leading zeros (except
/// "0"), no '+', no spaces, within i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let v = decimal_u64(digits)?;
    if neg {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some(-(v as i128) as i64)
    } else {
        if v > i64::MAX as u64 {
            return None;
        }
        Some(v as i64)
    }
}

/// What strtoull reads when it must take all of `s`: an optional sign and
/// at least one decimal digit; '-' negates modulo 2^64; None on overflow.
fn strtoull_digits(s: &[u8]) -> Option<u64> {
    let (neg, digits) = split_sign(s);
    if digits.is_empty() {
        return None;
    }
    let v = decimal_u64(digits)?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis's string2ull (stream ids): a canonical integer, refused if
/// negative, or else whatever C's strtoull accepts in full (leading
/// blanks, a sign, leading zeros; "-1" is refused but " -1" wraps).
pub fn parse_u64_strtoull(s: &[u8]) -> Option<u64> {
    if s.contains(&0) {
        return None;
    }
    if let Some(v) = parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    let start = s.iter().position(|&b| !is_c_space(b))?;
    strtoull_digits(&s[start..])
}

/// A SCAN cursor as Redis's parseScanCursorOrReply reads it (strtoul with
/// a leading space refused): optional sign, decimal digits, no spaces; ""
/// is 0 and "-n" wraps as unsigned.
pub fn parse_scan_cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        // strtoul consumed nothing, and nothing was there.
        return Some(0);
    }
    strtoull_digits(s)
}

// ---- floating point ---------------------------------------------------------

/// The shape of a number `scan_literal` accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Form {
    /// `inf` or `infinity`, any case.
    Inf,
    Decimal,
    /// `0x` hex digits, optional '.', optional binary exponent `p`.
    Hex,
}

/// A number in C's strtod grammar, as `scan_literal` found it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Literal {
    pub neg: bool,
    pub form: Form,
    /// The mantissa has a non-zero digit (always for `Inf`): a zero value
    /// from it is an underflow, which strtod reports as ERANGE.
    pub nonzero: bool,
}

/// Whether all of `s` is one number in C strtod's grammar, and which: an
/// optional sign, then `inf`/`infinity` (any case), or decimal digits with
/// an optional '.' (at least one digit) and an optional `e` exponent, or,
/// when `hex`, `0x` with hex digits, '.' and an optional `p` exponent.
/// Nothing else may follow or precede (no spaces). NaN is left out: every
/// reader refuses it.
pub fn scan_literal(s: &[u8], hex: bool) -> Option<Literal> {
    let (neg, body) = split_sign(s);
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Literal { neg, form: Form::Inf, nonzero: true });
    }
    let is_hex = hex && body.len() > 2 && body[0] == b'0' && (body[1] == b'x' || body[1] == b'X');
    let (form, body, marker) = if is_hex { (Form::Hex, &body[2..], b'p') } else { (Form::Decimal, body, b'e') };
    let is_digit = |c: u8| if is_hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() };
    let (mut i, mut digits, mut nonzero, mut seen_dot) = (0, 0, false, false);
    while i < body.len() {
        let c = body[i];
        if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if is_digit(c) {
            digits += 1;
            nonzero |= c != b'0';
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < body.len() {
        if body[i].to_ascii_lowercase() != marker {
            return None;
        }
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if i == body.len() || !body[i..].iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(Literal { neg, form, nonzero })
}

/// The double nearest to `s`, a literal `scan_literal` accepted as `lit`:
/// overflow gives ±inf and underflow 0 or a subnormal, as strtod returns
/// them (the readers decide whether that is an error).
pub fn literal_value(s: &[u8], lit: &Literal) -> Option<f64> {
    let v = match lit.form {
        Form::Inf => f64::INFINITY,
        // Rust's grammar for decimals is strtod's (sign included), and
        // its result is correctly rounded, as glibc's is.
        Form::Decimal => return std::str::from_utf8(s).ok()?.parse().ok(),
        Form::Hex => hex_value(&split_sign(s).1[2..]),
    };
    Some(if lit.neg { -v } else { v })
}

/// The value of hex digits with optional '.' and `p` exponent (after the
/// `0x`, already checked by `scan_literal`).
fn hex_value(s: &[u8]) -> f64 {
    let (mut mant, mut exp, mut i) = (0u64, 0i64, 0);
    let mut seen_dot = false;
    while i < s.len() {
        let b = s[i];
        if b == b'.' {
            seen_dot = true;
        } else if let Some(d) = (b as char).to_digit(16) {
            // Keep 60 bits of mantissa; further digits only scale.
            if mant >> 56 == 0 {
                mant = mant * 16 + d as u64;
                if seen_dot {
                    exp -= 4;
                }
            } else if !seen_dot {
                exp += 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if i < s.len() {
        // `p`, an optional sign, digits (clamped: far beyond any double).
        let (eneg, digits) = split_sign(&s[i + 1..]);
        let e = digits.iter().fold(0i64, |e, &c| (e * 10 + (c - b'0') as i64).min(1 << 20));
        exp += if eneg { -e } else { e };
    }
    (mant as f64) * 2f64.powi(exp.clamp(-1 << 20, 1 << 20) as i32)
}

/// strtod's ERANGE as Redis tests it after getDoubleFromObject and
/// string2ld (`value == HUGE_VAL || fpclassify(value) == FP_ZERO`):
/// overflow to ±inf, or underflow all the way to zero.
fn huge_or_zero(v: f64, lit: &Literal) -> bool {
    (v.is_infinite() && lit.form != Form::Inf) || (v == 0.0 && lit.nonzero)
}

/// strtod's ERANGE as glibc sets it, for a caller that tests errno alone
/// (SORT): overflow, or any result below the smallest normal double.
fn erange(v: f64, lit: &Literal) -> bool {
    (v.is_infinite() && lit.form != Form::Inf) || (lit.nonzero && v.abs() < f64::MIN_POSITIVE)
}

/// string2ld's checks on a double, for getLongDoubleFromObject's callers
/// (blocking timeouts, DEBUG SLEEP): all of `s` one number, no spaces,
/// NaN refused; overflow is ±inf and underflow 0 (the caller checks the
/// range). Decimal only.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    literal_value(s, &scan_literal(s, false)?)
}

/// Redis's getDoubleFromObject (scores, weights, GEO coordinates and
/// radii): all of `s` one number, no leading space, no NaN, and no
/// overflow to ±inf or underflow to 0. Decimal only.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    let lit = scan_literal(s, false)?;
    let v = literal_value(s, &lit)?;
    (!huge_or_zero(v, &lit)).then_some(v)
}

/// The C string of `s` with leading spaces skipped, for strtod callers
/// that check only that the rest was consumed: None when it is all
/// spaces (strtod converts nothing), "" when it is empty (then the value
/// is 0, as strtod's end pointer already sits on the NUL).
fn c_number(s: &[u8]) -> Option<&[u8]> {
    let s = c_str(s);
    if s.is_empty() {
        return Some(s);
    }
    let start = s.iter().position(|&b| !is_c_space(b))?;
    Some(&s[start..])
}

/// A score range end as Redis's zslParseRange reads it with strtod (after
/// any `(`): the C string, leading spaces allowed, "" is 0; NaN refused,
/// overflow and underflow accepted. Decimal only.
pub fn parse_range_double(s: &[u8]) -> Option<f64> {
    let s = c_number(s)?;
    if s.is_empty() {
        return Some(0.0);
    }
    literal_value(s, &scan_literal(s, false)?)
}

/// C's strtod applied to a whole string, as SORT scores elements: the C
/// string, leading spaces allowed, decimal or hex, "" is 0; refused when
/// the value is NaN or out of range (overflow, or underflow past the
/// normal doubles, where glibc sets ERANGE).
pub fn parse_sort_double(s: &[u8]) -> Option<f64> {
    let s = c_number(s)?;
    if s.is_empty() {
        return Some(0.0);
    }
    let lit = scan_literal(s, true)?;
    let v = literal_value(s, &lit)?;
    (!erange(v, &lit)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"123"), Some(123));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"012"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"1\0"), None);
    }

    #[test]
    fn lenient_unsigned_integers() {
        // (input, string2ull, SCAN cursor)
        let cases: &[(&[u8], Option<u64>, Option<u64>)] = &[
            (b"5", Some(5), Some(5)),
            (b"18446744073709551615", Some(u64::MAX), Some(u64::MAX)),
            (b"18446744073709551616", None, None),
            (b"007", Some(7), Some(7)),
            (b"+7", Some(7), Some(7)),
            // string2ll takes "-1" first, and refuses it as negative.
            (b"-1", None, Some(u64::MAX)),
            (b" -1", Some(u64::MAX), None),
            (b"\t 8", Some(8), None),
            (b"8 ", None, None),
            (b"", None, Some(0)),
            (b" ", None, None),
            (b"-", None, None),
            (b"1\0", None, None),
            (b"1x", None, None),
        ];
        for &(s, ull, cursor) in cases {
            let show = String::from_utf8_lossy(s);
            assert_eq!(parse_u64_strtoull(s), ull, "string2ull {show:?}");
            assert_eq!(parse_scan_cursor(s), cursor, "cursor {show:?}");
        }
    }

    #[test]
    fn the_grammar() {
        let dec = |s: &[u8]| scan_literal(s, false).map(|l| (l.neg, l.form, l.nonzero));
        assert_eq!(dec(b"-1.5e3"), Some((true, Form::Decimal, true)));
        assert_eq!(dec(b"+0.000e-7"), Some((false, Form::Decimal, false)));
        assert_eq!(dec(b"-INFinity"), Some((true, Form::Inf, true)));
        assert_eq!(dec(b"0x10"), None);
        assert_eq!(scan_literal(b"0X1.8P1", true).map(|l| l.form), Some(Form::Hex));
        assert_eq!(scan_literal(b"0x0.0p9", true).map(|l| l.nonzero), Some(false));
        for bad in
            [&b""[..], b"-", b".", b"e5", b"1e", b"1e+", b"1e1.5", b"1.2.3", b"1_0", b"nan", b"infin", b" 1", b"1 "]
        {
            assert_eq!(dec(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        for bad in [&b"0x"[..], b"0x.", b"0xp1", b"0x1p", b"0x1e+1", b"0x1g"] {
            assert_eq!(scan_literal(bad, true), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// Every double reader on the same inputs, side by side: the columns
    /// are parse_f64, parse_double, parse_range_double, parse_sort_double.
    #[test]
    fn double_readers_side_by_side() {
        const INF: f64 = f64::INFINITY;
        type Row = (&'static [u8], [Option<f64>; 4]);
        let same = |v: Option<f64>| [v; 4];
        let rows: Vec<Row> = vec![
            (b"1.5", same(Some(1.5))),
            (b"-1.5e2", same(Some(-150.0))),
            (b"+1", same(Some(1.0))),
            (b".5", same(Some(0.5))),
            (b"5.", same(Some(5.0))),
            (b"00012.5000", same(Some(12.5))),
            (b"inf", same(Some(INF))),
            (b"+INF", same(Some(INF))),
            (b"-Infinity", same(Some(-INF))),
            (b"infinit", same(None)),
            (b"nan", same(None)),
            (b"-nan", same(None)),
            (b"1e", same(None)),
            (b".", same(None)),
            (b"-", same(None)),
            (b"abc", same(None)),
            (b"1 ", same(None)),
            (b" ", same(None)),
            // "" is 0 to the C-string readers (nothing to convert, at the end).
            (b"", [None, None, Some(0.0), Some(0.0)]),
            // Leading white space (C's isspace, with \v): skipped by strtod.
            (b"  12", [None, None, Some(12.0), Some(12.0)]),
            (b"\x0b1", [None, None, Some(1.0), Some(1.0)]),
            // A NUL ends a C string.
            (b"7\0junk", [None, None, Some(7.0), Some(7.0)]),
            // Hex floats: only SORT's reader.
            (b"0x10", [None, None, None, Some(16.0)]),
            (b"0x1p3", [None, None, None, Some(8.0)]),
            (b"0x.8", [None, None, None, Some(0.5)]),
            (b"0x", same(None)),
            // Overflow: inf to the range readers, an error to the others.
            (b"1e400", [Some(INF), None, Some(INF), None]),
            (b"-1e400", [Some(-INF), None, Some(-INF), None]),
            // Underflow to zero: only the ERANGE-checking readers refuse it.
            (b"1e-400", [Some(0.0), None, Some(0.0), None]),
            (b"0e-400", same(Some(0.0))),
            // A subnormal: only SORT (errno alone) refuses it.
            (b"1e-310", [Some(1e-310), Some(1e-310), Some(1e-310), None]),
        ];
        for (s, want) in rows {
            let got = [parse_f64(s), parse_double(s), parse_range_double(s), parse_sort_double(s)];
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn hex_values() {
        assert_eq!(parse_sort_double(b"0X1.8P1"), Some(3.0));
        assert_eq!(parse_sort_double(b"-0x1p-1"), Some(-0.5));
        assert_eq!(parse_sort_double(b"0x1p-1022"), Some(f64::MIN_POSITIVE));
        assert_eq!(parse_sort_double(b"0x1p-1023"), None);
        assert_eq!(parse_sort_double(b"0x1p1024"), None);
        assert_eq!(parse_sort_double(b"0x0p-99999999"), Some(0.0));
        assert_eq!(parse_sort_double(b"0x123456789abcdef0123"), Some(0x123456789abcdef0123u128 as f64));
    }
}

//! Redis's long double arithmetic for INCRBYFLOAT and HINCRBYFLOAT: on
//! x86-64 Linux the x87 80-bit extended format, parsed with glibc's
//! strtold (through sscanf), added by the FPU and printed exactly as
//! `%.17Lf` with trailing zeros removed; elsewhere an f64 approximation.
//! Replies must match Redis digit for digit (0.3 + 10000000000.1 is
//! "10000000000.39999999944120646"), which no f64 arithmetic gives. Which
//! strings are numbers is decided by `util::num`'s strtod grammar, as for
//! the other readers.

use super::num::{self, Form, Literal};

/// Redis's MAX_LONG_DOUBLE_CHARS.
const MAX_CHARS: usize = 5 * 1024;

/// The literal `s` if string2ld may read it: shorter than its buffer,
/// and all of it one number in strtold's grammar (decimal or hex float, or
/// inf/infinity; NaN excluded). sscanf's %Lf would also consume some
/// invalid tails ("1e", "1e+") that strtold leaves unparsed.
fn literal(s: &[u8]) -> Option<Literal> {
    if s.len() >= MAX_CHARS {
        return None;
    }
    num::scan_literal(s, true)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::Form;

    /// An x87 80-bit extended value (10 bytes used, little endian).
    #[derive(Clone, Copy)]
    #[repr(C, align(16))]
    pub struct F80(pub [u8; 16]);

    pub fn zero() -> F80 {
        F80([0; 16])
    }

    pub fn parse(s: &[u8]) -> Option<F80> {
        let lit = super::literal(s)?;
        let mut cs = Vec::with_capacity(s.len() + 1);
        cs.extend_from_slice(s);
        cs.push(0);
        let mut out = F80([0; 16]);
        let mut n: libc::c_int = 0;
        // SAFETY: `cs` is NUL-terminated; %Lf stores a long double (16
        // bytes on x86-64) into `out`, %n an int into `n`.
        let r = unsafe {
            libc::sscanf(
                cs.as_ptr() as *const libc::c_char,
                c"%Lf%n".as_ptr(),
                out.0.as_mut_ptr(),
                &mut n as *mut libc::c_int,
            )
        };
        if r != 1 || n as usize != s.len() {
            return None;
        }
        let exp = u16::from_le_bytes([out.0[8], out.0[9]]) & 0x7fff;
        let mant = u64::from_le_bytes(out.0[..8].try_into().ok()?);
        if exp == 0x7fff {
            // NaN is refused; infinity only when spelled out (otherwise
            // it is strtold's ERANGE overflow, which Redis refuses).
            if mant << 1 != 0 || lit.form != Form::Inf {
                return None;
            }
        } else if exp == 0 && mant == 0 && lit.nonzero {
            return None; // underflow to zero (ERANGE)
        }
        Some(out)
    }

    pub fn add(a: &F80, b: &F80) -> F80 {
        let mut out = F80([0; 16]);
        // SAFETY: loads two 80-bit values, adds them on the x87 stack
        // (left empty afterwards) and stores the result into `out`.
        unsafe {
            std::arch::asm!(
                "fld tbyte ptr [{a}]",
                "fld tbyte ptr [{b}]",
                "faddp st(1), st",
                "fstp tbyte ptr [{o}]",
                a = in(reg) a.0.as_ptr(),
                b = in(reg) b.0.as_ptr(),
                o = in(reg) out.0.as_mut_ptr(),
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        out
    }

    pub fn is_finite(a: &F80) -> bool {
        u16::from_le_bytes([a.0[8], a.0[9]]) & 0x7fff != 0x7fff
    }

    /// (negative, mantissa, binary exponent): value = mant * 2^exp.
    pub fn decompose(a: &F80) -> (bool, u64, i32) {
        let se = u16::from_le_bytes([a.0[8], a.0[9]]);
        let mut m = [0u8; 8];
        m.copy_from_slice(&a.0[..8]);
        let e = (se & 0x7fff) as i32;
        (se & 0x8000 != 0, u64::from_le_bytes(m), e.max(1) - 16383 - 63)
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Form;

    #[derive(Clone, Copy)]
    pub struct F80(pub f64);

    pub fn zero() -> F80 {
        F80(0.0)
    }

    pub fn parse(s: &[u8]) -> Option<F80> {
        let lit = super::literal(s)?;
        let v = super::num::literal_value(s, &lit)?;
        if (v.is_infinite() && lit.form != Form::Inf) || (v == 0.0 && lit.nonzero) {
            return None;
        }
        Some(F80(v))
    }

    pub fn add(a: &F80, b: &F80) -> F80 {
        F80(a.0 + b.0)
    }

    pub fn is_finite(a: &F80) -> bool {
        a.0.is_finite()
    }

    pub fn decompose(a: &F80) -> (bool, u64, i32) {
        let bits = a.0.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let m = if e == 0 { frac } else { frac | (1u64 << 52) };
        (bits >> 63 != 0, m, e.max(1) - 1023 - 52)
    }
}

pub use imp::{add, is_finite, parse, zero, F80};

/// `%.17Lf` of the exact binary value (round half to even), then Redis's
/// trailing-zero trimming and "-0" -> "0".
pub fn fmt_human(a: &F80) -> Vec<u8> {
    const SCALE: u128 = 100_000_000_000_000_000; // 10^17
    let (neg, m, k) = imp::decompose(a);
    let mut int_digits: Vec<u8>;
    let mut frac: u128 = 0;
    if k >= 0 {
        int_digits = big_shl_decimal(m, k as u32);
    } else {
        let sh = (-k) as u32;
        let (ip, fb): (u64, u128) = if sh < 64 { (m >> sh, (m & ((1u64 << sh) - 1)) as u128) } else { (0, m as u128) };
        let mut ip = ip as u128;
        if sh < 128 {
            let p = fb * SCALE; // < 2^64 * 2^57
            let q = p >> sh;
            let r = p & ((1u128 << sh) - 1);
            let half = 1u128 << (sh - 1);
            frac = q;
            if r > half || (r == half && q & 1 == 1) {
                frac += 1;
            }
            if frac == SCALE {
                frac = 0;
                ip += 1;
            }
        }
        int_digits = ip.to_string().into_bytes();
    }
    let mut out = Vec::with_capacity(int_digits.len() + 20);
    if neg {
        out.push(b'-');
    }
    out.append(&mut int_digits);
    let f = format!("{:017}", frac);
    let f = f.trim_end_matches('0');
    if !f.is_empty() {
        out.push(b'.');
        out.extend_from_slice(f.as_bytes());
    }
    if out == b"-0" {
        out = b"0".to_vec();
    }
    out
}

/// Decimal digits of `m << k`.
fn big_shl_decimal(m: u64, mut k: u32) -> Vec<u8> {
    const BASE: u64 = 1_000_000_000;
    // Little-endian limbs in base 10^9.
    let mut limbs: Vec<u64> = Vec::new();
    let mut v = m;
    while v > 0 {
        limbs.push(v % BASE);
        v /= BASE;
    }
    while k > 0 {
        let s = k.min(29);
        k -= s;
        let mut carry = 0u64;
        for l in limbs.iter_mut() {
            let x = (*l << s) + carry;
            *l = x % BASE;
            carry = x / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    }
    let mut s = String::new();
    match limbs.last() {
        None => s.push('0'),
        Some(top) => s.push_str(&top.to_string()),
    }
    for l in limbs.iter().rev().skip(1) {
        s.push_str(&format!("{:09}", l));
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> Option<String> {
        let (a, b) = (parse(a.as_bytes())?, parse(b.as_bytes())?);
        let s = add(&a, &b);
        is_finite(&s).then(|| String::from_utf8_lossy(&fmt_human(&s)).into_owned())
    }

    #[test]
    fn reads_what_string2ld_reads() {
        for ok in ["1", "-1.5", "+.5", "5.", "0x10", "0X1.8P1", "inf", "-Infinity", "1e4000", "00012.5000"] {
            assert!(parse(ok.as_bytes()).is_some(), "{ok}");
        }
        // Beyond the 80-bit range (over- or underflow), NaN, spaces, tails
        // sscanf would swallow, and strings too long for Redis's buffer.
        for bad in ["1e5000", "1e-5000", "nan", " 1", "1 ", "1e", "1e+", "0x", "--1", "1_0", "", "1\0"] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        let long = format!("1.{}", "0".repeat(MAX_CHARS - 2));
        assert!(parse(&long.as_bytes()[..MAX_CHARS - 1]).is_some());
        assert!(parse(long.as_bytes()).is_none());
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn adds_and_prints_as_redis_on_x87() {
        assert_eq!(sum("0.3", "10000000000.1").as_deref(), Some("10000000000.39999999944120646"));
        assert_eq!(sum("1e30", "0").as_deref(), Some("1000000000000000000024696061952"));
        assert_eq!(sum("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(sum("-0.0000000000000000001", "0").as_deref(), Some("0"));
        assert_eq!(sum("0x1p-16445", "0").as_deref(), Some("0"));
        // 1e4000 is a long double, so the sum is finite; inf is not.
        assert_eq!(sum("1e4000", "-1e4000").as_deref(), Some("0"));
        assert_eq!(sum("inf", "1"), None);
    }
}

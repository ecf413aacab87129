//! `bit`: LuaBitOp 1.0 on 32-bit integers. Numbers convert as LuaBitOp
//! converts them (the low 32 bits of `n + 2^52 + 2^51`: rounding to
//! nearest, wrapping modulo 2^32); results are signed 32-bit numbers.

use super::{add, arg_error, type_name, Ret};
use mlua::{IntoLuaMulti, Lua, Table, Value};

/// LuaBitOp's `barg`: argument `n` (1-based) as 32 bits.
fn barg(lua: &Lua, args: &[Value], n: usize, func: &str) -> Result<u32, String> {
    let v = args.get(n - 1);
    let d = match v {
        Some(Value::Number(d)) => Some(*d),
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(s @ Value::String(_)) => lua.coerce_number(s.clone()).ok().flatten(),
        _ => None,
    };
    match d {
        Some(d) => Ok(to_bits(d)),
        None => Err(arg_error(n, func, &format!("number expected, got {}", type_name(v)))),
    }
}

/// The low 32 bits of the double `d + 2^52 + 2^51`.
pub fn to_bits(d: f64) -> u32 {
    (d + 6_755_399_441_055_744.0).to_bits() as u32
}

fn ret(lua: &Lua, b: u32) -> Ret {
    (b as i32 as f64).into_lua_multi(lua).map_err(|e| e.to_string())
}

type Unary = fn(u32) -> u32;
type Shift = fn(u32, u32) -> u32;

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let unary: [(&'static str, Unary); 3] = [("tobit", |b| b), ("bnot", |b| !b), ("bswap", u32::swap_bytes)];
    for (name, f) in unary {
        add(lua, &t, name, move |lua, args: &[Value]| ret(lua, f(barg(lua, args, 1, name)?)))?;
    }
    let folds: [(&'static str, Shift); 3] = [("band", |a, b| a & b), ("bor", |a, b| a | b), ("bxor", |a, b| a ^ b)];
    for (name, f) in folds {
        add(lua, &t, name, move |lua, args: &[Value]| {
            let mut b = barg(lua, args, 1, name)?;
            // LuaBitOp folds from the last argument down.
            for i in (2..=args.len()).rev() {
                b = f(b, barg(lua, args, i, name)?);
            }
            ret(lua, b)
        })?;
    }
    let shifts: [(&'static str, Shift); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", u32::rotate_left),
        ("ror", u32::rotate_right),
    ];
    for (name, f) in shifts {
        add(lua, &t, name, move |lua, args: &[Value]| {
            let b = barg(lua, args, 1, name)?;
            let n = barg(lua, args, 2, name)? & 31;
            ret(lua, f(b, n))
        })?;
    }
    add(lua, &t, "tohex", |lua, args: &[Value]| {
        let mut b = barg(lua, args, 1, "tohex")?;
        let mut n = if args.len() < 2 { 8 } else { barg(lua, args, 2, "tohex")? as i32 };
        let digits: &[u8; 16] = if n < 0 {
            n = n.wrapping_neg();
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let n = n.clamp(0, 8) as usize;
        let mut buf = [0u8; 8];
        for i in (0..n).rev() {
            buf[i] = digits[(b & 15) as usize];
            b >>= 4;
        }
        lua.create_string(&buf[..n]).map_err(|e| e.to_string())?.into_lua_multi(lua).map_err(|e| e.to_string())
    })?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::to_bits;

    #[test]
    fn numbers_wrap_and_round_as_luabitop() {
        assert_eq!(to_bits(1.0), 1);
        assert_eq!(to_bits(-1.0), u32::MAX);
        assert_eq!(to_bits(4294967296.0), 0);
        assert_eq!(to_bits(4294967297.0), 1);
        assert_eq!(to_bits(2147483648.0) as i32, i32::MIN);
        assert_eq!(to_bits(0.5), 0);
        assert_eq!(to_bits(1.5), 2);
        assert_eq!(to_bits(2.5), 2);
    }
}

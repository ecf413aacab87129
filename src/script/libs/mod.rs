//! The libraries Redis gives scripts besides `redis`: `cjson`, `cmsgpack`,
//! `bit` and `struct`, written in Rust over mlua with the behaviours (and
//! error texts) of the C libraries Redis 7.0 embeds: lua-cjson 2.1,
//! lua-cmsgpack 0.4, LuaBitOp 1.0 and Roberto Ierusalimschy's struct.
//!
//! Errors: a Rust callback cannot raise a plain Lua string (mlua raises
//! userdata), and scripts match on error strings (`pcall` then
//! `string.find`). So each function returns `FAIL, message` on an error
//! and the sandbox's prelude wraps it in a Lua function that raises the
//! message at level 0, as `luaL_error` from a C function does.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{IntoLuaMulti, LightUserData, Lua, MultiValue, Table, Value};

/// The sentinel a library function returns first to say "raise the
/// message that follows" (never seen by scripts: the wrapper raises).
pub fn fail_marker() -> Value {
    Value::LightUserData(LightUserData(0x5ca1_ab1e as *mut std::ffi::c_void))
}

/// What a library function returns: its values, or an error message.
pub type Ret = Result<MultiValue, String>;

/// Add `f` to `t` under `name`, as the prelude expects (see the module doc).
pub fn add<F>(lua: &Lua, t: &Table, name: &str, f: F) -> mlua::Result<()>
where
    F: Fn(&Lua, &[Value]) -> Ret + 'static,
{
    let func = lua.create_function(move |lua, args: MultiValue| match f(lua, &Vec::from(args)) {
        Ok(v) => Ok(v),
        Err(msg) => (fail_marker(), lua.create_string(msg)?).into_lua_multi(lua),
    })?;
    t.raw_set(name, func)
}

/// Every library, as a table of tables of raw functions, for the prelude.
pub fn tables(lua: &Lua) -> mlua::Result<Table> {
    let all = lua.create_table()?;
    all.raw_set("cjson", cjson::table(lua)?)?;
    all.raw_set("cmsgpack", cmsgpack::table(lua)?)?;
    all.raw_set("bit", bit::table(lua)?)?;
    all.raw_set("struct", structlib::table(lua)?)?;
    Ok(all)
}

/// Lua's name of a value's type, as `luaL_typename` gives it.
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_argerror`'s text.
pub fn arg_error(n: usize, func: &str, msg: &str) -> String {
    format!("bad argument #{n} to '{func}' ({msg})")
}

/// Argument `n` (1-based) as `luaL_checknumber` takes it (numeric
/// strings included).
pub fn check_number(lua: &Lua, args: &[Value], n: usize, func: &str) -> Result<f64, String> {
    let v = args.get(n - 1);
    match v {
        Some(Value::Number(d)) => Ok(*d),
        Some(Value::Integer(i)) => Ok(*i as f64),
        Some(s @ Value::String(_)) => match lua.coerce_number(s.clone()) {
            Ok(Some(d)) => Ok(d),
            _ => Err(arg_error(n, func, &format!("number expected, got {}", type_name(v)))),
        },
        _ => Err(arg_error(n, func, &format!("number expected, got {}", type_name(v)))),
    }
}

/// Argument `n` as `luaL_optinteger` takes it.
pub fn opt_integer(lua: &Lua, args: &[Value], n: usize, func: &str, default: i64) -> Result<i64, String> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Ok(default),
        _ => check_number(lua, args, n, func).map(|d| d as i64),
    }
}

/// Argument `n` as `luaL_checklstring` takes it (numbers become their
/// text, as Lua converts them).
pub fn check_string(args: &[Value], n: usize, func: &str) -> Result<Vec<u8>, String> {
    let v = args.get(n - 1);
    match v {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(d)) => Ok(fmt_g(*d, 14).into_bytes()),
        Some(Value::Integer(i)) => Ok(i.to_string().into_bytes()),
        _ => Err(arg_error(n, func, &format!("string expected, got {}", type_name(v)))),
    }
}

/// C's `%.<prec>g` (what Lua 5.1's tostring uses with 14).
pub fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    let prec = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_g;

    #[test]
    fn g_format_is_cs() {
        assert_eq!(fmt_g(1.0, 14), "1");
        assert_eq!(fmt_g(0.1, 14), "0.1");
        assert_eq!(fmt_g(1.5, 14), "1.5");
        assert_eq!(fmt_g(-0.0, 14), "-0");
        assert_eq!(fmt_g(1e100, 14), "1e+100");
        assert_eq!(fmt_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(fmt_g(12345678901234.0, 14), "12345678901234");
        assert_eq!(fmt_g(0.0001, 14), "0.0001");
        assert_eq!(fmt_g(0.00001, 14), "1e-05");
        assert_eq!(fmt_g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(fmt_g(2f64.powi(53), 14), "9.007199254741e+15");
    }
}

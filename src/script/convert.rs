//! Conversions between Lua values and RESP, as Redis's scripting tables
//! define them (Redis 7.0).
//!
//! Command replies seen by a script (`reply_to_lua`), RESP2 / RESP3:
//! integer -> number; bulk -> string; null bulk, null array -> false / nil;
//! array -> table; status -> {ok=s}; error -> {err=s}; and in RESP3 only:
//! map -> {map={k=v}}, set -> {set={k=true}}, double -> {double=d},
//! boolean -> boolean, big number -> {big_number=s}, verbatim ->
//! {verbatim_string={format=f, string=s}}.
//!
//! A script's return value (`lua_to_reply`): number -> integer (truncated
//! as C casts: NaN and out of range give i64::MIN); string -> bulk; true
//! -> 1 (or RESP3 true when the script chose RESP3); false / nil -> null;
//! a table with a string `err` -> error, `ok` -> status, a number
//! `double` -> double, a string `big_number`, a table `map` or `set`;
//! any other table -> array of t[1], t[2], ... up to the first nil.

use crate::protocol::reply::Reply;
use mlua::{Lua, Table, Value};

/// Deepest nesting of a returned table that is converted; deeper is an
/// error, as past Redis's Lua stack limit. Kept under the 256 levels that
/// client parsers (hiredis, this project's own) accept.
pub const MAX_DEPTH: usize = 200;

/// A malformed reply (never produced by shardis's own encoder).
#[derive(Debug)]
pub struct BadReply;

/// Read one RESP reply from `buf` at `*pos` as the Lua value scripts see.
pub fn reply_to_lua(lua: &Lua, buf: &[u8], pos: &mut usize) -> Result<Value, BadReply> {
    let kind = *buf.get(*pos).ok_or(BadReply)?;
    let line = read_line(buf, pos)?;
    let num = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok()).ok_or(BadReply);
    let str_val = |b: &[u8]| lua.create_string(b).map(Value::String).map_err(|_| BadReply);
    let table1 = |key: &str, v: Value| -> Result<Value, BadReply> {
        let t = lua.create_table().map_err(|_| BadReply)?;
        t.raw_set(key, v).map_err(|_| BadReply)?;
        Ok(Value::Table(t))
    };
    match kind {
        b':' => Ok(Value::Number(num()? as f64)),
        b'+' => table1("ok", str_val(line)?),
        b'-' => table1("err", str_val(line)?),
        b'$' => {
            let n = num()?;
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let body = read_bulk(buf, pos, n as usize)?;
            str_val(body)
        }
        b'*' | b'>' => {
            let n = num()?;
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table().map_err(|_| BadReply)?;
            for i in 0..n {
                let v = reply_to_lua(lua, buf, pos)?;
                t.raw_set(i + 1, v).map_err(|_| BadReply)?;
            }
            Ok(Value::Table(t))
        }
        b'%' | b'~' => {
            let n = num()?;
            let t = lua.create_table().map_err(|_| BadReply)?;
            for _ in 0..n {
                let k = reply_to_lua(lua, buf, pos)?;
                let v = if kind == b'%' { reply_to_lua(lua, buf, pos)? } else { Value::Boolean(true) };
                t.raw_set(k, v).map_err(|_| BadReply)?;
            }
            table1(if kind == b'%' { "map" } else { "set" }, Value::Table(t))
        }
        b'_' => Ok(Value::Nil),
        b'#' => Ok(Value::Boolean(line == b"t")),
        b',' => {
            let d = crate::util::num::parse_double(line).ok_or(BadReply)?;
            table1("double", Value::Number(d))
        }
        b'(' => table1("big_number", str_val(line)?),
        b'=' => {
            let n = num()?;
            let body = read_bulk(buf, pos, n.max(0) as usize)?;
            let (format, text) =
                if body.len() >= 4 && body[3] == b':' { body.split_at(4) } else { (&b"txt:"[..], body) };
            let t = lua.create_table().map_err(|_| BadReply)?;
            t.raw_set("format", str_val(&format[..3])?).map_err(|_| BadReply)?;
            t.raw_set("string", str_val(text)?).map_err(|_| BadReply)?;
            table1("verbatim_string", Value::Table(t))
        }
        b'|' => {
            // Attributes are dropped; the reply follows them.
            let n = num()?;
            for _ in 0..2 * n {
                reply_to_lua(lua, buf, pos)?;
            }
            reply_to_lua(lua, buf, pos)
        }
        _ => Err(BadReply),
    }
}

/// The line after the type byte at `*pos`, moving past its CRLF.
fn read_line<'b>(buf: &'b [u8], pos: &mut usize) -> Result<&'b [u8], BadReply> {
    let start = *pos + 1;
    let rest = buf.get(start..).ok_or(BadReply)?;
    let end = rest.windows(2).position(|w| w == b"\r\n").ok_or(BadReply)?;
    *pos = start + end + 2;
    Ok(&rest[..end])
}

fn read_bulk<'b>(buf: &'b [u8], pos: &mut usize, n: usize) -> Result<&'b [u8], BadReply> {
    let body = buf.get(*pos..pos.saturating_add(n)).ok_or(BadReply)?;
    if buf.get(*pos + n..*pos + n + 2) != Some(b"\r\n") {
        return Err(BadReply);
    }
    *pos += n + 2;
    Ok(body)
}

/// A Lua number as Redis's `(long long)` cast gives it on x86-64.
pub fn c_cast_i64(d: f64) -> i64 {
    if d.is_nan() || d >= 9.223_372_036_854_775_807e18 || d < -9.223_372_036_854_775_808e18 {
        i64::MIN
    } else {
        d as i64
    }
}

/// Write a script's return value `v` as the reply; `resp3_script`: the
/// script chose RESP3 with `redis.setresp(3)` (booleans stay booleans).
pub fn lua_to_reply(v: &Value, out: &mut Reply, resp3_script: bool, depth: usize) {
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Integer(n) => out.int(*n),
        Value::Number(d) => out.int(c_cast_i64(*d)),
        Value::Boolean(b) => {
            if resp3_script {
                out.boolean(*b)
            } else if *b {
                out.int(1)
            } else {
                out.null()
            }
        }
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                out.error("ERR reached lua stack limit");
                return;
            }
            table_to_reply(t, out, resp3_script, depth)
        }
        _ => out.null(),
    }
}

fn table_to_reply(t: &Table, out: &mut Reply, resp3_script: bool, depth: usize) {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        out.error(&String::from_utf8_lossy(&e.as_bytes()));
        return;
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        out.raw(b"+");
        let line: Vec<u8> = s.as_bytes().iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
        out.raw(&line);
        out.raw(b"\r\n");
        return;
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return out.double(d),
        Ok(Value::Integer(n)) => return out.double(n as f64),
        _ => {}
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        let line: Vec<u8> = s.as_bytes().iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
        if out.resp3 {
            out.raw(b"(");
            out.raw(&line);
            out.raw(b"\r\n");
        } else {
            out.bulk(&line);
        }
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            lua_to_reply(k, out, resp3_script, depth + 1);
            lua_to_reply(v, out, resp3_script, depth + 1);
        }
        return;
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let keys: Vec<Value> = s.pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| k).collect();
        out.set(keys.len());
        for k in &keys {
            lua_to_reply(k, out, resp3_script, depth + 1);
        }
        return;
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for v in &items {
        lua_to_reply(v, out, resp3_script, depth + 1);
    }
}

/// A number passed to `redis.call` as Redis 7.0 passes it: `%.17g`.
pub fn number_arg(d: f64) -> Vec<u8> {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for any %.17g (at most 24 bytes)
    // and snprintf writes a terminated string within its size.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17g".as_ptr(), d) };
    buf[..(n.max(0) as usize).min(buf.len() - 1)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_lua_and_back(lua: &Lua, resp: &[u8], resp3_client: bool) -> Vec<u8> {
        let mut pos = 0;
        let v = reply_to_lua(lua, resp, &mut pos).expect("well formed");
        assert_eq!(pos, resp.len(), "consumed all of {:?}", String::from_utf8_lossy(resp));
        let mut out = Vec::new();
        lua_to_reply(&v, &mut Reply::new(&mut out, resp3_client), false, 0);
        out
    }

    #[test]
    fn resp2_round_trips_as_redis_tables_say() {
        let lua = Lua::new();
        // Integers, bulks, arrays come back as they were.
        for r in [&b":42\r\n"[..], b"$3\r\nabc\r\n", b"*2\r\n:1\r\n$1\r\nx\r\n", b"*0\r\n", b"+OK\r\n", b"-ERR bad\r\n"]
        {
            assert_eq!(to_lua_and_back(&lua, r, false), r);
        }
        // Null bulk and null array become false, which returns as a null bulk.
        assert_eq!(to_lua_and_back(&lua, b"$-1\r\n", false), b"$-1\r\n");
        assert_eq!(to_lua_and_back(&lua, b"*-1\r\n", false), b"$-1\r\n");
        // An array stops at the first nil: a null inside stays as false -> null.
        assert_eq!(to_lua_and_back(&lua, b"*3\r\n:1\r\n$-1\r\n:3\r\n", false), b"*3\r\n:1\r\n$-1\r\n:3\r\n");
    }

    #[test]
    fn resp3_replies_become_tagged_tables() {
        let lua = Lua::new();
        let conv = |resp: &[u8]| {
            let mut pos = 0;
            reply_to_lua(&lua, resp, &mut pos).expect("well formed")
        };
        let Value::Table(t) = conv(b",3.5\r\n") else { panic!("double is a table") };
        assert_eq!(t.raw_get::<f64>("double").expect("double"), 3.5);
        let Value::Table(t) = conv(b"%1\r\n$1\r\na\r\n:1\r\n") else { panic!("map is a table") };
        let m: Table = t.raw_get("map").expect("map");
        assert_eq!(m.raw_get::<i64>("a").expect("a"), 1);
        let Value::Table(t) = conv(b"~1\r\n$1\r\nx\r\n") else { panic!("set is a table") };
        let s: Table = t.raw_get("set").expect("set");
        assert!(s.raw_get::<bool>("x").expect("x"));
        assert!(matches!(conv(b"_\r\n"), Value::Nil));
        assert!(matches!(conv(b"#t\r\n"), Value::Boolean(true)));
        let Value::Table(t) = conv(b"=8\r\ntxt:abcd\r\n") else { panic!("verbatim is a table") };
        let v: Table = t.raw_get("verbatim_string").expect("verbatim");
        assert_eq!(v.raw_get::<String>("format").expect("f"), "txt");
        assert_eq!(v.raw_get::<String>("string").expect("s"), "abcd");
    }

    #[test]
    fn lua_values_to_replies() {
        let lua = Lua::new();
        let ret = |code: &str, resp3_client: bool, resp3_script: bool| {
            let v: Value = lua.load(code).eval().expect("evaluates");
            let mut out = Vec::new();
            lua_to_reply(&v, &mut Reply::new(&mut out, resp3_client), resp3_script, 0);
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(ret("return 3.99", false, false), ":3\r\n");
        assert_eq!(ret("return -3.99", false, false), ":-3\r\n");
        assert_eq!(ret("return 1e100", false, false), ":-9223372036854775808\r\n");
        assert_eq!(ret("return 0/0", false, false), ":-9223372036854775808\r\n");
        assert_eq!(ret("return true", false, false), ":1\r\n");
        assert_eq!(ret("return false", false, false), "$-1\r\n");
        assert_eq!(ret("return false", true, false), "_\r\n");
        assert_eq!(ret("return true", true, true), "#t\r\n");
        assert_eq!(ret("return nil", false, false), "$-1\r\n");
        assert_eq!(ret("return {1,2,nil,4}", false, false), "*2\r\n:1\r\n:2\r\n");
        assert_eq!(ret("return {err='My Error'}", false, false), "-My Error\r\n");
        assert_eq!(ret("return {err=5}", false, false), "*0\r\n");
        assert_eq!(ret("return {ok='a\\r\\nb'}", false, false), "+a  b\r\n");
        assert_eq!(ret("return {double=3.5}", false, false), "$3\r\n3.5\r\n");
        assert_eq!(ret("return {double=3.5}", true, false), ",3.5\r\n");
        assert_eq!(ret("return {map={a=1}}", false, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(ret("return {map={a=1}}", true, false), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(ret("return {set={a=true}}", true, false), "~1\r\n$1\r\na\r\n");
        assert_eq!(ret("return {big_number='123'}", true, false), "(123\r\n");
        assert_eq!(ret("return {1,{err='x'},{ok='y'}}", false, false), "*3\r\n:1\r\n-x\r\n+y\r\n");
        let deep = ret("local t = {} for i=1,5000 do t = {t} end return t", false, false);
        assert!(deep.ends_with("-ERR reached lua stack limit\r\n"));
    }

    #[test]
    fn numbers_as_arguments_use_17_digits() {
        assert_eq!(number_arg(5.0), b"5");
        assert_eq!(number_arg(1.1), b"1.1000000000000001");
        assert_eq!(number_arg(9007199254740992.0), b"9007199254740992");
        assert_eq!(number_arg(-0.5), b"-0.5");
        assert_eq!(number_arg(1e100), b"1e+100");
    }

    #[test]
    fn malformed_replies_are_refused() {
        let lua = Lua::new();
        for bad in [&b""[..], b"$5\r\nab\r\n", b"*2\r\n:1\r\n", b"?\r\n", b":x\r\n", b"$3\r\nabcde"] {
            let mut pos = 0;
            assert!(reply_to_lua(&lua, bad, &mut pos).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

//! `cmsgpack`: MessagePack as lua-cmsgpack 0.4 writes and reads it.
//!
//! pack: nil, booleans; numbers that are whole (and fit in 64 bits) as
//! the smallest integer encoding, others as float 32 when exact, else
//! float 64; strings as fixstr / str 8 / 16 / 32; tables whose keys are
//! exactly 1..n as arrays (an empty table too), others as maps; tables
//! nested deeper than 16 levels, and other types, as nil.
//! unpack / unpack_one / unpack_limit read what pack writes (and the
//! other integer and string widths); bin and extension types are "Bad
//! data format", as in Redis.

use super::{add, check_number, check_string, opt_integer, Ret};
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

const MAX_NESTING: usize = 16;

fn lerr(e: mlua::Error) -> String {
    e.to_string()
}

fn is_int_equivalent(d: f64) -> bool {
    d.is_finite() && (d as i64) as f64 == d
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(out: &mut Vec<u8>, n: usize, fix: (u8, usize), b16: u8, b32: u8) {
    if n <= fix.1 {
        out.push(fix.0 | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Whether a table's keys are exactly 1..n (lua-cmsgpack's test).
fn array_len(t: &Table) -> Option<usize> {
    let (mut count, mut max) = (0usize, 0f64);
    for pair in t.clone().pairs::<Value, Value>() {
        let Ok((k, _)) = pair else { return None };
        let n = match k {
            Value::Number(d) => d,
            Value::Integer(i) => i as f64,
            _ => return None,
        };
        if !(n > 0.0 && n.floor() == n && n <= i32::MAX as f64) {
            return None;
        }
        count += 1;
        max = max.max(n);
    }
    (max as usize == count).then_some(count)
}

fn encode(out: &mut Vec<u8>, v: &Value, level: usize) {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(out, *i),
        Value::Number(d) => {
            if is_int_equivalent(*d) {
                encode_int(out, *d as i64);
            } else if (*d as f32) as f64 == *d {
                out.push(0xca);
                out.extend_from_slice(&(*d as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&d.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let n = b.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MAX_NESTING => match array_len(t) {
            Some(n) => {
                encode_len(out, n, (0x90, 15), 0xdc, 0xdd);
                for i in 1..=n {
                    let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    encode(out, &v, level + 1);
                }
            }
            None => {
                let pairs: Vec<(Value, Value)> = t.clone().pairs::<Value, Value>().filter_map(Result::ok).collect();
                encode_len(out, pairs.len(), (0x80, 15), 0xde, 0xdf);
                for (k, v) in &pairs {
                    encode(out, k, level + 1);
                    encode(out, v, level + 1);
                }
            }
        },
        _ => out.push(0xc0),
    }
}

fn pack(lua: &Lua, args: &[Value]) -> Ret {
    if args.is_empty() {
        return Err("bad argument #0 to 'pack' (MessagePack pack needs input.)".into());
    }
    let mut out = Vec::new();
    for v in args.iter() {
        encode(&mut out, v, 0);
    }
    lua.create_string(&out).map_err(lerr)?.into_lua_multi(lua).map_err(lerr)
}

enum DecodeError {
    Eof,
    BadFormat,
    Lua(String),
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(DecodeError::Eof)?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
    }
}

fn decode(lua: &Lua, c: &mut Cur) -> Result<Value, DecodeError> {
    let le = |e: mlua::Error| DecodeError::Lua(e.to_string());
    let t = c.take(1)?[0];
    let num = |d: f64| Ok(Value::Number(d));
    match t {
        0x00..=0x7f => num(t as f64),
        0xe0..=0xff => num(t as i8 as f64),
        0xc0 => Ok(Value::Nil),
        0xc2 => Ok(Value::Boolean(false)),
        0xc3 => Ok(Value::Boolean(true)),
        0xca => num(f32::from_bits(c.uint(4)? as u32) as f64),
        0xcb => num(f64::from_bits(c.uint(8)?)),
        0xcc => num(c.uint(1)? as f64),
        0xcd => num(c.uint(2)? as f64),
        0xce => num(c.uint(4)? as f64),
        0xcf => num(c.uint(8)? as f64),
        0xd0 => num(c.uint(1)? as u8 as i8 as f64),
        0xd1 => num(c.uint(2)? as u16 as i16 as f64),
        0xd2 => num(c.uint(4)? as u32 as i32 as f64),
        0xd3 => num(c.uint(8)? as i64 as f64),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
            let n = match t {
                0xa0..=0xbf => (t & 0x1f) as usize,
                0xd9 => c.uint(1)? as usize,
                0xda => c.uint(2)? as usize,
                _ => c.uint(4)? as usize,
            };
            Ok(Value::String(lua.create_string(c.take(n)?).map_err(le)?))
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match t {
                0x90..=0x9f => (t & 0x0f) as usize,
                0xdc => c.uint(2)? as usize,
                _ => c.uint(4)? as usize,
            };
            let tab = lua.create_table().map_err(le)?;
            for i in 1..=n {
                let v = decode(lua, c)?;
                tab.raw_set(i, v).map_err(le)?;
            }
            Ok(Value::Table(tab))
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match t {
                0x80..=0x8f => (t & 0x0f) as usize,
                0xde => c.uint(2)? as usize,
                _ => c.uint(4)? as usize,
            };
            let tab = lua.create_table().map_err(le)?;
            for _ in 0..n {
                let k = decode(lua, c)?;
                let v = decode(lua, c)?;
                if k != Value::Nil && !matches!(k, Value::Number(d) if d.is_nan()) {
                    tab.raw_set(k, v).map_err(le)?;
                }
            }
            Ok(Value::Table(tab))
        }
        _ => Err(DecodeError::BadFormat),
    }
}

/// lua-cmsgpack's `mp_unpack_full`: up to `limit` objects from `offset`
/// (0 and 0: every object, without the next offset first).
fn unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> Ret {
    if offset < 0 || limit < 0 {
        return Err(format!("Invalid request to unpack with offset of {offset} and limit of {}.", s.len()));
    }
    if offset as u64 > s.len() as u64 {
        return Err(format!("Start offset {offset} greater than input length {}.", s.len()));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { i64::MAX } else { limit };
    let mut c = Cur { b: s, pos: offset as usize };
    let mut vals = Vec::new();
    while c.pos < s.len() && (vals.len() as i64) < limit {
        match decode(lua, &mut c) {
            Ok(v) => vals.push(v),
            Err(DecodeError::Eof) => return Err("Missing bytes in input.".into()),
            Err(DecodeError::BadFormat) => return Err("Bad data format in input.".into()),
            Err(DecodeError::Lua(e)) => return Err(e),
        }
    }
    if !all {
        let next = if c.pos == s.len() { -1.0 } else { c.pos as f64 };
        vals.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_iter(vals))
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    add(lua, &t, "pack", pack)?;
    add(lua, &t, "unpack", |lua, args| {
        let s = check_string(args, 1, "unpack")?;
        unpack_full(lua, &s, 0, 0)
    })?;
    add(lua, &t, "unpack_one", |lua, args| {
        let s = check_string(args, 1, "unpack_one")?;
        let offset = opt_integer(lua, args, 2, "unpack_one", 0)?;
        unpack_full(lua, &s, 1, offset)
    })?;
    add(lua, &t, "unpack_limit", |lua, args| {
        let s = check_string(args, 1, "unpack_limit")?;
        let limit = check_number(lua, args, 2, "unpack_limit")? as i64;
        let offset = opt_integer(lua, args, 3, "unpack_limit", 0)?;
        unpack_full(lua, &s, limit, offset)
    })?;
    Ok(t)
}

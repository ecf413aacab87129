//! `cjson`: JSON as lua-cjson 2.1 (Redis's build) encodes and decodes it.
//!
//! encode: numbers with 14 significant digits (`%.14g`), NaN and Inf
//! refused; strings escaped as lua-cjson does (`/` too); a table whose
//! keys are all whole numbers >= 1 is an array up to its largest key
//! (holes become null; an excessively sparse one is an error), any
//! other table an object (an empty table: `{}`), with number keys
//! written as strings; `cjson.null` is null; nesting deeper than 1000 is
//! an error. decode: any JSON value at the top; numbers read as `strtod`
//! reads them; null becomes `cjson.null`; errors name the token and its
//! position, as lua-cjson's do.

use super::{add, arg_error, check_number, fmt_g, type_name, Ret};
use mlua::{IntoLuaMulti, LightUserData, Lua, Table, Value};
use std::cell::Cell;
use std::rc::Rc;

/// lua-cjson's settings that scripts can change (they persist in the
/// interpreter, as in Redis).
struct Config {
    encode_max_depth: Cell<usize>,
    decode_max_depth: Cell<usize>,
    precision: Cell<usize>,
    /// 0: NaN/Inf are errors; 1: written as NaN/Infinity; 2: as null.
    encode_invalid: Cell<u8>,
    decode_invalid: Cell<bool>,
    sparse_convert: Cell<bool>,
    sparse_ratio: Cell<usize>,
    sparse_safe: Cell<usize>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            encode_max_depth: Cell::new(1000),
            decode_max_depth: Cell::new(1000),
            precision: Cell::new(14),
            encode_invalid: Cell::new(0),
            decode_invalid: Cell::new(true),
            sparse_convert: Cell::new(false),
            sparse_ratio: Cell::new(2),
            sparse_safe: Cell::new(10),
        }
    }
}

fn lerr(e: mlua::Error) -> String {
    e.to_string()
}

pub fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn exception(kind: &Value, reason: &str) -> String {
    format!("Cannot serialise {}: {reason}", type_name(Some(kind)))
}

fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn number_into(out: &mut Vec<u8>, cfg: &Config, v: &Value, d: f64) -> Result<(), String> {
    if !d.is_finite() {
        match cfg.encode_invalid.get() {
            0 => return Err(exception(v, "must not be NaN or Inf")),
            1 => {
                out.extend_from_slice(if d.is_nan() {
                    b"NaN"
                } else if d < 0.0 {
                    b"-Infinity"
                } else {
                    b"Infinity"
                });
                return Ok(());
            }
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(fmt_g(d, cfg.precision.get()).as_bytes());
    Ok(())
}

/// lua-cjson's `lua_array_length`: Some(n) for an array, None for an object.
fn array_len(t: &Table, cfg: &Config, v: &Value) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0f64, 0usize);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(lerr)?;
        let k = match k {
            Value::Number(d) => d,
            Value::Integer(i) => i as f64,
            _ => return Ok(None),
        };
        if k.floor() != k || k < 1.0 {
            return Ok(None);
        }
        max = max.max(k);
        items += 1;
    }
    let ratio = cfg.sparse_ratio.get();
    if ratio > 0 && max > (items * ratio) as f64 && max > cfg.sparse_safe.get() as f64 {
        if !cfg.sparse_convert.get() {
            return Err(exception(v, "excessively sparse array"));
        }
        return Ok(None);
    }
    Ok(Some(max as usize))
}

fn encode(out: &mut Vec<u8>, cfg: &Config, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::String(s) => escape_into(out, &s.as_bytes()),
        Value::Number(d) => number_into(out, cfg, v, *d)?,
        Value::Integer(i) => number_into(out, cfg, v, *i as f64)?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth.get() {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_len(t, cfg, v)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(lerr)?;
                        encode(out, cfg, &item, depth)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.clone().pairs::<Value, Value>() {
                        let (k, item) = pair.map_err(lerr)?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::Number(d) => {
                                out.push(b'"');
                                number_into(out, cfg, &k, *d)?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::Integer(i) => {
                                out.push(b'"');
                                number_into(out, cfg, &k, *i as f64)?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::String(s) => {
                                escape_into(out, &s.as_bytes());
                                out.push(b':');
                            }
                            other => return Err(exception(other, "table key must be a number or string")),
                        }
                        encode(out, cfg, &item, depth)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(exception(other, "type not supported")),
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num => "T_NUMBER",
            Tok::Bool => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error => "T_ERROR",
        }
    }
}

struct Token {
    kind: Tok,
    /// 0-based position (of the error, for `Tok::Error`).
    index: usize,
    num: f64,
    boolean: bool,
    text: Vec<u8>,
    err: &'static str,
}

struct Parser<'a> {
    /// The input up to its first NUL (lua-cjson reads a C string).
    s: &'a [u8],
    pos: usize,
    depth: usize,
    cfg: &'a Config,
}

/// The length of the number `strtod` reads at the start of `s`, and its value.
fn strtod(s: &[u8]) -> Option<(usize, f64)> {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let neg = s.first() == Some(&b'-');
    let rest = &s[i..];
    let lower = |n: usize| rest.get(..n).map(|r| r.to_ascii_lowercase());
    if lower(8).as_deref() == Some(b"infinity") {
        return Some((i + 8, if neg { f64::NEG_INFINITY } else { f64::INFINITY }));
    }
    if lower(3).as_deref() == Some(b"inf") {
        return Some((i + 3, if neg { f64::NEG_INFINITY } else { f64::INFINITY }));
    }
    if lower(3).as_deref() == Some(b"nan") {
        return Some((i + 3, f64::NAN));
    }
    if lower(2).as_deref() == Some(b"0x") && rest.get(2).is_some_and(u8::is_ascii_hexdigit) {
        let digits = rest[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let v = rest[2..2 + digits].iter().fold(0f64, |a, &c| a * 16.0 + (c as char).to_digit(16).unwrap_or(0) as f64);
        return Some((i + 2 + digits, if neg { -v } else { v }));
    }
    let mut j = i;
    let digits = |j: &mut usize| {
        let start = *j;
        while s.get(*j).is_some_and(u8::is_ascii_digit) {
            *j += 1;
        }
        *j - start
    };
    let int_digits = digits(&mut j);
    let mut frac_digits = 0;
    if s.get(j) == Some(&b'.') {
        let mut k = j + 1;
        frac_digits = digits(&mut k);
        if int_digits + frac_digits > 0 {
            j = k;
        }
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if digits(&mut k) > 0 {
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[..j]).ok()?;
    let text = text.strip_prefix('+').unwrap_or(text);
    let v: f64 = text.trim_end_matches('.').parse().ok().or_else(|| text.replace(".e", "e").parse().ok())?;
    Some((j, v))
}

impl Parser<'_> {
    fn is_invalid_number(&self) -> bool {
        let s = &self.s[self.pos..];
        let mut i = 0;
        if s.first() == Some(&b'+') {
            return true;
        }
        if s.first() == Some(&b'-') {
            i = 1;
        }
        match s.get(i) {
            Some(b'0') => matches!(s.get(i + 1), Some(c) if (c | 0x20) == b'x' || c.is_ascii_digit()),
            Some(c) if *c <= b'9' => false,
            _ => {
                let rest = &s[i..];
                rest.len() >= 3 && (rest[..3].eq_ignore_ascii_case(b"inf") || rest[..3].eq_ignore_ascii_case(b"nan"))
            }
        }
    }

    fn token(&mut self) -> Token {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        let mut t = Token { kind: Tok::End, index: self.pos, num: 0.0, boolean: false, text: Vec::new(), err: "" };
        let Some(&c) = self.s.get(self.pos) else { return t };
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(k) = single {
            self.pos += 1;
            t.kind = k;
            return t;
        }
        let rest = &self.s[self.pos..];
        if c == b'"' {
            self.string(&mut t);
        } else if c == b'-' || c.is_ascii_digit() {
            if !self.cfg.decode_invalid.get() && self.is_invalid_number() {
                return self.error(t, "invalid number");
            }
            return self.number(t);
        } else if rest.starts_with(b"true") {
            self.pos += 4;
            (t.kind, t.boolean) = (Tok::Bool, true);
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            (t.kind, t.boolean) = (Tok::Bool, false);
        } else if rest.starts_with(b"null") {
            self.pos += 4;
            t.kind = Tok::Null;
        } else if self.cfg.decode_invalid.get() && self.is_invalid_number() {
            return self.number(t);
        } else {
            return self.error(t, "invalid token");
        }
        t
    }

    fn error(&self, mut t: Token, msg: &'static str) -> Token {
        t.kind = Tok::Error;
        t.index = self.pos;
        t.err = msg;
        t
    }

    fn number(&mut self, mut t: Token) -> Token {
        match strtod(&self.s[self.pos..]) {
            Some((n, v)) => {
                self.pos += n;
                (t.kind, t.num) = (Tok::Num, v);
                t
            }
            None => self.error(t, "invalid number"),
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    }

    /// A `\uXXXX` escape (and its low surrogate) at `pos`; None if invalid.
    fn unicode(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if (0xdc00..=0xdfff).contains(&cp) {
            return None;
        }
        if (0xd800..=0xdbff).contains(&cp) {
            if self.s.get(self.pos + 6..self.pos + 8) != Some(b"\\u") {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if !(0xdc00..=0xdfff).contains(&low) {
                return None;
            }
            cp = (((cp & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            len = 12;
        }
        let ch = char::from_u32(cp)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        self.pos += len;
        Some(())
    }

    fn string(&mut self, t: &mut Token) {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                *t = self.error(std::mem::replace(t, self.blank()), "unexpected end of string");
                return;
            };
            if c == b'"' {
                break;
            }
            if c == b'\\' {
                let esc = match self.s.get(self.pos + 1) {
                    Some(b'"') => b'"',
                    Some(b'\\') => b'\\',
                    Some(b'/') => b'/',
                    Some(b'b') => 8,
                    Some(b'f') => 12,
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    Some(b'u') => {
                        if self.unicode(&mut out).is_none() {
                            *t = self.error(std::mem::replace(t, self.blank()), "invalid unicode escape code");
                            return;
                        }
                        continue;
                    }
                    _ => {
                        *t = self.error(std::mem::replace(t, self.blank()), "invalid escape code");
                        return;
                    }
                };
                out.push(esc);
                self.pos += 2;
                continue;
            }
            out.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        t.kind = Tok::Str;
        t.text = out;
    }

    fn blank(&self) -> Token {
        Token { kind: Tok::End, index: 0, num: 0.0, boolean: false, text: Vec::new(), err: "" }
    }

    fn expected(&self, what: &str, t: &Token) -> String {
        let found = if t.kind == Tok::Error { t.err } else { t.kind.name() };
        format!("Expected {what} but found {found} at character {}", t.index + 1)
    }

    fn descend(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth.get() {
            return Err(format!("Found too many nested data structures ({}) at character {}", self.depth, self.pos));
        }
        Ok(())
    }

    fn value(&mut self, lua: &Lua, t: Token) -> Result<Value, String> {
        Ok(match t.kind {
            Tok::Str => Value::String(lua.create_string(&t.text).map_err(lerr)?),
            Tok::Num => Value::Number(t.num),
            Tok::Bool => Value::Boolean(t.boolean),
            Tok::Null => null(),
            Tok::ObjBegin => self.object(lua)?,
            Tok::ArrBegin => self.array(lua)?,
            _ => return Err(self.expected("value", &t)),
        })
    }

    fn object(&mut self, lua: &Lua) -> Result<Value, String> {
        self.descend()?;
        let tab = lua.create_table().map_err(lerr)?;
        let mut t = self.token();
        if t.kind == Tok::ObjEnd {
            self.depth -= 1;
            return Ok(Value::Table(tab));
        }
        loop {
            if t.kind != Tok::Str {
                return Err(self.expected("object key string", &t));
            }
            let key = lua.create_string(&t.text).map_err(lerr)?;
            let colon = self.token();
            if colon.kind != Tok::Colon {
                return Err(self.expected("colon", &colon));
            }
            let vt = self.token();
            let v = self.value(lua, vt)?;
            tab.raw_set(key, v).map_err(lerr)?;
            let next = self.token();
            if next.kind == Tok::ObjEnd {
                self.depth -= 1;
                return Ok(Value::Table(tab));
            }
            if next.kind != Tok::Comma {
                return Err(self.expected("comma or object end", &next));
            }
            t = self.token();
        }
    }

    fn array(&mut self, lua: &Lua) -> Result<Value, String> {
        self.descend()?;
        let tab = lua.create_table().map_err(lerr)?;
        let mut t = self.token();
        if t.kind == Tok::ArrEnd {
            self.depth -= 1;
            return Ok(Value::Table(tab));
        }
        let mut i = 1;
        loop {
            let v = self.value(lua, t)?;
            tab.raw_set(i, v).map_err(lerr)?;
            i += 1;
            let next = self.token();
            if next.kind == Tok::ArrEnd {
                self.depth -= 1;
                return Ok(Value::Table(tab));
            }
            if next.kind != Tok::Comma {
                return Err(self.expected("comma or array end", &next));
            }
            t = self.token();
        }
    }
}

fn decode(lua: &Lua, cfg: &Config, args: &[Value]) -> Ret {
    if args.len() != 1 {
        return Err(arg_error(1, "decode", "expected 1 argument"));
    }
    let s = super::check_string(args, 1, "decode")?;
    if s.len() >= 2 && (s[0] == 0 || s[1] == 0) {
        return Err("JSON parser does not support UTF-16 or UTF-32".into());
    }
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    let mut p = Parser { s: &s[..end], pos: 0, depth: 0, cfg };
    let t = p.token();
    let v = p.value(lua, t)?;
    let t = p.token();
    if t.kind != Tok::End {
        return Err(p.expected("the end", &t));
    }
    v.into_lua_multi(lua).map_err(lerr)
}

/// A setting function: with no argument returns the value, with one sets it.
fn setting(lua: &Lua, args: &[Value], name: &str, cell: &Cell<usize>, max: usize) -> Ret {
    if let Some(v) = args.first().filter(|v| !v.is_nil()) {
        let n = check_number(lua, args, 1, name)?;
        let _ = v;
        if !(1.0..=max as f64).contains(&n) {
            return Err(arg_error(1, name, &format!("expected integer between 1 and {max}")));
        }
        cell.set(n as usize);
    }
    (cell.get() as f64).into_lua_multi(lua).map_err(lerr)
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let cfg = Rc::new(Config::default());
    let c = cfg.clone();
    add(lua, &t, "encode", move |lua, args| {
        if args.len() != 1 {
            return Err(arg_error(1, "encode", "expected 1 argument"));
        }
        let mut out = Vec::new();
        encode(&mut out, &c, &args[0], 0)?;
        lua.create_string(&out).map_err(lerr)?.into_lua_multi(lua).map_err(lerr)
    })?;
    let c = cfg.clone();
    add(lua, &t, "decode", move |lua, args| decode(lua, &c, args))?;
    let c = cfg.clone();
    add(lua, &t, "encode_max_depth", move |lua, args| {
        setting(lua, args, "encode_max_depth", &c.encode_max_depth, i32::MAX as usize)
    })?;
    let c = cfg.clone();
    add(lua, &t, "decode_max_depth", move |lua, args| {
        setting(lua, args, "decode_max_depth", &c.decode_max_depth, i32::MAX as usize)
    })?;
    let c = cfg.clone();
    add(lua, &t, "encode_number_precision", move |lua, args| {
        setting(lua, args, "encode_number_precision", &c.precision, 14)
    })?;
    let c = cfg.clone();
    add(lua, &t, "encode_invalid_numbers", move |lua, args| {
        match args.first() {
            Some(Value::Boolean(b)) => c.encode_invalid.set(*b as u8),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"null" => c.encode_invalid.set(2),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"on" => c.encode_invalid.set(1),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => c.encode_invalid.set(0),
            _ => {}
        }
        match c.encode_invalid.get() {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            _ => Value::String(lua.create_string("null").map_err(lerr)?),
        }
        .into_lua_multi(lua)
        .map_err(lerr)
    })?;
    let c = cfg.clone();
    add(lua, &t, "decode_invalid_numbers", move |lua, args| {
        match args.first() {
            Some(Value::Boolean(b)) => c.decode_invalid.set(*b),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"on" => c.decode_invalid.set(true),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => c.decode_invalid.set(false),
            _ => {}
        }
        c.decode_invalid.get().into_lua_multi(lua).map_err(lerr)
    })?;
    let c = cfg.clone();
    add(lua, &t, "encode_sparse_array", move |lua, args| {
        match args.first() {
            Some(Value::Boolean(b)) => c.sparse_convert.set(*b),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"on" => c.sparse_convert.set(true),
            Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => c.sparse_convert.set(false),
            _ => {}
        }
        if args.len() > 1 {
            c.sparse_ratio.set(check_number(lua, args, 2, "encode_sparse_array")?.max(0.0) as usize);
        }
        if args.len() > 2 {
            c.sparse_safe.set(check_number(lua, args, 3, "encode_sparse_array")?.max(0.0) as usize);
        }
        (c.sparse_convert.get(), c.sparse_ratio.get() as f64, c.sparse_safe.get() as f64)
            .into_lua_multi(lua)
            .map_err(lerr)
    })?;
    add(lua, &t, "encode_keep_buffer", |lua, _| true.into_lua_multi(lua).map_err(lerr))?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::strtod;

    #[test]
    fn strtod_reads_what_c_reads() {
        assert_eq!(strtod(b"12abc"), Some((2, 12.0)));
        assert_eq!(strtod(b"-1.5e3,"), Some((6, -1500.0)));
        assert_eq!(strtod(b"1."), Some((2, 1.0)));
        assert_eq!(strtod(b"1e"), Some((1, 1.0)));
        assert_eq!(strtod(b"0x10"), Some((4, 16.0)));
        assert_eq!(strtod(b"-"), None);
        assert!(strtod(b"nan").is_some_and(|(n, v)| n == 3 && v.is_nan()));
        assert_eq!(strtod(b"-Infinity"), Some((9, f64::NEG_INFINITY)));
    }
}

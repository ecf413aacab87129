//! `struct`: pack, unpack and size of binary records, with the format
//! letters of the struct library Redis embeds: `<` `>` `=` endianness,
//! `!n` alignment, `x` pad byte, `b`/`B` char, `h`/`H` short, `l`/`L`
//! long (8 bytes), `T` size_t, `i`/`I`n an n-byte int (default 4, at
//! most 32), `f` float, `d` double, `s` zero-terminated string, `cn` n
//! chars (`c0`: the whole string when packing, the previous number's
//! length when unpacking); spaces are ignored.

use super::{add, arg_error, check_number, check_string, opt_integer, Ret};
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header { little: cfg!(target_endian = "little"), align: 1 }
    }
}

/// A format being read, one option at a time.
struct Fmt<'a> {
    f: &'a [u8],
    pos: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.f.get(self.pos)?;
        self.pos += 1;
        Some(c)
    }

    fn num(&mut self, default: usize) -> Result<usize, String> {
        if !self.f.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(d) = self.f.get(self.pos).filter(|c| c.is_ascii_digit()) {
            let d = (d - b'0') as usize;
            if a > (i32::MAX as usize) / 10 || a * 10 > i32::MAX as usize - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }

    /// The size of option `opt` (reading its count, if any).
    fn size(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let sz = self.num(4)?;
                if sz > MAXINTSIZE {
                    return Err(format!("integral size {sz} is larger than limit of {MAXINTSIZE}"));
                }
                sz
            }
            _ => 0,
        })
    }

    /// Options that change the header (or are errors).
    fn control(&mut self, opt: u8, h: &mut Header, func: &str) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'=' => h.little = cfg!(target_endian = "little"),
            b'!' => {
                let a = self.num(MAXALIGN)?;
                if !a.is_power_of_two() {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            _ => return Err(arg_error(1, func, &format!("invalid format option '{}'", opt as char))),
        }
        Ok(())
    }
}

fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn is_int(opt: u8) -> bool {
    matches!(opt, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

fn lerr(e: mlua::Error) -> String {
    e.to_string()
}

fn pack(lua: &Lua, args: &[Value]) -> Ret {
    let fmt = check_string(args, 1, "pack")?;
    let mut f = Fmt { f: &fmt, pos: 0 };
    let mut h = Header::new();
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            o if is_int(o) => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                let mut v: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut bytes = vec![0u8; size];
                for b in bytes.iter_mut() {
                    *b = v as u8;
                    v = v.checked_shr(8).unwrap_or(0);
                }
                if !h.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(lua, args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little { v.to_le_bytes() } else { v.to_be_bytes() });
            }
            b'd' => {
                let v = check_number(lua, args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.little { v.to_le_bytes() } else { v.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = check_string(args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h, "pack")?,
        }
    }
    lua.create_string(&out).map_err(lerr)?.into_lua_multi(lua).map_err(lerr)
}

fn get_int(data: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = l.checked_shl(8).unwrap_or(0) | b as u64;
    if little {
        data.iter().rev().for_each(|&b| push(b));
    } else {
        data.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    let bits = data.len() * 8;
    if bits == 0 {
        return 0.0;
    }
    let mask = u64::MAX.checked_shl(bits as u32 - 1).unwrap_or(0);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &[Value]) -> Ret {
    let fmt = check_string(args, 1, "unpack")?;
    let data = check_string(args, 2, "unpack")?;
    let start = opt_integer(lua, args, 3, "unpack", 1)?;
    if start <= 0 {
        return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (start - 1) as usize;
    let ld = data.len();
    let mut f = Fmt { f: &fmt, pos: 0 };
    let mut h = Header::new();
    let mut res: Vec<Value> = Vec::new();
    let short = || arg_error(2, "unpack", "data string too short");
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos += to_align(pos, &h, opt, size);
        if size > ld || pos > ld - size {
            return Err(short());
        }
        match opt {
            o if is_int(o) => {
                res.push(Value::Number(get_int(&data[pos..pos + size], h.little, o.is_ascii_lowercase())))
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().map_err(|_| short())?;
                let v = if h.little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
                res.push(Value::Number(v as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().map_err(|_| short())?;
                res.push(Value::Number(if h.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) }));
            }
            b'c' => {
                if size == 0 {
                    let prev = match res.last() {
                        Some(v @ (Value::Number(_) | Value::String(_))) => lua.coerce_number(v.clone()).ok().flatten(),
                        _ => None,
                    };
                    let Some(n) = prev else { return Err("format 'c0' needs a previous size".into()) };
                    res.pop();
                    size = if n < 0.0 { usize::MAX } else { n as usize };
                    if size > ld || pos > ld - size {
                        return Err(short());
                    }
                }
                res.push(Value::String(lua.create_string(&data[pos..pos + size]).map_err(lerr)?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                size = end + 1;
                res.push(Value::String(lua.create_string(&data[pos..pos + end]).map_err(lerr)?));
            }
            _ => f.control(opt, &mut h, "unpack")?,
        }
        pos += size;
    }
    res.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(res))
}

fn size(lua: &Lua, args: &[Value]) -> Ret {
    let fmt = check_string(args, 1, "size")?;
    let mut f = Fmt { f: &fmt, pos: 0 };
    let mut h = Header::new();
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h, "size")?;
        }
        pos += size;
    }
    (pos as f64).into_lua_multi(lua).map_err(lerr)
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    add(lua, &t, "pack", pack)?;
    add(lua, &t, "unpack", unpack)?;
    add(lua, &t, "size", size)?;
    Ok(t)
}

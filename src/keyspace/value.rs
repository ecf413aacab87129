//! Stored values. Strings keep Redis's three encodings visible to
//! OBJECT ENCODING: `int` (an i64 kept as a number), `embstr` (short, set
//! whole) and `raw` (long, or modified in place by APPEND/SETRANGE/SETBIT).
//! Collections are boxed so the enum stays 32 bytes; their structures live
//! in their own files (`list.rs`, `hash.rs`, `set.rs`, `zset.rs`).

use super::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

/// Longest string Redis stores as embstr.
pub const EMBSTR_MAX: usize = 44;

/// Longest string kept inside the value itself (no allocation); the
/// enum stays 32 bytes.
pub const INLINE_MAX: usize = 30;

pub enum Value {
    /// A string that is the canonical decimal form of an i64.
    Int(i64),
    /// A short string stored inline: GET reads it from the entry's own
    /// cache lines, as Redis's embstr does.
    Inline {
        len: u8,
        buf: [u8; INLINE_MAX],
    },
    /// Any other string; `raw` marks values grown in place (Redis's raw encoding).
    Str {
        data: Vec<u8>,
        raw: bool,
    },
    List(Box<List>),
    /// Unboxed: small hashes and sets fit in the value itself.
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
    Stream(Box<Stream>),
}

/// The key holds a value of another type than the command works on:
/// Redis's WRONGTYPE error, with its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongType;

impl WrongType {
    pub const MSG: &'static str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    /// The error reply's text.
    pub fn msg(self) -> &'static str {
        Self::MSG
    }
}

impl From<WrongType> for &'static str {
    fn from(e: WrongType) -> Self {
        e.msg()
    }
}

impl From<WrongType> for String {
    fn from(e: WrongType) -> Self {
        e.msg().to_string()
    }
}

/// A collection type a key can hold: what the typed lookups
/// (`Keyspace::get_typed`, `get_typed_mut`, `modify_typed`) work on.
pub trait Typed: Sized {
    /// The value as this type; None if it holds another.
    fn of(v: &Value) -> Option<&Self>;
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
    /// A new collection as a value to store.
    fn into_value(self) -> Value;
    /// Whether a key left holding this must go: Redis keeps no empty
    /// list, hash, set or sorted set (an empty stream stays).
    fn leaves_key_empty(&self) -> bool;
}

/// Typed access to a collection value (`None` means another type: the
/// caller replies WRONGTYPE), as methods and as `Typed`.
macro_rules! accessors {
    ($($get:ident, $get_mut:ident, $variant:ident, $ty:ty, $wrap:expr, $empty:expr;)*) => {
        impl Value {
            $(
                #[inline]
                pub fn $get(&self) -> Option<&$ty> {
                    match self {
                        Value::$variant(v) => Some(v),
                        _ => None,
                    }
                }
                #[inline]
                pub fn $get_mut(&mut self) -> Option<&mut $ty> {
                    match self {
                        Value::$variant(v) => Some(v),
                        _ => None,
                    }
                }
            )*
        }
        $(
            impl Typed for $ty {
                #[inline]
                fn of(v: &Value) -> Option<&Self> {
                    v.$get()
                }
                #[inline]
                fn of_mut(v: &mut Value) -> Option<&mut Self> {
                    v.$get_mut()
                }
                fn into_value(self) -> Value {
                    ($wrap)(self)
                }
                fn leaves_key_empty(&self) -> bool {
                    ($empty)(self)
                }
            }
        )*
    };
}

accessors! {
    as_list, as_list_mut, List, List, |v| Value::List(Box::new(v)), List::is_empty;
    as_hash, as_hash_mut, Hash, Hash, Value::Hash, Hash::is_empty;
    as_set, as_set_mut, Set, Set, Value::Set, Set::is_empty;
    as_zset, as_zset_mut, ZSet, ZSet, Value::ZSet, ZSet::is_empty;
    as_stream, as_stream_mut, Stream, Stream, |v| Value::Stream(Box::new(v)), |_: &Stream| false;
}

impl Value {
    /// A string value as SET stores it: integers become `int`.
    pub fn from_bytes(b: &[u8]) -> Value {
        if b.len() <= 20 {
            if let Some(n) = crate::util::parse_i64(b) {
                return Value::Int(n);
            }
        }
        if b.len() <= INLINE_MAX {
            let mut buf = [0u8; INLINE_MAX];
            buf[..b.len()].copy_from_slice(b);
            return Value::Inline { len: b.len() as u8, buf };
        }
        Value::Str { data: b.to_vec(), raw: b.len() > EMBSTR_MAX }
    }

    pub fn from_vec(v: Vec<u8>) -> Value {
        if v.len() <= INLINE_MAX {
            return Value::from_bytes(&v);
        }
        let raw = v.len() > EMBSTR_MAX;
        Value::Str { data: v, raw }
    }

    /// A string modified in place: Redis keeps such values `raw`.
    pub fn raw(v: Vec<u8>) -> Value {
        Value::Str { data: v, raw: true }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Inline { .. } | Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Inline { .. } => "embstr",
            Value::Str { raw: true, .. } => "raw",
            Value::Str { raw: false, .. } => "embstr",
            // Redis 7.0 reports every list as a quicklist (7.2 reports
            // small ones as listpack); shardis packs small lists as 7.2
            // does (`List::encoding`) but answers as 7.0.
            Value::List(_) => "quicklist",
            Value::Hash(v) => v.encoding(),
            // Likewise 7.0 has no listpack sets: a small set that is not
            // all integers is a hashtable there.
            Value::Set(v) => match v.encoding() {
                "listpack" => "hashtable",
                e => e,
            },
            Value::ZSet(v) => v.encoding(),
            Value::Stream(v) => v.encoding(),
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Inline { .. } | Value::Str { .. })
    }

    /// Bytes of a string value; integers are formatted into `buf`.
    pub fn str_bytes<'a>(&'a self, buf: &'a mut [u8; 24]) -> Option<&'a [u8]> {
        match self {
            Value::Int(n) => Some(crate::protocol::reply::fmt_i64(buf, *n)),
            Value::Inline { len, buf: b } => Some(&b[..*len as usize]),
            Value::Str { data, .. } => Some(data),
            _ => None,
        }
    }

    /// An owned copy (for COPY and cross-shard transfer).
    pub fn deep_clone(&self) -> Value {
        match self {
            Value::Int(n) => Value::Int(*n),
            Value::Inline { len, buf } => Value::Inline { len: *len, buf: *buf },
            Value::Str { data, raw } => Value::Str { data: data.clone(), raw: *raw },
            Value::List(v) => Value::List(Box::new(v.deep_clone())),
            Value::Hash(v) => Value::Hash(v.deep_clone()),
            Value::Set(v) => Value::Set(v.deep_clone()),
            Value::ZSet(v) => Value::ZSet(v.deep_clone()),
            Value::Stream(v) => Value::Stream(Box::new(v.deep_clone())),
        }
    }

    /// Approximate heap bytes, for INFO memory.
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Int(_) | Value::Inline { .. } => 0,
            Value::Str { data, .. } => data.capacity(),
            Value::List(v) => v.mem_usage(),
            Value::Hash(v) => v.mem_usage(),
            Value::Set(v) => v.mem_usage(),
            Value::ZSet(v) => v.mem_usage(),
            Value::Stream(v) => v.mem_usage(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_stays_small() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
        // Small collections live inside the value (no allocation of their own).
        assert_eq!(std::mem::size_of::<super::super::zset::ZSet>(), 24);
    }

    #[test]
    fn encodings_follow_redis() {
        assert_eq!(Value::from_bytes(b"123").encoding(), "int");
        assert_eq!(Value::from_bytes(b"abc").encoding(), "embstr");
        assert_eq!(Value::from_bytes(&[b'x'; 40]).encoding(), "embstr");
        assert_eq!(Value::from_bytes(&[b'x'; 45]).encoding(), "raw");
        assert_eq!(Value::List(Box::default()).encoding(), "quicklist", "as Redis 7.0, whatever the size");
        let mut set = super::super::set::Set::default();
        set.add(b"a");
        assert_eq!(Value::Set(set).encoding(), "hashtable", "as Redis 7.0: no listpack sets");
        let mut b = [0u8; 24];
        assert_eq!(Value::from_bytes(b"abc").str_bytes(&mut b), Some(&b"abc"[..]));
    }
}

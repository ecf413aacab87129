//! Key specifications: where a command's keys are among its arguments and
//! what it does to each, as Redis 7 describes them (`key_specs` in its
//! command JSON). A spec is a way to find where the keys start (`Begin`)
//! and a way to find them from there (`Find`). The router, transactions,
//! blocking and COMMAND GETKEYS/INFO read keys only through these.
//!
//! Also the legacy `(first, last, step)` triple that COMMAND INFO still
//! reports, derived from the specs when the table is built, and the
//! "movable keys" property: a command whose keys cannot be read off the
//! triple alone.

use super::Args;

/// What a command does with a key (COMMAND INFO's key-spec flags).
pub type KeyFlags = u16;

/// Read-only access.
pub const RO: KeyFlags = 1 << 0;
/// Read and write.
pub const RW: KeyFlags = 1 << 1;
/// Overwritten: the old value is not read.
pub const OW: KeyFlags = 1 << 2;
/// Removed.
pub const RM: KeyFlags = 1 << 3;
/// Returns, copies or uses user data from the key.
pub const ACCESS: KeyFlags = 1 << 4;
/// Updates data in the key.
pub const UPDATE: KeyFlags = 1 << 5;
/// Adds data to the key, never modifies or deletes existing data.
pub const INSERT: KeyFlags = 1 << 6;
/// Deletes data from the key.
pub const DELETE: KeyFlags = 1 << 7;
/// Not actually a key (but routed like one).
pub const NOT_KEY: KeyFlags = 1 << 8;
/// The spec may not find every key: the command has its own `keys_fn`.
pub const INCOMPLETE: KeyFlags = 1 << 9;
/// The flags depend on the arguments.
pub const VARIABLE_FLAGS: KeyFlags = 1 << 10;

/// Key-spec flag names in COMMAND INFO's order.
pub const FLAG_NAMES: &[(KeyFlags, &str)] = &[
    (RO, "RO"),
    (RW, "RW"),
    (OW, "OW"),
    (RM, "RM"),
    (ACCESS, "access"),
    (UPDATE, "update"),
    (INSERT, "insert"),
    (DELETE, "delete"),
    (NOT_KEY, "not_key"),
    (INCOMPLETE, "incomplete"),
    (VARIABLE_FLAGS, "variable_flags"),
];

/// Where the search for keys starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// At this argument.
    Index(i32),
    /// After the first argument equal (any case) to `keyword`, searched
    /// forward from `from`, or backward from `argc + from` when negative.
    Keyword { keyword: &'static str, from: i32 },
    /// Cannot be told from the arguments (the command's `keys_fn` knows).
    Unknown,
}

/// How keys are found from where the search began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Find {
    /// Keys up to `last` (relative to the start; negative: from the end
    /// of the arguments), every `step`-th; with `limit` > 0 and last -1,
    /// only the first 1/limit of what remains (XREAD's STREAMS a b 0 0).
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The argument at start + `keynum` counts the keys; the first is at
    /// start + `first`, then every `step`-th.
    Keynum {
        keynum: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: KeyFlags,
    pub begin: Begin,
    pub find: Find,
}

/// The single key at argument `pos`.
pub const fn at(pos: i32, flags: KeyFlags) -> KeySpec {
    KeySpec { flags, begin: Begin::Index(pos), find: Find::Range { last: 0, step: 1, limit: 0 } }
}

/// The key after `keyword` (searched from `from`).
pub const fn kw(keyword: &'static str, from: i32, flags: KeyFlags) -> KeySpec {
    KeySpec { flags, begin: Begin::Keyword { keyword, from }, find: Find::Range { last: 0, step: 1, limit: 0 } }
}

/// Keys that cannot be found from the arguments by a spec.
pub const fn unknown(flags: KeyFlags) -> KeySpec {
    KeySpec { flags, begin: Begin::Unknown, find: Find::Unknown }
}

impl KeySpec {
    pub const fn range(mut self, last: i32, step: i32, limit: i32) -> Self {
        self.find = Find::Range { last, step, limit };
        self
    }

    pub const fn keynum(mut self, keynum: i32, first: i32, step: i32) -> Self {
        self.find = Find::Keynum { keynum, first, step };
        self
    }

    /// A plain index + range spec (what the legacy triple can express).
    const fn is_range(&self) -> bool {
        matches!((self.begin, self.find), (Begin::Index(_), Find::Range { .. }))
    }

    /// For an index + range spec (most commands' only one: GET, SET, MSET,
    /// DEL…), its key positions among `argc` arguments, computed inline
    /// as `bounds` would (possibly none); None for any other spec. The
    /// ACL check takes this path first: `bounds` is not inlined and the
    /// general walk costs more than the check of one key.
    #[inline]
    pub fn index_range(&self, argc: usize) -> Option<Positions> {
        let (Begin::Index(p), Find::Range { last, step, limit }) = (self.begin, self.find) else { return None };
        let (argc, start) = (argc as i64, p as i64);
        if start < 1 || start >= argc {
            return Some(Positions { next: 1, last: 0, step: 1 });
        }
        let last = range_last(start, argc, last, limit);
        if last < start {
            return Some(Positions { next: 1, last: 0, step: 1 });
        }
        Some(Positions { next: start as usize, last: last as usize, step: step.max(1) as usize })
    }

    /// This spec's key positions in `args`, appended to `out` with the
    /// spec's flags. Positions past the end (a
    /// short, malformed command) are left out; Err when the command is
    /// malformed so that its keys cannot be told (a key count that is not
    /// a number or runs past the arguments).
    pub fn positions(&self, args: &Args, out: &mut Vec<KeyRef>) -> Result<(), Malformed> {
        if let Some((first, last, step)) = self.bounds(args)? {
            let mut i = first;
            while i <= last {
                out.push(KeyRef { pos: i as usize, flags: self.flags });
                i += step;
            }
        }
        Ok(())
    }

    /// The first and last key positions and the step between them; None
    /// when there are no keys to find.
    fn bounds(&self, args: &Args) -> Result<Option<(i64, i64, i64)>, Malformed> {
        let argc = args.len() as i64;
        let start = match self.begin {
            Begin::Index(p) => p as i64,
            Begin::Keyword { keyword, from } => {
                // Forward up to the next-to-last argument (a keyword last
                // has no key after it); backward down to argument 1.
                let found = if from >= 0 {
                    (from as i64..argc - 1).find(|&i| args.is(i as usize, keyword))
                } else {
                    (1..=(argc + from as i64).min(argc - 2)).rev().find(|&i| args.is(i as usize, keyword))
                };
                match found {
                    Some(i) => i + 1,
                    None => return Ok(None),
                }
            }
            Begin::Unknown => return Ok(None),
        };
        if start < 1 || start >= argc {
            return Ok(None);
        }
        let (first, last, step) = match self.find {
            Find::Range { last, step, limit } => (start, range_last(start, argc, last, limit), step.max(1) as i64),
            Find::Keynum { keynum, first, step } => {
                let at = start + keynum as i64;
                let n = match (at < argc).then(|| crate::util::parse_i64(args.get(at as usize))).flatten() {
                    Some(n) if n >= 0 => n,
                    _ => return Err(Malformed),
                };
                let (first, step) = (start + first as i64, step.max(1) as i64);
                // The count is the client's: any i64 (saturating, no overflow).
                let last = (n - 1).saturating_mul(step).saturating_add(first);
                if n > 0 && last >= argc {
                    return Err(Malformed);
                }
                (first, last, step)
            }
            Find::Unknown => return Ok(None),
        };
        Ok(Some((first, last, step)))
    }
}

/// The last key position of a range spec beginning at `start` among
/// `argc` arguments: `last` counted from `start`, or from the end when
/// negative (with `limit`, a share of what follows `start`).
fn range_last(start: i64, argc: i64, last: i32, limit: i32) -> i64 {
    let at = if last >= 0 {
        start + last as i64
    } else if limit > 0 {
        start + (argc - start) / limit as i64 + last as i64
    } else {
        argc + last as i64
    };
    at.min(argc - 1)
}

/// A key found in a request: its argument index and what the command does
/// with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: KeyFlags,
}

/// A command whose keys cannot be told from its arguments.
#[derive(Debug)]
pub struct Malformed;

/// Every key of `specs` in `args`, spec by spec; none at all when the
/// command is malformed (it then replies its own error wherever it runs,
/// and COMMAND GETKEYS says so, as Redis does).
pub fn spec_positions(specs: &[KeySpec], args: &Args) -> Vec<KeyRef> {
    let mut out = Vec::new();
    for s in specs {
        if s.positions(args, &mut out).is_err() {
            return Vec::new();
        }
    }
    out
}

/// `f` on every key of `specs` in `args`, as `spec_positions` finds them
/// (none when the command is malformed), without collecting them: the ACL
/// check runs this on every command of a restricted user. Stops at the
/// first Err `f` returns.
pub fn try_for_each_spec_key<E>(
    specs: &[KeySpec],
    args: &Args,
    mut f: impl FnMut(KeyRef) -> Result<(), E>,
) -> Result<(), E> {
    try_for_each_spec_range(specs, args, |flags, positions| {
        for pos in positions {
            f(KeyRef { pos, flags })?;
        }
        Ok(())
    })
}

/// Every `step`th argument index from `next` to `last` (a plain loop:
/// `RangeInclusive::step_by` costs several times more per key on the ACL
/// check's path).
#[derive(Clone, Copy, Debug)]
pub struct Positions {
    next: usize,
    last: usize,
    step: usize,
}

impl Iterator for Positions {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.next > self.last {
            return None;
        }
        let i = self.next;
        self.next += self.step;
        Some(i)
    }
}

/// The keys `specs` find in `args`, a spec at a time: `f(flags, their
/// positions)`, for callers that decide once per spec what they then do
/// for each key (the ACL check: the access a key needs).
pub fn try_for_each_spec_range<E>(
    specs: &[KeySpec],
    args: &Args,
    mut f: impl FnMut(KeyFlags, Positions) -> Result<(), E>,
) -> Result<(), E> {
    // A malformed key count in any spec means no keys at all, so those
    // specs are looked at before the first key is handed out.
    for s in specs {
        if matches!(s.find, Find::Keynum { .. }) && s.bounds(args).is_err() {
            return Ok(());
        }
    }
    for s in specs {
        if let Ok(Some((first, last, step))) = s.bounds(args) {
            if first <= last {
                f(s.flags, Positions { next: first as usize, last: last as usize, step: step.max(1) as usize })?;
            }
        }
    }
    Ok(())
}

/// The legacy `(first, last, step)` COMMAND INFO reports, and whether the
/// keys are movable (not all described by it). The triple covers the
/// index-and-range specs that follow one another with step 1 (or the one
/// spec, if there is just one, whatever its step); anything else makes the
/// keys movable, as does an incomplete spec.
pub const fn legacy_range(specs: &[KeySpec]) -> ((i32, i32, i32), bool) {
    if specs.len() == 1 && specs[0].is_range() {
        if let (Begin::Index(pos), Find::Range { last, step, .. }) = (specs[0].begin, specs[0].find) {
            let last = if last < 0 { last } else { pos + last };
            return ((pos, last, step), specs[0].flags & INCOMPLETE != 0);
        }
    }
    let mut movable = false;
    let (mut first, mut last) = (i32::MAX, 0i32);
    let mut prev_last = 0i32;
    let mut i = 0;
    while i < specs.len() {
        let s = specs[i];
        i += 1;
        let (pos, rel_last, step) = match (s.begin, s.find) {
            (Begin::Index(pos), Find::Range { last, step, .. }) => (pos, last, step),
            _ => {
                movable = true;
                continue;
            }
        };
        if step != 1 || (prev_last != 0 && prev_last != pos - 1) {
            movable = true;
            continue;
        }
        if s.flags & INCOMPLETE != 0 {
            movable = true;
        }
        if pos < first {
            first = pos;
        }
        let abs = if rel_last >= 0 { pos + rel_last } else { rel_last };
        // "Up to the end" (negative) wins over any absolute position.
        if (abs as u32) > (last as u32) {
            last = abs;
        }
        prev_last = last;
    }
    if first == i32::MAX {
        return ((0, 0, 0), !specs.is_empty() || movable);
    }
    ((first, last, 1), movable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::OwnedArgs;

    fn pos(specs: &[KeySpec], line: &str) -> Vec<usize> {
        let parts: Vec<&str> = line.split(' ').collect();
        let a = OwnedArgs::from_slices(&parts);
        let found = spec_positions(specs, &a.args());
        // The walk without a Vec hands out the same keys.
        let mut walked = Vec::new();
        let _ = try_for_each_spec_key(specs, &a.args(), |k| {
            walked.push(k);
            Ok::<(), ()>(())
        });
        assert_eq!(walked, found, "{line}");
        found.into_iter().map(|k| k.pos).collect()
    }

    #[test]
    fn legacy_triples_as_redis_reports_them() {
        assert_eq!(legacy_range(&[at(1, RO)]), ((1, 1, 1), false));
        assert_eq!(legacy_range(&[at(1, OW).range(-1, 2, 0)]), ((1, -1, 2), false));
        assert_eq!(legacy_range(&[at(2, OW), at(3, RO).range(-1, 1, 0)]), ((2, -1, 1), false));
        assert_eq!(legacy_range(&[at(1, RW), at(2, RW)]), ((1, 2, 1), false));
        assert_eq!(legacy_range(&[at(1, OW), at(2, RO).keynum(0, 1, 1)]), ((1, 1, 1), true));
        assert_eq!(legacy_range(&[kw("STREAMS", 1, RO).range(-1, 1, 2)]), ((0, 0, 0), true));
        assert_eq!(legacy_range(&[at(1, RO), unknown(RO), unknown(OW)]), ((1, 1, 1), true));
        assert_eq!(legacy_range(&[at(3, RW), kw("KEYS", -2, RW | INCOMPLETE).range(-1, 1, 0)]), ((3, 3, 1), true));
        assert_eq!(legacy_range(&[]), ((0, 0, 0), false));
    }

    #[test]
    fn specs_find_keys() {
        assert_eq!(pos(&[at(1, RO).range(-2, 1, 0)], "BLPOP a b 0"), [1, 2]);
        assert_eq!(pos(&[at(1, OW).range(-1, 2, 0)], "MSET a 1 b 2"), [1, 3]);
        assert_eq!(pos(&[at(1, RW).keynum(0, 1, 1)], "LMPOP 2 a b LEFT"), [2, 3]);
        // A count past the arguments, or not a number: no keys.
        assert_eq!(pos(&[at(1, RW).keynum(0, 1, 1)], "LMPOP 5 a b LEFT"), Vec::<usize>::new());
        assert_eq!(pos(&[at(1, RW).keynum(0, 1, 1)], "LMPOP x a LEFT"), Vec::<usize>::new());
        assert_eq!(pos(&[at(1, RW).keynum(0, 1, 2)], "LMPOP 9223372036854775807 a LEFT"), Vec::<usize>::new());
        assert_eq!(pos(&[at(1, OW), at(2, RO).keynum(0, 1, 1)], "ZUNIONSTORE d x a"), Vec::<usize>::new());
        assert_eq!(pos(&[at(1, OW), at(2, RO).keynum(0, 1, 1)], "ZUNIONSTORE d 2 a b"), [1, 3, 4]);
        assert_eq!(pos(&[kw("STREAMS", 1, RO).range(-1, 1, 2)], "XREAD COUNT 2 STREAMS a b 0 0"), [4, 5]);
        assert_eq!(pos(&[at(1, RO), kw("STORE", 6, OW)], "GEORADIUS k 1 2 3 m STORE d"), [1, 7]);
        // A keyword as the last argument names no key.
        assert_eq!(pos(&[at(1, RO), kw("STORE", 6, OW)], "GEORADIUS k 1 2 3 m STORE"), [1]);
        assert_eq!(pos(&[kw("KEYS", -2, RW).range(-1, 1, 0)], "MIGRATE h p \"\" 0 5 KEYS a b"), [7, 8]);
        assert_eq!(pos(&[at(2, RO)], "OBJECT HELP"), Vec::<usize>::new());
    }
}

//! SORT and SORT_RO: sort a list, set or sorted set numerically or
//! lexicographically, optionally by values of other keys (BY), returning
//! other keys' values (GET), and storing the result as a list (STORE).
//! Replies, error texts and their order follow Redis 7.0.
//!
//! BY and GET patterns name keys that are not among the command's keys, so
//! the shard layer cannot route them by the arguments. With several shards,
//! a pattern whose hash tag puts every key it forms in the sorted key's
//! slot runs where that key lives; any other runs as a transaction over
//! the shards the pattern may reach (`sort_reach`): the first run on its
//! temporary keyspace lists the pattern keys it lacks (`Keyspace::missing`)
//! and the transaction runs again with them pulled, until nothing is
//! missing, so the result is isolated from every other client. A script
//! that reaches such a SORT on its shard's own keyspace is run again as a
//! transaction (`script::Running::out_of_reach`), and so is an EXEC that
//! holds a script. Redis Cluster's refusal remains only where none of
//! that applies.

use super::flags::*;
use super::keyspec::*;
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::{err, Args, Ctx};
use crate::keyspace::list::{End, List};
use crate::keyspace::notify as ev;
use crate::keyspace::Value;
use crate::util::num::{c_str, parse_sort_double};
use crate::util::{crc16, key_slot, parse_i64, SLOTS};
use std::cmp::Ordering;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h))
        .acl(acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS)
        .group(Group::Generic)
}

pub static COMMANDS: &[CommandDef] = &[
    c("sort", -2, WRITE | DENYOOM, &[at(1, RO | ACCESS), unknown(RO | ACCESS), unknown(OW | UPDATE)], sort)
        .since("1.0.0")
        .keys_fn(sort_keys)
        .reach(sort_reach)
        .store_event(ev::LIST, "sortstore"),
    c("sort_ro", -2, READONLY, &[at(1, RO | ACCESS), unknown(RO | ACCESS)], sort_ro).since("7.0.0").reach(sort_reach),
];

/// Key positions of SORT: the key, and the destination the parser would
/// store to (the last STORE), so the shard that owns it takes part.
fn sort_keys(args: &Args) -> Vec<KeyRef> {
    let mut keys = vec![KeyRef { pos: 1, flags: RO | ACCESS }];
    if let Ok(o) = parse_options(args, false, None, false) {
        if let Some(d) = o.store {
            keys.push(KeyRef { pos: d, flags: OW | UPDATE });
        }
    }
    keys
}

/// Where BY/GET patterns may form keys outside the sorted key's slot:
/// None when every pattern keeps to it (or the options do not parse: the
/// command answers the error where its key lives).
fn sort_reach(args: &Args) -> Option<super::Reach> {
    let o = parse_options(args, false, None, false).ok()?;
    let slot = key_slot(&args[1]);
    let mut slots = Vec::new();
    for p in o.by.iter().chain(&o.gets).map(|&i| &args[i]).filter(|p| has_star(p)) {
        match pattern_slot(p) {
            Some(s) if s == slot => {}
            Some(s) => slots.push(s),
            None => return Some(super::Reach::Anywhere),
        }
    }
    (!slots.is_empty()).then_some(super::Reach::Slots(slots))
}

const BY_DENIED: &str =
    "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";
const GET_DENIED: &str =
    "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";
const BY_TXN: &str = "ERR BY option of SORT with a pattern is not supported in a cross-shard transaction";
const GET_TXN: &str = "ERR GET option of SORT with a pattern is not supported in a cross-shard transaction";
/// The answer of a run that lacked pattern keys: a lone SORT runs again
/// with them; inside EXEC (or after too many runs) it stands.
const MISSING: &str = "ERR SORT pattern keys changed while the command was tried; try again";
const SCORE_ERR: &str = "ERR One or more scores can't be converted into double";

/// Parsed options; patterns and the destination are argument indexes.
#[derive(Debug, Default, PartialEq)]
struct Options {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<usize>,
    /// BY names a pattern without '*': keep the elements' own order.
    dontsort: bool,
    gets: Vec<usize>,
    store: Option<usize>,
}

fn has_star(p: &[u8]) -> bool {
    c_str(p).contains(&b'*')
}

/// The slot every key a pattern forms falls in, if that is certain: a
/// non-empty `{tag}` closed before any glob character (Redis Cluster's
/// patternHashSlot). Patterns given to SORT have a '*', so without such a
/// tag the answer is None.
fn pattern_slot(p: &[u8]) -> Option<u16> {
    let mut open: Option<usize> = None;
    let mut empty_tag = false;
    for (i, &b) in p.iter().enumerate() {
        match b {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() && !empty_tag => open = Some(i),
            b'}' if !empty_tag => {
                if let Some(s) = open {
                    if i == s + 1 {
                        // `{}`: the whole key is hashed; later braces don't count.
                        empty_tag = true;
                    } else {
                        return Some(crc16(&p[s + 1..i]) & (SLOTS - 1));
                    }
                }
            }
            _ => {}
        }
    }
    Some(crc16(p) & (SLOTS - 1))
}

/// Which keyspace a SORT runs on, for the pattern rules.
#[derive(Clone, Copy, PartialEq)]
enum Space {
    /// The shard's own.
    Shard,
    /// A transaction's temporary keyspace that knows what it pulled.
    Pulled,
    /// One that does not: pattern keys cannot be told apart from missing.
    Unpulled,
}

/// Parse the options left to right as Redis does. `check` applies the
/// pattern rules (the key-position function parses without them) for a
/// command running on that keyspace. `sharded`: keys may live on other
/// shards, so on a shard's own keyspace Redis Cluster's rule for patterns
/// is in force.
fn parse_options(args: &Args, readonly: bool, check: Option<Space>, sharded: bool) -> Result<Options, String> {
    let mut o = Options::default();
    let n = args.len();
    let kw = |i: usize, w: &str| args[i].eq_ignore_ascii_case(w.as_bytes());
    // The cluster rule is in force when keys may live on other shards.
    let key_slot_if_sharded = || sharded.then(|| key_slot(&args[1]));
    let mut j = 2;
    while j < n {
        let left = n - j - 1;
        if kw(j, "asc") {
            o.desc = false;
        } else if kw(j, "desc") {
            o.desc = true;
        } else if kw(j, "alpha") {
            o.alpha = true;
        } else if kw(j, "limit") && left >= 2 {
            let start = parse_i64(&args[j + 1]).ok_or(err::NOT_INT)?;
            let count = parse_i64(&args[j + 2]).ok_or(err::NOT_INT)?;
            o.limit = Some((start, count));
            j += 2;
        } else if !readonly && kw(j, "store") && left >= 1 {
            o.store = Some(j + 1);
            j += 1;
        } else if kw(j, "by") && left >= 1 {
            let p = &args[j + 1];
            o.by = Some(j + 1);
            if !has_star(p) {
                o.dontsort = true;
            } else if let Some(space) = check {
                if space == Space::Shard && key_slot_if_sharded().is_some_and(|s| pattern_slot(p) != Some(s)) {
                    return Err(BY_DENIED.into());
                }
                if space == Space::Unpulled {
                    return Err(BY_TXN.into());
                }
            }
            j += 1;
        } else if kw(j, "get") && left >= 1 {
            let p = &args[j + 1];
            if let Some(space) = check.filter(|_| has_star(p)) {
                if space == Space::Shard && key_slot_if_sharded().is_some_and(|s| pattern_slot(p) != Some(s)) {
                    return Err(GET_DENIED.into());
                }
                if space == Space::Unpulled {
                    return Err(GET_TXN.into());
                }
            }
            o.gets.push(j + 1);
            j += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    Ok(o)
}

/// What a BY/GET pattern names for one element.
#[derive(Debug, PartialEq)]
enum Lookup {
    /// `#`: the element itself.
    Element,
    /// No '*' in the pattern: nothing.
    Nothing,
    /// A key, and a hash field when the pattern has `->field`.
    Key(Vec<u8>, Option<Vec<u8>>),
}

/// Substitute `elem` for the first '*' of `pattern` (Redis's
/// lookupKeyByPattern). The '*' and "->" are searched as C strings do,
/// up to the first NUL, but the rest of the pattern is kept whole.
fn substitute(pattern: &[u8], elem: &[u8]) -> Lookup {
    if c_str(pattern) == b"#" {
        return Lookup::Element;
    }
    let head = c_str(pattern);
    let Some(star) = head.iter().position(|&b| b == b'*') else { return Lookup::Nothing };
    let after = &head[star + 1..];
    // "->" needs at least one character after it to name a field.
    let field_at = after.windows(2).position(|w| w == b"->").filter(|&i| i + 2 < after.len()).map(|i| star + 1 + i);
    let (key_end, field) = match field_at {
        Some(f) => (f, Some(pattern[f + 2..].to_vec())),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    Lookup::Key(key, field)
}

/// The value a pattern names for `elem`: a string key's value or a hash
/// field; None for anything else, as Redis gives nil. On a temporary
/// keyspace a key that was not pulled is listed as missing (and is None).
fn lookup_pattern(ctx: &mut Ctx, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    match substitute(pattern, elem) {
        Lookup::Element => Some(elem.to_vec()),
        Lookup::Nothing => None,
        Lookup::Key(key, field) => {
            if let Some(pulled) = &ctx.ks.pulled {
                let dk = (ctx.db as u8, key);
                if !pulled.contains(&dk) {
                    ctx.ks.missing.push(dk);
                    return None;
                }
                return lookup_value(ctx, &dk.1, field);
            }
            lookup_value(ctx, &key, field)
        }
    }
}

fn lookup_value(ctx: &mut Ctx, key: &[u8], field: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let e = ctx.ks.lookup(ctx.db, key, ctx.now)?;
    match field {
        None => {
            let mut buf = [0u8; 24];
            e.value.str_bytes(&mut buf).map(|b| b.to_vec())
        }
        Some(f) => e.value.as_hash().and_then(|h| h.get(&f)).map(|v| v.to_vec()),
    }
}

/// One element to sort with what it is compared by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    /// ALPHA with BY: the BY value (None when the key is missing).
    by: Option<Vec<u8>>,
}

/// Redis's sortCompare: numeric with ties broken by the elements as binary
/// strings; ALPHA by the element or by the BY value (missing first).
fn compare(a: &Item, b: &Item, alpha: bool, by: bool, desc: bool) -> Ordering {
    let o = if !alpha {
        if a.score > b.score {
            Ordering::Greater
        } else if a.score < b.score {
            Ordering::Less
        } else {
            a.elem.cmp(&b.elem)
        }
    } else if by {
        match (&a.by, &b.by) {
            (Some(x), Some(y)) => x.cmp(y),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        }
    } else {
        a.elem.cmp(&b.elem)
    };
    if desc {
        o.reverse()
    } else {
        o
    }
}

/// Start and end (inclusive) of the LIMIT window over `len` elements; the
/// window is empty when end < start.
fn window(limit: Option<(i64, i64)>, len: usize) -> (i64, i64) {
    let len = len as i64;
    let (offset, count) = limit.unwrap_or((0, -1));
    let start = offset.max(0).min(len);
    let count = count.max(-1).min(len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        return (len - 1, len - 2);
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination]
fn sort(ctx: &mut Ctx, args: &Args) {
    sort_generic(ctx, args, false)
}

/// SORT_RO: SORT without STORE.
fn sort_ro(ctx: &mut Ctx, args: &Args) {
    sort_generic(ctx, args, true)
}

fn sort_generic(ctx: &mut Ctx, args: &Args, readonly: bool) {
    let space = match (ctx.ks.track_touched.is_some(), ctx.ks.pulled.is_some()) {
        (false, _) => Space::Shard,
        (true, true) => Space::Pulled,
        (true, false) => Space::Unpulled,
    };
    let mut o = match parse_options(args, readonly, Some(space), ctx.facts.shards > 1) {
        Ok(o) => o,
        Err(e) => return ctx.error(&e),
    };
    let key = &args[1];
    let (db, now) = (ctx.db, ctx.now);
    // The elements in the collection's own order; None: no such key.
    let (elems, kind) = match ctx.ks.lookup(db, key, now) {
        None => (Vec::new(), Kind::List),
        Some(e) => match &mut e.value {
            Value::List(l) => (l.iter().map(|v| v.to_vec()).collect::<Vec<_>>(), Kind::List),
            Value::Set(s) => {
                let mut v = Vec::with_capacity(s.len());
                s.for_each(|m| v.push(m.to_vec()));
                (v, Kind::Set)
            }
            Value::ZSet(z) => {
                // Redis converts the sorted set to its skiplist form for
                // SORT (it stays so), visible in OBJECT ENCODING.
                z.force_skiplist();
                (z.iter().map(|(m, _)| m.to_vec()).collect(), Kind::ZSet)
            }
            _ => return ctx.error(err::WRONGTYPE),
        },
    };
    // A set has no order of its own: stored results are sorted (ALPHA, by
    // the elements) so that they are the same everywhere.
    if o.dontsort && kind == Kind::Set && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let (start, end) = window(o.limit, elems.len());
    let mut items: Vec<Item> = elems.into_iter().map(|elem| Item { elem, score: 0.0, by: None }).collect();
    if o.dontsort {
        // Lists and sorted sets keep their order, reversed by DESC.
        if o.desc && kind != Kind::Set {
            items.reverse();
        }
    } else {
        let mut bad = false;
        for it in items.iter_mut() {
            let v = match o.by {
                Some(p) => match lookup_pattern(ctx, &args[p], &it.elem) {
                    Some(v) => Some(v),
                    // A missing BY value: score 0, or first under ALPHA.
                    None => continue,
                },
                None => None,
            };
            if o.alpha {
                it.by = v;
            } else {
                match parse_sort_double(v.as_deref().unwrap_or(&it.elem)) {
                    Some(s) => it.score = s,
                    None => bad = true,
                }
            }
        }
        if !ctx.ks.missing.is_empty() {
            // The order is unknown until these BY keys are here.
            return ctx.error(MISSING);
        }
        if bad {
            return ctx.error(SCORE_ERR);
        }
        let (alpha, by, desc) = (o.alpha, o.by.is_some(), o.desc);
        let cmp = |a: &Item, b: &Item| compare(a, b, alpha, by, desc);
        if end < start {
            // Nothing is output: no need to sort.
        } else if by && (start != 0 || end != items.len() as i64 - 1) {
            // Redis sorts only the LIMIT window then, with its partial
            // quicksort; ties come out in that algorithm's order.
            crate::geo::partial_sort(&mut items, start as usize, end as usize, &cmp);
        } else {
            // glibc's qsort is a merge sort: stable, like this one.
            items.sort_by(cmp);
        }
    }
    let window: &[Item] = if end >= start && start >= 0 { &items[start as usize..=end as usize] } else { &[] };
    let gets: Vec<&[u8]> = o.gets.iter().map(|&i| &args[i]).collect();
    // Each element gives its GET values, or itself without GET.
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(window.len() * gets.len().max(1));
    for it in window {
        if gets.is_empty() {
            values.push(Some(it.elem.clone()));
        }
        for p in &gets {
            values.push(lookup_pattern(ctx, p, &it.elem));
        }
    }
    if !ctx.ks.missing.is_empty() {
        return ctx.error(MISSING);
    }
    match o.store {
        None => {
            ctx.out.array(values.len());
            for v in &values {
                match v {
                    Some(b) => ctx.out.bulk(b),
                    None => ctx.out.null(),
                }
            }
        }
        Some(d) => store(ctx, &args[d], values),
    }
}

/// Replace `dest` with the result as a list (nil values as empty strings),
/// or delete it for an empty result. The AOF gets the list itself, not
/// the SORT: BY and GET read keys a replay could see differently.
fn store(ctx: &mut Ctx, dest: &[u8], values: Vec<Option<Vec<u8>>>) {
    let n = values.len();
    let (db, now) = (ctx.db, ctx.now);
    if n == 0 {
        if ctx.ks.delete(db, dest, now) {
            ctx.propagate(&[&b"DEL"[..], dest]);
        } else {
            ctx.propagate_nothing();
        }
    } else {
        let mut l = List::new();
        for v in &values {
            l.push(End::Tail, v.as_deref().unwrap_or(b""));
        }
        ctx.ks.set(db, dest, Value::List(Box::new(l)), 0);
        if ctx.ks.effects.enabled {
            ctx.propagate(&[&b"DEL"[..], dest]);
            let mut parts: Vec<&[u8]> = Vec::with_capacity(n + 2);
            parts.push(b"RPUSH");
            parts.push(dest);
            parts.extend(values.iter().map(|v| v.as_deref().unwrap_or(b"")));
            ctx.propagate(&parts);
        }
    }
    ctx.out.int(n as i64);
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    List,
    Set,
    ZSet,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::OwnedArgs;

    fn key(k: &str, f: Option<&str>) -> Lookup {
        Lookup::Key(k.as_bytes().to_vec(), f.map(|f| f.as_bytes().to_vec()))
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute(b"#", b"a"), Lookup::Element);
        assert_eq!(substitute(b"#\0x", b"a"), Lookup::Element);
        assert_eq!(substitute(b"##", b"a"), Lookup::Nothing);
        assert_eq!(substitute(b"nosort", b"a"), Lookup::Nothing);
        assert_eq!(substitute(b"w_*", b"a"), key("w_a", None));
        assert_eq!(substitute(b"w_*_*", b"a"), key("w_a_*", None));
        assert_eq!(substitute(b"h_*->f", b"a"), key("h_a", Some("f")));
        assert_eq!(substitute(b"h_*x->f->g", b"a"), key("h_ax", Some("f->g")));
        // "->" with nothing after it is part of the key name.
        assert_eq!(substitute(b"h_*->", b"a"), key("h_a->", None));
        // "->" before the '*' does not name a field.
        assert_eq!(substitute(b"h->_*", b"a"), key("h->_a", None));
        // C strings end at NUL: no '*' is seen after one.
        assert_eq!(substitute(b"w\0*", b"a"), Lookup::Nothing);
        assert_eq!(substitute(b"*", b""), key("", None));
    }

    #[test]
    fn pattern_slots() {
        let t = crc16(b"t") & 0x3FFF;
        assert_eq!(pattern_slot(b"{t}w_*"), Some(t));
        assert_eq!(pattern_slot(b"x{t}w_*->f"), Some(t));
        assert_eq!(pattern_slot(b"w_*{t}"), None);
        assert_eq!(pattern_slot(b"{}{t}*"), None);
        assert_eq!(pattern_slot(b"?{t}*"), None);
        assert_eq!(pattern_slot(b"{t*}"), None);
        assert_eq!(pattern_slot(b"{t}"), Some(t));
    }

    fn item(e: &str, score: f64, by: Option<&str>) -> Item {
        Item { elem: e.as_bytes().to_vec(), score, by: by.map(|b| b.as_bytes().to_vec()) }
    }

    #[test]
    fn comparisons() {
        use Ordering::*;
        assert_eq!(compare(&item("b", 1.0, None), &item("a", 2.0, None), false, false, false), Less);
        // Equal scores: the elements decide.
        assert_eq!(compare(&item("b", 1.0, None), &item("a", 1.0, None), false, false, false), Greater);
        assert_eq!(compare(&item("b", 1.0, None), &item("a", 1.0, None), false, false, true), Less);
        assert_eq!(compare(&item("a", 0.0, None), &item("b", 0.0, Some("x")), true, true, false), Less);
        assert_eq!(compare(&item("a", 0.0, None), &item("b", 0.0, None), true, true, false), Equal);
        assert_eq!(compare(&item("a", 0.0, Some("y")), &item("b", 0.0, Some("x")), true, true, false), Greater);
        assert_eq!(compare(&item("a", 0.0, Some("x")), &item("b", 0.0, Some("x")), true, true, true), Equal);
        assert_eq!(compare(&item("a", 0.0, None), &item("b", 0.0, None), true, false, true), Greater);
    }

    #[test]
    fn windows() {
        assert_eq!(window(None, 5), (0, 4));
        assert_eq!(window(Some((1, 2)), 5), (1, 2));
        assert_eq!(window(Some((-3, 2)), 5), (0, 1));
        assert_eq!(window(Some((3, -1)), 5), (3, 4));
        assert_eq!(window(Some((3, 100)), 5), (3, 4));
        assert_eq!(window(Some((5, 1)), 5), (4, 3));
        assert_eq!(window(Some((0, 0)), 5), (0, -1));
        assert_eq!(window(None, 0), (-1, -2));
    }

    #[test]
    fn options_parse_left_to_right() {
        let p = |a: &[&str], ro: bool| parse_options(&OwnedArgs::from_slices(a).args(), ro, Some(Space::Shard), false);
        let o = p(&["sort", "k", "BY", "nosort", "LIMIT", "0", "2", "GET", "#", "DESC", "ALPHA", "STORE", "d"], false)
            .unwrap_or_default();
        assert!(o.dontsort && o.desc && o.alpha);
        assert_eq!((o.by, o.limit, o.gets, o.store), (Some(3), Some((0, 2)), vec![8], Some(12)));
        assert_eq!(p(&["sort", "k", "STORE", "d"], true), Err(err::SYNTAX.into()));
        assert_eq!(p(&["sort", "k", "LIMIT", "0"], false), Err(err::SYNTAX.into()));
        assert_eq!(p(&["sort", "k", "LIMIT", "x", "1", "bad"], false), Err(err::NOT_INT.into()));
        assert_eq!(p(&["sort", "k", "GET"], false), Err(err::SYNTAX.into()));
        assert_eq!(p(&["sort", "k", "ASC", "DESC", "ASC"], false).map(|o| o.desc), Ok(false));
        let keys = |a: &[&str]| sort_keys(&OwnedArgs::from_slices(a).args()).iter().map(|k| k.pos).collect::<Vec<_>>();
        assert_eq!(keys(&["sort", "k", "STORE", "a", "GET", "#", "STORE", "b"]), vec![1, 7]);
        assert_eq!(keys(&["sort", "k", "GET", "store"]), vec![1]);
    }
}

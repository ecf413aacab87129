//! GEO commands: positions kept as sorted-set scores (see `crate::geo` for
//! the geohash math). Replies, error texts and their order, reply types in
//! RESP2/RESP3 and the order of unsorted results follow Redis 7.0.
//!
//! GEOADD is ZADD with computed scores, and is logged as that ZADD so a
//! replay does not depend on the geohash code. The search commands scan
//! nine score ranges (a cell and its neighbours) and keep the members
//! within the shape; STORE forms write the result as a new sorted set.

use super::flags::*;
use super::keyspec::{self, *};
use super::table::{CommandDef, Handler, KeyspaceFn};
use super::zset::{store_result, zadd};
use super::{err, Args, Ctx, OwnedArgs};
use crate::geo::{self, Extent, Hash, Shape};
use crate::keyspace::notify as ev;
use crate::keyspace::zset::{ScoreRange, ZSet};
use crate::protocol::reply::Reply;
use crate::util::num::parse_double;
use crate::util::parse_i64;
use std::cmp::Ordering;

const fn c(name: &'static str, arity: i32, flags: Flags, keys: &'static [KeySpec], h: KeyspaceFn) -> CommandDef {
    CommandDef::new(name, arity, flags, keys, Handler::Keyspace(h)).acl(acl::GEO).group(Group::Geo)
}

pub static COMMANDS: &[CommandDef] = &[
    c("geoadd", -5, WRITE | DENYOOM, &[at(1, RW | UPDATE)], geoadd).since("3.2.0"),
    c("geopos", -2, READONLY, &[at(1, RO | ACCESS)], geopos).since("3.2.0"),
    c("geohash", -2, READONLY, &[at(1, RO | ACCESS)], geohash).since("3.2.0"),
    c("geodist", -4, READONLY, &[at(1, RO | ACCESS)], geodist).since("3.2.0"),
    // Write commands only because of STORE: their STORE key moves.
    c(
        "georadius",
        -6,
        WRITE | DENYOOM,
        &[at(1, RO | ACCESS), keyspec::kw("STORE", 6, OW | UPDATE), keyspec::kw("STOREDIST", 6, OW | UPDATE)],
        georadius,
    )
    .since("3.2.0")
    .keys_fn(georadius_keys)
    .store_event(ev::ZSET, "georadiusstore"),
    c(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM,
        &[at(1, RO | ACCESS), keyspec::kw("STORE", 5, OW | UPDATE), keyspec::kw("STOREDIST", 5, OW | UPDATE)],
        georadiusbymember,
    )
    .since("3.2.0")
    .keys_fn(georadiusbymember_keys)
    .store_event(ev::ZSET, "georadiusstore"),
    c("georadius_ro", -6, READONLY, &[at(1, RO | ACCESS)], georadius_ro).since("3.2.10"),
    c("georadiusbymember_ro", -5, READONLY, &[at(1, RO | ACCESS)], georadiusbymember_ro).since("3.2.10"),
    c("geosearch", -7, READONLY, &[at(1, RO | ACCESS)], geosearch).since("6.2.0"),
    c("geosearchstore", -8, WRITE | DENYOOM, &[at(1, OW | UPDATE), at(2, RO | ACCESS)], geosearchstore)
        .since("6.2.0")
        .store_event(ev::ZSET, "geosearchstore"),
];

const NEED_RADIUS: &str = "ERR need numeric radius";
const NEGATIVE_RADIUS: &str = "ERR radius cannot be negative";
const NEED_WIDTH: &str = "ERR need numeric width";
const NEED_HEIGHT: &str = "ERR need numeric height";
const NEGATIVE_BOX: &str = "ERR height or width cannot be negative";
const BAD_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// A keyword compared as Redis does (strcasecmp on the C string, so the
/// argument ends at its first NUL).
fn kw(arg: &[u8], word: &str) -> bool {
    let a = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// Key positions of GEORADIUS: see `radius_keys`.
fn georadius_keys(args: &Args) -> Vec<KeyRef> {
    radius_keys(args, 6)
}

fn georadiusbymember_keys(args: &Args) -> Vec<KeyRef> {
    radius_keys(args, 5)
}

/// The source, then what Redis 7.0's key specs name (the word after the
/// first STORE, then after the first STOREDIST, searched from `from`), so
/// COMMAND GETKEYS agrees; then, if it is another one, the key the command
/// really stores to (the last STORE/STOREDIST), so the right shard has it.
fn radius_keys(args: &Args, from: usize) -> Vec<KeyRef> {
    let mut keys = vec![KeyRef { pos: 1, flags: RO | ACCESS }];
    let n = args.len();
    for word in ["store", "storedist"] {
        if let Some(i) = (from..n.saturating_sub(1)).find(|&i| kw(&args[i], word)) {
            keys.push(KeyRef { pos: i + 1, flags: OW | UPDATE });
        }
    }
    let mut last = None;
    let mut i = 5;
    while i < n {
        if (kw(&args[i], "store") || kw(&args[i], "storedist")) && i + 1 < n {
            last = Some(KeyRef { pos: i + 1, flags: OW | UPDATE });
            i += 1;
        }
        i += 1;
    }
    if let Some(k) = last.filter(|k| !keys.iter().any(|x| x.pos == k.pos)) {
        keys.push(k);
    }
    keys
}

// ---- argument helpers -----------------------------------------------------------

/// A longitude, latitude pair within the WGS84 limits.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), String> {
    let lon = parse_double(lon).ok_or(err::NOT_FLOAT)?;
    let lat = parse_double(lat).ok_or(err::NOT_FLOAT)?;
    if !(geo::LON_MIN..=geo::LON_MAX).contains(&lon) || !(geo::LAT_MIN..=geo::LAT_MAX).contains(&lat) {
        return Err(format!("ERR invalid longitude,latitude pair {:.6},{:.6}", lon, lat));
    }
    Ok((lon, lat))
}

fn unit(arg: &[u8]) -> Result<f64, String> {
    geo::unit_factor(arg).ok_or_else(|| BAD_UNIT.to_string())
}

/// `radius unit`: (radius, metres per unit).
fn radius_arg(radius: &[u8], u: &[u8]) -> Result<(f64, f64), String> {
    let r = parse_double(radius).ok_or(NEED_RADIUS)?;
    if r < 0.0 {
        return Err(NEGATIVE_RADIUS.into());
    }
    Ok((r, unit(u)?))
}

/// `width height unit`: (width, height, metres per unit).
fn box_arg(width: &[u8], height: &[u8], u: &[u8]) -> Result<(f64, f64, f64), String> {
    let w = parse_double(width).ok_or(NEED_WIDTH)?;
    let h = parse_double(height).ok_or(NEED_HEIGHT)?;
    if h < 0.0 || w < 0.0 {
        return Err(NEGATIVE_BOX.into());
    }
    Ok((w, h, unit(u)?))
}

/// The position of `member`, if the set has it.
fn member_pos(z: &ZSet, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).map(geo::decode_score)
}

/// A coordinate as Redis replies it: its 17-decimal form, as a bulk string
/// in RESP2 and a double in RESP3.
fn reply_coord(out: &mut Reply, d: f64) {
    let s = geo::fmt_coord(d);
    if out.resp3 {
        out.raw(format!(",{}\r\n", s).as_bytes());
    } else {
        out.bulk(s.as_bytes());
    }
}

/// Distances are bulk strings with 4 decimals in both protocols.
fn reply_distance(out: &mut Reply, d: f64) {
    out.bulk(geo::fmt_distance(d).as_bytes());
}

// ---- GEOADD / GEOPOS / GEOHASH / GEODIST ----------------------------------------

/// GEOADD key [NX|XX] [CH] longitude latitude member [longitude latitude member ...]
fn geoadd(ctx: &mut Ctx, args: &Args) {
    let (mut nx, mut xx) = (false, false);
    let mut zargs: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), args[1].to_vec()];
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let opt: &[u8] = match () {
            _ if kw(a, "nx") => {
                nx = true;
                b"NX"
            }
            _ if kw(a, "xx") => {
                xx = true;
                b"XX"
            }
            _ if kw(a, "ch") => b"CH",
            _ => break,
        };
        zargs.push(opt.to_vec());
        i += 1;
    }
    if !(args.len() - i).is_multiple_of(3) || (nx && xx) {
        return ctx.error(err::SYNTAX);
    }
    // Every position is checked before anything is added.
    for j in (i..args.len()).step_by(3) {
        let (lon, lat) = match lon_lat(&args[j], &args[j + 1]) {
            Ok(p) => p,
            Err(e) => return ctx.error(&e),
        };
        let Some(score) = geo::score_of(lon, lat) else { return ctx.error(err::SYNTAX) };
        zargs.push(score.to_string().into_bytes());
        zargs.push(args[j + 2].to_vec());
    }
    let changes = |ctx: &Ctx| ctx.ks.dirty - ctx.ks.expired_keys;
    let before = changes(ctx);
    let owned = OwnedArgs::from_slices(&zargs);
    zadd(ctx, &owned.args());
    if changes(ctx) != before {
        ctx.propagate(&zargs);
    }
}

/// GEOPOS key [member ...]
fn geopos(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(z) => z,
    };
    let out = &mut ctx.out;
    out.array(args.len() - 2);
    for j in 2..args.len() {
        match z.and_then(|z| member_pos(z, &args[j])) {
            Some((lon, lat)) => {
                out.array(2);
                reply_coord(out, lon);
                reply_coord(out, lat);
            }
            None => out.null_array(),
        }
    }
}

/// GEOHASH key [member ...]
fn geohash(ctx: &mut Ctx, args: &Args) {
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(z) => z,
    };
    let out = &mut ctx.out;
    out.array(args.len() - 2);
    for j in 2..args.len() {
        match z.and_then(|z| z.score(&args[j])) {
            Some(s) => out.bulk(&geo::geohash_string(s)),
            None => out.null(),
        }
    }
}

/// GEODIST key member1 member2 [M|KM|FT|MI]
fn geodist(ctx: &mut Ctx, args: &Args) {
    let to_m = match args.len() {
        5 => match unit(&args[4]) {
            Ok(u) => u,
            Err(e) => return ctx.error(&e),
        },
        4 => 1.0,
        _ => return ctx.error(err::SYNTAX),
    };
    let (db, now) = (ctx.db, ctx.now);
    let z = match ctx.ks.get_typed::<ZSet>(db, &args[1], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(None) => return ctx.out.null(),
        Ok(Some(z)) => z,
    };
    match (member_pos(z, &args[2]), member_pos(z, &args[3])) {
        (Some(a), Some(b)) => reply_distance(&mut ctx.out, geo::distance(a.0, a.1, b.0, b.1) / to_m),
        _ => ctx.out.null(),
    }
}

// ---- searches -------------------------------------------------------------------

/// Which command is parsing: they share one parser, as in Redis.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    Coords,
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    Member,
    /// GEOSEARCH key FROM... BY... ...
    Search,
    /// GEOSEARCHSTORE dest src FROM... BY... ...
    SearchStore,
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search. `shape` is None only when the source key is absent.
struct Plan {
    shape: Option<Shape>,
    store: Option<usize>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    sort: Sort,
    /// 0: no limit.
    count: usize,
    any: bool,
}

/// Parse a search's arguments with the source set at hand (FROMMEMBER and
/// BYMEMBER read it), reporting the first error in argument order.
fn parse_search(z: Option<&ZSet>, args: &Args, kind: Kind, nostore: bool) -> Result<Plan, String> {
    let mut center: Option<(f64, f64)> = None;
    let mut extent: Option<(Extent, f64)> = None;
    let mut store = None;
    let base = match kind {
        Kind::Coords => {
            center = Some(lon_lat(&args[2], &args[3])?);
            let (r, to_m) = radius_arg(&args[4], &args[5])?;
            extent = Some((Extent::Radius(r), to_m));
            6
        }
        Kind::Member => {
            // With no source set the reply is empty whatever the radius
            // says; only the options below still get checked.
            if let Some(z) = z {
                center = Some(member_pos(z, &args[2]).ok_or(NO_MEMBER)?);
                let (r, to_m) = radius_arg(&args[3], &args[4])?;
                extent = Some((Extent::Radius(r), to_m));
            }
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => {
            store = Some(1);
            3
        }
    };
    let search = matches!(kind, Kind::Search | Kind::SearchStore);
    let mut p = Plan {
        shape: None,
        store,
        storedist: false,
        withdist: false,
        withhash: false,
        withcoord: false,
        sort: Sort::None,
        count: 0,
        any: false,
    };
    let (mut frommember, mut fromlonlat, mut byradius, mut bybox) = (false, false, false, false);
    let n = args.len();
    let mut i = base;
    while i < n {
        let a = &args[i];
        // Arguments left after this one.
        let left = n - i - 1;
        if kw(a, "withdist") {
            p.withdist = true;
        } else if kw(a, "withhash") {
            p.withhash = true;
        } else if kw(a, "withcoord") {
            p.withcoord = true;
        } else if kw(a, "any") {
            p.any = true;
        } else if kw(a, "asc") {
            p.sort = Sort::Asc;
        } else if kw(a, "desc") {
            p.sort = Sort::Desc;
        } else if kw(a, "count") && left >= 1 {
            let c = parse_i64(&args[i + 1]).ok_or(err::NOT_INT)?;
            if c <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            p.count = usize::try_from(c).unwrap_or(usize::MAX);
            i += 1;
        } else if (kw(a, "store") || kw(a, "storedist")) && left >= 1 && !nostore && !search {
            p.store = Some(i + 1);
            p.storedist = kw(a, "storedist");
            i += 1;
        } else if kw(a, "storedist") && kind == Kind::SearchStore {
            p.storedist = true;
        } else if kw(a, "frommember") && left >= 1 && search && !fromlonlat {
            if let Some(z) = z {
                center = Some(member_pos(z, &args[i + 1]).ok_or(NO_MEMBER)?);
            }
            frommember = true;
            i += 1;
        } else if kw(a, "fromlonlat") && left >= 2 && search && !frommember {
            center = Some(lon_lat(&args[i + 1], &args[i + 2])?);
            fromlonlat = true;
            i += 2;
        } else if kw(a, "byradius") && left >= 2 && search && !bybox {
            let (r, to_m) = radius_arg(&args[i + 1], &args[i + 2])?;
            extent = Some((Extent::Radius(r), to_m));
            byradius = true;
            i += 2;
        } else if kw(a, "bybox") && left >= 3 && search && !byradius {
            let (width, height, to_m) = box_arg(&args[i + 1], &args[i + 2], &args[i + 3])?;
            extent = Some((Extent::Box { width, height }, to_m));
            bybox = true;
            i += 3;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if p.store.is_some() && (p.withdist || p.withhash || p.withcoord) {
        let what = if kind == Kind::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(format!("ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options", what));
    }
    let name = || String::from_utf8_lossy(&args[0]).into_owned();
    if search && !(frommember || fromlonlat) {
        return Err(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}", name()));
    }
    if search && !(byradius || bybox) {
        return Err(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {}", name()));
    }
    if p.any && p.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    if let (Some((lon, lat)), Some((extent, to_m))) = (center, extent) {
        p.shape = Some(Shape { lon, lat, extent, to_m });
    }
    Ok(p)
}

/// A member found by a search.
struct Point {
    member: Vec<u8>,
    score: f64,
    lon: f64,
    lat: f64,
    /// From the centre, in metres.
    dist: f64,
}

/// The members of `z` inside `shape`, cell by cell in Redis's order, each
/// cell in score order; stops once `limit` (0: none) are found.
fn find(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = shape.cells();
    let mut found = Vec::new();
    let full = |found: &Vec<Point>| limit > 0 && found.len() >= limit;
    // Very large searches can give equal neighbouring cells; a cell equal
    // to the one scanned just before is skipped. As in Redis, index 0 also
    // means "none scanned yet", so the centre cell is never compared.
    let mut last = 0;
    for (i, &cell) in cells.iter().enumerate() {
        if cell.is_none() || (last != 0 && cell == cells[last]) {
            continue;
        }
        if full(&found) {
            break;
        }
        scan_cell(z, cell, shape, limit, &mut found);
        last = i;
    }
    found
}

fn scan_cell(z: &ZSet, cell: Hash, shape: &Shape, limit: usize, found: &mut Vec<Point>) {
    let (min, max) = cell.score_range();
    let range = ScoreRange { min: min as f64, max: max as f64, minex: false, maxex: true };
    let Some(first) = z.score_first(&range) else { return };
    z.walk(first, false, |m, s| {
        if !range.lte_max(s) {
            return false;
        }
        let (lon, lat) = geo::decode_score(s);
        if let Some(dist) = shape.contains(lon, lat) {
            found.push(Point { member: m.to_vec(), score: s, lon, lat, dist });
        }
        !(limit > 0 && found.len() >= limit)
    });
}

fn georadius(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 1, Kind::Coords, false)
}

fn georadiusbymember(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 1, Kind::Member, false)
}

fn georadius_ro(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 1, Kind::Coords, true)
}

fn georadiusbymember_ro(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 1, Kind::Member, true)
}

fn geosearch(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 1, Kind::Search, true)
}

fn geosearchstore(ctx: &mut Ctx, args: &Args) {
    search(ctx, args, 2, Kind::SearchStore, false)
}

/// GEORADIUS key longitude latitude radius M|KM|FT|MI [WITHCOORD] [WITHDIST]
///   [WITHHASH] [COUNT count [ANY]] [ASC|DESC] [STORE key|STOREDIST key]
/// GEORADIUSBYMEMBER key member radius unit [same options]
/// GEOSEARCH key FROMMEMBER member|FROMLONLAT longitude latitude
///   BYRADIUS radius unit|BYBOX width height unit [ASC|DESC] [COUNT count [ANY]]
///   [WITHCOORD] [WITHDIST] [WITHHASH]
/// GEOSEARCHSTORE destination source [GEOSEARCH's options] [STOREDIST]
fn search(ctx: &mut Ctx, args: &Args, src: usize, kind: Kind, nostore: bool) {
    let (db, now) = (ctx.db, ctx.now);
    let (plan, points) = match ctx.ks.get_typed::<ZSet>(db, &args[src], now) {
        Err(e) => return ctx.out.error(e.msg()),
        Ok(z) => {
            let plan = match parse_search(z, args, kind, nostore) {
                Ok(p) => p,
                Err(e) => return ctx.out.error(&e),
            };
            let limit = if plan.any { plan.count } else { 0 };
            let points = match (z, &plan.shape) {
                (Some(z), Some(shape)) => Some(find(z, shape, limit)),
                _ => None,
            };
            (plan, points)
        }
    };
    let store = plan.store.map(|i| &args[i]);
    let Some(mut points) = points else {
        // No source set: an empty result (which a STORE turns into a delete).
        return match store {
            Some(dest) => store_result(ctx, dest, Vec::new()),
            None => ctx.out.array(0),
        };
    };
    let to_m = plan.shape.map_or(1.0, |s| s.to_m);
    // COUNT means the nearest ones, unless ANY asked for any of them.
    let sort = if plan.count > 0 && plan.sort == Sort::None && !plan.any { Sort::Asc } else { plan.sort };
    if sort != Sort::None {
        // Redis's comparison: anything not greater and not equal is less.
        let asc = |a: &Point, b: &Point| {
            if a.dist > b.dist {
                Ordering::Greater
            } else if a.dist == b.dist {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        };
        let cmp = |a: &Point, b: &Point| if sort == Sort::Asc { asc(a, b) } else { asc(a, b).reverse() };
        let keep = if plan.count > 0 { plan.count.min(points.len()) } else { points.len() };
        if keep == points.len() {
            // Stable, as glibc's qsort (a merge sort) is: ties keep the scan order.
            points.sort_by(cmp);
        } else if keep > 0 {
            // Only the first `keep` are sorted, as Redis does; this also
            // decides the order of equally distant members.
            geo::partial_sort(&mut points, 0, keep - 1, &cmp);
        }
    }
    if plan.count > 0 {
        points.truncate(plan.count);
    }
    if let Some(dest) = store {
        let pairs = points
            .into_iter()
            .map(|p| {
                let s = if plan.storedist { p.dist / to_m } else { p.score };
                (p.member, s)
            })
            .collect();
        return store_result(ctx, dest, pairs);
    }
    let out = &mut ctx.out;
    let extras = plan.withdist as usize + plan.withhash as usize + plan.withcoord as usize;
    out.array(points.len());
    for p in &points {
        if extras > 0 {
            out.array(extras + 1);
        }
        out.bulk(&p.member);
        if plan.withdist {
            reply_distance(out, p.dist / to_m);
        }
        if plan.withhash {
            // Redis converts the score to a long long, as `as` does in range.
            out.int(p.score as i64);
        }
        if plan.withcoord {
            out.array(2);
            reply_coord(out, p.lon);
            reply_coord(out, p.lat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::tests::run_proto;
    use super::super::{key_positions, lookup, OwnedArgs};
    use crate::keyspace::Keyspace;

    fn keys(cmd: &str) -> Vec<usize> {
        let parts: Vec<&str> = cmd.split(' ').collect();
        let def = lookup(parts[0].as_bytes()).expect("known command").1;
        key_positions(def, &OwnedArgs::from_slices(&parts).args()).collect()
    }

    #[test]
    fn replies_in_both_protocols() {
        let mut ks = Keyspace::new();
        let add = "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania";
        assert_eq!(run_proto(&mut ks, add, false), ":2\r\n");
        assert_eq!(
            run_proto(&mut ks, "GEOPOS Sicily Palermo nope", false),
            "*2\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*-1\r\n"
        );
        assert_eq!(
            run_proto(&mut ks, "GEOPOS Sicily Palermo nope", true),
            "*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n"
        );
        assert_eq!(run_proto(&mut ks, "GEODIST Sicily Palermo Catania km", true), "$8\r\n166.2742\r\n");
        assert_eq!(run_proto(&mut ks, "GEODIST Sicily Palermo nope", true), "_\r\n");
        assert_eq!(run_proto(&mut ks, "GEOHASH Sicily Catania", false), "*1\r\n$11\r\nsqdtr74hyu0\r\n");
        assert_eq!(
            run_proto(&mut ks, "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHDIST WITHHASH", false),
            "*2\r\n*3\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n\
             *3\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n"
        );
        assert_eq!(run_proto(&mut ks, "GEORADIUS Sicily 15 37 200 km COUNT 1 DESC", false), "*1\r\n$7\r\nPalermo\r\n");
    }

    #[test]
    fn errors_in_redis_order() {
        let mut ks = Keyspace::new();
        run_proto(&mut ks, "GEOADD g 1 2 a", false);
        for (cmd, want) in [
            ("GEOADD g 200 10 m", "-ERR invalid longitude,latitude pair 200.000000,10.000000\r\n"),
            ("GEOADD g NX XX 1 2 m", "-ERR syntax error\r\n"),
            ("GEOADD g GT 1 2 m", "-ERR syntax error\r\n"),
            ("GEODIST g a a yd", "-ERR unsupported unit provided. please use M, KM, FT, MI\r\n"),
            ("GEOSEARCH g FROMMEMBER zz BYRADIUS x m", "-ERR could not decode requested zset member\r\n"),
            ("GEOSEARCH g FROMMEMBER a BYRADIUS x m", "-ERR need numeric radius\r\n"),
            ("GEOSEARCH g BYBOX 1 -1 m FROMMEMBER a", "-ERR height or width cannot be negative\r\n"),
            (
                "GEOSEARCH g BYRADIUS 1 m ANY ASC",
                "-ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH\r\n",
            ),
            ("GEOSEARCH g FROMMEMBER a BYRADIUS 1 m ANY", "-ERR the ANY argument requires COUNT argument\r\n"),
            ("GEOSEARCH g FROMMEMBER a BYRADIUS 1 m COUNT 0", "-ERR COUNT must be > 0\r\n"),
            ("GEORADIUS_RO g 1 2 1 m STORE x", "-ERR syntax error\r\n"),
            (
                "GEORADIUS g 1 2 1 m STORE x WITHDIST",
                "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n",
            ),
            // No source set: the radius is never looked at.
            ("GEORADIUSBYMEMBER nokey m x y", "*0\r\n"),
        ] {
            assert_eq!(run_proto(&mut ks, cmd, false), want, "{cmd}");
        }
    }

    #[test]
    fn store_keys_route_the_command() {
        assert_eq!(keys("GEORADIUS k 1 2 3 m STORE d1 STOREDIST d2"), [1, 7, 9]);
        assert_eq!(keys("GEORADIUS k 1 2 3 m STORE d1 STORE d2"), [1, 7, 9]);
        assert_eq!(keys("GEORADIUSBYMEMBER k m 3 m COUNT 2 STOREDIST d"), [1, 8]);
        assert_eq!(keys("GEORADIUS k 1 2 3 m WITHDIST"), [1]);
        assert_eq!(keys("GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m"), [1, 2]);
    }

    #[test]
    fn geoadd_logs_zadd() {
        let mut ks = Keyspace::new();
        ks.effects.enabled = true;
        run_proto(&mut ks, "GEOADD g CH 13.361389 38.115556 p", false);
        // Nothing changes, so nothing is logged.
        run_proto(&mut ks, "GEOADD g NX 1 1 p", false);
        let mut logged = vec![];
        ks.effects.drain_each(|_, b| logged.push(String::from_utf8_lossy(b).into_owned()));
        assert_eq!(logged, ["*5\r\n$4\r\nZADD\r\n$1\r\ng\r\n$2\r\nCH\r\n$16\r\n3479099956230698\r\n$1\r\np\r\n"]);
    }
}

//! Geohash math for the GEO commands, kept apart from the commands so it can
//! be tested without a keyspace.
//!
//! A position is stored as the score of a sorted-set member: longitude and
//! latitude, each quantised to 26 bits over the WGS84 (Web Mercator) limits,
//! interleaved into a 52-bit integer (longitude in the odd bits, latitude in
//! the even ones), so that members close on the map tend to be close in
//! score. A radius or box search looks at the cell of the centre and its 8
//! neighbours, at a cell size chosen from the search size, each cell being
//! one score range; every candidate is then checked by exact distance.
//!
//! Everything here reproduces Redis 7.0's arithmetic (as of 7.0.15) step
//! for step, the order of float operations included: STOREDIST keeps
//! distances at full precision and coordinates print with 17 decimals, so a
//! different rounding anywhere would show.

use std::cmp::Ordering;

/// Latitude limits of Web Mercator (EPSG:3857); Redis refuses positions
/// outside them.
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;

/// Bits per coordinate in a stored score: 2 * 26 = 52 fit a double exactly.
pub const STEP_MAX: u8 = 26;

/// The Earth's quadratic mean radius, as Redis uses it.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;

/// Half the Earth's circumference in Mercator metres: the size of a step-1 cell.
const MERCATOR_MAX: f64 = 20037726.37;

/// Degrees to radians, folded as C folds `M_PI / 180.0`.
const D_R: f64 = std::f64::consts::PI / 180.0;

#[inline]
fn deg_rad(a: f64) -> f64 {
    a * D_R
}

#[inline]
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// An interval of one coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The ranges the stored scores are quantised over.
pub const WGS84_LON: Range = Range { min: LON_MIN, max: LON_MAX };
pub const WGS84_LAT: Range = Range { min: LAT_MIN, max: LAT_MAX };
/// The latitude range of standard geohash strings (GEOHASH's output).
pub const STD_LAT: Range = Range { min: -90.0, max: 90.0 };

/// A cell: `step` bits per coordinate, interleaved in the low `2*step` bits.
/// `step == 0 && bits == 0` marks a neighbour left out of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    pub const NONE: Hash = Hash { bits: 0, step: 0 };

    pub fn is_none(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell's first score at full precision (its score range starts here).
    pub fn align52(&self) -> u64 {
        // Steps above 26 never reach here; saturate rather than overflow.
        self.bits << 52u32.saturating_sub(2 * self.step as u32)
    }

    /// Scores `[min, max)` of the members inside this cell.
    pub fn score_range(&self) -> (u64, u64) {
        let next = Hash { bits: self.bits.wrapping_add(1), step: self.step };
        (self.align52(), next.align52())
    }
}

/// The rectangle a cell covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

/// Spread the 32 bits of `v` to the even bit positions of a u64.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    x = (x | (x << 1)) & 0x5555_5555_5555_5555;
    x
}

/// The inverse of `spread`: the even bits of `x`, packed.
fn gather(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude cell index in the even bits, longitude in the odd ones.
fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// (latitude index, longitude index).
fn deinterleave(bits: u64) -> (u32, u32) {
    (gather(bits), gather(bits >> 1))
}

/// The cell of `step` bits holding (`lon`, `lat`) over the given ranges;
/// None outside the WGS84 limits or the ranges. A coordinate equal to its
/// range's max lands one past the last cell, as in Redis.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    // Truncation to u32, as C's double-to-uint32 conversion does.
    Some(Hash { bits: interleave(lat_off as u32, lon_off as u32), step })
}

/// The rectangle of cell `h` over the given ranges; None for `Hash::NONE`.
pub fn decode(lon_r: Range, lat_r: Range, h: Hash) -> Option<Area> {
    if h.is_none() {
        return None;
    }
    let (ilat, ilon) = deinterleave(h.bits);
    let cells = (1u64 << h.step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    // Written as Redis computes them: index / 2^step, times the span, plus min.
    let lo = |i: u32, r: Range, scale: f64| r.min + (i as f64 / cells) * scale;
    let hi = |i: u32, r: Range, scale: f64| r.min + (i.wrapping_add(1) as f64 / cells) * scale;
    Some(Area {
        lat: Range { min: lo(ilat, lat_r, lat_scale), max: hi(ilat, lat_r, lat_scale) },
        lon: Range { min: lo(ilon, lon_r, lon_scale), max: hi(ilon, lon_r, lon_scale) },
    })
}

/// The centre of a cell, clamped to the WGS84 limits: (lon, lat).
pub fn area_center(a: &Area) -> (f64, f64) {
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score GEOADD stores for a position; None outside the WGS84 limits.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(WGS84_LON, WGS84_LAT, lon, lat, STEP_MAX).map(|h| h.align52())
}

/// A zset score as the u64 Redis converts it to. Scores not made by GEOADD
/// (negative, fractional, huge) follow what x86-64's conversion does in C,
/// so GEOPOS on them prints what Redis prints.
pub fn score_bits(score: f64) -> u64 {
    if score < 0.0 {
        // cvttsd2si: truncates; out of range gives i64::MIN, as `as` saturates to.
        (score as i64) as u64
    } else if score >= 18446744073709551616.0 {
        // The (x - 2^63) path overflows to i64::MIN, and xor 2^63 clears it.
        0
    } else {
        score as u64
    }
}

/// The position a score stands for: the centre of its 52-bit cell, (lon, lat).
pub fn decode_score(score: f64) -> (f64, f64) {
    let h = Hash { bits: score_bits(score), step: STEP_MAX };
    match decode(WGS84_LON, WGS84_LAT, h) {
        Some(a) => area_center(&a),
        None => (0.0, 0.0), // unreachable: step is never 0
    }
}

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// GEOHASH's 11-character string: the position re-encoded over the standard
/// latitude range [-90, 90]; the 11th character has no bits left and is '0'.
pub fn geohash_string(score: f64) -> [u8; 11] {
    let (lon, lat) = decode_score(score);
    let bits = encode(WGS84_LON, STD_LAT, lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        *c = BASE32[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// Move a cell one step along longitude (odd bits), wrapping around.
fn move_x(h: &mut Hash, east: bool) {
    let shift = 64 - 2 * h.step as u32;
    let x = h.bits & 0xAAAA_AAAA_AAAA_AAAA;
    let y = h.bits & 0x5555_5555_5555_5555;
    // Filling the other coordinate's bits with ones makes the carry (or
    // borrow) run through them into the next bit of this one.
    let fill = 0x5555_5555_5555_5555u64 >> shift;
    let x = if east { x.wrapping_add(fill + 1) } else { (x | fill).wrapping_sub(fill + 1) };
    h.bits = (x & (0xAAAA_AAAA_AAAA_AAAAu64 >> shift)) | y;
}

/// Move a cell one step along latitude (even bits), wrapping around.
fn move_y(h: &mut Hash, north: bool) {
    let shift = 64 - 2 * h.step as u32;
    let x = h.bits & 0xAAAA_AAAA_AAAA_AAAA;
    let y = h.bits & 0x5555_5555_5555_5555;
    let fill = 0xAAAA_AAAA_AAAA_AAAAu64 >> shift;
    let y = if north { y.wrapping_add(fill + 1) } else { (y | fill).wrapping_sub(fill + 1) };
    h.bits = x | (y & (0x5555_5555_5555_5555u64 >> shift));
}

/// The 8 cells around `h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbours {
    pub north: Hash,
    pub south: Hash,
    pub east: Hash,
    pub west: Hash,
    pub north_east: Hash,
    pub north_west: Hash,
    pub south_east: Hash,
    pub south_west: Hash,
}

pub fn neighbours(h: Hash) -> Neighbours {
    let at = |dx: i8, dy: i8| {
        let mut n = h;
        // A cell without bits has no neighbours (and would overflow the shifts).
        if h.step == 0 || h.step > 32 {
            return n;
        }
        if dx != 0 {
            move_x(&mut n, dx > 0);
        }
        if dy != 0 {
            move_y(&mut n, dy > 0);
        }
        n
    };
    Neighbours {
        north: at(0, 1),
        south: at(0, -1),
        east: at(1, 0),
        west: at(-1, 0),
        north_east: at(1, 1),
        north_west: at(-1, 1),
        south_east: at(1, -1),
        south_west: at(-1, -1),
    }
}

/// Great-circle distance in metres (haversine) between two (lon, lat) points.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    // On one meridian the formula reduces to the arc between the latitudes;
    // Redis 7.0.15 takes this shortcut, and it can differ in the last bit.
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    2.0 * EARTH_RADIUS_M * (u * u + lat1r.cos() * lat2r.cos() * v * v).sqrt().asin()
}

/// Metres along a meridian between two latitudes.
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Metres per unit of GEODIST and the search commands; None for another word.
/// Compared as C strings, case-insensitively.
pub fn unit_factor(unit: &[u8]) -> Option<f64> {
    let u = &unit[..unit.iter().position(|&b| b == 0).unwrap_or(unit.len())];
    match u.to_ascii_lowercase().as_slice() {
        b"m" => Some(1.0),
        b"km" => Some(1000.0),
        b"ft" => Some(0.3048),
        b"mi" => Some(1609.34),
        _ => None,
    }
}

/// What a search covers, in the user's unit (`to_m` metres each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Extent {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: centre (lon, lat), extent, and the unit's metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub extent: Extent,
    pub to_m: f64,
}

impl Shape {
    /// The distance of (lon, lat) from the centre in metres if it lies in
    /// the shape. A box is tested by the north-south distance to the
    /// centre's latitude, then the east-west distance at the point's
    /// latitude.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.extent {
            Extent::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.to_m).then_some(d)
            }
            Extent::Box { width, height } => {
                let (w, h) = (width * self.to_m, height * self.to_m);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// [min lon, min lat, max lon, max lat] around the shape. Meridians
    /// converge towards the pole, so the longitude span is taken at the
    /// edge nearer to it.
    fn bounding_box(&self) -> [f64; 4] {
        let (half_h, half_w) = match self.extent {
            Extent::Radius(r) => (self.to_m * r, self.to_m * r),
            Extent::Box { width, height } => (self.to_m * (height / 2.0), self.to_m * (width / 2.0)),
        };
        let lat_delta = rad_deg(half_h / EARTH_RADIUS_M);
        let lon_delta_top = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let lon_delta_bottom = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let lon_delta = if self.lat < 0.0 { lon_delta_bottom } else { lon_delta_top };
        [self.lon - lon_delta, self.lat - lat_delta, self.lon + lon_delta, self.lat + lat_delta]
    }

    /// The radius of the circle around the shape, in metres.
    fn reach_m(&self) -> f64 {
        let r = match self.extent {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        };
        r * self.to_m
    }

    /// The cells to scan, in Redis's order: centre, N, S, E, W, NE, NW, SE,
    /// SW; `Hash::NONE` for neighbours that cannot hold a match.
    pub fn cells(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let mut step = estimate_step(self.reach_m(), self.lat);
        let at = |step: u8| {
            let h = encode(WGS84_LON, WGS84_LAT, self.lon, self.lat, step).unwrap_or(Hash { bits: 0, step });
            let area = decode(WGS84_LON, WGS84_LAT, h);
            (h, neighbours(h), area)
        };
        let (mut h, mut n, mut area) = at(step);
        // Near a cell's edge the estimate can leave part of the shape outside
        // the 3x3 cells: then use cells twice as large.
        let dec = |c: Hash| decode(WGS84_LON, WGS84_LAT, c);
        let short = dec(n.north).is_some_and(|a| a.lat.max < max_lat)
            || dec(n.south).is_some_and(|a| a.lat.min > min_lat)
            || dec(n.east).is_some_and(|a| a.lon.max < max_lon)
            || dec(n.west).is_some_and(|a| a.lon.min > min_lon);
        if step > 1 && short {
            step -= 1;
            (h, n, area) = at(step);
        }
        // Drop the rows and columns of neighbours the shape does not reach.
        if step >= 2 {
            if let Some(a) = area {
                if a.lat.min < min_lat {
                    (n.south, n.south_west, n.south_east) = (Hash::NONE, Hash::NONE, Hash::NONE);
                }
                if a.lat.max > max_lat {
                    (n.north, n.north_east, n.north_west) = (Hash::NONE, Hash::NONE, Hash::NONE);
                }
                if a.lon.min < min_lon {
                    (n.west, n.south_west, n.north_west) = (Hash::NONE, Hash::NONE, Hash::NONE);
                }
                if a.lon.max > max_lon {
                    (n.east, n.south_east, n.north_east) = (Hash::NONE, Hash::NONE, Hash::NONE);
                }
            }
        }
        [h, n.north, n.south, n.east, n.west, n.north_east, n.north_west, n.south_east, n.south_west]
    }
}

/// Bits per coordinate for cells about the size of a search of `range_m`
/// metres around latitude `lat`: halve the Mercator span until it is below
/// the range, back off two steps so the range fits, one or two more near
/// the poles, where cells get narrow.
pub fn estimate_step(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return STEP_MAX;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u8
}

/// Printed as Redis prints a distance: 4 decimals.
pub fn fmt_distance(d: f64) -> String {
    format!("{:.4}", d)
}

/// Printed as Redis prints a coordinate (its "human" long double form):
/// 17 decimals, trailing zeros and a bare '.' dropped, "-0" as "0".
pub fn fmt_coord(d: f64) -> String {
    if !d.is_finite() {
        return crate::util::fmt_double_reply(d);
    }
    let mut s = format!("{:.17}", d);
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// Order `v` so that positions `lo..=hi` hold what a full sort would put
/// there, leaving the rest partly sorted: Redis sorts search results this
/// way when COUNT keeps fewer than it found. It is Bentley and McIlroy's
/// quicksort (median-of-3 or ninther pivot, 3-way partition keeping keys
/// equal to the pivot at both ends until the partition is done) that skips
/// the parts outside the range. The algorithm is reproduced move for move
/// because it is not stable: which of several equally distant members come
/// first is whatever it leaves, and replies show that.
pub fn partial_sort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    pqsort(v, 0, v.len(), lo, hi, cmp)
}

/// The index of the median of `a[i]`, `a[j]`, `a[k]`.
fn med3<T>(a: &[T], i: usize, j: usize, k: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    if cmp(&a[i], &a[j]) == Ordering::Less {
        if cmp(&a[j], &a[k]) == Ordering::Less {
            j
        } else if cmp(&a[i], &a[k]) == Ordering::Less {
            k
        } else {
            i
        }
    } else if cmp(&a[j], &a[k]) == Ordering::Greater {
        j
    } else if cmp(&a[i], &a[k]) == Ordering::Less {
        i
    } else {
        k
    }
}

/// Sorts `v[base..base + n]` as far as it overlaps `lo..=hi`.
fn pqsort<T>(v: &mut [T], mut base: usize, mut n: usize, lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    // A part lying wholly before or after the range needs no sorting.
    let wanted = |start: usize, len: usize| !((lo < start && hi < start) || (lo >= start + len && hi >= start + len));
    loop {
        let a = &mut v[base..base + n];
        if n < 7 {
            for m in 1..n {
                let mut l = m;
                while l > 0 && cmp(&a[l - 1], &a[l]) == Ordering::Greater {
                    a.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pm = n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (0, n - 1);
            if n > 40 {
                let d = n / 8;
                pl = med3(a, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(a, pm - d, pm, pm + d, cmp);
                pn = med3(a, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(a, pl, pm, pn, cmp);
        }
        a.swap(0, pm);
        // a[1..pa] and a[pd+1..] collect keys equal to the pivot a[0].
        let (mut pa, mut pb, mut pc, mut pd) = (1, 1, n - 1, n - 1);
        loop {
            while pb <= pc {
                match cmp(&a[pb], &a[0]) {
                    Ordering::Greater => break,
                    Ordering::Equal => {
                        a.swap(pa, pb);
                        pa += 1;
                    }
                    Ordering::Less => {}
                }
                pb += 1;
            }
            while pb <= pc {
                match cmp(&a[pc], &a[0]) {
                    Ordering::Less => break,
                    Ordering::Equal => {
                        a.swap(pc, pd);
                        pd -= 1;
                    }
                    Ordering::Greater => {}
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            a.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        // Move the equal keys to the middle, element by element.
        let vecswap = |a: &mut [T], i: usize, j: usize, r: usize| {
            for t in 0..r {
                a.swap(i + t, j + t);
            }
        };
        let r = pa.min(pb - pa);
        vecswap(a, 0, pb - r, r);
        let r = (pd - pc).min(n - pd - 1);
        vecswap(a, pb, n - r, r);
        let left = pb - pa;
        if left > 1 && wanted(base, left) {
            pqsort(v, base, left, lo, hi, cmp);
        }
        let right = pd - pc;
        if right > 1 {
            base = base + n - right;
            n = right;
            if wanted(base, n) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(score: u64) -> (String, String) {
        let (lon, lat) = decode_score(score as f64);
        (fmt_coord(lon), fmt_coord(lat))
    }

    #[test]
    fn encode_matches_redis_scores() {
        // Scores and positions as redis-server 7.0 stores and prints them.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(pos(3479099956230698), ("13.36138933897018433".into(), "38.11555639549629859".into()));
        assert_eq!(pos(3479447370796909), ("15.08726745843887329".into(), "37.50266842333162032".into()));
        assert_eq!(score_of(0.0, 0.0), Some(3377699720527872));
        assert_eq!(score_of(-180.0, -85.05112878), Some(0));
    }

    #[test]
    fn encode_refuses_outside_limits() {
        assert_eq!(score_of(180.000001, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
        assert_eq!(score_of(0.0, -85.06), None);
        assert!(score_of(180.0, 85.05112878).is_some());
    }

    #[test]
    fn interleave_round_trips() {
        for (a, b) in [(0u32, 0u32), (1, 0), (0, 1), (0x3ff_ffff, 0x155_5555), (u32::MAX, 7)] {
            assert_eq!(deinterleave(interleave(a, b)), (a, b));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
    }

    #[test]
    fn decode_contains_encoded_point() {
        for &(lon, lat) in &[(13.361389, 38.115556), (-122.27652, 37.805186), (179.9, -85.0), (-0.0001, 0.0001)] {
            let h = encode(WGS84_LON, WGS84_LAT, lon, lat, 20).unwrap();
            let a = decode(WGS84_LON, WGS84_LAT, h).unwrap();
            assert!(a.lon.min <= lon && lon <= a.lon.max, "{lon} in {:?}", a.lon);
            assert!(a.lat.min <= lat && lat <= a.lat.max, "{lat} in {:?}", a.lat);
        }
    }

    #[test]
    fn neighbours_are_adjacent_and_wrap() {
        let h = encode(WGS84_LON, WGS84_LAT, 10.0, 10.0, 8).unwrap();
        let a = decode(WGS84_LON, WGS84_LAT, h).unwrap();
        let n = neighbours(h);
        let north = decode(WGS84_LON, WGS84_LAT, n.north).unwrap();
        let east = decode(WGS84_LON, WGS84_LAT, n.east).unwrap();
        let sw = decode(WGS84_LON, WGS84_LAT, n.south_west).unwrap();
        assert_eq!(north.lat.min, a.lat.max);
        assert_eq!(north.lon, a.lon);
        assert_eq!(east.lon.min, a.lon.max);
        assert_eq!(sw.lat.max, a.lat.min);
        assert_eq!(sw.lon.max, a.lon.min);
        // West of the westernmost column is the easternmost one.
        let edge = encode(WGS84_LON, WGS84_LAT, -179.99, 0.0, 4).unwrap();
        let west = decode(WGS84_LON, WGS84_LAT, neighbours(edge).west).unwrap();
        assert_eq!(west.lon.max, 180.0);
    }

    #[test]
    fn haversine_distance() {
        // Palermo to Catania, as GEODIST prints it.
        let (a, b) = (decode_score(3479099956230698.0), decode_score(3479447370796909.0));
        assert_eq!(fmt_distance(distance(a.0, a.1, b.0, b.1)), "166274.1516");
        assert_eq!(distance(1.0, 2.0, 1.0, 2.0), 0.0);
        // One meridian: the arc between the latitudes, exactly.
        assert_eq!(distance(7.5, -30.0, 7.5, 40.0), lat_distance(-30.0, 40.0));
        assert_eq!(lat_distance(-30.0, 40.0), lat_distance(40.0, -30.0));
    }

    #[test]
    fn geohash_strings() {
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&geohash_string(3479447370796909.0), b"sqdtr74hyu0");
    }

    #[test]
    fn step_estimate() {
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(1.0, 0.0), 24);
        assert_eq!(estimate_step(200_000.0, 0.0), 6);
        assert_eq!(estimate_step(200_000.0, 70.0), 5);
        assert_eq!(estimate_step(200_000.0, -81.0), 4);
        assert_eq!(estimate_step(1e9, 0.0), 1);
    }

    #[test]
    fn shapes() {
        let c = Shape { lon: 15.0, lat: 37.0, extent: Extent::Radius(200.0), to_m: 1000.0 };
        assert!(c.contains(13.361389, 38.115556).is_some());
        assert!(c.contains(10.0, 37.0).is_none());
        let b = Shape { lon: 15.0, lat: 37.0, extent: Extent::Box { width: 400.0, height: 10.0 }, to_m: 1000.0 };
        assert!(b.contains(16.5, 37.0).is_some());
        assert!(b.contains(15.0, 38.0).is_none());
        // The cells always include the centre's own.
        let cells = c.cells();
        let centre = encode(WGS84_LON, WGS84_LAT, 15.0, 37.0, cells[0].step).unwrap();
        assert_eq!(cells[0], centre);
        assert!(cells.iter().skip(1).all(|h| h.is_none() || h.step == centre.step));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_coord(13.0), "13");
        assert_eq!(fmt_coord(-0.0), "0");
        assert_eq!(fmt_coord(-1e-20), "0");
        assert_eq!(fmt_coord(0.5), "0.5");
        assert_eq!(fmt_distance(0.0), "0.0000");
        assert_eq!(fmt_distance(0.03125), "0.0312");
        assert_eq!(unit_factor(b"KM"), Some(1000.0));
        assert_eq!(unit_factor(b"mi\0x"), Some(1609.34));
        assert_eq!(unit_factor(b"yd"), None);
    }

    #[test]
    fn partial_sort_orders_the_range() {
        let cmp = |a: &(u32, usize), b: &(u32, usize)| a.0.cmp(&b.0);
        let mut seed = 12345u64;
        for n in [0usize, 1, 5, 7, 8, 20, 41, 100, 300] {
            for _ in 0..20 {
                let mut v: Vec<(u32, usize)> = (0..n)
                    .map(|i| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (((seed >> 33) % 17) as u32, i)
                    })
                    .collect();
                let mut full = v.clone();
                full.sort_by(cmp);
                let k = if n == 0 { 0 } else { (seed >> 40) as usize % n };
                if n > 0 {
                    partial_sort(&mut v, 0, k, &cmp);
                    let keys: Vec<u32> = v[..=k].iter().map(|x| x.0).collect();
                    let want: Vec<u32> = full[..=k].iter().map(|x| x.0).collect();
                    assert_eq!(keys, want, "n={n} k={k}");
                    let mut all: Vec<usize> = v.iter().map(|x| x.1).collect();
                    all.sort();
                    assert_eq!(all, (0..n).collect::<Vec<_>>());
                }
            }
        }
    }
}

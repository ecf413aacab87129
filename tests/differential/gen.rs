//! Seeded random command generator for the differential test.
//!
//! Table-driven: `FAMILIES` lists one generator function per command family.
//! To add a family (lists, hashes, ...) write `fn my_family(g: &mut Gen) -> Op`
//! and add a row to `FAMILIES`.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// How two replies to the same command are compared.
#[derive(Clone, Debug)]
pub enum Cmp {
    Exact,
    /// Flat aggregate whose order is unspecified (KEYS): compare sorted.
    Sorted,
    /// Integer that depends on wall time (TTL, PTTL, EXPIRETIME...): equal
    /// within the tolerance; negative values (-1/-2) must match exactly.
    Tol(i64),
    /// RANDOMKEY: only nil vs non-nil (and the reply type) must match.
    NilOrNot,
    /// OBJECT ENCODING: string encodings (int/embstr/raw) exact; container
    /// encodings only need to be some bulk string, since they are an
    /// implementation detail of redis' data structures.
    Encoding,
    /// EXEC: element-wise with the comparators of the queued commands.
    Exec(Vec<Cmp>),
    /// Random picks (SPOP, SRANDMEMBER, HRANDFIELD with a count): same
    /// reply type and number of elements.
    Len,
    /// HGETALL: map entries (or flat RESP2 pairs) compared sorted.
    Pairs,
    /// HSCAN/SSCAN in one call: same cursor, items sorted (as pairs if set).
    ScanAll {
        pairs: bool,
    },
    /// DUMP: byte-equal where Redis's encoding is deterministic (see
    /// `dump_exact` in differential.rs), else the same object type.
    Dump,
    /// Stream replies (XPENDING, XINFO): exact except idle/seen times,
    /// delivery times and radix-tree-nodes (see `stream_same`).
    Stream,
    /// The keyspace-events run: [reply, sorted events]; the events exact,
    /// the reply by the command's own comparison.
    WithEvents(Box<Cmp>),
}

/// One step of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Cmd {
        args: Vec<Vec<u8>>,
        cmp: Cmp,
    },
    /// Full SCAN iteration; the reply compared is the sorted set of keys.
    Scan {
        pattern: Option<Vec<u8>>,
        count: Option<u32>,
        typ: Option<&'static str>,
    },
}

impl Op {
    pub fn describe(&self) -> String {
        match self {
            Op::Cmd { args, .. } => crate::common::fmt_command(args),
            Op::Scan { pattern, count, typ } => {
                let mut s = "SCAN <iterate to 0>".to_string();
                if let Some(p) = pattern {
                    s += &format!(" MATCH {}", String::from_utf8_lossy(p));
                }
                if let Some(c) = count {
                    s += &format!(" COUNT {c}");
                }
                if let Some(t) = typ {
                    s += &format!(" TYPE {t}");
                }
                s
            }
        }
    }
}

pub struct Family {
    pub name: &'static str,
    pub weight: u32,
    /// May appear between MULTI and EXEC.
    pub in_multi: bool,
    pub gen: fn(&mut Gen) -> Op,
}

pub const FAMILIES: &[Family] = &[
    Family { name: "strings", weight: 30, in_multi: true, gen: strings },
    Family { name: "counters", weight: 10, in_multi: true, gen: counters },
    Family { name: "bits", weight: 8, in_multi: true, gen: bits },
    Family { name: "lcs", weight: 3, in_multi: true, gen: lcs },
    Family { name: "keys", weight: 16, in_multi: true, gen: keys },
    Family { name: "expire", weight: 12, in_multi: true, gen: expire },
    Family { name: "scan", weight: 2, in_multi: false, gen: scan },
    Family { name: "errors", weight: 3, in_multi: true, gen: errors },
    // Creates non-string keys so WRONGTYPE, TYPE and SCAN TYPE get exercised.
    Family { name: "othertypes", weight: 2, in_multi: true, gen: other_types },
    Family { name: "hashes", weight: 14, in_multi: true, gen: hashes },
    Family { name: "sets", weight: 14, in_multi: true, gen: sets },
    Family { name: "zsets", weight: 20, in_multi: true, gen: zsets },
    Family { name: "lists", weight: 20, in_multi: true, gen: lists },
    Family { name: "hll", weight: 8, in_multi: true, gen: hll },
    Family { name: "streams", weight: 20, in_multi: true, gen: streams },
    // Blocking pops with short timeouts: served at once, or nil on timeout
    // (a single client never gets woken by another).
    Family { name: "blocking", weight: 6, in_multi: true, gen: blocking },
    Family { name: "geo", weight: 14, in_multi: true, gen: geo },
    Family { name: "sort", weight: 12, in_multi: true, gen: sort_family },
    // OBJECT FREQ: only in the LFU run (lfu-log-factor 0 makes the
    // counter count every use), see `OPT_IN`.
    Family { name: "freq", weight: 25, in_multi: true, gen: freq },
    Family { name: "dump", weight: 8, in_multi: true, gen: dump_family },
    // SORT BY/GET patterns without hash tags: with several shards, a
    // transaction over every shard (see `differential_sort_patterns`).
    Family { name: "sortpat", weight: 12, in_multi: true, gen: sort_pattern_family },
];

/// Families only a run that names them enables.
const OPT_IN: &[&str] = &["freq", "sortpat"];

/// OBJECT FREQ of a key (the LFU run: every use counts once per command).
fn freq(g: &mut Gen) -> Op {
    Op::Cmd { args: vec![b"OBJECT".to_vec(), b"FREQ".to_vec(), g.key()], cmp: Cmp::Exact }
}

/// Weight of the (multi-op) transaction generator relative to FAMILIES.
const TX_WEIGHT: u32 = 5;

pub struct Gen {
    pub rng: StdRng,
    families: Vec<&'static Family>,
    tx_enabled: bool,
    now_s: u64,
    used_ttls: HashSet<u64>,
    /// Counter for members never used before (see `RND_SET`).
    uniq: u64,
}

pub const KEYS: &[&str] = &[
    "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15", "{t}a",
    "{t}b", "{t}c",
];

impl Gen {
    /// `only`: family names to enable (None = all), or, when every entry
    /// starts with '-', names to disable. "tx" names transactions.
    pub fn new(seed: u64, only: Option<&[String]>) -> Gen {
        let on = |n: &str| match only {
            None => !OPT_IN.contains(&n),
            Some(o) if o.iter().all(|x| x.starts_with('-')) => !OPT_IN.contains(&n) && !o.iter().any(|x| &x[1..] == n),
            Some(o) => o.iter().any(|x| x == n),
        };
        Gen {
            rng: StdRng::seed_from_u64(seed),
            families: FAMILIES.iter().filter(|f| on(f.name)).collect(),
            tx_enabled: on("tx"),
            now_s: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            used_ttls: HashSet::new(),
            uniq: 0,
        }
    }

    pub fn sequence(&mut self, n: usize) -> Vec<Op> {
        let mut ops = Vec::with_capacity(n + 8);
        let total: u32 = self.families.iter().map(|f| f.weight).sum::<u32>() + self.tx_weight();
        assert!(total > 0, "no families enabled");
        while ops.len() < n {
            let mut pick = self.rng.gen_range(0..total);
            if pick < self.tx_weight() {
                self.transaction(&mut ops);
                continue;
            }
            pick -= self.tx_weight();
            for f in self.families.clone() {
                if pick < f.weight {
                    let op = (f.gen)(self);
                    ops.push(self.mangle_case(op));
                    break;
                }
                pick -= f.weight;
            }
        }
        ops
    }

    fn tx_weight(&self) -> u32 {
        if self.tx_enabled {
            TX_WEIGHT
        } else {
            0
        }
    }

    /// Command names are case-insensitive; exercise that now and then.
    fn mangle_case(&mut self, mut op: Op) -> Op {
        if let Op::Cmd { args, .. } = &mut op {
            if self.chance(10) {
                for c in args[0].iter_mut() {
                    if self.rng.gen_bool(0.5) {
                        *c = c.to_ascii_lowercase();
                    }
                }
            }
        }
        op
    }

    /// A single command from a family allowed inside MULTI.
    fn queueable(&mut self) -> (Vec<Vec<u8>>, Cmp) {
        let fams: Vec<&Family> = self.families.iter().copied().filter(|f| f.in_multi).collect();
        let f = fams.choose(&mut self.rng).expect("no family usable in MULTI");
        match (f.gen)(self) {
            Op::Cmd { args, cmp } => (args, cmp),
            Op::Scan { .. } => unreachable!("scan is not queueable"),
        }
    }

    fn transaction(&mut self, ops: &mut Vec<Op>) {
        let exact = |a: &[&str]| Op::Cmd { args: a.iter().map(|x| x.as_bytes().to_vec()).collect(), cmp: Cmp::Exact };
        match self.rng.gen_range(0..100) {
            // Stray transaction commands outside MULTI.
            0..=7 => {
                let c = *["EXEC", "DISCARD", "UNWATCH"].choose(&mut self.rng).unwrap();
                ops.push(exact(&[c]));
                return;
            }
            _ => {}
        }
        // WATCH, possibly followed by a write from this same connection
        // (which must make EXEC return nil).
        if self.chance(35) {
            let mut w = vec![b"WATCH".to_vec()];
            for _ in 0..self.rng.gen_range(1..=3) {
                w.push(self.key());
            }
            ops.push(Op::Cmd { args: w, cmp: Cmp::Exact });
            for _ in 0..self.rng.gen_range(0..=2) {
                let (args, cmp) = self.queueable();
                ops.push(Op::Cmd { args, cmp });
            }
            if self.chance(15) {
                ops.push(exact(&["UNWATCH"]));
            }
        }
        ops.push(exact(&["MULTI"]));
        let mut inner = Vec::new();
        for _ in 0..self.rng.gen_range(0..=5) {
            match self.rng.gen_range(0..100) {
                // Queue-time errors: the whole transaction is aborted.
                0..=4 => ops.push(exact(&["GET"])),
                5..=7 => ops.push(exact(&["NOSUCHCMD", "x"])),
                8..=9 => ops.push(exact(&["MULTI"])),
                10..=11 => ops.push(exact(&["WATCH", "k1"])),
                // Runtime WRONGTYPE error inside EXEC.
                12..=18 if self.families.iter().any(|f| f.name == "othertypes") => {
                    ops.push(exact(&["SADD", "{t}c", "m"]));
                    ops.push(exact(&["INCR", "{t}c"]));
                    inner.push(Cmp::Exact);
                    inner.push(Cmp::Exact);
                }
                _ => {
                    let (args, cmp) = self.queueable();
                    ops.push(Op::Cmd { args, cmp });
                    inner.push(cmp_clone(ops.last().unwrap()));
                }
            }
        }
        if self.chance(15) {
            ops.push(exact(&["DISCARD"]));
        } else {
            ops.push(Op::Cmd { args: vec![b"EXEC".to_vec()], cmp: Cmp::Exec(inner) });
        }
    }

    // ---- value helpers -------------------------------------------------

    pub fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    pub fn key(&mut self) -> Vec<u8> {
        KEYS.choose(&mut self.rng).unwrap().as_bytes().to_vec()
    }

    pub fn keys(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn letters(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len).map(|_| *alphabet.choose(&mut self.rng).unwrap()).collect()
    }

    /// Values mixing integers, floats, empty, binary and long strings.
    pub fn value(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..100) {
            0..=27 => self.rng.gen_range(-20i64..200).to_string().into_bytes(),
            28..=33 => self.int_arg(),
            34..=41 => self.float_arg(),
            42..=46 => Vec::new(),
            47..=54 => {
                let n = self.rng.gen_range(1..16);
                (0..n)
                    .map(|_| *[0u8, 1, b'\r', b'\n', 0x7f, 0x80, 0xff, b' ', b'"', b'a'].choose(&mut self.rng).unwrap())
                    .collect()
            }
            55..=62 => {
                let n = self.rng.gen_range(40..300);
                self.letters(b"ACGT", n)
            }
            63..=64 => {
                let n = self.rng.gen_range(1000..3000);
                self.letters(b"ACGTN", n)
            }
            _ => {
                let n = self.rng.gen_range(1..20);
                self.letters(b"abcxyz", n)
            }
        }
    }

    /// Integer-ish arguments, including edge and malformed ones.
    pub fn int_arg(&mut self) -> Vec<u8> {
        const EDGE: &[&str] = &[
            "0",
            "1",
            "-1",
            "10",
            "-100",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775806",
            "-9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "007",
            "-0",
            "+5",
            " 5",
            "5 ",
            "0x10",
            "1.0",
            "abc",
            "",
        ];
        if self.chance(70) {
            self.rng.gen_range(-1000i64..1000).to_string().into_bytes()
        } else {
            EDGE.choose(&mut self.rng).unwrap().as_bytes().to_vec()
        }
    }

    pub fn float_arg(&mut self) -> Vec<u8> {
        const F: &[&str] = &[
            "1.5",
            "-0.25",
            "0.1",
            "3.0e2",
            "1e-5",
            "10.50",
            "-3",
            "0",
            "1e308",
            "-1e308",
            "inf",
            "-inf",
            "nan",
            "1.",
            ".5",
            "1e",
            "abc",
            "5.0000000000000001",
            "0.3333333333333333",
            "123456789.123456789",
        ];
        F.choose(&mut self.rng).unwrap().as_bytes().to_vec()
    }

    /// Small index for ranges (GETRANGE, BITCOUNT...), sometimes extreme.
    pub fn index(&mut self) -> Vec<u8> {
        if self.chance(85) {
            self.rng.gen_range(-40i64..40).to_string().into_bytes()
        } else {
            [&b"9223372036854775807"[..], b"-9223372036854775808", b"1000000", b"-1000000", b"x"]
                .choose(&mut self.rng)
                .unwrap()
                .to_vec()
        }
    }

    /// Relative TTL in seconds, far in the future and unique within a seed
    /// (multiple of 100 s): two expirations set at slightly different wall
    /// times never compare equal, so NX/XX/GT/LT replies are deterministic.
    fn rel_secs(&mut self) -> u64 {
        loop {
            let s = self.rng.gen_range(10..1000u64) * 100;
            if self.used_ttls.insert(s) {
                return s;
            }
        }
    }

    /// Expiration argument for `unit` in {EX, PX, EXAT, PXAT}. Absolute ones
    /// are offset by 50 s so they never coincide with relative ones.
    /// Occasionally a bad/past value whose effect does not depend on timing
    /// (error reply or immediate deletion).
    pub fn expire_arg(&mut self, unit: &str) -> Vec<u8> {
        self.expire_arg_opt(unit, true)
    }

    /// For SET: redis 7.0 stores a key with a past EXAT/PXAT and reclaims it
    /// lazily, so DBSIZE would depend on active-expire timing. No past times.
    pub fn set_expire_arg(&mut self, unit: &str) -> Vec<u8> {
        self.expire_arg_opt(unit, false)
    }

    fn expire_arg_opt(&mut self, unit: &str, past: bool) -> Vec<u8> {
        if self.chance(8) {
            const BAD: &[&str] = &["0", "-1", "-100", "abc", "1.5", "", "9223372036854775807", "-9223372036854775808"];
            return BAD.choose(&mut self.rng).unwrap().as_bytes().to_vec();
        }
        if past && unit.ends_with("AT") && self.chance(8) {
            // Absolute time in the past: key expires at once.
            return self.rng.gen_range(1..1_000_000u64).to_string().into_bytes();
        }
        let rel = self.rel_secs();
        let v = match unit {
            "EX" => rel,
            "PX" => rel * 1000,
            "EXAT" => self.now_s + rel + 50,
            "PXAT" => (self.now_s + rel + 50) * 1000,
            _ => unreachable!(),
        };
        v.to_string().into_bytes()
    }

    pub fn expire_unit(&mut self) -> &'static str {
        ["EX", "PX", "EXAT", "PXAT"].choose(&mut self.rng).unwrap()
    }
}

fn cmp_clone(op: &Op) -> Cmp {
    match op {
        Op::Cmd { cmp, .. } => cmp.clone(),
        Op::Scan { .. } => Cmp::Exact,
    }
}

/// Build an Op from mixed &str / Vec<u8> parts.
macro_rules! cmd {
    ($cmp:expr; $($a:expr),+ $(,)?) => {{
        let v: Vec<Vec<u8>> = vec![$( AsRef::<[u8]>::as_ref(&$a).to_vec() ),+];
        Op::Cmd { args: v, cmp: $cmp }
    }};
    ($($a:expr),+ $(,)?) => { cmd!(Cmp::Exact; $($a),+) };
}

fn with(mut base: Op, extra: Vec<Vec<u8>>) -> Op {
    if let Op::Cmd { args, .. } = &mut base {
        args.extend(extra);
    }
    base
}

// ---- families --------------------------------------------------------------

fn strings(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..17) {
        0 | 1 => cmd!("GET", k),
        2 | 3 => {
            // SET with a random (possibly invalid) mix of options.
            let mut opts: Vec<Vec<u8>> = Vec::new();
            for _ in 0..g.rng.gen_range(0..=3) {
                match g.rng.gen_range(0..9) {
                    0 => opts.push(b"NX".to_vec()),
                    1 => opts.push(b"XX".to_vec()),
                    2 | 3 => opts.push(b"GET".to_vec()),
                    4 => opts.push(b"KEEPTTL".to_vec()),
                    8 if g.chance(20) => opts.push(b"BOGUS".to_vec()),
                    _ => {
                        let u = g.expire_unit();
                        opts.push(u.as_bytes().to_vec());
                        if !g.chance(3) {
                            opts.push(g.set_expire_arg(u));
                        }
                    }
                }
            }
            with(cmd!("SET", k, g.value()), opts)
        }
        4 => cmd!("SETNX", k, g.value()),
        5 => cmd!("SETEX", k, g.expire_arg("EX"), g.value()),
        6 => cmd!("PSETEX", k, g.expire_arg("PX"), g.value()),
        7 => {
            let opts: Vec<Vec<u8>> = match g.rng.gen_range(0..8) {
                0 => vec![],
                1 => vec![b"PERSIST".to_vec()],
                2 => vec![b"EX".to_vec(), g.expire_arg("EX"), b"PERSIST".to_vec()],
                3 => vec![b"EX".to_vec()],
                _ => {
                    let u = g.expire_unit();
                    vec![u.as_bytes().to_vec(), g.expire_arg(u)]
                }
            };
            with(cmd!("GETEX", k), opts)
        }
        8 => cmd!("GETDEL", k),
        9 => cmd!("GETSET", k, g.value()),
        10 => with(cmd!("MGET", k), g.keys(0, 4)),
        11 | 12 => {
            let name = if g.chance(70) { "MSET" } else { "MSETNX" };
            let mut a = vec![];
            for _ in 0..g.rng.gen_range(1..=4) {
                a.push(g.key());
                a.push(g.value());
            }
            if g.chance(5) {
                a.pop(); // odd number of arguments
            }
            with(cmd!(name), a)
        }
        13 => cmd!("APPEND", k, g.value()),
        14 => cmd!("STRLEN", k),
        15 => cmd!("GETRANGE", k, g.index(), g.index()),
        _ => {
            let off: Vec<u8> = match g.rng.gen_range(0..20) {
                0 => b"-1".to_vec(),
                1 => b"536870912".to_vec(),
                2 => b"x".to_vec(),
                3 => g.rng.gen_range(1000..5000).to_string().into_bytes(),
                _ => g.rng.gen_range(0..60).to_string().into_bytes(),
            };
            cmd!("SETRANGE", k, off, g.value())
        }
    }
}

fn counters(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..7) {
        0 | 1 => cmd!("INCR", k),
        2 => cmd!("DECR", k),
        3 => cmd!("INCRBY", k, g.int_arg()),
        4 => cmd!("DECRBY", k, g.int_arg()),
        5 => {
            let v = if g.chance(50) { g.float_arg() } else { g.int_arg() };
            cmd!("INCRBYFLOAT", k, v)
        }
        _ => cmd!("SET", k, g.int_arg()),
    }
}

fn bit_range(g: &mut Gen) -> Vec<Vec<u8>> {
    match g.rng.gen_range(0..6) {
        0 => vec![],
        1 => vec![g.index()], // start without end: syntax error
        2 | 3 => vec![g.index(), g.index()],
        4 => vec![g.index(), g.index(), b"BYTE".to_vec()],
        _ => vec![g.index(), g.index(), if g.chance(90) { b"BIT".to_vec() } else { b"WORD".to_vec() }],
    }
}

/// BITFIELD subcommands: mostly valid types and offsets, small values
/// (so SET/INCRBY often rewrite the same bits), all overflow modes.
fn bitfield_ops(g: &mut Gen, readonly: bool) -> Vec<Vec<u8>> {
    let mut a: Vec<Vec<u8>> = vec![];
    for _ in 0..g.rng.gen_range(1..=3) {
        let typ = if g.chance(5) {
            ["u64", "i65", "x8", "u0"].choose(&mut g.rng).unwrap().to_string()
        } else {
            let signed = g.chance(50);
            let bits = *[1, 2, 4, 5, 8, 16, 32, 63].choose(&mut g.rng).unwrap();
            if signed && g.chance(10) {
                "i64".to_string()
            } else {
                format!("{}{bits}", if signed { "i" } else { "u" })
            }
        };
        let off = match g.rng.gen_range(0..10) {
            0 => format!("#{}", g.rng.gen_range(0..6)),
            1 if g.chance(30) => ["-1", "x", "4294967296"].choose(&mut g.rng).unwrap().to_string(),
            _ => g.rng.gen_range(0..40).to_string(),
        };
        let val =
            |g: &mut Gen| if g.chance(70) { g.rng.gen_range(-3i64..5).to_string().into_bytes() } else { g.int_arg() };
        match g.rng.gen_range(0..10) {
            0..=3 => a.extend([b"GET".to_vec(), typ.into_bytes(), off.into_bytes()]),
            _ if readonly && g.chance(80) => a.extend([b"GET".to_vec(), typ.into_bytes(), off.into_bytes()]),
            4..=5 => a.extend([b"SET".to_vec(), typ.into_bytes(), off.into_bytes(), val(g)]),
            6..=7 => a.extend([b"INCRBY".to_vec(), typ.into_bytes(), off.into_bytes(), val(g)]),
            8 => {
                let mode = ["WRAP", "SAT", "FAIL", "fail", "BAD"].choose(&mut g.rng).unwrap();
                a.extend([b"OVERFLOW".to_vec(), mode.as_bytes().to_vec()]);
            }
            _ => a.push(b"NOPE".to_vec()),
        }
    }
    a
}

fn bits(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..10) {
        7 | 8 => with(cmd!("BITFIELD", k), bitfield_ops(g, false)),
        9 => with(cmd!("BITFIELD_RO", k), bitfield_ops(g, true)),
        0 | 1 => {
            let off: Vec<u8> = match g.rng.gen_range(0..20) {
                0 => b"-1".to_vec(),
                1 => b"4294967296".to_vec(),
                2 => b"abc".to_vec(),
                3 => g.rng.gen_range(1000..40000).to_string().into_bytes(),
                _ => g.rng.gen_range(0..200).to_string().into_bytes(),
            };
            let bit: &str = if g.chance(5) { "2" } else { ["0", "1"].choose(&mut g.rng).unwrap() };
            cmd!("SETBIT", k, off, bit)
        }
        2 => cmd!("GETBIT", k, g.rng.gen_range(0..300).to_string()),
        3 => with(cmd!("BITCOUNT", k), bit_range(g)),
        4 => {
            let bit: &str = if g.chance(5) { "3" } else { ["0", "1"].choose(&mut g.rng).unwrap() };
            let r = bit_range(g);
            with(cmd!("BITPOS", k, bit), r)
        }
        _ => {
            let op = *["AND", "OR", "XOR", "NOT", "and", "NAND"].choose(&mut g.rng).unwrap();
            let n = if op.eq_ignore_ascii_case("NOT") && g.chance(80) { 1 } else { g.rng.gen_range(1..=3) };
            let dest = g.key();
            with(cmd!("BITOP", op, dest), g.keys(n, n))
        }
    }
}

fn lcs(g: &mut Gen) -> Op {
    let (a, b) = (g.key(), g.key());
    // Option groups are shuffled as units so MINMATCHLEN keeps its argument.
    let mut groups: Vec<Vec<Vec<u8>>> = vec![];
    match g.rng.gen_range(0..5) {
        0 => {}
        1 => groups.push(vec![b"LEN".to_vec()]),
        _ => {
            groups.push(vec![b"IDX".to_vec()]);
            if g.chance(50) {
                groups.push(vec![b"MINMATCHLEN".to_vec(), g.rng.gen_range(0..6).to_string().into_bytes()]);
            }
            if g.chance(50) {
                groups.push(vec![b"WITHMATCHLEN".to_vec()]);
            }
            if g.chance(10) {
                groups.push(vec![b"LEN".to_vec()]); // LEN + IDX is an error
            }
        }
    }
    groups.shuffle(&mut g.rng);
    with(cmd!("LCS", a, b), groups.concat())
}

fn keys(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..20) {
        0 => with(cmd!("DEL", k), g.keys(0, 3)),
        1 => with(cmd!("UNLINK", k), g.keys(0, 3)),
        2 | 3 => with(cmd!("EXISTS", k), g.keys(0, 3)),
        4 => cmd!("TYPE", k),
        5 => cmd!("RENAME", k, g.key()),
        6 => cmd!("RENAMENX", k, g.key()),
        7 => {
            let mut opts: Vec<Vec<u8>> = vec![];
            if g.chance(25) {
                opts.push(b"DB".to_vec());
                opts.push((if g.chance(90) { ["0", "1"].choose(&mut g.rng).unwrap() } else { "99" }).into());
            }
            if g.chance(40) {
                opts.push(b"REPLACE".to_vec());
            }
            with(cmd!("COPY", k, g.key()), opts)
        }
        8 => with(cmd!("TOUCH", k), g.keys(0, 2)),
        9 => {
            let pat = *["*", "k1*", "{t}*", "k?", "k[0-3]", "*a*", "k[^1]*", "\\{t\\}*", "nomatch*"]
                .choose(&mut g.rng)
                .unwrap();
            cmd!(Cmp::Sorted; "KEYS", pat)
        }
        10 => cmd!("DBSIZE"),
        11 => {
            let db = *["1", "1", "1", "0", "16", "x", "3000000000"].choose(&mut g.rng).unwrap();
            cmd!("MOVE", k, db)
        }
        12 => cmd!(Cmp::Encoding; "OBJECT", "ENCODING", k),
        13 => cmd!(Cmp::NilOrNot; "RANDOMKEY"),
        14 | 15 => {
            let db = match g.rng.gen_range(0..20) {
                0 => "16",
                1 => "abc",
                2 => "-1",
                n if n < 12 => "0",
                _ => "1",
            };
            cmd!("SELECT", db)
        }
        17 if g.chance(25) => {
            let db = |g: &mut Gen| *["0", "1", "1", "16", "x"].choose(&mut g.rng).unwrap();
            cmd!("SWAPDB", db(g), db(g))
        }
        16 if g.chance(25) => {
            let mode: &[&str] = [&[][..], &["ASYNC"], &["SYNC"]].choose(&mut g.rng).unwrap();
            with(cmd!("FLUSHDB"), mode.iter().map(|m| m.as_bytes().to_vec()).collect())
        }
        _ => cmd!("EXISTS", k),
    }
}

fn expire(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..11) {
        0..=3 => {
            let (name, unit) = *[("EXPIRE", "EX"), ("PEXPIRE", "PX"), ("EXPIREAT", "EXAT"), ("PEXPIREAT", "PXAT")]
                .choose(&mut g.rng)
                .unwrap();
            let mut flags: Vec<Vec<u8>> = vec![];
            for _ in 0..(if g.chance(60) {
                0
            } else if g.chance(85) {
                1
            } else {
                2
            }) {
                flags.push(["NX", "XX", "GT", "LT"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            with(cmd!(name, k, g.expire_arg(unit)), flags)
        }
        4 => cmd!(Cmp::Tol(2); "TTL", k),
        5 => cmd!(Cmp::Tol(2000); "PTTL", k),
        6 => cmd!(Cmp::Tol(2); "EXPIRETIME", k),
        7 => cmd!(Cmp::Tol(2000); "PEXPIRETIME", k),
        8 => cmd!("PERSIST", k),
        _ => {
            // Give a key a long TTL through SET so TTL checks see it.
            let u = g.expire_unit();
            cmd!("SET", k, g.value(), u, g.set_expire_arg(u))
        }
    }
}

fn scan(g: &mut Gen) -> Op {
    let pattern = if g.chance(40) {
        Some(["*", "k1*", "{t}*", "k?", "*a*"].choose(&mut g.rng).unwrap().as_bytes().to_vec())
    } else {
        None
    };
    let count = if g.chance(50) { Some(*[1u32, 2, 5, 100].choose(&mut g.rng).unwrap()) } else { None };
    let typ =
        if g.chance(20) { Some(*["string", "list", "set", "hash", "zset"].choose(&mut g.rng).unwrap()) } else { None };
    Op::Scan { pattern, count, typ }
}

fn errors(g: &mut Gen) -> Op {
    match g.rng.gen_range(0..4) {
        0 | 1 => {
            // Wrong arity.
            let (name, n) = *[
                ("GET", 0),
                ("GET", 2),
                ("SET", 1),
                ("INCR", 0),
                ("INCRBY", 1),
                ("MGET", 0),
                ("DEL", 0),
                ("EXPIRE", 1),
                ("TTL", 2),
                ("GETRANGE", 2),
                ("SETBIT", 2),
                ("LCS", 1),
                ("RENAME", 1),
                ("DBSIZE", 1),
                ("BITOP", 2),
                ("SELECT", 0),
                ("PING", 2),
                ("ECHO", 0),
            ]
            .choose(&mut g.rng)
            .unwrap();
            let mut args = vec![name.as_bytes().to_vec()];
            for _ in 0..n {
                args.push(g.key());
            }
            Op::Cmd { args, cmp: Cmp::Exact }
        }
        2 => {
            let name = *["FOOBAR", "GETT", "set2", "", "x y"].choose(&mut g.rng).unwrap();
            let mut args = vec![name.as_bytes().to_vec()];
            for _ in 0..g.rng.gen_range(0..4) {
                args.push(g.value());
            }
            Op::Cmd { args, cmp: Cmp::Exact }
        }
        _ => match g.rng.gen_range(0..4) {
            0 => cmd!("OBJECT", "NOSUCH", g.key()),
            1 => cmd!("PING"),
            2 => cmd!("ECHO", g.value()),
            _ => cmd!("PING", g.value()),
        },
    }
}

fn other_types(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..4) {
        0 => cmd!("RPUSH", k, g.value()),
        1 => cmd!("SADD", k, g.value()),
        2 => cmd!("HSET", k, "f", g.value()),
        _ => cmd!("ZADD", k, g.rng.gen_range(0..10).to_string(), g.value()),
    }
}

// ---- hashes and sets -------------------------------------------------------

fn field(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..20) {
        0 => Vec::new(),
        1 => g.letters(b"fg", 70), // past hash-max-listpack-value
        2 => g.int_arg(),
        _ => format!("f{}", g.rng.gen_range(0..8)).into_bytes(),
    }
}

fn hashes(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..22) {
        0..=3 => {
            let name = if g.chance(85) { "HSET" } else { "HMSET" };
            let mut a = vec![];
            for _ in 0..g.rng.gen_range(1..=3) {
                a.push(field(g));
                a.push(if g.chance(30) { g.int_arg() } else { g.value() });
            }
            if g.chance(5) {
                a.pop();
            }
            with(cmd!(name, k), a)
        }
        4 => cmd!("HSETNX", k, field(g), g.value()),
        5 | 6 => cmd!("HGET", k, field(g)),
        7 => {
            let n = g.rng.gen_range(1..=3);
            with(cmd!("HMGET", k), (0..n).map(|_| field(g)).collect())
        }
        8 => cmd!(Cmp::Pairs; "HGETALL", k),
        9 => cmd!(Cmp::Sorted; *["HKEYS", "HVALS"].choose(&mut g.rng).unwrap(), k),
        10 | 11 => {
            let n = g.rng.gen_range(1..=3);
            with(cmd!("HDEL", k), (0..n).map(|_| field(g)).collect())
        }
        12 => cmd!("HEXISTS", k, field(g)),
        13 => cmd!("HLEN", k),
        14 => cmd!("HSTRLEN", k, field(g)),
        15 | 16 => cmd!("HINCRBY", k, field(g), g.int_arg()),
        17 => {
            let v = if g.chance(50) { g.float_arg() } else { g.int_arg() };
            cmd!("HINCRBYFLOAT", k, field(g), v)
        }
        18 | 19 => {
            let (opts, cmp) = rand_count_opts(g, true);
            with(cmd!(cmp; "HRANDFIELD", k), opts)
        }
        _ => with(cmd!(Cmp::ScanAll { pairs: true }; "HSCAN", k), scan_opts(g)),
    }
}

/// `[count [WITHVALUES]]` for HRANDFIELD/SRANDMEMBER and its comparator.
fn rand_count_opts(g: &mut Gen, withvalues: bool) -> (Vec<Vec<u8>>, Cmp) {
    if g.chance(20) {
        return (vec![], Cmp::NilOrNot);
    }
    let count = match g.rng.gen_range(0..10) {
        0 => ["0", "x", "-9223372036854775808", "9223372036854775807"].choose(&mut g.rng).unwrap().to_string(),
        1..=4 => g.rng.gen_range(-6i64..0).to_string(),
        _ => g.rng.gen_range(1i64..30).to_string(),
    };
    let mut v = vec![count.into_bytes()];
    if withvalues && g.chance(40) {
        v.push(b"WITHVALUES".to_vec());
    }
    if g.chance(4) {
        v.push(b"extra".to_vec());
    }
    (v, Cmp::Len)
}

/// SSCAN/HSCAN `0` with options: a COUNT large enough that redis-server
/// finishes in one call even on a hash table, or invalid arguments.
fn scan_opts(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![if g.chance(95) { b"0".to_vec() } else { b"x".to_vec() }];
    if g.chance(40) {
        v.extend([
            b"MATCH".to_vec(),
            ["f*", "*1*", "a", "?", "[a-c]*"].choose(&mut g.rng).unwrap().as_bytes().to_vec(),
        ]);
    }
    match g.rng.gen_range(0..20) {
        0 => v.extend([b"COUNT".to_vec(), b"0".to_vec()]),
        1 => v.push(b"COUNT".to_vec()),
        2 => v.extend([b"TYPE".to_vec(), b"string".to_vec()]),
        _ => v.extend([b"COUNT".to_vec(), b"1000".to_vec()]),
    }
    v
}

fn member(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..20) {
        0..=7 => g.rng.gen_range(-3i64..15).to_string().into_bytes(),
        8 => g.int_arg(),
        9 => g.letters(b"mn", 70), // past set-max-listpack-value
        _ => g.letters(b"abcd", 1),
    }
}

/// A set only touched by random pops, with members never seen before, so
/// every reply about it is determined by its size alone.
const RND_SET: &str = "{r}s";

fn sets(g: &mut Gen) -> Op {
    let k = g.key();
    let members = |g: &mut Gen, max| (0..g.rng.gen_range(1..=max)).map(|_| member(g)).collect::<Vec<_>>();
    match g.rng.gen_range(0..24) {
        0..=3 => with(cmd!("SADD", k), members(g, 4)),
        4 | 5 => with(cmd!("SREM", k), members(g, 3)),
        6 => cmd!(Cmp::Sorted; "SMEMBERS", k),
        7 => cmd!("SISMEMBER", k, member(g)),
        8 => with(cmd!("SMISMEMBER", k), members(g, 3)),
        9 => cmd!("SCARD", k),
        10 => {
            // Counts whose outcome does not depend on chance.
            let c = *["1000", "0", "-1", "x"].choose(&mut g.rng).unwrap();
            cmd!(Cmp::Sorted; "SPOP", k, c)
        }
        11 => {
            let (opts, cmp) = rand_count_opts(g, false);
            with(cmd!(cmp; "SRANDMEMBER", k), opts)
        }
        12 => cmd!("SMOVE", k, g.key(), member(g)),
        13..=15 => {
            let name = *["SINTER", "SUNION", "SDIFF"].choose(&mut g.rng).unwrap();
            with(cmd!(Cmp::Sorted; name, k), g.keys(0, 3))
        }
        16 | 17 => {
            let name = *["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"].choose(&mut g.rng).unwrap();
            with(cmd!(name, k), g.keys(1, 3))
        }
        18 => {
            let keys = g.keys(1, 3);
            let n = if g.chance(90) {
                keys.len().to_string()
            } else {
                ["0", "5", "x"].choose(&mut g.rng).unwrap().to_string()
            };
            let mut a = vec![n.into_bytes()];
            a.extend(keys);
            if g.chance(40) {
                a.extend([b"LIMIT".to_vec(), ["0", "1", "2", "-1"].choose(&mut g.rng).unwrap().as_bytes().to_vec()]);
            }
            with(cmd!("SINTERCARD"), a)
        }
        19 => with(cmd!(Cmp::ScanAll { pairs: false }; "SSCAN", k), scan_opts(g)),
        _ => match g.rng.gen_range(0..4) {
            0 => {
                let n = g.rng.gen_range(1..=5);
                let m: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        g.uniq += 1;
                        format!("u{}", g.uniq).into_bytes()
                    })
                    .collect();
                with(cmd!("SADD", RND_SET), m)
            }
            1 => cmd!(Cmp::NilOrNot; "SPOP", RND_SET),
            2 => cmd!(Cmp::Len; "SPOP", RND_SET, g.rng.gen_range(1..4).to_string()),
            _ => cmd!("SCARD", RND_SET),
        },
    }
}

// ---- sorted sets -------------------------------------------------------------

fn zmember(g: &mut Gen) -> Vec<u8> {
    if g.chance(3) {
        return g.letters(b"ab", 70); // past zset-max-listpack-value
    }
    ["a", "b", "c", "d", "e", "f", "g", "h", ""].choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn zscore_arg(g: &mut Gen) -> Vec<u8> {
    const S: &[&str] = &["0", "1", "2", "3", "-1", "1.5", "2.5", "0.1", "-0.25", "10", "1e3", "inf", "-inf", "+inf"];
    if g.chance(4) {
        return ["abc", "nan", "", " 1", "1e400", "(1"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
    }
    S.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn zrange_bound(g: &mut Gen) -> Vec<u8> {
    const B: &[&str] = &["-inf", "+inf", "0", "1", "(1", "2", "(2.5", "3", "10", "(inf", "-1"];
    if g.chance(3) {
        return ["abc", "nan", "((1", ""].choose(&mut g.rng).unwrap().as_bytes().to_vec();
    }
    B.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn zlex_bound(g: &mut Gen) -> Vec<u8> {
    const B: &[&str] = &["-", "+", "[a", "(a", "[c", "(c", "[e", "(f", "[h", "[", "("];
    if g.chance(3) {
        return ["a", "", "++"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
    }
    B.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

/// Sorted sets for lex-range queries: Redis leaves ZRANGEBYLEX & co.
/// unspecified unless all members have the same score, so these keys only
/// ever get score 0 (ZADD below, ZRANGESTORE BYLEX between them), and
/// lex queries read nothing else. Not in `KEYS`: other commands leave them alone.
const LEX_ZSETS: &[&str] = &["{z}lex1", "{z}lex2"];

fn lex_key(g: &mut Gen) -> Vec<u8> {
    LEX_ZSETS.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn zlimit(g: &mut Gen) -> Vec<Vec<u8>> {
    let o = ["0", "1", "2", "-1", "x"].choose(&mut g.rng).unwrap();
    let c = ["0", "1", "3", "-1", "100"].choose(&mut g.rng).unwrap();
    vec![b"LIMIT".to_vec(), o.as_bytes().to_vec(), c.as_bytes().to_vec()]
}

/// `numkeys key...` plus trailing options for ZUNION/ZINTER/ZDIFF/ZINTERCARD.
fn zsetop_args(g: &mut Gen, weights_ok: bool, card: bool, withscores: bool) -> Vec<Vec<u8>> {
    let n = g.rng.gen_range(1..=3);
    let mut a = vec![if g.chance(4) { b"0".to_vec() } else { n.to_string().into_bytes() }];
    // Same hash tag so the keys live on one shard... or not (cross-shard).
    for _ in 0..n {
        a.push(g.key());
    }
    if weights_ok && g.chance(30) {
        a.push(b"WEIGHTS".to_vec());
        for _ in 0..n {
            a.push(["1", "2", "-1", "0.5", "inf", "x"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
        }
    }
    if weights_ok && g.chance(30) {
        a.push(b"AGGREGATE".to_vec());
        a.push(["SUM", "MIN", "MAX", "avg"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
    }
    if card && g.chance(40) {
        a.push(b"LIMIT".to_vec());
        a.push(["0", "1", "2", "-1"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
    }
    if withscores && g.chance(50) {
        a.push(b"WITHSCORES".to_vec());
    }
    a
}

fn zsets(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..43) {
        0..=5 => {
            let mut a: Vec<Vec<u8>> = vec![];
            for _ in 0..g.rng.gen_range(0..=2) {
                a.push(["NX", "XX", "GT", "LT", "CH", "INCR"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            let pairs = if g.chance(3) { 130 } else { g.rng.gen_range(1..=4) };
            for _ in 0..pairs {
                a.push(if pairs > 100 { g.rng.gen_range(0..50).to_string().into_bytes() } else { zscore_arg(g) });
                a.push(if pairs > 100 { g.rng.gen_range(0..200).to_string().into_bytes() } else { zmember(g) });
            }
            if g.chance(3) {
                a.pop();
            }
            with(cmd!("ZADD", k), a)
        }
        6 => cmd!("ZINCRBY", k, zscore_arg(g), zmember(g)),
        7 => {
            let ms = (0..g.rng.gen_range(1..=3)).map(|_| zmember(g)).collect();
            with(cmd!("ZREM", k), ms)
        }
        8 => cmd!("ZCARD", k),
        9 => cmd!("ZSCORE", k, zmember(g)),
        10 => with(cmd!("ZMSCORE", k, zmember(g)), vec![zmember(g)]),
        11 => cmd!(*["ZRANK", "ZREVRANK"].choose(&mut g.rng).unwrap(), k, zmember(g)),
        12 => cmd!("ZCOUNT", k, zrange_bound(g), zrange_bound(g)),
        13 => cmd!("ZLEXCOUNT", lex_key(g), zlex_bound(g), zlex_bound(g)),
        14..=17 => {
            // ZRANGE with a random (sometimes invalid) mix of options.
            let by = g.rng.gen_range(0..3);
            let (a, b) = match by {
                0 => (g.index(), g.index()),
                1 => (zrange_bound(g), zrange_bound(g)),
                _ => (zlex_bound(g), zlex_bound(g)),
            };
            let mut opts: Vec<Vec<u8>> = vec![];
            if by == 1 || (by == 0 && g.chance(5)) {
                opts.push(b"BYSCORE".to_vec());
            }
            if by == 2 || (by == 1 && g.chance(5)) {
                opts.push(b"BYLEX".to_vec());
            }
            if g.chance(30) {
                opts.push(b"REV".to_vec());
            }
            if g.chance(if by == 0 { 5 } else { 40 }) {
                opts.extend(zlimit(g));
            }
            if g.chance(if by == 2 { 5 } else { 40 }) {
                opts.push(b"WITHSCORES".to_vec());
            }
            opts.shuffle(&mut g.rng);
            let k = if by == 2 { lex_key(g) } else { k };
            if g.chance(30) {
                let dst = if by == 2 { lex_key(g) } else { g.key() };
                with(cmd!("ZRANGESTORE", dst, k, a, b), opts.into_iter().filter(|o| o != b"WITHSCORES").collect())
            } else {
                with(cmd!("ZRANGE", k, a, b), opts)
            }
        }
        18 | 19 => {
            let (name, lex) = *[
                ("ZRANGEBYSCORE", false),
                ("ZREVRANGEBYSCORE", false),
                ("ZRANGEBYLEX", true),
                ("ZREVRANGEBYLEX", true),
            ]
            .choose(&mut g.rng)
            .unwrap();
            let (a, b) = if lex { (zlex_bound(g), zlex_bound(g)) } else { (zrange_bound(g), zrange_bound(g)) };
            let mut opts = vec![];
            if g.chance(40) {
                opts.extend(zlimit(g));
            }
            if !lex && g.chance(40) {
                opts.push(b"WITHSCORES".to_vec());
            }
            with(cmd!(name, if lex { lex_key(g) } else { k }, a, b), opts)
        }
        20 => {
            let ws: &[&str] = if g.chance(40) { &["WITHSCORES"] } else { &[] };
            with(cmd!("ZREVRANGE", k, g.index(), g.index()), ws.iter().map(|w| w.as_bytes().to_vec()).collect())
        }
        21 | 22 => {
            let name = *["ZPOPMIN", "ZPOPMAX"].choose(&mut g.rng).unwrap();
            match g.rng.gen_range(0..4) {
                0 => cmd!(name, k),
                1 => cmd!(name, k, ["-1", "x", "0"].choose(&mut g.rng).unwrap()),
                _ => cmd!(name, k, g.rng.gen_range(1..5).to_string()),
            }
        }
        23 => {
            let n = g.rng.gen_range(1..=3);
            let mut a = vec![n.to_string().into_bytes()];
            for _ in 0..n {
                a.push(g.key());
            }
            a.push(["MIN", "MAX", "mid"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            if g.chance(50) {
                a.push(b"COUNT".to_vec());
                a.push(["1", "2", "10", "0", "-1"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            with(cmd!("ZMPOP"), a)
        }
        24 | 25 => {
            let mut a = vec![];
            if g.chance(80) {
                a.push(["0", "1", "2", "5", "-3", "-1", "100", "x"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
                if g.chance(40) {
                    a.push(b"WITHSCORES".to_vec());
                }
            }
            with(cmd!(Cmp::Len; "ZRANDMEMBER", k), a)
        }
        26 => cmd!("ZREMRANGEBYRANK", k, g.index(), g.index()),
        27 => cmd!("ZREMRANGEBYSCORE", k, zrange_bound(g), zrange_bound(g)),
        28 => cmd!("ZREMRANGEBYLEX", lex_key(g), zlex_bound(g), zlex_bound(g)),
        // Feed the lex-query keys (score 0 only) and take from them.
        40 | 41 => {
            let mut a = vec![lex_key(g)];
            if g.chance(20) {
                a.push(["NX", "XX", "CH"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            for _ in 0..g.rng.gen_range(1..=4) {
                a.extend([b"0".to_vec(), zmember(g)]);
            }
            with(cmd!("ZADD"), a)
        }
        42 => with(cmd!("ZREM", lex_key(g)), vec![zmember(g), zmember(g)]),
        29..=31 => {
            let name = *["ZUNION", "ZINTER", "ZDIFF"].choose(&mut g.rng).unwrap();
            let a = zsetop_args(g, name != "ZDIFF", false, true);
            with(cmd!(name), a)
        }
        32..=34 => {
            let name = *["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"].choose(&mut g.rng).unwrap();
            let a = zsetop_args(g, name != "ZDIFFSTORE", false, false);
            with(cmd!(name, g.key()), a)
        }
        35 => {
            let a = zsetop_args(g, false, true, false);
            with(cmd!("ZINTERCARD"), a)
        }
        36 => {
            let mut a = vec![];
            if g.chance(30) {
                a.push(b"MATCH".to_vec());
                a.push(["*", "a*", "[a-c]", "x*"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            // COUNT large enough for every set here to come back in one call
            // (cursors of a partial scan are implementation details).
            a.push(b"COUNT".to_vec());
            a.push(["1000", "1000", "1000", "0", "x"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            with(cmd!(Cmp::ScanAll { pairs: true }; "ZSCAN", k, "0"), a)
        }
        _ => cmd!("ZADD", k, g.rng.gen_range(0..5).to_string(), zmember(g)),
    }
}

// ---- lists -------------------------------------------------------------------

/// A list element: mostly from a few values (so LREM/LPOS/LINSERT match).
fn list_elem(g: &mut Gen) -> Vec<u8> {
    if g.chance(75) {
        ["a", "b", "c", "1", "2", "x"].choose(&mut g.rng).unwrap().as_bytes().to_vec()
    } else {
        g.value()
    }
}

fn list_end(g: &mut Gen) -> &'static str {
    if g.chance(3) {
        "UP"
    } else {
        ["LEFT", "RIGHT", "left"].choose(&mut g.rng).unwrap()
    }
}

fn lists(g: &mut Gen) -> Op {
    let k = g.key();
    let small = |g: &mut Gen| -> Vec<u8> {
        if g.chance(85) {
            g.rng.gen_range(-3i64..6).to_string().into_bytes()
        } else {
            g.int_arg()
        }
    };
    match g.rng.gen_range(0..22) {
        0..=2 => {
            let n = g.rng.gen_range(1..=5);
            let els = (0..n).map(|_| list_elem(g)).collect();
            with(cmd!(*["LPUSH", "RPUSH"].choose(&mut g.rng).unwrap(), k), els)
        }
        3 => cmd!(*["LPUSHX", "RPUSHX"].choose(&mut g.rng).unwrap(), k, list_elem(g)),
        4 | 5 => {
            let name = *["LPOP", "RPOP"].choose(&mut g.rng).unwrap();
            match g.rng.gen_range(0..10) {
                0..=4 => cmd!(name, k),
                5 => cmd!(name, k, small(g), "1"),
                _ => cmd!(name, k, small(g)),
            }
        }
        6 => cmd!("LLEN", k),
        7 | 8 => cmd!("LRANGE", k, g.index(), g.index()),
        9 => cmd!("LINDEX", k, g.index()),
        10 => cmd!("LSET", k, g.index(), list_elem(g)),
        11 => {
            let w = if g.chance(5) { "MIDDLE" } else { ["BEFORE", "AFTER", "after"].choose(&mut g.rng).unwrap() };
            cmd!("LINSERT", k, w, list_elem(g), list_elem(g))
        }
        12 => cmd!("LREM", k, small(g), list_elem(g)),
        13 => cmd!("LTRIM", k, g.index(), g.index()),
        14 | 15 => {
            let mut opts: Vec<Vec<u8>> = vec![];
            for _ in 0..g.rng.gen_range(0..=3) {
                let o = *["RANK", "COUNT", "MAXLEN", "rank"].choose(&mut g.rng).unwrap();
                opts.push(o.as_bytes().to_vec());
                if !g.chance(3) {
                    opts.push(small(g));
                }
            }
            with(cmd!("LPOS", k, list_elem(g)), opts)
        }
        16 => cmd!("LMOVE", k, g.key(), list_end(g), list_end(g)),
        17 => cmd!("RPOPLPUSH", k, g.key()),
        18 => {
            let n = g.rng.gen_range(1..=3);
            let mut a = vec![if g.chance(5) { small(g) } else { n.to_string().into_bytes() }];
            a.extend(g.keys(n, n));
            a.push(list_end(g).as_bytes().to_vec());
            if g.chance(40) {
                a.push(b"COUNT".to_vec());
                a.push(small(g));
            }
            with(cmd!("LMPOP"), a)
        }
        // Long lists and long elements cross the compact-encoding limits.
        19 => {
            let n = g.rng.gen_range(20..300);
            let els = (0..n).map(|_| list_elem(g)).collect();
            with(cmd!("RPUSH", k), els)
        }
        _ => cmd!("LRANGE", k, "0", "-1"),
    }
}

fn hll(g: &mut Gen) -> Op {
    let k = g.key();
    let el = |g: &mut Gen, range: u32| format!("e{}", g.rng.gen_range(0..range)).into_bytes();
    match g.rng.gen_range(0..9) {
        0..=2 => {
            let els = (0..g.rng.gen_range(0..6)).map(|_| el(g, 500)).collect();
            with(cmd!("PFADD", k), els)
        }
        // Enough elements to turn the sparse form dense.
        3 => {
            let els = (0..g.rng.gen_range(100..3000)).map(|_| el(g, 100_000)).collect();
            with(cmd!("PFADD", k), els)
        }
        4 | 5 => with(cmd!("PFCOUNT", k), g.keys(0, 2)),
        6 => with(cmd!("PFMERGE", k), g.keys(0, 3)),
        // The stored bytes must be Redis's HLL format exactly.
        _ => cmd!("GET", k),
    }
}

// ---- streams -----------------------------------------------------------------

/// Key for `XADD *` only: its ids follow the clock, so nothing reads them.
const AUTO_STREAM: &str = "{s}auto";

/// Stream ids from a small space so XADD collides and ranges overlap.
fn stream_id(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..100) {
        0..=69 => format!("{}-{}", g.rng.gen_range(0..g.uniq + 3), g.rng.gen_range(0..3)),
        70..=79 => g.rng.gen_range(0..g.uniq + 3).to_string(),
        80..=83 => "0-0".into(),
        84..=86 => "18446744073709551615-18446744073709551615".into(),
        87..=89 => ["x", "-1", "1-x", "", "1-2-3"].choose(&mut g.rng).unwrap().to_string(),
        _ => format!("{}-{}", g.rng.gen_range(g.uniq + 3..g.uniq + 100), g.rng.gen_range(0..3)),
    }
    .into_bytes()
}

fn range_bound(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..10) {
        0 | 1 => b"-".to_vec(),
        2 | 3 => b"+".to_vec(),
        4 => [b"(".to_vec(), stream_id(g)].concat(),
        _ => stream_id(g),
    }
}

fn stream_fields(g: &mut Gen) -> Vec<Vec<u8>> {
    let n = if g.chance(90) { g.rng.gen_range(1..=2) } else { g.rng.gen_range(0..=4) };
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(["a", "b", "c"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
        let long = g.rng.gen_range(100..600);
        v.push(if g.chance(10) { g.letters(b"xyz", long) } else { list_elem(g) });
    }
    v
}

fn trim_opts(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![];
    v.push(if g.chance(60) { b"MAXLEN".to_vec() } else { b"MINID".to_vec() });
    if g.chance(60) {
        v.push(["~", "=", "~"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
    }
    v.push(if v[0] == b"MAXLEN" { g.rng.gen_range(-1..12).to_string().into_bytes() } else { stream_id(g) });
    if g.chance(20) {
        v.push(b"LIMIT".to_vec());
        v.push(g.rng.gen_range(-1..200).to_string().into_bytes());
    }
    v
}

fn stream_group(g: &mut Gen) -> Vec<u8> {
    ["g1", "g2", "g3"].choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn stream_consumer(g: &mut Gen) -> Vec<u8> {
    ["c1", "c2", "c3"].choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

/// An idle threshold whose outcome does not depend on timing.
fn stream_idle(g: &mut Gen) -> &'static str {
    ["0", "0", "3600000", "-5"].choose(&mut g.rng).unwrap()
}

/// DUMP payloads of redis-server 7.0 (captured from it), which RESTORE
/// must take on both servers: a hash, a list, an intset and a string.
const REDIS_PAYLOADS: &[&[u8]] = &[
    b"\x10\x18\x18\x00\x00\x00\x06\x00\x81f\x02\x81v\x02\x81a\x02\x01\x01\x81b\x02\xc1,\x02\xff\n\x00\r\xa6Qt\x16>\xe6\xf6",
    b"\x12\x01\x02\x17\x17\x00\x00\x00\x05\x00\x81a\x02\x01\x01\xdf\xfb\x02\xc1,\x02\xf2p\x11\x01\x04\xff\n\x00\xe7\x9cX\x7f\xa8q\xb8f",
    b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\xfd\xff\x01\x00\x05\x00\n\x00~+X\x95ct\x8f\xa4",
    b"\x00\xc3\t.\x01aa\xe0!\x00\x01aa\n\x00\r\x9d\x96LV\x95a\x8a",
];

/// DUMP of any key (payload equality with redis-server where its
/// encoding is deterministic), and RESTORE of Redis's own payloads with
/// its options and errors.
fn dump_family(g: &mut Gen) -> Op {
    let k = g.key();
    match g.rng.gen_range(0..10) {
        0..=5 => cmd!(Cmp::Dump; "DUMP", k),
        6 | 7 => {
            let p = REDIS_PAYLOADS.choose(&mut g.rng).unwrap().to_vec();
            let mut a = vec![b"RESTORE".to_vec(), k, b"0".to_vec(), p];
            if g.chance(50) {
                a.push(b"REPLACE".to_vec());
            }
            if g.chance(20) {
                a.extend([b"IDLETIME".to_vec(), g.rng.gen_range(-1..5).to_string().into_bytes()]);
            }
            Op::Cmd { args: a, cmp: Cmp::Exact }
        }
        8 => {
            let mut p = REDIS_PAYLOADS.choose(&mut g.rng).unwrap().to_vec();
            let at = g.rng.gen_range(0..p.len());
            p[at] ^= 1 << g.rng.gen_range(0..8);
            Op::Cmd { args: vec![b"RESTORE".to_vec(), k, b"0".to_vec(), p, b"REPLACE".to_vec()], cmp: Cmp::Exact }
        }
        _ => cmd!(Cmp::Encoding; "OBJECT", "ENCODING", k),
    }
}

fn streams(g: &mut Gen) -> Op {
    // A few hot keys so streams grow past node boundaries (100 entries).
    let k = if g.chance(60) { ["k0", "k1", "{t}a"].choose(&mut g.rng).unwrap().as_bytes().to_vec() } else { g.key() };
    match g.rng.gen_range(0..40) {
        0..=9 => {
            let mut a = vec![k];
            if g.chance(8) {
                a.push(b"NOMKSTREAM".to_vec());
            }
            if g.chance(15) {
                a.extend(trim_opts(g));
            }
            a.push(match g.rng.gen_range(0..10) {
                0 => format!("{}-*", g.uniq).into_bytes(),
                1 | 2 => stream_id(g),
                _ => {
                    // Mostly increasing ids, so most XADDs succeed.
                    g.uniq += g.rng.gen_range(0..2);
                    format!("{}-{}", g.uniq, g.rng.gen_range(0..3)).into_bytes()
                }
            });
            if g.chance(5) {
                a.push(stream_id(g));
            }
            a.extend(stream_fields(g));
            with(cmd!("XADD"), a)
        }
        10 => with(cmd!(Cmp::NilOrNot; "XADD", AUTO_STREAM, "*"), stream_fields(g)),
        11 => cmd!("XLEN", if g.chance(10) { AUTO_STREAM.as_bytes().to_vec() } else { k }),
        12..=14 => {
            let name = *["XRANGE", "XREVRANGE"].choose(&mut g.rng).unwrap();
            let mut a = vec![k, range_bound(g), range_bound(g)];
            if g.chance(40) {
                a.push(b"COUNT".to_vec());
                a.push(g.rng.gen_range(-1..6).to_string().into_bytes());
            }
            with(cmd!(name), a)
        }
        15 => with(cmd!("XDEL", k), (0..g.rng.gen_range(1..4)).map(|_| stream_id(g)).collect()),
        16 => with(cmd!("XTRIM", k), trim_opts(g)),
        17 | 18 => {
            let mut a: Vec<Vec<u8>> = vec![];
            if g.chance(40) {
                a.push(b"COUNT".to_vec());
                a.push(g.rng.gen_range(-1..5).to_string().into_bytes());
            }
            a.push(b"STREAMS".to_vec());
            let keys = if g.chance(70) { vec![k] } else { g.keys(1, 3) };
            let n = keys.len();
            a.extend(keys);
            for _ in 0..n {
                a.push(if g.chance(15) { b"$".to_vec() } else { range_bound(g) });
            }
            with(cmd!("XREAD"), a)
        }
        19..=21 => {
            let grp = stream_group(g);
            match g.rng.gen_range(0..10) {
                0..=3 => {
                    let id = if g.chance(30) { b"$".to_vec() } else { stream_id(g) };
                    let mut a = vec![b"CREATE".to_vec(), k, grp, id];
                    if g.chance(50) {
                        a.push(b"MKSTREAM".to_vec());
                    }
                    if g.chance(15) {
                        a.push(b"ENTRIESREAD".to_vec());
                        a.push(g.rng.gen_range(-2..10).to_string().into_bytes());
                    }
                    with(cmd!("XGROUP"), a)
                }
                4 => {
                    let id = if g.chance(30) { b"$".to_vec() } else { stream_id(g) };
                    let mut a = vec![b"SETID".to_vec(), k, grp, id];
                    if g.chance(30) {
                        a.push(b"ENTRIESREAD".to_vec());
                        a.push(g.rng.gen_range(-1..10).to_string().into_bytes());
                    }
                    with(cmd!("XGROUP"), a)
                }
                5 => cmd!("XGROUP", "DESTROY", k, grp),
                6 | 7 => cmd!("XGROUP", "CREATECONSUMER", k, grp, stream_consumer(g)),
                8 => cmd!("XGROUP", "DELCONSUMER", k, grp, stream_consumer(g)),
                // Unknown subcommands and subcommand arity errors are
                // queue-time errors in Redis; shardis's MULTI does not know
                // XGROUP/XINFO subcommands yet, so they are not generated.
                _ => cmd!("XGROUP", "HELP"),
            }
        }
        22..=26 => {
            let mut a = vec![b"GROUP".to_vec(), stream_group(g), stream_consumer(g)];
            if g.chance(40) {
                a.push(b"COUNT".to_vec());
                a.push(g.rng.gen_range(0..4).to_string().into_bytes());
            }
            if g.chance(15) {
                a.push(b"NOACK".to_vec());
            }
            a.push(b"STREAMS".to_vec());
            let keys = if g.chance(80) { vec![k] } else { g.keys(1, 2) };
            let n = keys.len();
            a.extend(keys);
            for _ in 0..n {
                a.push(if g.chance(70) { b">".to_vec() } else { range_bound(g) });
            }
            with(cmd!("XREADGROUP"), a)
        }
        27 | 28 => with(cmd!("XACK", k, stream_group(g)), (0..g.rng.gen_range(1..4)).map(|_| stream_id(g)).collect()),
        29 | 30 => {
            let mut a = vec![k, stream_group(g)];
            if g.chance(70) {
                if g.chance(25) {
                    a.extend([b"IDLE".to_vec(), stream_idle(g).as_bytes().to_vec()]);
                }
                a.extend([range_bound(g), range_bound(g), g.rng.gen_range(-1..6).to_string().into_bytes()]);
                if g.chance(40) {
                    a.push(stream_consumer(g));
                }
            }
            with(cmd!(Cmp::Stream; "XPENDING"), a)
        }
        31 | 32 => {
            let mut a = vec![k, stream_group(g), stream_consumer(g), stream_idle(g).as_bytes().to_vec()];
            a.extend((0..g.rng.gen_range(1..4)).map(|_| stream_id(g)));
            for _ in 0..g.rng.gen_range(0..3) {
                match g.rng.gen_range(0..7) {
                    0 => a.extend([b"IDLE".to_vec(), b"86400000".to_vec()]),
                    1 => a.extend([b"TIME".to_vec(), b"1000".to_vec()]),
                    2 => a.extend([b"RETRYCOUNT".to_vec(), g.rng.gen_range(-1..5).to_string().into_bytes()]),
                    3 => a.push(b"FORCE".to_vec()),
                    4 => a.push(b"JUSTID".to_vec()),
                    5 => a.extend([b"LASTID".to_vec(), stream_id(g)]),
                    _ => a.push(b"BOGUS".to_vec()),
                }
            }
            with(cmd!("XCLAIM"), a)
        }
        33 => {
            let mut a =
                vec![k, stream_group(g), stream_consumer(g), stream_idle(g).as_bytes().to_vec(), range_bound(g)];
            if g.chance(50) {
                a.extend([b"COUNT".to_vec(), g.rng.gen_range(0..5).to_string().into_bytes()]);
            }
            if g.chance(30) {
                a.push(b"JUSTID".to_vec());
            }
            with(cmd!("XAUTOCLAIM"), a)
        }
        34..=36 => match g.rng.gen_range(0..6) {
            0 => cmd!(Cmp::Stream; "XINFO", "STREAM", k),
            1 => cmd!(Cmp::Stream; "XINFO", "STREAM", k, "FULL"),
            2 => cmd!(Cmp::Stream; "XINFO", "STREAM", k, "FULL", "COUNT", g.rng.gen_range(-1..4).to_string()),
            3 => cmd!(Cmp::Stream; "XINFO", "GROUPS", k),
            4 => cmd!(Cmp::Stream; "XINFO", "CONSUMERS", k, stream_group(g)),
            _ => cmd!(Cmp::Stream; "XINFO", "HELP"),
        },
        37 => {
            let mut a = vec![k, stream_id(g)];
            if g.chance(30) {
                a.extend([b"ENTRIESADDED".to_vec(), g.rng.gen_range(-1..30).to_string().into_bytes()]);
            }
            if g.chance(30) {
                a.extend([b"MAXDELETEDID".to_vec(), stream_id(g)]);
            }
            with(cmd!("XSETID"), a)
        }
        _ => cmd!("XRANGE", k, "-", "+"),
    }
}

// ---- blocking pops -------------------------------------------------------------

fn blocking(g: &mut Gen) -> Op {
    // Mostly tiny timeouts (the reply waits for them), sometimes an invalid one.
    let timeout = |g: &mut Gen| -> Vec<u8> {
        match g.rng.gen_range(0..20) {
            0 => b"-1".to_vec(),
            1 => b"x".to_vec(),
            2 => b"0.001".to_vec(),
            _ => b"0.01".to_vec(),
        }
    };
    let end = |g: &mut Gen| *["LEFT", "RIGHT", "left"].choose(&mut g.rng).unwrap();
    match g.rng.gen_range(0..9) {
        0 | 1 => {
            let mut a = cmd!(*["BLPOP", "BRPOP"].choose(&mut g.rng).unwrap());
            if let Op::Cmd { args, .. } = &mut a {
                args.extend(g.keys(1, 3));
                args.push(timeout(g));
            }
            a
        }
        2 => cmd!("BLMOVE", g.key(), g.key(), end(g), end(g), timeout(g)),
        3 => cmd!("BRPOPLPUSH", g.key(), g.key(), timeout(g)),
        4 => {
            let keys = g.keys(1, 3);
            let mut a = cmd!("BLMPOP", timeout(g), keys.len().to_string());
            if let Op::Cmd { args, .. } = &mut a {
                args.extend(keys);
                args.push(end(g).as_bytes().to_vec());
                if g.chance(50) {
                    args.push(b"COUNT".to_vec());
                    args.push(g.rng.gen_range(1..4).to_string().into_bytes());
                }
            }
            a
        }
        5 | 6 => {
            let mut a = cmd!(*["BZPOPMIN", "BZPOPMAX"].choose(&mut g.rng).unwrap());
            if let Op::Cmd { args, .. } = &mut a {
                args.extend(g.keys(1, 3));
                args.push(timeout(g));
            }
            a
        }
        7 => {
            let keys = g.keys(1, 3);
            let mut a = cmd!("BZMPOP", timeout(g), keys.len().to_string());
            if let Op::Cmd { args, .. } = &mut a {
                args.extend(keys);
                args.push(["MIN", "MAX"].choose(&mut g.rng).unwrap().as_bytes().to_vec());
            }
            a
        }
        // Feed them.
        _ => {
            if g.chance(50) {
                cmd!("RPUSH", g.key(), list_elem(g), list_elem(g))
            } else {
                cmd!("ZADD", g.key(), g.rng.gen_range(0..5).to_string(), "m1", "2", "m2")
            }
        }
    }
}

// ---- geo ---------------------------------------------------------------------

/// Keys the geo family fills; `g.key()` now and then for other types.
const GEO_KEYS: &[&str] = &["{g}a", "{g}b", "geo1"];

fn geo_key(g: &mut Gen) -> Vec<u8> {
    if g.chance(12) {
        g.key()
    } else {
        GEO_KEYS.choose(&mut g.rng).unwrap().as_bytes().to_vec()
    }
}

/// Where STORE forms write: mostly keys of their own, so stores do not
/// keep emptying the sets searched (the {g} one shares a shard with two
/// sources, the other one may not).
fn geo_dest(g: &mut Gen) -> Vec<u8> {
    if g.chance(8) {
        geo_key(g)
    } else {
        ["{g}dst", "gdst"].choose(&mut g.rng).unwrap().as_bytes().to_vec()
    }
}

fn geo_member(g: &mut Gen) -> Vec<u8> {
    if g.chance(2) {
        return g.letters(b"xy", 70); // past zset-max-listpack-value
    }
    // Half from a few names, so searches around a member mostly find it.
    let n = if g.chance(50) { g.rng.gen_range(0..4) } else { g.rng.gen_range(0..12) };
    format!("p{n}").into_bytes()
}

/// Places the points cluster around: ordinary, on the antimeridian, near
/// the poles and the latitude limits, at the origin.
const GEO_SPOTS: &[(f64, f64)] = &[
    (13.361389, 38.115556),
    (-122.4194, 37.7749),
    (0.0, 0.0),
    (179.95, -16.5),
    (-179.97, 52.1),
    (10.0, 84.9),
    (-45.0, -84.5),
    (151.2093, -33.8688),
    (100.0, 67.0),
];

/// A (longitude, latitude) pair as arguments: near a spot at some scale,
/// anywhere, exactly a limit, or (rarely: one error voids a whole GEOADD)
/// invalid.
fn geo_lonlat(g: &mut Gen) -> (Vec<u8>, Vec<u8>) {
    let bad_ok = g.chance(30);
    geo_lonlat_maybe_bad(g, bad_ok)
}

fn geo_lonlat_maybe_bad(g: &mut Gen, bad_ok: bool) -> (Vec<u8>, Vec<u8>) {
    let num = |x: f64, g: &mut Gen| {
        let prec = *[6usize, 6, 4, 2, 0, 9].choose(&mut g.rng).unwrap();
        format!("{:.*}", prec, x).into_bytes()
    };
    match g.rng.gen_range(if bad_ok { 0 } else { 4 }..100) {
        0..=3 => {
            let bad = ["180.0001", "-180.5", "85.06", "-85.1", "abc", "", "nan", "inf", "1e400", "90", "-91"];
            let pick = |g: &mut Gen| bad.choose(&mut g.rng).unwrap().as_bytes().to_vec();
            if g.chance(50) {
                (pick(g), num(g.rng.gen_range(-80.0..80.0), g))
            } else {
                (num(g.rng.gen_range(-170.0..170.0), g), pick(g))
            }
        }
        4..=6 => {
            let lon = ["180", "-180", "0", "179.999999"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
            let lat =
                ["85.05112878", "-85.05112878", "0", "85.05112877"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
            (lon, lat)
        }
        7..=16 => (num(g.rng.gen_range(-180.0..=180.0), g), num(g.rng.gen_range(-85.05..=85.05), g)),
        _ => {
            let (lon, lat) = *GEO_SPOTS.choose(&mut g.rng).unwrap();
            let scale = *[0.0001, 0.01, 0.5, 3.0].choose(&mut g.rng).unwrap();
            let lon = lon + g.rng.gen_range(-scale..=scale);
            let lat = lat + g.rng.gen_range(-scale..=scale);
            // Wrap across the antimeridian; clamp to the latitude limits.
            let lon = if lon > 180.0 {
                lon - 360.0
            } else if lon < -180.0 {
                lon + 360.0
            } else {
                lon
            };
            (num(lon, g), num(lat.clamp(-85.05, 85.05), g))
        }
    }
}

/// A pair that is always accepted (for the big GEOADD, one error would
/// void all of it).
fn geo_lonlat_valid(g: &mut Gen) -> (Vec<u8>, Vec<u8>) {
    let (lon, lat) = *GEO_SPOTS.choose(&mut g.rng).unwrap();
    let lon = (lon + g.rng.gen_range(-1.0..=1.0)).clamp(-180.0, 180.0);
    let lat = (lat + g.rng.gen_range(-1.0..=1.0)).clamp(-85.0, 85.0);
    (format!("{lon:.6}").into_bytes(), format!("{lat:.6}").into_bytes())
}

fn geo_unit(g: &mut Gen) -> Vec<u8> {
    if g.chance(4) {
        return ["yd", "", "kilometers", "M\u{0}"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
    }
    // Mostly the large units: the lengths below then reach other points.
    ["m", "km", "mi", "ft", "KM", "M", "Mi", "FT", "km", "km", "mi", "km"]
        .choose(&mut g.rng)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// A radius or box side: from metres to the whole Earth, sometimes bad.
fn geo_len(g: &mut Gen) -> Vec<u8> {
    if g.chance(4) {
        return ["-1", "abc", "", "nan", "-0.5"].choose(&mut g.rng).unwrap().as_bytes().to_vec();
    }
    const L: &[&str] = &["0", "1", "10", "100", "500", "1000", "5000", "20000", "50000", "2.5", "inf", "300000", "1e7"];
    if g.chance(30) {
        return format!("{:.3}", g.rng.gen_range(0.0..3000.0)).into_bytes();
    }
    L.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

/// The options shared by the search commands, in random order; `store`:
/// STORE/STOREDIST pairs (GEORADIUS) are allowed; `stores`: the command
/// stores anyway (GEOSEARCHSTORE), so WITH* options are mostly left out.
fn geo_opts(g: &mut Gen, store: bool, stores: bool) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<Vec<u8>>> = vec![];
    let storing = stores || (store && g.chance(25));
    if !storing || g.chance(5) {
        for w in ["WITHDIST", "WITHHASH", "WITHCOORD"] {
            if g.chance(35) {
                groups.push(vec![w.as_bytes().to_vec()]);
            }
        }
    }
    if g.chance(45) {
        groups.push(vec![["ASC", "DESC", "asc"].choose(&mut g.rng).unwrap().as_bytes().to_vec()]);
    }
    if g.chance(40) {
        let c = if g.chance(8) {
            ["0", "-1", "x", ""].choose(&mut g.rng).unwrap().to_string()
        } else {
            g.rng.gen_range(1..8).to_string()
        };
        groups.push(vec![b"COUNT".to_vec(), c.into_bytes()]);
    }
    let counted = groups.iter().any(|gr| gr[0] == b"COUNT");
    if g.chance(if counted { 30 } else { 3 }) {
        groups.push(vec![b"ANY".to_vec()]);
    }
    if storing && !stores {
        let w = if g.chance(50) { "STORE" } else { "STOREDIST" };
        groups.push(vec![w.as_bytes().to_vec(), geo_dest(g)]);
    }
    if g.chance(2) {
        groups.push(vec![b"BOGUS".to_vec()]);
    }
    groups.shuffle(&mut g.rng);
    groups.into_iter().flatten().collect()
}

/// GEOSEARCH's FROM and BY parts (sometimes missing, doubled or mixed).
fn geo_search_spec(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<Vec<u8>>> = vec![];
    let from = g.rng.gen_range(0..100);
    if from < 45 {
        groups.push(vec![b"FROMMEMBER".to_vec(), geo_member(g)]);
    }
    if (40..95).contains(&from) {
        let (lon, lat) = geo_lonlat(g);
        groups.push(vec![b"FROMLONLAT".to_vec(), lon, lat]);
    }
    let by = g.rng.gen_range(0..100);
    if by < 50 {
        groups.push(vec![b"BYRADIUS".to_vec(), geo_len(g), geo_unit(g)]);
    }
    if (45..97).contains(&by) {
        groups.push(vec![b"BYBOX".to_vec(), geo_len(g), geo_len(g), geo_unit(g)]);
    }
    groups.shuffle(&mut g.rng);
    groups.into_iter().flatten().collect()
}

fn geo(g: &mut Gen) -> Op {
    let k = geo_key(g);
    match g.rng.gen_range(0..40) {
        0..=9 => {
            let mut a: Vec<Vec<u8>> = vec![];
            for _ in 0..g.rng.gen_range(0..=2) {
                let opts = ["NX", "XX", "CH", "ch", "nx", "CH", "GT"];
                let n = if g.chance(10) { opts.len() } else { opts.len() - 1 };
                a.push(opts[g.rng.gen_range(0..n)].as_bytes().to_vec());
            }
            // Sometimes enough members to leave the listpack encoding.
            let n = if g.chance(4) { 140 } else { g.rng.gen_range(1..=4) };
            for i in 0..n {
                let (lon, lat) = if n > 100 { geo_lonlat_valid(g) } else { geo_lonlat(g) };
                a.push(lon);
                a.push(lat);
                a.push(if n > 100 { format!("bulk{i}").into_bytes() } else { geo_member(g) });
            }
            if g.chance(3) {
                a.pop();
            }
            with(cmd!("GEOADD", k), a)
        }
        10 | 11 => {
            let ms = (0..g.rng.gen_range(0..=4)).map(|_| geo_member(g)).collect();
            with(cmd!("GEOPOS", k), ms)
        }
        12 => {
            let ms = (0..g.rng.gen_range(0..=4)).map(|_| geo_member(g)).collect();
            with(cmd!("GEOHASH", k), ms)
        }
        13 | 14 => {
            let mut a = vec![geo_member(g), geo_member(g)];
            if g.chance(60) {
                a.push(geo_unit(g));
            }
            if g.chance(3) {
                a.push(b"extra".to_vec());
            }
            with(cmd!("GEODIST", k), a)
        }
        15..=18 => {
            let ro = g.chance(30);
            let (lon, lat) = geo_lonlat(g);
            let name = if ro { "GEORADIUS_RO" } else { "GEORADIUS" };
            let store_ok = !ro || g.chance(10);
            let opts = geo_opts(g, store_ok, false);
            with(cmd!(name, k, lon, lat, geo_len(g), geo_unit(g)), opts)
        }
        19..=21 => {
            let ro = g.chance(30);
            let name = if ro { "GEORADIUSBYMEMBER_RO" } else { "GEORADIUSBYMEMBER" };
            let store_ok = !ro || g.chance(10);
            let opts = geo_opts(g, store_ok, false);
            with(cmd!(name, k, geo_member(g), geo_len(g), geo_unit(g)), opts)
        }
        22..=30 => {
            let mut a = geo_search_spec(g);
            a.extend(geo_opts(g, false, false));
            with(cmd!("GEOSEARCH", k), a)
        }
        31..=34 => {
            let dst = geo_dest(g);
            let mut a = geo_search_spec(g);
            a.extend(geo_opts(g, false, true));
            if g.chance(40) {
                a.push(b"STOREDIST".to_vec());
            }
            with(cmd!("GEOSEARCHSTORE", dst, k), a)
        }
        // What a store left behind, scores included.
        35 | 36 => cmd!("ZRANGE", geo_dest(g), "0", "-1", "WITHSCORES"),
        37 => cmd!("ZREM", k, geo_member(g)),
        // Scores GEOADD never makes still decode as Redis decodes them.
        38 => {
            let s = ["-5", "1.5", "4503599627370496", "1e17", "-0.5", "13510798882111488", "3477130723057943"];
            cmd!("ZADD", k, s.choose(&mut g.rng).unwrap(), geo_member(g))
        }
        _ => cmd!("ZCARD", k),
    }
}

// ---- SORT ----------------------------------------------------------------------

/// SORT's own keys, each always of one type (or absent): the list may be
/// sorted ALPHA BY a pattern, where equal BY values keep the order the
/// elements came in; sets and sorted sets come in an order that differs
/// between servers, so they never are. All share the `{t}` tag with the
/// BY/GET patterns, which shardis requires with several shards.
const SORT_LIST: &str = "{t}sl";
const SORT_SET: &str = "{t}ss";
const SORT_ZSET: &str = "{t}sz";
/// A STORE destination (a list, so it may be sorted like `SORT_LIST`).
const SORT_DEST: &str = "{t}sd";

fn sort_elem(g: &mut Gen) -> Vec<u8> {
    const NUM: &[&str] = &["1", "2", "3", "5", "10", "-3", "2.5", "0", "07", "1e1", " 4", "0x10", "-0"];
    const ALPHA: &[&str] = &["a", "b", "c", "ab", "B", "x y", ""];
    // Few non-numbers: one makes every numeric sort of its key fail.
    let pool = if g.chance(96) { NUM } else { ALPHA };
    pool.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn sort_weight(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..20) {
        0 => b"abc".to_vec(),
        1 => Vec::new(),
        2 => b" 3".to_vec(),
        3 => b"1.5".to_vec(),
        4 => b"-inf".to_vec(),
        _ => g.rng.gen_range(-3i64..8).to_string().into_bytes(),
    }
}

fn sort_family(g: &mut Gen) -> Op {
    match g.rng.gen_range(0..100) {
        0..=11 => {
            let n = g.rng.gen_range(1..=6);
            let els = (0..n).map(|_| sort_elem(g)).collect();
            with(cmd!(*["RPUSH", "LPUSH"].choose(&mut g.rng).unwrap(), SORT_LIST), els)
        }
        12..=17 => {
            let n = g.rng.gen_range(1..=6);
            let els = (0..n).map(|_| sort_elem(g)).collect();
            with(cmd!("SADD", SORT_SET), els)
        }
        18..=23 => {
            let mut a = Vec::new();
            for _ in 0..g.rng.gen_range(1..=5) {
                a.push(g.rng.gen_range(-2i64..5).to_string().into_bytes());
                a.push(sort_elem(g));
            }
            with(cmd!("ZADD", SORT_ZSET), a)
        }
        24..=26 => cmd!("DEL", *[SORT_LIST, SORT_SET, SORT_ZSET, SORT_DEST].choose(&mut g.rng).unwrap()),
        27..=34 => {
            let mut k = b"{t}w_".to_vec();
            k.extend(sort_elem(g));
            if g.chance(15) {
                cmd!("DEL", k)
            } else {
                cmd!("SET", k, sort_weight(g))
            }
        }
        35..=40 => {
            let mut k = b"{t}h_".to_vec();
            k.extend(sort_elem(g));
            let f = *["f", "g"].choose(&mut g.rng).unwrap();
            cmd!("HSET", k, f, sort_weight(g))
        }
        41..=43 => cmd!("LRANGE", SORT_DEST, "0", "-1"),
        44..=46 => cmd!(Cmp::Encoding; "OBJECT", "ENCODING", *[SORT_ZSET, SORT_DEST].choose(&mut g.rng).unwrap()),
        _ => sort_command(g),
    }
}

/// One SORT or SORT_RO with a random mix of options (now and then a
/// malformed one).
fn sort_command(g: &mut Gen) -> Op {
    let ro = g.chance(25);
    let own = g.chance(90);
    let key: Vec<u8> = if own {
        let k = match g.rng.gen_range(0..20) {
            0..=7 => SORT_LIST,
            8..=11 => SORT_SET,
            12..=15 => SORT_ZSET,
            16..=17 => SORT_DEST,
            18 => "{t}none",
            _ => "{t}w_1",
        };
        k.as_bytes().to_vec()
    } else {
        g.key()
    };
    let is_list = key == SORT_LIST.as_bytes() || key == SORT_DEST.as_bytes();
    let is_set = key == SORT_SET.as_bytes();
    // Other families' keys may be of any type: no BY there (ties and set
    // order), and no patterns, which would name keys in other slots.
    let mut by: Option<&str> = None;
    if own && g.chance(55) {
        by = Some(
            ["{t}w_*", "{t}w_*", "{t}h_*->f", "{t}h_*->g", "nosort", "#", "{t}nokey_*", "{t}w_*->"]
                .choose(&mut g.rng)
                .unwrap(),
        );
    }
    let by_sorts = by.is_some_and(|p| p.contains('*'));
    let mut alpha = g.chance(35);
    if by_sorts && alpha && !is_list {
        alpha = false;
    }
    let store = !ro && g.chance(30);
    let dontsort = by.is_some() && !by_sorts;
    let set_unordered = is_set && dontsort && !store;
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    let b = |s: &str| s.as_bytes().to_vec();
    if let Some(p) = by {
        groups.push(vec![b("BY"), b(p)]);
    }
    if alpha {
        groups.push(vec![b("ALPHA")]);
    }
    if g.chance(40) {
        groups.push(vec![b(["ASC", "DESC", "desc"].choose(&mut g.rng).unwrap())]);
    }
    if !set_unordered && g.chance(40) {
        let off = g.rng.gen_range(-1i64..4).to_string();
        let cnt = g.rng.gen_range(-2i64..8).to_string();
        groups.push(vec![b("LIMIT"), off.into_bytes(), cnt.into_bytes()]);
    }
    let mut patterns = false;
    if g.chance(45) {
        for _ in 0..g.rng.gen_range(1..=3) {
            let p = if own {
                *["#", "{t}w_*", "{t}h_*->f", "{t}h_*->g", "{t}h_*", "nostar"].choose(&mut g.rng).unwrap()
            } else {
                *["#", "nostar"].choose(&mut g.rng).unwrap()
            };
            patterns |= p.contains('*');
            groups.push(vec![b("GET"), b(p)]);
        }
    }
    if store {
        // Patterns read keys that a cross-shard STORE could not see.
        let dest = if by_sorts || patterns || g.chance(60) {
            b([SORT_DEST, SORT_DEST, SORT_LIST].choose(&mut g.rng).unwrap())
        } else {
            g.key()
        };
        groups.push(vec![b("STORE"), dest]);
    }
    groups.shuffle(&mut g.rng);
    // Malformed now and then: each error is checked where Redis checks it.
    match g.rng.gen_range(0..30) {
        0 => groups.push(vec![b("LIMIT"), b("1")]),
        1 => groups.push(vec![b("LIMIT"), b("x"), b("1")]),
        2 => groups.push(vec![b("GET")]),
        3 => groups.push(vec![b("BOGUS")]),
        4 => groups.insert(0, vec![b("STORE"), b(SORT_DEST)]),
        _ => {}
    }
    let mut args = vec![b(if ro { "SORT_RO" } else { "SORT" }), key];
    args.extend(groups.into_iter().flatten());
    Op::Cmd { args, cmp: if set_unordered { Cmp::Sorted } else { Cmp::Exact } }
}

// ---- SORT with patterns across shards ----------------------------------------

/// Untagged keys: the list, set and destination, and the keys the patterns
/// form (`spw_<elem>`, `sph_<elem>` hashes, `spo_<elem>`) land on any shard.
const SP_LIST: &str = "sp:list";
const SP_SET: &str = "sp:set";
const SP_DEST: &str = "sp:dest";

fn sp_elem(g: &mut Gen) -> Vec<u8> {
    const E: &[&str] = &["1", "2", "3", "4", "5", "7", "10", "12", "20", "33", "-1", "0"];
    E.choose(&mut g.rng).unwrap().as_bytes().to_vec()
}

fn sort_pattern_family(g: &mut Gen) -> Op {
    let b = |s: &str| s.as_bytes().to_vec();
    let key_of = |g: &mut Gen, p: &str| {
        let mut k = b(p);
        k.extend(sp_elem(g));
        k
    };
    match g.rng.gen_range(0..100) {
        0..=9 => {
            let els = (0..g.rng.gen_range(1..=5)).map(|_| sp_elem(g)).collect();
            with(cmd!(*["RPUSH", "LPUSH"].choose(&mut g.rng).unwrap(), SP_LIST), els)
        }
        10..=14 => {
            let els = (0..g.rng.gen_range(1..=5)).map(|_| sp_elem(g)).collect();
            with(cmd!("SADD", SP_SET), els)
        }
        15..=16 => cmd!("DEL", *[SP_LIST, SP_SET, SP_DEST].choose(&mut g.rng).unwrap()),
        17..=28 => {
            let k = key_of(g, "spw_");
            if g.chance(15) {
                cmd!("DEL", k)
            } else {
                cmd!("SET", k, sort_weight(g))
            }
        }
        29..=36 => {
            let k = key_of(g, "sph_");
            let f = *["f", "g"].choose(&mut g.rng).unwrap();
            cmd!("HSET", k, f, sort_weight(g))
        }
        37..=44 => {
            let k = key_of(g, "spo_");
            let v = format!("o{}", g.rng.gen_range(0..100));
            cmd!("SET", k, v)
        }
        45..=47 => cmd!("LRANGE", SP_DEST, "0", "-1"),
        _ => {
            let ro = g.chance(25);
            let key = *[SP_LIST, SP_LIST, SP_SET, SP_DEST].choose(&mut g.rng).unwrap();
            let is_set = key == SP_SET;
            let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
            let by = *["spw_*", "spw_*", "sph_*->f", "sph_*->g", "nosort", "spnone_*"].choose(&mut g.rng).unwrap();
            let by_sorts = by.contains('*');
            if g.chance(80) {
                groups.push(vec![b("BY"), b(by)]);
            }
            let has_by = !groups.is_empty();
            // ALPHA BY keeps the input order of ties: lists only.
            if g.chance(30) && !(is_set && has_by && by_sorts) {
                groups.push(vec![b("ALPHA")]);
            }
            if g.chance(40) {
                groups.push(vec![b(["ASC", "DESC"].choose(&mut g.rng).unwrap())]);
            }
            let unordered = is_set && has_by && !by_sorts;
            if !unordered && g.chance(35) {
                let off = g.rng.gen_range(0i64..3).to_string();
                let cnt = g.rng.gen_range(-1i64..5).to_string();
                groups.push(vec![b("LIMIT"), off.into_bytes(), cnt.into_bytes()]);
            }
            for _ in 0..g.rng.gen_range(0..=3) {
                let p = *["#", "spo_*", "spw_*", "sph_*->f", "sph_*->g", "spnone_*"].choose(&mut g.rng).unwrap();
                groups.push(vec![b("GET"), b(p)]);
            }
            if !ro && g.chance(30) {
                groups.push(vec![b("STORE"), b(SP_DEST)]);
            }
            groups.shuffle(&mut g.rng);
            let stores = groups.iter().any(|gr| gr[0] == b"STORE");
            let name = b(if ro { "SORT_RO" } else { "SORT" });
            // (Not an unordered reply: inside EXEC it is compared as is.)
            let args = if !unordered && g.chance(25) {
                // Inside a script (its keys declared, the patterns' not):
                // with several shards it runs again as a transaction.
                let script = "return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))";
                let mut a = vec![b("EVAL"), b(script)];
                a.push(b(if stores { "2" } else { "1" }));
                a.push(b(key));
                if stores {
                    a.push(b(SP_DEST));
                }
                a.push(name);
                a.extend(groups.into_iter().flatten());
                a
            } else {
                let mut a = vec![name, b(key)];
                a.extend(groups.into_iter().flatten());
                a
            };
            Op::Cmd { args, cmp: if unordered { Cmp::Sorted } else { Cmp::Exact } }
        }
    }
}

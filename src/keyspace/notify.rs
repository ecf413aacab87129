//! Keyspace notifications (`notify-keyspace-events`): the event classes,
//! their flag string, and the events one shard's commands produced.
//!
//! Events are collected here while commands run and published by the
//! shard afterwards (`shard::pubsub`). Where they come from:
//! - the keyspace's own primitives: `new` (a key created), `expired`
//!   (lazy and active expiry), `evicted`;
//! - a command's row (`CommandDef::event`): its event for every key the
//!   command changed (`Keyspace::touch`), followed by `del` for a key it
//!   left empty; the keys are gathered here while the command runs;
//! - the command itself (`Ctx::notify`) where the event depends on what it
//!   did (EXPIRE's `expire` or `del`, RENAME's pair, LMOVE's two ends).
//!
//! With no class enabled (the default) nothing is gathered: a write pays
//! one comparison.

/// Event classes, as Redis numbers them.
pub const KEYSPACE: u16 = 1 << 0;
pub const KEYEVENT: u16 = 1 << 1;
pub const GENERIC: u16 = 1 << 2;
pub const STRING: u16 = 1 << 3;
pub const LIST: u16 = 1 << 4;
pub const SET: u16 = 1 << 5;
pub const HASH: u16 = 1 << 6;
pub const ZSET: u16 = 1 << 7;
pub const EXPIRED: u16 = 1 << 8;
pub const EVICTED: u16 = 1 << 9;
pub const STREAM: u16 = 1 << 10;
pub const KEY_MISS: u16 = 1 << 11;
pub const MODULE: u16 = 1 << 13;
pub const NEW: u16 = 1 << 14;
/// `A`: every class but key-miss and new.
pub const ALL: u16 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error CONFIG SET answers for a bad flag string (Redis's text).
pub const BAD_FLAGS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parse a flag string (`"KEA"`, `"Kx"`, `""`); None on an unknown character.
pub fn parse_flags(s: &str) -> Option<u16> {
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// The string CONFIG GET reports, as Redis 7.0 builds it: `A` for all of
/// ALL, else the classes in its order (`n` among them, so `A` hides it),
/// then K, E, m.
pub fn flags_string(f: u16) -> String {
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// A command row's event (`CommandDef::event`): `name` of `class` for
/// each key it changed; `store`: a key it removed gets `del` alone (a
/// store of an empty result), else the event and then `del`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowEvent {
    pub class: u16,
    pub name: &'static str,
    pub store: bool,
}

/// One event: `name` of class `class` happened to `key` in `db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: &'static str,
    pub db: u8,
    pub key: Box<[u8]>,
}

#[derive(Default)]
pub struct Notify {
    /// The enabled classes (`notify-keyspace-events`); 0: off.
    pub flags: u16,
    /// Keys the running command changed, and whether it removed them.
    touched: Vec<(u8, Box<[u8]>, bool)>,
    /// Events waiting to be published.
    pub events: Vec<Event>,
}

impl Notify {
    /// Whether anything is gathered at all.
    #[inline]
    pub fn on(&self) -> bool {
        self.flags != 0
    }

    /// Whether events of `class` are published (Redis also needs K or E).
    #[inline]
    pub fn wants(&self, class: u16) -> bool {
        self.flags & class != 0 && self.flags & (KEYSPACE | KEYEVENT) != 0
    }

    /// Record an event of `class`, if published.
    #[inline]
    pub fn emit(&mut self, class: u16, name: &'static str, db: usize, key: &[u8]) {
        if self.wants(class) {
            self.events.push(Event { name, db: db as u8, key: key.into() });
        }
    }

    /// The running command changed `key` (`removed`: it is gone now).
    #[inline]
    pub fn touched(&mut self, db: usize, key: &[u8], removed: bool) {
        if self.on() {
            self.touched.push((db as u8, key.into(), removed));
        }
    }

    /// How many keys were recorded as touched: a primitive that must not
    /// count as the command's change (expiry, eviction) cuts back to it.
    pub fn touched_len(&self) -> usize {
        self.touched.len()
    }

    pub fn cut_touched(&mut self, len: usize) {
        self.touched.truncate(len);
    }

    /// A command starts: forget touches of whatever ran before.
    #[inline]
    pub fn begin(&mut self) {
        if !self.touched.is_empty() {
            self.touched.clear();
        }
    }

    /// A command ended: its row's event (`class`, `name`), if it has one,
    /// for each key it changed, once per key, and `del` for each key it
    /// left removed (a collection left empty, a store of nothing). Commands
    /// without a row event reported their own.
    pub fn end(&mut self, event: Option<RowEvent>) {
        if self.touched.is_empty() {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        // Each key once, where it first changed, with its final state.
        let mut seen: Vec<(u8, Box<[u8]>, bool)> = Vec::with_capacity(touched.len());
        for (db, key, removed) in touched.drain(..) {
            match seen.iter_mut().find(|(d, k, _)| *d == db && *k == key) {
                Some(s) => s.2 = removed,
                None => seen.push((db, key, removed)),
            }
        }
        for (db, key, removed) in &seen {
            if let Some(ev) = event {
                if !(*removed && (ev.store || ev.name == "del")) {
                    self.emit(ev.class, ev.name, *db as usize, key);
                }
            }
            if *removed {
                self.emit(GENERIC, "del", *db as usize, key);
            }
        }
        self.touched = touched;
    }

    /// Forget that the running command changed `key`: a removal that is
    /// not a deletion (RENAME's and MOVE's source).
    pub fn untouch(&mut self, db: usize, key: &[u8]) {
        if self.on() {
            self.touched.retain(|(d, k, _)| !(*d as usize == db && &k[..] == key));
        }
    }

    /// Events to publish, as (channel, message) pairs: the keyspace channel
    /// (K) and the keyevent channel (E) of each.
    pub fn drain_messages(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (ks, ke) = (self.flags & KEYSPACE != 0, self.flags & KEYEVENT != 0);
        let mut out = Vec::with_capacity(self.events.len() * 2);
        for e in self.events.drain(..) {
            if ks {
                let mut ch = format!("__keyspace@{}__:", e.db).into_bytes();
                ch.extend_from_slice(&e.key);
                out.push((ch, e.name.as_bytes().to_vec()));
            }
            if ke {
                out.push((format!("__keyevent@{}__:{}", e.db, e.name).into_bytes(), e.key.to_vec()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_strings_round_trip_as_redis_prints_them() {
        for (given, canonical) in [
            ("", ""),
            ("KEA", "AKE"),
            ("AKEmn", "AKEm"),
            ("Ex", "xE"),
            ("g$lshzxetdK", "AK"),
            ("nK$", "$nK"),
            ("Ksz", "szK"),
            ("gmnK", "gnKm"),
            ("An", "A"),
        ] {
            let f = parse_flags(given).expect("valid");
            assert_eq!(flags_string(f), canonical, "{given}");
        }
        assert_eq!(parse_flags("KEw"), None);
    }

    #[test]
    fn row_event_per_key_then_del_for_removed() {
        let mut n = Notify { flags: parse_flags("KEA").expect("valid"), ..Default::default() };
        n.begin();
        n.touched(0, b"a", false);
        n.touched(0, b"b", true);
        n.touched(0, b"a", false);
        n.end(Some(RowEvent { class: LIST, name: "lpop", store: false }));
        let names: Vec<(&str, &[u8])> = n.events.iter().map(|e| (e.name, &e.key[..])).collect();
        assert_eq!(names, vec![("lpop", &b"a"[..]), ("lpop", b"b"), ("del", b"b")]);
        let msgs = n.drain_messages();
        assert_eq!(msgs.len(), 6);
        assert_eq!(msgs[0], (b"__keyspace@0__:a".to_vec(), b"lpop".to_vec()));
        assert_eq!(msgs[1], (b"__keyevent@0__:lpop".to_vec(), b"a".to_vec()));
        // A class not enabled, or neither K nor E: nothing.
        let mut n = Notify { flags: parse_flags("Kl").expect("valid"), ..Default::default() };
        n.touched(0, b"a", false);
        n.end(Some(RowEvent { class: HASH, name: "hset", store: false }));
        assert!(n.events.is_empty());
        let mut n = Notify { flags: parse_flags("A").expect("valid"), ..Default::default() };
        n.emit(GENERIC, "del", 0, b"a");
        assert!(n.events.is_empty());
    }
}

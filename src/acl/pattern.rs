//! A key pattern compiled when the rule is set, so that the check of each
//! key of each command does not run the general glob matcher for the
//! patterns users mostly write (`app:*`, an exact key). The answer is
//! always the glob matcher's (`util::glob_match`, Redis's stringmatchlen):
//! only patterns whose meaning is plain are given a shortcut.

/// How a pattern is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No metacharacter: the key must equal the pattern.
    Exact,
    /// Literal bytes then only stars (`app:*`, `app:**`): the key starts
    /// with the literal part (the first `len` bytes of the pattern).
    Prefix(usize),
    /// Only stars: any key but the empty one (a star needs a byte to
    /// match against in Redis's matcher, so `*` does not match "").
    NonEmpty,
    /// Anything else (`?`, `[...]`, `\`, a star before more text).
    Glob,
}

/// A key pattern with its `PERM_*` bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub pat: Vec<u8>,
    pub perm: u8,
    kind: Kind,
    /// A prefix of at most 8 bytes as a little-endian word, and the mask
    /// of its bytes: a key of 8 bytes or more is tested with one load and
    /// compare instead of a call to compare memory (keys mostly are).
    word: u64,
    mask: u64,
}

impl KeyPattern {
    pub fn new(pat: &[u8], perm: u8) -> Self {
        let kind = classify(pat);
        let (mut word, mut mask) = (0, 0);
        if let Kind::Prefix(n) = kind {
            if n <= 8 {
                let mut w = [0u8; 8];
                w[..n].copy_from_slice(&pat[..n]);
                word = u64::from_le_bytes(w);
                mask = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
            }
        }
        KeyPattern { pat: pat.to_vec(), perm, kind, word, mask }
    }

    /// The byte every key this pattern matches starts with, if there is
    /// one: a literal first byte (or an escaped one) makes the glob
    /// matcher compare it before anything else.
    fn first_byte(&self) -> Option<u8> {
        match self.pat.as_slice() {
            [b'\\', b, ..] => Some(*b),
            [b'*' | b'?' | b'[' | b'\\', ..] | [] => None,
            [b, ..] => Some(*b),
        }
    }

    #[inline(always)]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self.kind {
            Kind::Exact => key == self.pat.as_slice(),
            // A key a user's prefix refuses mostly differs from it at the
            // first byte: tested before calling out to compare the rest.
            Kind::Prefix(n) => match key.first_chunk::<8>() {
                Some(w) if n <= 8 => u64::from_le_bytes(*w) & self.mask == self.word,
                _ => key.first() == self.pat.first() && key.starts_with(&self.pat[..n]),
            },
            Kind::NonEmpty => !key.is_empty(),
            Kind::Glob => crate::util::glob_match(&self.pat, key, false),
        }
    }
}

/// A selector's key patterns, indexed by the first byte a matching key
/// must have. A user's patterns mostly start with distinct literal bytes
/// (`app:*`, `session:*`, `key:*`), so a key is tried against the one or
/// two that could match it rather than against all of them in turn: on
/// MSET of ten keys with four patterns the walk over all of them was 13%
/// of the server's instructions (callgrind), against ~2% for this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPatterns {
    /// In the order added (ACL GETUSER and LIST print them so).
    list: Vec<KeyPattern>,
    /// `start[b]..start[b + 1]` is the range of `by_first` holding the
    /// patterns only keys beginning with byte `b` can match. None until
    /// the first such pattern.
    start: Option<Box<[u32; 257]>>,
    by_first: Vec<u32>,
    /// Patterns a key of any first byte may match (`*`, `?x`, `[ab]*`…).
    anywhere: Vec<u32>,
}

impl KeyPatterns {
    pub fn iter(&self) -> std::slice::Iter<'_, KeyPattern> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn clear(&mut self) {
        *self = KeyPatterns::default();
    }

    /// Add `perm` to pattern `pat`, adding the pattern if it is new.
    pub fn grant(&mut self, pat: &[u8], perm: u8) {
        match self.list.iter_mut().find(|k| k.pat == pat) {
            Some(k) => k.perm |= perm,
            None => {
                self.list.push(KeyPattern::new(pat, perm));
                self.reindex();
            }
        }
    }

    fn reindex(&mut self) {
        let mut heads: Vec<(u8, u32)> = Vec::new();
        self.anywhere.clear();
        for (i, k) in self.list.iter().enumerate() {
            match k.first_byte() {
                Some(b) => heads.push((b, i as u32)),
                None => self.anywhere.push(i as u32),
            }
        }
        // Stable: within one first byte, patterns keep the order added.
        heads.sort_by_key(|&(b, _)| b);
        self.by_first = heads.iter().map(|&(_, i)| i).collect();
        let mut start = Box::new([0u32; 257]);
        for &(b, _) in &heads {
            start[b as usize + 1] += 1;
        }
        for b in 0..256 {
            start[b + 1] += start[b];
        }
        self.start = (!heads.is_empty()).then_some(start);
    }

    /// Does some pattern with every bit of `need` match `key`?
    #[inline(always)]
    pub fn allows(&self, key: &[u8], need: u8) -> bool {
        if let (Some(&b), Some(start)) = (key.first(), &self.start) {
            let (from, to) = (start[b as usize] as usize, start[b as usize + 1] as usize);
            for &i in self.by_first.get(from..to).unwrap_or(&[]) {
                if self.try_one(i, key, need) {
                    return true;
                }
            }
        }
        for &i in &self.anywhere {
            if self.try_one(i, key, need) {
                return true;
            }
        }
        false
    }

    #[inline(always)]
    fn try_one(&self, i: u32, key: &[u8], need: u8) -> bool {
        self.list.get(i as usize).is_some_and(|p| p.perm & need == need && p.matches(key))
    }
}

/// The shortcut `pat` may take, if any.
pub fn classify(pat: &[u8]) -> Kind {
    let Some(i) = pat.iter().position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\')) else {
        return Kind::Exact;
    };
    if pat[i..].iter().any(|&b| b != b'*') {
        return Kind::Glob;
    }
    if i == 0 {
        Kind::NonEmpty
    } else {
        Kind::Prefix(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(b"app:1"), Kind::Exact);
        assert_eq!(classify(b""), Kind::Exact);
        assert_eq!(classify(b"a]^b"), Kind::Exact, "] and ^ are literal outside a class");
        assert_eq!(classify(b"app:*"), Kind::Prefix(4));
        assert_eq!(classify(b"app:**"), Kind::Prefix(4));
        assert_eq!(classify(b"*"), Kind::NonEmpty);
        assert_eq!(classify(b"**"), Kind::NonEmpty);
        assert_eq!(classify(b"a\\*"), Kind::Glob, "an escaped star is a literal star");
        assert_eq!(classify(b"a\\b*"), Kind::Glob);
        assert_eq!(classify(b"a?*"), Kind::Glob);
        assert_eq!(classify(b"a[bc]*"), Kind::Glob);
        assert_eq!(classify(b"a*b"), Kind::Glob);
        assert_eq!(classify(b"*a"), Kind::Glob);
        assert_eq!(classify(b"a*?"), Kind::Glob);
    }

    /// Every shortcut answers what the glob matcher answers.
    #[test]
    fn same_answers_as_the_glob_matcher() {
        let pats: &[&[u8]] = &[
            b"", b"*", b"**", b"a", b"ab", b"a*", b"a**", b"ab*", b"a\\*", b"a\\", b"\\a*", b"a?", b"a?*", b"[ab]*",
            b"a[", b"a*b", b"*b", b"?", b"a]*", b"k\xff*",
        ];
        let keys: &[&[u8]] = &[
            b"", b"a", b"A", b"ab", b"abc", b"a*", b"a\\", b"b", b"ba", b"aab", b"a]", b"a]x", b"k\xff", b"k\xffz",
            b"*",
        ];
        for p in pats {
            let kp = KeyPattern::new(p, 3);
            for k in keys {
                assert_eq!(
                    kp.matches(k),
                    crate::util::glob_match(p, k, false),
                    "pattern {:?} key {:?} ({:?})",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(k),
                    kp.kind
                );
            }
        }
    }

    /// The first-byte index answers what trying every pattern answers,
    /// for every subset of patterns, perms and keys here.
    #[test]
    fn indexed_set_answers_as_trying_every_pattern() {
        let pats: &[(&[u8], u8)] = &[
            (b"app:*", 3),
            (b"a", 1),
            (b"\\*x", 2),
            (b"*", 1),
            (b"[ab]*", 2),
            (b"?b", 3),
            (b"", 3),
            (b"key:*", 3),
            (b"k*y", 1),
            (b"\\", 3),
            (b"ab*", 2),
        ];
        let keys: &[&[u8]] = &[b"", b"a", b"ab", b"app:1", b"*x", b"key:1", b"kay", b"bb", b"\\", b"z", b"abc"];
        for mask in 0u32..(1 << pats.len()) {
            let chosen: Vec<_> = (0..pats.len()).filter(|i| mask & (1 << i) != 0).map(|i| pats[i]).collect();
            let mut set = KeyPatterns::default();
            for (p, perm) in &chosen {
                set.grant(p, *perm);
            }
            for k in keys {
                for need in 1..=3u8 {
                    let want =
                        chosen.iter().any(|(p, perm)| perm & need == need && crate::util::glob_match(p, k, false));
                    assert_eq!(set.allows(k, need), want, "patterns {:?} key {:?} need {}", chosen, k, need);
                }
            }
        }
    }
}

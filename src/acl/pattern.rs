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
}

impl KeyPattern {
    pub fn new(pat: &[u8], perm: u8) -> Self {
        KeyPattern { pat: pat.to_vec(), perm, kind: classify(pat) }
    }

    #[inline]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self.kind {
            Kind::Exact => key == self.pat.as_slice(),
            // A key a user's prefix refuses mostly differs from it at the
            // first byte: tested before calling out to compare the rest.
            Kind::Prefix(n) => key.first() == self.pat.first() && key.starts_with(&self.pat[..n]),
            Kind::NonEmpty => !key.is_empty(),
            Kind::Glob => crate::util::glob_match(&self.pat, key, false),
        }
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
}

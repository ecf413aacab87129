//! An ACL user and its rules, as Redis 7 has them: flags (on/off, nopass),
//! SHA-256 password hashes, and selectors (the root one plus any `(...)`
//! ones), each a set of allowed command rows, key patterns with read/write
//! permissions and channel patterns. `apply` takes one SETUSER rule;
//! `describe` prints the user back as ACL LIST does. Pure: no I/O.
//!
//! Commands are allowed per table row (a command and each subcommand has
//! its own row, as Redis gives each its own id), so `+config|get` allows
//! one row and `+config` the container and all its subcommands.

use super::pattern::KeyPatterns;
use crate::cmd::flags::acl as cat;
use crate::cmd::table;

/// Read permission on a key pattern (`%R~`).
pub const PERM_R: u8 = 1;
/// Write permission on a key pattern (`%W~`).
pub const PERM_W: u8 = 2;
pub const PERM_RW: u8 = PERM_R | PERM_W;

/// Why a rule was refused: Redis's texts (ACLSetUserStringError).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    UnknownCommand,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// What one selector allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// One bit per command row (`table::all()` index).
    bits: Vec<u64>,
    /// `+@all` happened since the last `-@all`: commands added later
    /// would be allowed too (Redis's reserved command bit).
    future: bool,
    /// Rows not allowed as a whole, but allowed with one of these first
    /// arguments (`+select|0`), in the order they were added.
    firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    pub allkeys: bool,
    /// Key patterns with their PERM_* bits, in the order added.
    pub keys: KeyPatterns,
    pub allchannels: bool,
    pub channels: Vec<Vec<u8>>,
}

fn nwords() -> usize {
    table::count().div_ceil(64)
}

impl Selector {
    /// Nothing allowed (a new user's root selector, and a `(...)` one
    /// before its rules).
    pub fn empty() -> Self {
        Selector {
            bits: vec![0; nwords()],
            future: false,
            firstargs: Vec::new(),
            allkeys: false,
            keys: KeyPatterns::default(),
            allchannels: false,
            channels: Vec::new(),
        }
    }

    #[inline]
    pub fn allows_row(&self, id: usize) -> bool {
        self.bits.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_row(&mut self, id: usize, on: bool) {
        if let Some(w) = self.bits.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
            }
        }
    }

    /// Every row allowed.
    pub fn all_commands(&self) -> bool {
        (0..table::count()).all(|id| self.allows_row(id))
    }

    /// The first arguments allowed for row `id` while the row itself is not.
    pub fn firstargs_of(&self, id: usize) -> &[Vec<u8>] {
        self.firstargs.iter().find(|(i, _)| *i == id).map_or(&[], |(_, v)| v.as_slice())
    }

    /// Allow or deny a row and, for a container, every subcommand (Redis's
    /// ACLChangeSelectorPerm); its first-arg exceptions go.
    fn change(&mut self, id: usize, allow: bool) {
        self.set_row(id, allow);
        self.firstargs.retain(|(i, _)| *i != id);
        let def = table::by_id(id);
        for j in 0..def.subcommands.len() {
            self.set_row(id + 1 + j, allow);
        }
    }

    fn set_category(&mut self, c: cat::Categories, allow: bool) {
        for (id, def) in table::all().iter().enumerate() {
            if def.acl_categories() & c != 0 {
                self.change(id, allow);
            }
        }
    }

    fn set_all(&mut self, allow: bool) {
        let fill = if allow { u64::MAX } else { 0 };
        self.bits.iter_mut().for_each(|w| *w = fill);
        self.future = allow;
        self.firstargs.clear();
    }

    /// Apply one selector rule (a command, key or channel rule).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        let first = lower.first().copied();
        let word: Option<fn(&mut Selector, bool)> = match lower.as_slice() {
            b"allkeys" | b"resetkeys" => Some(Selector::set_keys),
            b"allchannels" | b"resetchannels" => Some(Selector::set_channels),
            b"allcommands" | b"+@all" | b"nocommands" | b"-@all" => Some(Selector::set_all),
            _ => None,
        };
        if let Some(set) = word {
            // allkeys, allchannels, allcommands, +@all: on; the rest: off.
            set(self, first == Some(b'a') || first == Some(b'+'));
            return Ok(());
        }
        match op.first() {
            Some(b'~') | Some(b'%') => self.add_key_pattern(op),
            Some(b'&') => self.add_channel(&op[1..]),
            Some(b'+') | Some(b'-') if op.get(1) == Some(&b'@') => {
                let c = cat::by_name(&op[2..]).ok_or(RuleError::UnknownCommand)?;
                self.set_category(c, op[0] == b'+');
                Ok(())
            }
            Some(b'+') => self.allow_command(&op[1..]),
            Some(b'-') => {
                let (id, _) = table::by_full_name(&op[1..]).ok_or(RuleError::UnknownCommand)?;
                self.change(id, false);
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    /// `allkeys` (true) or `resetkeys`: either way no patterns are left.
    fn set_keys(&mut self, all: bool) {
        self.allkeys = all;
        self.keys.clear();
    }

    /// `allchannels` (true) or `resetchannels`.
    fn set_channels(&mut self, all: bool) {
        self.allchannels = all;
        self.channels.clear();
    }

    /// `+cmd`, `+container|sub`, or `+cmd|firstarg` for a command without
    /// subcommands.
    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
            let (id, _) = table::lookup(name).ok_or(RuleError::UnknownCommand)?;
            self.change(id, true);
            return Ok(());
        };
        let (head, sub) = (&name[..bar], &name[bar + 1..]);
        let (id, def) = table::by_full_name(head).ok_or(RuleError::UnknownCommand)?;
        if def.name.contains('|') {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !def.subcommands.is_empty() {
            let (sid, _) = table::by_full_name(name).ok_or(RuleError::UnknownCommand)?;
            self.change(sid, true);
            return Ok(());
        }
        let sub = sub.to_ascii_lowercase();
        match self.firstargs.iter_mut().find(|(i, _)| *i == id) {
            Some((_, v)) if v.contains(&sub) => {}
            Some((_, v)) => v.push(sub),
            None => self.firstargs.push((id, vec![sub])),
        }
        Ok(())
    }

    /// `~pattern` (read and write), `%R~`, `%W~`, `%RW~pattern`.
    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.allkeys {
            return Err(RuleError::KeyAfterAll);
        }
        let (perm, pat) = if op[0] == b'~' {
            (PERM_RW, &op[1..])
        } else {
            let tilde = op.iter().position(|&b| b == b'~').ok_or(RuleError::Syntax)?;
            let mut perm = 0;
            for &b in &op[1..tilde] {
                let bit = match b.to_ascii_uppercase() {
                    b'R' => PERM_R,
                    b'W' => PERM_W,
                    _ => return Err(RuleError::Syntax),
                };
                if perm & bit != 0 {
                    return Err(RuleError::Syntax);
                }
                perm |= bit;
            }
            if perm == 0 {
                return Err(RuleError::Syntax);
            }
            (perm, &op[tilde + 1..])
        };
        if has_space(pat) {
            return Err(RuleError::Syntax);
        }
        if pat == b"*" && perm == PERM_RW {
            self.set_keys(true);
            return Ok(());
        }
        self.keys.grant(pat, perm);
        Ok(())
    }

    fn add_channel(&mut self, pat: &[u8]) -> Result<(), RuleError> {
        if self.allchannels {
            return Err(RuleError::ChannelAfterAll);
        }
        if has_space(pat) {
            return Err(RuleError::Syntax);
        }
        if pat == b"*" {
            self.set_channels(true);
        } else if !self.channels.iter().any(|c| c == pat) {
            self.channels.push(pat.to_vec());
        }
        Ok(())
    }

    /// Keys, channels, then commands, as ACL LIST prints a selector.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let keys = self.describe_keys();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if self.allchannels {
            parts.push("&*".into());
        } else {
            parts.push("resetchannels".into());
            let ch = self.describe_channels();
            if !ch.is_empty() {
                parts.push(ch);
            }
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }

    /// `~*`, or the patterns (`~a %R~b %W~c`), as GETUSER's "keys".
    pub fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let pats: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let prefix = match k.perm {
                    PERM_R => "%R~",
                    PERM_W => "%W~",
                    _ => "~",
                };
                format!("{}{}", prefix, String::from_utf8_lossy(&k.pat))
            })
            .collect();
        pats.join(" ")
    }

    /// `&*`, or the patterns, as GETUSER's "channels".
    pub fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let pats: Vec<String> = self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect();
        pats.join(" ")
    }

    /// The command rules as Redis rebuilds them: `+@all` or `-@all`, then
    /// the categories that best cover the difference, then single
    /// commands and first-args for what remains. (Redis lists the single
    /// commands in its hash table's order; here they follow the table.)
    pub fn describe_commands(&self) -> String {
        let mut rules: Vec<String> = Vec::new();
        let additive = !self.future;
        let mut fake = Selector::empty();
        if additive {
            rules.push("-@all".into());
        } else {
            rules.push("+@all".into());
            fake.set_all(true);
        }
        // What is still to be explained: categories are applied to a copy
        // whose bits are turned off (or on) as they are covered.
        let mut temp = self.clone();
        let mut applied = vec![false; cat::NAMES.len()];
        loop {
            let mut best: Option<usize> = None;
            let mut most = 0usize;
            for (j, &(c, _)) in cat::NAMES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(c);
                let (want, other) = if additive { (on, off) } else { (off, on) };
                if want > most && want > other {
                    most = want;
                    best = Some(j);
                }
            }
            let Some(j) = best else { break };
            let (c, name) = cat::NAMES[j];
            fake.set_category(c, additive);
            temp.set_category(c, !additive);
            rules.push(format!("{}@{}", if additive { '+' } else { '-' }, name));
            applied[j] = true;
        }
        for (id, def) in table::all().iter().enumerate() {
            let mine = self.allows_row(id);
            if mine != fake.allows_row(id) {
                rules.push(format!("{}{}", if mine { '+' } else { '-' }, def.name));
                fake.change(id, mine);
            }
            if !mine {
                for arg in self.firstargs_of(id) {
                    rules.push(format!("+{}|{}", def.name, String::from_utf8_lossy(arg)));
                }
            }
        }
        rules.join(" ")
    }

    /// Rows of category `c` this selector allows and denies.
    fn count_category(&self, c: cat::Categories) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for (id, def) in table::all().iter().enumerate() {
            if def.acl_categories() & c != 0 {
                if self.allows_row(id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }
}

/// Redis refuses spaces and NULs in user names and patterns.
pub fn has_space(s: &[u8]) -> bool {
    s.iter().any(|&b| b.is_ascii_whitespace() || b == 0 || b == 0x0b)
}

/// The SHA-256 of a password, as the 64 lowercase hex digits Redis shows.
pub fn hash_password(pass: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(pass);
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// `sanitize-payload` / `skip-sanitize-payload`, shown only once set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanitize {
    Unset,
    Sanitize,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    pub sanitize: Sanitize,
    /// Hex SHA-256 of each password, in the order added.
    pub passwords: Vec<String>,
    pub root: Selector,
    pub selectors: Vec<Selector>,
}

impl User {
    /// A new user: off, no passwords, nothing allowed.
    pub fn new(name: &str) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: Sanitize::Unset,
            passwords: Vec::new(),
            root: Selector::empty(),
            selectors: Vec::new(),
        }
    }

    /// The `default` user everyone starts as: everything allowed, with
    /// `requirepass` as its password (none: nopass).
    pub fn default_user(requirepass: &str) -> Self {
        let mut u = User::new("default");
        for r in ["on", "~*", "&*", "+@all"] {
            let _ = u.apply(r.as_bytes());
        }
        u.set_requirepass(requirepass);
        u
    }

    /// `requirepass` (re)configured: its one password, or nopass.
    pub fn set_requirepass(&mut self, pass: &str) {
        self.passwords.clear();
        if pass.is_empty() {
            self.nopass = true;
        } else {
            self.nopass = false;
            self.passwords.push(hash_password(pass.as_bytes()));
        }
    }

    /// Apply one SETUSER rule; a `(...)` rule adds a selector.
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if op.first() == Some(&b'(') {
            if op.last() != Some(&b')') || op.len() < 2 {
                return Err(RuleError::Syntax);
            }
            let mut s = Selector::empty();
            for r in op[1..op.len() - 1].split(|b| *b == b' ').filter(|r| !r.is_empty()) {
                s.apply(r)?;
            }
            self.selectors.push(s);
            return Ok(());
        }
        match op.to_ascii_lowercase().as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"skip-sanitize-payload" => self.sanitize = Sanitize::Skip,
            b"sanitize-payload" => self.sanitize = Sanitize::Sanitize,
            b"clearselectors" => self.selectors.clear(),
            b"reset" => {
                for r in ["resetpass", "resetkeys", "resetchannels", "off", "clearselectors", "-@all"] {
                    self.apply(r.as_bytes())?;
                }
                self.sanitize = Sanitize::Sanitize;
            }
            _ => match op.first() {
                Some(b'>') => {
                    let h = hash_password(&op[1..]);
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'#') => {
                    if !valid_hash(&op[1..]) {
                        return Err(RuleError::BadHash);
                    }
                    let h = String::from_utf8_lossy(&op[1..]).into_owned();
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'<') => self.remove_password(hash_password(&op[1..]))?,
                Some(b'!') => {
                    if !valid_hash(&op[1..]) {
                        return Err(RuleError::BadHash);
                    }
                    self.remove_password(String::from_utf8_lossy(&op[1..]).into_owned())?
                }
                _ => self.root.apply(op)?,
            },
        }
        Ok(())
    }

    fn remove_password(&mut self, h: String) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|p| *p != h);
        if self.passwords.len() == before {
            return Err(RuleError::NoSuchPassword);
        }
        self.nopass = false;
        Ok(())
    }

    /// Does `pass` open this user (enabled, and nopass or a matching
    /// hash)? Hashes are compared without an early exit.
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(pass);
        let mut ok = false;
        for p in &self.passwords {
            ok |= crate::security::same_password(h.as_bytes(), p.as_bytes());
        }
        ok
    }

    /// Every command, key and channel allowed by one selector: the
    /// permission check is a flag test for such a user.
    pub fn unrestricted(&self) -> bool {
        std::iter::once(&self.root).chain(self.selectors.iter()).any(|s| s.allkeys && s.allchannels && s.all_commands())
    }

    /// The flags GETUSER lists.
    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Sanitize::Skip => f.push("skip-sanitize-payload"),
            Sanitize::Sanitize => f.push("sanitize-payload"),
            Sanitize::Unset => {}
        }
        f
    }

    /// The rules after `user <name>` in ACL LIST (and in an aclfile).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flag_names().iter().map(|s| s.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{}", p)));
        parts.push(self.root.describe());
        for s in &self.selectors {
            parts.push(format!("({})", s.describe()));
        }
        parts.join(" ")
    }
}

/// Join SETUSER's arguments into rules: a selector may be split over
/// several arguments (`(+get` `~x)`), joined with spaces as Redis does.
/// Err carries Redis's message for an unclosed selector.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    // Redis names the argument the unclosed selector started in.
    let mut started: &[u8] = b"";
    for &a in args {
        if open.is_none() {
            started = a;
        }
        match open.as_mut() {
            Some(acc) => {
                acc.push(b' ');
                acc.extend_from_slice(a);
                if a.last() == Some(&b')') {
                    out.push(open.take().unwrap_or_default());
                }
            }
            None if a.first() == Some(&b'(') && a.last() != Some(&b')') => open = Some(a.to_vec()),
            None => out.push(a.to_vec()),
        }
    }
    if open.is_some() {
        return Err(format!(
            "ERR Unmatched parenthesis in acl selector starting at '{}'.",
            String::from_utf8_lossy(started)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> Result<User, (String, RuleError)> {
        let mut u = User::new("u");
        for r in rules {
            u.apply(r.as_bytes()).map_err(|e| (r.to_string(), e))?;
        }
        Ok(u)
    }

    #[test]
    fn new_and_default_users_describe_as_redis() {
        assert_eq!(User::new("alice").describe(), "off resetchannels -@all");
        assert_eq!(User::default_user("").describe(), "on nopass ~* &* +@all");
        let d = User::default_user("pw");
        assert_eq!(d.describe(), format!("on #{} ~* &* +@all", hash_password(b"pw")));
        assert!(d.password_ok(b"pw") && !d.password_ok(b"pW"));
        assert!(User::default_user("").unrestricted());
        assert!(!User::new("x").unrestricted());
    }

    #[test]
    fn sha256_of_a_password() {
        // What redis-server 7 shows for `>pw`.
        assert_eq!(hash_password(b"pw"), "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4");
    }

    #[test]
    fn rules_describe_back() {
        let u = user(&["on", ">pw", "~foo*", "%R~bar*", "&ch*", "+get", "+config|get"]).expect("rules");
        assert_eq!(
            u.describe(),
            format!("on #{} ~foo* %R~bar* resetchannels &ch* -@all +config|get +get", hash_password(b"pw"))
        );
        let u = user(&["+@all", "-@dangerous", "allkeys", "allchannels"]).expect("rules");
        assert_eq!(u.root.describe(), "~* &* +@all -@dangerous");
        let u = user(&["-@all", "+@read"]).expect("rules");
        assert_eq!(u.root.describe_commands(), "-@all +@read");
        let u = user(&["+@all", "-get"]).expect("rules");
        assert_eq!(u.root.describe_commands(), "+@all -get");
        let u = user(&["+config", "-config|set"]).expect("rules");
        assert_eq!(u.root.describe_commands(), "-@all +config -config|set");
        let u = user(&["+select|0", "+select|1"]).expect("rules");
        assert_eq!(u.root.describe_commands(), "-@all +select|0 +select|1");
        let u = user(&["%W~w*", "%RW~rw", "%R~rw"]).expect("rules");
        assert_eq!(u.root.describe_keys(), "%W~w* ~rw");
        assert_eq!(user(&["%RW~*"]).expect("rules").root.describe_keys(), "~*");
        let u = user(&["(+get ~x)", "(&c -@all)"]).expect("selectors");
        assert_eq!(u.describe(), "off resetchannels -@all (~x resetchannels -@all +get) (resetchannels &c -@all)");
        let u = user(&["reset"]).expect("reset");
        assert_eq!(u.describe(), "off sanitize-payload resetchannels -@all");
    }

    #[test]
    fn bad_rules_are_refused_with_redis_reasons() {
        let cases: &[(&[&str], RuleError)] = &[
            (&["bogus"], RuleError::Syntax),
            (&["+nosuch"], RuleError::UnknownCommand),
            (&["+@nosuch"], RuleError::UnknownCommand),
            (&["-config|nosuch"], RuleError::UnknownCommand),
            (&["#abc"], RuleError::BadHash),
            (&["!ABCDEF"], RuleError::BadHash),
            (&["<nope"], RuleError::NoSuchPassword),
            (&["~*", "~x"], RuleError::KeyAfterAll),
            (&["allchannels", "&x"], RuleError::ChannelAfterAll),
            (&["+config|get|x"], RuleError::FirstArgOfSubcommand),
            (&["+select|"], RuleError::Syntax),
            (&["%X~a"], RuleError::Syntax),
            (&["%RR~a"], RuleError::Syntax),
            (&["%R"], RuleError::Syntax),
            (&["%~a"], RuleError::Syntax),
            (&["(+get"], RuleError::Syntax),
            (&["(bogus)"], RuleError::Syntax),
        ];
        for (rules, want) in cases {
            assert_eq!(user(rules).map(|_| ()).map_err(|(_, e)| e), Err(*want), "{rules:?}");
        }
    }

    #[test]
    fn passwords_add_and_remove() {
        let mut u = user(&[">a", ">b", ">a"]).expect("rules");
        assert_eq!(u.passwords.len(), 2);
        u.apply(b"<a").expect("remove");
        assert_eq!(u.passwords, vec![hash_password(b"b")]);
        u.apply(format!("!{}", hash_password(b"b")).as_bytes()).expect("remove by hash");
        assert!(u.passwords.is_empty());
        u.apply(b"on").expect("on");
        assert!(!u.password_ok(b""), "no password and not nopass: nothing opens it");
        u.apply(b"nopass").expect("nopass");
        assert!(u.password_ok(b"anything"));
        u.apply(b"off").expect("off");
        assert!(!u.password_ok(b"anything"), "a disabled user never authenticates");
    }

    #[test]
    fn selector_arguments_are_merged() {
        let args: Vec<&[u8]> = vec![b"on", b"(+get", b"~x)", b"(+set ~y)"];
        assert_eq!(
            merge_selector_args(&args).expect("merged"),
            vec![b"on".to_vec(), b"(+get ~x)".to_vec(), b"(+set ~y)".to_vec()]
        );
        let args: Vec<&[u8]> = vec![b"(+get", b"~x"];
        assert_eq!(
            merge_selector_args(&args),
            Err("ERR Unmatched parenthesis in acl selector starting at '(+get'.".to_string())
        );
    }
}

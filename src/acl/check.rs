//! May this user run this command with these arguments? Redis 7's check:
//! each selector (root first) is tried; one that allows the command, every
//! key (with the read/write access its key spec says) and every channel
//! admits it. Otherwise the most telling refusal is reported: a command
//! no selector allows, else the last key or channel that none matched.

use super::user::{Selector, User, PERM_R, PERM_W};
use crate::cmd::keyspec::{try_for_each_spec_range, Begin, Find, KeyFlags, ACCESS, DELETE, INSERT, NOT_KEY, UPDATE};
use crate::cmd::table::Channels;
use crate::cmd::{flags::NO_AUTH, Args, CommandDef};

/// Why a command was refused; `usize` is the argument index at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    /// Redis's ordering of reasons (cmd < key < channel) for picking one.
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The NOPERM error a refused command gets (Redis 7.0's text).
    pub fn error(self, def: &CommandDef) -> String {
        match self {
            Denied::Command => format!("NOPERM this user has no permissions to run the '{}' command", def.name),
            Denied::Key(_) => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Denied::Channel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments".into()
            }
        }
    }

    /// The reason EXEC gives for a queued command no longer allowed.
    pub fn exec_error(self) -> String {
        let why = match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        };
        format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
            why
        )
    }

    /// ACL DRYRUN's answer (the user named, the argument at fault).
    pub fn dryrun_text(self, def: &CommandDef, args: &Args) -> String {
        let arg = |i: usize| String::from_utf8_lossy(args.get(i.min(args.len().saturating_sub(1)))).into_owned();
        match self {
            Denied::Command => format!("This user has no permissions to run the '{}' command", def.name),
            Denied::Key(i) => format!("This user has no permissions to access the '{}' key", arg(i)),
            Denied::Channel(i) => format!("This user has no permissions to access the '{}' channel", arg(i)),
        }
    }

    /// ACL LOG's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }
}

/// Check command row `id` (`def`) with `args` (the whole request) for `u`.
#[inline]
pub fn check(u: &User, id: usize, def: &CommandDef, args: &Args) -> Result<(), Denied> {
    if u.selectors.is_empty() {
        if let Some(verdict) = one_key_or_none(&u.root, id, args) {
            return verdict;
        }
        return check_selector(&u.root, id, def, args);
    }
    check_selectors(u, id, def, args)
}

/// What `one_key_or_none` needs to know of a command row, worked out once
/// from the table (rows never change while the server runs).
#[derive(Clone, Copy)]
enum Shape {
    /// Anything else: the general walk.
    General,
    /// No keys and no channels.
    Keyless,
    /// Exactly one key, always at argument `pos`, needing `need`.
    OneKey { pos: u8, need: u8 },
}

fn shapes() -> &'static [Shape] {
    static SHAPES: std::sync::OnceLock<Vec<Shape>> = std::sync::OnceLock::new();
    SHAPES.get_or_init(|| crate::cmd::table::all().iter().copied().map(shape_of).collect())
}

fn shape_of(def: &CommandDef) -> Shape {
    if def.channels != Channels::None || def.keys_fn.is_some() {
        return Shape::General;
    }
    match def.key_specs {
        [] => Shape::Keyless,
        [k] if k.flags & NOT_KEY == 0 => match (k.begin, k.find) {
            (Begin::Index(p @ 1..=255), Find::Range { last: 0, .. }) => {
                Shape::OneKey { pos: p as u8, need: access_needed(k.flags) }
            }
            _ => Shape::General,
        },
        _ => Shape::General,
    }
}

/// The verdict for the shape most requests have, decided without the
/// general walk (which cost a GET a tenth of its time): a command the
/// selector allows, with no key or one key at a fixed argument and no
/// channels. None: another case, for `check_selector`.
#[inline(always)]
fn one_key_or_none(s: &Selector, id: usize, args: &Args) -> Option<Result<(), Denied>> {
    let shape = *shapes().get(id)?;
    if matches!(shape, Shape::General) || !s.allows_row(id) {
        return None;
    }
    let Shape::OneKey { pos, need } = shape else { return Some(Ok(())) };
    let p = pos as usize;
    if s.allkeys {
        return Some(Ok(()));
    }
    if p >= args.len() {
        return None;
    }
    Some(if s.keys.allows(args.get(p), need) { Ok(()) } else { Err(Denied::Key(p)) })
}

/// Several selectors: the first that admits the command wins, else the
/// most telling refusal.
fn check_selectors(u: &User, id: usize, def: &CommandDef, args: &Args) -> Result<(), Denied> {
    let mut worst: Option<Denied> = None;
    for s in std::iter::once(&u.root).chain(u.selectors.iter()) {
        match check_selector(s, id, def, args) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if worst.is_none_or(|w| d.rank() > w.rank()) {
                    worst = Some(d);
                }
            }
        }
    }
    Err(worst.unwrap_or(Denied::Command))
}

fn check_selector(s: &Selector, id: usize, def: &CommandDef, args: &Args) -> Result<(), Denied> {
    // AUTH and HELLO are for everyone: they are how a user changes.
    if !s.allows_row(id) && !def.has(NO_AUTH) {
        let first = (args.len() > 1).then(|| args.get(1).to_ascii_lowercase());
        let excepted = first.is_some_and(|a| s.firstargs_of(id).contains(&a));
        if !excepted {
            return Err(Denied::Command);
        }
    }
    if !s.allkeys && def.takes_keys() {
        match def.keys_fn {
            Some(keys) => {
                for k in keys(args) {
                    keys_allowed(s, args, k.flags, std::iter::once(k.pos))?;
                }
            }
            None => {
                // One index + range spec: its positions inline.
                let simple = match def.key_specs {
                    [k] => k.index_range(args.len()).map(|p| (k.flags, p)),
                    _ => None,
                };
                match simple {
                    Some((flags, positions)) => keys_allowed(s, args, flags, positions)?,
                    None => try_for_each_spec_range(def.key_specs, args, |flags, positions| {
                        keys_allowed(s, args, flags, positions)
                    })?,
                }
            }
        }
    }
    if !s.allchannels && def.channels != Channels::None {
        for i in 1..args.len() {
            if def.channels == Channels::Publish && i > 1 {
                break;
            }
            let ch = args.get(i);
            let ok = if def.channels == Channels::Patterns {
                // A pattern subscription needs that very pattern allowed.
                s.channels.iter().any(|p| p.as_slice() == ch)
            } else {
                s.channels.iter().any(|p| crate::util::glob_match(p, ch, false))
            };
            if !ok {
                return Err(Denied::Channel(i));
            }
        }
    }
    Ok(())
}

/// Are the keys at `positions`, all of one key spec's `flags`, allowed?
/// The access they need is the spec's, so it is decided once.
#[inline]
fn keys_allowed(
    s: &Selector,
    args: &Args,
    flags: KeyFlags,
    positions: impl Iterator<Item = usize>,
) -> Result<(), Denied> {
    // Shard channels are named in key specs but are not keys.
    if flags & NOT_KEY != 0 {
        return Ok(());
    }
    let need = access_needed(flags);
    for pos in positions {
        if !s.keys.allows(args.get(pos), need) {
            return Err(Denied::Key(pos));
        }
    }
    Ok(())
}

/// The permissions (`PERM_R`, `PERM_W`) a key of a spec with `flags` needs.
#[inline(always)]
fn access_needed(flags: KeyFlags) -> u8 {
    let mut need = 0;
    if flags & ACCESS != 0 {
        need |= PERM_R;
    }
    if flags & (INSERT | DELETE | UPDATE) != 0 {
        need |= PERM_W;
    }
    need
}

/// Is `u` still allowed the channel `ch` it is subscribed to (a pattern
/// subscription when `pattern`)? Used to drop subscribers whose rights
/// were revoked.
pub fn channel_allowed(u: &User, ch: &[u8], pattern: bool) -> bool {
    std::iter::once(&u.root).chain(u.selectors.iter()).any(|s| {
        s.allchannels
            || s.channels
                .iter()
                .any(|p| if pattern { p.as_slice() == ch } else { crate::util::glob_match(p, ch, false) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{lookup_args, OwnedArgs};

    fn run(u: &User, line: &str) -> Result<(), Denied> {
        let parts: Vec<&str> = line.split(' ').collect();
        let a = OwnedArgs::from_slices(&parts);
        let args = a.args();
        let (id, def) = lookup_args(&args).ok().expect("known command");
        check(u, id, def, &args)
    }

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("u");
        for r in rules {
            u.apply(r.as_bytes()).expect("rule");
        }
        u
    }

    #[test]
    fn commands_categories_and_subcommands() {
        let u = user(&["+@read", "allkeys", "+config|get", "+select|0"]);
        assert_eq!(run(&u, "GET k"), Ok(()));
        assert_eq!(run(&u, "SET k v"), Err(Denied::Command));
        assert_eq!(run(&u, "CONFIG GET x"), Ok(()));
        assert_eq!(run(&u, "CONFIG SET a b"), Err(Denied::Command));
        assert_eq!(run(&u, "SELECT 0"), Ok(()));
        assert_eq!(run(&u, "SELECT 1"), Err(Denied::Command));
        assert_eq!(run(&u, "AUTH a b"), Ok(()), "AUTH is always allowed");
        let u = user(&["+@all", "-@dangerous", "allkeys"]);
        assert_eq!(run(&u, "FLUSHALL"), Err(Denied::Command));
        assert_eq!(run(&u, "SET k v"), Ok(()));
    }

    #[test]
    fn keys_by_read_and_write_access() {
        let u = user(&["+@all", "~rw*", "%R~r*", "%W~w*"]);
        assert_eq!(run(&u, "GET r1"), Ok(()));
        assert_eq!(run(&u, "SET r1 v"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "SET w1 v"), Ok(()));
        assert_eq!(run(&u, "GET w1"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "EXISTS w1"), Ok(()), "EXISTS reads no data: any permission");
        assert_eq!(run(&u, "DEL w1"), Ok(()));
        assert_eq!(run(&u, "COPY r1 w1"), Ok(()));
        assert_eq!(run(&u, "COPY w1 r1"), Err(Denied::Key(1)));
        assert_eq!(run(&u, "MSET w1 a x b"), Err(Denied::Key(3)));
        assert_eq!(run(&u, "LMPOP 2 rw1 r1 LEFT"), Err(Denied::Key(3)));
        assert_eq!(run(&u, "GET zz"), Err(Denied::Key(1)));
    }

    #[test]
    fn channels_and_patterns() {
        let u = user(&["+@all", "allkeys", "&news.*"]);
        assert_eq!(run(&u, "PUBLISH news.a m"), Ok(()));
        assert_eq!(run(&u, "PUBLISH other m"), Err(Denied::Channel(1)));
        assert_eq!(run(&u, "SUBSCRIBE news.a other"), Err(Denied::Channel(2)));
        assert_eq!(run(&u, "PSUBSCRIBE news.*"), Ok(()));
        assert_eq!(run(&u, "PSUBSCRIBE news.a*"), Err(Denied::Channel(1)), "patterns match literally");
        assert_eq!(run(&u, "UNSUBSCRIBE other"), Ok(()));
        assert!(channel_allowed(&u, b"news.x", false) && !channel_allowed(&u, b"news.x*", true));
    }

    #[test]
    fn selectors_and_the_reported_reason() {
        let u = user(&["+get", "~a*", "(+set ~b*)"]);
        assert_eq!(run(&u, "GET a1"), Ok(()));
        assert_eq!(run(&u, "SET b1 v"), Ok(()));
        assert_eq!(run(&u, "SET a1 v"), Err(Denied::Key(1)), "a key refusal beats a command refusal");
        assert_eq!(run(&u, "DEL a1"), Err(Denied::Command));
        let d = Denied::Command;
        let (_, def) = crate::cmd::table::by_full_name(b"config|set").expect("row");
        assert_eq!(d.error(def), "NOPERM this user has no permissions to run the 'config|set' command");
    }

    #[test]
    fn the_one_key_shortcut_agrees_with_the_general_check() {
        // Every row, with arguments whose keys start with each pattern's
        // letter or not, for users of several shapes: wherever the
        // shortcut decides, the general walk decides the same.
        let users = [
            user(&["+@all", "~a*", "%R~r*", "%W~w*", "&ch*"]),
            user(&["+@read", "+@string", "-@dangerous", "~app:*", "~k?y"]),
            user(&["+@all", "allkeys", "resetchannels"]),
            user(&["+@write", "%W~*", "allchannels"]),
            user(&["-@all", "+get", "+set", "~x"]),
        ];
        let words = ["a1", "r1", "w1", "x", "zz", "app:1", "key", "ch1", "1", "0"];
        let mut decided = 0;
        for (id, def) in crate::cmd::table::all().iter().enumerate() {
            for n in 1..5 {
                for w in 0..words.len() {
                    let mut parts: Vec<&str> = def.name.split('|').collect();
                    for j in 0..n {
                        parts.push(words[(w + j) % words.len()]);
                    }
                    let a = OwnedArgs::from_slices(&parts);
                    let args = a.args();
                    for u in &users {
                        if let Some(fast) = one_key_or_none(&u.root, id, &args) {
                            decided += 1;
                            assert_eq!(fast, check_selector(&u.root, id, def, &args), "{} {parts:?}", def.name);
                        }
                    }
                }
            }
        }
        assert!(decided > 1000, "the shortcut decided only {decided} cases");
    }
}

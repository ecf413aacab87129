//! Logging writes whose keys lie in several hash slots.
//!
//! A replica with another shard count routes each logged command by its
//! key (`repl::route`); only keys of one slot are sure to share a shard
//! there. So a write over several slots is logged as what it left behind:
//! the final state of every key it may have written (`DEL`, then the
//! value's commands), one slot per command. Writes flagged
//! `SPLITS_BY_KEY` (MSET, DEL, UNLINK) stay as sent: the replica cuts them
//! by key.

use super::flags::SPLITS_BY_KEY;
use super::keyspec::{DELETE, INSERT, OW, RM, RW, UPDATE};
use super::{find, key_positions, key_refs, Args, CommandDef, Ctx};
use crate::persist::{rebuild, record};
use crate::util::key_slot;

/// Key flags of a key the command may change.
const WRITES: u16 = RW | OW | RM | INSERT | UPDATE | DELETE;

/// Whether a command with these arguments touches keys of several slots.
/// Runs after every logged write: a one-key command hashes nothing.
#[inline]
pub fn spans_slots(def: &CommandDef, args: &Args) -> bool {
    let mut keys = key_positions(def, args);
    let (Some(first), Some(second)) = (keys.next(), keys.next()) else { return false };
    let slot = key_slot(args.get(first));
    key_slot(args.get(second)) != slot || keys.any(|k| key_slot(args.get(k)) != slot)
}

/// Whether a write just run must be logged by state: keys in several
/// slots and not cut by key on a replica.
#[inline]
pub fn logs_by_state(def: &CommandDef, args: &Args) -> bool {
    !def.has(SPLITS_BY_KEY) && spans_slots(def, args)
}

/// Replace the multi-slot commands logged since `mark` by the keys' final
/// states. Single-slot entries stay: expiry `DEL`s of keys it read, or
/// what the command logged in its own place (LMPOP's pop); if that was
/// all, nothing more is logged.
pub fn log_states(ctx: &mut Ctx, def: &CommandDef, args: &Args, mark: (usize, usize)) {
    if !ctx.ks.effects.retain_since(mark, |cmd| !logged_spans_slots(cmd)) {
        return;
    }
    let now = ctx.now;
    let mut written: Vec<(usize, &[u8])> =
        key_refs(def, args).iter().filter(|k| k.flags & WRITES != 0).map(|k| (ctx.db, args.get(k.pos))).collect();
    // COPY ... DB n writes its target in another database.
    if let Some((db, key)) = def.other_db_key.and_then(|f| f(args)) {
        written.push((db, key));
    }
    written.sort_unstable();
    written.dedup();
    for (db, key) in written {
        let ks = &mut *ctx.ks;
        let state = ks.peek(db, key, now).map(|e| (e.value.deep_clone(), e.expire()));
        ks.effects.push_encoded(db, |out| {
            rebuild::state_commands(out, key, state.as_ref().map(|(v, exp)| (v, *exp)));
        });
    }
}

/// A logged command (RESP bytes) that touches several slots.
fn logged_spans_slots(cmd: &[u8]) -> bool {
    let mut ranges = Vec::new();
    if record::parse_command_ranges(cmd, &mut ranges).is_none() || ranges.is_empty() {
        return false;
    }
    let args = Args::new(cmd, &ranges);
    find(&args).is_some_and(|(_, def)| logs_by_state(def, &args))
}

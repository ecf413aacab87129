//! The ACL check of a script's `redis.call` / `redis.pcall`: the calling
//! user's command, key and channel permissions, by the same check the
//! dispatch uses (`acl::check`), with Redis's error texts for scripts.
//!
//! The engine only records what it refused; the shard, which knows the
//! client, adds those to ACL LOG (context `lua`) once the script is done.

use crate::acl::check::{check, Denied};
use crate::acl::user::User;
use crate::cmd::{Args, CommandDef};
use std::sync::Arc;

/// The user a script runs for (set only for a restricted user: the
/// default user's scripts cost nothing), and what it was refused.
pub struct ScriptAcl {
    pub user: Arc<User>,
    /// (reason, object) of each refusal, oldest first.
    pub denied: Vec<(Denied, String)>,
}

impl ScriptAcl {
    pub fn new(user: Arc<User>) -> Self {
        ScriptAcl { user, denied: Vec::new() }
    }

    /// May the script's user run row `id` with `args`? Err: the error
    /// `redis.call` raises (Redis 7.0's text).
    pub fn check(&mut self, (id, def): (usize, &CommandDef), args: &Args) -> Result<(), &'static str> {
        let Err(d) = check(&self.user, id, def, args) else { return Ok(()) };
        let object = match d {
            Denied::Command => def.name.to_string(),
            Denied::Key(i) | Denied::Channel(i) if i < args.len() => String::from_utf8_lossy(args.get(i)).into_owned(),
            _ => String::new(),
        };
        self.denied.push((d, object));
        Err(match d {
            Denied::Command => "ERR The user executing the script can't run this command or subcommand",
            Denied::Key(_) => {
                "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "ERR The user executing the script can't publish to the channel mentioned in the command",
        })
    }
}

//! The ACL gate on the connection's shard, and what a shard does when the
//! user table changes.
//!
//! A client's command is checked once, where the client is connected,
//! before it is queued, routed, forwarded, squashed or made a cross-shard
//! transaction (Redis checks in processCommand, after authentication and
//! before anything else may refuse it), and again at EXEC. Roads that run
//! a command for a client all start here, so none is unchecked; replay
//! and transactions' inner commands run as already admitted.
//!
//! A new table (`refresh_acl`) re-points each connection at its user's
//! new version, and closes the clients of a user deleted or disabled, and
//! subscribers whose channels or patterns are no longer allowed (as Redis
//! 7 kills them).

use super::core::{Conn, Shard, Wait};
use super::ConnRef;
use crate::acl::check::{channel_allowed, check, Denied};
use crate::acl::log::Entry;
use crate::acl::user::User;
use crate::acl::Users;
use crate::cmd::{Args, CommandDef};
use crate::script::acl::ScriptAcl;
use std::sync::Arc;

/// What becomes of a connection under a new table.
enum Verdict {
    Keep,
    Repoint(Arc<User>),
    Close,
}

fn verdict(users: &Users, c: &Conn) -> Verdict {
    let Some(u) = users.get(&c.user.name) else {
        // Never logged in: it is still `default`'s, whatever that is now.
        return if c.authed { Verdict::Close } else { Verdict::Repoint(users.default_user()) };
    };
    if c.authed && !u.enabled {
        return Verdict::Close;
    }
    if c.in_pubsub() && !u.unrestricted() {
        let revoked = c.subs.iter().any(|ch| !channel_allowed(u, ch, false))
            || c.psubs.iter().any(|p| !channel_allowed(u, p, true));
        if revoked {
            return Verdict::Close;
        }
    }
    if Arc::ptr_eq(u, &c.user) {
        Verdict::Keep
    } else {
        Verdict::Repoint(u.clone())
    }
}

/// `Shard::log_denied` for `conn` on shard `at.1` at `at.0` (ms), also
/// from where no `Shard` is at hand (a busy script's hook, `busy_io`).
pub fn log_denied(
    acl: &crate::acl::AclShared,
    at: (i64, usize),
    conn: &Conn,
    d: Denied,
    def: &CommandDef,
    args: &Args,
    context: &'static str,
) {
    let object = match d {
        Denied::Command => def.name.to_string(),
        Denied::Key(i) | Denied::Channel(i) if i < args.len() => String::from_utf8_lossy(args.get(i)).into_owned(),
        _ => String::new(),
    };
    log_acl(acl, at, conn, d.reason(), context, object, conn.user.name.clone());
}

/// `Shard::log_acl`, as `log_denied`.
pub fn log_acl(
    acl: &crate::acl::AclShared,
    (now, shard): (i64, usize),
    conn: &Conn,
    reason: &'static str,
    context: &'static str,
    object: String,
    username: String,
) {
    acl.count(reason);
    let client_info = crate::cmd::server::client::client_line(conn, now, shard).trim_end().to_string();
    let e = Entry::new(reason, context, object, username, client_info);
    acl.add_log(e, crate::util::now_ms());
}

impl Shard {
    /// May `conn` run row `id` with `args`? If not: the refusal is logged
    /// (`multi`: while queueing) and counted, and its error returned.
    pub fn acl_gate(&self, conn: &Conn, (id, def): (usize, &CommandDef), args: &Args, multi: bool) -> Option<String> {
        match check(&conn.user, id, def, args) {
            Ok(()) => None,
            Err(d) => {
                self.log_denied(conn, d, def, args, if multi { "multi" } else { "toplevel" });
                Some(d.error(def))
            }
        }
    }

    /// Log and count a refused command.
    pub fn log_denied(&self, conn: &Conn, d: Denied, def: &CommandDef, args: &Args, context: &'static str) {
        log_denied(&self.shared.acl, (self.now, self.id), conn, d, def, args, context);
    }

    /// Add an ACL LOG entry (and count it for INFO).
    pub fn log_acl(&self, conn: &Conn, reason: &'static str, context: &'static str, object: String, username: String) {
        log_acl(&self.shared.acl, (self.now, self.id), conn, reason, context, object, username);
    }

    /// EXEC reached a queued command its user may no longer run: logged
    /// (context multi) as the client's at `r`; the error it answers.
    pub fn exec_refused(&self, r: ConnRef, d: Denied, def: &CommandDef, args: &Args) -> String {
        match self.conns.get(r.idx as usize).and_then(|s| s.as_deref()).filter(|c| c.gen == r.gen) {
            Some(c) => self.log_denied(c, d, def, args, "multi"),
            None => self.shared.acl.count(d.reason()),
        }
        d.exec_error()
    }

    /// Before a script runs for a client: its `redis.call`s are checked
    /// against `user` (None: an unrestricted user, nothing to check).
    pub fn script_acl_begin(&mut self, user: Option<Arc<User>>) {
        self.scripts.acl = user.map(ScriptAcl::new);
    }

    /// After the script: what its calls were refused goes to ACL LOG with
    /// context `lua`, as `conn`'s.
    pub fn script_acl_end(&mut self, conn: &Conn) {
        if let Some(acl) = self.scripts.acl.take() {
            self.log_script_denials(Some(conn), acl);
        }
    }

    /// `script_acl_end` for a client waiting on a transaction (`r`; None:
    /// connected to another shard).
    pub fn script_acl_end_for(&mut self, r: Option<ConnRef>) {
        let Some(acl) = self.scripts.acl.take() else { return };
        let conn = r.and_then(|r| self.conns.get(r.idx as usize).and_then(|s| s.as_deref()).filter(|c| c.gen == r.gen));
        self.log_script_denials(conn, acl);
    }

    /// (None: the client is gone meanwhile.)
    fn log_script_denials(&self, conn: Option<&Conn>, acl: ScriptAcl) {
        for (d, object) in acl.denied {
            let user = acl.user.name.clone();
            match conn {
                Some(c) => self.log_acl(c, d.reason(), "lua", object, user),
                None => {
                    self.shared.acl.count(d.reason());
                    let e = Entry::new(d.reason(), "lua", object, user, String::new());
                    self.shared.acl.add_log(e, crate::util::now_ms());
                }
            }
        }
    }

    /// Take the newest user table if it moved on: connections follow
    /// their user's new rules, and those that lost their right to be
    /// connected or subscribed are closed.
    pub fn refresh_acl(&mut self) {
        let snap = self.shared.acl.snapshot();
        if snap.version <= self.acl.version {
            return;
        }
        self.acl = snap;
        let mut close = Vec::new();
        for c in self.conns.iter_mut().flatten().filter(|c| !c.closing) {
            match verdict(&self.acl, c) {
                Verdict::Keep => {}
                Verdict::Repoint(u) => {
                    c.acl_free = u.unrestricted();
                    c.user = u;
                }
                Verdict::Close => close.push(c.idx),
            }
        }
        for idx in close {
            self.close_for_acl(idx);
        }
    }

    /// The connection running an ACL change (out of the table while it
    /// runs) follows the new table too: closed once its reply is sent if
    /// it lost its user.
    pub fn refresh_acl_for(&mut self, conn: &mut Conn) {
        match verdict(&self.acl, conn) {
            Verdict::Keep => {}
            Verdict::Repoint(u) => {
                conn.acl_free = u.unrestricted();
                conn.user = u;
            }
            Verdict::Close => conn.close_after_flush = true,
        }
    }

    fn close_for_acl(&mut self, idx: u32) {
        let Some(Some(c)) = self.conns.get_mut(idx as usize) else { return };
        crate::log(&format!(
            "shard {}: closing client id={} addr={} user={}: its ACL user was removed, disabled or lost a channel",
            self.id, c.id, c.addr, c.user.name
        ));
        if matches!(c.wait, Wait::None | Wait::Blocked(_)) {
            self.close(idx);
        } else {
            // Waiting for another shard: finish that reply, then close.
            c.close_after_flush = true;
        }
    }
}

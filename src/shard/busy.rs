//! What the core does for a busy script's hook (`script::busy_io`): lend
//! it the connection table for a script call, and take back the clients
//! it accepted and served once the script ended.

use super::core::{Conn, Shard};
use crate::script::busy_io::{Host, Lend};

impl Shard {
    /// Lend the hook this shard's connections and users for the script
    /// about to run (None: no hook). Nothing may touch `conns` until the
    /// guard is dropped: the script's own commands reach only the keyspace.
    #[inline]
    pub fn lend_busy_io(&mut self) -> Option<Lend> {
        let io = self.scripts.busy_io.clone()?;
        let released = self.release_gate();
        let host = Host::new(&mut self.conns, &self.acl, released, self.limits, self.config.protected_mode);
        Some(io.lend(host))
    }

    /// A client the hook accepted while busy, now at `idx`: what it sent
    /// and was not answered, its login (its user as the table has it now),
    /// HELLO's protocol and name, and its unsent output. True if it has input to run.
    pub fn adopt_busy_client(&mut self, idx: u32, gen: u32, pre: Box<Conn>) -> bool {
        let user = if pre.authed { self.acl.get(&pre.user.name).filter(|u| u.enabled).cloned() } else { None };
        let Some(c) = self.conn_mut(idx, gen) else { return false };
        c.id = pre.id;
        c.created_ms = pre.created_ms;
        c.rbuf.extend_from_slice(&pre.rbuf[pre.rpos..]);
        if let Some(u) = user {
            c.acl_free = u.unrestricted();
            c.user = u;
            c.authed = true;
        }
        c.resp3 = pre.resp3;
        c.name = pre.name;
        c.close_after_flush = pre.close_after_flush;
        let has_out = !pre.out.is_empty();
        c.out = pre.out;
        let run = !c.rbuf.is_empty() || c.close_after_flush;
        if has_out {
            // Errors and OKs: nothing they reveal waits for the AOF.
            self.mark_dirty_unstamped(idx);
        }
        run
    }

    /// The hook served connection `idx` while busy: send what it left and
    /// run what it left unanswered.
    pub fn busy_served(&mut self, idx: u32, gen: u32) {
        let Some(c) = self.conn_mut(idx, gen).filter(|c| !c.closing) else { return };
        if !c.out.is_empty() {
            self.mark_dirty_unstamped(idx);
        }
        self.on_input(idx);
    }
}

//! Blocked clients (BLPOP, BLMOVE, BZPOPMIN, ...).
//!
//! A blocked client waits at the shard that owns its keys, not at its own:
//! - Its own (home) shard parses the timeout, sends the command to the
//!   owner (`BlockCmd`, a message to itself when it owns the keys) and
//!   keeps the deadline.
//! - The owner runs it once; if there is nothing to serve, it queues the
//!   client on each key, in arrival order. Any write that touches one of
//!   those keys (from any connection, forwarded command, transaction or
//!   replayed EXEC) queues the key as ready; after the command (or the
//!   whole EXEC / transaction) the owner retries the waiters of each ready
//!   key first-come first-served, exactly as Redis does, and sends the
//!   served reply home (`BlockedReply`).
//! - At the deadline the home asks the owner to cancel (`CancelBlock`); the
//!   owner answers with the timeout reply unless it served the client
//!   first (messages between two shards stay in order, so the home sees
//!   exactly one of the two). A client that disconnects cancels silently.
//!
//! Commands whose keys span shards (e.g. BLMOVE to a list on another
//! shard) cannot be served by one owner: the home registers a watch at
//! each owner (`BlockWatch`), tries the command as a cross-shard
//! transaction, and when an owner reports a change (`BlockReady`) tries
//! again, keeping the original deadline. Those are served atomically but
//! only roughly in arrival order.

use super::core::{Conn, Shard, Wait};
use super::{ConnRef, DbKey, Msg};
use crate::cmd::admission::Road;
use crate::cmd::blocking::WakeError;
use crate::cmd::{self, CommandDef, OwnedArgs};
use crate::protocol::parse::{parse_request, ParseOutcome};
use crate::protocol::reply::Reply;
use std::collections::{HashMap, VecDeque};

/// What the home shard keeps for a blocked connection.
pub struct BlockWait {
    pub block_id: u64,
    /// Unix ms; 0 = no timeout.
    pub deadline: i64,
    pub owners: Vec<usize>,
    /// Keys span shards: watches + transaction retries.
    pub cross: bool,
    /// The command, to try again (cross-shard only).
    pub cmd: Option<OwnedArgs>,
    /// A cancel was sent; the owner's answer is awaited.
    pub cancelling: bool,
    /// A watched key changed while the transaction that tries the command
    /// was still in flight: when it finds nothing, try again at once (the
    /// watch that fired is spent, so waiting would miss the change).
    pub woken: bool,
}

struct Waiter {
    to: ConnRef,
    db: u8,
    resp3: bool,
    /// The command as RESP, run again on every wake-up.
    cmd: Vec<u8>,
    keys: Vec<(u8, Box<[u8]>)>,
    timeout_reply: Vec<u8>,
    /// Only report changes (cross-shard commands).
    notify_only: bool,
}

/// The owner side: who waits on which key, in arrival order.
#[derive(Default)]
pub struct Registry {
    by_key: HashMap<(u8, Box<[u8]>), VecDeque<u64>>,
    waiters: HashMap<u64, Waiter>,
    /// Keyspace-side deadlines at home: (deadline, conn idx, gen, block id).
    pub deadlines: std::collections::BTreeSet<(i64, u32, u32, u64)>,
    /// Guards against serving re-entering itself.
    serving: bool,
}

impl Registry {
    /// Clients waiting here to be served (not mere watches).
    pub fn blocked_clients(&self) -> usize {
        self.waiters.values().filter(|w| !w.notify_only).count()
    }
}

/// The reply a blocking list or sorted-set command gives on timeout: a
/// null array for all of them, BLMOVE included (as Redis 7.0; inside MULTI
/// BLMOVE's null is a null bulk instead, which its handler gives).
pub fn timeout_reply(resp3: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Reply::new(&mut out, resp3).null_array();
    out
}

fn encode(args: &cmd::Args) -> Vec<u8> {
    let mut out = Vec::new();
    crate::keyspace::effects::encode_array(&mut out, args.iter(), args.len());
    out
}

impl Shard {
    /// Home: a blocking command outside MULTI. `deadline` carries the
    /// original one when a cross-shard command tries again.
    pub fn start_block(&mut self, conn: &mut Conn, def: &'static CommandDef, args: &cmd::Args, deadline: Option<i64>) {
        let deadline = match deadline {
            Some(d) => d,
            None => match def.block.map_or(Ok(0), |b| b.timeout_ms(args)) {
                Ok(0) => 0,
                Ok(ms) => crate::util::now_ms().saturating_add(ms),
                Err(e) => return Reply::new(&mut conn.out, conn.resp3).error(e),
            },
        };
        let owners = super::router::key_shards(&self.shared.slots, def, args);
        let block_id = self.shared.next_block_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let from = conn.conn_ref(self.id);
        let cross = owners.len() > 1;
        let mut bw =
            BlockWait { block_id, deadline, owners: owners.clone(), cross, cmd: None, cancelling: false, woken: false };
        if !cross {
            let owner = owners.first().copied().unwrap_or(self.id);
            bw.owners = vec![owner];
            let msg = Msg::BlockCmd { block_id, from, db: conn.db as u8, resp3: conn.resp3, cmd: encode(args) };
            self.send(owner, msg);
            conn.wait = Wait::Blocked(Box::new(bw));
        } else {
            // Watch first: messages to each owner stay in order, so no change
            // after the attempt can be missed.
            for &s in &owners {
                let keys: Vec<DbKey> = cmd::key_positions(def, args)
                    .map(|i| args.get(i))
                    .filter(|k| self.shared.slots.shard_of(k) == s)
                    .map(|k| (conn.db as u8, k.to_vec()))
                    .collect();
                self.send(s, Msg::BlockWatch { block_id, to: from, keys });
            }
            let owned = OwnedArgs::from_slices(&args.iter().collect::<Vec<_>>());
            bw.cmd = Some(owned.clone());
            self.start_blocking_txn(conn, owned, owners, Box::new(bw));
        }
        if deadline != 0 {
            self.blocked.deadlines.insert((deadline, conn.idx, conn.gen, block_id));
        }
    }

    /// A waiter's command (RESP we encoded): its bytes, argument ranges
    /// and table row.
    fn parse_stored(&self, cmd: &[u8]) -> Option<(Vec<u8>, Vec<std::ops::Range<usize>>, usize, &'static CommandDef)> {
        let mut buf = cmd.to_vec();
        let mut ranges = Vec::new();
        let ParseOutcome::Done { .. } = parse_request(&mut buf, &self.limits, &mut ranges) else { return None };
        let (id, def) = cmd::find(&cmd::Args::new(&buf, &ranges))?;
        Some((buf, ranges, id, def))
    }

    /// Owner: run a blocking command; serve it now or queue the client.
    pub fn on_block_cmd(&mut self, block_id: u64, from: ConnRef, db: u8, resp3: bool, cmd: Vec<u8>) {
        let Some((buf, ranges, id, def)) = self.parse_stored(&cmd) else { return };
        let args = cmd::Args::new(&buf, &ranges);
        let keys: Vec<(u8, Box<[u8]>)> = cmd::key_positions(def, &args).map(|i| (db, args.get(i).into())).collect();
        self.ks.would_block = false;
        let mut out = Vec::new();
        self.call(&mut out, (resp3, db as usize), (id, def), &args, Road::Client);
        if std::mem::take(&mut self.ks.would_block) {
            let cmd = match self.ks.block_rewrite.take() {
                Some(parts) => {
                    let mut b = Vec::new();
                    crate::protocol::reply::encode_command(&mut b, &parts);
                    b
                }
                None => cmd,
            };
            let w = Waiter { to: from, db, resp3, cmd, keys, timeout_reply: timeout_reply(resp3), notify_only: false };
            self.add_waiter(block_id, w);
        } else {
            self.send(from.shard, Msg::BlockedReply { to: from, block_id, out });
        }
    }

    /// Owner: watch keys for a cross-shard blocked command.
    pub fn on_block_watch(&mut self, block_id: u64, to: ConnRef, keys: Vec<DbKey>) {
        let db = keys.first().map_or(0, |k| k.0);
        let keys = keys.into_iter().map(|(d, k)| (d, k.into_boxed_slice())).collect();
        let w = Waiter { to, db, resp3: false, cmd: Vec::new(), keys, timeout_reply: Vec::new(), notify_only: true };
        self.add_waiter(block_id, w);
    }

    fn add_waiter(&mut self, block_id: u64, w: Waiter) {
        for k in &w.keys {
            self.blocked.by_key.entry(k.clone()).or_default().push_back(block_id);
            self.ks.blocking_keys.insert(k.1.clone());
        }
        self.blocked.waiters.insert(block_id, w);
    }

    fn remove_waiter(&mut self, block_id: u64) -> Option<Waiter> {
        let w = self.blocked.waiters.remove(&block_id)?;
        for k in &w.keys {
            if let Some(q) = self.blocked.by_key.get_mut(k) {
                q.retain(|&b| b != block_id);
                if q.is_empty() {
                    self.blocked.by_key.remove(k);
                    let still = (0..crate::keyspace::NUM_DBS as u8)
                        .any(|d| self.blocked.by_key.contains_key(&(d, k.1.clone())));
                    if !still {
                        self.ks.blocking_keys.remove(&k.1);
                    }
                }
            }
        }
        Some(w)
    }

    /// Owner: the home gave up (timeout) or the client left.
    pub fn on_cancel_block(&mut self, block_id: u64, reply: bool) {
        if let Some(w) = self.remove_waiter(block_id) {
            if reply && !w.notify_only {
                self.send(w.to.shard, Msg::BlockedReply { to: w.to, block_id, out: w.timeout_reply });
            }
        }
    }

    /// Owner: retry the clients waiting on keys that changed, first come
    /// first served. Runs after a command, an EXEC or a transaction, never
    /// in the middle of one.
    pub fn serve_ready(&mut self) {
        if self.blocked.serving || self.txn.locked() || self.aof_group > 0 {
            return;
        }
        self.blocked.serving = true;
        // Keys whose first waiter needs a key a transaction holds: served
        // when it unlocks (`on_push_unlock` serves again).
        let mut later = Vec::new();
        'keys: while let Some(key) = self.ks.ready_keys.pop() {
            let Some(q) = self.blocked.by_key.get(&key) else { continue };
            let ids: Vec<u64> = q.iter().copied().collect();
            for block_id in ids {
                let Some(w) = self.blocked.waiters.get(&block_id) else { continue };
                if w.notify_only {
                    let to = w.to;
                    self.remove_waiter(block_id);
                    self.send(to.shard, Msg::BlockReady { to, block_id });
                    continue;
                }
                let (db, resp3) = (w.db, w.resp3);
                let Some((buf, ranges, id, def)) = self.parse_stored(&w.cmd) else { continue };
                let args = cmd::Args::new(&buf, &ranges);
                if !self.txn.clear() && self.txn.keys_locked(&super::txn::cmd_need(def, &args, db as usize)) {
                    later.push(key);
                    continue 'keys;
                }
                self.ks.would_block = false;
                let mut out = Vec::new();
                // Admitted when it first tried, as Redis serves a blocked client.
                self.call(&mut out, (resp3, db as usize), (id, def), &args, Road::Admitted);
                let Some(spec) = def.block else { continue };
                if std::mem::take(&mut self.ks.would_block) {
                    // Nothing for this client: for a list or sorted set the
                    // key is empty, so nothing for those after it either;
                    // stream readers each wait for their own ids or group.
                    if spec.independent {
                        continue;
                    }
                    break;
                }
                if out.first() == Some(&b'-') {
                    match spec.on_error {
                        // Its stream or group is gone: answered with an
                        // error instead of waiting forever, as Redis 7.
                        WakeError::StreamGone => out = self.xreadgroup_gone(block_id),
                        WakeError::Reply => {}
                        // A key of the wrong type keeps BLPOP/BZPOP* clients
                        // waiting (Redis serves only matching types).
                        WakeError::KeepWaiting => continue,
                    }
                }
                if let Some(w) = self.remove_waiter(block_id) {
                    self.send(w.to.shard, Msg::BlockedReply { to: w.to, block_id, out });
                }
            }
        }
        self.ks.ready_keys.extend(later);
        self.blocked.serving = false;
    }

    /// The error for a blocked XREADGROUP whose retry failed: one of its
    /// streams is no longer a stream, or its group was destroyed.
    fn xreadgroup_gone(&mut self, block_id: u64) -> Vec<u8> {
        let now = self.now;
        let keys = self.blocked.waiters.get(&block_id).map(|w| w.keys.clone()).unwrap_or_default();
        let stream_gone = keys.iter().any(|(db, k)| {
            !self
                .ks
                .peek(*db as usize, k, now)
                .is_some_and(|e| matches!(e.value, crate::keyspace::value::Value::Stream(_)))
        });
        if stream_gone {
            b"-UNBLOCKED the stream key no longer exists\r\n".to_vec()
        } else {
            b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n".to_vec()
        }
    }

    /// Home: the owner's answer (served, or the timeout reply).
    pub fn on_blocked_reply(&mut self, to: ConnRef, block_id: u64, out: Vec<u8>) {
        let Some(c) = self.conn_mut(to.idx, to.gen) else { return };
        let deadline = match &c.wait {
            Wait::Blocked(b) if b.block_id == block_id => b.deadline,
            _ => return,
        };
        c.out.extend_from_slice(&out);
        c.wait = Wait::None;
        self.blocked.deadlines.remove(&(deadline, to.idx, to.gen, block_id));
        self.mark_dirty(to.idx);
        self.runnable.push_back(to.idx);
    }

    /// Home: a key of a cross-shard blocked command changed: try again.
    pub fn on_block_ready(&mut self, to: ConnRef, block_id: u64) {
        let Some(slot) = self.conns.get_mut(to.idx as usize) else { return };
        let Some(mut conn) = slot.take() else { return };
        if let (true, Wait::Txn(txid)) = (conn.gen == to.gen, &conn.wait) {
            // An attempt is in flight: it may have looked before the change.
            self.txn.note_woken(*txid, block_id);
        }
        let ours =
            conn.gen == to.gen && matches!(&conn.wait, Wait::Blocked(b) if b.block_id == block_id && !b.cancelling);
        if ours {
            if let Wait::Blocked(b) = std::mem::replace(&mut conn.wait, Wait::None) {
                self.blocked.deadlines.remove(&(b.deadline, to.idx, to.gen, block_id));
                self.drop_watches(b.block_id, &b.owners);
                if let Some(cmd) = &b.cmd {
                    let args = cmd.args();
                    if let Some((_, def)) = cmd::find(&args) {
                        self.start_block(&mut conn, def, &args, Some(b.deadline));
                    }
                }
            }
            if conn.wait.is_none() {
                self.runnable.push_back(to.idx);
            }
        }
        let has_out = !conn.out.is_empty();
        self.conns[to.idx as usize] = Some(conn);
        if has_out {
            self.mark_dirty(to.idx);
        }
    }

    /// Stop waiting at every owner, silently.
    pub(super) fn drop_watches(&mut self, block_id: u64, owners: &[usize]) {
        for &s in owners {
            self.send(s, Msg::CancelBlock { block_id, reply: false });
        }
    }

    /// Home, every loop turn: time out blocked clients whose deadline passed.
    pub fn expire_blocks(&mut self) {
        let now = crate::util::now_ms();
        while let Some(&first) = self.blocked.deadlines.first() {
            let (deadline, idx, gen, block_id) = first;
            if deadline > now {
                break;
            }
            self.blocked.deadlines.remove(&first);
            let Some(c) = self.conn_mut(idx, gen) else { continue };
            let Wait::Blocked(b) = &mut c.wait else { continue };
            if b.block_id != block_id || b.cancelling {
                continue;
            }
            b.cancelling = true;
            if b.cross {
                // Watches never consume anything: answer now, then drop them.
                let reply = timeout_reply(c.resp3);
                c.out.extend_from_slice(&reply);
                let Wait::Blocked(b) = std::mem::replace(&mut c.wait, Wait::None) else { continue };
                self.drop_watches(b.block_id, &b.owners);
                self.mark_dirty(idx);
                self.runnable.push_back(idx);
            } else {
                let owner = b.owners[0];
                self.send(owner, Msg::CancelBlock { block_id, reply: true });
            }
        }
    }

    /// CLIENT UNBLOCK: end the wait of this shard's client `id` if it is
    /// blocked in a blocking command, as if it timed out, or (`error`)
    /// with Redis's UNBLOCKED error. True if it was blocked.
    pub fn unblock_client(&mut self, id: u64, error: bool) -> bool {
        let Some(idx) = self.conns.iter().flatten().find(|c| c.id == id).map(|c| c.idx) else { return false };
        let Some(c) = self.conns.get_mut(idx as usize).and_then(|c| c.as_mut()) else { return false };
        let gen = c.gen;
        let Wait::Blocked(b) = &mut c.wait else { return false };
        if b.cancelling {
            return false;
        }
        b.cancelling = true;
        let (block_id, deadline, cross, owner) = (b.block_id, b.deadline, b.cross, b.owners[0]);
        let err_reply = || {
            let mut out = Vec::new();
            Reply::new(&mut out, false).error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
            out
        };
        if cross {
            let reply = if error { err_reply() } else { timeout_reply(c.resp3) };
            c.out.extend_from_slice(&reply);
            let Wait::Blocked(b) = std::mem::replace(&mut c.wait, Wait::None) else { return false };
            self.blocked.deadlines.remove(&(deadline, idx, gen, block_id));
            self.drop_watches(b.block_id, &b.owners);
            self.mark_dirty(idx);
            self.runnable.push_back(idx);
        } else if error {
            // The owner answers (unless it served the client meanwhile).
            self.send(owner, Msg::UnblockError { block_id, out: err_reply() });
        } else {
            self.send(owner, Msg::CancelBlock { block_id, reply: true });
        }
        true
    }

    /// Owner: CLIENT UNBLOCK ... ERROR for a client waiting here.
    pub fn on_unblock_error(&mut self, block_id: u64, out: Vec<u8>) {
        if let Some(w) = self.remove_waiter(block_id) {
            if !w.notify_only {
                self.send(w.to.shard, Msg::BlockedReply { to: w.to, block_id, out });
            }
        }
    }

    /// Home: how long the loop may sleep before a blocked client times out.
    pub fn next_block_deadline(&self) -> Option<i64> {
        self.blocked.deadlines.first().map(|d| d.0)
    }
}

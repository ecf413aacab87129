//! A replica shard's side of replication: applying the parts of master
//! records its link threads route here (`crate::repl::replica`), on the
//! replication road (no OOM, MISCONF or READONLY refusal: the master
//! admitted them), logging each part to this shard's AOF in one record
//! together with the position it reaches (`REPLPOS`), so data and
//! position are durable together.

use super::core::Shard;
use super::{Msg, ReplPart};
use crate::cmd::admission::Road;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

impl Shard {
    /// Apply part of master shard `m`'s record `lsn` (base-image records
    /// always apply; log records only past this shard's position).
    pub fn on_repl_apply(&mut self, m: u16, (replid, lsn): (&str, u64), base: bool, db: u8, payload: &[u8]) {
        if !base && self.ks.repl_pos.get(&m).is_some_and(|(r, l)| &**r == replid && *l >= lsn) {
            return;
        }
        self.aof_group += 1;
        let mut rp = crate::persist::load::Replayer::on_road(Road::Replica);
        // Applied writes publish their keyspace events as a replica of
        // Redis does; loading a full sync's base image publishes none.
        let flags = self.ks.notify.flags;
        if base {
            self.ks.notify.flags = 0;
        }
        if let Err(at) = rp.apply_payload(&mut self.ks, db as usize, payload) {
            crate::log(&format!(
                "shard {}: replication: malformed command at offset {} of master shard {}'s lsn {}",
                self.id, at, m, lsn
            ));
        }
        self.ks.notify.flags = flags;
        if !base {
            self.note_repl_pos(m, replid, lsn);
        }
        self.aof_group -= 1;
        if self.aof_group == 0 {
            self.log_effects(0, 0);
            self.note_history();
        }
        if !self.ks.ready_keys.is_empty() {
            self.serve_ready();
        }
    }

    /// A master transaction's parts reached this shard (first in `chain`).
    pub fn on_repl_txn(
        &mut self,
        id: u64,
        mut chain: Vec<(usize, Vec<ReplPart>)>,
        mut locked: Vec<(usize, Vec<ReplPart>)>,
        done: Arc<AtomicUsize>,
    ) {
        if chain.is_empty() {
            return;
        }
        let (_, mine) = chain.remove(0);
        let participants = (locked.len() + 1) as u16;
        match chain.first() {
            Some(&(next, _)) => {
                self.txn.lock_for(id);
                locked.push((self.id, mine));
                self.send(next, Msg::ReplTxn { id, chain, locked, done });
            }
            None => {
                self.apply_parts(id, mine, participants);
                done.fetch_add(1, Ordering::Release);
                for (s, parts) in locked {
                    self.send(s, Msg::ReplTxnApply { id, parts, participants, done: done.clone() });
                }
            }
        }
    }

    /// The last participant applied its parts: apply ours and unlock.
    pub fn on_repl_txn_apply(&mut self, id: u64, parts: Vec<ReplPart>, participants: u16) {
        self.apply_parts(id, parts, participants);
        self.on_unlock(id);
    }

    /// Apply a transaction's parts here as one record carrying its txid, so
    /// that recovery keeps it on every participant or on none.
    fn apply_parts(&mut self, id: u64, parts: Vec<ReplPart>, participants: u16) {
        self.aof_group += 1;
        for (m, lsn, replid, db, payload) in parts {
            self.on_repl_apply(m, (&replid, lsn), false, db, &payload);
        }
        self.aof_group -= 1;
        let txid = if participants > 1 { id } else { 0 };
        if self.aof.is_some() && (!self.ks.effects.is_empty() || txid != 0) {
            self.log_effects(txid, participants);
        }
        self.note_history();
    }

    /// Remember which own lsn holds the master's history of this shard
    /// number up to the position just logged (`repl::history`).
    fn note_history(&self) {
        let (Some(w), Some((replid, lsn))) = (&self.aof, self.ks.repl_pos.get(&(self.id as u16))) else { return };
        if &**replid != "?" {
            crate::repl::history::note(self.shared.nshards, self.id, replid, *lsn, w.appended_lsn());
        }
    }

    /// A full sync of master shard `m` starts: remove the keys it owns
    /// (by the master's slot map) and forget the position, in one record,
    /// so a crash during the sync asks for a full sync again.
    pub fn on_repl_reset(&mut self, m: u16, master_shards: u16) {
        let map = super::router::SlotMap::contiguous(master_shards.max(1) as usize);
        self.aof_group += 1;
        // `replica-lazy-flush`: what goes is freed on the lazyfree thread
        // (a whole db at once when every key of it goes, as Redis empties
        // its dbs asynchronously), not on this loop.
        let lazy = self.ks.lazy.replica_flush;
        for db in 0..self.ks.dbs.len() {
            let keys: Vec<Box<[u8]>> = self.ks.dbs[db]
                .dict
                .iter()
                .filter(|e| map.shard_of(e.key()) == m as usize)
                .map(|e| Box::<[u8]>::from(e.key()))
                .collect();
            if self.ks.effects.enabled {
                for k in &keys {
                    self.ks.effects.push(db, &[&b"DEL"[..], k]);
                }
            }
            if lazy && !keys.is_empty() && keys.len() == self.ks.dbs[db].dict.len() {
                self.ks.flush_db_mode(db, true);
                continue;
            }
            let mut dropped = Vec::new();
            for k in keys {
                if let Some(e) = self.ks.remove(db, &k) {
                    if lazy {
                        dropped.push(e);
                    }
                }
            }
            crate::lazyfree::release_entries(dropped);
        }
        self.note_repl_pos(m, "?", 0);
        self.aof_group -= 1;
        self.log_effects(0, 0);
        if m as usize == self.id {
            crate::repl::history::clear(self.shared.nshards, self.id);
        }
    }

    /// Every record of master shard `m` up to `lsn` has been handed out.
    pub fn on_repl_pos(&mut self, m: u16, replid: &str, lsn: u64) {
        if self.ks.repl_pos.get(&m).is_some_and(|(r, l)| &**r == replid && *l >= lsn) {
            return;
        }
        self.note_repl_pos(m, replid, lsn);
        self.log_pending();
        self.note_history();
    }

    fn note_repl_pos(&mut self, m: u16, replid: &str, lsn: u64) {
        self.ks.repl_pos.insert(m, (replid.into(), lsn));
        if self.ks.effects.enabled {
            let (ms, ls) = (m.to_string(), lsn.to_string());
            self.ks.effects.push(0, &[&b"REPLPOS"[..], ms.as_bytes(), ls.as_bytes(), replid.as_bytes()]);
        }
    }
}

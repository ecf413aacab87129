//! A replica shard's side of replication: applying the parts of master
//! records its link threads route here (`crate::repl::replica`), on the
//! replication road (no OOM, MISCONF or READONLY refusal: the master
//! admitted them), logging each part to this shard's AOF in one record
//! together with the position it reaches (`REPLPOS`), so data and
//! position are durable together.

use super::core::Shard;
use crate::cmd::admission::Road;

impl Shard {
    /// Apply part of master shard `m`'s record `lsn` (base-image records
    /// always apply; log records only past this shard's position).
    pub fn on_repl_apply(&mut self, m: u16, (replid, lsn): (&str, u64), base: bool, db: u8, payload: &[u8]) {
        if !base && self.ks.repl_pos.get(&m).is_some_and(|(r, l)| &**r == replid && *l >= lsn) {
            return;
        }
        self.aof_group += 1;
        let mut rp = crate::persist::load::Replayer::on_road(Road::Replica);
        if let Err(at) = rp.apply_payload(&mut self.ks, db as usize, payload) {
            crate::log(&format!(
                "shard {}: replication: malformed command at offset {} of master shard {}'s lsn {}",
                self.id, at, m, lsn
            ));
        }
        if !base {
            self.note_repl_pos(m, replid, lsn);
        }
        self.aof_group -= 1;
        self.log_effects(0, 0);
        if !self.ks.ready_keys.is_empty() {
            self.serve_ready();
        }
    }

    /// A full sync of master shard `m` starts: remove the keys it owns
    /// (by the master's slot map) and forget the position, in one record,
    /// so a crash during the sync asks for a full sync again.
    pub fn on_repl_reset(&mut self, m: u16, master_shards: u16) {
        let map = super::router::SlotMap::contiguous(master_shards.max(1) as usize);
        self.aof_group += 1;
        for db in 0..self.ks.dbs.len() {
            let keys: Vec<Box<[u8]>> = self.ks.dbs[db]
                .dict
                .iter()
                .filter(|e| map.shard_of(&e.key) == m as usize)
                .map(|e| Box::<[u8]>::from(&*e.key))
                .collect();
            for k in keys {
                if self.ks.remove(db, &k).is_some() && self.ks.effects.enabled {
                    self.ks.effects.push(db, &[&b"DEL"[..], &k]);
                }
            }
        }
        self.note_repl_pos(m, "?", 0);
        self.aof_group -= 1;
        self.log_effects(0, 0);
    }

    /// Every record of master shard `m` up to `lsn` has been handed out.
    pub fn on_repl_pos(&mut self, m: u16, replid: &str, lsn: u64) {
        if self.ks.repl_pos.get(&m).is_some_and(|(r, l)| &**r == replid && *l >= lsn) {
            return;
        }
        self.note_repl_pos(m, replid, lsn);
        self.log_pending();
    }

    fn note_repl_pos(&mut self, m: u16, replid: &str, lsn: u64) {
        self.ks.repl_pos.insert(m, (replid.into(), lsn));
        if self.ks.effects.enabled {
            let (ms, ls) = (m.to_string(), lsn.to_string());
            self.ks.effects.push(0, &[&b"REPLPOS"[..], ms.as_bytes(), ls.as_bytes(), replid.as_bytes()]);
        }
    }
}

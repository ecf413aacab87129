//! What the commands run on a keyspace did, written as commands that redo
//! it exactly: the AOF (and later replication) log these.
//!
//! By default a command that changed the keyspace is logged as it was sent.
//! Commands whose effect depends on the moment or on chance log what they
//! actually did instead (`Ctx::propagate`): relative expiries become
//! `PEXPIREAT`/`SET ... PXAT`, an expiry in the past becomes `DEL`, random
//! picks become the concrete removals. Keys removed by expiry are logged as
//! `DEL` when it happens, as Redis does, so that a replay (which never
//! expires anything itself) reaches the same state.

#[derive(Default)]
pub struct Effects {
    /// Off unless something consumes the log (AOF on): then a command that
    /// writes costs one comparison.
    pub enabled: bool,
    /// RESP arrays, back to back.
    buf: Vec<u8>,
    /// Per logged command: its database and where it starts in `buf`.
    cmds: Vec<(u8, usize)>,
    /// Set when the running command logged its own effects.
    replaced: bool,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// The db of the first logged command.
    pub fn first_db(&self) -> Option<u8> {
        self.cmds.first().map(|c| c.0)
    }

    /// Log one command run against `db`.
    pub fn push<A: AsRef<[u8]>>(&mut self, db: usize, parts: &[A]) {
        self.cmds.push((db as u8, self.buf.len()));
        encode_array(&mut self.buf, parts.iter().map(|p| p.as_ref()), parts.len());
    }

    /// Log a command from an iterator of parts (no temporary slice).
    pub fn push_iter<'a>(&mut self, db: usize, n: usize, parts: impl Iterator<Item = &'a [u8]>) {
        self.cmds.push((db as u8, self.buf.len()));
        encode_array(&mut self.buf, parts, n);
    }

    /// Log commands `f` encodes itself (one or more RESP arrays) on `db`.
    pub fn push_encoded(&mut self, db: usize, f: impl FnOnce(&mut Vec<u8>)) {
        self.cmds.push((db as u8, self.buf.len()));
        f(&mut self.buf);
    }

    /// Log `parts` in place of the running command's own arguments.
    pub fn replace<A: AsRef<[u8]>>(&mut self, db: usize, parts: &[A]) {
        self.replaced = true;
        self.push(db, parts);
    }

    /// The running command logs nothing of its own.
    pub fn suppress(&mut self) {
        self.replaced = true;
    }

    /// Whether the running command replaced its own log entry; clears it.
    pub fn take_replaced(&mut self) -> bool {
        std::mem::replace(&mut self.replaced, false)
    }

    /// Where the log ends now (for `retain_since`).
    pub fn mark(&self) -> (usize, usize) {
        (self.cmds.len(), self.buf.len())
    }

    /// Drop the commands logged after `mark` that `keep` refuses; whether
    /// any was.
    pub fn retain_since(&mut self, mark: (usize, usize), mut keep: impl FnMut(&[u8]) -> bool) -> bool {
        let mut dropped = false;
        let tail = self.buf.split_off(mark.1);
        let cmds = self.cmds.split_off(mark.0);
        for (i, &(db, start)) in cmds.iter().enumerate() {
            let end = cmds.get(i + 1).map_or(tail.len() + mark.1, |c| c.1);
            let cmd = &tail[start - mark.1..end - mark.1];
            if keep(cmd) {
                self.cmds.push((db, self.buf.len()));
                self.buf.extend_from_slice(cmd);
            } else {
                dropped = true;
            }
        }
        dropped
    }

    /// Forget everything logged so far.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.cmds.clear();
    }

    /// Visit the logged commands as (db, RESP bytes) and clear the log,
    /// keeping its buffers.
    pub fn drain_each(&mut self, mut f: impl FnMut(u8, &[u8])) {
        for i in 0..self.cmds.len() {
            let (db, start) = self.cmds[i];
            let end = self.cmds.get(i + 1).map_or(self.buf.len(), |c| c.1);
            f(db, &self.buf[start..end]);
        }
        self.buf.clear();
        self.cmds.clear();
    }
}

pub use crate::protocol::reply::encode_array;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_since_keeps_earlier_and_accepted_commands() {
        let mut e = Effects::default();
        e.push(0, &["SET", "a", "1"]);
        let mark = e.mark();
        e.push(1, &["DEL", "x"]);
        e.push(2, &["RENAME", "a", "b"]);
        e.push(3, &["DEL", "y"]);
        assert!(e.retain_since(mark, |c| !c.windows(6).any(|w| w == b"RENAME")));
        assert!(!e.retain_since(mark, |_| true));
        let mut seen = Vec::new();
        e.drain_each(|db, c| seen.push((db, String::from_utf8_lossy(c).into_owned())));
        let dbs: Vec<u8> = seen.iter().map(|s| s.0).collect();
        assert_eq!(dbs, vec![0, 1, 3]);
        assert!(seen[2].1.contains("$1\r\ny"));
    }

    #[test]
    fn logs_in_order_with_db() {
        let mut e = Effects::default();
        e.push(0, &["SET", "k", "v"]);
        e.replace(3, &[&b"DEL"[..], b"x"]);
        assert!(e.take_replaced());
        assert!(!e.take_replaced());
        let mut seen = Vec::new();
        e.drain_each(|db, b| seen.push((db, String::from_utf8_lossy(b).into_owned())));
        assert_eq!(
            seen,
            vec![
                (0, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_string()),
                (3, "*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n".into())
            ]
        );
        assert!(e.is_empty());
    }
}

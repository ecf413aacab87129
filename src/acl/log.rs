//! ACL LOG: the server's record of refused commands, keys, channels and
//! failed AUTHs, newest first, with Redis's fields. Like refusals within a
//! minute of each other are one entry with a count, as in Redis, so a
//! client retrying a wrong password fills one entry, not the whole log.

use std::collections::VecDeque;

/// Redis's `acllog-max-len` default.
pub const MAX_LEN: usize = 128;
/// Refusals this close (ms) to a like entry add to its count.
const GROUPING_MS: i64 = 60_000;
/// How many of the newest entries are searched for a like one.
const GROUPING_SEARCH: usize = 10;

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub count: u64,
    /// command, key, channel or auth.
    pub reason: &'static str,
    /// toplevel or multi.
    pub context: &'static str,
    /// The command, key or channel refused ("AUTH" for a failed AUTH).
    pub object: String,
    pub username: String,
    /// When it last happened (unix ms).
    pub ms: i64,
    /// The client, as CLIENT LIST prints it.
    pub client_info: String,
}

#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<Entry>,
}

impl AclLog {
    /// Record a refusal at `now` (unix ms).
    pub fn add(&mut self, mut e: Entry, now: i64) {
        e.ms = now;
        let like = self.entries.iter().take(GROUPING_SEARCH).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.object == e.object
                && o.username == e.username
                && now - o.ms < GROUPING_MS
        });
        if let Some(i) = like {
            if let Some(mut o) = self.entries.remove(i) {
                o.count += 1;
                o.ms = now;
                o.client_info = e.client_info;
                self.entries.push_front(o);
            }
            return;
        }
        e.count = 1;
        self.entries.push_front(e);
        self.entries.truncate(MAX_LEN);
    }

    /// The newest `n` entries.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(n)
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(object: &str, user: &str) -> Entry {
        Entry {
            count: 0,
            reason: "command",
            context: "toplevel",
            object: object.into(),
            username: user.into(),
            ms: 0,
            client_info: "id=1".into(),
        }
    }

    #[test]
    fn like_refusals_group_newest_first() {
        let mut log = AclLog::default();
        log.add(e("get", "a"), 1_000);
        log.add(e("set", "a"), 2_000);
        log.add(e("get", "a"), 3_000);
        let v: Vec<(String, u64)> = log.newest(10).map(|x| (x.object.clone(), x.count)).collect();
        assert_eq!(v, vec![("get".into(), 2), ("set".into(), 1)]);
        // A minute later it is a new entry; another user too.
        log.add(e("get", "a"), 3_000 + GROUPING_MS);
        log.add(e("get", "b"), 3_000 + GROUPING_MS);
        assert_eq!(log.len(), 4);
        for i in 0..(MAX_LEN as i64 * 2) {
            log.add(e(&format!("c{i}"), "a"), 200_000 + i);
        }
        assert_eq!(log.len(), MAX_LEN, "bounded");
        log.reset();
        assert!(log.is_empty());
    }
}

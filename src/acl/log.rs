//! ACL LOG: the server's record of refused commands, keys, channels and
//! failed AUTHs, newest first, with Redis's fields. Like refusals within a
//! minute of each other are one entry with a count, as in Redis, so a
//! client retrying a wrong password fills one entry, not the whole log.
//! At most `acllog-max-len` entries are kept (trimmed when one is added,
//! as Redis trims).

use std::collections::VecDeque;

/// Redis's `acllog-max-len` default.
pub const MAX_LEN: usize = 128;
/// Refusals at most this far (ms) from a like entry add to its count.
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
    /// When it first happened (unix ms).
    pub created_ms: i64,
    /// Its number: entries get increasing ids, never reused (RESET too).
    pub id: u64,
    /// The client, as CLIENT LIST prints it.
    pub client_info: String,
}

impl Entry {
    /// A refusal to record (`AclLog::add` sets its count, times and id).
    pub fn new(
        reason: &'static str,
        context: &'static str,
        object: String,
        username: String,
        client_info: String,
    ) -> Self {
        Entry { count: 0, reason, context, object, username, ms: 0, created_ms: 0, id: 0, client_info }
    }
}

#[derive(Debug)]
pub struct AclLog {
    entries: VecDeque<Entry>,
    max_len: usize,
    next_id: u64,
}

impl Default for AclLog {
    fn default() -> Self {
        AclLog::new(MAX_LEN)
    }
}

impl AclLog {
    pub fn new(max_len: usize) -> Self {
        AclLog { entries: VecDeque::new(), max_len, next_id: 0 }
    }

    /// `acllog-max-len`: applies from the next entry added, as in Redis.
    pub fn set_max_len(&mut self, n: usize) {
        self.max_len = n;
    }

    /// Record a refusal at `now` (unix ms).
    pub fn add(&mut self, mut e: Entry, now: i64) {
        e.ms = now;
        let like = self.entries.iter().take(GROUPING_SEARCH).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.object == e.object
                && o.username == e.username
                && now - o.ms <= GROUPING_MS
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
        e.created_ms = now;
        e.id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(e);
        self.entries.truncate(self.max_len);
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
            created_ms: 0,
            id: 0,
            client_info: "id=1".into(),
        }
    }

    #[test]
    fn like_refusals_group_newest_first() {
        let mut log = AclLog::default();
        log.add(e("get", "a"), 1_000);
        log.add(e("set", "a"), 2_000);
        log.add(e("get", "a"), 3_000);
        let v: Vec<(String, u64, u64, i64, i64)> =
            log.newest(10).map(|x| (x.object.clone(), x.count, x.id, x.created_ms, x.ms)).collect();
        assert_eq!(v, vec![("get".into(), 2, 0, 1_000, 3_000), ("set".into(), 1, 1, 2_000, 2_000)]);
        // Up to a minute later it still counts; after that it is a new
        // entry; another user's too.
        log.add(e("get", "a"), 3_000 + GROUPING_MS);
        assert_eq!(log.len(), 2);
        log.add(e("get", "a"), 3_001 + 2 * GROUPING_MS);
        log.add(e("get", "b"), 3_000 + GROUPING_MS);
        assert_eq!(log.len(), 4);
        for i in 0..(MAX_LEN as i64 * 2) {
            log.add(e(&format!("c{i}"), "a"), 200_000 + i);
        }
        assert_eq!(log.len(), MAX_LEN, "bounded");
        // A lower bound applies when the next entry comes, as in Redis.
        log.set_max_len(3);
        assert_eq!(log.len(), MAX_LEN);
        log.add(e("d", "a"), 300_000);
        assert_eq!(log.len(), 3);
        let last_id = log.newest(1).next().map(|x| x.id);
        log.reset();
        assert!(log.is_empty());
        log.add(e("d", "a"), 300_000);
        assert!(log.newest(1).next().map(|x| x.id) > last_id, "ids are not reused");
        log.set_max_len(0);
        log.add(e("f", "a"), 300_000);
        assert!(log.is_empty(), "0 keeps nothing");
    }
}

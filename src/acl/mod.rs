//! ACL users: who may run what on which keys and channels (Redis 7's ACL).
//!
//! - `user`: a user, its rules (`ACL SETUSER` syntax) and how ACL LIST
//!   prints it (pure).
//! - `check`: the permission check of a command against a user (pure).
//! - `pattern`: key patterns, compiled to a prefix or equality test when
//!   that is what they mean (pure).
//! - `log`: ACL LOG entries (pure).
//! - `file`: the aclfile format (parse and render, pure).
//!
//! The user table is one immutable snapshot (`Users`) behind an `Arc`. A
//! change builds a new snapshot with a higher version under the master
//! lock (`AclShared::users`), then every shard is told to take it (a
//! fan-out; the change is answered once every shard has it), so a shard
//! reads its own copy on the hot path and never takes a lock there. Each
//! connection holds its user's `Arc<User>` and a flag saying the user may
//! do everything, which is all the default user's check costs.

pub mod check;
pub mod file;
pub mod log;
pub mod pattern;
pub mod user;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use user::User;

/// One version of the user table.
#[derive(Clone, Debug)]
pub struct Users {
    pub version: u64,
    /// By name (ACL USERS and ACL LIST list them in this order).
    pub map: BTreeMap<String, Arc<User>>,
}

impl Users {
    /// Just `default`, with `requirepass` as its password.
    pub fn initial(requirepass: &str) -> Self {
        let mut map = BTreeMap::new();
        map.insert("default".to_string(), Arc::new(User::default_user(requirepass)));
        Users { version: 1, map }
    }

    /// The users the configuration defines: its `aclfile` or `users`,
    /// with `default` as `requirepass` makes it unless they define it.
    pub fn load(c: &crate::config::Config) -> Result<Self, String> {
        let mut users = Users::initial(&c.requirepass);
        let defined = if !c.aclfile.is_empty() {
            let text = std::fs::read_to_string(&c.aclfile)
                .map_err(|e| format!("Error loading ACLs, opening file '{}': {}", c.aclfile, e))?;
            file::parse(&text, &c.aclfile)?
        } else {
            let text: String = c.users.iter().map(|u| format!("user {}\n", u)).collect();
            file::parse(&text, "users (config)")?
        };
        users.map.extend(defined);
        Ok(users)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.map.get(name)
    }

    /// The default user (always present: it cannot be deleted).
    pub fn default_user(&self) -> Arc<User> {
        match self.map.get("default") {
            Some(u) => u.clone(),
            None => Arc::new(User::default_user("")),
        }
    }
}

/// What every shard shares: the master table, the log, INFO's counters.
pub struct AclShared {
    pub users: Mutex<Arc<Users>>,
    pub log: Mutex<log::AclLog>,
    pub denied_auth: AtomicU64,
    pub denied_cmd: AtomicU64,
    pub denied_key: AtomicU64,
    pub denied_channel: AtomicU64,
}

impl AclShared {
    /// The table the configuration defines (just `default` if it cannot
    /// be loaded: start-up checks `Users::load` first and stops on error).
    pub fn new(c: &crate::config::Config) -> Self {
        let users = Users::load(c).unwrap_or_else(|_| Users::initial(&c.requirepass));
        AclShared {
            users: Mutex::new(Arc::new(users)),
            log: Mutex::new(log::AclLog::new(c.acllog_max_len.min(usize::MAX as u64) as usize)),
            denied_auth: AtomicU64::new(0),
            denied_cmd: AtomicU64::new(0),
            denied_key: AtomicU64::new(0),
            denied_channel: AtomicU64::new(0),
        }
    }

    /// The current table.
    pub fn snapshot(&self) -> Arc<Users> {
        match self.users.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Change the table with `f` (which may refuse: nothing changes then);
    /// the new snapshot gets the next version.
    pub fn update<T>(&self, f: impl FnOnce(&mut Users) -> Result<T, String>) -> Result<T, String> {
        let mut g = match self.users.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut next = (**g).clone();
        let out = f(&mut next)?;
        next.version = g.version + 1;
        *g = Arc::new(next);
        Ok(out)
    }

    /// Count a refusal for INFO (`reason` as ACL LOG names it).
    pub fn count(&self, reason: &str) {
        let c = match reason {
            "auth" => &self.denied_auth,
            "key" => &self.denied_key,
            "channel" => &self.denied_channel,
            _ => &self.denied_cmd,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `acllog-max-len` changed.
    pub fn set_log_max_len(&self, n: u64) {
        let n = n.min(usize::MAX as u64) as usize;
        match self.log.lock() {
            Ok(mut g) => g.set_max_len(n),
            Err(p) => p.into_inner().set_max_len(n),
        }
    }

    pub fn add_log(&self, e: log::Entry, now: i64) {
        match self.log.lock() {
            Ok(mut g) => g.add(e, now),
            Err(p) => p.into_inner().add(e, now),
        }
    }
}

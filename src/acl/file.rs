//! The aclfile: Redis's format, one `user <name> <rule> ...` line per user
//! (what ACL LIST prints), so a users.acl written by redis-server loads
//! here and ours loads there. Parsing and rendering only; the file is read
//! and written (atomically) by the server.

use super::user::{has_space, merge_selector_args, User};
use super::Users;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The users an aclfile defines, all or nothing: Err names the file, the
/// line and what is wrong with it. (A file without `default` leaves the
/// caller to supply one: `Users::load`.)
pub fn parse(text: &str, path: &str) -> Result<BTreeMap<String, Arc<User>>, String> {
    let mut map: BTreeMap<String, Arc<User>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = |why: String| format!("{}:{}: {}", path, i + 1, why);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&[u8]> = line.split_ascii_whitespace().map(str::as_bytes).collect();
        if words.first() != Some(&&b"user"[..]) {
            return Err(at("should start with user keyword".into()));
        }
        let Some(name) = words.get(1) else { return Err(at("user keyword without a user name".into())) };
        if has_space(name) {
            return Err(at("usernames can't contain spaces or null characters".into()));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if map.contains_key(&name) {
            return Err(at(format!("duplicate user '{}' found", name)));
        }
        let rules = merge_selector_args(&words[2..]).map_err(|e| at(e.trim_start_matches("ERR ").to_string()))?;
        let mut u = User::new(&name);
        for r in &rules {
            u.apply(r).map_err(|e| {
                at(format!("Error in applying operation '{}': {}", String::from_utf8_lossy(r), e.text()))
            })?;
        }
        map.insert(name, Arc::new(u));
    }
    Ok(map)
}

/// The file ACL SAVE writes: every user as ACL LIST shows it.
pub fn render(users: &Users) -> String {
    users.map.iter().map(|(name, u)| format!("user {} {}\n", name, u.describe())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_written_file_round_trips() {
        // As redis-server 7.0's ACL SAVE wrote it.
        let text = "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~foo* %R~bar* resetchannels &ch* -@all +config|get +get (~x resetchannels -@all +get)\nuser default on nopass ~* &* +@all\n";
        let map = parse(text, "users.acl").expect("parses");
        let users = Users { version: 1, map };
        assert_eq!(render(&users), text);
        assert!(users.get("alice").expect("alice").password_ok(b"pw"));
    }

    #[test]
    fn comments_and_blank_lines() {
        let map = parse("# users\n\n  user bob on nopass +ping  \n", "f").expect("parses");
        assert_eq!(map.keys().cloned().collect::<Vec<_>>(), vec!["bob".to_string()]);
        assert_eq!(map["bob"].describe(), "on nopass resetchannels -@all +ping");
        let users = Users::load(&map_config("secret")).expect("loads");
        assert_eq!(
            users.default_user().describe(),
            format!("on #{} ~* &* +@all", super::super::user::hash_password(b"secret"))
        );
    }

    fn map_config(pass: &str) -> crate::config::Config {
        crate::config::Config {
            requirepass: pass.into(),
            users: vec!["bob on nopass +ping".into()],
            ..Default::default()
        }
    }

    #[test]
    fn bad_files_name_the_line() {
        assert_eq!(parse("user a on\nbogus b\n", "f"), Err("f:2: should start with user keyword".to_string()));
        assert_eq!(parse("user a\nuser a\n", "f"), Err("f:2: duplicate user 'a' found".to_string()));
        assert_eq!(
            parse("user a +nosuch\n", "f"),
            Err("f:1: Error in applying operation '+nosuch': Unknown command or category name in ACL".to_string())
        );
        assert!(parse("user a (+get\n", "f").is_err());
        assert!(parse("user\n", "f").is_err());
        assert!(parse("\u{0}\u{1}garbage", "f").is_err());
    }
}

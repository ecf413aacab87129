//! Who may connect and who may run DEBUG, and how passwords are compared:
//! the decisions behind `protected-mode`, `enable-debug-command` and AUTH,
//! kept pure so they are tested without sockets.

use std::net::IpAddr;

/// Sent (then the connection is closed) to a client refused by protected
/// mode. Redis 7's text, which clients and operators recognise.
pub const DENIED: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";

/// DEBUG refused by `enable-debug-command` (Redis 7's text).
pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// The values `enable-debug-command` takes.
pub const DEBUG_POLICIES: &[&str] = &["no", "local", "yes"];

/// Is `addr` ("ip:port", as a connection records its peer) on this host's
/// loopback? Any 127.0.0.0/8 address counts, not just 127.0.0.1 as in
/// Redis: tests run several "hosts" on 127.0.0.x, and nothing outside the
/// machine can reach those. Unparsable means not local.
pub fn is_loopback(addr: &str) -> bool {
    let ip = match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip(),
        Err(_) => return false,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Protected mode turns away a client that is not on the loopback while no
/// password is set (so nobody can reach an open server from outside).
pub fn protected_mode_refuses(protected_mode: bool, has_password: bool, peer: &str) -> bool {
    protected_mode && !has_password && !is_loopback(peer)
}

/// May a client at `peer` run DEBUG under `policy` (no | local | yes)?
pub fn debug_allowed(policy: &str, peer: &str) -> bool {
    match policy {
        "yes" => true,
        "local" => is_loopback(peer),
        _ => false,
    }
}

/// Compare a password without an early exit at the first differing byte,
/// so the reply time does not tell how much of a guess was right. (The
/// loop runs over the longer of the two: a length is all it can reveal.)
pub fn same_password(given: &[u8], expected: &[u8]) -> bool {
    let n = given.len().max(expected.len());
    let mut diff = (given.len() != expected.len()) as u8;
    for i in 0..n {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(a ^ b);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for a in ["127.0.0.1:6379", "127.0.0.2:1", "127.255.255.254:9", "[::1]:5", "[::ffff:127.0.0.1]:5"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["192.0.2.1:6379", "10.0.0.1:1", "0.0.0.0:1", "[::ffff:10.0.0.1]:5", "[fd00::2]:1", "?:0", ""] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn protected_mode_decision() {
        assert!(protected_mode_refuses(true, false, "192.0.2.7:4000"));
        assert!(!protected_mode_refuses(true, false, "127.0.0.1:4000"));
        assert!(!protected_mode_refuses(true, true, "192.0.2.7:4000"), "a password lifts it");
        assert!(!protected_mode_refuses(false, false, "192.0.2.7:4000"), "turned off");
    }

    #[test]
    fn debug_policy() {
        assert!(!debug_allowed("no", "127.0.0.1:1"));
        assert!(debug_allowed("local", "127.0.0.1:1"));
        assert!(!debug_allowed("local", "192.0.2.7:1"));
        assert!(debug_allowed("yes", "192.0.2.7:1"));
    }

    #[test]
    fn password_comparison() {
        assert!(same_password(b"secret", b"secret"));
        assert!(same_password(b"", b""));
        for wrong in [&b"secreT"[..], b"secre", b"secrets", b"", b"\0secret"] {
            assert!(!same_password(wrong, b"secret"), "{:?}", String::from_utf8_lossy(wrong));
        }
    }
}

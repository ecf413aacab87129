//! MONITOR: the commands clients send, as lines for MONITOR clients.
//!
//! Every shard keeps the list of all MONITOR clients (announced to every
//! shard by `Msg::Monitor`), so a shard whose list is empty pays one
//! length check per request. A command is shown by the shard of the
//! client that sent it, in Redis's line format: a keyspace command when it
//! is dispatched (it may run on another shard; Redis shows it after it
//! ran), a command run at the connection after it ran (SELECT shows its
//! new db); queued MULTI commands when their EXEC is dispatched, before
//! EXEC itself, as Redis shows them.
//! Admin commands are not shown, as in Redis; commands that may carry a
//! password (SECRET_ARGS) show every argument as "(redacted)".

use super::core::{Conn, Shard};
use super::{ConnRef, Msg};
use crate::cmd::flags::*;
use crate::cmd::{Args, CommandDef};

/// One MONITOR line: `+<secs>.<micros> [<db> <addr>] "arg" ...\r\n`, each
/// argument quoted and escaped as Redis's sdscatrepr does.
pub fn format_line(now_us: u64, db: usize, addr: &str, args: &Args, redact: bool) -> Vec<u8> {
    let mut line = format!("+{}.{:06} [{} {}]", now_us / 1_000_000, now_us % 1_000_000, db, addr).into_bytes();
    for (i, a) in args.iter().enumerate() {
        line.push(b' ');
        if redact && i > 0 {
            line.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote_into(&mut line, a);
        }
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// `s` in double quotes with Redis's escapes (\\ \" \n \r \t \a \b, and
/// \xHH for other bytes that are not printable ASCII).
fn quote_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Shard {
    /// Show a command `conn` sent to every MONITOR client, unless it is not
    /// shown (admin) or waits in a MULTI queue (shown at its EXEC). With no
    /// MONITOR client anywhere this is one length check.
    #[inline]
    pub fn feed_monitors(&mut self, conn: &Conn, def: &CommandDef, args: &Args) {
        if !self.monitors.is_empty() {
            self.feed_monitors_now(conn, def, args);
        }
    }

    fn feed_monitors_now(&mut self, conn: &Conn, def: &CommandDef, args: &Args) {
        if def.has(ADMIN | SKIP_MONITOR) || (conn.multi.is_some() && !def.has(NEVER_QUEUED)) {
            return;
        }
        let t = now_us();
        if def.has(RUNS_QUEUE) {
            if let Some(m) = &conn.multi {
                let queued: Vec<Vec<u8>> = m
                    .cmds
                    .iter()
                    .map(|c| {
                        let args = c.args();
                        let redact = crate::cmd::find(&args).is_some_and(|(_, d)| d.has(SECRET_ARGS));
                        format_line(t, conn.db, &conn.addr, &args, redact)
                    })
                    .collect();
                for line in queued {
                    self.send_to_monitors(line);
                }
            }
        }
        self.send_to_monitors(format_line(t, conn.db, &conn.addr, args, def.has(SECRET_ARGS)));
    }

    fn send_to_monitors(&mut self, line: Vec<u8>) {
        let monitors = std::mem::take(&mut self.monitors);
        for &m in &monitors {
            if m.shard == self.id {
                self.write_to(m, &line);
            } else {
                self.send(m.shard, Msg::MonitorLine { to: m, line: line.clone() });
            }
        }
        self.monitors = monitors;
    }

    /// MONITOR: the connection receives every command from now on. A
    /// second MONITOR is ignored without a reply, as in Redis.
    pub fn cmd_monitor(&mut self, conn: &mut Conn, _: &Args) {
        if conn.monitor {
            return;
        }
        conn.monitor = true;
        crate::protocol::reply::Reply::new(&mut conn.out, conn.resp3).ok();
        self.announce_monitor(conn.conn_ref(self.id), true);
    }

    /// Tell every shard that `who` started (`on`) or stopped monitoring.
    pub fn announce_monitor(&mut self, who: ConnRef, on: bool) {
        self.on_monitor(who, on);
        let me = self.id;
        for s in (0..self.shared.nshards).filter(|&s| s != me) {
            self.send(s, Msg::Monitor { who, on });
        }
    }

    pub fn on_monitor(&mut self, who: ConnRef, on: bool) {
        self.monitors.retain(|&m| m != who);
        if on {
            self.monitors.push(who);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::OwnedArgs;

    #[test]
    fn lines_are_in_redis_format() {
        let a = OwnedArgs::from_slices(&[&b"set"[..], b"a b", b"x\"y\\n\x01\xff\t"]);
        let line = format_line(1_796_634_337_094_402, 3, "127.0.0.1:44288", &a.args(), false);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "+1796634337.094402 [3 127.0.0.1:44288] \"set\" \"a b\" \"x\\\"y\\\\n\\x01\\xff\\t\"\r\n"
        );
        let auth = OwnedArgs::from_slices(&["auth", "user", "secret"]);
        let line = format_line(5, 0, "c", &auth.args(), true);
        assert_eq!(line, b"+0.000005 [0 c] \"auth\" \"(redacted)\" \"(redacted)\"\r\n");
    }
}

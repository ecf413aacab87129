//! Start/stop shardis-server and redis-server processes for tests.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::resp::{RespConn, Value};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A port that was free a moment ago. Racy by nature; `Server` retries on a
/// bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Path of the shardis binary built by cargo for this test crate.
pub fn shardis_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shardis-server")
}

/// `SHARDIS_TEST_TARGET=redis` makes every "shardis" server a redis-server:
/// used to validate the harness itself (all differential tests must pass).
pub fn target_is_redis() -> bool {
    std::env::var("SHARDIS_TEST_TARGET").map(|v| v == "redis").unwrap_or(false)
}

/// Data dirs live under target/ (not /tmp, which may be tmpfs where O_DIRECT
/// fails).
pub fn test_data_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("test-data")
}

fn unique_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let exe = std::env::current_exe().ok();
    let crate_name = exe
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "test".into());
    let dir = test_data_root().join(format!(
        "{crate_name}-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config file holding `text` in a directory of its own under the test
/// data root (for `--config`); the directory is `path.parent()`.
pub fn config_file(tag: &str, text: &str) -> PathBuf {
    let file = unique_dir(tag).join("shardis.toml");
    fs::write(&file, text).unwrap();
    file
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shardis,
    Redis,
}

pub struct Server {
    child: Child,
    pub kind: Kind,
    /// The address it listens on (its `--bind`; 127.0.0.1 unless given).
    pub host: String,
    pub port: u16,
    pub dir: PathBuf,
    /// Human-readable name for messages, e.g. "shardis-4" or "redis".
    pub name: String,
    pub password: Option<String>,
    /// Program and arguments, to start it again on the same dir and port.
    pub cmdline: Vec<String>,
}

impl Server {
    /// shardis-server with `shards` shards (redis-server instead when
    /// SHARDIS_TEST_TARGET=redis). `extra` are appended verbatim and must be
    /// understood by both servers when the override is used.
    pub fn start(shards: usize, extra: &[&str]) -> Server {
        Server::start_env(shards, extra, &[])
    }

    /// `start` with extra environment variables (failpoints).
    pub fn start_env(shards: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        if target_is_redis() {
            let mut s = Server::start_redis_with(extra);
            s.name = format!("redis-as-shardis-{shards}");
            return s;
        }
        let shards = shards.to_string();
        // Defaults a test may override (a flag given twice is an error).
        let given = |flag: &str| extra.contains(&flag);
        let (bind, debug) = (!given("--bind"), !given("--enable-debug-command"));
        Server::launch(Kind::Shardis, &format!("shardis-{shards}"), extra, |port, dir| {
            let mut c = Command::new(shardis_bin());
            c.args(["--port", &port.to_string(), "--shards", &shards, "--dir"]).arg(dir);
            if bind {
                c.args(["--bind", "127.0.0.1"]);
            }
            if debug {
                // Tests use DEBUG (SLEEP and the like); it is off by default.
                c.args(["--enable-debug-command", "yes"]);
            }
            c.envs(env.iter().copied());
            c
        })
    }

    /// shardis-server whose RLIMIT_NOFILE (soft and hard) is `nofile`, and
    /// which, where it can be dropped, lacks CAP_SYS_RESOURCE, so that it
    /// cannot raise the limit even when run as root.
    /// `env` is added to its environment.
    pub fn start_with_nofile(shards: usize, extra: &[&str], nofile: u64, env: &[(&str, &str)]) -> Server {
        let shards = shards.to_string();
        Server::launch(Kind::Shardis, &format!("shardis-{shards}-nofile-{nofile}"), extra, |port, dir| {
            let mut c = Command::new(shardis_bin());
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--shards", &shards, "--dir"]).arg(dir);
            c.envs(env.iter().copied());
            unsafe {
                c.pre_exec(move || {
                    // Without CAP_SETPCAP this fails, and the limit may be raised.
                    const CAP_SYS_RESOURCE: libc::c_ulong = 24;
                    libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
                    let rl = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            c
        })
    }

    pub fn start_redis() -> Server {
        Server::start_redis_with(&[])
    }

    pub fn start_redis_with(extra: &[&str]) -> Server {
        Server::launch(Kind::Redis, "redis", extra, |port, dir| {
            let mut c = Command::new("redis-server");
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--enable-debug-command", "yes", "--dir"])
                .arg(dir);
            c
        })
    }

    fn launch(kind: Kind, name: &str, extra: &[&str], base: impl Fn(u16, &Path) -> Command) -> Server {
        let password = extra.iter().position(|a| *a == "--requirepass").and_then(|i| extra.get(i + 1));
        let host = extra.iter().position(|a| *a == "--bind").and_then(|i| extra.get(i + 1)).unwrap_or(&"127.0.0.1");
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = unique_dir(name);
            let port = free_port();
            let mut cmd = base(port, &dir);
            cmd.args(extra);
            let cmdline: Vec<String> = std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            cmd.stdin(Stdio::null())
                .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
                .stderr(fs::File::create(dir.join("stderr.log")).unwrap());
            // If the test process dies (e.g. killed on timeout) the server
            // goes with it instead of lingering.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
            // Lets scripts/test reap a server whose test was SIGKILLed.
            fs::write(dir.join("server.pid"), child.id().to_string()).unwrap();
            let mut server = Server {
                child,
                kind,
                host: host.to_string(),
                port,
                dir,
                name: name.to_string(),
                password: password.map(|p| p.to_string()),
                cmdline,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => {
                    server.stop();
                    let logs = server.logs();
                    last_err = format!("{e}\n--- server output ({}) ---\n{logs}", server.dir.display());
                    // Port stolen between free_port() and bind: try another.
                    if !logs.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("{name} did not start: {last_err}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("never connected");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early with {status}"));
            }
            match RespConn::connect_to(&self.host, self.port).and_then(|mut c| c.try_cmd(&["PING"])) {
                Ok(Value::Simple(s)) if s == "PONG" => return Ok(()),
                // With --requirepass, NOAUTH also proves the server is up.
                Ok(Value::Error(e)) if e.starts_with("NOAUTH") => return Ok(()),
                Ok(v) => last = format!("PING replied {v}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no PONG within {START_TIMEOUT:?} (last: {last})"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// stderr + stdout so far.
    pub fn logs(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("stdout.log"))
    }

    /// New connection, authenticated if the server has a password.
    pub fn conn(&self) -> RespConn {
        let mut c = RespConn::connect_to(&self.host, self.port)
            .unwrap_or_else(|e| panic!("{}: connect failed: {e}\n{}", self.name, self.logs()));
        if let Some(pw) = &self.password {
            assert_eq!(c.cmd(&["AUTH", pw.as_str()]), Value::ok());
        }
        c
    }

    /// Connection without AUTH, for tests of the auth path itself.
    pub fn raw_conn(&self) -> RespConn {
        RespConn::connect_to(&self.host, self.port).unwrap_or_else(|e| panic!("{}: connect failed: {e}", self.name))
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait up to `timeout` for the process to exit on its own; its status,
    /// or None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal to the server process.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL (a crash) and reap it.
    pub fn kill9(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// Graceful stop (SIGTERM), keeping the data directory.
    pub fn stop_keep(&mut self) {
        self.stop();
    }

    /// Start the same server again on the same port and data directory,
    /// after `edit` adjusted the command line. Output is appended to the
    /// logs. Err(logs) if it exits or does not answer.
    pub fn restart_with(&mut self, edit: impl FnOnce(&mut Vec<String>)) -> Result<(), String> {
        self.restart_env(&[], edit)
    }

    /// `restart_with`, with extra environment variables for this run only.
    pub fn restart_env(&mut self, env: &[(&str, &str)], edit: impl FnOnce(&mut Vec<String>)) -> Result<(), String> {
        self.stop();
        edit(&mut self.cmdline);
        let open = |f: &str| fs::OpenOptions::new().create(true).append(true).open(self.dir.join(f)).unwrap();
        let mut cmd = Command::new(&self.cmdline[0]);
        cmd.args(&self.cmdline[1..]).stdin(Stdio::null()).stdout(open("stdout.log")).stderr(open("stderr.log"));
        cmd.envs(env.iter().copied());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = cmd.spawn().map_err(|e| format!("cannot respawn {}: {e}", self.name))?;
        fs::write(self.dir.join("server.pid"), self.child.id().to_string()).unwrap();
        self.wait_ready().map_err(|e| format!("{e}\n{}", self.logs()))
    }

    pub fn restart(&mut self) -> Result<(), String> {
        self.restart_with(|_| {})
    }

    /// Set (or add) `--flag value` on the command line.
    pub fn set_arg(cmdline: &mut Vec<String>, flag: &str, value: &str) {
        match cmdline.iter().position(|a| a == flag) {
            Some(i) if i + 1 < cmdline.len() => cmdline[i + 1] = value.to_string(),
            _ => cmdline.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// SIGTERM, then SIGKILL if it does not exit in time.
    fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // Keep data and logs of failed tests for inspection.
        if !std::thread::panicking() && std::env::var_os("SHARDIS_KEEP_TEST_DATA").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

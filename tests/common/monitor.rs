//! shardis-monitor test helpers: processes on loopback "hosts" stopped by
//! pid, monitors started from flags, and the Sentinel queries the tests
//! wait on.

use super::server::test_data_root;
use super::{RespConn, Value};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DOWN_AFTER: u64 = 1000;

/// A process on `host:port`, stopped by its pid when dropped.
pub struct Proc {
    child: Option<Child>,
    pub host: String,
    pub port: u16,
    pub dir: PathBuf,
    pub cmd: Vec<String>,
}

pub fn free_port_on(host: &str) -> u16 {
    TcpListener::bind((host, 0)).expect("bind a loopback address").local_addr().expect("local addr").port()
}

pub fn new_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d =
        test_data_root().join(format!("monitor-{}-{}-{tag}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test dir");
    d
}

impl Proc {
    pub fn spawn(host: &str, port: u16, dir: PathBuf, cmd: Vec<String>) -> Proc {
        let mut p = Proc { child: None, host: host.into(), port, dir, cmd };
        p.start();
        p
    }

    pub fn start(&mut self) {
        let mut c = Command::new(&self.cmd[0]);
        // Relative paths in a config file land in the process's own dir.
        c.args(&self.cmd[1..])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join("stdout.log")).expect("log"))
            .stderr(std::fs::File::create(self.dir.join("stderr.log")).expect("log"));
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.cmd[0]));
        std::fs::write(self.dir.join("server.pid"), child.id().to_string()).expect("pid file");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = self.try_conn() {
                if c.try_cmd(&["PING"]).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} on {}:{} did not start: {}", self.cmd[0], self.host, self.port, self.logs());
    }

    pub fn logs(&self) -> String {
        let r = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", r("stdout.log"), r("stderr.log"))
    }

    pub fn try_conn(&self) -> std::io::Result<RespConn> {
        let addr: SocketAddr = format!("{}:{}", self.host, self.port).parse().expect("addr");
        RespConn::connect_addr(addr, Duration::from_secs(2), Duration::from_secs(5))
    }

    pub fn conn(&self) -> RespConn {
        self.try_conn().unwrap_or_else(|e| panic!("connect {}:{}: {e}", self.host, self.port))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A monitor on `host` watching `master` as "mymaster", quorum 2.
pub fn monitor(host: &str, master: (&str, u16)) -> Proc {
    monitor_with(host, master, &[])
}

/// `monitor` with `extra` flags appended.
pub fn monitor_with(host: &str, master: (&str, u16), extra: &[&str]) -> Proc {
    let port = free_port_on(host);
    let dir = new_dir("monitor");
    let cmd = vec![
        monitor_bin(),
        "--bind".into(),
        host.into(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        dir.to_string_lossy().into_owned(),
        "--monitor".into(),
        format!("mymaster {} {} 2", master.0, master.1),
        "--down-after-milliseconds".into(),
        DOWN_AFTER.to_string(),
        "--failover-timeout".into(),
        "3000".into(),
    ];
    let cmd = cmd.into_iter().chain(extra.iter().map(|s| s.to_string())).collect();
    Proc::spawn(host, port, dir, cmd)
}

/// A Sentinel flat field list as pairs.
pub fn field(v: &Value, name: &str) -> Option<String> {
    let items = v.as_items()?;
    items
        .chunks(2)
        .find(|kv| kv[0].as_bytes() == Some(name.as_bytes()))
        .and_then(|kv| kv[1].as_bytes())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

pub fn master_addr(m: &Proc) -> Option<(String, u16)> {
    let v = m.try_conn().ok()?.try_cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"]).ok()?;
    let items = v.as_items()?;
    let host = String::from_utf8_lossy(items.first()?.as_bytes()?).into_owned();
    let port = std::str::from_utf8(items.get(1)?.as_bytes()?).ok()?.parse().ok()?;
    Some((host, port))
}

/// Poll `f` until it gives Some, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn role(p: &Proc) -> Option<Vec<Value>> {
    p.try_conn().ok()?.try_cmd(&["ROLE"]).ok()?.as_items().map(|v| v.to_vec())
}

/// Every monitor knows both replicas and the two other monitors.
pub fn wait_discovery(mons: &[Proc]) {
    for m in mons {
        wait_for("discovery of replicas and monitors", Duration::from_secs(20), || {
            let v = m.try_conn().ok()?.try_cmd(&["SENTINEL", "master", "mymaster"]).ok()?;
            (field(&v, "num-slaves")? == "2" && field(&v, "num-other-sentinels")? == "2").then_some(())
        });
    }
}

/// Path of the shardis-monitor binary built by cargo for the test crate.
pub fn monitor_bin() -> String {
    env!("CARGO_BIN_EXE_shardis-monitor").to_string()
}

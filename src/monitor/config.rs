//! shardis-monitor's options: `config/monitor.toml` (optional) with flags
//! on top, as shardis-server's `config` does. Pure: no I/O beyond reading
//! the file named on the command line.

use super::election::{Addr, MasterConfig};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct MonitorConfig {
    /// Address to listen on (and announce to the other monitors, unless
    /// `announce-ip` is set).
    pub bind: String,
    pub port: u16,
    pub announce_ip: String,
    /// Directory of the state file (`monitor-state.toml`).
    pub dir: String,
    /// Defaults for masters that do not set their own.
    pub down_after_milliseconds: u64,
    pub failover_timeout: u64,
    pub parallel_syncs: u32,
    pub logfile: String,
    #[serde(rename = "master")]
    pub masters: Vec<MasterEntry>,
}

/// One `[[master]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasterEntry {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub quorum: u32,
    pub down_after_milliseconds: Option<u64>,
    pub failover_timeout: Option<u64>,
    pub parallel_syncs: Option<u32>,
    #[serde(default)]
    pub auth_pass: String,
    /// The ACL user `auth_pass` is for (empty: `default`).
    #[serde(default)]
    pub auth_user: String,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            bind: "127.0.0.1".into(),
            port: 26379,
            announce_ip: String::new(),
            dir: ".".into(),
            down_after_milliseconds: 30_000,
            failover_timeout: 180_000,
            parallel_syncs: 1,
            logfile: String::new(),
            masters: Vec::new(),
        }
    }
}

#[derive(clap::Parser, Debug, Default)]
#[command(
    name = "shardis-monitor",
    about = "Watches shardis/redis masters and fails over; speaks Redis Sentinel's protocol"
)]
pub struct Cli {
    /// TOML file (see config/monitor.toml).
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub bind: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long)]
    pub announce_ip: Option<String>,
    /// Directory of the state file.
    #[arg(long)]
    pub dir: Option<String>,
    /// "name host port quorum"; may be given several times.
    #[arg(long = "monitor")]
    pub monitors: Vec<String>,
    #[arg(long)]
    pub down_after_milliseconds: Option<u64>,
    #[arg(long)]
    pub failover_timeout: Option<u64>,
    #[arg(long)]
    pub logfile: Option<String>,
}

impl MonitorConfig {
    pub fn load(cli: &Cli) -> Result<MonitorConfig, String> {
        let mut c = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
                toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?
            }
            None => MonitorConfig::default(),
        };
        if let Some(v) = &cli.bind {
            c.bind = v.clone();
        }
        if let Some(v) = cli.port {
            c.port = v;
        }
        if let Some(v) = &cli.announce_ip {
            c.announce_ip = v.clone();
        }
        if let Some(v) = &cli.dir {
            c.dir = v.clone();
        }
        // A flag is the last word for every master, also for one that sets
        // its own value in the file.
        if let Some(v) = cli.down_after_milliseconds {
            c.down_after_milliseconds = v;
            c.masters.iter_mut().for_each(|m| m.down_after_milliseconds = None);
        }
        if let Some(v) = cli.failover_timeout {
            c.failover_timeout = v;
            c.masters.iter_mut().for_each(|m| m.failover_timeout = None);
        }
        if let Some(v) = &cli.logfile {
            c.logfile = v.clone();
        }
        for m in &cli.monitors {
            let flag = parse_monitor_flag(m)?;
            // `--monitor` for a master the file names moves it (address,
            // quorum); what the flag cannot say (auth, timeouts) stays.
            match c.masters.iter_mut().find(|e| e.name == flag.name) {
                Some(e) => {
                    e.host = flag.host;
                    e.port = flag.port;
                    e.quorum = flag.quorum;
                }
                None => c.masters.push(flag),
            }
        }
        Ok(c)
    }

    /// The masters with defaults filled in, validated.
    pub fn master_configs(&self) -> Result<Vec<MasterConfig>, String> {
        self.masters
            .iter()
            .map(|m| {
                let c = MasterConfig {
                    name: m.name.clone(),
                    addr: Addr::new(&m.host, m.port),
                    quorum: m.quorum,
                    down_after_ms: m.down_after_milliseconds.unwrap_or(self.down_after_milliseconds),
                    failover_timeout_ms: m.failover_timeout.unwrap_or(self.failover_timeout),
                    parallel_syncs: m.parallel_syncs.unwrap_or(self.parallel_syncs),
                    auth_pass: m.auth_pass.clone(),
                    auth_user: m.auth_user.clone(),
                };
                super::election::check_config(&c).map_err(|e| format!("master {}: {e}", m.name))?;
                Ok(c)
            })
            .collect()
    }

    /// The address other monitors reach us at.
    pub fn announce(&self) -> Addr {
        let host = if self.announce_ip.is_empty() { &self.bind } else { &self.announce_ip };
        Addr::new(host, self.port)
    }
}

/// `--monitor "name host port quorum"`.
pub fn parse_monitor_flag(s: &str) -> Result<MasterEntry, String> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [name, host, port, quorum] = f[..] else {
        return Err(format!("--monitor wants \"name host port quorum\", got {s:?}"));
    };
    Ok(MasterEntry {
        name: name.into(),
        host: host.into(),
        port: port.parse().map_err(|_| format!("--monitor {s:?}: bad port"))?,
        quorum: quorum.parse().map_err(|_| format!("--monitor {s:?}: bad quorum"))?,
        down_after_milliseconds: None,
        failover_timeout: None,
        parallel_syncs: None,
        auth_pass: String::new(),
        auth_user: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn file_then_flags() {
        let c: MonitorConfig = toml::from_str(
            "port = 26380\ndown-after-milliseconds = 500\n[[master]]\nname = \"a\"\nhost = \"127.0.0.2\"\nport = 6379\nquorum = 2\nfailover-timeout = 900\n",
        )
        .unwrap();
        let m = c.master_configs().unwrap();
        assert_eq!((m[0].down_after_ms, m[0].failover_timeout_ms, c.port), (500, 900, 26380));
        let cli =
            Cli::parse_from(["x", "--monitor", "b 127.0.0.3 6380 1", "--port", "1", "--down-after-milliseconds", "7"]);
        let c = MonitorConfig::load(&cli).unwrap();
        assert_eq!((c.port, c.masters[0].name.as_str(), c.master_configs().unwrap()[0].down_after_ms), (1, "b", 7));
        assert!(parse_monitor_flag("a b c").is_err() && parse_monitor_flag("a h 99999 1").is_err());
        assert!(toml::from_str::<MonitorConfig>("nope = 1").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("shardis-monitor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("monitor.toml");
        std::fs::write(
            &path,
            "port = 26380\ndown-after-milliseconds = 500\n\
             [[master]]\nname = \"a\"\nhost = \"127.0.0.2\"\nport = 6379\nquorum = 2\n\
             down-after-milliseconds = 800\nfailover-timeout = 900\nauth-pass = \"p\"\n\
             [[master]]\nname = \"b\"\nhost = \"127.0.0.3\"\nport = 6380\nquorum = 1\n",
        )
        .expect("write config");
        let path = path.to_string_lossy().into_owned();
        let cli = Cli::parse_from([
            "x",
            "--config",
            &path,
            "--monitor",
            "a 127.0.0.9 7000 3",
            "--monitor",
            "c 127.0.0.4 7001 1",
            "--port",
            "26999",
            "--down-after-milliseconds",
            "100",
            "--failover-timeout",
            "2000",
        ]);
        let c = MonitorConfig::load(&cli).expect("loads");
        // Without flags, the file's own values hold.
        let plain = MonitorConfig::load(&Cli::parse_from(["x", "--config", &path])).expect("loads");
        let _ = std::fs::remove_dir_all(&dir);
        let pm = plain.master_configs().expect("valid");
        assert_eq!(
            (pm[0].addr.port, pm[0].down_after_ms, pm[0].failover_timeout_ms, pm[1].down_after_ms),
            (6379, 800, 900, 500)
        );
        assert_eq!(c.port, 26999);
        let m = c.master_configs().expect("valid");
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"], "the flag moved a, did not add a second a");
        assert_eq!((m[0].addr.host.as_str(), m[0].addr.port, m[0].quorum), ("127.0.0.9", 7000, 3));
        assert_eq!(m[0].auth_pass, "p", "what the flag cannot say stays from the file");
        for x in &m {
            assert_eq!((x.down_after_ms, x.failover_timeout_ms), (100, 2000), "{}", x.name);
        }
        assert_eq!((m[1].addr.host.as_str(), m[1].addr.port), ("127.0.0.3", 6380));
    }

    #[test]
    fn auth_user_and_pass_reach_the_master_config() {
        let c: MonitorConfig = toml::from_str(
            "[[master]]\nname = \"a\"\nhost = \"h\"\nport = 1\nquorum = 1\nauth-pass = \"p\"\nauth-user = \"mon\"\n",
        )
        .expect("parses");
        let m = c.master_configs().expect("valid");
        assert_eq!((m[0].auth_user.as_str(), m[0].auth_pass.as_str()), ("mon", "p"));
    }
}

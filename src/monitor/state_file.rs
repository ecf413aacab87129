//! The monitor's state file (`<dir>/monitor-state.toml`): its id, epoch,
//! votes and what it learnt of each master. Written by `write`: a
//! temporary file, fsync, rename over the old one, fsync of the directory;
//! a crash leaves the old state or the new one, never a torn one. A vote is
//! sent only after `write` returned (the election's `Action::Persist`).

use super::election::{Addr, MasterConfig, Persisted, PersistedMaster};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE: &str = "monitor-state.toml";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    my_id: String,
    current_epoch: u64,
    #[serde(default, rename = "master")]
    masters: Vec<Master>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Master {
    name: String,
    host: String,
    port: u16,
    quorum: u32,
    down_after_milliseconds: u64,
    failover_timeout: u64,
    parallel_syncs: u32,
    auth_pass: String,
    #[serde(default)]
    auth_user: String,
    config_epoch: u64,
    leader: String,
    leader_epoch: u64,
    replicas: Vec<String>,
    /// "runid host:port"
    monitors: Vec<String>,
}

fn addr(s: &str) -> Result<Addr, String> {
    let (h, p) = s.rsplit_once(':').ok_or_else(|| format!("bad address {s:?}"))?;
    Ok(Addr::new(h, p.parse().map_err(|_| format!("bad port in {s:?}"))?))
}

pub fn path(dir: &str) -> PathBuf {
    Path::new(dir).join(FILE)
}

pub fn encode(p: &Persisted) -> Result<String, String> {
    let f = File {
        my_id: p.my_id.clone(),
        current_epoch: p.current_epoch,
        masters: p
            .masters
            .iter()
            .map(|m| Master {
                name: m.config.name.clone(),
                host: m.config.addr.host.clone(),
                port: m.config.addr.port,
                quorum: m.config.quorum,
                down_after_milliseconds: m.config.down_after_ms,
                failover_timeout: m.config.failover_timeout_ms,
                parallel_syncs: m.config.parallel_syncs,
                auth_pass: m.config.auth_pass.clone(),
                auth_user: m.config.auth_user.clone(),
                config_epoch: m.config_epoch,
                leader: m.leader.clone().unwrap_or_default(),
                leader_epoch: m.leader_epoch,
                replicas: m.replicas.iter().map(|a| a.to_string()).collect(),
                monitors: m.monitors.iter().map(|(id, a)| format!("{id} {a}")).collect(),
            })
            .collect(),
    };
    toml::to_string(&f).map_err(|e| format!("encoding the monitor state: {e}"))
}

pub fn decode(text: &str) -> Result<Persisted, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut masters = Vec::new();
    for m in f.masters {
        let monitors = m
            .monitors
            .iter()
            .map(|s| {
                let (id, a) = s.split_once(' ').ok_or_else(|| format!("bad monitor entry {s:?}"))?;
                Ok((id.to_string(), addr(a)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        masters.push(PersistedMaster {
            config: MasterConfig {
                name: m.name,
                addr: Addr::new(&m.host, m.port),
                quorum: m.quorum,
                down_after_ms: m.down_after_milliseconds,
                failover_timeout_ms: m.failover_timeout,
                parallel_syncs: m.parallel_syncs,
                auth_pass: m.auth_pass,
                auth_user: m.auth_user,
            },
            config_epoch: m.config_epoch,
            leader: Some(m.leader).filter(|l| !l.is_empty()),
            leader_epoch: m.leader_epoch,
            replicas: m.replicas.iter().map(|s| addr(s)).collect::<Result<_, _>>()?,
            monitors,
        });
    }
    Ok(Persisted { my_id: f.my_id, current_epoch: f.current_epoch, masters })
}

/// The state in `dir`, or None when there is none yet.
pub fn read(dir: &str) -> Result<Option<Persisted>, String> {
    let p = path(dir);
    match fs::read_to_string(&p) {
        Ok(t) => decode(&t).map(Some).map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Durably replace the state file.
pub fn write(dir: &str, p: &Persisted) -> Result<(), String> {
    let text = encode(p)?;
    let fin = path(dir);
    let tmp = Path::new(dir).join(format!("{FILE}.tmp"));
    let ctx = |what: &str, e: std::io::Error| format!("{what} {}: {e}", tmp.display());
    let mut f = fs::File::create(&tmp).map_err(|e| ctx("create", e))?;
    f.write_all(text.as_bytes()).map_err(|e| ctx("write", e))?;
    f.sync_all().map_err(|e| ctx("fsync", e))?;
    fs::rename(&tmp, &fin).map_err(|e| ctx("rename", e))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("fsync directory {dir}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Persisted {
            my_id: "abc".into(),
            current_epoch: 9,
            masters: vec![PersistedMaster {
                config: MasterConfig {
                    name: "m".into(),
                    addr: Addr::new("127.0.0.2", 6379),
                    quorum: 2,
                    down_after_ms: 1000,
                    failover_timeout_ms: 3000,
                    parallel_syncs: 1,
                    auth_pass: String::new(),
                    auth_user: String::new(),
                },
                config_epoch: 4,
                leader: Some("def".into()),
                leader_epoch: 9,
                replicas: vec![Addr::new("127.0.0.3", 6380)],
                monitors: vec![("xyz".into(), Addr::new("127.0.0.5", 26379))],
            }],
        };
        assert_eq!(decode(&encode(&p).unwrap()), Ok(p));
        assert!(decode("my-id = 1").is_err());
    }
}

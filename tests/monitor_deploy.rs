//! The 3-host example deployment of README.md, from exactly the files in
//! config/deploy/: a shardis-server master and two replicas, and three
//! shardis-monitors, on 127.0.0.2, .3 and .4 at their fixed ports (6379
//! and 26379; below the ephemeral range, so no other test's free port can
//! take them). The monitors find the master, both replicas and each other.

mod common;

use common::monitor::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/deploy");

fn from_file(bin: &str, file: &str, host: &str, port: u16) -> Proc {
    let dir = new_dir(file.trim_end_matches(".toml"));
    Proc::spawn(host, port, dir, vec![bin.into(), "--config".into(), format!("{DEPLOY}/{file}")])
}

#[test]
fn the_example_deployment_files_run_and_the_monitors_see_everyone() {
    let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    for h in hosts {
        for port in [6379, 26379] {
            assert!(
                std::net::TcpListener::bind((h, port)).is_ok(),
                "{h}:{port} is taken; config/deploy/ uses it (stop what holds it)"
            );
        }
    }
    let server = env!("CARGO_BIN_EXE_shardis-server");
    let master = from_file(server, "master.toml", hosts[0], 6379);
    let _replicas =
        [from_file(server, "replica-1.toml", hosts[1], 6379), from_file(server, "replica-2.toml", hosts[2], 6379)];
    let mons: Vec<Proc> =
        (1..=3).map(|n| from_file(&monitor_bin(), &format!("monitor-{n}.toml"), hosts[n - 1], 26379)).collect();
    wait_discovery(&mons);
    for m in &mons {
        assert_eq!(master_addr(m), Some((hosts[0].to_string(), 6379)), "{}", m.logs());
        let v = m.conn().cmd(&["SENTINEL", "replicas", "mymaster"]);
        let mut seen: Vec<String> = v.as_items().unwrap_or_default().iter().filter_map(|r| field(r, "ip")).collect();
        seen.sort();
        assert_eq!(seen, [hosts[1], hosts[2]], "replicas seen by the monitor on {}", m.host);
        let v = m.conn().cmd(&["SENTINEL", "master", "mymaster"]);
        assert_eq!(field(&v, "down-after-milliseconds").as_deref(), Some("1000"), "the file's settings");
    }
    // Data and state went where the files say, under each process's dir.
    assert!(master.dir.join("data-master").is_dir());
    assert!(mons[0].dir.join("monitor-1/monitor-state.toml").is_file());
}

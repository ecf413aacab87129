//! shardis-monitor: watches masters and fails over by epoch-numbered
//! elections; speaks Redis Sentinel's protocol. See `shardis::monitor`.

use clap::Parser;
use shardis::monitor::config::{Cli, MonitorConfig};
use shardis::monitor::driver::{random_bytes, Driver};
use shardis::monitor::election::Monitor;
use shardis::monitor::state_file;
use std::net::TcpListener;

fn fail(msg: String) -> ! {
    shardis::log(&format!("shardis-monitor: {msg}"));
    std::process::exit(1);
}

fn main() {
    let cli = Cli::parse();
    let cfg = MonitorConfig::load(&cli).unwrap_or_else(|e| fail(e));
    shardis::set_logfile(&cfg.logfile);
    let masters = cfg.master_configs().unwrap_or_else(|e| fail(e));
    if let Err(e) = std::fs::create_dir_all(&cfg.dir) {
        fail(format!("cannot create dir {}: {e}", cfg.dir));
    }
    let listener = TcpListener::bind((cfg.bind.as_str(), cfg.port))
        .unwrap_or_else(|e| fail(format!("cannot listen on {}:{}: {e}", cfg.bind, cfg.port)));
    let rnd = random_bytes();
    let seed = u64::from_le_bytes([rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]]);
    let state = state_file::read(&cfg.dir).unwrap_or_else(|e| fail(format!("state file: {e}")));
    let restored = state.is_some();
    // The clock starts with the driver; the machine's times are from it.
    let mut mon = match &state {
        Some(p) => Monitor::restore(p, cfg.announce(), seed, 0),
        None => {
            let id: String = rnd[8..28].iter().map(|b| format!("{b:02x}")).collect();
            Monitor::new(id, cfg.announce(), seed)
        }
    };
    let mut first = Vec::new();
    for m in masters {
        // The state file wins for masters it knows: a failover may have moved them.
        if !mon.masters.contains_key(&m.name) {
            match mon.add_master(m, 0) {
                Ok(a) => first.extend(a),
                Err(e) => fail(e),
            }
        }
    }
    // Persist at once: the run id and epoch must survive the first crash.
    if let Err(e) = state_file::write(&cfg.dir, &mon.snapshot()) {
        fail(format!("cannot write the state file: {e}"));
    }
    shardis::log(&format!(
        "shardis-monitor {} listening on {}:{} ({} state, epoch {}, {} masters)",
        mon.my_id,
        cfg.bind,
        cfg.port,
        if restored { "restored" } else { "new" },
        mon.current_epoch,
        mon.masters.len()
    ));
    if let Err(e) = Driver::new(mon, cfg.dir.clone()).run(listener) {
        fail(e);
    }
}

//! `shardis-server`: parse options, start the shards, wait for them.
use clap::Parser;

fn main() {
    let cli = shardis::config::Cli::parse();
    let config = match shardis::config::Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardis-server: {}", e);
            std::process::exit(2);
        }
    };
    shardis::set_logfile(&config.logfile);
    if let Err(e) = shardis::shard::run(config) {
        shardis::log(&format!("fatal: {}", e));
        std::process::exit(1);
    }
}

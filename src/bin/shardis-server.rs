//! `shardis-server`: parse options, start the shards, wait for them.
//! `shardis-server check-aof [--fix] [--yes] DIR` verifies (and repairs) a
//! data directory instead; `shardis-server import-rdb [--shards N] FILE
//! DIR` turns a redis-server RDB file into a data directory.

/// mimalloc: small size classes close to the request size (8, 16, 24, 32,
/// 48, ...) where glibc adds a header and rounds to 16; most of a key's
/// memory is small allocations (see benches/RESULTS.md, memory).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn check_aof(args: &[String]) -> i32 {
    let mut fix = false;
    let mut yes = false;
    let mut dir = None;
    for a in args {
        match a.as_str() {
            "--fix" => fix = true,
            "--yes" | "-y" => yes = true,
            d if !d.starts_with('-') && dir.is_none() => dir = Some(d.to_string()),
            other => {
                eprintln!("check-aof: unexpected argument '{}'", other);
                return 2;
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: shardis-server check-aof [--fix] [--yes] DIR");
        return 2;
    };
    shardis::persist::check::run(std::path::Path::new(&dir), fix, yes)
}

fn import_rdb(args: &[String]) -> i32 {
    const USAGE: &str = "usage: shardis-server import-rdb [--shards N] FILE DIR";
    let mut shards = 1usize;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--shards" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n >= 1 => shards = n,
                _ => {
                    eprintln!("import-rdb: --shards wants a number >= 1\n{USAGE}");
                    return 2;
                }
            },
            p if !p.starts_with('-') => paths.push(p.to_string()),
            other => {
                eprintln!("import-rdb: unexpected argument '{other}'\n{USAGE}");
                return 2;
            }
        }
    }
    let [file, dir] = &paths[..] else {
        eprintln!("{USAGE}");
        return 2;
    };
    let progress = |line: &str| eprintln!("{line}");
    match shardis::persist::import_rdb::run(std::path::Path::new(file), std::path::Path::new(dir), shards, progress) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("import-rdb: {e}");
            1
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("check-aof") {
        std::process::exit(check_aof(&argv[2..]));
    }
    if argv.get(1).map(String::as_str) == Some("import-rdb") {
        std::process::exit(import_rdb(&argv[2..]));
    }
    let cli = match shardis::config::Cli::parse_args(argv) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e);
            if !e.ends_with('\n') {
                eprintln!();
            }
            // clap's help and version are not errors.
            let ok = e.contains("Usage:") && !e.starts_with("error:") || e.starts_with("shardis-server ");
            std::process::exit(if ok { 0 } else { 2 });
        }
    };
    let config = match shardis::config::Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardis-server: {}", e);
            std::process::exit(2);
        }
    };
    shardis::set_logfile(&config.logfile);
    shardis::crash::install_panic_hook();
    if let Err(e) = shardis::shard::run(config) {
        shardis::log(&format!("fatal: {}", e));
        std::process::exit(1);
    }
}

//! `shardis-server check-aof [--fix] [--yes] DIR`: verify every record of
//! every shard and report the first bad offset per shard; with `--fix`,
//! cut the log there (after asking, unless `--yes`).

use super::load::{list_segments, verify_shard};
use super::manifest::Manifest;
use std::io::Write;
use std::path::Path;

/// Returns the process exit code: 0 all good (or fixed), 1 damage left.
pub fn run(dir: &Path, fix: bool, yes: bool) -> i32 {
    let m = match Manifest::read(dir) {
        Ok(Some(m)) => m,
        Ok(None) => {
            println!("{}: no {} here: not a shardis data directory", dir.display(), super::manifest::FILE);
            return 1;
        }
        Err(e) => {
            println!("{}", e);
            return 1;
        }
    };
    let mut bad = 0;
    for s in 0..m.shards {
        match verify_shard(dir, s, &m) {
            Ok((records, bytes, torn)) => {
                print!("shard {}: ok, {} records after the base, {} bytes", s, records, bytes);
                match torn {
                    Some((path, at)) => {
                        println!("; torn tail at {} offset {} (start-up truncates it)", path.display(), at);
                        if fix && confirm(yes, &format!("truncate {} at {}?", path.display(), at)) {
                            bad += cut_from(&path, at as u64);
                        }
                    }
                    None => println!(),
                }
            }
            Err(e) => {
                println!("shard {}: BAD: {}", s, e.msg);
                match (fix, e.bad) {
                    (true, Some((path, at))) => {
                        let q = format!(
                            "truncate {} at offset {} and remove the segments after it (their records are lost)?",
                            path.display(),
                            at
                        );
                        if confirm(yes, &q) {
                            bad += cut_from(&path, at as u64);
                        } else {
                            bad += 1;
                        }
                    }
                    _ => bad += 1,
                }
            }
        }
    }
    if bad == 0 {
        0
    } else {
        1
    }
}

fn confirm(yes: bool, question: &str) -> bool {
    if yes {
        println!("{} yes (--yes)", question);
        return true;
    }
    print!("{} [y/N] ", question);
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// Truncate `path` at `at` and delete the later segments of its shard;
/// returns 1 on failure.
fn cut_from(path: &Path, at: u64) -> i32 {
    let res = (|| -> Result<(), String> {
        super::load::truncate(path, at)?;
        let dir = path.parent().ok_or("no parent directory")?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let this = super::parse_segment_name(name).unwrap_or(u64::MAX);
        for (lsn, p) in list_segments(dir)? {
            if lsn > this {
                std::fs::remove_file(&p).map_err(|e| format!("removing {}: {}", p.display(), e))?;
                println!("removed {}", p.display());
            }
        }
        Ok(())
    })();
    match res {
        Ok(()) => {
            println!("fixed: {} truncated to {} bytes", path.display(), at);
            0
        }
        Err(e) => {
            println!("fix failed for {}: {}", path.display(), e);
            1
        }
    }
}

//! The AOF loader on arbitrary bytes, as the server meets them at start-up:
//! the input becomes the log segment(s) of a data directory that
//! `load::recover` then loads (record decoding, the torn-tail rule, lsn
//! order, cross-shard transaction cuts, replay of the commands through the
//! command table), and the same bytes go through `load::replay_buffer`.
//! Either loads or refuses with an error: never a crash or a hang.
//!
//! Input: byte 0 holds flags (bit 0: fix every record's checksum, so the
//! fuzzer gets past it to the payloads; bit 1: renumber the records' lsns
//! in order, so they pass the order check; bit 2: two shards), bytes 1..3
//! where shard 1's segment starts (LE), the rest is the segment bytes.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shardis::persist::{self, crc32c, load, manifest::Manifest, record};

/// A data directory of this process's own, on tmpfs where there is one
/// (recovery fsyncs), emptied before each input.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // Recovery logs what it cuts; one line per input is only noise here.
        shardis::set_logfile("/dev/null");
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        base.join(format!("shardis-fuzz-aof-{}", std::process::id()))
    })
}

/// Walk the records from the start, making each one's checksum and/or lsn
/// right, up to the first that does not fit.
fn fix_records(seg: &mut [u8], crcs: bool, lsns: bool) {
    let (mut pos, mut lsn) = (0, 1u64);
    while pos + record::HEADER_LEN <= seg.len() {
        let len = u32::from_le_bytes([seg[pos], seg[pos + 1], seg[pos + 2], seg[pos + 3]]) as usize;
        let total = record::HEADER_LEN + len;
        if total > seg.len() - pos {
            break;
        }
        if lsns {
            seg[pos + 8..pos + 16].copy_from_slice(&lsn.to_le_bytes());
            lsn += 1;
        }
        if crcs {
            let crc = crc32c::crc32c(&seg[pos + 8..pos + total]);
            seg[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        }
        pos += total;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let flags = data[0];
    let split = u16::from_le_bytes([data[1], data[2]]) as usize;
    let body = &data[3..];
    let nshards = if flags & 4 != 0 { 2 } else { 1 };
    let split = if nshards == 2 { split.min(body.len()) } else { body.len() };
    let mut segs = vec![body[..split].to_vec(), body[split..].to_vec()];
    for seg in segs.iter_mut() {
        fix_records(seg, flags & 1 != 0, flags & 2 != 0);
    }
    let _ = load::replay_buffer(&segs[0]);

    let root = root();
    let _ = std::fs::remove_dir_all(root);
    for (shard, seg) in segs.iter().take(nshards).enumerate() {
        let dir = persist::shard_dir(root, shard);
        std::fs::create_dir_all(&dir).expect("shard dir");
        std::fs::write(dir.join(persist::segment_name(1)), seg).expect("segment");
    }
    Manifest::new(nshards).write(root).expect("manifest");
    let _ = load::recover(root, nshards);
});

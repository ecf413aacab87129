//! The RDB decoder on arbitrary bytes: as a DUMP payload (RESTORE) and as
//! a dump.rdb file (import-rdb). Either decodes or refuses with an error:
//! never a crash, a hang or a huge allocation.
//!
//! Input: byte 0 holds flags (bit 0: give the payload a right RDB version
//! and CRC-64 trailer, so the fuzzer gets past the checksum to the object
//! decoder; bit 1: prefix "REDIS0010" and read it as a file), the rest is
//! the payload or file body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shardis::rdb::{crc64, file, payload};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    if flags & 2 != 0 {
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(body);
        if let Ok(mut p) = file::RdbFile::new(&f) {
            // Every item consumes input, so this ends; bounded anyway.
            for _ in 0..100_000 {
                match p.next_item() {
                    Ok(file::Item::End) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        return;
    }
    let mut p = body.to_vec();
    if flags & 1 != 0 {
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
    }
    if let Ok(v) = payload::restore(&p) {
        // What decodes must encode again and decode to the same type.
        let again = payload::restore(&payload::dump(&v)).expect("a dumped value restores");
        assert_eq!(again.type_name(), v.type_name());
    }
});

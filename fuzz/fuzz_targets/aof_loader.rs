//! The AOF loader on arbitrary bytes: any input must be either replayed
//! or rejected with an error, never crash or hang. Inputs that start with
//! a valid record header get their CRC fixed up (bytes 4..8) so the fuzzer
//! also reaches the payload parser and the commands behind it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shardis::persist::{crc32c, load, record};

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    // Make the first record's checksum right, whatever its payload.
    if buf.len() >= record::HEADER_LEN {
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let total = record::HEADER_LEN + len;
        if total <= buf.len() {
            let crc = crc32c::crc32c(&buf[8..total]);
            buf[4..8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let _ = load::replay_buffer(&buf);
});

//! CRC-64 as Redis computes it for DUMP payloads and RDB files: the Jones
//! polynomial (0xad93d23594c935a9), reflected input and output, initial
//! value 0, no final xor. Check value: crc64("123456789") = 0xe9c6d914c4b8d9ca.

/// The Jones polynomial with its bits reversed (the reflected form).
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const fn table() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY_REFLECTED } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    // Slicing-by-8: t[k][i] is the CRC of byte i followed by k zero bytes.
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = t[0][(prev & 0xff) as usize] ^ (prev >> 8);
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLE: [[u64; 256]; 8] = table();

/// Continue a CRC over `data` (start with 0). An RDB file is checked
/// chunk by chunk, so the state is exposed.
pub fn update(mut crc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = TABLE[7][(v & 0xff) as usize]
            ^ TABLE[6][((v >> 8) & 0xff) as usize]
            ^ TABLE[5][((v >> 16) & 0xff) as usize]
            ^ TABLE[4][((v >> 24) & 0xff) as usize]
            ^ TABLE[3][((v >> 32) & 0xff) as usize]
            ^ TABLE[2][((v >> 40) & 0xff) as usize]
            ^ TABLE[1][((v >> 48) & 0xff) as usize]
            ^ TABLE[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = TABLE[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

pub fn crc64(data: &[u8]) -> u64 {
    update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn sliced_equals_bytewise() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut slow = 0u64;
        for &b in &data {
            slow = TABLE[0][((slow ^ b as u64) & 0xff) as usize] ^ (slow >> 8);
        }
        assert_eq!(crc64(&data), slow);
        assert_eq!(update(update(0, &data[..13]), &data[13..]), slow);
    }
}

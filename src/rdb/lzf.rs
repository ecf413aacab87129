//! LZF, the compression Redis applies to strings longer than 20 bytes in
//! RDB files and DUMP payloads (`rdbcompression yes`). The format: a
//! control byte below 32 starts a run of ctrl + 1 literal bytes; any other
//! is a back reference of (ctrl >> 5) + 2 bytes (7 means: add the next
//! byte), at distance ((ctrl & 31) << 8 | next byte) + 1 behind the output.
//!
//! Only decompression: shardis writes strings uncompressed, which Redis
//! reads as well.

/// Decompress `input`, which must expand to exactly `out_len` bytes;
/// None if it does not (truncated, a reference before the start, too long).
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    // A hostile out_len must not reserve memory the input cannot fill: one
    // input byte yields at most 88 output bytes (a 3-byte reference of 264).
    let mut out = Vec::with_capacity(out_len.min(input.len().saturating_mul(88)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n)?;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let len = len + 2;
            if back > out.len() || out.len() + len > out_len {
                return None;
            }
            // Byte by byte: a reference may overlap what it produces.
            let start = out.len() - back;
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_references() {
        // ctrl 0xe0 = len 7, next byte 0 -> 9 bytes, distance (0<<8|0)+1 = 1.
        assert_eq!(decompress(&[0, b'a', 0xe0, 0, 0], 10).as_deref(), Some(&b"aaaaaaaaaa"[..]));
        assert_eq!(decompress(&[2, b'a', b'b', b'c', 0x20, 2], 6).as_deref(), Some(&b"abcabc"[..]));
    }

    #[test]
    fn hostile_inputs_are_refused() {
        assert_eq!(decompress(&[5, b'a'], 6), None); // truncated literal
        assert_eq!(decompress(&[0x20, 0], 3), None); // reference before the start
        assert_eq!(decompress(&[0, b'a'], 2), None); // too short
        assert_eq!(decompress(&[1, b'a', b'b'], 1), None); // too long
        assert_eq!(decompress(&[0, b'a', 0xe0], 100), None); // truncated reference
        assert!(decompress(&[0, b'a'], usize::MAX).is_none());
    }
}

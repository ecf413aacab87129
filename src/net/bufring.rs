//! A provided-buffer ring for multishot recv: the kernel picks a free
//! buffer for each arriving chunk, so one armed recv per connection serves
//! every request (no re-arm and no poll set-up per request). The loop copies
//! each chunk into the connection's own buffer and hands the buffer back at
//! once, so the ring never runs dry for long.

use io_uring::IoUring;
use std::sync::atomic::{AtomicU16, Ordering};

pub const BGID: u16 = 7;

pub struct BufRing {
    ring: *mut u8,
    ring_len: usize,
    bufs: Vec<u8>,
    entries: u16,
    buf_size: usize,
    tail: u16,
}

// Layout of `struct io_uring_buf` (16 bytes): addr u64, len u32, bid u16, resv u16.
// The ring's tail is the `resv` field of entry 0.
const ENTRY: usize = 16;

impl BufRing {
    pub fn new(ring: &IoUring, entries: u16, buf_size: usize) -> std::io::Result<BufRing> {
        let ring_len = entries as usize * ENTRY;
        // SAFETY: anonymous page-aligned mapping owned by this struct.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: mem as *mut u8,
            ring_len,
            bufs: vec![0u8; entries as usize * buf_size],
            entries,
            buf_size,
            tail: 0,
        };
        // SAFETY: the ring memory stays mapped until Drop, after the ring
        // itself is gone (the shard drops its BufRing after its IoUring).
        unsafe { ring.submitter().register_buf_ring_with_flags(mem as u64, entries, BGID, 0)? };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    fn push(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * self.buf_size as u64;
        // SAFETY: slot < entries, inside the mapping.
        unsafe {
            let e = self.ring.add(slot * ENTRY);
            (e as *mut u64).write_unaligned(addr);
            (e.add(8) as *mut u32).write_unaligned(self.buf_size as u32);
            (e.add(12) as *mut u16).write_unaligned(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: offset 14 is the tail field; the kernel reads it with acquire.
        unsafe {
            let t = &*(self.ring.add(14) as *const AtomicU16);
            t.store(self.tail, Ordering::Release);
        }
    }

    /// The bytes the kernel put in buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }

    /// Give buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.entries {
            self.push(bid);
            self.publish();
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_len);
        }
    }
}

//! A key's entry: the key, its value, access clock and expiry in one
//! allocation sized to fit (the hash table in `dict.rs` chains them).

use super::value::Value;

/// One key, its value, access clock and (if it has one) expiry, in ONE
/// allocation sized to fit, as Valkey 8.1 embeds the key in its object:
///
/// ```text
/// 0   next: the bucket chain            8 bytes   } the `Entry` type
/// 8   value: Value                     32 bytes   }
/// 40  Meta: key length u32, clock [u8; 3], flags u8
/// 48  key bytes (any length)
///     expire i64, unaligned              8 bytes, only with HAS_EXPIRE
/// ```
///
/// A 16-byte key takes 64 bytes (mimalloc's 64-byte size class) where the
/// fixed entry took 72 (an 80-byte class) and keys over 19 bytes needed a
/// second allocation. Keys without an expiry (most) carry no expiry
/// bytes; the slot is added (by reallocating, `Dict::set_expire`) when
/// one is set, and kept when it is cleared.
///
/// `&Entry` covers only the chain pointer and the value; what says how
/// big the allocation is (`Meta`) lies past it, read through the entry's
/// address, so even swapping two entries' `Entry` parts (safe code can,
/// given two `&mut Entry`) keeps each allocation consistent with its meta.
#[repr(C)]
pub struct Entry {
    pub(super) next: Option<EntryBox>,
    pub value: Value,
}

/// The fixed part after `Entry`.
#[repr(C)]
struct Meta {
    klen: u32,
    /// The 24-bit access clock (Redis's `lru` field: LRU seconds or LFU
    /// minutes + counter).
    clock: [u8; 3],
    flags: u8,
}

/// The entry has the 8 trailing expiry bytes.
const HAS_EXPIRE: u8 = 1;

/// Where `Meta` starts and where the key starts.
const META: usize = std::mem::size_of::<Entry>();
const HEAD: usize = META + std::mem::size_of::<Meta>();

/// The size class mimalloc (the server's allocator) serves a request of
/// `n` bytes from: 8-byte steps up to 64, then four classes per power of
/// two (80, 96, 112, 128, 160, ...). Used to give an entry its expiry
/// slot when it costs nothing, and to count what entries really take.
pub fn size_class(n: usize) -> usize {
    if n <= 64 {
        return n.max(8).next_multiple_of(8);
    }
    let b = usize::BITS - 1 - (n - 1).leading_zeros(); // floor(log2(n - 1))
    n.next_multiple_of(1 << (b - 2))
}

impl Entry {
    #[inline]
    fn alloc_len(klen: usize, expire_slot: bool) -> usize {
        HEAD + klen + if expire_slot { 8 } else { 0 }
    }

    #[inline]
    fn meta(&self) -> &Meta {
        // SAFETY: every Entry lives at the start of an allocation made by
        // EntryBox::new, with its Meta right after it (META is a multiple
        // of Meta's alignment).
        unsafe { &*((self as *const Entry as *const u8).add(META) as *const Meta) }
    }

    #[inline]
    fn meta_mut(&mut self) -> &mut Meta {
        // SAFETY: as in `meta`; `&mut self` is the only access.
        unsafe { &mut *((self as *mut Entry as *mut u8).add(META) as *mut Meta) }
    }

    #[inline]
    fn has_expire_slot(&self) -> bool {
        self.meta().flags & HAS_EXPIRE != 0
    }

    /// The allocation's layout.
    #[inline]
    fn layout(&self) -> std::alloc::Layout {
        let n = Self::alloc_len(self.meta().klen as usize, self.has_expire_slot());
        // Cannot fail: the same layout was valid when allocated.
        std::alloc::Layout::from_size_align(n, std::mem::align_of::<Entry>()).expect("entry layout")
    }

    /// Bytes the entry takes in the allocator (its size class).
    #[inline]
    pub fn alloc_size(&self) -> usize {
        size_class(self.layout().size())
    }

    #[inline]
    fn tail(&self) -> *const u8 {
        // SAFETY: the head is followed by `klen` key bytes (and maybe the
        // expiry) in the same allocation.
        unsafe { (self as *const Entry as *const u8).add(HEAD) }
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        // SAFETY: `klen` key bytes follow the head, written when the entry
        // was made and never changed.
        unsafe { std::slice::from_raw_parts(self.tail(), self.meta().klen as usize) }
    }

    /// Absolute expiry in Unix ms; 0 = never. A stored expiry is always in
    /// the future at the time it was set (past ones delete the key).
    #[inline]
    pub fn expire(&self) -> i64 {
        if !self.has_expire_slot() {
            return 0;
        }
        // SAFETY: with HAS_EXPIRE the 8 bytes after the key are the expiry.
        unsafe { std::ptr::read_unaligned(self.tail().add(self.meta().klen as usize) as *const i64) }
    }

    /// Store `v` if the entry has room (it has the slot, or `v` is 0 and
    /// there is no slot); false if it must be reallocated first.
    #[inline]
    pub(super) fn try_set_expire(&mut self, v: i64) -> bool {
        if !self.has_expire_slot() {
            return v == 0;
        }
        // SAFETY: as in `expire`; `&mut self` is the only access.
        unsafe {
            let p = (self as *mut Entry as *mut u8).add(HEAD + self.meta().klen as usize);
            std::ptr::write_unaligned(p as *mut i64, v);
        }
        true
    }

    #[inline]
    pub fn clock(&self) -> u32 {
        let c = self.meta().clock;
        u32::from_le_bytes([c[0], c[1], c[2], 0])
    }

    /// Store the low 24 bits of `v`.
    #[inline]
    pub fn set_clock(&mut self, v: u32) {
        let b = v.to_le_bytes();
        self.meta_mut().clock = [b[0], b[1], b[2]];
    }
}

/// An owned entry (what `Box<Entry>` would be, for an entry of any size):
/// dropping it drops the value and frees the allocation.
#[repr(transparent)]
pub struct EntryBox(std::ptr::NonNull<Entry>);

// SAFETY: an EntryBox owns its allocation outright, as a Box would, and
// Value is Send.
unsafe impl Send for EntryBox {}

impl EntryBox {
    pub(super) fn new(key: &[u8], value: Value, expire: i64) -> EntryBox {
        let klen = u32::try_from(key.len()).expect("key longer than 4 GB");
        // The expiry slot comes free when the size class has room for it.
        let base = Entry::alloc_len(key.len(), false);
        let slot = expire != 0 || size_class(base + 8) == size_class(base);
        let layout = std::alloc::Layout::from_size_align(Entry::alloc_len(key.len(), slot), 8).expect("entry layout");
        // SAFETY: the layout is non-zero; the head is written whole and the
        // key and expiry bytes after it, all inside the allocation.
        unsafe {
            let p = std::alloc::alloc(layout) as *mut Entry;
            let Some(nn) = std::ptr::NonNull::new(p) else { std::alloc::handle_alloc_error(layout) };
            p.write(Entry { next: None, value });
            let flags = if slot { HAS_EXPIRE } else { 0 };
            ((p as *mut u8).add(META) as *mut Meta).write(Meta { klen, clock: [0; 3], flags });
            let tail = (p as *mut u8).add(HEAD);
            std::ptr::copy_nonoverlapping(key.as_ptr(), tail, key.len());
            if slot {
                std::ptr::write_unaligned(tail.add(key.len()) as *mut i64, expire);
            }
            EntryBox(nn)
        }
    }

    /// Give the entry an expiry slot (it has none) and store `v` in it.
    /// The entry moves.
    pub(super) fn grow_expire(self, v: i64) -> EntryBox {
        let me = std::mem::ManuallyDrop::new(self);
        let old = me.layout();
        let new_size = Entry::alloc_len(me.meta().klen as usize, true);
        // SAFETY: `old` is the layout the entry was allocated with; realloc
        // moves the bytes (the value moves bitwise, which Rust allows) and
        // the old allocation is not used again (`me` is forgotten).
        unsafe {
            let p = std::alloc::realloc(me.0.as_ptr() as *mut u8, old, new_size) as *mut Entry;
            let Some(nn) = std::ptr::NonNull::new(p) else {
                std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align_unchecked(new_size, 8))
            };
            let mut b = EntryBox(nn);
            b.meta_mut().flags |= HAS_EXPIRE;
            b.try_set_expire(v);
            b
        }
    }

    /// The value, freeing the rest.
    pub fn into_value(self) -> Value {
        self.into_parts().0
    }

    /// The value and expiry, freeing the rest.
    pub fn into_parts(self) -> (Value, i64) {
        let me = std::mem::ManuallyDrop::new(self);
        let expire = me.expire();
        let layout = me.layout();
        // SAFETY: the value is read out once and the allocation freed
        // without dropping it again (`me` is forgotten); `next` is None
        // for an entry outside the table, so it owns nothing.
        unsafe {
            debug_assert!(me.next.is_none());
            let value = std::ptr::read(&me.0.as_ref().value);
            std::alloc::dealloc(me.0.as_ptr() as *mut u8, layout);
            (value, expire)
        }
    }
}

impl std::ops::Deref for EntryBox {
    type Target = Entry;
    #[inline]
    fn deref(&self) -> &Entry {
        // SAFETY: the pointer is a live entry this box owns.
        unsafe { self.0.as_ref() }
    }
}

impl std::ops::DerefMut for EntryBox {
    #[inline]
    fn deref_mut(&mut self) -> &mut Entry {
        // SAFETY: as in deref, with exclusive access through `&mut self`.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for EntryBox {
    fn drop(&mut self) {
        let layout = self.layout();
        // SAFETY: the head is dropped in place once (its value, and `next`,
        // which callers empty first: chains are dropped iteratively) and
        // the allocation freed with the layout it was made with.
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr());
            std::alloc::dealloc(self.0.as_ptr() as *mut u8, layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(s: &str) -> Value {
        Value::from_bytes(s.as_bytes())
    }

    #[test]
    fn entry_is_sized_to_fit() {
        assert_eq!((META, HEAD), (40, 48));
        // A 16-byte key without expiry: one 64-byte allocation.
        let mut e = EntryBox::new(b"key:000000000001", sv("0123456789abcdef"), 0);
        assert_eq!(e.alloc_size(), 64);
        assert_eq!(e.key(), b"key:000000000001");
        assert_eq!(e.expire(), 0);
        e.set_clock(0x0123_4567);
        assert_eq!(e.clock(), 0x0023_4567);
        // The expiry slot comes with the key when the class has room.
        let e = EntryBox::new(b"k", sv("v"), 0);
        assert_eq!((e.alloc_size(), e.has_expire_slot()), (56, false));
        let e = EntryBox::new(&[b'k'; 17], sv("v"), 0);
        assert_eq!((e.alloc_size(), e.has_expire_slot()), (80, true));
        let e = EntryBox::new(&[b'x'; 300], sv("v"), 77);
        assert_eq!((e.key().len(), e.expire()), (300, 77));
        assert_eq!(e.into_parts().1, 77);
        for (n, c) in [(1, 8), (48, 48), (57, 64), (65, 80), (81, 96), (129, 160), (200, 224), (1000, 1024)] {
            assert_eq!(size_class(n), c, "{n}");
        }
    }

    #[test]
    fn swapping_entries_keeps_each_allocation_whole() {
        // Safe code can swap two entries' `Entry` parts; the sizes live in
        // `Meta`, outside them, so each allocation still reads right.
        let mut a = EntryBox::new(b"short", sv("a"), 0);
        let mut b = EntryBox::new(&[b'y'; 100], sv("b"), 5);
        std::mem::swap(&mut *a, &mut *b);
        assert_eq!((a.key(), a.expire()), (&b"short"[..], 0));
        assert_eq!((b.key().len(), b.expire()), (100, 5));
        assert_eq!(a.value.str_bytes(&mut [0; 24]), Some(&b"b"[..]));
        drop((a, b));
    }
}

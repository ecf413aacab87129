//! A Redis list: quicklist-like in Redis; `listpack` while small.
//!
//! Placeholder: the data structure lands with issue 5. The methods below
//! are the interface the rest of the server relies on (TYPE, OBJECT
//! ENCODING, COPY, cross-shard transfer, INFO memory, AOF rebuild).

#[derive(Default)]
pub struct List {}

impl List {
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    pub fn deep_clone(&self) -> List {
        List {}
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        0
    }

    /// Visit the elements from head to tail: the AOF rebuilds the value from them.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        let _ = &mut f;
    }
}

//! A Redis stream: entries by id, consumer groups with their pending
//! entries lists. Placeholder until the streams work lands (issue 5); the
//! methods below are what the rest of the server relies on.

#[derive(Default)]
pub struct Stream {}

impl Stream {
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    pub fn deep_clone(&self) -> Stream {
        Stream {}
    }

    /// Approximate heap bytes, for INFO memory and eviction.
    pub fn mem_usage(&self) -> usize {
        0
    }

    /// Append the commands that recreate this stream under `key` (entries,
    /// last id, groups, consumers, pending entries) as RESP arrays, for
    /// AOF bases and cross-shard transfer. Returns how many commands.
    pub fn rebuild_commands(&self, key: &[u8], out: &mut Vec<u8>) -> usize {
        let _ = (key, out);
        0
    }
}

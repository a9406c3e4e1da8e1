//! Lookup tables learned from the stream (agent_id → agent_type, task_id →
//! task_type): bounded, and cheap to fill at stream rate.
//!
//! A table keeps two generations; when the current one is full it becomes the
//! previous one and the oldest is dropped whole, so memory is bounded and recently
//! learned keys survive. Within a generation, keys and values are appended to one
//! text arena and the index maps a key's hash to their places: learning a new key
//! costs no allocation of its own, and dropping a generation is two frees, not two
//! per entry. Two keys with the same 64-bit hash cannot both be held; the newer
//! wins (a table is a cache: a miss reads as the label's default).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::fields::{KeyHash, LowBits};

/// Where a key and its value sit in the arena.
#[derive(Clone, Copy)]
struct Place {
    key: (u32, u32),
    value: (u32, u32),
}

#[derive(Default)]
struct Generation {
    index: HashMap<u64, Place, BuildHasherDefault<LowBits>>,
    arena: String,
}

impl Generation {
    fn text(&self, (start, len): (u32, u32)) -> &str {
        self.arena.get(start as usize..(start + len) as usize).unwrap_or("")
    }

    fn get(&self, hash: u64, key: &str) -> Option<&str> {
        let place = self.index.get(&hash)?;
        (self.text(place.key) == key).then(|| self.text(place.value))
    }

    fn append(&mut self, text: &str) -> (u32, u32) {
        let start = self.arena.len() as u32;
        self.arena.push_str(text);
        (start, text.len() as u32)
    }
}

/// Text per generation; a generation ends when its arena reaches this.
const ARENA_BYTES: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct LookupTable {
    current: Generation,
    previous: Generation,
    /// Entries per generation.
    half: usize,
}

fn hash(key: &str) -> u64 {
    let mut h = KeyHash::default();
    h.add(key.as_bytes());
    h.finish() as u64
}

impl LookupTable {
    /// A table holding at least `max_entries / 2` and at most `max_entries` keys.
    pub(crate) fn new(max_entries: usize) -> Self {
        LookupTable { half: (max_entries / 2).max(1), ..LookupTable::default() }
    }

    pub(crate) fn learn(&mut self, key: &str, value: &str) {
        let h = hash(key);
        if self.current.get(h, key) == Some(value) {
            return;
        }
        // A generation also ends when its arena is large: with keys forgotten the
        // index stays small while the arena would keep growing.
        if self.current.index.len() >= self.half || self.current.arena.len() >= ARENA_BYTES {
            self.previous = std::mem::take(&mut self.current);
            self.current.arena.reserve(ARENA_BYTES.min(self.half * 32));
        }
        let place = Place { key: self.current.append(key), value: self.current.append(value) };
        self.current.index.insert(h, place);
    }

    /// Drops a key (from either generation); its text stays in the arena until
    /// the generation goes.
    pub(crate) fn forget(&mut self, key: &str) {
        let h = hash(key);
        for generation in [&mut self.current, &mut self.previous] {
            if generation.get(h, key).is_some() {
                generation.index.remove(&h);
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        let h = hash(key);
        self.current.get(h, key).or_else(|| self.previous.get(h, key))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.index.len() + self.previous.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_updates_and_forgets_the_oldest_generation() {
        let mut table = LookupTable::new(4);
        table.learn("a1", "coder");
        table.learn("a2", "tester");
        assert_eq!(table.get("a1"), Some("coder"));
        table.learn("a1", "reviewer");
        assert_eq!(table.get("a1"), Some("reviewer"), "a newer value wins");
        for i in 0..10 {
            table.learn(&format!("k{i}"), "v");
        }
        assert!(table.len() <= 4, "bounded: {}", table.len());
        assert_eq!(table.get("k9"), Some("v"), "recent keys survive");
        assert_eq!(table.get("a2"), None, "old keys are forgotten");
        assert_eq!(table.get("nope"), None);
        table.forget("k9");
        assert_eq!(table.get("k9"), None, "forgotten");
        assert_eq!(table.get("k8"), Some("v"), "only that key");
    }
}

//! Hashing of keys (label sets, group labels, lookup keys) into 128-bit
//! identities, and the maps keyed by them; shared by metrics and alerts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys that are already hashes (64-bit, or 128-bit identities): their low 64
/// bits serve as the table's hash.
#[derive(Default)]
pub(crate) struct LowBits(u64);

impl Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// A map keyed by 128-bit identities.
pub(crate) type IdentityMap<V> = HashMap<u128, V, BuildHasherDefault<LowBits>>;

/// A 128-bit identity for a key (a label set, a keyed gauge's key, a lookup
/// key): two multiply-rotate hashes over 8-byte words, in the manner of FxHash,
/// side by side. Tables keep this instead of comparing text per event: among
/// 100,000 keys, two sharing an identity has a chance near 10^-29, while
/// comparing the text costs a pointer chase and a compare per event. Not
/// flooding-resistant; the tables it serves are bounded.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash(u64, u64);

impl Default for KeyHash {
    fn default() -> Self {
        KeyHash(0, 0x9e37_79b9_7f4a_7c15)
    }
}

impl KeyHash {
    const K1: u64 = 0x517c_c1b7_2722_0a95;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

    /// Adds one value (its length too, so ("ab","c") and ("a","bc") differ).
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        let (mut a, mut b) = (self.0, self.1);
        let mut mix = |word: u64| {
            a = (a.rotate_left(5) ^ word).wrapping_mul(Self::K1);
            b = (b.rotate_left(7) ^ word).wrapping_mul(Self::K2);
        };
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        mix(u64::from_le_bytes(word));
        mix(bytes.len() as u64);
        (self.0, self.1) = (a, b);
    }

    pub(crate) fn finish(&self) -> u128 {
        (u128::from(self.0) << 64) | u128::from(self.1)
    }
}

//! The sampling decision: a hash of a key mapped to a fraction in [0, 1); an event is
//! kept when its fraction is below the rate. The hash is fixed (FNV-1a 64 with a
//! SplitMix64 finalizer), so every instance, every replay and every runtime (the
//! Wasm and Rhai `sample` plugins) decide alike. Changing it would change which
//! events every deployment keeps: it is part of the contract.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64 well-mixed bits of `key`.
pub fn hash(key: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // FNV alone leaves close keys (…-0001, …-0002) close in the low bits; the
    // finalizer spreads every input bit over the output.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Where `key` falls in [0, 1): the top 53 bits of its hash.
pub fn fraction(key: &str) -> f64 {
    (hash(key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether an event with this key is kept at `rate` (1 keeps all, 0 none).
pub fn keep(key: &str, rate: f64) -> bool {
    rate >= 1.0 || fraction(key) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_stable_and_spread() {
        // Pinned: a change here changes what every deployment keeps.
        // Computed independently (a few lines of Python) from the definition above.
        assert_eq!(hash("event-1"), 0x8501_10b9_e0aa_2822);
        assert_eq!(hash("event-1"), hash("event-1"));
        assert_ne!(hash("event-1"), hash("event-2"));
        let kept = (0..100_000).filter(|i| keep(&format!("task-{i:08}"), 0.1)).count();
        assert!((9_500..10_500).contains(&kept), "{kept} of 100000 kept at 10%");
        assert!(keep("anything", 1.0));
        assert!(!keep("anything", 0.0));
    }
}

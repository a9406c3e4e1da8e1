//! Where the checked-in corpora are, the check that each is what its generator
//! writes (rewritten instead with `PII_CORPUS_WRITE=1`), and running one corpus
//! event through the scrubber.

use std::path::PathBuf;

use pii_scrub::PiiScrub;
use synaptic_plugin_sdk::{testing, Verdict};

/// A corpus file, found where `cargo test` runs the test from (its manifest
/// directory at run time), so a test binary reused from a build in another
/// checkout still reads this checkout's file.
pub fn path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    dir.join("tests/corpus").join(name)
}

/// Asserts the checked-in file is `generated` (after writing it, when asked).
pub fn assert_generated(name: &str, generated: &str) {
    if std::env::var_os("PII_CORPUS_WRITE").is_some() {
        std::fs::write(path(name), generated).expect("writing the corpus");
    }
    let checked_in = std::fs::read_to_string(path(name)).expect("the corpus is checked in");
    assert!(checked_in == generated, "{name} differs from what its generator writes; regenerate it");
}

pub fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).expect("the corpus is checked in")
}

/// Runs one event through `plugin`: its verdict, and the names of the detector
/// counters the event raised.
pub fn scrub_counting(plugin: &mut PiiScrub, event: &[u8]) -> (Verdict, Vec<String>) {
    let before = testing::counters();
    let mut verdicts = testing::run_with(plugin, &[event]).expect("runs");
    let after = testing::counters();
    let fired = after
        .iter()
        .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
        .map(|(name, _)| name.clone())
        .collect();
    (verdicts.remove(0), fired)
}

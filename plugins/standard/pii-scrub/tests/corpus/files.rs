//! Where the checked-in corpora are, and the check that each is what its
//! generator writes (rewritten instead with `PII_CORPUS_WRITE=1`).

use std::path::PathBuf;

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

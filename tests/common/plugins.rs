//! The example plugins, built for wasm32-wasip2 once per test binary by the same
//! script users run (`plugins/build.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The cargo target directory the test binary was built in.
fn target_dir() -> PathBuf {
    // …/target/debug/synaptic-telemetry
    let bin = Path::new(super::BIN);
    bin.parent().and_then(Path::parent).map(Path::to_path_buf).expect("binary lives in target/<profile>/")
}

/// A built plugin by its library name (`stamp`, `identity`, `faulty`, …).
pub fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(root.join("plugins/build.sh"))
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("plugins/build.sh runs");
        assert!(status.success(), "plugins/build.sh failed: {status}");
        target_dir().join("wasm32-wasip2/plugin")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The stamp plugin with `version` (up to ten digits) written into its version
/// placeholder: a distinct, valid build without compiling again.
pub fn stamp_version(version: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(wasm("stamp")).expect("read stamp.wasm");
    let needle = b"stamp-version:0000000000";
    let positions: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| w == needle).map(|(i, _)| i).collect();
    assert_eq!(positions.len(), 1, "the version placeholder must occur exactly once in stamp.wasm");
    let digits = format!("{version:010}");
    bytes[positions[0] + 14..positions[0] + 24].copy_from_slice(digits.as_bytes());
    bytes
}

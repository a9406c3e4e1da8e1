//! Compiled WebAssembly plugins kept on disk, so that a restart or a swap back to a
//! version seen before skips Cranelift (seconds of CPU for the standard plugins).
//!
//! An entry is keyed by the SHA-256 of the component's bytes and of the engine's
//! settings (wasmtime's compatibility hash, which covers its version, target and
//! tunables); its file holds the SHA-256 of the artifact and the artifact. On load
//! the hash is checked before wasmtime reads the artifact (and wasmtime checks the
//! engine again): a truncated or damaged entry is removed and compiled afresh. The
//! artifact is native code, so the directory must be the process owner's and
//! closed to others (created 0700, refused if group- or world-writable), and
//! entries are written to a temporary file and renamed into place.
//!
//! The directory is bounded ([`MAX_CACHE_BYTES`]): a compiled TypeScript or Python
//! plugin is some 37 MB, and every new build of one would otherwise stay on disk
//! for good. After each store the least recently used entries (a load counts as a
//! use) are removed until the entries fit.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// The most bytes of compiled plugins the cache keeps: a few dozen TypeScript or
/// Python versions, hundreds of Rust ones.
pub(crate) const MAX_CACHE_BYTES: u64 = 1 << 30;
/// The most directory entries looked at when trimming (a bound on the work, whatever
/// else lands in the directory).
const MAX_ENTRIES_SCANNED: usize = 10_000;

/// The cache directory of one engine configuration.
pub(crate) struct CompiledCache {
    dir: PathBuf,
    /// The engine's settings, hashed, as part of every key.
    engine: [u8; 8],
    max_bytes: u64,
}

/// Why the cache is not used (the plugin is then compiled every time).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    #[error("cannot create the plugin cache {dir}: {source}")]
    Create { dir: String, source: std::io::Error },
    #[error(
        "the plugin cache {dir} is writable by others (mode {mode:o}); compiled code is not loaded from it"
    )]
    Open { dir: String, mode: u32 },
    #[error("the plugin cache {dir} belongs to another user; compiled code is not loaded from it")]
    Owner { dir: String },
}

const HASH_LEN: usize = 32;

impl CompiledCache {
    /// Opens (creating it if needed) the cache at `dir` for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<CompiledCache, CacheError> {
        let shown = dir.display().to_string();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| CacheError::Create { dir: shown.clone(), source })?;
        let meta =
            std::fs::metadata(dir).map_err(|source| CacheError::Create { dir: shown.clone(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(CacheError::Open { dir: shown, mode });
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(CacheError::Owner { dir: shown });
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache { dir: dir.to_path_buf(), engine: hasher.finish().to_le_bytes(), max_bytes })
    }

    /// The entry's file for a component's bytes.
    fn path(&self, component: &[u8]) -> PathBuf {
        let mut key = Sha256::new();
        key.update(self.engine);
        key.update(component);
        self.dir.join(format!("{}.cwasm", hex::encode(key.finalize())))
    }

    /// The verified artifact for `component`, if the cache holds one.
    pub(crate) fn load(&self, component: &[u8]) -> Option<Vec<u8>> {
        let path = self.path(component);
        let mut entry = std::fs::read(&path).ok()?;
        if entry.len() > HASH_LEN && Sha256::digest(&entry[HASH_LEN..]).as_slice() == &entry[..HASH_LEN] {
            entry.drain(..HASH_LEN);
            // Used now: the last entry trimming would remove.
            let touched = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(std::time::SystemTime::now()));
            if let Err(e) = touched {
                tracing::debug!(entry = %path.display(), error = %e, "could not mark a cache entry as used");
            }
            return Some(entry);
        }
        tracing::warn!(entry = %path.display(), "damaged compiled-plugin cache entry removed; compiling again");
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Drops an entry wasmtime refused (another engine build wrote it).
    pub(crate) fn forget(&self, component: &[u8]) {
        let _ = std::fs::remove_file(self.path(component));
    }

    /// Stores the artifact for `component`. Failing to store only costs a compile
    /// next time: logged, not returned.
    pub(crate) fn store(&self, component: &[u8], artifact: &[u8]) {
        let path = self.path(component);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut file =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            file.write_all(&Sha256::digest(artifact))?;
            file.write_all(artifact)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(entry = %path.display(), error = %e, "could not store a compiled plugin");
            return;
        }
        self.trim(&path);
    }

    /// Removes the least recently used entries, never `keep`, until the entries
    /// hold at most `max_bytes`.
    fn trim(&self, keep: &Path) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = dir
            .take(MAX_ENTRIES_SCANNED)
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "cwasm"))
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), entry.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total = total.saturating_sub(len);
                    tracing::debug!(entry = %path.display(), bytes = len, "least recently used compiled plugin removed from the cache");
                }
                Err(e) => {
                    tracing::warn!(entry = %path.display(), error = %e, "could not trim the plugin cache")
                }
            }
        }
    }
}

/// The cache directory when the config names none: `$XDG_CACHE_HOME` or
/// `~/.cache`, under `synaptic-telemetry/plugins`.
pub(crate) fn default_dir() -> Option<PathBuf> {
    let base =
        std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("synaptic-telemetry").join("plugins"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_a_damaged_one_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::default();
        let cache = CompiledCache::open(&dir.path().join("c"), &engine, MAX_CACHE_BYTES).expect("opens");
        assert!(cache.load(b"component").is_none());
        cache.store(b"component", b"artifact bytes");
        assert_eq!(cache.load(b"component").as_deref(), Some(&b"artifact bytes"[..]));
        assert!(cache.load(b"another component").is_none(), "keyed by the component's bytes");

        let path = cache.path(b"component");
        let mut bytes = std::fs::read(&path).expect("entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).expect("damage");
        assert!(cache.load(b"component").is_none(), "a damaged entry is not used");
        assert!(!path.exists(), "and removed");
    }

    #[test]
    fn the_least_recently_used_entries_go_when_the_cache_is_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::default();
        // Room for three entries of 100 bytes (each file holds the hash too).
        let entry = (HASH_LEN + 100) as u64;
        let cache = CompiledCache::open(&dir.path().join("c"), &engine, 3 * entry).expect("opens");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (age, name) in [b"a", b"b", b"c"].iter().enumerate() {
            cache.store(*name, &[age as u8; 100]);
            let file = std::fs::OpenOptions::new().write(true).open(cache.path(*name)).expect("entry");
            file.set_modified(old + std::time::Duration::from_secs(age as u64)).expect("age it");
        }
        // `a` is the oldest, but a load makes it the most recently used.
        assert!(cache.load(b"a").is_some());
        cache.store(b"d", &[9; 100]);
        assert!(cache.load(b"b").is_none(), "the least recently used entry went");
        for kept in [&b"a"[..], b"c", b"d"] {
            assert!(cache.path(kept).exists(), "{:?} stays", String::from_utf8_lossy(kept));
        }
        // An entry larger than the whole bound is kept while it is the newest.
        let big = vec![1; 4 * 100];
        cache.store(b"e", &big);
        assert_eq!(cache.load(b"e").as_deref(), Some(&big[..]));
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("dir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = CompiledCache::open(&open, &Engine::default(), MAX_CACHE_BYTES);
        assert!(matches!(refused, Err(CacheError::Open { .. })), "{:?}", refused.err());
    }
}

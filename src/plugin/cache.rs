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

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// The cache directory of one engine configuration.
pub(crate) struct CompiledCache {
    dir: PathBuf,
    /// The engine's settings, hashed, as part of every key.
    engine: [u8; 8],
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
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<CompiledCache, CacheError> {
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
        Ok(CompiledCache { dir: dir.to_path_buf(), engine: hasher.finish().to_le_bytes() })
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
        let cache = CompiledCache::open(&dir.path().join("c"), &engine).expect("opens");
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
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("dir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = CompiledCache::open(&open, &Engine::default());
        assert!(matches!(refused, Err(CacheError::Open { .. })), "{:?}", refused.err());
    }
}

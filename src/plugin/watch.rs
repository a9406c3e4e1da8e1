//! Watches the plugin directory and prepares new versions off the hot path.
//!
//! The directory is watched, not the files: editors write a temporary file and
//! rename it over the old one, and Kubernetes swaps a ConfigMap by re-pointing a
//! symlink; both show up as directory events while a watch on the old file would
//! go silent. After a change, the watcher waits for quiet (`debounce`), re-reads
//! every plugin file (through symlinks, as long as they stay inside the directory:
//! see `files`), and acts only on content whose hash it has not tried yet. A version that fails to compile, instantiate or `init` is logged
//! and counted; the version in service keeps running.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

use super::metrics::PluginMetrics;
use super::step::Prepared;
use super::{content_hash, Code, PluginError, Version};

/// Compiles one version of a plugin's file content.
pub(crate) type CompileFn = Arc<dyn Fn(&[u8]) -> Result<Arc<dyn Code>, PluginError> + Send + Sync>;

/// Reads, hashes, compiles and starts a version of a plugin file.
pub(crate) fn prepare(path: &Path, compile: &CompileFn) -> Result<Prepared, (Option<String>, PluginError)> {
    let bytes = read_plugin(path).map_err(|e| (None, e))?;
    let hash = content_hash(&bytes);
    prepare_bytes(&bytes, &hash, compile).map_err(|e| (Some(hash), e))
}

/// A plugin file's bytes, read as [`crate::files::read_bounded`] allows.
pub(crate) fn read_plugin(path: &Path) -> Result<Vec<u8>, PluginError> {
    crate::files::read_bounded(path, crate::files::MAX_PLUGIN_BYTES)
        .map_err(|e| PluginError::Read { path: path.display().to_string(), message: e.to_string() })
}

fn prepare_bytes(bytes: &[u8], hash: &str, compile: &CompileFn) -> Result<Prepared, PluginError> {
    let code = compile(bytes)?;
    let instance = code.start()?;
    Ok(Prepared { version: Version { hash: hash.to_string(), code }, instance })
}

/// One plugin file the watcher looks after.
pub struct Watched {
    pub(crate) plugin: String,
    pub(crate) path: PathBuf,
    /// The hash of the content last tried (in service or rejected).
    pub(crate) last_hash: String,
    pub(crate) compile: CompileFn,
    pub(crate) updates: mpsc::Sender<Prepared>,
    pub(crate) metrics: PluginMetrics,
    /// The last read error, so that a missing file is reported once, not per poll.
    pub(crate) last_read_error: Option<String>,
}

/// The watcher thread; stops when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub(crate) fn start(
        mut entries: Vec<Watched>,
        debounce: Duration,
        poll_interval: Duration,
    ) -> std::io::Result<Watcher> {
        let mut dirs: Vec<PathBuf> =
            entries.iter().filter_map(|e| e.path.parent()).map(Path::to_path_buf).collect();
        dirs.sort();
        dirs.dedup();
        Watcher::spawn("plugin-watch", dirs, debounce, poll_interval, move || rescan(&mut entries))
    }

    /// Watches `dirs` on a thread of its own and calls `rescan` after each quiet
    /// change and every `poll_interval` (notifications can be missed, e.g. on
    /// network filesystems). The rule files of the alert engine use it too.
    pub(crate) fn spawn(
        name: &str,
        dirs: Vec<PathBuf>,
        debounce: Duration,
        poll_interval: Duration,
        rescan: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || watch(&dirs, debounce, poll_interval, &stopping, rescan))?;
        Ok(Watcher { stop, thread: Some(thread) })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the thread looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

fn watch(
    dirs: &[PathBuf],
    debounce: Duration,
    poll_interval: Duration,
    stop: &AtomicBool,
    mut rescan: impl FnMut(),
) {
    let (tx, rx) = mpsc::channel::<()>();
    let watcher = notify::recommended_watcher(move |_event| {
        let _ = tx.send(());
    });
    let _watcher = match watcher {
        Ok(mut watcher) => {
            for dir in dirs {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the directory; polling it instead");
                }
            }
            Some(watcher)
        }
        Err(e) => {
            tracing::warn!(error = %e, "file change notifications are unavailable; polling instead");
            None
        }
    };
    let mut next_poll = Instant::now() + poll_interval;
    while !stop.load(Ordering::Relaxed) {
        let wait = next_poll.saturating_duration_since(Instant::now()).min(STOP_CHECK);
        match rx.recv_timeout(wait) {
            Ok(()) => {
                // Let a burst of writes settle, but not forever.
                let settle_until = Instant::now() + debounce * 20;
                while rx.recv_timeout(debounce).is_ok() && Instant::now() < settle_until {}
                rescan();
                next_poll = Instant::now() + poll_interval;
            }
            Err(_) if Instant::now() >= next_poll => {
                rescan();
                next_poll = Instant::now() + poll_interval;
            }
            Err(_) => {}
        }
    }
}

fn rescan(entries: &mut [Watched]) {
    for entry in entries {
        let bytes = match read_plugin(&entry.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = e.to_string();
                if entry.last_read_error.as_ref() != Some(&message) {
                    tracing::warn!(plugin = %entry.plugin, path = %entry.path.display(), error = %message, "cannot read the plugin file; the version in service keeps running");
                    entry.metrics.load_failed("read");
                    entry.last_read_error = Some(message);
                }
                continue;
            }
        };
        entry.last_read_error = None;
        let hash = content_hash(&bytes);
        if hash == entry.last_hash {
            continue;
        }
        entry.last_hash = hash.clone();
        let started = Instant::now();
        match prepare_bytes(&bytes, &hash, &entry.compile) {
            Ok(prepared) => {
                tracing::info!(
                    plugin = %entry.plugin,
                    version = %hash,
                    millis = started.elapsed().as_millis() as u64,
                    "new plugin version compiled and started; it takes over at the next batch"
                );
                // The step is gone only when the pipeline is shutting down.
                let _ = entry.updates.send(prepared);
            }
            Err(error) => {
                entry.metrics.load_failed(error.load_stage());
                tracing::error!(
                    plugin = %entry.plugin,
                    version = %hash,
                    error = %error,
                    "new plugin version rejected; the version in service keeps running"
                );
                crate::audit::record(
                    "local",
                    "plugin.rejected",
                    &entry.plugin,
                    "rejected",
                    serde_json::json!({"version": hash, "error": error.to_string()}),
                );
            }
        }
    }
}

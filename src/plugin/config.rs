//! The `plugins` section (the plugin host) and `type: plugin` pipeline steps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::decode::yaml::{Node, NodeKind};

/// A batch's deadline is this plus [`DEFAULT_DEADLINE_PER_EVENT`] per event: a
/// 512-event batch gets 612 ms, room for the PII scrubber's ~70 µs per dense event
/// on a CPU throttled tenfold, while an endless loop still costs well under a
/// second per event it is split down to.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);
pub const DEFAULT_DEADLINE_PER_EVENT: Duration = Duration::from_millis(1);
use crate::decode::{one_of, to_json_resolved, ByteSize, Diagnostics, MapReader};

/// The file stem that marks a plugin step as the pipeline's PII scrubber.
pub(crate) const SCRUBBER_STEM: &str = "pii_scrub";

/// The plugin host: where plugin files live, how they are watched, and the bounds
/// of the WebAssembly instance pool.
#[derive(Debug, Clone)]
pub struct PluginHostConfig {
    /// Plugin files named by steps are looked up here (default `plugins`, relative to
    /// the working directory).
    pub dir: PathBuf,
    /// Watch `dir` and swap in changed plugin files (default true).
    pub watch: bool,
    /// Quiet time after a change before files are re-read (editors write in steps).
    pub debounce: Duration,
    /// Re-check the files this often even without change notifications (network
    /// file systems do not deliver them).
    pub poll_interval: Duration,
    /// WebAssembly instances that can exist at once, all plugins together.
    pub max_instances: u32,
    /// The most memory any one instance may have; steps may set less.
    pub max_memory: u64,
    /// A new version that fails `rollback_failures` of its first `rollback_window`
    /// batches is withdrawn and the previous version restored.
    pub rollback_failures: u32,
    pub rollback_window: u32,
    /// Compiled WebAssembly plugins are kept here and reused while the plugin file
    /// and the engine are unchanged (`cache: off`: compile every time).
    pub cache: Option<PathBuf>,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        PluginHostConfig {
            dir: PathBuf::from("plugins"),
            watch: true,
            debounce: Duration::from_millis(200),
            poll_interval: Duration::from_secs(5),
            max_instances: 32,
            max_memory: 256 << 20,
            rollback_failures: 3,
            rollback_window: 10,
            cache: super::cache::default_dir(),
        }
    }
}

/// A `type: plugin` step.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStepConfig {
    /// The plugin file, relative to `plugins.dir` (or absolute).
    pub path: PathBuf,
    /// Handed to the plugin's `init` as a JSON object.
    pub config: Map<String, Value>,
    pub on_error: OnError,
    /// A batch not done by `deadline` plus `deadline_per_event` for each of its
    /// events is stopped, and fails (then it is split and retried).
    pub deadline: Duration,
    pub deadline_per_event: Duration,
    /// Memory cap of the instance.
    pub memory: u64,
    pub allow: Grants,
}

/// What happens to a batch the plugin failed (trap, timeout, error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Its events go to dead letter with the plugin's name and the error (default).
    DeadLetter,
    /// Its events go on unchanged.
    Pass,
}

/// What a plugin may reach beyond its batch. Everything is denied by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Environment variables passed through, by name.
    pub env: Vec<String>,
    /// The real wall and monotonic clocks (otherwise both read as zero).
    pub clock: bool,
    /// Outgoing TCP/UDP and name lookup.
    pub(crate) network: bool,
    /// Host directories mapped into the guest.
    pub(crate) dirs: Vec<DirGrant>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DirGrant {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
    pub(crate) write: bool,
}

impl PluginHostConfig {
    /// The `plugins` section; a relative `dir` is found from `base`.
    pub(crate) fn decode(node: Option<&Node>, base: &Path, cx: &mut Diagnostics) -> PluginHostConfig {
        let d = PluginHostConfig { dir: base.join("plugins"), ..PluginHostConfig::default() };
        let Some(mut map) = node.and_then(|n| MapReader::new(n, "plugins", cx)) else { return d };
        let config = PluginHostConfig {
            dir: map.optional::<String>("dir", cx).map_or(d.dir, |dir| base.join(dir)),
            watch: map.or("watch", d.watch, cx),
            debounce: map.or("debounce", d.debounce, cx),
            poll_interval: map.or("poll_interval", d.poll_interval, cx),
            max_instances: map.or("max_instances", d.max_instances, cx),
            max_memory: map.optional::<ByteSize>("max_memory", cx).map_or(d.max_memory, |b| b.0),
            rollback_failures: map.or("rollback_failures", d.rollback_failures, cx),
            rollback_window: map.or("rollback_window", d.rollback_window, cx),
            cache: match map.optional::<String>("cache", cx) {
                Some(off) if off == "off" => None,
                Some(dir) => Some(base.join(dir)),
                None => d.cache,
            },
        };
        if config.max_instances < 2 {
            cx.error(
                map.key_pos("max_instances"),
                "max_instances must be at least 2 (a swap needs a second instance)",
            );
        }
        if config.max_memory < 1 << 20 {
            cx.error(map.key_pos("max_memory"), "max_memory must be at least 1MiB");
        }
        if config.rollback_failures == 0 || config.rollback_failures > config.rollback_window {
            cx.error(map.key_pos("rollback_failures"), "rollback_failures must be from 1 to rollback_window");
        }
        if config.poll_interval.is_zero() {
            cx.error(map.key_pos("poll_interval"), "poll_interval must be more than 0");
        }
        map.finish(cx);
        config
    }
}

impl PluginStepConfig {
    /// The keys of a `type: plugin` step after `type` and `name`; its file is
    /// found in the host's directory.
    pub(crate) fn decode(
        map: &mut MapReader<'_>,
        host: &PluginHostConfig,
        cx: &mut Diagnostics,
    ) -> Option<PluginStepConfig> {
        let file: Option<String> = map.required("file", cx);
        let config = match map.node("config") {
            None => Map::new(),
            Some(node) => match to_json_resolved(node, cx) {
                Value::Object(config) => config,
                _ => {
                    cx.error(node.pos, format!("config must be a mapping, got {}", node.describe()));
                    Map::new()
                }
            },
        };
        let on_error = map
            .node("on_error")
            .and_then(|n| one_of(n, &[("dead_letter", OnError::DeadLetter), ("pass", OnError::Pass)], cx))
            .unwrap_or(OnError::DeadLetter);
        let deadline = map.or("deadline", DEFAULT_DEADLINE, cx);
        let deadline_per_event = map.or("deadline_per_event", DEFAULT_DEADLINE_PER_EVENT, cx);
        let memory = map.optional::<ByteSize>("memory", cx).map_or(host.max_memory.min(64 << 20), |b| b.0);
        let allow = map.node("allow").and_then(|n| decode_grants(n, cx)).unwrap_or_default();
        if deadline.is_zero() {
            cx.error(map.key_pos("deadline"), "deadline must be more than 0");
        }
        if memory > host.max_memory {
            cx.error(
                map.key_pos("memory"),
                format!("memory is over plugins.max_memory ({} bytes)", host.max_memory),
            );
        }
        let file = file?;
        let path = host.dir.join(&file);
        if on_error == OnError::Pass && is_scrubber_file(&path) {
            cx.error(
            map.key_pos("on_error"),
            "on_error: pass is refused for the PII scrubber: a batch it failed would leave unscrubbed (its events go to dead letter, scrubbed)",
        );
        }
        if !matches!(Path::new(&file).extension().and_then(|e| e.to_str()), Some("wasm" | "rhai")) {
            cx.error(
                map.key_pos("file"),
                format!(
                    "plugin file `{file}` must be a WebAssembly component (.wasm) or a Rhai script (.rhai)"
                ),
            );
        } else if let Err(e) = crate::files::check_readable(&path, crate::files::MAX_PLUGIN_BYTES) {
            cx.error(map.key_pos("file"), format!("plugin file `{}` {e}", path.display()));
        }
        Some(PluginStepConfig { path, config, on_error, deadline, deadline_per_event, memory, allow })
    }

    /// Whether this step is the pipeline's PII scrubber.
    pub(crate) fn is_scrubber(&self) -> bool {
        is_scrubber_file(&self.path)
    }
}

/// The scrubber is the plugin whose file is named after it.
fn is_scrubber_file(path: &Path) -> bool {
    path.file_stem().and_then(|s| s.to_str()) == Some(SCRUBBER_STEM)
}

fn decode_grants(node: &Node, cx: &mut Diagnostics) -> Option<Grants> {
    let mut map = MapReader::new(node, "allow", cx)?;
    let env = map.or("env", Vec::new(), cx);
    let clock = map.or("clock", false, cx);
    let network = map.or("network", false, cx);
    let mut dirs = Vec::new();
    match map.node("dirs") {
        None => {}
        Some(Node { kind: NodeKind::Seq(items), .. }) => {
            for item in items {
                dirs.extend(decode_dir_grant(item, cx));
            }
        }
        Some(node) => cx.error(node.pos, format!("dirs must be a list, got {}", node.describe())),
    }
    map.finish(cx);
    Some(Grants { env, clock, network, dirs })
}

fn decode_dir_grant(item: &Node, cx: &mut Diagnostics) -> Option<DirGrant> {
    let mut dir = MapReader::new(item, "allow.dirs item", cx)?;
    let host: Option<String> = dir.required("host", cx);
    let guest: Option<String> = dir.required("guest", cx);
    let write = dir.or("write", false, cx);
    if let Some(host) = &host {
        if !Path::new(host).is_dir() {
            cx.error(dir.key_pos("host"), format!("`{host}` is not a directory"));
        }
    }
    dir.finish(cx);
    Some(DirGrant { host: PathBuf::from(host?), guest: guest?, write })
}

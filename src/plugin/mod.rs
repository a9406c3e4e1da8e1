//! Plugins: hot-swappable pipeline steps behind one versioned contract
//! (`plugins/wit/plugin.wit`): a whole batch in, one verdict per event out.
//!
//! - [`wasm`] runs WebAssembly components with wasmtime: pooled instances, an epoch
//!   deadline per batch, a memory cap per instance, nothing granted by default.
//! - [`script`] runs Rhai scripts on the same contract: a raw engine, `eval` off,
//!   limits on operations, depth and sizes, and the batch deadline.
//! - [`step`] is the pipeline step around a plugin: it encodes the batch, applies
//!   the verdicts, contains failures, swaps versions between batches and rolls a
//!   failing new version back.
//! - [`watch`] watches the plugin directory and prepares new versions off the hot
//!   path; `cache` keeps compiled components on disk for the next start or swap.
//!
//! A runtime is a trait object ([`Code`] and [`Instance`]): the only open set in the
//! service, because plugins are what operators swap at run time.

mod cache;
mod config;
mod metrics;
mod rhai_json;
pub mod script;
pub mod step;
pub mod tester;
pub mod wasm;
pub mod watch;

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use synaptic_plugin_sdk::contract::{BatchBuffer, VerdictList};

use crate::event::SchemaMode;
use crate::step::{BuildContext, RunningStep, Service, SharedResource};
use crate::telemetry::Telemetry;

pub use config::{Grants, OnError, PluginHostConfig, PluginStepConfig};
pub(crate) use metrics::PluginFailureKind;
pub use metrics::PluginMetrics;
pub use step::PluginStep;
pub(crate) use step::RollbackPolicy;
use wasm::{InstanceSettings, WasmRuntime};
use watch::{CompileFn, Watched, Watcher};

/// Builds the plugin steps of a pipeline and, once they are built, watches their
/// files.
pub struct PluginHost {
    config: PluginHostConfig,
    wasm: Option<Arc<WasmRuntime>>,
    watched: Vec<Watched>,
}

impl PluginHost {
    pub fn new(config: &PluginHostConfig) -> Self {
        PluginHost { config: config.clone(), wasm: None, watched: Vec::new() }
    }

    /// The WebAssembly runtime, created with the first Wasm plugin.
    pub fn wasm(&mut self) -> Result<Arc<WasmRuntime>, PluginError> {
        if let Some(runtime) = &self.wasm {
            return Ok(runtime.clone());
        }
        let runtime = WasmRuntime::new(&self.config)?;
        self.wasm = Some(runtime.clone());
        Ok(runtime)
    }

    /// How versions of the plugin file at `path` are compiled: `.rhai` scripts by
    /// the Rhai host, anything else as a WebAssembly component.
    pub fn compiler(&mut self, path: &Path, settings: Arc<InstanceSettings>) -> anyhow::Result<CompileFn> {
        if path.extension().is_some_and(|e| e == "rhai") {
            let script = path
                .file_name()
                .map_or_else(|| settings.plugin.clone(), |f| f.to_string_lossy().into_owned());
            return Ok(Arc::new(move |bytes: &[u8]| {
                script::RhaiCode::compile(bytes, &script, settings.clone())
                    .map(|code| Arc::new(code) as Arc<dyn Code>)
            }));
        }
        let runtime = self
            .wasm()
            .with_context(|| format!("starting the WebAssembly runtime for plugin `{}`", settings.plugin))?;
        Ok(Arc::new(move |bytes: &[u8]| {
            runtime.compile(bytes, settings.clone()).map(|code| Arc::new(code) as Arc<dyn Code>)
        }))
    }

    /// Loads the first version of a plugin step. Failing here fails the start: a
    /// pipeline must not run without a step its config names.
    pub fn build_step(
        &mut self,
        name: &str,
        config: &PluginStepConfig,
        schema: SchemaMode,
        telemetry: &Telemetry,
    ) -> anyhow::Result<PluginStep> {
        let metrics = PluginMetrics::register(telemetry, name);
        let settings = Arc::new(InstanceSettings {
            plugin: name.to_string(),
            init_config: serde_json::Value::Object(config.config.clone()).to_string(),
            deadline: config.deadline,
            deadline_per_event: config.deadline_per_event,
            memory: config.memory,
            grants: config.allow.clone(),
            metrics: metrics.clone(),
        });
        let compile = self.compiler(&config.path, settings)?;
        let first = watch::prepare(&config.path, &compile).map_err(|(hash, error)| {
            anyhow::anyhow!(
                "plugin `{name}` ({}{}): {error}",
                config.path.display(),
                hash.map(|h| format!(", {h}")).unwrap_or_default()
            )
        })?;
        tracing::info!(plugin = name, path = %config.path.display(), version = %first.version.hash, "plugin loaded");
        let (tx, rx) = mpsc::channel();
        self.watched.push(Watched {
            plugin: name.to_string(),
            path: config.path.clone(),
            last_hash: first.version.hash.clone(),
            compile,
            updates: tx,
            metrics: metrics.clone(),
            last_read_error: None,
        });
        let policy =
            RollbackPolicy { failures: self.config.rollback_failures, window: self.config.rollback_window };
        Ok(PluginStep::new(name, config.on_error, schema, first, policy, rx, metrics))
    }

    /// Starts watching the plugin files (when there are any and `watch` is on).
    pub fn watch(self) -> anyhow::Result<Option<Watcher>> {
        if self.watched.is_empty() || !self.config.watch {
            return Ok(None);
        }
        let watcher = Watcher::start(self.watched, self.config.debounce, self.config.poll_interval)
            .context("starting the plugin watcher")?;
        Ok(Some(watcher))
    }
}

impl SharedResource for PluginHost {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn start(self: Box<Self>) -> anyhow::Result<Option<Box<dyn Service>>> {
        Ok(self.watch()?.map(|watcher| Box::new(watcher) as Box<dyn Service>))
    }
}

impl Service for Watcher {
    fn shutdown(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        // Dropping the watcher stops its thread.
        drop(self);
        Box::pin(std::future::ready(()))
    }
}

impl PluginStepConfig {
    /// The step, its first version loaded by the run's plugin host. Failing here
    /// fails the start.
    pub(crate) fn build(&self, name: &str, cx: &mut BuildContext) -> anyhow::Result<RunningStep> {
        let (schema, telemetry) = (cx.schema(), cx.telemetry().clone());
        let host = cx.shared::<PluginHost>().context("the plugin host was not set up")?;
        let step = host.build_step(name, self, schema, &telemetry)?;
        Ok(RunningStep::new(Box::new(step), &telemetry))
    }
}

/// Why a plugin version could not be loaded, or a batch could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin file {path} {message}")]
    Read { path: String, message: String },
    #[error("not a valid plugin component: {0}")]
    Compile(String),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("init failed: {0}")]
    Init(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("did not finish the batch within its deadline of {0:?}")]
    Timeout(Duration),
    #[error("went over its memory limit of {0} bytes")]
    MemoryLimit(u64),
    #[error("failed the batch: {0}")]
    Guest(String),
    #[error("broke the batch contract: {0}")]
    Contract(String),
}

impl PluginError {
    /// The `kind` label of a failed batch.
    pub(crate) fn failure_kind(&self) -> PluginFailureKind {
        match self {
            PluginError::Timeout(_) => PluginFailureKind::Timeout,
            PluginError::MemoryLimit(_) => PluginFailureKind::MemoryLimit,
            PluginError::Guest(_) => PluginFailureKind::Error,
            PluginError::Contract(_) => PluginFailureKind::BadOutput,
            _ => PluginFailureKind::Trap,
        }
    }

    /// The `stage` label of a version that failed to load.
    pub(crate) fn load_stage(&self) -> &'static str {
        match self {
            PluginError::Read { .. } => "read",
            PluginError::Compile(_) => "compile",
            PluginError::Init(_)
            | PluginError::Timeout(_)
            | PluginError::MemoryLimit(_)
            | PluginError::Trap(_) => "init",
            _ => "instantiate",
        }
    }
}

/// Compiled plugin code, ready to start instances.
pub trait Code: Send + Sync {
    /// `wasm` or `rhai`, for the info metric.
    fn runtime(&self) -> &'static str;
    /// A new instance, its `init` already called with the step's config.
    fn start(&self) -> Result<Box<dyn Instance>, PluginError>;
}

/// One running instance of a plugin.
pub trait Instance: Send {
    /// Processes one batch. The buffers are lent and handed back; after an error
    /// other than [`PluginError::Guest`] the instance must not be used again.
    fn process(&mut self, batch: &mut BatchBuffer) -> Result<VerdictList, PluginError>;

    /// After a batch: `Some` when the instance should be replaced by a fresh one
    /// before the next batch (its memory is running out). The step does so between
    /// batches, so no event is affected; state a plugin keeps across batches
    /// starts over, as after a trap or a swap.
    fn worn(&self) -> Option<Worn> {
        None
    }
}

/// An instance's memory when it was found worn: `size` bytes of its cap of `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worn {
    pub size: usize,
    pub limit: usize,
}

/// One version of a plugin: its code and the hash of the file it came from.
#[derive(Clone)]
pub struct Version {
    /// `sha256:` and the first 16 hex digits of the file's SHA-256.
    pub(crate) hash: String,
    pub(crate) code: Arc<dyn Code>,
}

/// The short content hash by which logs and metrics name a version.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("sha256:{}", &hex::encode(digest)[..16])
}

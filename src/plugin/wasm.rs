//! The WebAssembly runtime: wasmtime components on a pooling allocator. Every call
//! is bounded — in time by an epoch deadline, in memory by a per-instance cap, in
//! number by the pool — and a guest reaches nothing outside its batch unless its
//! step's `allow` grants it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use synaptic_plugin_sdk::contract::{BatchBuffer, VerdictList};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::cache::CompiledCache;
use super::config::{Grants, PluginHostConfig};
use super::metrics::PluginMetrics;
use super::{Code, Instance, PluginError, Worn};

wasmtime::component::bindgen!({
    path: "plugins/wit",
    world: "plugin",
});

use synaptic::plugin::host::Level;

/// How often the engine's epoch advances; deadlines are whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Guest log lines allowed per second (with a burst of twice that), per instance.
const LOG_LINES_PER_SECOND: f64 = 20.0;
/// Bytes of guest stderr kept per instance (an instance is replaced after a trap).
const STDERR_CAPACITY: usize = 16 << 10;
/// Distinct counter names a plugin may create; more are counted as `overflow`.
const MAX_GUEST_COUNTERS: usize = 32;

/// The engine and linker all WebAssembly plugins share.
pub struct WasmRuntime {
    engine: Engine,
    /// Compiled components from earlier runs, when the cache is on and usable.
    cache: Option<CompiledCache>,
    linker: Linker<HostState>,
    ticker_stop: Arc<AtomicBool>,
}

impl WasmRuntime {
    pub(crate) fn new(host: &PluginHostConfig) -> Result<Arc<WasmRuntime>, PluginError> {
        let mut pool = PoolingAllocationConfig::new();
        let instances = host.max_instances;
        // A Rust component holds a few core instances (its module plus adapter
        // shims) and one or two memories; the bounds leave room for other guests.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(16))
            .max_core_instances_per_component(16)
            .total_memories(instances.saturating_mul(2))
            .max_memories_per_component(2)
            .total_tables(instances.saturating_mul(8))
            .max_tables_per_component(8)
            .max_memory_size(usize::try_from(host.max_memory).unwrap_or(usize::MAX));
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .wasm_component_model(true);
        let engine =
            Engine::new(&config).map_err(|e| PluginError::Instantiate(format!("wasm engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Instantiate(format!("linking WASI: {e:#}")))?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| PluginError::Instantiate(format!("linking host functions: {e:#}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Instantiate(format!("starting the deadline clock: {e}")))?;
        let cache = host.cache.as_ref().and_then(|dir| {
            match CompiledCache::open(dir, &engine, super::cache::MAX_CACHE_BYTES) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        });
        Ok(Arc::new(WasmRuntime { engine, cache, linker, ticker_stop }))
    }

    /// Compiles a component and checks that it implements the contract. Slow
    /// (milliseconds to seconds): never called on the hot path.
    pub(crate) fn compile(
        self: &Arc<Self>,
        bytes: &[u8],
        settings: Arc<InstanceSettings>,
    ) -> Result<WasmCode, PluginError> {
        check_header(bytes)?;
        let component = self.component(bytes)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| {
            PluginError::Instantiate(format!(
                "it does not implement the plugin contract (plugins/wit): {e:#}"
            ))
        })?;
        Ok(WasmCode { runtime: self.clone(), pre, settings })
    }
}

impl WasmRuntime {
    /// The compiled component: from the cache when it holds this file's build for
    /// this engine, else compiled now (and stored).
    fn component(&self, bytes: &[u8]) -> Result<Component, PluginError> {
        if let Some(cache) = &self.cache {
            if let Some(artifact) = cache.load(bytes) {
                // SAFETY: the artifact is one this process's engine configuration
                // serialized (the key covers the engine's settings), read back from a
                // directory only this user can write, and its SHA-256 was checked
                // against the one stored with it; wasmtime checks the engine again.
                match unsafe { Component::deserialize(&self.engine, &artifact) } {
                    Ok(component) => {
                        tracing::debug!("compiled plugin taken from the cache");
                        return Ok(component);
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "compiled plugin in the cache does not fit this engine; compiling");
                        cache.forget(bytes);
                    }
                }
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::Compile(one_line(&format!("{e:#}"))))?;
        if let Some(cache) = &self.cache {
            match component.serialize() {
                Ok(artifact) => cache.store(bytes, &artifact),
                Err(e) => tracing::warn!(error = %e, "could not serialize a compiled plugin for the cache"),
            }
        }
        Ok(component)
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// What every instance of one plugin step gets.
#[derive(Clone)]
pub struct InstanceSettings {
    pub plugin: String,
    /// The step's `config` map as JSON, for `init`.
    pub init_config: String,
    /// The deadline of a batch is `deadline` plus `deadline_per_event` for each
    /// of its events: a throttled CPU slows every event alike, and a split batch
    /// gets a deadline its size deserves.
    pub deadline: Duration,
    pub deadline_per_event: Duration,
    pub memory: u64,
    pub grants: Grants,
    pub metrics: PluginMetrics,
}

impl InstanceSettings {
    /// The deadline of a batch of `events` events.
    pub fn batch_deadline(&self, events: usize) -> Duration {
        self.deadline.saturating_add(self.deadline_per_event.saturating_mul(events as u32))
    }
}

/// A compiled component, pre-linked.
pub struct WasmCode {
    runtime: Arc<WasmRuntime>,
    pre: PluginPre<HostState>,
    settings: Arc<InstanceSettings>,
}

impl Code for WasmCode {
    fn runtime(&self) -> &'static str {
        "wasm"
    }

    /// Instantiation can fail for a reason of the host's, not the plugin's: the
    /// kernel refusing, for a moment, to seal the memory image wasmtime maps
    /// copy-on-write into every instance (`cannot add seals to the memfd`, seen here
    /// under memory pressure), or running out of file descriptors. Such a failure
    /// (an I/O error in the chain, no trap) is tried again, a bounded number of
    /// times with a growing pause; what the plugin itself does is never retried.
    fn start(&self) -> Result<Box<dyn Instance>, PluginError> {
        let mut pauses = HOST_RETRY_PAUSES.iter();
        loop {
            match self.start_once() {
                Err(Started::HostFailure(error)) => match pauses.next() {
                    Some(pause) => {
                        tracing::warn!(plugin = %self.settings.plugin, error = %error, retry_in = ?pause, "could not instantiate the plugin for a reason of the host's");
                        std::thread::sleep(*pause);
                    }
                    None => return Err(PluginError::Instantiate(error)),
                },
                Err(Started::Failed(error)) => return Err(error),
                Ok(instance) => return Ok(instance),
            }
        }
    }
}

/// Pauses before trying a failed instantiation again, when the host was the cause.
const HOST_RETRY_PAUSES: [Duration; 3] =
    [Duration::from_millis(10), Duration::from_millis(50), Duration::from_millis(250)];

/// Why one attempt to start an instance failed.
enum Started {
    /// The host could not provide what the instance needs (an I/O error).
    HostFailure(String),
    Failed(PluginError),
}

impl From<PluginError> for Started {
    fn from(error: PluginError) -> Self {
        Started::Failed(error)
    }
}

impl WasmCode {
    fn start_once(&self) -> Result<Box<dyn Instance>, Started> {
        let settings = &self.settings;
        let state = HostState::new(settings)?;
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        // `init` may build tables: it gets ten batch deadlines, at least a second.
        let init_deadline = settings.deadline.saturating_mul(10).max(Duration::from_secs(1));
        store.set_epoch_deadline(ticks(init_deadline));
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(bindings) => bindings,
            Err(e) if host_failure(&e) && store.data().memory.reached.is_none() => {
                return Err(Started::HostFailure(one_line(&format!("{e:#}"))))
            }
            Err(e) => {
                return Err(Started::Failed(match classify(e, init_deadline, store.data()) {
                    PluginError::Trap(message) => PluginError::Instantiate(message),
                    other => other,
                }))
            }
        };
        match bindings.call_init(&mut store, &settings.init_config) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(PluginError::Init(message).into()),
            Err(e) => return Err(classify(e, init_deadline, store.data()).into()),
        }
        let started_with = store.data().memory.size;
        Ok(Box::new(WasmInstance { store, bindings, settings: settings.clone(), started_with }))
    }
}

struct WasmInstance {
    store: Store<HostState>,
    bindings: Plugin,
    settings: Arc<InstanceSettings>,
    /// Linear memory after `init`: what a fresh instance of this version holds.
    started_with: usize,
}

impl Instance for WasmInstance {
    fn process(&mut self, batch: &mut BatchBuffer) -> Result<VerdictList, PluginError> {
        let deadline = self.settings.batch_deadline(batch.offsets.len().saturating_sub(1));
        self.store.set_epoch_deadline(ticks(deadline));
        let started = std::time::Instant::now();
        // The buffers move into the call and back out: no copy on the host side.
        let wire =
            Batch { data: std::mem::take(&mut batch.data), offsets: std::mem::take(&mut batch.offsets) };
        let result = self.bindings.call_process(&mut self.store, &wire);
        self.settings.metrics.deadline_used.observe(started.elapsed().as_secs_f64() / deadline.as_secs_f64());
        batch.data = wire.data;
        batch.offsets = wire.offsets;
        match result {
            Ok(Ok(v)) => Ok(VerdictList {
                codes: v.codes,
                replacements: v.replacements,
                replacement_ends: v.replacement_ends,
            }),
            Ok(Err(message)) => Err(PluginError::Guest(message)),
            Err(e) => Err(classify(e, deadline, self.store.data())),
        }
    }

    /// Linear memory never shrinks, and a guest whose garbage collector lags
    /// behind its allocations (seen with JavaScript components: their memory grows
    /// with every batch until the cap) would fail a batch at the cap sooner or
    /// later. Once the instance has used half the room its cap leaves above a fresh
    /// instance, it is replaced between batches, before it gets there.
    fn worn(&self) -> Option<Worn> {
        let size = self.store.data().memory.size;
        let limit = self.store.data().memory.limit;
        let room = limit.saturating_sub(self.started_with);
        (size.saturating_sub(self.started_with) > room / 2).then_some(Worn { size, limit })
    }
}

/// Names the two common mistakes before the compiler's own, longer message: a file
/// that is not WebAssembly at all, and a core module where a component is needed.
fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::Compile(format!(
            "not a WebAssembly file: it does not start with the `\\0asm` magic bytes ({} bytes long)",
            bytes.len()
        )));
    }
    if &bytes[4..8] == CORE_MODULE {
        return Err(PluginError::Compile(
            "a core WebAssembly module, not a component: build it for --target wasm32-wasip2 against plugins/wit"
                .to_string(),
        ));
    }
    Ok(())
}

/// The guest's message from its stderr: a Rust panic's location and message when
/// there is one (they span two lines, followed by a hint), else the last line.
fn last_words(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => Some(lines[i..].iter().take(2).copied().collect::<Vec<_>>().join(" ")),
        None => lines.last().map(|l| l.to_string()),
    }
}

/// Joins a multi-line message into one log-friendly line.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Epoch ticks for a deadline, rounded up, plus one for the tick in progress.
fn ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).saturating_add(1)
}

/// Names a failed guest call: deadline, memory cap (as the store's limiter saw
/// it), or another trap, with the last line the guest wrote to stderr (a Rust
/// panic message lands there).
/// An error of the host's making: an I/O error in its chain and no trap.
fn host_failure(error: &wasmtime::Error) -> bool {
    error.downcast_ref::<Trap>().is_none() && error.chain().any(|cause| cause.is::<std::io::Error>())
}

fn classify(error: wasmtime::Error, deadline: Duration, state: &HostState) -> PluginError {
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return PluginError::Timeout(deadline);
    }
    if let Some(MemoryCapReached { limit }) = state.memory.reached {
        return PluginError::MemoryLimit(limit as u64);
    }
    let stderr = &state.stderr;
    let what = match trap {
        Some(trap) => trap.to_string(),
        None => one_line(&format!("{error:#}")),
    };
    match last_words(&String::from_utf8_lossy(&stderr.contents())) {
        Some(said) => PluginError::Trap(format!("{what}; the plugin said: {said}")),
        None => PluginError::Trap(what),
    }
}

/// The instance's memory cap, enforced when its memories are created and each
/// time they grow. Going over it traps the call, and the outcome is kept for
/// [`classify`] to read (not inferred from the trap's text).
struct MemoryCap {
    limit: usize,
    reached: Option<MemoryCapReached>,
    /// Bytes of linear memory the instance has, all its memories together (they
    /// never shrink).
    size: usize,
}

/// Why a memory could not grow: the cap of `limit` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("memory would grow past the instance's cap of {limit} bytes")]
struct MemoryCapReached {
    limit: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.limit {
            self.size = self.size.saturating_add(desired.saturating_sub(current));
            return Ok(true);
        }
        let reached = MemoryCapReached { limit: self.limit };
        self.reached = Some(reached);
        // An error, not `false`: the guest traps instead of seeing a failed grow
        // it may not check.
        Err(reached.into())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's per-table limit.
        Ok(true)
    }
}

/// A store's data: WASI state, limits, and what the host functions need.
struct HostState {
    wasi: WasiCtx,
    /// What the guest writes to stderr (bounded), quoted when it traps.
    stderr: MemoryOutputPipe,
    table: ResourceTable,
    memory: MemoryCap,
    plugin: Arc<str>,
    metrics: PluginMetrics,
    log_budget: f64,
    log_refilled: Instant,
    counters: HashMap<String, IntCounter>,
}

impl HostState {
    fn new(settings: &InstanceSettings) -> Result<HostState, PluginError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        Ok(HostState {
            wasi: wasi_context(&settings.grants, &stderr)?,
            stderr,
            table: ResourceTable::new(),
            memory: MemoryCap {
                size: 0,
                limit: usize::try_from(settings.memory).unwrap_or(usize::MAX),
                reached: None,
            },
            plugin: settings.plugin.as_str().into(),
            metrics: settings.metrics.clone(),
            log_budget: LOG_LINES_PER_SECOND * 2.0,
            log_refilled: Instant::now(),
            counters: HashMap::new(),
        })
    }
}

/// WASI with only what `allow` grants: by default no environment, no files, no
/// network, and clocks that read zero.
fn wasi_context(grants: &Grants, stderr: &MemoryOutputPipe) -> Result<WasiCtx, PluginError> {
    let mut builder = WasiCtxBuilder::new();
    builder.stderr(stderr.clone());
    for name in &grants.env {
        if let Ok(value) = std::env::var(name) {
            builder.env(name, value);
        }
    }
    if !grants.clock {
        builder.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    }
    builder.allow_tcp(grants.network).allow_udp(grants.network).allow_ip_name_lookup(grants.network);
    if grants.network {
        builder.socket_addr_check(|_, _| Box::pin(async { true }));
    }
    for dir in &grants.dirs {
        let perms = if dir.write { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        builder.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            PluginError::Instantiate(format!("cannot open granted directory {}: {e:#}", dir.host.display()))
        })?;
    }
    Ok(builder.build())
}

/// The clock of a plugin that was not granted one.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

// The types interface has no functions; the trait only marks it as provided.
impl synaptic::plugin::types::Host for HostState {}

impl synaptic::plugin::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let now = Instant::now();
        let refill = now.duration_since(self.log_refilled).as_secs_f64() * LOG_LINES_PER_SECOND;
        self.log_budget = (self.log_budget + refill).min(LOG_LINES_PER_SECOND * 2.0);
        self.log_refilled = now;
        if self.log_budget < 1.0 {
            self.metrics.guest_logs_dropped.inc();
            return;
        }
        self.log_budget -= 1.0;
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn count(&mut self, name: String, delta: u64) {
        if let Some(counter) = self.counters.get(&name) {
            counter.inc_by(delta);
            return;
        }
        let key = if self.counters.len() < MAX_GUEST_COUNTERS { name } else { "overflow".to_string() };
        let counter = self.counters.entry(key.clone()).or_insert_with(|| self.metrics.guest_counter(&key));
        counter.inc_by(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_io_errors_without_a_trap_count_as_the_hosts() {
        let sealing = wasmtime::Error::new(std::io::Error::other("cannot add seals to the memfd"))
            .context("instantiating the component");
        assert!(host_failure(&sealing));
        assert!(!host_failure(&wasmtime::Error::new(Trap::UnreachableCodeReached)));
        assert!(!host_failure(&wasmtime::Error::msg("import `x` has the wrong type")));
        let trap_over_io =
            wasmtime::Error::new(std::io::Error::other("disk")).context(Trap::UnreachableCodeReached);
        assert!(!host_failure(&trap_over_io), "a trap is the plugin's, whatever else is in the chain");
    }
}

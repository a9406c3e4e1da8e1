//! The plugin steps' own metrics: verdicts, batch time, failures by kind, swaps,
//! rollbacks, load failures, the version in service, and the guests' counters.

use prometheus::core::Collector;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGaugeVec};

use crate::telemetry::Telemetry;

/// Why a plugin failed a batch, as the `kind` label of `plugin_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginFailureKind {
    Trap,
    Timeout,
    MemoryLimit,
    Error,
    BadOutput,
}

impl PluginFailureKind {
    pub(crate) const ALL: [PluginFailureKind; 5] = [
        PluginFailureKind::Trap,
        PluginFailureKind::Timeout,
        PluginFailureKind::MemoryLimit,
        PluginFailureKind::Error,
        PluginFailureKind::BadOutput,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            PluginFailureKind::Trap => "trap",
            PluginFailureKind::Timeout => "timeout",
            PluginFailureKind::MemoryLimit => "memory_limit",
            PluginFailureKind::Error => "error",
            PluginFailureKind::BadOutput => "bad_output",
        }
    }
}

/// Per-plugin handles.
#[derive(Clone)]
pub struct PluginMetrics {
    plugin: String,
    pub(crate) events_in: IntCounter,
    pub kept: IntCounter,
    pub dropped: IntCounter,
    pub replaced: IntCounter,
    pub(crate) batch_seconds: Histogram,
    failures: [IntCounter; 5],
    pub swaps: IntCounter,
    /// Instances replaced between batches because their memory ran low.
    pub recycles: IntCounter,
    pub(crate) rollbacks: IntCounter,
    load_failures: IntCounterVec,
    info: IntGaugeVec,
    guest_counters: IntCounterVec,
    pub(crate) guest_logs_dropped: IntCounter,
    /// Batch time as a share of the batch's deadline (1 = at the deadline).
    pub(crate) deadline_used: Histogram,
}

impl PluginMetrics {
    /// The handles of the plugin step `plugin`.
    pub fn register(telemetry: &Telemetry, plugin: &str) -> Self {
        let events = telemetry.counter_vec(
            "plugin_events_total",
            "Events through each plugin, by verdict: in, kept, dropped, replaced",
            &["plugin", "verdict"],
        );
        let batch_seconds = telemetry.histogram_vec(
            "plugin_batch_duration_seconds",
            "Time a plugin took for one batch, crossing the boundary both ways included",
            &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0],
            &["plugin"],
        );
        let failures = telemetry.counter_vec(
            "plugin_failures_total",
            "Batches a plugin failed, by kind: trap, timeout, memory_limit, error, bad_output",
            &["plugin", "kind"],
        );
        let swaps =
            telemetry.counter_vec("plugin_swaps_total", "New plugin versions put in service", &["plugin"]);
        let recycles = telemetry.counter_vec(
            "plugin_instance_recycles_total",
            "Plugin instances replaced with fresh ones between batches because their memory ran low",
            &["plugin"],
        );
        let rollbacks = telemetry.counter_vec(
            "plugin_rollbacks_total",
            "New plugin versions withdrawn for failing their first batches",
            &["plugin"],
        );
        let guest_logs_dropped = telemetry.counter_vec(
            "plugin_guest_logs_dropped_total",
            "Plugin log lines over the rate limit, not written",
            &["plugin"],
        );
        let verdict = |v: &str| events.with_label_values(&[plugin, v]);
        let deadline_used = telemetry
            .histogram_vec(
                "plugin_batch_deadline_ratio",
                "Time a plugin took for one batch as a share of that batch's deadline (1 = timed out)",
                &[0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0],
                &["plugin"],
            )
            .with_label_values(&[plugin]);
        PluginMetrics {
            deadline_used,
            plugin: plugin.to_string(),
            events_in: verdict("in"),
            kept: verdict("kept"),
            dropped: verdict("dropped"),
            replaced: verdict("replaced"),
            batch_seconds: batch_seconds.with_label_values(&[plugin]),
            failures: PluginFailureKind::ALL.map(|kind| failures.with_label_values(&[plugin, kind.label()])),
            swaps: swaps.with_label_values(&[plugin]),
            recycles: recycles.with_label_values(&[plugin]),
            rollbacks: rollbacks.with_label_values(&[plugin]),
            load_failures: telemetry.counter_vec(
                "plugin_load_failures_total",
                "Plugin versions that could not be loaded, by stage: read, compile, instantiate, init",
                &["plugin", "stage"],
            ),
            info: telemetry.gauge_vec(
                "plugin_info",
                "The plugin version in service (1), by runtime and content hash (sha256)",
                &["plugin", "runtime", "hash"],
            ),
            guest_counters: telemetry.counter_vec(
                "plugin_reported_total",
                "Counters that plugins keep themselves",
                &["plugin", "name"],
            ),
            guest_logs_dropped: guest_logs_dropped.with_label_values(&[plugin]),
        }
    }

    pub fn failure(&self, kind: PluginFailureKind) -> &IntCounter {
        &self.failures[kind as usize]
    }

    /// Counts a version that could not be loaded, by stage (read, compile,
    /// instantiate, init).
    pub(crate) fn load_failed(&self, stage: &str) {
        self.load_failures.with_label_values(&[&self.plugin, stage]).inc();
    }

    /// Marks `hash` as the version in service (and no other).
    pub(crate) fn set_version(&self, runtime: &str, hash: &str) {
        // Remove the previous version's series; the family holds this plugin's only.
        for family in self.info.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric.get_label().iter().find(|l| l.name() == name).map_or("", |l| l.value())
                };
                if label("plugin") == self.plugin {
                    let _ =
                        self.info.remove_label_values(&[label("plugin"), label("runtime"), label("hash")]);
                }
            }
        }
        self.info.with_label_values(&[&self.plugin, runtime, hash]).set(1);
    }

    /// A guest's named counter; the caller bounds how many names it creates.
    pub(crate) fn guest_counter(&self, name: &str) -> IntCounter {
        self.guest_counters.with_label_values(&[&self.plugin, name])
    }
}

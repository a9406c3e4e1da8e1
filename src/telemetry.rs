//! The pipeline's own metrics: one struct, registered once at start. Handles for
//! per-step and per-sink series are resolved when the step or sink is built, never
//! per event.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use std::sync::{Arc, Mutex};

use crate::event::EventKind;

const PREFIX: &str = "synaptic_telemetry";

pub struct Telemetry {
    registry: Registry,
    pub source_events: IntCounter,
    pub source_batches: IntCounter,
    events_by_type: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub schema_warnings: IntCounter,
    pub unrouted: IntCounter,
    step_events: IntCounterVec,
    sink_events: IntCounterVec,
    sink_errors: IntCounterVec,
    pub batch_seconds: Histogram,
    pub acked_events: IntCounter,
    pub failed_events: IntCounter,
    pub in_flight_batches: IntGauge,
    pub kafka_commits: IntCounter,
    pub kafka_rebalances: IntCounter,
    pub kafka_assigned_partitions: IntGauge,
    pub kafka_paused_partitions: IntGauge,
    /// High watermark minus committed offset, per assigned partition.
    pub kafka_lag: IntGaugeVec,
    plugins: PluginFamilies,
    /// Per metric of the metrics step: series_overflow, series_evicted, key_overflow, missing_value.
    pub metric_problems: IntCounterVec,
    /// Spans the traces step made, by outcome (exported, sampled_out, …).
    pub spans: IntCounterVec,
    /// The alert engine's own metrics.
    pub alerts: AlertMetrics,
    exports: Mutex<Vec<Arc<dyn MetricExport>>>,
}

/// The alert engine's metrics.
#[derive(Clone)]
pub struct AlertMetrics {
    pub firing: IntGaugeVec,
    pub notifications: IntCounterVec,
    pub reloads: IntCounterVec,
    pub inhibited: IntCounter,
    pub groups_refused: IntCounter,
}

/// The metric families of plugins; one handle set per plugin is taken from them.
struct PluginFamilies {
    events: IntCounterVec,
    batch_seconds: HistogramVec,
    failures: IntCounterVec,
    swaps: IntCounterVec,
    rollbacks: IntCounterVec,
    load_failures: IntCounterVec,
    info: IntGaugeVec,
    guest_counters: IntCounterVec,
    guest_logs_dropped: IntCounterVec,
}

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
    pub const ALL: [PluginFailureKind; 5] = [
        PluginFailureKind::Trap,
        PluginFailureKind::Timeout,
        PluginFailureKind::MemoryLimit,
        PluginFailureKind::Error,
        PluginFailureKind::BadOutput,
    ];

    pub fn label(self) -> &'static str {
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
    pub events_in: IntCounter,
    pub kept: IntCounter,
    pub dropped: IntCounter,
    pub replaced: IntCounter,
    pub batch_seconds: Histogram,
    failures: [IntCounter; 5],
    pub swaps: IntCounter,
    pub rollbacks: IntCounter,
    load_failures: IntCounterVec,
    info: IntGaugeVec,
    guest_counters: IntCounterVec,
    pub guest_logs_dropped: IntCounter,
}

impl PluginMetrics {
    pub fn failure(&self, kind: PluginFailureKind) -> &IntCounter {
        &self.failures[kind as usize]
    }

    /// Counts a version that could not be loaded, by stage (read, compile,
    /// instantiate, init).
    pub fn load_failed(&self, stage: &str) {
        self.load_failures.with_label_values(&[&self.plugin, stage]).inc();
    }

    /// Marks `hash` as the version in service (and no other).
    pub fn set_version(&self, runtime: &str, hash: &str) {
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
    pub fn guest_counter(&self, name: &str) -> IntCounter {
        self.guest_counters.with_label_values(&[&self.plugin, name])
    }
}

/// Per-step handles.
#[derive(Clone)]
pub struct StepCounters {
    pub events_in: IntCounter,
    pub events_out: IntCounter,
    pub dropped: IntCounter,
    pub dead_lettered: IntCounter,
}

/// Per-sink handles.
#[derive(Clone)]
pub struct SinkCounters {
    pub sent: IntCounter,
    pub failed: IntCounter,
    pub write_errors: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(format!("{PREFIX}_{name}"), help))
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    register(registry, Box::new(c.clone()));
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(format!("{PREFIX}_{name}"), help), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    register(registry, Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(format!("{PREFIX}_{name}"), help))
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    register(registry, Box::new(g.clone()));
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(format!("{PREFIX}_{name}"), help), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    register(registry, Box::new(g.clone()));
    g
}

impl PluginFamilies {
    fn new(registry: &Registry) -> Self {
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                format!("{PREFIX}_plugin_batch_duration_seconds"),
                "Time a plugin took for one batch, crossing the boundary both ways included",
            )
            .buckets(vec![0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0]),
            &["plugin"],
        )
        .unwrap_or_else(|e| unreachable!("static histogram: {e}"));
        register(registry, Box::new(batch_seconds.clone()));
        PluginFamilies {
            events: counter_vec(
                registry,
                "plugin_events_total",
                "Events through each plugin, by verdict: in, kept, dropped, replaced",
                &["plugin", "verdict"],
            ),
            batch_seconds,
            failures: counter_vec(
                registry,
                "plugin_failures_total",
                "Batches a plugin failed, by kind: trap, timeout, memory_limit, error, bad_output",
                &["plugin", "kind"],
            ),
            swaps: counter_vec(
                registry,
                "plugin_swaps_total",
                "New plugin versions put in service",
                &["plugin"],
            ),
            rollbacks: counter_vec(
                registry,
                "plugin_rollbacks_total",
                "New plugin versions withdrawn for failing their first batches",
                &["plugin"],
            ),
            load_failures: counter_vec(
                registry,
                "plugin_load_failures_total",
                "Plugin versions that could not be loaded, by stage: read, compile, instantiate, init",
                &["plugin", "stage"],
            ),
            info: gauge_vec(
                registry,
                "plugin_info",
                "The plugin version in service (1), by runtime and content hash (sha256)",
                &["plugin", "runtime", "hash"],
            ),
            guest_counters: counter_vec(
                registry,
                "plugin_reported_total",
                "Counters that plugins keep themselves",
                &["plugin", "name"],
            ),
            guest_logs_dropped: counter_vec(
                registry,
                "plugin_guest_logs_dropped_total",
                "Plugin log lines over the rate limit, not written",
                &["plugin"],
            ),
        }
    }
}

fn register(registry: &Registry, collector: Box<dyn prometheus::core::Collector>) {
    // Names are static and distinct: registration can only fail on a programming error.
    if let Err(e) = registry.register(collector) {
        unreachable!("metric registration: {e}");
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let registry = Registry::new();
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                format!("{PREFIX}_batch_duration_seconds"),
                "Time to decode, validate, run the steps and route one batch",
            )
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )
        .unwrap_or_else(|e| unreachable!("static histogram: {e}"));
        register(&registry, Box::new(batch_seconds.clone()));
        let in_flight_batches = IntGauge::with_opts(Opts::new(
            format!("{PREFIX}_in_flight_batches"),
            "Batches read but not yet acknowledged by every sink",
        ))
        .unwrap_or_else(|e| unreachable!("static gauge: {e}"));
        register(&registry, Box::new(in_flight_batches.clone()));
        let t = Telemetry {
            source_events: counter(&registry, "source_events_total", "Records read from the source"),
            source_batches: counter(&registry, "source_batches_total", "Batches read from the source"),
            events_by_type: counter_vec(
                &registry,
                "events_total",
                "Valid events by canonical event type (unknown types as `unknown`)",
                &["event_type"],
            ),
            dead_lettered: counter_vec(
                &registry,
                "dead_lettered_total",
                "Inputs sent to the dead-letter sink, by stage (decode, schema, step)",
                &["stage"],
            ),
            schema_warnings: counter(
                &registry,
                "schema_warnings_total",
                "Events with schema problems passed on in lenient mode",
            ),
            unrouted: counter(&registry, "unrouted_events_total", "Events that matched no sink"),
            step_events: counter_vec(
                &registry,
                "step_events_total",
                "Events through each step: in, out, dropped, dead_lettered",
                &["step", "outcome"],
            ),
            sink_events: counter_vec(
                &registry,
                "sink_events_total",
                "Events by sink: sent (acknowledged) or failed (not acknowledged)",
                &["sink", "outcome"],
            ),
            sink_errors: counter_vec(
                &registry,
                "sink_write_errors_total",
                "Failed write attempts by sink (retried)",
                &["sink"],
            ),
            batch_seconds,
            acked_events: counter(
                &registry,
                "acknowledged_events_total",
                "Input records whose batch every sink acknowledged",
            ),
            failed_events: counter(
                &registry,
                "unacknowledged_events_total",
                "Input records whose batch was not acknowledged by every sink",
            ),
            in_flight_batches,
            kafka_commits: counter(
                &registry,
                "kafka_commits_total",
                "Offset commits sent to the group coordinator",
            ),
            kafka_rebalances: counter(&registry, "kafka_rebalances_total", "Partition revocations seen"),
            kafka_assigned_partitions: gauge(
                &registry,
                "kafka_assigned_partitions",
                "Partitions assigned to this member",
            ),
            kafka_paused_partitions: gauge(
                &registry,
                "kafka_paused_partitions",
                "Partitions paused because the pipeline is full",
            ),
            kafka_lag: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        format!("{PREFIX}_kafka_consumer_lag"),
                        "High watermark minus committed offset, per assigned partition",
                    ),
                    &["topic", "partition"],
                )
                .unwrap_or_else(|e| unreachable!("static gauge vec: {e}"));
                register(&registry, Box::new(g.clone()));
                g
            },
            plugins: PluginFamilies::new(&registry),
            metric_problems: counter_vec(
                &registry,
                "metric_problems_total",
                "Events the metrics step could not fully count: series_overflow (counted in the __overflow__ series), series_evicted (a new label set took the place of the least recently used one, whose counts went to __overflow__), key_overflow (a keyed gauge at max_keys), missing_value",
                &["metric", "problem"],
            ),
            spans: counter_vec(
                &registry,
                "spans_total",
                "Events the traces step considered: span (made into a span), sampled_out (trace not sampled)",
                &["outcome"],
            ),
            alerts: AlertMetrics {
                firing: gauge_vec(&registry, "alerts_firing", "Alerts firing now, by tier", &["tier"]),
                notifications: counter_vec(
                    &registry,
                    "alert_notifications_total",
                    "Alert notifications by receiver and outcome (sent, retried)",
                    &["receiver", "outcome"],
                ),
                reloads: counter_vec(
                    &registry,
                    "alert_rule_reloads_total",
                    "Rule set reloads by outcome (applied, rejected)",
                    &["outcome"],
                ),
                inhibited: counter(
                    &registry,
                    "alerts_inhibited_total",
                    "Warnings not sent because a critical alert with the same group labels was firing",
                ),
                groups_refused: counter(
                    &registry,
                    "alert_groups_refused_total",
                    "Events that would have opened a group past a rule's max_groups",
                ),
            },
            exports: Mutex::new(Vec::new()),
            registry,
        };
        for kind in EventKind::KNOWN {
            t.event_type_counter(kind);
        }
        t
    }

    pub fn event_type_counter(&self, kind: EventKind) -> IntCounter {
        self.events_by_type.with_label_values(&[kind.canonical_name().unwrap_or("unknown")])
    }

    pub fn step_counters(&self, step: &str) -> StepCounters {
        StepCounters {
            events_in: self.step_events.with_label_values(&[step, "in"]),
            events_out: self.step_events.with_label_values(&[step, "out"]),
            dropped: self.step_events.with_label_values(&[step, "dropped"]),
            dead_lettered: self.step_events.with_label_values(&[step, "dead_lettered"]),
        }
    }

    pub fn sink_counters(&self, sink: &str) -> SinkCounters {
        SinkCounters {
            sent: self.sink_events.with_label_values(&[sink, "sent"]),
            failed: self.sink_events.with_label_values(&[sink, "failed"]),
            write_errors: self.sink_errors.with_label_values(&[sink]),
        }
    }

    pub fn plugin_metrics(&self, plugin: &str) -> PluginMetrics {
        let f = &self.plugins;
        let events = |verdict: &str| f.events.with_label_values(&[plugin, verdict]);
        PluginMetrics {
            plugin: plugin.to_string(),
            events_in: events("in"),
            kept: events("kept"),
            dropped: events("dropped"),
            replaced: events("replaced"),
            batch_seconds: f.batch_seconds.with_label_values(&[plugin]),
            failures: PluginFailureKind::ALL
                .map(|kind| f.failures.with_label_values(&[plugin, kind.label()])),
            swaps: f.swaps.with_label_values(&[plugin]),
            rollbacks: f.rollbacks.with_label_values(&[plugin]),
            load_failures: f.load_failures.clone(),
            info: f.info.clone(),
            guest_counters: f.guest_counters.clone(),
            guest_logs_dropped: f.guest_logs_dropped.with_label_values(&[plugin]),
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8(out).unwrap_or_default();
        let exports = self.exports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for export in exports.iter() {
            export.render(&mut text);
        }
        text
    }

    /// Adds metrics rendered by someone else (the metrics step's families) to
    /// `/metrics`.
    pub fn add_export(&self, export: Arc<dyn MetricExport>) {
        self.exports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(export);
    }
}

/// Metric families rendered in the Prometheus text format by their owner.
pub trait MetricExport: Send + Sync {
    fn render(&self, out: &mut String);
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

//! Buffers in front of a sink (and of an alert receiver): where batches wait while
//! their output is slow or down, so that one output's trouble holds back only
//! itself until its buffer is full.
//!
//! - `memory`: batches wait in memory, bounded by events and bytes. A batch is
//!   acknowledged upstream only once delivered, so a crash loses nothing (the
//!   source reads it again).
//! - `disk`: batches are written to segment files ([`disk::DiskQueue`]) and
//!   acknowledged upstream once written (and synced, with `fsync: every_batch`).
//!   They are delivered from disk, also after a restart.
//!
//! `when_full` says what a full buffer does: `block` (the pipeline waits; nothing
//! is lost) or `drop_newest` (the new batch is dropped and counted; the pipeline
//! never waits for this output).

pub(crate) mod disk;
mod memory;

use std::path::PathBuf;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use crate::decode::yaml::Node;
use crate::decode::{one_of, ByteSize, Diagnostics, MapReader};
use crate::seal::Sealer;
use crate::telemetry::Telemetry;

pub(crate) use memory::MemoryQueue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    Block,
    DropNewest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fsync {
    /// Synced before each batch is acknowledged: a power loss loses nothing
    /// acknowledged.
    EveryBatch,
    /// Synced on a timer: a power loss can lose what was acknowledged in the last
    /// interval (a process crash loses nothing: the data is in the OS cache).
    Interval(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BufferKind {
    Memory { max_events: u64, max_bytes: u64 },
    Disk { path: PathBuf, max_bytes: u64, fsync: Fsync, encryption: Option<Sealer> },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BufferConfig {
    pub(crate) kind: BufferKind,
    pub(crate) when_full: WhenFull,
}

pub(crate) const DEFAULT_MEMORY_EVENTS: u64 = 8192;
pub(crate) const DEFAULT_MEMORY_BYTES: u64 = 16 << 20;
pub(crate) const DEFAULT_DISK_BYTES: u64 = 256 << 20;
pub(crate) const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

impl Default for BufferConfig {
    /// A small memory buffer that blocks when full: an output's blip does not stall
    /// the others, and nothing is ever dropped without being asked for.
    fn default() -> Self {
        BufferConfig {
            kind: BufferKind::Memory { max_events: DEFAULT_MEMORY_EVENTS, max_bytes: DEFAULT_MEMORY_BYTES },
            when_full: WhenFull::Block,
        }
    }
}

impl BufferConfig {
    /// The `buffer` section of a sink or receiver named `owner`.
    pub(crate) fn decode(node: &Node, owner: &str, cx: &mut Diagnostics) -> Option<BufferConfig> {
        let what = format!("the buffer of {owner}");
        let mut map = MapReader::new(node, &what, cx)?;
        let kind_name = match map.node("type") {
            Some(n) => one_of(n, &[("memory", "memory"), ("disk", "disk")], cx),
            None => {
                cx.error(map.pos(), format!("{what} is missing required key `type` (memory or disk)"));
                None
            }
        };
        let when_full = map
            .node("when_full")
            .and_then(|n| one_of(n, &[("block", WhenFull::Block), ("drop_newest", WhenFull::DropNewest)], cx))
            .unwrap_or(WhenFull::Block);
        let kind = match kind_name? {
            "memory" => {
                let max_events = map.optional::<u64>("max_events", cx);
                let max_bytes = map.optional::<ByteSize>("max_bytes", cx).map(|b| b.0);
                if max_events == Some(0) || max_bytes == Some(0) {
                    cx.error(map.pos(), format!("{what} must hold at least one event"));
                }
                BufferKind::Memory {
                    max_events: max_events.unwrap_or(DEFAULT_MEMORY_EVENTS),
                    max_bytes: max_bytes.unwrap_or(DEFAULT_MEMORY_BYTES),
                }
            }
            _ => {
                let path: Option<String> = map.required("path", cx);
                let max_bytes = map.or("max_bytes", ByteSize(DEFAULT_DISK_BYTES), cx).0;
                if max_bytes < 1 << 20 {
                    cx.error(map.key_pos("max_bytes"), format!("{what}: max_bytes must be at least 1MiB"));
                }
                let fsync = map
                    .node("fsync")
                    .and_then(|n| one_of(n, &[("every_batch", true), ("interval", false)], cx))
                    .unwrap_or(false);
                let interval = map.or("fsync_interval", DEFAULT_FSYNC_INTERVAL, cx);
                let fsync = if fsync { Fsync::EveryBatch } else { Fsync::Interval(interval) };
                let encryption = Sealer::decode_key(&mut map, &what, cx);
                BufferKind::Disk { path: PathBuf::from(path?), max_bytes, fsync, encryption }
            }
        };
        map.finish(cx);
        Some(BufferConfig { kind, when_full })
    }

    pub(crate) fn disk_path(&self) -> Option<&std::path::Path> {
        match &self.kind {
            BufferKind::Disk { path, .. } => Some(path),
            BufferKind::Memory { .. } => None,
        }
    }

    /// For the start-up banner.
    pub(crate) fn describe(&self) -> String {
        let full = match self.when_full {
            WhenFull::Block => "block",
            WhenFull::DropNewest => "drop_newest",
        };
        match &self.kind {
            BufferKind::Memory { max_events, max_bytes } => {
                format!("memory buffer ({max_events} events, {max_bytes} bytes, {full} when full)")
            }
            BufferKind::Disk { path, max_bytes, fsync, .. } => {
                let sync = match fsync {
                    Fsync::EveryBatch => "fsync every batch".to_string(),
                    Fsync::Interval(d) => format!("fsync every {}", humantime::format_duration(*d)),
                };
                format!("disk buffer {} ({max_bytes} bytes, {sync}, {full} when full)", path.display())
            }
        }
    }
}

/// A buffer's metrics, labelled by its owner (a sink or a receiver).
#[derive(Clone)]
pub(crate) struct BufferMetrics {
    pub(crate) records: IntGauge,
    pub(crate) events: IntGauge,
    pub(crate) bytes: IntGauge,
    pub(crate) dropped: IntCounter,
    /// How full the buffer is, in percent of its tighter limit (what the
    /// `degrade` step watches).
    fill: IntGauge,
    limits: (u64, u64),
    lost: IntCounterVec,
    owner: String,
}

impl BufferMetrics {
    /// `config` gives the limits the fill is measured against.
    pub(crate) fn register(telemetry: &Telemetry, owner: &str, config: &BufferConfig) -> Self {
        let gauge =
            |name: &str, help: &str| telemetry.gauge_vec(name, help, &["sink"]).with_label_values(&[owner]);
        let lost = telemetry.counter_vec(
            "buffer_records_lost_total",
            "Buffer records skipped because they were damaged on disk, by reason (corrupt, truncated, missing)",
            &["sink", "reason"],
        );
        for damage in disk::Damage::ALL {
            lost.with_label_values(&[owner, damage.label()]);
        }
        BufferMetrics {
            records: gauge("buffer_records", "Batches waiting in the buffer"),
            events: gauge("buffer_events", "Events waiting in the buffer (memory buffers; disk buffers after a restart count from what they read)"),
            bytes: gauge("buffer_bytes", "Bytes the buffer holds (on disk for a disk buffer)"),
            dropped: telemetry
                .counter_vec(
                    "buffer_dropped_events_total",
                    "Events dropped because the buffer was full (when_full: drop_newest)",
                    &["sink"],
                )
                .with_label_values(&[owner]),
            fill: gauge("buffer_fill_percent", "How full the buffer is, in percent of its limit"),
            limits: match &config.kind {
                BufferKind::Memory { max_events, max_bytes } => (*max_events, *max_bytes),
                BufferKind::Disk { max_bytes, .. } => (u64::MAX, *max_bytes),
            },
            lost,
            owner: owner.to_string(),
        }
    }

    /// Sets the gauges from what a memory buffer holds.
    pub(crate) fn set_size_of<T>(&self, queue: &MemoryQueue<T>) {
        let (records, events, bytes) = queue.size();
        self.set_size(records, events, bytes);
    }

    /// Sets the gauges from what the buffer holds.
    pub(crate) fn set_size(&self, records: u64, events: u64, bytes: u64) {
        self.records.set(records as i64);
        self.events.set(events as i64);
        self.bytes.set(bytes as i64);
        let (max_events, max_bytes) = self.limits;
        let share = (events as f64 / max_events as f64).max(bytes as f64 / max_bytes.max(1) as f64);
        self.fill.set((share * 100.0).round().min(100.0) as i64);
    }

    pub(crate) fn count_losses(&self, losses: &disk::Losses) {
        for (damage, n) in &losses.0 {
            self.lost.with_label_values(&[&self.owner, damage.label()]).inc_by(*n);
            tracing::error!(sink = %self.owner, reason = damage.label(), records = n, "skipped damaged records in the disk buffer");
        }
    }
}

#[cfg(test)]
mod tests;

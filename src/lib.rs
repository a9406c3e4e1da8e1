//! synaptic-telemetry: the telemetry pipeline of the codex-synaptic agent platform.
//!
//! Agents, the neural mesh, swarms, consensus, the memory bridge, the scheduler and
//! the security layer publish JSON events. This crate reads them, validates them
//! against schema v1.0, runs them through ordered steps, and forwards them to sinks
//! with end-to-end acknowledgement: an input counts as done only when every sink it
//! was routed to has acknowledged it, a step dropped it on purpose, or it was written
//! to the dead-letter sink with the reason.
//!
//! # Layout
//!
//! - `main.rs` — the CLI: `run`, `demo`, `validate`, `test plugin`, `test rules`,
//!   `generate`.
//! - `bin/synaptic-kafka-mock.rs` — librdkafka's mock Kafka cluster in one process.
//! - [`app`] — wires source → pipeline → sinks and the HTTP server; orderly shutdown.
//! - [`config`] — the strict YAML config: a position-marked YAML tree (`yaml`), a
//!   decoder that reports every error with `file:line:col` (`decode`), the sections;
//!   the plugin host and plugin steps (`plugin`); the metrics and traces steps and
//!   the `otlp` and `influxdb` sinks (`observe`); the alerts step (`alerts`).
//! - [`event`] — the envelope and the batch; schema v1.0 as a field table (`schema`),
//!   checked by a zero-copy pass over the bytes (`scan`) with a precise fallback that
//!   names every problem; the JSON both paths accept (`json`: no duplicate keys,
//!   64 levels, valid strings, finite numbers); one field read from the bytes
//!   without a document (`field`); the dead-letter record (`dead_letter`).
//! - [`source`] — `generator` (synthetic traffic from `traffic`, seeded by `rng`),
//!   `file` (JSONL or stdin) and `kafka` (consumer group; `kafka::offsets` keeps the
//!   per-partition watermark that commits follow); the `Emitter` that batches records
//!   and bounds in-flight batches.
//! - [`ack`] — the per-batch tracker and per-sink deliveries behind at-least-once.
//! - [`pipeline`] — decode + validate → steps → route, then hand-over to the sinks.
//! - [`step`] — the `Step` trait and the built-in steps `tag`, `drop` and `traces`
//!   (spans from events with a duration, sampled by trace id); the `metrics` and
//!   `alerts` steps live with their modules.
//! - [`metrics`] — the `metrics` step: the declarative metric mapping
//!   (`mapping`, `config/metrics.yaml` built in) with promtool's naming rules
//!   checked at load (`names`), per-event-type plans that read each event's fields
//!   in one scan (`plan`), lookup tables learned from the stream (`lookup`), and
//!   bounded metric families with their text exposition (`store`).
//! - [`plugin`] — hot-swappable plugin steps: the WebAssembly runtime (`wasm`:
//!   pooled instances, epoch deadlines, memory caps, WASI denied by default), the
//!   Rhai runtime on the same contract (`script`: a raw engine with limits), the
//!   step that applies verdicts, contains failures, swaps and rolls back (`step`),
//!   the directory watcher that prepares new versions (`watch`), and the author's
//!   `test plugin` command (`tester`). The contract is `plugins/wit/plugin.wit`;
//!   the SDK (`plugins/sdk`) holds its Rust encoding, shared by host and guests,
//!   and the helpers both runtimes' plugins use (field lookup, globs, the sampling
//!   hash). The standard plugins — `sample`, `filter`, `pii_scrub` — live in
//!   `plugins/standard`; `sample` and `filter` also as scripts in `plugins/*.rhai`.
//! - [`scrub`] — in a pipeline with the `pii_scrub` plugin, dead letters pass
//!   through the same detectors (run natively) before they are written.
//! - [`route`] — `match` clauses and per-sink selections; [`glob`] — their globs
//!   (the SDK's, re-exported).
//! - [`sink`] — sink tasks with retry, and the outputs `stdout`, `file` (rotation),
//!   `kafka` (idempotent producer, acknowledged on delivery reports), `otlp` (spans
//!   over OTLP/gRPC or OTLP/HTTP) and `influxdb` (line protocol, gzip).
//! - [`alert`] — alert rules in three tiers, evaluated on the events: the rule
//!   format (`rule`), sliding windows over event time (`window`), per-group state
//!   fed by events and evaluated on a timer (`engine`), tier timing, repeats and
//!   inhibition (`notify`), receivers with outboxes and retries (`receiver`,
//!   `alertmanager`), the running step, evaluation task and rule reload
//!   (`service`), and `test rules` on a simulated clock (`testing`).
//! - [`fields`] — reading a planned set of fields from an event in one scan,
//!   shared by the metrics step and the alert engine.
//! - [`files`] — reading plugin and rule files (regular, bounded, no links out
//!   of their directory, no blocking on a FIFO) and creating output files (0640,
//!   never through a planted symlink).
//! - [`telemetry`] — the pipeline's own Prometheus metrics.
//! - [`server`] — `/metrics`, `/health`, `/ready`.
//! - [`clock`] — Unix-millisecond wall clock.

pub mod ack;
pub mod alert;
pub mod app;
pub mod clock;
pub mod config;
pub mod decode;
pub mod event;
pub mod fields;
pub mod files;
pub mod glob;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub(crate) mod retry;
pub mod route;
pub mod scrub;
pub mod server;
pub mod sink;
pub mod source;
pub mod step;
pub mod telemetry;

/// The demo pipeline, embedded so that `synaptic-telemetry demo` needs no files.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

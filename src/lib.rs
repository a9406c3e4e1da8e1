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
//! Each component owns its config type, its decoder, its runtime and its metrics.
//! Modules depend downwards only (`tests/architecture.rs` checks it); how a batch
//! flows and how to add a component: `docs/ARCHITECTURE.md`.
//!
//! - `main.rs` — the CLI: `run`, `demo`, `validate`, `test plugin`, `test rules`,
//!   `generate`, `decrypt`, `forget`, `replay`, `tap`, `top`. `bin/synaptic-kafka-mock.rs` — librdkafka's mock Kafka cluster.
//! - [`app`] — runs a built topology: the HTTP server, the source, pipeline and
//!   sink tasks, one drain deadline, the services' shutdown, the summary from the
//!   acknowledgement ledger. It names no particular component.
//! - [`config`] — assembles the top-level `Config` from the components' own config
//!   types (`pipeline`: the `steps!` list of step kinds) and builds the running
//!   `Topology` from it (`topology`).
//! - [`decode`] — a leaf: the position-marked YAML tree (`yaml`), `MapReader`, and
//!   errors with `file:line:col`, all reported at once; `${NAME}` and
//!   `{file: path}` values; `secret`: the registry of secrets and the mask every
//!   printed text passes through.
//! - [`event`] — the envelope and the batch (with its side outputs); schema v1.0 as
//!   a field table (`schema`), checked by a zero-copy pass (`scan`) with a precise
//!   fallback that names every problem; the JSON both accept (`json`); one field
//!   read from the bytes (`field`); the dead-letter record (`dead_letter`).
//! - [`source`] — `generator` (synthetic traffic from `traffic`, seeded by `rng`),
//!   `file` (JSONL or stdin) and `kafka` (consumer group; `kafka::offsets` keeps the
//!   per-partition watermark that commits follow), each with its config; the
//!   `Emitter` that batches records, bounds batches in flight, and hands the source
//!   its acknowledgement stream.
//! - [`ack`] — the per-batch tracker and per-sink deliveries behind at-least-once;
//!   the `Acks` stream and the ledger the run summary is read from.
//! - [`pipeline`] — decode + validate → steps → dead-letter scrubbing → route →
//!   hand-over to the sinks (events, and side outputs to their subscribers), on
//!   `workers` threads: copyable steps per worker, the others shared and taken in
//!   input order.
//! - [`step`] — the `Step` trait, the `BuildContext` steps are built with, the
//!   `Service`s they may run beside the pipeline; `order`: the turnstile that lets
//!   batches through a shared step in input order; the built-in steps `tag`,
//!   `drop`, `degrade`, `traces` (spans from events with a duration, a `spans`
//!   side output) and the privacy steps `consent` (the opt-out list, reloaded on
//!   change), `minimize` (only the schema's fields) and `retention` (the class tag).
//! - [`plugin`] — hot-swappable plugin steps: their config (`config`) and metrics
//!   (`metrics`), the WebAssembly runtime (`wasm`: pooled instances, epoch
//!   deadlines, a memory cap enforced by a resource limiter, instances replaced
//!   between batches when their memory runs low, WASI denied by default), the
//!   Rhai runtime on the same contract (`script`), the step that
//!   applies verdicts, contains failures, swaps and rolls back (`step`), the
//!   directory watcher (`watch`), compiled components kept on disk (`cache`), and
//!   `test plugin` (`tester`). The contract is
//!   `plugins/wit/plugin.wit`; the SDK (`plugins/sdk`) holds its Rust encoding,
//!   `plugins/js` and `plugins/python` the TypeScript and Python SDKs; the
//!   standard plugins live in `plugins/standard`.
//! - [`metrics`] — the `metrics` step: its config (`config`), the declarative
//!   metric mapping (`mapping`, `config/metrics.yaml` built in) with promtool's
//!   naming rules (`names`), per-event-type plans (`plan`), lookup tables learned
//!   from the stream (`lookup`), bounded families and their exposition (`store`).
//! - [`alert`] — the `alerts` step: its config and metrics (`config`), the rule
//!   format (`rule`: a rule's definition apart from its place), sliding windows
//!   (`window`), per-group state (`engine`), tier timing and inhibition
//!   (`notify`), receivers (`receiver`, `alertmanager`), the running service and
//!   reload (`service`), event time (`clock`), the alerts firing now for the HTTP
//!   API (`board`), a rule set over recorded events (`simulate`), and `test rules`
//!   (`testing`).
//! - [`sink`] — sink tasks (`task`: an intake into the sink's buffer, a delivery
//!   loop behind its circuit breaker, refused records to dead letter) and the
//!   `sinks!` list of outputs: `stdout`,
//!   `file` (rotation; `file_split`: one file per retention class and day, and
//!   their deletion), `kafka` (idempotent producer), `otlp` (the traces step's
//!   spans over OTLP/gRPC or OTLP/HTTP), `influxdb` (line protocol, rollups),
//!   `http` (JSON lines or an array, POSTed) and `elasticsearch` (`_bulk`, per-item
//!   results, index template, index deletion), each with its config.
//! - [`scrub`] — in a pipeline with the `pii_scrub` plugin, dead letters pass
//!   through the same detectors (run natively) before they are written.
//! - [`fields`] — the field and condition language shared by metrics and alerts
//!   (`lang`), key hashing and identity maps (`key`), the per-event-type plan cache
//!   (`plans`), and reading a planned set of fields in one scan.
//! - [`top`] — `synaptic-telemetry top`, the terminal view of a running instance
//!   (rates between two scrapes of its `/metrics` and `/api/alerts`).
//! - [`tap`] — live taps on a step's output or a sink's input, for `tap` through
//!   the HTTP API: bounded, dropping (and counting) rather than waiting.
//! - [`replay`] — recorded events through the current and a candidate version of
//!   the steps side by side, and what differs (verdicts, alerts on event time,
//!   metrics).
//! - [`query`] — URL query strings: percent-encoding and reading pairs.
//! - [`route`] — `match` clauses and per-sink selections; [`glob`] — their globs.
//! - `retry` — the backoff sinks and alert receivers retry with; `breaker` — the
//!   circuit breaker in front of each sink and receiver.
//! - `buffer` — a sink's (or receiver's) buffer: `memory` (a bounded queue) or
//!   `disk` (checksummed segment files that survive crashes and damage, rewritten
//!   in place for a deletion request).
//! - [`files`] — reading plugin, rule and config files (regular, bounded, no links
//!   out of their directory) and creating output files (0640, no planted symlink).
//! - [`telemetry`] — the registry of the pipeline's own metrics and `/metrics`'
//!   text; each component registers its families there; reading that text back
//!   (`parse_exposition`, for `top` and `replay`).
//! - [`server`] — `/metrics`, `/health`, `/ready`, `POST /forget`, the status page
//!   `/` (`status.html`), `/api/alerts`, `/api/tap`, and the `server` section: TLS,
//!   bearer tokens (`auth`), the access log.
//! - [`tls`] — one rustls client configuration (CA, client certificate, server
//!   name, verification) for every HTTP and gRPC client, the server's TLS, and
//!   `HttpEndpoint` (URL, timeout, TLS, auth headers) the HTTP outputs share.
//! - [`kafka_client`] — `tls` and `sasl` for every Kafka client and the start-up
//!   check that names a refused handshake or login.
//! - [`seal`] — encryption at rest: sealed frames (XChaCha20-Poly1305) for files,
//!   buffers and the audit log.
//! - [`audit`] — the audit trail (JSON lines: who did what to what, and how it went).
//! - [`forget`] — deletion requests: one subject's events removed from file
//!   archives and dead-letter files (rewritten atomically), disk buffers and
//!   Elasticsearch, recorded in the audit trail; `forget` and `POST /forget`.
//! - [`clock`] — Unix-millisecond wall clock.

pub(crate) mod ack;
pub mod alert;
pub mod app;
pub mod audit;
pub(crate) mod breaker;
pub(crate) mod buffer;
pub mod clock;
pub mod config;
pub mod decode;
pub mod event;
pub(crate) mod fields;
pub mod files;
pub mod forget;
pub(crate) mod glob;
pub mod kafka_client;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod query;
pub mod replay;
pub(crate) mod retry;
pub(crate) mod route;
pub(crate) mod scrub;
pub mod seal;
pub(crate) mod server;
pub(crate) mod sink;
pub mod source;
pub mod step;
pub mod tap;
pub mod telemetry;
pub mod tls;
pub mod top;

/// The demo pipeline, embedded so that `synaptic-telemetry demo` needs no files.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

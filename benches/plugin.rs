//! The cost of the plugin boundary: the `identity` plugin (keeps every event) in
//! 512-event batches of ~430-byte generator events, against the same pipeline
//! without a plugin, measured in the same run with rounds interleaved.
//!
//! Prints, per event: the pipeline alone (decode → validate → route → wire), the
//! pipeline with the identity plugin, their difference, and the plugin step alone
//! on already decoded batches. The target is the difference: ≤ 150 ns/event.
//!
//! `cargo bench --bench plugin` (pin with `taskset -c 0` for one-core figures).
//! Optional: `PLUGIN_BENCH_EVENTS=N`. Builds the plugins with `plugins/build.sh`.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use synaptic_telemetry::event::{Batch, Event, Position, SchemaMode};
use synaptic_telemetry::pipeline::Pipeline;
use synaptic_telemetry::plugin::PluginHost;
use synaptic_telemetry::plugin::{OnError, PluginHostConfig, PluginStepConfig};
use synaptic_telemetry::source::RawRecord;
use synaptic_telemetry::step::{RunningStep, Step};
use synaptic_telemetry::telemetry::Telemetry;

const BATCH: usize = 512;
const ROUNDS: usize = 7;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize =
        std::env::var("PLUGIN_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let identity = common::build_plugins().join("identity.wasm");
    let lines = common::generator_lines(events);
    let mean = lines.iter().map(Bytes::len).sum::<usize>() / events;
    println!("plugin bench: {events} generator events, mean {mean} bytes, batches of {BATCH}");

    let telemetry = Arc::new(Telemetry::new());
    let mut host = PluginHost::new(&PluginHostConfig { watch: false, ..PluginHostConfig::default() });
    let step_config = PluginStepConfig {
        path: identity,
        config: serde_json::Map::new(),
        on_error: OnError::DeadLetter,
        deadline: Duration::from_secs(1),
        deadline_per_event: Duration::ZERO,
        memory: 64 << 20,
        allow: Default::default(),
    };
    let mut plain = pipeline(Vec::new(), &telemetry);
    let step =
        host.build_step("identity", &step_config, SchemaMode::Strict, &telemetry).expect("identity loads");
    let mut with_plugin = pipeline(vec![RunningStep::new(Box::new(step), &telemetry)], &telemetry);
    let mut alone =
        host.build_step("identity_alone", &step_config, SchemaMode::Strict, &telemetry).expect("loads");
    let mut decoded: Vec<Batch> = lines
        .chunks(BATCH)
        .map(|chunk| Batch {
            events: chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    Event::decode(l.clone(), Position::Generator { seq: i as u64 }, SchemaMode::Strict)
                        .expect("valid")
                })
                .collect(),
            ..Batch::default()
        })
        .collect();

    let (mut base, mut plugged, mut step_only) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        base = base.min(run_pipeline(&mut plain, &lines));
        plugged = plugged.min(run_pipeline(&mut with_plugin, &lines));
        let started = Instant::now();
        for batch in &mut decoded {
            alone.process(batch);
        }
        step_only = step_only.min(started.elapsed());
        assert!(decoded.iter().all(|b| b.dead_letters.is_empty()), "identity fails nothing");
    }
    let ns = |d: Duration| d.as_nanos() as f64 / events as f64;
    println!("pipeline without plugin            {:>8.1} ns/event", ns(base));
    println!("pipeline with identity plugin      {:>8.1} ns/event", ns(plugged));
    println!("plugin overhead (difference)       {:>8.1} ns/event  (target <= 150)", ns(plugged) - ns(base));
    println!("identity step alone, decoded input {:>8.1} ns/event", ns(step_only));
}

fn pipeline(steps: Vec<RunningStep>, telemetry: &Arc<Telemetry>) -> Pipeline {
    // No sinks: the work measured ends where the sinks' would begin.
    let (dead_letter, _) = tokio::sync::mpsc::channel(1);
    Pipeline::new(SchemaMode::Strict, 1 << 20, steps, Vec::new(), dead_letter, telemetry.clone())
}

fn run_pipeline(pipeline: &mut Pipeline, lines: &[Bytes]) -> Duration {
    let started = Instant::now();
    for (b, chunk) in lines.chunks(BATCH).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| RawRecord {
                bytes: l.clone(),
                position: Position::Generator { seq: (b * BATCH + i) as u64 },
                oversize: None,
            })
            .collect();
        let processed = pipeline.process(records);
        assert_eq!(processed.lines.len(), chunk.len());
        std::hint::black_box(processed);
    }
    started.elapsed()
}

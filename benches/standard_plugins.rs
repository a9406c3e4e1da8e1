//! Throughput of the standard plugins as pipeline steps, on ~400-byte generator
//! events in 512-event batches: each plugin alone, the chain pii_scrub → sample →
//! filter in WebAssembly, and sample → filter in Rhai. The identity plugin is
//! measured in the same run as the baseline (ratios are printed against it), and
//! rounds are interleaved so machine noise hits every line alike.
//!
//! Targets: the Wasm chain ≥ 300,000 events/s; Rhai sample + filter ≥ 100,000
//! events/s, on one core: `taskset -c 1 cargo bench --bench standard_plugins`.
//! Optional: `STANDARD_BENCH_EVENTS=N` (default 100,000); `STANDARD_BENCH_ONLY=text`
//! runs only the lines whose label contains `text` (and the baseline).

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synaptic_telemetry::config::{OnError, PluginHostConfig, PluginStepConfig};
use synaptic_telemetry::event::{Batch, Event, Position, SchemaMode};
use synaptic_telemetry::plugin::{PluginHost, PluginStep};
use synaptic_telemetry::step::Step;
use synaptic_telemetry::telemetry::Telemetry;

const BATCH: usize = 512;
const ROUNDS: usize = 5;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The filter config measured: a glob, a severity floor, a tag and a predicate.
const FILTER: &str = r#"{"event_types":["*"],"min_severity":"DEBUG","tags":{"environment":"prod*"},"where":[{"field":"data.bridge_type","in":["MCP","A2A"]}],"action":"drop"}"#;

struct Chain {
    label: &'static str,
    steps: Vec<PluginStep>,
    best: Duration,
    out: usize,
}

fn main() {
    let events: usize =
        std::env::var("STANDARD_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let only = std::env::var("STANDARD_BENCH_ONLY").ok();
    let wasm = common::build_plugins();
    let rhai = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    let lines = common::generator_lines(events);
    let mean = lines.iter().map(|l| l.len()).sum::<usize>() / events;
    println!("standard plugins bench: {events} generator events, mean {mean} bytes, batches of {BATCH}");

    let telemetry = Arc::new(Telemetry::new());
    let mut host = PluginHost::new(&PluginHostConfig { watch: false, ..PluginHostConfig::default() });
    let mut step = |name: &str, path: PathBuf, config: &str| -> PluginStep {
        let config = match serde_json::from_str(config) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => panic!("bench config for {name} is a JSON map"),
        };
        let step_config = PluginStepConfig {
            path,
            config,
            on_error: OnError::DeadLetter,
            deadline: Duration::from_secs(5),
            memory: 64 << 20,
            allow: Default::default(),
        };
        host.build_step(name, &step_config, SchemaMode::Strict, &telemetry)
            .unwrap_or_else(|e| panic!("{name} loads: {e:#}"))
    };
    // The least a script can do: what converting events for Rhai and calling it costs.
    let scratch = tempfile::tempdir().expect("tempdir");
    let keep_all = scratch.path().join("keep_all.rhai");
    std::fs::write(&keep_all, "fn process(event) { true }").expect("write keep_all.rhai");
    let w = |file: &str| wasm.join(file);
    let r = |file: &str| rhai.join(file);
    let mut chains = vec![
        ("identity (wasm, baseline)", vec![step("identity", w("identity.wasm"), "{}")]),
        ("pii_scrub (wasm)", vec![step("pii_scrub", w("pii_scrub.wasm"), "{}")]),
        ("sample (wasm)", vec![step("sample", w("sample.wasm"), "{}")]),
        ("filter (wasm)", vec![step("filter", w("filter.wasm"), FILTER)]),
        (
            "pii_scrub -> sample -> filter (wasm)",
            vec![
                step("pii_scrub", w("pii_scrub.wasm"), "{}"),
                step("sample", w("sample.wasm"), "{}"),
                step("filter", w("filter.wasm"), FILTER),
            ],
        ),
        ("keep all (rhai, the runtime's floor)", vec![step("keep_all", keep_all.clone(), "{}")]),
        ("sample (rhai)", vec![step("sample", r("sample.rhai"), "{}")]),
        ("filter (rhai)", vec![step("filter", r("filter.rhai"), FILTER)]),
        (
            "sample -> filter (rhai)",
            vec![step("sample", r("sample.rhai"), "{}"), step("filter", r("filter.rhai"), FILTER)],
        ),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, (label, _))| *i == 0 || only.as_deref().is_none_or(|text| label.contains(text)))
    .map(|(_, (label, steps))| Chain { label, steps, best: Duration::MAX, out: 0 })
    .collect::<Vec<_>>();

    let decoded: Vec<Vec<Event>> = lines
        .chunks(BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    Event::decode(l.clone(), Position::Generator { seq: i as u64 }, SchemaMode::Strict)
                        .expect("generator events are valid")
                })
                .collect()
        })
        .collect();

    for _ in 0..ROUNDS {
        for chain in &mut chains {
            // Steps change their batches: every round starts from fresh copies.
            let mut batches: Vec<Batch> =
                decoded.iter().map(|events| Batch { events: events.clone(), ..Batch::default() }).collect();
            let started = Instant::now();
            for batch in &mut batches {
                for step in &mut chain.steps {
                    step.process(batch);
                }
            }
            chain.best = chain.best.min(started.elapsed());
            assert!(batches.iter().all(|b| b.dead_letters.is_empty()), "{}: no plugin fails", chain.label);
            chain.out = batches.iter().map(|b| b.events.len()).sum();
        }
    }
    let per_second = |d: Duration| events as f64 / d.as_secs_f64();
    let baseline = per_second(chains[0].best);
    println!("{:<40} {:>12} {:>10} {:>12} {:>9}", "plugin", "events/s", "ns/event", "vs identity", "kept");
    for chain in &chains {
        let rate = per_second(chain.best);
        println!(
            "{:<40} {:>12.0} {:>10.0} {:>11.2}x {:>8.1}%",
            chain.label,
            rate,
            chain.best.as_nanos() as f64 / events as f64,
            rate / baseline,
            chain.out as f64 / events as f64 * 100.0
        );
    }
    println!("targets: wasm chain >= 300000 events/s; rhai sample -> filter >= 100000 events/s");
}

//! Throughput of the standard plugins as pipeline steps, on ~400-byte generator
//! events in 512-event batches: each plugin alone, the chain pii_scrub → sample →
//! filter in WebAssembly, and sample → filter in Rhai. The identity plugin is
//! measured in the same run as the baseline (ratios are printed against it), and
//! rounds are interleaved so machine noise hits every line alike.
//!
//! pii_scrub is also measured on PII-heavy events: the same events, every other
//! one carrying a `data.note` with personal data or a secret in one of the
//! forms the detectors cover (encoded addresses, national phone numbers, cards,
//! IBANs, tokens, labelled secrets), against identity on those same events.
//!
//! Targets: the Wasm chain ≥ 400,000 events/s; Rhai sample + filter ≥ 100,000
//! events/s, on one core: `taskset -c 1 cargo bench --bench standard_plugins`.
//! Optional: `STANDARD_BENCH_EVENTS=N` (default 100,000); `STANDARD_BENCH_ONLY=text`
//! runs only the lines whose label contains `text` (and the baseline);
//! `STANDARD_BENCH_BEFORE=DIR` also measures the `pii_scrub.wasm`, `sample.wasm`
//! and `filter.wasm` in DIR (say, the builds before a change) alone and chained,
//! in the same rounds.

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synaptic_telemetry::event::{Batch, Event, Position, SchemaMode};
use synaptic_telemetry::plugin::{OnError, PluginHostConfig, PluginStepConfig};
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
    /// 0: generator events; 1: the PII-heavy ones.
    data: usize,
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
    let heavy = pii_heavy(&lines);
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
            deadline_per_event: Duration::ZERO,
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
    .map(|(label, steps)| (label, 0, steps))
    .chain([
        ("identity (wasm, PII-heavy events)", 1, vec![step("identity", w("identity.wasm"), "{}")]),
        ("pii_scrub (wasm, PII-heavy events)", 1, vec![step("pii_scrub", w("pii_scrub.wasm"), "{}")]),
    ])
    .collect::<Vec<_>>();
    if let Some(before) = std::env::var_os("STANDARD_BENCH_BEFORE").map(PathBuf::from) {
        let b = |file: &str| before.join(file);
        chains.extend([
            ("pii_scrub (wasm, before)", 0, vec![step("pii_scrub", b("pii_scrub.wasm"), "{}")]),
            ("sample (wasm, before)", 0, vec![step("sample", b("sample.wasm"), "{}")]),
            ("filter (wasm, before)", 0, vec![step("filter", b("filter.wasm"), FILTER)]),
            (
                "pii_scrub -> sample -> filter (wasm, before)",
                0,
                vec![
                    step("pii_scrub", b("pii_scrub.wasm"), "{}"),
                    step("sample", b("sample.wasm"), "{}"),
                    step("filter", b("filter.wasm"), FILTER),
                ],
            ),
            (
                "pii_scrub (wasm, PII-heavy events, before)",
                1,
                vec![step("pii_scrub", b("pii_scrub.wasm"), "{}")],
            ),
        ]);
    }
    let mut chains = chains
        .into_iter()
        .enumerate()
        .filter(|(_, (label, _, _))| {
            label.starts_with("identity") || only.as_deref().is_none_or(|text| label.contains(text))
        })
        .map(|(_, (label, data, steps))| Chain { label, data, steps, best: Duration::MAX, out: 0 })
        .collect::<Vec<_>>();

    let decode = |lines: &[bytes::Bytes]| -> Vec<Vec<Event>> {
        lines
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        Event::decode(l.clone(), Position::Generator { seq: i as u64 }, SchemaMode::Strict)
                            .expect("bench events are valid")
                    })
                    .collect()
            })
            .collect()
    };
    let datasets = [decode(&lines), decode(&heavy)];

    for _ in 0..ROUNDS {
        for chain in &mut chains {
            // Steps change their batches: every round starts from fresh copies.
            let mut batches: Vec<Batch> = datasets[chain.data]
                .iter()
                .map(|events| Batch { events: events.clone(), ..Batch::default() })
                .collect();
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
    let baselines: Vec<f64> = (0..2)
        .map(|data| {
            chains
                .iter()
                .find(|c| c.data == data && c.label.starts_with("identity"))
                .map_or(f64::NAN, |c| per_second(c.best))
        })
        .collect();
    println!("{:<40} {:>12} {:>10} {:>12} {:>9}", "plugin", "events/s", "ns/event", "vs identity", "kept");
    for chain in &chains {
        let rate = per_second(chain.best);
        let baseline = baselines[chain.data];
        println!(
            "{:<40} {:>12.0} {:>10.0} {:>11.2}x {:>8.1}%",
            chain.label,
            rate,
            chain.best.as_nanos() as f64 / events as f64,
            rate / baseline,
            chain.out as f64 / events as f64 * 100.0
        );
    }
    println!("targets: wasm chain >= 400000 events/s on one core; rhai sample -> filter >= 100000 events/s");
}

/// Personal data and secrets in the forms the detectors cover, one per note.
const PII_NOTES: &[&str] = &[
    "invite sent to jane.doe%40example.com by the scheduler",
    "customer jane&#64;example&#46;org asked for a refund",
    "reply to maria [at] corp [dot] example [dot] net",
    "call back on +44 (0)20 7946 0958 before noon",
    "rappeler le 01 23 45 67 89 demain",
    "Rückruf unter (030) 12345678 erbeten",
    "ligar para (11) 91234-5678 amanhã",
    "card 4111-1111 1111.1111 declined by issuer",
    "payout to iban gb82 west 1234 5698 7654 32",
    "SSN#078051120 on the application",
    "peer pool-121-163-43-58.example.net dropped the connection",
    "DB_PASSWORD=Tr0ub4dor&3 leaked in the environment dump",
    "token xoxe.xoxp-1-Mi0yLTE0NjY4NjM5NjEwMzAtMTQ2Njg2MzkwNjM1OC0xNDY rotated",
    "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
    "dsn app:s3cr3t!@tcp(db:3306)/orders unreachable",
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
];

/// The generator's events with every other one given a `data.note` holding PII.
fn pii_heavy(lines: &[bytes::Bytes]) -> Vec<bytes::Bytes> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i % 2 == 1 {
                return line.clone();
            }
            let mut event: serde_json::Value =
                serde_json::from_slice(line).expect("generator events are JSON");
            let note = PII_NOTES[(i / 2) % PII_NOTES.len()];
            if let Some(data) = event.get_mut("data").and_then(serde_json::Value::as_object_mut) {
                data.insert("note".to_string(), serde_json::Value::String(note.to_string()));
            }
            bytes::Bytes::from(serde_json::to_vec(&event).expect("serializes"))
        })
        .collect()
}

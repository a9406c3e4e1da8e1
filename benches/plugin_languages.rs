//! Plugins in Rust, TypeScript and Python on the same contract, measured in one
//! run so that the figures compare: for each language's `identity` plugin (keeps
//! every event; built by `plugins/build.sh`),
//!
//! - component size;
//! - cold start: compile (no compiled cache), then instantiate + `init`;
//! - restart: loading the compiled component from the cache, then instantiate + `init`;
//! - a further instance (what a second worker or the instance after a trap costs);
//! - per-event cost of the plugin step on decoded 512-event batches (rounds
//!   interleaved across languages, best round kept), and its ratio to Rust's;
//! - swap latency: from writing a new version of the file into the watched
//!   directory to the first batch the new version serves (debounce 10 ms; the new
//!   bytes were never compiled, as when an operator drops in a new build);
//! - what pre-initialisation saves: the start of an instance whose setup runs at
//!   module level (snapshotted at build time by componentize-js' Wizer step and by
//!   componentize-py) against the same setup in `init`.
//!
//! `cargo bench --bench plugin_languages`. Optional: `PLUGIN_LANG_BENCH_EVENTS=N`
//! (default 100,000), `PLUGIN_LANG_BENCH_SWAPS=N` (default 3 per language).

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synaptic_telemetry::event::{Batch, SchemaMode};
use synaptic_telemetry::plugin::wasm::InstanceSettings;
use synaptic_telemetry::plugin::{OnError, PluginHost, PluginHostConfig, PluginMetrics, PluginStepConfig};
use synaptic_telemetry::step::Step;
use synaptic_telemetry::telemetry::{parse_exposition, Telemetry};

const BATCH: usize = 512;
const ROUNDS: usize = 5;
const STARTS: usize = 5;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Language {
    name: &'static str,
    file: &'static str,
}

const LANGUAGES: [Language; 3] = [
    Language { name: "Rust", file: "identity.wasm" },
    Language { name: "TypeScript", file: "identity_ts.wasm" },
    Language { name: "Python", file: "identity_py.wasm" },
];

#[derive(Default)]
struct Figures {
    size: u64,
    compile: Duration,
    first_start: Duration,
    cached_compile: Duration,
    further_start: Duration,
    per_event: Duration,
    filter_per_event: Duration,
    swap: Duration,
}

fn main() {
    let env =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let events = env("PLUGIN_LANG_BENCH_EVENTS", 100_000);
    let swaps = env("PLUGIN_LANG_BENCH_SWAPS", 3).max(1);
    let built = common::build_plugins();
    let lines = common::generator_lines(events);
    println!(
        "plugin language bench: {events} generator events in batches of {BATCH}, {swaps} swaps per language"
    );

    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut figures: Vec<Figures> = Vec::new();
    for language in &LANGUAGES {
        let path = built.join(language.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut f = Figures { size: bytes.len() as u64, ..Figures::default() };
        (f.compile, f.first_start, f.further_start) = start_times(&path, &bytes, None);
        let cache = scratch.path().join(format!("cache-{}", language.name));
        start_times(&path, &bytes, Some(&cache)); // fills the cache
        (f.cached_compile, _, _) = start_times(&path, &bytes, Some(&cache));
        figures.push(f);
    }

    // Per-event cost: one step per language, rounds interleaved; for the identity
    // plugins and for the severity filters (which read a field, so parse events).
    let fresh = || -> Vec<Batch> {
        lines
            .chunks(BATCH)
            .enumerate()
            .map(|(i, chunk)| Batch { events: common::decode_batch(chunk, i * BATCH), ..Batch::default() })
            .collect()
    };
    let identity = per_event_costs("identity", &LANGUAGES.map(|l| built.join(l.file)), "{}", &fresh, events);
    for (f, cost) in figures.iter_mut().zip(identity) {
        f.per_event = cost;
    }
    let filters = ["severity_floor.wasm", "severity_filter_ts.wasm", "severity_filter_py.wasm"];
    let filter =
        per_event_costs("filter", &filters.map(|f| built.join(f)), r#"{"min":"WARN"}"#, &fresh, events);
    for (f, cost) in figures.iter_mut().zip(filter) {
        f.filter_per_event = cost;
    }

    let mut batches = fresh();
    for (language, f) in LANGUAGES.iter().zip(&mut figures) {
        f.swap = swap_latency(language, &built.join(language.file), scratch.path(), &mut batches[0], swaps);
    }

    // Pre-initialisation: the same setup (300 regular expressions, a 50,000-entry
    // table) at module level, which the build snapshots, or in init, which every
    // instance runs.
    let mut preinit = Vec::new();
    for (language, suffix) in [("TypeScript", "ts"), ("Python", "py")] {
        let mut starts = [Duration::ZERO; 2];
        for (start, variant) in starts.iter_mut().zip(["setup_at_import", "setup_in_init"]) {
            let path = built.join(format!("{variant}_{suffix}.wasm"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let cache = scratch.path().join(format!("cache-{variant}-{suffix}"));
            start_times(&path, &bytes, Some(&cache));
            *start = start_times(&path, &bytes, Some(&cache)).2;
        }
        preinit.push((language, starts));
    }

    let rust_event = figures[0].per_event.as_secs_f64();
    let rust_filter = figures[0].filter_per_event.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n{:<11} {:>8} {:>11} {:>13} {:>10} {:>12} {:>9} {:>7} {:>10} {:>7} {:>9}",
        "language",
        "size MB",
        "compile ms",
        "inst+init ms",
        "cached ms",
        "instance ms",
        "identity",
        "× Rust",
        "filter",
        "× Rust",
        "swap ms"
    );
    for (language, f) in LANGUAGES.iter().zip(&figures) {
        println!(
            "{:<11} {:>8.2} {:>11.1} {:>13.2} {:>10.1} {:>12.2} {:>9.0} {:>7.1} {:>10.0} {:>7.1} {:>9.1}",
            language.name,
            f.size as f64 / 1e6,
            ms(f.compile),
            ms(f.first_start),
            ms(f.cached_compile),
            ms(f.further_start),
            f.per_event.as_secs_f64() * 1e9,
            f.per_event.as_secs_f64() / rust_event,
            f.filter_per_event.as_secs_f64() * 1e9,
            f.filter_per_event.as_secs_f64() / rust_filter,
            ms(f.swap),
        );
    }
    println!(
        "\npre-initialisation: instance start (instantiate + init, median of {STARTS}) with the same setup"
    );
    for (language, [at_import, in_init]) in &preinit {
        println!(
            "{language:<11} at module level (snapshotted at build) {:>8.2} ms   in init {:>8.2} ms   ({:.0}× shorter)",
            ms(*at_import),
            ms(*in_init),
            in_init.as_secs_f64() / at_import.as_secs_f64().max(1e-9),
        );
    }
    println!(
        "\ncold start = compile + inst+init; restart = cached + inst+init; instance = a further \
         instance of a compiled plugin (median of {STARTS}); identity, filter = ns per event through \
         the identity plugin and the severity filter (min WARN; it parses each event), best of \
         {ROUNDS} interleaved rounds; swap = file written → first batch served by the new version \
         (median of {swaps})"
    );
}

/// Best time per event of each plugin over `fresh` batches, rounds interleaved.
fn per_event_costs(
    what: &str,
    files: &[PathBuf],
    config: &str,
    fresh: &dyn Fn() -> Vec<Batch>,
    events: usize,
) -> Vec<Duration> {
    let telemetry = Telemetry::new();
    let mut host = PluginHost::new(&PluginHostConfig { watch: false, ..PluginHostConfig::default() });
    let config: serde_json::Map<String, serde_json::Value> = serde_json::from_str(config).expect("config");
    let mut steps: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let step = PluginStepConfig { config: config.clone(), ..step_config(file.clone()) };
            host.build_step(&format!("{what}{i}"), &step, SchemaMode::Strict, &telemetry)
                .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()))
        })
        .collect();
    let mut best = vec![Duration::MAX; files.len()];
    let mut kept = vec![0; files.len()];
    for _ in 0..ROUNDS {
        for (i, step) in steps.iter_mut().enumerate() {
            let mut batches = fresh();
            let started = Instant::now();
            for batch in &mut batches {
                step.process(batch);
            }
            best[i] = best[i].min(started.elapsed());
            assert!(batches.iter().all(|b| b.dead_letters.is_empty()), "{what}: no batch fails");
            kept[i] = batches.iter().map(|b| b.events.len()).sum::<usize>();
        }
    }
    assert!(kept.iter().all(|k| *k == kept[0]), "{what}: every language keeps the same events: {kept:?}");
    best.into_iter().map(|b| b / events as u32).collect()
}

fn step_config(path: PathBuf) -> PluginStepConfig {
    PluginStepConfig {
        path,
        config: serde_json::Map::new(),
        on_error: OnError::DeadLetter,
        deadline: Duration::from_secs(10),
        deadline_per_event: Duration::ZERO,
        memory: 64 << 20,
        allow: Default::default(),
    }
}

/// Compile time, first instance (instantiate + init), and the median of further
/// instances, on a fresh engine with the given compiled cache (or none).
fn start_times(path: &Path, bytes: &[u8], cache: Option<&Path>) -> (Duration, Duration, Duration) {
    let telemetry = Telemetry::new();
    let config =
        PluginHostConfig { watch: false, cache: cache.map(Path::to_path_buf), ..PluginHostConfig::default() };
    let mut host = PluginHost::new(&config);
    let settings = Arc::new(InstanceSettings {
        plugin: "bench".into(),
        init_config: "{}".into(),
        deadline: Duration::from_secs(10),
        deadline_per_event: Duration::ZERO,
        memory: 64 << 20,
        grants: Default::default(),
        metrics: PluginMetrics::register(&telemetry, "bench"),
    });
    // The engine (and its epoch thread) is created before the clock starts.
    host.wasm().expect("wasm runtime");
    let compile = host.compiler(path, settings).expect("compiler");
    let started = Instant::now();
    let code = compile(bytes).expect("compiles");
    let compiled = started.elapsed();
    let started = Instant::now();
    let first = code.start().expect("starts");
    let first_start = started.elapsed();
    let mut further: Vec<Duration> = (0..STARTS)
        .map(|_| {
            let started = Instant::now();
            let instance = code.start().expect("starts");
            let took = started.elapsed();
            drop(instance);
            took
        })
        .collect();
    drop(first);
    further.sort();
    (compiled, first_start, further[STARTS / 2])
}

/// Median time from writing a never-seen version of the plugin into a watched
/// directory to the first batch served by it.
fn swap_latency(
    language: &Language,
    built: &Path,
    scratch: &Path,
    batch: &mut Batch,
    swaps: usize,
) -> Duration {
    let dir = scratch.join(format!("swap-{}", language.name));
    std::fs::create_dir_all(&dir).expect("swap dir");
    let file = dir.join("plugin.wasm");
    let original = std::fs::read(built).expect("plugin bytes");
    std::fs::write(&file, &original).expect("first version");
    let telemetry = Telemetry::new();
    let mut host = PluginHost::new(&PluginHostConfig {
        dir: dir.clone(),
        debounce: Duration::from_millis(10),
        poll_interval: Duration::from_secs(60),
        cache: None,
        ..PluginHostConfig::default()
    });
    let mut step =
        host.build_step("swap", &step_config(file.clone()), SchemaMode::Strict, &telemetry).expect("loads");
    let _watcher = host.watch().expect("watcher");
    // The watcher's thread sets up its directory watch after `watch` returns.
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for version in 1..=swaps {
        let before = swaps_done(&telemetry);
        let bytes = with_custom_section(&original, version);
        let tmp = dir.join(".plugin.wasm.tmp");
        std::fs::write(&tmp, &bytes).expect("write version");
        let started = Instant::now();
        std::fs::rename(&tmp, &file).expect("rename version");
        loop {
            step.process(batch);
            if swaps_done(&telemetry) > before {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}: version {version} never swapped in",
                language.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn swaps_done(telemetry: &Telemetry) -> f64 {
    parse_exposition(&telemetry.render())
        .iter()
        .filter(|s| {
            s.name == "synaptic_telemetry_plugin_swaps_total"
                && s.labels.get("plugin").is_some_and(|p| p == "swap")
        })
        .map(|s| s.value)
        .sum()
}

/// The component with a custom section appended: a distinct, valid file that the
/// host has never compiled (custom sections do not change what it does).
fn with_custom_section(component: &[u8], version: usize) -> Vec<u8> {
    let name = b"bench-version";
    let payload = format!("{version}:{:?}", Instant::now());
    let mut body = leb128(name.len());
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(body.len()));
    out.extend(body);
    out
}

fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

//! WebAssembly plugins through the real binary: hot swap under load, failures
//! contained (deadline, memory cap, trap, corrupt file), automatic rollback, and
//! the author's `test plugin` command.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::plugins::{stamp_version, wasm};
use common::{
    command, comparable, generate_input, http_get, metric, read_lines, spawn_run, write_config, Running,
};
use serde_json::Value;

/// A pipeline config with one plugin step; `source` and `step` are YAML flow maps.
/// Two workers: swaps, rollbacks and failures are tested with batches in flight
/// in parallel.
fn config(dir: &Path, source: &str, step: &str, batch: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "workers: 2\n\
             source: {source}\n\
             batch: {batch}\n\
             plugins: {{dir: {plugins}, debounce: 50ms, poll_interval: 1s}}\n\
             pipeline:\n  - {step}\n\
             sinks: [{{name: out, type: file, path: {out}}}]\n\
             dead_letter: {{type: file, path: {dead}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n\
             audit: {{path: {audit}}}\n",
            plugins = dir.join("plugins").display(),
            out = dir.join("out/events.jsonl").display(),
            dead = dir.join("out/dead.jsonl").display(),
            audit = dir.join("audit.jsonl").display(),
        ),
    )
}

fn plugin_dir(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    plugins
}

fn json_lines(path: &Path) -> Vec<Value> {
    read_lines(path).iter().map(|l| serde_json::from_str(l).expect("output is JSON")).collect()
}

/// Polls /metrics until `series` reaches `at_least` (bounded).
fn wait_for_metric(addr: std::net::SocketAddr, series: &str, at_least: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = metric(&http_get(addr, "/metrics").1, series).unwrap_or(0.0);
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value} (< {at_least}) for {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces a plugin file the way operators do: an editor's write-then-rename, a
/// Kubernetes-style symlink swap, or a plain overwrite in place.
fn replace_plugin(plugins: &Path, name: &str, bytes: &[u8], how: usize) {
    let target = plugins.join(name);
    match how % 3 {
        0 => {
            let tmp = plugins.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes).expect("write temp");
            std::fs::rename(&tmp, &target).expect("rename over");
        }
        1 => {
            let versions = plugins.join("versions");
            std::fs::create_dir_all(&versions).expect("versions dir");
            let file = versions.join(format!("{name}.{}", unique_suffix()));
            std::fs::write(&file, bytes).expect("write version");
            let link = plugins.join(format!(".{name}.link"));
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&file, &link).expect("symlink");
            std::fs::rename(&link, &target).expect("swap symlink");
        }
        _ => std::fs::write(&target, bytes).expect("overwrite"),
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[test]
fn hot_swap_under_load_loses_nothing_repeats_nothing_and_never_splits_a_batch() {
    const EVENTS: u64 = 500_000;
    const BATCH: u64 = 500;
    const SWAPS: u64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    std::fs::write(plugins.join("stamp.wasm"), stamp_version(0)).expect("first version");
    // The same events as the generator source below, to map event ids to positions.
    let input = generate_input(dir.path(), EVENTS, 7);
    let position: HashMap<String, u64> = read_lines(&input)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let doc: Value = serde_json::from_str(l).expect("generated JSON");
            (doc["event_id"].as_str().expect("event_id").to_string(), i as u64)
        })
        .collect();
    assert_eq!(position.len() as u64, EVENTS, "generated event ids are unique");

    // Batches close only when full (the linger is far longer than a batch takes),
    // so batch k holds exactly the events at positions k*500 .. k*500+499.
    let config = config(
        dir.path(),
        &format!("{{type: generator, rate: 12500, total: {EVENTS}, seed: 7, start_ms: 1767225600000}}"),
        "{name: stamp, type: plugin, file: stamp.wasm, deadline: 2s}",
        &format!("{{max_events: {BATCH}, linger: 30s}}"),
    );
    let mut running = spawn_run(&config);
    let addr = running.wait_for_address(Duration::from_secs(60));
    // Each version must serve a batch before the next replaces it: with compiled
    // plugins cached, a swap can take less time than a batch takes to fill. Counted
    // from when the swap is seen done, three batches: up to two (one per worker)
    // may have been under way with the version before.
    let processed = "synaptic_telemetry_step_events_total{outcome=\"out\",step=\"stamp\"}";
    let mut since = 0.0;
    for version in 1..=SWAPS {
        wait_for_metric(addr, processed, since + 3.0 * BATCH as f64, Duration::from_secs(20));
        replace_plugin(&plugins, "stamp.wasm", &stamp_version(version), version as usize);
        wait_for_metric(
            addr,
            "synaptic_telemetry_plugin_swaps_total{plugin=\"stamp\"}",
            version as f64,
            Duration::from_secs(20),
        );
        since = metric(&http_get(addr, "/metrics").1, processed).unwrap_or(0.0);
    }
    let read_so_far =
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_source_events_total").unwrap_or(0.0);
    assert!(read_so_far < EVENTS as f64, "all {SWAPS} swaps happened while events were still streaming");
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["read"], EVENTS);
    assert_eq!(summary["acknowledged"], EVENTS);

    let out = json_lines(&dir.path().join("out/events.jsonl"));
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty(), "nothing dead-lettered");
    assert_eq!(out.len() as u64, EVENTS, "every event came out once");
    let mut seen = HashSet::new();
    let mut batch_versions: HashMap<u64, HashSet<String>> = HashMap::new();
    for event in &out {
        let id = event["event_id"].as_str().expect("event_id");
        assert!(seen.insert(id.to_string()), "event {id} came out twice");
        let at = *position.get(id).unwrap_or_else(|| panic!("event {id} was never generated"));
        let version =
            event["tags"]["plugin_version"].as_str().unwrap_or_else(|| panic!("event {id} is not stamped"));
        batch_versions.entry(at / BATCH).or_default().insert(version.to_string());
    }
    assert_eq!(batch_versions.len() as u64, EVENTS / BATCH);
    let mixed: Vec<_> = batch_versions.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(mixed.is_empty(), "batches processed by more than one version: {mixed:?}");
    // Versions take over in order and each served at least one batch.
    let mut order: Vec<(u64, u64)> = batch_versions
        .iter()
        .map(|(batch, v)| (*batch, v.iter().next().expect("one version").parse().expect("digits")))
        .collect();
    order.sort();
    assert!(order.windows(2).all(|w| w[0].1 <= w[1].1), "versions never go backwards");
    let distinct: HashSet<u64> = order.iter().map(|(_, v)| *v).collect();
    assert_eq!(distinct.len() as u64, SWAPS + 1, "every version served: {distinct:?}");
}

/// What processed one batch in the cross-language swap test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Served {
    Stamp(String),
    Filter,
}

/// The step's file goes Rust stamp → TypeScript severity filter → Rust stamp →
/// Python severity filter → Rust stamp while events stream: every batch is served
/// whole by one version (stamped with its version, or exactly its WARN-and-above
/// events unstamped), versions take over in order, and nothing is lost or repeated.
#[test]
fn typescript_and_python_plugins_swap_in_under_load_and_never_split_a_batch() {
    const EVENTS: u64 = 150_000;
    const BATCH: u64 = 500;
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    std::fs::write(plugins.join("stamp.wasm"), stamp_version(0)).expect("first version");
    let versions: Vec<(Vec<u8>, Served)> = vec![
        (std::fs::read(wasm("severity_filter_ts")).expect("ts filter"), Served::Filter),
        (stamp_version(1), Served::Stamp("0000000001".into())),
        (std::fs::read(wasm("severity_filter_py")).expect("py filter"), Served::Filter),
        (stamp_version(2), Served::Stamp("0000000002".into())),
    ];
    // Compiling a 12-18 MB component takes seconds on a busy machine: compile them
    // once now (into the compiled-plugin cache, as a restart would find them), so
    // that the swaps below come while events still stream. Swap latency without the
    // cache is measured by `cargo bench --bench plugin_languages`.
    let input = generate_input(dir.path(), EVENTS, 11);
    let warm_up = dir.path().join("warm-up.jsonl");
    std::fs::write(&warm_up, read_lines(&input)[..10].join("\n") + "\n").expect("warm-up input");
    for build in ["severity_filter_ts", "severity_filter_py"] {
        let status = command()
            .args(["test", "plugin"])
            .arg(wasm(build))
            .arg("--input")
            .arg(&warm_up)
            .args(["--config", "{min: WARN}"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("test plugin runs");
        assert!(status.success(), "{build} compiles and runs");
    }
    let events: Vec<Value> =
        read_lines(&input).iter().map(|l| serde_json::from_str(l).expect("generated JSON")).collect();
    let position: HashMap<String, u64> = events
        .iter()
        .enumerate()
        .map(|(i, doc)| (doc["event_id"].as_str().expect("event_id").to_string(), i as u64))
        .collect();
    let warn_or_above = |doc: &Value| matches!(doc["severity"].as_str(), Some("WARN" | "ERROR" | "FATAL"));

    let config = config(
        dir.path(),
        &format!("{{type: generator, rate: 10000, total: {EVENTS}, seed: 11, start_ms: 1767225600000}}"),
        "{name: stamp, type: plugin, file: stamp.wasm, deadline: 2s, config: {min: WARN}}",
        &format!("{{max_events: {BATCH}, linger: 30s}}"),
    );
    let mut running = spawn_run(&config);
    let addr = running.wait_for_address(Duration::from_secs(60));
    let processed = "synaptic_telemetry_step_events_total{outcome=\"in\",step=\"stamp\"}";
    let mut since = 0.0;
    for (n, (bytes, _)) in versions.iter().enumerate() {
        wait_for_metric(addr, processed, since + 3.0 * BATCH as f64, Duration::from_secs(30));
        replace_plugin(&plugins, "stamp.wasm", bytes, n);
        wait_for_metric(
            addr,
            "synaptic_telemetry_plugin_swaps_total{plugin=\"stamp\"}",
            (n + 1) as f64,
            Duration::from_secs(60),
        );
        since = metric(&http_get(addr, "/metrics").1, processed).unwrap_or(0.0);
    }
    let read_so_far =
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_source_events_total").unwrap_or(0.0);
    assert!(read_so_far < EVENTS as f64, "every swap happened while events were still streaming");
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["acknowledged"], EVENTS);
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty(), "nothing dead-lettered");

    // Who served each batch, and which of its events came out.
    let mut served: HashMap<u64, HashSet<Served>> = HashMap::new();
    let mut out_ids: HashMap<u64, HashSet<String>> = HashMap::new();
    for event in json_lines(&dir.path().join("out/events.jsonl")) {
        let id = event["event_id"].as_str().expect("event_id").to_string();
        let at = *position.get(&id).unwrap_or_else(|| panic!("event {id} was never generated"));
        let by = match event["tags"]["plugin_version"].as_str() {
            Some(version) => Served::Stamp(version.to_string()),
            None => Served::Filter,
        };
        served.entry(at / BATCH).or_default().insert(by);
        assert!(out_ids.entry(at / BATCH).or_default().insert(id.clone()), "event {id} came out twice");
    }
    let mut order: Vec<Served> = Vec::new();
    for batch in 0..EVENTS / BATCH {
        let by = served.get(&batch).unwrap_or_else(|| panic!("batch {batch} has no output"));
        assert_eq!(by.len(), 1, "batch {batch} was served by more than one version: {by:?}");
        let by = by.iter().next().expect("one").clone();
        let range = (batch * BATCH) as usize..((batch + 1) * BATCH) as usize;
        let expected: HashSet<String> = events[range]
            .iter()
            .filter(|doc| by != Served::Filter || warn_or_above(doc))
            .map(|doc| doc["event_id"].as_str().expect("id").to_string())
            .collect();
        assert_eq!(out_ids[&batch], expected, "batch {batch} ({by:?}) lost or kept the wrong events");
        if order.last() != Some(&by) {
            order.push(by);
        }
    }
    let mut expected_order = vec![Served::Stamp("0000000000".into())];
    expected_order.extend(versions.iter().map(|(_, served)| served.clone()));
    assert_eq!(order, expected_order, "versions take over in order, each serving at least one batch");
}

/// JavaScript components' memory grows with every batch (their collector lags):
/// the host replaces such an instance between batches once it has used half the
/// room its cap leaves, so none of its batches ever meets the cap.
#[test]
fn a_typescript_plugin_whose_memory_grows_is_replaced_between_batches_and_fails_nothing() {
    // About 100 batches per worker: without the replacement, an instance would grow by
    // some 19 MB (about 190 KB a batch, measured), past the 11 MB its cap leaves.
    const EVENTS: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    std::fs::copy(wasm("severity_filter_ts"), plugins.join("filter.wasm")).expect("copy plugin");
    let config = config(
        dir.path(),
        &format!("{{type: generator, rate: 20000, total: {EVENTS}, seed: 12, start_ms: 1767225600000}}"),
        "{name: filter, type: plugin, file: filter.wasm, memory: 24MiB, config: {min: TRACE}}",
        "{max_events: 500, linger: 30s}",
    );
    let mut running = spawn_run(&config);
    let addr = running.wait_for_address(Duration::from_secs(60));
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_instance_recycles_total{plugin=\"filter\"}",
        1.0,
        Duration::from_secs(60),
    );
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["acknowledged"], EVENTS);
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty(), "no batch met the memory cap");
    assert_eq!(read_lines(&dir.path().join("out/events.jsonl")).len() as u64, EVENTS);
}

/// Runs the `faulty` plugin in `mode` over 2,000 events in batches of 500.
fn run_faulty(mode: &str, on_error: &str, extra: &str) -> (i32, Value, Vec<String>, Vec<Value>, Vec<String>) {
    run_faulty_build("faulty", mode, on_error, extra)
}

/// Like [`run_faulty`], with one of the faulty builds: `faulty` (Rust), `faulty_ts`
/// (TypeScript) or `faulty_py` (Python), always as the step `faulty`.
fn run_faulty_build(
    build: &str,
    mode: &str,
    on_error: &str,
    extra: &str,
) -> (i32, Value, Vec<String>, Vec<Value>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    std::fs::copy(wasm(build), plugins.join("faulty.wasm")).expect("copy plugin");
    let input = generate_input(dir.path(), 2_000, 3);
    let config = config(
        dir.path(),
        &format!("{{type: file, path: {}}}", input.display()),
        &format!("{{name: faulty, type: plugin, file: faulty.wasm, on_error: {on_error}, config: {{mode: {mode}}}{extra}}}"),
        "{max_events: 500, linger: 30s}",
    );
    let (code, summary) = spawn_run(&config).finish(Duration::from_secs(120));
    let out = read_lines(&dir.path().join("out/events.jsonl"));
    let dead = json_lines(&dir.path().join("out/dead.jsonl"));
    (code, summary, out, dead, read_lines(&input))
}

fn assert_all_dead_lettered(dead: &[Value], input: &[String], reason: &str) {
    assert_eq!(dead.len(), input.len(), "every event of the failed batches is dead-lettered");
    for record in dead {
        assert_eq!(record["stage"], serde_json::json!({"step": "faulty"}));
        let text = record["reason"].as_str().expect("reason");
        assert!(text.starts_with("plugin faulty (sha256:") && text.contains(reason), "reason: {text}");
    }
    // The events as the plugin got them (an alias event_type already canonicalized).
    let raw: HashSet<String> = dead.iter().map(|r| comparable(r["raw"].as_str().expect("raw"))).collect();
    let missing: Vec<&String> = input.iter().filter(|l| !raw.contains(&comparable(l))).collect();
    assert!(
        missing.is_empty(),
        "{} events are not in dead letter, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline_and_the_pipeline_goes_on() {
    let started = Instant::now();
    let (code, summary, out, dead, input) =
        run_faulty("loop", "dead_letter", ", deadline: 100ms, deadline_per_event: 0s");
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["acknowledged"], 2_000);
    assert!(out.is_empty());
    assert_all_dead_lettered(&dead, &input, "did not finish the batch within its deadline of 100ms");
    assert!(started.elapsed() < Duration::from_secs(60), "four interrupted batches do not take long");
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_cap() {
    let (code, summary, out, dead, input) = run_faulty("alloc", "dead_letter", ", memory: 16MiB");
    assert_eq!(code, 0, "summary: {summary}");
    assert!(out.is_empty());
    assert_all_dead_lettered(&dead, &input, &format!("went over its memory limit of {} bytes", 16 << 20));
}

#[test]
fn a_trap_fails_only_its_batch_and_on_error_pass_lets_events_through() {
    let (code, summary, out, dead, input) = run_faulty("trap", "dead_letter", "");
    assert_eq!(code, 0, "summary: {summary}");
    assert!(out.is_empty());
    assert_all_dead_lettered(&dead, &input, "faulty plugin traps, as configured");

    let (code, summary, out, dead, input) = run_faulty("trap", "pass", "");
    assert_eq!(code, 0, "summary: {summary}");
    assert!(dead.is_empty(), "with on_error: pass nothing is dead-lettered");
    let out: Vec<String> = out.iter().map(|l| comparable(l)).collect();
    let input: Vec<String> = input.iter().map(|l| comparable(l)).collect();
    assert_eq!(out, input, "events pass unchanged, in order");
}

/// An exception, an endless loop and a memory bomb in a TypeScript and in a Python
/// plugin: each fails only its batches, which go to dead letter with the reason,
/// and the pipeline runs to the end.
#[test]
fn typescript_and_python_plugins_that_throw_loop_or_exhaust_memory_dead_letter_their_batches() {
    let cases = [
        ("faulty_ts", "throw", "", "failed the batch: Error: faulty plugin throws, as configured"),
        ("faulty_py", "throw", "", "failed the batch: RuntimeError: faulty plugin raises, as configured"),
        ("faulty_ts", "loop", ", deadline: 100ms, deadline_per_event: 0s", "within its deadline of 100ms"),
        ("faulty_py", "loop", ", deadline: 100ms, deadline_per_event: 0s", "within its deadline of 100ms"),
        ("faulty_ts", "alloc", ", memory: 32MiB", "went over its memory limit of 33554432 bytes"),
        ("faulty_py", "alloc", ", memory: 32MiB", "went over its memory limit of 33554432 bytes"),
    ];
    for (build, mode, extra, reason) in cases {
        let started = Instant::now();
        let (code, summary, out, dead, input) = run_faulty_build(build, mode, "dead_letter", extra);
        assert_eq!(code, 0, "{build} {mode}: summary: {summary}");
        assert_eq!(summary["acknowledged"], 2_000, "{build} {mode}");
        assert!(out.is_empty(), "{build} {mode}: nothing passes a plugin that fails every batch");
        assert_all_dead_lettered(&dead, &input, reason);
        assert!(started.elapsed() < Duration::from_secs(90), "{build} {mode} took {:?}", started.elapsed());
    }
}

/// A plugin that throws only on batches holding a poisoned event: the host splits
/// those batches until only the poisoned events fail; all the others go through.
#[test]
fn typescript_and_python_exceptions_cost_only_the_events_that_cause_them() {
    for build in ["faulty_ts", "faulty_py"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = plugin_dir(dir.path());
        std::fs::copy(wasm(build), plugins.join("faulty.wasm")).expect("copy plugin");
        let generated = generate_input(dir.path(), 2_000, 5);
        let input = dir.path().join("poisoned.jsonl");
        let mut poisoned = HashSet::new();
        let lines: Vec<String> = read_lines(&generated)
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let mut doc: Value = serde_json::from_str(line).expect("JSON");
                if i % 250 == 7 {
                    doc["data"]["poison"] = Value::Bool(true);
                    poisoned.insert(doc["event_id"].as_str().expect("id").to_string());
                }
                doc.to_string()
            })
            .collect();
        std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
        let config = config(
            dir.path(),
            &format!("{{type: file, path: {}}}", input.display()),
            "{name: faulty, type: plugin, file: faulty.wasm, config: {mode: poison}}",
            "{max_events: 500, linger: 30s}",
        );
        let (code, summary) = spawn_run(&config).finish(Duration::from_secs(120));
        assert_eq!(code, 0, "{build}: summary: {summary}");
        let dead = json_lines(&dir.path().join("out/dead.jsonl"));
        let dead_ids: HashSet<String> = dead
            .iter()
            .map(|r| {
                let raw: Value = serde_json::from_str(r["raw"].as_str().expect("raw")).expect("raw JSON");
                raw["event_id"].as_str().expect("id").to_string()
            })
            .collect();
        assert_eq!(dead_ids, poisoned, "{build}: exactly the poisoned events are dead-lettered");
        assert_eq!(read_lines(&dir.path().join("out/events.jsonl")).len(), 2_000 - poisoned.len(), "{build}");
    }
}

#[test]
fn invalid_replacements_go_to_dead_letter_with_the_reason() {
    let (code, summary, out, dead, input) = run_faulty("garbage", "dead_letter", "");
    assert_eq!(code, 0, "summary: {summary}");
    assert!(out.is_empty());
    assert_all_dead_lettered(&dead, &input, "replaced the event with invalid output: invalid JSON");
}

/// A running pipeline over an endless throttled generator with `stamp.wasm`
/// version 0 and the given step config.
fn start_stamp(dir: &Path, step_extra: &str) -> (Running, std::net::SocketAddr, PathBuf) {
    let plugins = plugin_dir(dir);
    std::fs::write(plugins.join("stamp.wasm"), stamp_version(0)).expect("first version");
    let config = config(
        dir,
        "{type: generator, rate: 4000, seed: 5}",
        &format!("{{name: stamp, type: plugin, file: stamp.wasm{step_extra}}}"),
        "{max_events: 100, linger: 20ms}",
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    (running, addr, plugins)
}

fn versions_out(dir: &Path) -> Vec<String> {
    json_lines(&dir.join("out/events.jsonl"))
        .iter()
        .map(|e| e["tags"]["plugin_version"].as_str().unwrap_or("unstamped").to_string())
        .collect()
}

#[test]
fn a_corrupt_plugin_file_is_rejected_while_the_old_version_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut running, addr, plugins) = start_stamp(dir.path(), "");
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}",
        500.0,
        Duration::from_secs(30),
    );

    replace_plugin(&plugins, "stamp.wasm", b"this is not a WebAssembly component", 0);
    let line = running.wait_for_line("new plugin version rejected", Duration::from_secs(20));
    assert!(line.contains("not a WebAssembly file"), "{line}");
    let series = "synaptic_telemetry_plugin_load_failures_total{plugin=\"stamp\",stage=\"compile\"}";
    wait_for_metric(addr, series, 1.0, Duration::from_secs(5));
    // A core module is rejected with its own message.
    replace_plugin(&plugins, "stamp.wasm", b"\0asm\x01\0\0\0", 0);
    let line = running.wait_for_line("new plugin version rejected", Duration::from_secs(20));
    assert!(line.contains("not a component"), "{line}");
    let served_before = metric(
        &http_get(addr, "/metrics").1,
        "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}",
    )
    .unwrap_or(0.0);
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}",
        served_before + 500.0,
        Duration::from_secs(30),
    );
    let body = http_get(addr, "/metrics").1;
    assert_eq!(metric(&body, "synaptic_telemetry_plugin_swaps_total{plugin=\"stamp\"}"), Some(0.0));

    // A valid new version afterwards is taken.
    replace_plugin(&plugins, "stamp.wasm", &stamp_version(1), 1);
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_swaps_total{plugin=\"stamp\"}",
        1.0,
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(300));
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "summary: {summary}");
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty());
    let versions = versions_out(dir.path());
    assert_eq!(versions.len() as u64, summary["read"].as_u64().expect("read"));
    assert!(
        versions.iter().all(|v| v == "0000000000" || v == "0000000001"),
        "only the two valid versions served"
    );
    assert_eq!(versions.last().map(String::as_str), Some("0000000001"));
}

#[test]
fn a_new_version_that_keeps_trapping_is_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `mode` is read by the faulty plugin only; stamp ignores it.
    let (mut running, addr, plugins) = start_stamp(dir.path(), ", config: {mode: trap}");
    let first_hash = {
        let body = http_get(addr, "/metrics").1;
        let line = body
            .lines()
            .find(|l| l.starts_with("synaptic_telemetry_plugin_info{"))
            .expect("info metric")
            .to_string();
        line.split("hash=\"").nth(1).and_then(|s| s.split('"').next()).expect("hash label").to_string()
    };
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}",
        300.0,
        Duration::from_secs(30),
    );

    let faulty = std::fs::read(wasm("faulty")).expect("faulty.wasm");
    replace_plugin(&plugins, "stamp.wasm", &faulty, 0);
    let line = running.wait_for_line("plugin rolled back", Duration::from_secs(30));
    assert!(line.contains(&format!("restored={first_hash}")), "{line}");
    // The log line and the metrics are written one after the other by another
    // thread: wait for the metrics rather than read them once.
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_rollbacks_total{plugin=\"stamp\"}",
        1.0,
        Duration::from_secs(10),
    );
    let info = format!(
        "synaptic_telemetry_plugin_info{{hash=\"{first_hash}\",plugin=\"stamp\",runtime=\"wasm\"}} 1"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = http_get(addr, "/metrics").1;
        if body.contains(&info) || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(metric(&body, "synaptic_telemetry_plugin_rollbacks_total{plugin=\"stamp\"}"), Some(1.0));
    // Three failures roll back; the other worker may have had a batch of the
    // withdrawn version in flight, which fails too.
    let failures = metric(&body, "synaptic_telemetry_plugin_failures_total{kind=\"trap\",plugin=\"stamp\"}");
    assert!(failures.is_some_and(|f| (3.0..=4.0).contains(&f)), "failures: {failures:?}");
    assert!(
        body.contains(&format!(
            "synaptic_telemetry_plugin_info{{hash=\"{first_hash}\",plugin=\"stamp\",runtime=\"wasm\"}} 1"
        )),
        "info names the restored version"
    );
    // The restored version serves again.
    let served =
        metric(&body, "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}")
            .unwrap_or(0.0);
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_events_total{plugin=\"stamp\",verdict=\"replaced\"}",
        served + 300.0,
        Duration::from_secs(30),
    );
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "summary: {summary}");
    let out = versions_out(dir.path()).len() as u64;
    let dead = json_lines(&dir.path().join("out/dead.jsonl"));
    assert_eq!(out + dead.len() as u64, summary["read"].as_u64().expect("read"), "nothing lost");
    assert!(dead.iter().all(|d| d["reason"].as_str().is_some_and(|r| r.contains("trapped"))));
    assert!(
        !dead.is_empty() && dead.len() <= 400,
        "only the failed batches of 100 (three, and one in flight) were dead-lettered: {}",
        dead.len()
    );
    // The audit trail has the swap and the rollback, each with both hashes.
    let audit = json_lines(&dir.path().join("audit.jsonl"));
    let swapped: Vec<&Value> = audit.iter().filter(|e| e["action"] == "plugin.swapped").collect();
    assert_eq!(swapped.len(), 1, "{audit:#?}");
    assert_eq!(swapped[0]["detail"]["from"], first_hash.as_str());
    let new_hash = swapped[0]["detail"]["to"].as_str().expect("to").to_string();
    assert_ne!(new_hash, first_hash);
    let rolled: Vec<&Value> = audit.iter().filter(|e| e["action"] == "plugin.rolled_back").collect();
    assert_eq!(rolled.len(), 1, "{audit:#?}");
    assert_eq!(rolled[0]["detail"]["withdrawn"], new_hash.as_str());
    assert_eq!(rolled[0]["detail"]["restored"], first_hash.as_str());
    assert!(audit
        .iter()
        .all(|e| e["actor"] == "local" && e["target"].is_string() && e["outcome"].is_string()));
}

#[test]
fn a_plugin_that_cannot_load_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    std::fs::write(plugins.join("broken.wasm"), b"garbage").expect("write");
    std::fs::copy(wasm("faulty"), plugins.join("faulty.wasm")).expect("copy");
    let input = generate_input(dir.path(), 10, 1);
    for (step, expected) in [
        ("{name: broken, type: plugin, file: broken.wasm}", "plugin `broken`"),
        (
            "{name: faulty, type: plugin, file: faulty.wasm, config: {mode: init_error}}",
            "init failed: refusing to start",
        ),
    ] {
        let config = config(
            dir.path(),
            &format!("{{type: file, path: {}}}", input.display()),
            step,
            "{max_events: 5}",
        );
        let output = command().args(["run", "--config"]).arg(&config).output().expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(expected), "{stderr}");
    }
    // `validate` names a missing plugin file with its position.
    let config = config(
        dir.path(),
        &format!("{{type: file, path: {}}}", input.display()),
        "{type: plugin, file: missing.wasm}",
        "{max_events: 5}",
    );
    let output = command().arg("validate").arg(&config).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(stdout.contains(":6:") && stdout.contains("missing.wasm` does not exist"), "{stdout}");
}

#[test]
fn test_plugin_prints_every_verdict_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = generate_input(dir.path(), 300, 9);
    let output = command()
        .args(["test", "plugin"])
        .arg(wasm("severity_floor"))
        .arg("--input")
        .arg(&input)
        .args(["--config", "{min: WARN}", "--batch-size", "64"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 300);
    for (i, (line, event)) in lines.iter().zip(read_lines(&input)).enumerate() {
        let doc: Value = serde_json::from_str(&event).expect("JSON");
        let below = matches!(doc["severity"].as_str(), Some("TRACE" | "DEBUG" | "INFO"));
        let expected = format!("{}: {}", i + 1, if below { "drop" } else { "keep" });
        assert_eq!(*line, expected);
    }

    let output = command()
        .args(["test", "plugin"])
        .arg(wasm("stamp"))
        .arg("--input")
        .arg(&input)
        .output()
        .expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().find(|l| l.starts_with("1: replace ")).expect("a replacement");
    let doc: Value =
        serde_json::from_str(first.trim_start_matches("1: replace ")).expect("replacement is JSON");
    assert_eq!(doc["tags"]["plugin_version"], "0000000000");

    let output = command()
        .args(["test", "plugin"])
        .arg(wasm("faulty"))
        .arg("--input")
        .arg(&input)
        .args(["--config", "{mode: loop}", "--deadline", "50ms", "--batch-size", "100"])
        .output()
        .expect("runs");
    assert!(!output.status.success(), "failed batches fail the command");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("failed: plugin did not finish the batch within its deadline of 50ms").count(),
        3,
        "{stdout}"
    );
}

#[test]
fn a_rhai_script_is_swapped_live_and_a_broken_edit_is_rejected_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(dir.path());
    let script = |version: &str| {
        format!("fn process(event) {{\n  event.tags.script = \"{version}\";\n  event\n}}\n").into_bytes()
    };
    std::fs::write(plugins.join("mark.rhai"), script("v1")).expect("first version");
    let config = config(
        dir.path(),
        "{type: generator, rate: 4000, seed: 5}",
        "{name: mark, type: plugin, file: mark.rhai}",
        "{max_events: 100, linger: 20ms}",
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    let replaced = "synaptic_telemetry_plugin_events_total{plugin=\"mark\",verdict=\"replaced\"}";
    wait_for_metric(addr, replaced, 300.0, Duration::from_secs(30));
    assert!(http_get(addr, "/metrics").1.contains("plugin=\"mark\",runtime=\"rhai\"} 1"));

    replace_plugin(&plugins, "mark.rhai", b"fn process(event) {\n  let = 1;\n}\n", 2);
    let line = running.wait_for_line("new plugin version rejected", Duration::from_secs(20));
    assert!(line.contains("mark.rhai:2:"), "the error names the script and line: {line}");
    let served = metric(&http_get(addr, "/metrics").1, replaced).unwrap_or(0.0);
    wait_for_metric(addr, replaced, served + 300.0, Duration::from_secs(30));

    replace_plugin(&plugins, "mark.rhai", &script("v2"), 0);
    wait_for_metric(
        addr,
        "synaptic_telemetry_plugin_swaps_total{plugin=\"mark\"}",
        1.0,
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(300));
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "summary: {summary}");
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty());
    let marks: Vec<String> = json_lines(&dir.path().join("out/events.jsonl"))
        .iter()
        .map(|e| e["tags"]["script"].as_str().unwrap_or("unmarked").to_string())
        .collect();
    assert_eq!(marks.len() as u64, summary["read"].as_u64().expect("read"));
    assert!(marks.iter().all(|m| m == "v1" || m == "v2"), "only the two valid scripts served");
    assert_eq!(marks.last().map(String::as_str), Some("v2"));
}

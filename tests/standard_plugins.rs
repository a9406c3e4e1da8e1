//! The standard plugins, as built for wasm32-wasip2 and as shipped Rhai scripts:
//! sampling against the spec's table on a million generator events, determinism,
//! Rhai/Wasm parity on 100,000 events, Rhai's limits inside a running pipeline, and
//! PII scrubbing through the binary.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::plugins::wasm;
use common::{command, read_lines, write_config, Running};
use serde_json::Value;
use synaptic_plugin_sdk::contract::{BatchBuffer, Verdict};
use synaptic_telemetry::plugin::wasm::InstanceSettings;
use synaptic_telemetry::plugin::{Grants, PluginHostConfig};
use synaptic_telemetry::plugin::{Instance, PluginHost, PluginMetrics};
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;
use synaptic_telemetry::telemetry::Telemetry;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins").join(name)
}

/// A started instance of the plugin at `path` with `config` (JSON).
fn instance(path: &Path, config: &str) -> Box<dyn Instance> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let settings = Arc::new(InstanceSettings {
        plugin: name.clone(),
        init_config: config.to_string(),
        deadline: Duration::from_secs(30),
        deadline_per_event: Duration::ZERO,
        memory: 64 << 20,
        grants: Grants::default(),
        metrics: PluginMetrics::register(&Telemetry::new(), &name),
    });
    let mut host = PluginHost::new(&PluginHostConfig::default());
    let compile = host.compiler(path, settings).expect("a compiler for the plugin");
    let bytes = std::fs::read(path).expect("read the plugin");
    let code = compile(&bytes).unwrap_or_else(|e| panic!("{} compiles: {e}", path.display()));
    code.start().unwrap_or_else(|e| panic!("{} starts: {e}", path.display()))
}

/// `count` valid generator events (the demo's mix), as JSON lines.
fn generator_events(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let config = GeneratorConfig {
        seed,
        malformed_ratio: 0.0,
        start_ms: Some(1_767_225_600_000),
        ..Default::default()
    };
    let mut traffic = Traffic::new(&config, 0);
    (0..count).map(|_| traffic.next_event()).collect()
}

/// Runs `events` through `instance` in batches of `batch`; one verdict per event.
fn run(instance: &mut dyn Instance, events: &[Vec<u8>], batch: usize) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(events.len());
    let mut buffer = BatchBuffer::default();
    for chunk in events.chunks(batch) {
        buffer.clear();
        for event in chunk {
            buffer.push(event).expect("event fits the batch");
        }
        let list = instance.process(&mut buffer).expect("the batch is processed");
        let read = list.read(chunk.len()).expect("one verdict per event");
        verdicts.extend(read.into_iter().map(|v| v.to_verdict()));
    }
    verdicts
}

fn doc(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// The spec's category of an event, as the sampling table treats it.
fn category(event: &Value) -> String {
    let event_type = event["event_type"].as_str().unwrap_or("");
    let severity = event["severity"].as_str().unwrap_or("");
    let task = event_type.starts_with("task.");
    if task && event["data"]["success"] == Value::Bool(false) {
        return "task failure".into();
    }
    if matches!(severity, "ERROR" | "FATAL") {
        return "other error or fatal".into();
    }
    if task {
        return "task success".into();
    }
    event_type.to_string()
}

/// The spec's rate for a category.
fn expected_rate(category: &str) -> f64 {
    match category {
        "task success" => 0.1,
        "swarm.iteration" => 0.01,
        "bridge.message" => 0.001,
        _ => 1.0,
    }
}

#[test]
fn sampling_follows_the_spec_table_on_a_million_events_and_decides_the_same_twice() {
    const N: usize = 1_000_000;
    let events = generator_events(N, 11);
    let mut sample = instance(&wasm("sample"), "{}");
    let verdicts = run(sample.as_mut(), &events, 1_000);
    let mut tally: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut kept_ids = HashSet::new();
    for (event, verdict) in events.iter().zip(&verdicts) {
        let input = doc(event);
        let category = category(&input);
        let entry = tally.entry(category.clone()).or_default();
        entry.0 += 1;
        match verdict {
            Verdict::Drop => {}
            Verdict::Replace(bytes) => {
                entry.1 += 1;
                let output = doc(bytes);
                assert_eq!(
                    output["sample_rate"].as_f64(),
                    Some(expected_rate(&category)),
                    "{category}: {output}"
                );
                let mut without = output.clone();
                without.as_object_mut().map(|o| o.remove("sample_rate"));
                assert_eq!(without, input, "only sample_rate is added");
                kept_ids.insert(input["event_id"].as_str().unwrap_or("").to_string());
            }
            Verdict::Keep => panic!("a kept event must carry sample_rate: {input}"),
        }
    }
    println!("{:<32} {:>8} {:>8} {:>9} {:>9}", "category", "events", "kept", "kept %", "spec %");
    for (category, (n, kept)) in &tally {
        let rate = expected_rate(category);
        let share = *kept as f64 / *n as f64;
        println!("{category:<32} {n:>8} {kept:>8} {:>8.3}% {:>8.3}%", share * 100.0, rate * 100.0);
        // Binomial: within 5 standard deviations (and exact for 100%).
        let sd = (rate * (1.0 - rate) / *n as f64).sqrt();
        assert!((share - rate).abs() <= 5.0 * sd + 1e-12, "{category}: kept {share}, spec {rate} (n = {n})");
    }
    for needed in ["task success", "task failure", "swarm.iteration", "bridge.message", "agent.lifecycle"] {
        assert!(
            tally.get(needed).is_some_and(|(n, _)| *n > 1_000),
            "{needed} is well represented: {tally:?}"
        );
    }

    // A second run: a fresh instance, other batch boundaries, the same events kept.
    let mut again = instance(&wasm("sample"), "{}");
    let second = run(again.as_mut(), &events, 777);
    let second_ids: HashSet<String> = events
        .iter()
        .zip(&second)
        .filter(|(_, v)| **v != Verdict::Drop)
        .map(|(e, _)| doc(e)["event_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(second_ids, kept_ids, "two runs keep exactly the same events");
}

/// Verdicts equal as decisions: replaced events compared as JSON documents (the
/// Rhai host re-encodes; the Wasm plugin inserts in place).
fn same_decision(a: &Verdict, b: &Verdict) -> bool {
    match (a, b) {
        (Verdict::Replace(x), Verdict::Replace(y)) => doc(x) == doc(y),
        (a, b) => a == b,
    }
}

fn assert_parity(name: &str, config: &str, events: &[Vec<u8>]) {
    let mut wasm_instance = instance(&wasm(name), config);
    let mut rhai_instance = instance(&shipped(&format!("{name}.rhai")), config);
    let from_wasm = run(wasm_instance.as_mut(), events, 500);
    let from_rhai = run(rhai_instance.as_mut(), events, 500);
    let differ: Vec<usize> =
        (0..events.len()).filter(|&i| !same_decision(&from_wasm[i], &from_rhai[i])).collect();
    let dropped = from_wasm.iter().filter(|v| **v == Verdict::Drop).count();
    println!("{name} {config}: {} events, {dropped} dropped, {} differ", events.len(), differ.len());
    if let Some(&i) = differ.first() {
        panic!(
            "{name} with {config}: {} of {} verdicts differ; first at {i}: wasm {:?} rhai {:?} for {}",
            differ.len(),
            events.len(),
            from_wasm[i],
            from_rhai[i],
            String::from_utf8_lossy(&events[i])
        );
    }
    assert!(dropped > 0 && dropped < events.len(), "{name} {config}: the config must both keep and drop");
}

#[test]
fn rhai_and_wasm_sample_and_filter_decide_alike_on_100k_events() {
    let events = generator_events(100_000, 5);
    for config in [
        "{}",
        r#"{"rates":{"bridge.*":0.05,"bridge.message":0.02,"task.*":0.5},"always_keep":"WARN"}"#,
        r#"{"rules":[{"event_type":"swarm.*","rate":0.2,"key":["data.swarm_id","data.iteration"]},{"event_type":"*","rate":0.3,"keep_failures":true}],"key":"data.agent_id","default_rate":0.5,"always_keep":"none"}"#,
    ] {
        assert_parity("sample", config, &events);
    }
    for config in [
        r#"{"event_types":["task.*","consensus.*"]}"#,
        r#"{"action":"drop","components":["bridge","swarm"],"min_severity":"INFO"}"#,
        r#"{"tags":{"environment":"prod*"},"where":[{"field":"data.duration_ms","range":{"min":100,"max":5000}}]}"#,
        r#"{"where":[{"field":"data.success","equals":false}]}"#,
        r#"{"where":[{"field":"data.bridge_type","in":["MCP"]},{"field":"data.message_type","regex":"^tools/"}]}"#,
        r#"{"where":[{"field":"data.iteration","in":[1,2,3,50.0]}]}"#,
        r#"{"min_severity":"WARN","action":"keep"}"#,
    ] {
        assert_parity("filter", config, &events);
    }
}

/// A pipeline config around a file source and one plugin step.
fn pipeline(dir: &Path, input: &Path, step: &str, batch: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "source: {{type: file, path: {input}}}\n\
             batch: {batch}\n\
             plugins: {{dir: {plugins}}}\n\
             pipeline:\n  - {step}\n\
             sinks: [{{name: out, type: file, path: {out}}}]\n\
             dead_letter: {{type: file, path: {dead}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            plugins = dir.join("plugins").display(),
            out = dir.join("out/events.jsonl").display(),
            dead = dir.join("out/dead.jsonl").display(),
        ),
    )
}

fn event_line(id: &str, event_type: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","timestamp":1767225600000,"component":"test","event_type":"{event_type}","severity":"INFO","tags":{{}},"data":{{}}}}"#
    )
}

#[test]
fn rhai_limits_stop_a_loop_a_huge_string_and_deep_recursion_and_only_the_bad_events_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::write(
        plugins.join("wild.rhai"),
        "fn deep(n) { deep(n + 1) }\n\
         fn process(event) {\n\
           if event.event_type == \"x.loop\" { loop { } }\n\
           if event.event_type == \"x.string\" { let s = \"x\"; loop { s += s; } }\n\
           if event.event_type == \"x.recurse\" { deep(0); }\n\
           event\n\
         }\n",
    )
    .expect("script");
    // Batches of 4: each bad event fails its own batch, which is split so that
    // only the bad event goes to dead letter.
    let mut lines = Vec::new();
    for (i, bad) in ["x.loop", "x.string", "x.recurse"].iter().enumerate() {
        lines.push(event_line(&format!("bad-{i}"), bad));
        for j in 0..3 {
            lines.push(event_line(&format!("good-{i}-{j}"), "x.fine"));
        }
    }
    for j in 0..4 {
        lines.push(event_line(&format!("after-{j}"), "x.fine"));
    }
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let config = pipeline(
        dir.path(),
        &input,
        "{name: wild, type: plugin, file: wild.rhai, deadline: 2s}",
        "{max_events: 4, linger: 30s}",
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(120));
    assert_eq!(code, 0, "the pipeline finishes normally: {summary}");
    let dead: Vec<Value> = read_lines(&dir.path().join("out/dead.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let reasons: Vec<String> = dead.iter().map(|d| d["reason"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(dead.len(), 3, "the three bad events, and none of their neighbours: {reasons:#?}");
    let reason_of = |id: &str| {
        dead.iter()
            .find(|d| d["raw"].as_str().is_some_and(|raw| raw.contains(id)))
            .and_then(|d| d["reason"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let (looped, string, recursed) = (reason_of("bad-0"), reason_of("bad-1"), reason_of("bad-2"));
    assert!(looped.contains("over the limit of 1000000 operations"), "loop: {looped}");
    assert!(
        string.contains("wild.rhai") && string.to_lowercase().contains("length of string"),
        "string: {string}"
    );
    assert!(recursed.contains("wild.rhai") && recursed.contains("nested calls"), "recursion: {recursed}");
    let out = read_lines(&dir.path().join("out/events.jsonl"));
    assert_eq!(out.len(), 13, "the good events of the failed batches and the batch after: {out:?}");
    assert_eq!(out.iter().filter(|l| l.contains("\"good-")).count(), 9);
    assert_eq!(out.iter().filter(|l| l.contains("\"after-")).count(), 4);
}

#[test]
fn pii_is_scrubbed_in_the_running_pipeline_with_a_granted_hash_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(wasm("pii_scrub"), plugins.join("pii_scrub.wasm")).expect("copy");
    let input = dir.path().join("input.jsonl");
    let event = r#"{"event_id":"e-1","timestamp":1767225600000,"component":"scheduler","event_type":"task.completed","severity":"ERROR","tags":{},"data":{"task_id":"task-1","agent_id":"agent-code_worker-3","duration_ms":5,"success":false,"error_message":"card 4111 1111 1111 1111 for jane.doe@example.com"}}"#;
    std::fs::write(&input, format!("{event}\n")).expect("input");
    let config = pipeline(
        dir.path(),
        &input,
        "{name: pii_scrub, type: plugin, file: pii_scrub.wasm, config: {detectors: {email: hash}, hash_key_env: PII_KEY}, allow: {env: [PII_KEY]}}",
        "{max_events: 10, linger: 100ms}",
    );
    let mut cmd = command();
    cmd.env("PII_KEY", "test-key").args(["run", "--config"]).arg(&config);
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    let out = read_lines(&dir.path().join("out/events.jsonl"));
    assert_eq!(out.len(), 1);
    let message = doc(out[0].as_bytes())["data"]["error_message"].as_str().unwrap_or("").to_string();
    assert!(message.starts_with("card [REDACTED:card] for [HMAC:email:"), "{message}");
    assert!(!out[0].contains("4111") && !out[0].contains("jane.doe"));
}

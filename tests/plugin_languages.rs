//! Plugins written in TypeScript and Python (plugins/js, plugins/python) on the same
//! contract as Rust ones: their SDKs' own test runners, `test plugin` unchanged, the
//! same verdicts as the Rust severity filter on 100,000 generated events, and the
//! real pipeline running them. Hot swap and failure containment are in
//! tests/plugins.rs, beside the Rust plugins' cases.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::plugins::wasm;
use common::{command, generate_input, read_lines, spawn_run, write_config};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `test plugin` and returns its per-event lines (`N: keep`, …) and summary.
fn test_plugin(plugin: &Path, input: &Path, config: &str) -> (Vec<String>, String) {
    let output = command()
        .args(["test", "plugin"])
        .arg(plugin)
        .arg("--input")
        .arg(input)
        .args(["--config", config, "--deadline", "10s"])
        .output()
        .expect("test plugin runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "test plugin {} failed: {stderr}", plugin.display());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect();
    (lines, stderr)
}

/// Every number as a double. JavaScript has no other numbers: a TypeScript plugin
/// that rewrites an event writes `947.0` as `947` (the same JSON number).
fn as_doubles(value: Value) -> Value {
    match value {
        Value::Number(n) => {
            n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, as_doubles(v))).collect()),
        other => other,
    }
}

fn severity_at_least_warn(line: &str) -> bool {
    let doc: Value = serde_json::from_str(line).expect("JSON");
    matches!(doc["severity"].as_str(), Some("WARN" | "ERROR" | "FATAL"))
}

#[test]
fn the_sdks_own_test_runners_pass() {
    // plugins/build.sh (run by `wasm`) installs the TypeScript SDK's packages.
    wasm("severity_filter_ts");
    let npm = Command::new("npm")
        .arg("test")
        .current_dir(root().join("plugins/js"))
        .output()
        .expect("npm test runs");
    let out = String::from_utf8_lossy(&npm.stdout);
    assert!(npm.status.success(), "npm test failed:\n{out}\n{}", String::from_utf8_lossy(&npm.stderr));
    let passed: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse().ok())
        .expect("node --test reports its passes");
    assert!(passed >= 12, "the SDK's, the template's and the examples' tests ran: {passed}\n{out}");
    assert!(out.contains("# fail 0"), "{out}");

    let python = root().join("plugins/python");
    let mut ran = 0;
    for dir in ["sdk/tests", "template", "examples/severity_filter", "examples/redact"] {
        let output = Command::new("python3")
            .args(["-m", "unittest", "-v"])
            .current_dir(python.join(dir))
            .env("PYTHONPATH", python.join("sdk"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 -m unittest runs");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && err.trim_end().ends_with("OK"), "{dir}:\n{err}");
        let count: u32 = err
            .lines()
            .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split_whitespace().next()))
            .and_then(|n| n.parse().ok())
            .expect("unittest reports how many tests ran");
        assert!(count > 0, "{dir} has tests");
        ran += count;
    }
    assert!(ran >= 12, "python tests ran: {ran}");
}

#[test]
fn severity_filters_in_typescript_python_and_rust_agree_on_100000_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = generate_input(dir.path(), 100_000, 21);
    let events = read_lines(&input);
    assert_eq!(events.len(), 100_000);
    let expected: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{}: {}", i + 1, if severity_at_least_warn(l) { "keep" } else { "drop" }))
        .collect();
    let kept = expected.iter().filter(|l| l.ends_with("keep")).count();
    assert!(kept > 1_000 && kept < 99_000, "the input holds both verdicts: {kept} kept");
    for plugin in ["severity_floor", "severity_filter_ts", "severity_filter_py"] {
        let (lines, stderr) = test_plugin(&wasm(plugin), &input, "{min: WARN}");
        assert_eq!(lines.len(), 100_000, "{plugin}: one verdict per event");
        let differing: Vec<(&String, &String)> =
            lines.iter().zip(&expected).filter(|(a, b)| a != b).collect();
        assert!(
            differing.is_empty(),
            "{plugin}: {} verdicts differ, e.g. {:?}",
            differing.len(),
            differing.first()
        );
        assert!(
            stderr.contains(&format!("100000 events: {kept} kept, {} dropped, 0 replaced", 100_000 - kept)),
            "{plugin}: {stderr}"
        );
    }
}

#[test]
fn test_plugin_runs_the_typescript_and_python_redactors_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = generate_input(dir.path(), 2_000, 4);
    let events = read_lines(&input);
    let config = "{fields: [data.agent_id, data.reasoning], mask: '[REDACTED]'}";
    let mut outputs: Vec<Vec<String>> = Vec::new();
    for plugin in ["redact_ts", "redact_py"] {
        let (lines, stderr) = test_plugin(&wasm(plugin), &input, config);
        assert_eq!(lines.len(), events.len());
        let mut replaced = 0;
        for (line, event) in lines.iter().zip(&events) {
            let doc: Value = serde_json::from_str(event).expect("JSON");
            let has = |k: &str| doc["data"].get(k).is_some_and(|v| !v.is_null());
            let (number, verdict) = line.split_once(": ").expect("N: verdict");
            if has("agent_id") || has("reasoning") {
                let text =
                    verdict.strip_prefix("replace ").unwrap_or_else(|| panic!("{plugin} {number}: {line}"));
                let new = as_doubles(serde_json::from_str(text).expect("replacement is JSON"));
                let doc = as_doubles(doc.clone());
                for key in ["agent_id", "reasoning"] {
                    if has(key) {
                        assert_eq!(new["data"][key], "[REDACTED]", "{plugin} {number}");
                    }
                }
                // Everything else is as it was.
                let mut unmasked = new.clone();
                let mut original = doc.clone();
                for key in ["agent_id", "reasoning"] {
                    unmasked["data"].as_object_mut().expect("data").remove(key);
                    original["data"].as_object_mut().expect("data").remove(key);
                }
                assert_eq!(unmasked, original, "{plugin} {number}: only the named fields change");
                replaced += 1;
            } else {
                assert_eq!(verdict, "keep", "{plugin} {number}");
            }
        }
        assert!(replaced > 100, "{plugin}: the input has fields to redact ({replaced})");
        assert!(
            stderr.contains(&format!("{replaced} replaced; 0 invalid input lines, 0 invalid replacements")),
            "{stderr}"
        );
        outputs.push(lines);
    }
    // The two languages write the same documents (key order and number forms aside).
    for (ts, py) in outputs[0].iter().zip(&outputs[1]) {
        let parse = |l: &str| {
            l.split_once("replace ").map(|(_, j)| as_doubles(serde_json::from_str(j).expect("JSON")))
        };
        assert_eq!(parse(ts), parse(py), "{ts} / {py}");
    }
}

#[test]
fn the_pipeline_runs_a_typescript_filter_then_a_python_redactor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    for name in ["severity_filter_ts", "redact_py"] {
        std::fs::copy(wasm(name), plugins.join(format!("{name}.wasm"))).expect("copy plugin");
    }
    let input = generate_input(dir.path(), 5_000, 8);
    let config = write_config(
        dir.path(),
        &format!(
            "workers: 2\n\
             source: {{type: file, path: {input}}}\n\
             batch: {{max_events: 500, linger: 1s}}\n\
             plugins: {{dir: {plugins}}}\n\
             pipeline:\n\
             \x20 - {{name: severity, type: plugin, file: severity_filter_ts.wasm, config: {{min: WARN}}}}\n\
             \x20 - {{name: redact, type: plugin, file: redact_py.wasm, config: {{fields: [data.agent_id]}}}}\n\
             sinks: [{{name: out, type: file, path: {out}}}]\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            plugins = plugins.display(),
            out = dir.path().join("out/events.jsonl").display(),
            dead = dir.path().join("out/dead.jsonl").display(),
        ),
    );
    let (code, summary) = spawn_run(&config).finish(Duration::from_secs(120));
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["acknowledged"], 5_000);
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty(), "nothing dead-lettered");

    let by_id: HashMap<String, Value> = read_lines(&input)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .map(|d| (d["event_id"].as_str().expect("id").to_string(), d))
        .collect();
    let wanted = by_id.values().filter(|d| severity_at_least_warn(&d.to_string())).count();
    let out = read_lines(&dir.path().join("out/events.jsonl"));
    assert_eq!(out.len(), wanted, "exactly the WARN and above events come out");
    let mut masked = 0;
    for line in &out {
        let doc: Value = serde_json::from_str(line).expect("JSON");
        let original = &by_id[doc["event_id"].as_str().expect("id")];
        assert!(severity_at_least_warn(line));
        match original["data"].get("agent_id") {
            Some(v) if !v.is_null() => {
                assert_eq!(doc["data"]["agent_id"], "[REDACTED]");
                masked += 1;
            }
            _ => assert_eq!(doc["data"], original["data"]),
        }
    }
    assert!(masked > 0, "some events had an agent to redact");
}

//! The spine end to end, through the real binary: every input ends up in exactly one
//! place, SIGTERM loses nothing, config errors are all reported, the demo works.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{command, comparable, http_get, metric, read_lines, write_config, Running};
use serde_json::Value;

fn multiset(lines: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// The raw bytes a dead-letter record kept, as text.
fn raw_of(record: &Value) -> String {
    if let Some(raw) = record["raw"].as_str() {
        return raw.to_string();
    }
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(record["raw_base64"].as_str().expect("raw or raw_base64"))
        .expect("base64");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn generated_traffic_piped_into_run_lands_each_line_in_exactly_one_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    let status = command()
        .args(["generate", "--count", "100000", "--malformed-ratio", "0.01", "--seed", "11", "--out"])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"-\"}}\n\
             sinks: [{{name: out, type: file, path: {out}}}]\n\
             dead_letter: {{type: file, path: {dlq}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            out = dir.path().join("out/events.jsonl").display(),
            dlq = dir.path().join("out/dead.jsonl").display(),
        ),
    );
    // The same events again, piped from `generate` straight into `run`.
    let mut generate = command()
        .args(["generate", "--count", "100000", "--malformed-ratio", "0.01", "--seed", "11"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("generate runs");
    let pipe = generate.stdout.take().expect("generate stdout");
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config).stdin(Stdio::from(pipe));
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(300));
    assert!(generate.wait().expect("generate exits").success());
    assert_eq!(code, 0, "summary: {summary}");

    let inputs = read_lines(&input);
    let forwarded = read_lines(&dir.path().join("out/events.jsonl"));
    let dead = read_lines(&dir.path().join("out/dead.jsonl"));
    assert_eq!(inputs.len(), 100_000);
    assert_eq!(forwarded.len() + dead.len(), inputs.len(), "every line in exactly one place");
    assert!((700..1300).contains(&dead.len()), "about 1% malformed, got {}", dead.len());
    assert_eq!(summary["read"], 100_000);
    assert_eq!(summary["acknowledged"], 100_000);
    assert_eq!(summary["dead_lettered"], dead.len() as u64);

    let mut accounted: Vec<String> = forwarded.iter().map(|l| comparable(l)).collect();
    for line in &dead {
        let record: Value = serde_json::from_str(line).expect("dead letter is JSON");
        let reason = record["reason"].as_str().unwrap_or("");
        assert!(!reason.is_empty(), "dead letter without reason: {line}");
        assert!(matches!(record["stage"].as_str(), Some("decode" | "schema")), "{line}");
        let line_no = record["source"]["line"].as_u64().expect("source line") as usize;
        let raw = raw_of(&record);
        assert_eq!(
            String::from_utf8_lossy(inputs[line_no - 1].as_bytes()),
            raw,
            "dead letter points at the input line it came from"
        );
        accounted.push(inputs[line_no - 1].clone());
    }
    let inputs: Vec<String> = inputs.iter().map(|l| comparable(l)).collect();
    let accounted: Vec<String> = accounted.iter().map(|l| comparable(l)).collect();
    assert!(multiset(accounted) == multiset(inputs), "outputs are exactly the inputs");
}

#[test]
fn sigterm_drains_and_nothing_read_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, dlq) = (dir.path().join("events.jsonl"), dir.path().join("dead.jsonl"));
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: generator, rate: 20000, seed: 5, malformed_ratio: 0.02, start_ms: 1767225600000}}\n\
             batch: {{max_events: 256, linger: 20ms}}\n\
             sinks: [{{name: out, type: file, path: {}}}]\n\
             dead_letter: {{type: file, path: {}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            out.display(),
            dlq.display()
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    running.wait_for_address(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "summary: {summary}");

    let read = summary["read"].as_u64().expect("summary has read");
    assert!(read > 1000, "the generator ran: {summary}");
    assert_eq!(summary["acknowledged"], read);
    let forwarded = read_lines(&out);
    let dead = read_lines(&dlq);
    assert_eq!(forwarded.len() + dead.len(), read as usize);

    // The same seed reproduces exactly what was read: every one of those lines is in
    // the outputs.
    let expected = command()
        .args(["generate", "--count", &read.to_string(), "--seed", "5", "--rate", "20000"])
        .args(["--malformed-ratio", "0.02", "--start-ms", "1767225600000"])
        .stdout(Stdio::piped())
        .output()
        .expect("generate");
    let expected: Vec<String> =
        String::from_utf8_lossy(&expected.stdout).lines().map(str::to_string).collect();
    let mut got: Vec<String> = forwarded.iter().map(|l| comparable(l)).collect();
    got.extend(dead.iter().map(|l| raw_of(&serde_json::from_str(l).expect("json"))));
    let expected: Vec<String> = expected.iter().map(|l| comparable(l)).collect();
    let got: Vec<String> = got.iter().map(|l| comparable(l)).collect();
    assert!(multiset(got) == multiset(expected), "outputs are exactly the first {read} generated events");
}

#[test]
fn validate_reports_all_three_mistakes_with_positions() {
    let output = command()
        .args(["validate", "tests/fixtures/config/three-mistakes.bad.yaml"])
        .output()
        .expect("validate runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let errors: Vec<&str> =
        text.lines().filter(|l| l.contains(".bad.yaml:") && !l.ends_with("error(s)")).collect();
    assert_eq!(errors.len(), 3, "{text}");
    assert!(errors[0].contains("three-mistakes.bad.yaml:5:3: unknown key `seeed` in source"), "{text}");
    assert!(errors[1].contains(":8:11: expected a duration"), "{text}");
    assert!(
        errors[2].contains(
            ":11:11: expected one of stdout, file, kafka, otlp, influxdb, http, elasticsearch, got `s3`"
        ),
        "{text}"
    );

    // A metrics step's mapping is checked with the config: its errors point into
    // the mapping file, with the names promtool would object to.
    let output = command()
        .args(["validate", "tests/fixtures/config/bad-mapping.bad.yaml"])
        .output()
        .expect("validate runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("promtool-would-object.bad.yaml:")).collect();
    assert_eq!(errors.len(), 4, "{text}");
    assert!(
        errors[0].contains(":3:5: metric name `codex_synaptic_task_done`: a counter's name ends in `_total`"),
        "{text}"
    );
    assert!(
        errors[1].contains(":7:5: metric name `codex_synaptic_task_latency_ms`: abbreviated unit `ms`"),
        "{text}"
    );
    assert!(errors[2].contains(":17:12: field `payload.count` must start with data."), "{text}");
    assert!(errors[3].contains(":18:5: unknown key `colour`"), "{text}");

    let ok = command()
        .args([
            "validate",
            "tests/fixtures/config/stdin.good.yaml",
            "tests/fixtures/config/metrics.good.yaml",
            "config/demo.yaml",
            "config/kafka.yaml",
        ])
        .output()
        .expect("validate runs");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
}

#[test]
fn validate_checks_rule_files_and_the_alerts_step_with_positions() {
    let output = command()
        .args(["validate", "tests/fixtures/rules/mistakes.bad.yaml", "tests/fixtures/config/alerts.bad.yaml"])
        .output()
        .expect("validate runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let in_rules: Vec<&str> =
        text.lines().filter(|l| l.starts_with("tests/fixtures/rules/mistakes.bad.yaml:")).collect();
    let expected = [
        ":8:12: avg needs `field`",
        ":10:16: unknown placeholder `valu`",
        ":15:14: count takes exactly one of `above` or `below`",
        ":15:28: unknown key `abve` in count",
        ":16:5: unknown key `keep_firing` in rule 2",
        ":17:5: rule `SlowConsensus` is already defined at line 3",
    ];
    // Once for the rule file itself, once through the config's alerts step.
    assert_eq!(in_rules.len(), 2 * expected.len() + 1, "{text}");
    for want in expected {
        assert_eq!(in_rules.iter().filter(|l| l.contains(want)).count(), 2, "{want}: {text}");
    }
    assert!(text.contains("alerts.bad.yaml:5:16: group_wait must be at most 15m"), "{text}");
    assert!(
        text.contains("alerts.bad.yaml:7:17: expected one of alertmanager, webhook, file, log, got `pager`"),
        "{text}"
    );
    assert!(text.contains("tests/fixtures/config/alerts.bad.yaml: 8 error(s)"), "{text}");

    let ok = command()
        .args([
            "validate",
            "rules",
            "tests/fixtures/rules/one.good.yaml",
            "tests/fixtures/config/alerts.good.yaml",
        ])
        .output()
        .expect("validate runs");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("tests/fixtures/rules/one.good.yaml: ok (1 rules)"), "{text}");
}

#[test]
fn test_rules_runs_the_shipped_rule_tests() {
    let output = command().args(["test", "rules", "rules/tests"]).output().expect("test rules runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let passed = text.lines().filter(|l| l.starts_with("PASS ")).count();
    assert!(passed >= 40, "{text}");
    assert!(text.contains(&format!("{passed} passed, 0 failed, 0 file(s) with errors")), "{text}");
}

/// `promtool check metrics` (installed by tests/run.sh) reports nothing on `body`.
fn promtool_finds_nothing(body: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (tests/run.sh installs it)");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("metrics written to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}");
}

/// Raw PII the generator puts into free text (see `source::traffic`).
const GENERATED_PII: [&str; 5] =
    ["jane.doe@example.com", "078-05-1120", "hunter2", "203.0.113.42", "4111 1111 1111 1111"];

/// The demo's metric families are exactly those of `tests/fixtures/metrics/
/// demo-families.txt`, with their types; a family with samples carries exactly the
/// label names listed there (histograms' `le` aside).
fn assert_demo_families(body: &str) {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/demo-families.txt");
    let text = std::fs::read_to_string(fixture).expect("read demo-families.txt");
    let expected: std::collections::BTreeMap<String, (String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some((parts.next()?.to_string(), (parts.next()?.to_string(), parts.next()?.to_string())))
        })
        .collect();
    let mut types = std::collections::BTreeMap::new();
    let mut labels: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let mut name = &line[..name_end];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) =
                    name.strip_suffix(suffix).filter(|b| types.get(*b).is_some_and(|t| t == "histogram"))
                {
                    name = base;
                }
            }
            let keys = labels.entry(name.to_string()).or_default();
            if let Some(inner) =
                line[name_end..].strip_prefix('{').and_then(|r| r.split_once('}')).map(|(i, _)| i)
            {
                for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                    if let Some((key, _)) = pair.split_once('=') {
                        if key != "le" {
                            keys.insert(key.to_string());
                        }
                    }
                }
            }
        }
    }
    let found: Vec<(&String, &String)> = types.iter().collect();
    let wanted: Vec<(&String, &String)> = expected.iter().map(|(n, (t, _))| (n, t)).collect();
    assert_eq!(found, wanted, "the demo's metric families (name, type) changed\n{body}");
    for (name, (_, listed)) in &expected {
        let seen = labels.get(name).cloned().unwrap_or_default();
        if listed != "-" && !seen.is_empty() {
            let listed: std::collections::BTreeSet<String> = listed.split(',').map(str::to_string).collect();
            assert_eq!(seen, listed, "label names of {name}\n{body}");
        }
    }
}

#[test]
fn demo_shows_the_standard_plugins_working_and_a_live_swap() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo's plugins, copied so that the test can swap one without touching
    // the checkout: the built .wasm files and the checked-in scripts.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("plugins dir");
    for name in ["pii_scrub", "sample", "stamp"] {
        std::fs::copy(common::plugins::wasm(name), plugins.join(format!("{name}.wasm"))).expect("copy");
    }
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/filter.rhai");
    std::fs::copy(source, plugins.join("filter.rhai")).expect("copy filter.rhai");

    let mut cmd = command();
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--no-build", "--plugins"])
        .arg(&plugins)
        .current_dir(dir.path())
        .stdout(Stdio::piped());
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    running.wait_for_line("Ctrl-C stops it", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));

    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_demo_families(&body);
    let sent = metric(&body, "synaptic_telemetry_sink_events_total{outcome=\"sent\",sink=\"archive\"}")
        .unwrap_or(0.0);
    assert!(sent > 100.0, "archive sink received events: {sent}\n{body}");
    let dead = metric(&body, "synaptic_telemetry_dead_lettered_total{stage=\"decode\"}").unwrap_or(0.0)
        + metric(&body, "synaptic_telemetry_dead_lettered_total{stage=\"schema\"}").unwrap_or(0.0);
    assert!(dead > 0.0, "the demo's malformed events are dead-lettered\n{body}");
    let dropped =
        metric(&body, "synaptic_telemetry_step_events_total{outcome=\"dropped\",step=\"drop_heartbeats\"}");
    assert!(dropped.is_some_and(|d| d > 0.0), "heartbeats dropped\n{body}");
    let plugin = |name: &str, verdict: &str| {
        let series =
            format!("synaptic_telemetry_plugin_events_total{{plugin=\"{name}\",verdict=\"{verdict}\"}}");
        metric(&body, &series).unwrap_or(0.0)
    };
    assert!(plugin("pii_scrub", "replaced") > 0.0, "pii_scrub scrubbed events\n{body}");
    // The metrics step serves the spec's metrics beside the pipeline's own, and the
    // traces step made spans (the demo has no otlp sink; they are counted).
    let assigned: f64 = body
        .lines()
        .filter(|l| l.starts_with("codex_synaptic_task_assigned_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(assigned > 0.0, "codex_synaptic_task_assigned_total counted\n{body}");
    assert!(body.contains("# TYPE codex_synaptic_task_execution_time_seconds histogram"), "{body}");
    assert!(
        metric(&body, "synaptic_telemetry_spans_total{outcome=\"span\"}").is_some_and(|n| n > 0.0),
        "{body}"
    );
    // Its per-detector counters reach /metrics through the host.
    let findings: f64 = body
        .lines()
        .filter(|l| {
            l.starts_with("synaptic_telemetry_plugin_reported_total{") && l.contains("plugin=\"pii_scrub\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(findings >= plugin("pii_scrub", "replaced"), "a finding per scrubbed event at least\n{body}");
    assert!(plugin("sample", "dropped") > 0.0, "sample dropped its share\n{body}");
    assert!(plugin("sample", "replaced") > 0.0, "sample stamped what it kept\n{body}");
    assert!(plugin("filter", "dropped") > 0.0, "filter.rhai dropped DEBUG events\n{body}");
    assert!(plugin("stamp", "replaced") > 0.0, "stamp stamped events\n{body}");
    assert_eq!(http_get(addr, "/health").0, 200);
    assert_eq!(http_get(addr, "/ready").0, 200);
    promtool_finds_nothing(&body);

    // A live swap: a new build of stamp.wasm lands in the plugins directory.
    let staged = plugins.join("stamp.wasm.new");
    std::fs::write(&staged, common::plugins::stamp_version(7)).expect("write new stamp");
    std::fs::rename(&staged, plugins.join("stamp.wasm")).expect("swap stamp.wasm");
    running.wait_for_line("plugin swapped", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));

    running.signal("INT");
    let mut stdout = running.child.stdout.take().expect("stdout");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    let mut echoed = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut echoed).expect("stdout");
    let warnings: Vec<Value> =
        echoed.lines().map(|l| serde_json::from_str(l).expect("stdout is JSONL")).collect();
    assert!(!warnings.is_empty(), "warnings echoed to the terminal");
    for w in &warnings {
        assert!(matches!(w["severity"].as_str(), Some("WARN" | "ERROR" | "FATAL")), "{w}");
        assert_eq!(w["tags"]["pipeline"], "demo", "tag step applied: {w}");
    }
    // The alerts step evaluated the spec's rule pack on the traffic: every
    // notification in the demo's alert file is a tiered, labelled alert.
    let notifications = read_lines(&dir.path().join("demo-out/alerts.jsonl"));
    assert!(!notifications.is_empty(), "the demo's alerts fired");
    for line in &notifications {
        let n: Value = serde_json::from_str(line).expect("alerts file is JSONL");
        assert!(matches!(n["tier"].as_str(), Some("critical" | "warning" | "info")), "{n}");
        for alert in n["alerts"].as_array().expect("alerts") {
            assert_eq!(alert["labels"]["severity"], n["tier"], "{n}");
            assert!(alert["labels"]["alertname"].is_string(), "{n}");
        }
    }
    let archived = read_lines(&dir.path().join("demo-out/events.jsonl"));
    let mut versions = HashMap::new();
    let mut redacted = 0;
    for line in &archived {
        for pii in GENERATED_PII {
            assert!(!line.contains(pii), "PII {pii:?} reached the archive: {line}");
        }
        redacted += usize::from(line.contains("[REDACTED:"));
        let event: Value = serde_json::from_str(line).expect("archive is JSONL");
        assert!(!matches!(event["severity"].as_str(), Some("DEBUG" | "TRACE")), "filter applies: {event}");
        let rate = event["sample_rate"].as_f64().unwrap_or_else(|| panic!("no sample_rate: {event}"));
        assert!(rate > 0.0 && rate <= 1.0, "{event}");
        let version = event["tags"]["plugin_version"].as_str().unwrap_or("unstamped").to_string();
        *versions.entry(version).or_insert(0) += 1;
    }
    assert!(redacted > 0, "the archive shows scrubbed PII ({} events)", archived.len());
    assert!(versions.get("0000000000").is_some_and(|&n| n > 0), "old stamp before the swap: {versions:?}");
    assert!(versions.get("0000000007").is_some_and(|&n| n > 0), "new stamp after the swap: {versions:?}");
    assert_eq!(versions.len(), 2, "every event stamped by one of the two versions: {versions:?}");
    assert_eq!(
        archived.len() as u64
            + summary["dead_lettered"].as_u64().unwrap_or(0)
            + summary["dropped"].as_u64().unwrap_or(0),
        summary["read"].as_u64().unwrap_or(0)
    );
}

#[test]
fn a_sink_that_cannot_write_is_never_reported_done() {
    // /dev/full accepts open() and fails every write with ENOSPC.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: generator, rate: 2000, seed: 1}}\n\
             limits: {{drain_timeout: 1s, max_in_flight_batches: 2}}\n\
             batch: {{max_events: 100, linger: 10ms}}\n\
             sinks: [{{name: full, type: file, path: /dev/full, buffer: {{type: memory, max_events: 100}}}}]\n\
             dead_letter: {{type: file, path: {}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            dir.path().join("dead.jsonl").display()
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    running.wait_for_line("write failed", Duration::from_secs(10));
    // Backpressure: the sink holds the batch it writes and a full buffer (100
    // events); two batches in flight wait to be taken in; the source stops with
    // at most one open batch.
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http_get(addr, "/metrics");
    let read = metric(&body, "synaptic_telemetry_source_events_total").unwrap_or(-1.0);
    assert!(read <= 500.0, "source bounded by the buffer and the batches in flight, read {read}");
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(30));
    assert_ne!(code, 0, "a run with unacknowledged events must not exit 0");
    assert_eq!(summary["acknowledged"], 0, "{summary}");
    assert_eq!(summary["unacknowledged"], summary["read"], "{summary}");
}

//! Pipeline workers through the real binary: the same input through the demo's
//! full chain with `workers: 1` and `workers: 4` gives the same metrics (the spec's
//! families, derived gauges included, and the pipeline's own counters), the same
//! alerts and the same output events.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::plugins::wasm;
use common::{command, http_get, metric, read_lines, write_config, Running};
use serde_json::Value;

const EVENTS: u64 = 40_000;

/// Rules whose outcome the data decides, not the moment of evaluation: counts
/// over a window longer than the run only grow, so each group fires once.
const RULES: &str = r#"rules:
  - name: Violations
    tier: critical
    match: { event_type: security.violation, where: { data.severity: { in: [HIGH, CRITICAL] } } }
    group_by: [data.violation_type]
    condition: { count: { window: 1h, above: 0 } }
    annotations: { summary: "{{ violation_type }} violations" }
  - name: BusyComponents
    tier: critical
    match: { min_severity: WARN }
    group_by: [component, event_type]
    condition: { count: { window: 1h, above: 20 } }
  # Its label is not `component`: a firing critical with the same labels would
  # inhibit it, and whether that happens first depends on the clock.
  - name: ManyTasks
    tier: warning
    match: { event_type: "task.*" }
    group_by: { source: component }
    condition: { count: { window: 1h, above: 100 } }
"#;

struct Outcome {
    metrics: BTreeMap<String, String>,
    alerts: BTreeMap<String, usize>,
    events: BTreeMap<String, usize>,
    dead: BTreeMap<String, usize>,
    summary: Value,
}

/// Runs the chain over `input` (from stdin, so /metrics is served until every
/// event has been through) with `workers` workers.
fn run(dir: &Path, input: &Path, workers: usize) -> Outcome {
    let out = dir.join(format!("w{workers}"));
    std::fs::create_dir_all(&out).expect("out dir");
    let plugins = out.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    for name in ["pii_scrub", "sample"] {
        std::fs::copy(wasm(name), plugins.join(format!("{name}.wasm"))).expect("copy plugin");
    }
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/filter.rhai"),
        plugins.join("filter.rhai"),
    )
    .expect("copy filter.rhai");
    std::fs::write(out.join("rules.yaml"), RULES).expect("rules");
    let config = write_config(
        &out,
        &format!(
            "workers: {workers}\n\
             source: {{type: file, path: \"-\"}}\n\
             batch: {{max_events: 256, linger: 50ms}}\n\
             plugins: {{dir: {plugins}, watch: false}}\n\
             pipeline:\n\
             \x20 - {{name: pii_scrub, type: plugin, file: pii_scrub.wasm, config: {{mode: redact}}, deadline: 2s}}\n\
             \x20 - {{type: metrics}}\n\
             \x20 - {{type: traces, sampling_rate: 1.0}}\n\
             \x20 - type: alerts\n\
             \x20   rules: {rules}\n\
             \x20   evaluation_interval: 100ms\n\
             \x20   warning: {{group_wait: 0s, group_interval: 1s}}\n\
             \x20   receivers: [{{name: log, type: file, path: {alerts}}}]\n\
             \x20 - {{type: drop, match: {{event_type: system.health}}}}\n\
             \x20 - {{name: filter, type: plugin, file: filter.rhai, config: {{min_severity: INFO}}}}\n\
             \x20 - {{name: sample, type: plugin, file: sample.wasm}}\n\
             sinks: [{{name: archive, type: file, path: {events}}}]\n\
             dead_letter: {{type: file, path: {dead}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            plugins = plugins.display(),
            rules = out.join("rules.yaml").display(),
            alerts = out.join("alerts.jsonl").display(),
            events = out.join("events.jsonl").display(),
            dead = out.join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config).stdin(Stdio::piped());
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(120));
    assert!(running.log.iter().any(|l| l.contains(&format!("pipeline workers workers={workers}"))));
    let mut stdin = running.child.stdin.take().expect("stdin");
    stdin.write_all(&std::fs::read(input).expect("input")).expect("feed the pipeline");
    stdin.flush().expect("flush");

    // Every record is through when what the last step saw plus what was dropped or
    // dead-lettered before it adds up to the input; then the counters are final.
    let deadline = Instant::now() + Duration::from_secs(180);
    let body = loop {
        let body = http_get(addr, "/metrics").1;
        let through = |series: &str| metric(&body, series).unwrap_or(0.0);
        let done = through("synaptic_telemetry_step_events_total{outcome=\"in\",step=\"sample\"}")
            + through("synaptic_telemetry_dead_lettered_total{stage=\"decode\"}")
            + through("synaptic_telemetry_dead_lettered_total{stage=\"schema\"}")
            + through("synaptic_telemetry_dead_lettered_total{stage=\"step\"}")
            + through("synaptic_telemetry_step_events_total{outcome=\"dropped\",step=\"drop_5\"}")
            + through("synaptic_telemetry_step_events_total{outcome=\"dropped\",step=\"filter\"}");
        if done as u64 == EVENTS {
            break body;
        }
        assert!(Instant::now() < deadline, "{done} of {EVENTS} through after 180 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "summary: {summary}");

    Outcome {
        metrics: comparable_metrics(&body),
        alerts: alerts(&out.join("alerts.jsonl")),
        events: multiset(read_lines(&out.join("events.jsonl"))),
        dead: multiset(
            read_lines(&out.join("dead.jsonl"))
                .iter()
                .map(|l| {
                    let mut letter: Value = serde_json::from_str(l).expect("dead letter is JSON");
                    // When it was written differs from run to run.
                    letter.as_object_mut().map(|o| o.remove("time"));
                    letter.to_string()
                })
                .collect(),
        ),
        summary,
    }
}

/// Every series of the spec's families and the pipeline's event counters; not
/// timings, not the process's own gauges.
fn comparable_metrics(body: &str) -> BTreeMap<String, String> {
    let counted = [
        "synaptic_telemetry_events_total",
        "synaptic_telemetry_step_events_total",
        "synaptic_telemetry_dead_lettered_total",
        "synaptic_telemetry_plugin_events_total",
        "synaptic_telemetry_unrouted_events_total",
        "synaptic_telemetry_alerts_",
        "synaptic_telemetry_spans_total",
    ];
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("codex_synaptic_") || counted.iter().any(|c| l.starts_with(c)))
        .filter(|l| !l.contains("_seconds"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, value)| (series.to_string(), value.to_string())))
        .collect()
}

/// Alerts sent, by tier, status and labels (the alert's name among them). A
/// warning group's notification repeats the group's alerts whenever the group
/// changes, and when it does depends on the clock: for warnings, whether an alert
/// was sent counts; for critical alerts, how often.
fn alerts(path: &Path) -> BTreeMap<String, usize> {
    let mut sent = BTreeMap::new();
    for line in read_lines(path) {
        let notification: Value = serde_json::from_str(&line).expect("notification is JSON");
        let tier = notification["tier"].as_str().unwrap_or("?").to_string();
        for alert in notification["alerts"].as_array().expect("alerts") {
            let key = format!("{tier} {} {}", alert["status"], alert["labels"]);
            let count = sent.entry(key).or_insert(0);
            *count = if tier == "critical" { *count + 1 } else { 1 };
        }
    }
    sent
}

fn multiset(items: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

#[test]
fn four_workers_give_the_same_metrics_alerts_and_outputs_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    // Stamped from two minutes ago: the alert windows (on the wall clock) hold them all.
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64 - 120_000)
        .expect("clock after 1970");
    let status = command()
        .args(["generate", "--count", &EVENTS.to_string(), "--seed", "19", "--malformed-ratio", "0.01"])
        .args(["--start-ms", &start_ms.to_string(), "--out"])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success());

    let one = run(dir.path(), &input, 1);
    let four = run(dir.path(), &input, 4);

    // The comparisons mean something only if there is something to compare.
    for derived in [
        "codex_synaptic_agent_active",
        "codex_synaptic_consensus_proposals_pending",
        "codex_synaptic_mesh_nodes",
    ] {
        assert!(one.metrics.keys().any(|k| k.starts_with(derived)), "no {derived} on /metrics");
    }
    assert!(one.metrics.len() > 100, "{} series", one.metrics.len());
    assert!(one.alerts.len() >= 5, "alerts: {:?}", one.alerts);
    assert!(one.alerts.keys().any(|k| k.starts_with("warning")), "a warning was sent: {:?}", one.alerts);
    assert!(one.events.len() > 1000 && !one.dead.is_empty());

    let differing: Vec<_> = one
        .metrics
        .iter()
        .filter(|(k, v)| four.metrics.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {v} vs {:?}", four.metrics.get(k)))
        .chain(
            four.metrics
                .keys()
                .filter(|k| !one.metrics.contains_key(*k))
                .map(|k| format!("{k}: only with 4")),
        )
        .collect();
    assert!(differing.is_empty(), "metrics differ:\n{}", differing.join("\n"));
    assert_eq!(one.alerts, four.alerts, "alerts differ");
    assert!(
        one.events == four.events,
        "output events differ ({} vs {} distinct)",
        one.events.len(),
        four.events.len()
    );
    assert!(one.dead == four.dead, "dead letters differ ({} vs {})", one.dead.len(), four.dead.len());
    for key in ["read", "acknowledged", "dead_lettered", "dropped"] {
        assert_eq!(one.summary[key], four.summary[key], "summary {key}: {} vs {}", one.summary, four.summary);
    }
}

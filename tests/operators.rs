//! What operators use to see and try things: `replay` (a candidate plugin or
//! rule set against the current one on recorded events, on event time) and
//! `run` with the rules on event time. Every command run here is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{command, read_lines, write_config};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the binary with `args` from the repository root; killed after 180 s.
fn run_bounded(args: &[&str]) -> Output {
    let mut child = command()
        .args(args)
        .current_dir(ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `count` generated events (their event time starts 2026-01-01, long before
/// the test runs), 200 per second of event time, as the demo makes them.
fn recording(dir: &Path, count: u64) -> PathBuf {
    let path = dir.join("recorded.jsonl");
    let out = run_bounded(&[
        "generate",
        "--count",
        &count.to_string(),
        "--rate",
        "200",
        "--out",
        path.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "generate: {}", String::from_utf8_lossy(&out.stderr));
    path
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn replay_shows_a_candidate_plugins_changed_verdicts_and_metric_deltas_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 20_000);
    // The demo's filter keeps INFO and above; this candidate also drops WARN
    // events and tags the completed tasks it keeps.
    let candidate = dir.path().join("filter.rhai");
    std::fs::write(
        &candidate,
        r#"
fn process(event) {
    let rank = severity_rank(event.severity);
    if rank < 2 || event.severity == "WARN" { return (); }
    if event.event_type == "task.completed" { event.tags.reviewed = "yes"; }
    event
}
"#,
    )
    .expect("write candidate");
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        candidate.to_str().expect("utf-8"),
        "--show",
        "3",
    ]);
    let report = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "differences exit 1:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("replayed 20000 events"), "{report}");
    assert!(report.contains("candidate: step `filter` runs"), "{report}");
    let count_of = |needle: &str| -> u64 {
        let line = report
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{report}"));
        line.rsplit(": ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("count in {line}"))
    };
    // Exactly the WARN events the current filter keeps are dropped now.
    let events: Vec<serde_json::Value> =
        read_lines(&input).iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    let warn = events.iter().filter(|e| e["severity"] == "WARN" && e["event_type"] != "system.health").count()
        as u64;
    assert!(warn > 0);
    assert_eq!(count_of("step filter: kept → dropped"), warn, "{report}");
    assert!(count_of("step filter: kept → replaced") > 0, "{report}");
    assert!(report.contains("fields replaced differently: tags.reviewed"), "{report}");
    assert!(
        report.contains("step `filter`: kept → dropped") || report.contains("step `filter`: kept → replaced")
    );
    // Downstream, the sampler sees fewer events: its metrics move.
    assert!(report.contains("metrics (series that differ"), "{report}");
    assert!(report.lines().any(|l| l.contains("plugin=\"filter\"") && l.contains("→")), "{report}");
    // The alerts step runs before the filter in the demo: the same alerts fire.
    assert!(report.contains("the same alerts fire, as often"), "{report}");
}

#[test]
fn replay_of_an_unchanged_candidate_finds_nothing_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 5_000);
    let same = dir.path().join("filter.rhai");
    std::fs::copy(Path::new(ROOT).join("plugins/filter.rhai"), &same).expect("copy");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    for file in ["critical.yaml", "warning.yaml", "info.yaml"] {
        std::fs::copy(Path::new(ROOT).join("rules").join(file), rules.join(file)).expect("copy rules");
    }
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        same.to_str().expect("utf-8"),
        "--with",
        rules.to_str().expect("utf-8"),
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("no event treated differently by any step"), "{report}");
    assert!(report.contains("the same alerts fire, as often"), "{report}");
    assert!(report.trim_end().ends_with("0 difference(s)"), "{report}");
}

#[test]
fn replay_runs_rules_on_event_time_and_shows_alerts_that_would_stop_firing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Ten minutes of event time, recorded at the generator's fixed date.
    let input = recording(dir.path(), 120_000);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    for file in ["critical.yaml", "warning.yaml", "info.yaml"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("rules").join(file)).expect("read rules");
        // The candidate raises SecurityBreach's bar far above this traffic.
        let text = text.replace("count: { window: 5m, above: 0 }\n    annotations:\n      summary: \"{{ value }} {{ violation_type }}", "count: { window: 5m, above: 100000 }\n    annotations:\n      summary: \"{{ value }} {{ violation_type }}");
        std::fs::write(rules.join(file), text).expect("write rules");
    }
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        rules.to_str().expect("utf-8"),
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    // On event time the recorded violations fire SecurityBreach with the
    // current rules (on the wall clock they were all older than the window)...
    let breach: Vec<&str> = report.lines().filter(|l| l.contains("- SecurityBreach [critical]")).collect();
    assert!(!breach.is_empty(), "{report}");
    assert!(breach.iter().all(|l| l.ends_with("fired 1 → 0")), "{report}");
    // ...and the heartbeats are judged at their own time: no component is down.
    assert!(!report.contains("ComponentDown"), "{report}");
    assert!(report.contains("600 evaluations") || report.contains("599 evaluations"), "{report}");
}

#[test]
fn run_over_a_recording_with_clock_event_fires_what_the_data_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 60_000);
    let alerts = dir.path().join("alerts.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             pipeline:\n  - type: alerts\n    rules: {root}/rules\n    clock: event\n    reload: false\n    receivers:\n      - {{name: file, type: file, path: {alerts}}}\n\
             sinks:\n  - {{name: out, type: file, path: {out}}}\n\
             dead_letter: {{type: file, path: {dl}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            root = ROOT,
            alerts = alerts.display(),
            out = dir.path().join("out.jsonl").display(),
            dl = dir.path().join("dl.jsonl").display(),
        ),
    );
    let out = run_bounded(&["run", "--config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent: Vec<serde_json::Value> =
        read_lines(&alerts).iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    let names: Vec<&str> = sent
        .iter()
        .flat_map(|n| n["alerts"].as_array().into_iter().flatten())
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert!(names.contains(&"SecurityBreach"), "the recorded violations fire: {names:?}");
    assert!(!names.contains(&"ComponentDown"), "heartbeats judged on their own time: {names:?}");
}

//! `synaptic-telemetry test rules`: unit tests for alert rules, like
//! `promtool test rules`. A test file names rule files, gives timestamped input
//! events and the alerts expected to be firing at given times; the engine runs on
//! a simulated clock, evaluating every `evaluation_interval` and at each expected
//! time.
//!
//! ```yaml
//! rule_files: [../critical.yaml]      # relative to this file
//! evaluation_interval: 10s
//! tests:
//!   - name: a HIGH violation fires at once
//!     input:
//!       - at: 0s
//!         event: { event_type: security.violation, component: security, data: {...} }
//!         times: 3          # optional: the same event 3 times,
//!         every: 1s         # this far apart
//!     expect:
//!       - at: 10s
//!         alertname: SecurityBreach
//!         alerts:           # exactly these are firing (labels: a subset to match)
//!           - labels: { violation_type: UNAUTHORIZED_ACCESS }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::engine::{Alert, Engine};
use super::rule::{self, Rule};
use crate::decode::to_json;
use crate::decode::yaml::{Node, NodeKind};
use crate::decode::{parse_document, ConfigErrors};
use crate::decode::{Decode, Diagnostics, MapReader};
use crate::event::{Event, Position, SchemaMode};
use crate::files::read_document;

/// The simulated clock starts here (2026-01-01T00:00:00Z); `at` is added to it.
pub(crate) const START_MS: i64 = 1_767_225_600_000;
/// Groups per rule in tests.
const MAX_GROUPS: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct TestFile {
    pub(crate) path: PathBuf,
    pub(crate) rule_files: Vec<PathBuf>,
    pub(crate) evaluation_interval: Duration,
    pub(crate) tests: Vec<RuleTest>,
}

#[derive(Debug, Clone)]
pub(crate) struct RuleTest {
    pub name: String,
    /// Where the test is written (file:line), for reports.
    pub(crate) source: String,
    pub(crate) input: Vec<Input>,
    pub(crate) expect: Vec<Expect>,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub at: Duration,
    pub event: Value,
    pub times: u32,
    pub every: Duration,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub(crate) at: Duration,
    pub(crate) alertname: String,
    pub(crate) alerts: Vec<ExpectedAlert>,
    pub(crate) line: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ExpectedAlert {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
}

/// One test's outcome.
#[derive(Debug)]
pub struct Outcome {
    pub(crate) test: String,
    pub(crate) source: String,
    /// Empty when it passed.
    pub(crate) failures: Vec<String>,
}

impl TestFile {
    pub(crate) fn load(path: &Path) -> Result<TestFile, ConfigErrors> {
        let (text, name) = read_document(path, "the rule test file", false)?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        parse_document(&text, &name, |root, cx| decode_file(root, path, &base, cx))
    }
}

fn decode_file(root: &Node, path: &Path, base: &Path, cx: &mut Diagnostics) -> Option<TestFile> {
    let mut map = MapReader::new(root, "the rule test file", cx)?;
    let rule_files: Option<Vec<String>> = map.required("rule_files", cx);
    let evaluation_interval = map.or("evaluation_interval", Duration::from_secs(10), cx);
    if evaluation_interval < Duration::from_secs(1) {
        cx.error(map.key_pos("evaluation_interval"), "evaluation_interval must be at least 1s");
    }
    let tests = match map.node("tests") {
        Some(Node { kind: NodeKind::Seq(items), .. }) => {
            items.iter().enumerate().filter_map(|(i, n)| decode_test(n, i, cx)).collect()
        }
        Some(other) => {
            cx.error(other.pos, "tests must be a list");
            Vec::new()
        }
        None => {
            cx.error(map.pos(), "the rule test file needs `tests`");
            Vec::new()
        }
    };
    map.finish(cx);
    Some(TestFile {
        path: path.to_path_buf(),
        rule_files: rule_files?.into_iter().map(|f| base.join(f)).collect(),
        evaluation_interval,
        tests,
    })
}

fn decode_test(node: &Node, index: usize, cx: &mut Diagnostics) -> Option<RuleTest> {
    let what = format!("test {}", index + 1);
    let mut map = MapReader::new(node, &what, cx)?;
    let name: String = map.or("name", what.clone(), cx);
    let input = match map.node("input") {
        Some(Node { kind: NodeKind::Seq(items), .. }) => {
            items.iter().filter_map(|n| decode_input(n, cx)).collect()
        }
        Some(other) => {
            cx.error(other.pos, "input must be a list");
            Vec::new()
        }
        None => Vec::new(),
    };
    let expect = match map.node("expect") {
        Some(Node { kind: NodeKind::Seq(items), .. }) => {
            items.iter().filter_map(|n| decode_expect(n, cx)).collect()
        }
        _ => {
            cx.error(map.pos(), format!("{what} needs an `expect` list"));
            Vec::new()
        }
    };
    map.finish(cx);
    Some(RuleTest { name, source: format!("{}:{}", cx.file(), node.pos.line), input, expect })
}

/// The simulated time a test may span: a year and a month (enough for a daily
/// digest or a weekly baseline), so that no test runs for ever or overflows.
const MAX_TEST_SPAN: Duration = Duration::from_secs(400 * 24 * 3600);
/// Events one `input` entry may make (`times`).
const MAX_TIMES: u32 = 100_000;
/// Events one test's input may make in all.
const MAX_TEST_EVENTS: u64 = 1_000_000;
/// Evaluations one test may ask for (its span over `evaluation_interval`).
const MAX_EVALUATIONS: i64 = 10_000_000;

fn decode_input(node: &Node, cx: &mut Diagnostics) -> Option<Input> {
    let mut map = MapReader::new(node, "input", cx)?;
    let at = map.or("at", Duration::ZERO, cx);
    let times = map.or("times", 1u32, cx);
    let every = map.or("every", Duration::ZERO, cx);
    if times > MAX_TIMES {
        cx.error(map.key_pos("times"), format!("times must be at most {MAX_TIMES}"));
    }
    let last = every.checked_mul(times.saturating_sub(1)).and_then(|span| at.checked_add(span));
    if last.is_none_or(|last| last > MAX_TEST_SPAN) {
        cx.error(map.key_pos("at"), "at + every × (times - 1) must be within 400 days of the test's start");
    }
    let event = map.node("event").map(to_json);
    if event.as_ref().is_some_and(|e| !e.is_object()) {
        cx.error(map.key_pos("event"), "event must be a mapping");
    }
    if event.is_none() {
        cx.error(map.pos(), "input is missing required key `event`");
    }
    map.finish(cx);
    Some(Input { at, event: event?, times, every, line: node.pos.line })
}

fn decode_expect(node: &Node, cx: &mut Diagnostics) -> Option<Expect> {
    let mut map = MapReader::new(node, "expect", cx)?;
    let at: Option<Duration> = map.required("at", cx);
    if at.is_some_and(|at| at > MAX_TEST_SPAN) {
        cx.error(map.key_pos("at"), "at must be within 400 days of the test's start");
    }
    let alertname: Option<String> = map.required("alertname", cx);
    // `alerts: []` (or no `alerts`) expects nothing firing.
    let alerts = map.node("alerts").and_then(|n| Vec::<ExpectedAlert>::decode(n, cx)).unwrap_or_default();
    map.finish(cx);
    Some(Expect { at: at?, alertname: alertname?, alerts, line: node.pos.line })
}

/// Loads the rules a test file names.
fn load_rules(file: &TestFile) -> Result<Vec<Rule>, ConfigErrors> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for path in &file.rule_files {
        match rule::load(path) {
            Ok(mut r) => rules.append(&mut r),
            Err(ConfigErrors(mut e)) => errors.append(&mut e),
        }
    }
    match errors.is_empty() {
        true => Ok(rules),
        false => Err(ConfigErrors(errors)),
    }
}

/// Runs every test of a file; rule errors and bad input events are failures.
pub(crate) fn run_file(file: &TestFile) -> Result<Vec<Outcome>, ConfigErrors> {
    let rules = load_rules(file)?;
    let name = file.path.display().to_string();
    let mut outcomes = Vec::new();
    for test in &file.tests {
        let failures = match Engine::new(rules.clone(), MAX_GROUPS) {
            Ok(engine) => run_test(engine, test, file.evaluation_interval, &name),
            Err(e) => vec![e.to_string()],
        };
        outcomes.push(Outcome { test: test.name.clone(), source: test.source.clone(), failures });
    }
    Ok(outcomes)
}

/// The input as events at their simulated times, in time order.
fn events_of(test: &RuleTest, file: &str) -> Result<Vec<(i64, Event)>, String> {
    let total: u64 = test.input.iter().map(|i| u64::from(i.times.max(1))).sum();
    if total > MAX_TEST_EVENTS {
        return Err(format!("{}: the input makes {total} events; at most {MAX_TEST_EVENTS}", test.source));
    }
    let mut out = Vec::new();
    for input in &test.input {
        for i in 0..input.times.max(1) {
            let at_ms = (input.at + input.every * i).as_millis() as i64;
            let ts = START_MS + at_ms;
            let mut doc = input.event.clone();
            if let Value::Object(map) = &mut doc {
                map.entry("event_id")
                    .or_insert_with(|| Value::String(format!("test-{}-{i}-{}", input.line, out.len())));
                map.entry("timestamp").or_insert_with(|| Value::from(ts));
                map.entry("severity").or_insert_with(|| Value::String("INFO".into()));
                map.entry("component").or_insert_with(|| Value::String("test".into()));
                map.entry("tags").or_insert_with(|| Value::Object(Default::default()));
                map.entry("context").or_insert_with(|| Value::Object(Default::default()));
                map.entry("data").or_insert_with(|| Value::Object(Default::default()));
            }
            let raw = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            let position = Position::File { path: file.into(), line: input.line as u64 };
            let event = Event::decode(raw, position, SchemaMode::Strict)
                .map_err(|e| format!("{file}:{}: the input event is not valid: {e}", input.line))?;
            out.push((ts, event));
        }
    }
    out.sort_by_key(|(ts, _)| *ts);
    Ok(out)
}

fn run_test(mut engine: Engine, test: &RuleTest, interval: Duration, file: &str) -> Vec<String> {
    let events = match events_of(test, file) {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    let interval_ms = (interval.as_millis() as i64).max(1);
    let last_ms = test.expect.iter().map(|e| e.at.as_millis() as i64).max().unwrap_or(0);
    if last_ms / interval_ms > MAX_EVALUATIONS {
        return vec![format!(
            "{}: the test would evaluate the rules {} times (its last expectation over evaluation_interval); at most {MAX_EVALUATIONS}",
            test.source,
            last_ms / interval_ms
        )];
    }
    // Evaluate every interval and at each expected time.
    let mut times: Vec<i64> = (0..=last_ms / interval_ms).map(|i| i * interval_ms).collect();
    times.extend(test.expect.iter().map(|e| e.at.as_millis() as i64));
    times.sort_unstable();
    times.dedup();
    let mut failures = Vec::new();
    let mut next_event = 0;
    for t in times {
        let now = START_MS + t;
        let start = next_event;
        while next_event < events.len() && events[next_event].0 <= now {
            next_event += 1;
        }
        let batch: Vec<Event> = events[start..next_event].iter().map(|(_, e)| e.clone()).collect();
        engine.feed(&batch, now);
        let evaluation = engine.evaluate(now);
        for expect in test.expect.iter().filter(|e| e.at.as_millis() as i64 == t) {
            let firing: Vec<&Alert> =
                evaluation.firing.iter().filter(|a| a.rule == expect.alertname).collect();
            if let Some(problem) = compare(&firing, &expect.alerts) {
                failures.push(format!(
                    "{file}:{}: at {}, {}: {problem}",
                    expect.line,
                    humantime::format_duration(expect.at),
                    expect.alertname
                ));
            }
        }
    }
    failures
}

/// Each expected alert must match a distinct firing one (labels and annotations
/// given must be equal), and nothing else may fire.
fn compare(firing: &[&Alert], expected: &[ExpectedAlert]) -> Option<String> {
    let describe = |a: &Alert| {
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        let annotations: Vec<String> = a.annotations.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}} annotations {{{}}}", labels.join(", "), annotations.join(", "))
    };
    let mut unmatched: Vec<&Alert> = firing.to_vec();
    for want in expected {
        let found = unmatched.iter().position(|a| {
            want.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
                && want.annotations.iter().all(|(k, v)| a.annotations.get(k) == Some(v))
        });
        match found {
            Some(i) => {
                unmatched.remove(i);
            }
            None => {
                let got: Vec<String> = firing.iter().map(|a| describe(a)).collect();
                return Some(format!(
                    "expected an alert with labels {:?} annotations {:?}; firing: [{}]",
                    want.labels,
                    want.annotations,
                    got.join("; ")
                ));
            }
        }
    }
    if !unmatched.is_empty() {
        let extra: Vec<String> = unmatched.iter().map(|a| describe(a)).collect();
        return Some(format!("{} unexpected alert(s) firing: [{}]", extra.len(), extra.join("; ")));
    }
    None
}

/// Runs test files and writes a report; returns whether everything passed.
pub fn run_paths(paths: &[PathBuf], out: &mut impl std::io::Write) -> std::io::Result<bool> {
    let mut passed = 0usize;
    let mut failed = 0usize;
    let mut errors = 0usize;
    for path in paths {
        // Test files: the file, or a directory's `*.yaml`/`*.yml`, as for rules.
        let files = match rule::rule_files(path) {
            Ok(f) => f,
            Err(e) => {
                writeln!(out, "{e}")?;
                errors += 1;
                continue;
            }
        };
        for file in files {
            let outcomes = TestFile::load(&file).and_then(|f| run_file(&f));
            match outcomes {
                Err(ConfigErrors(list)) => {
                    for e in &list {
                        writeln!(out, "{e}")?;
                    }
                    errors += 1;
                }
                Ok(outcomes) => {
                    for o in outcomes {
                        if o.failures.is_empty() {
                            passed += 1;
                            writeln!(out, "PASS {} ({})", o.test, o.source)?;
                        } else {
                            failed += 1;
                            writeln!(out, "FAIL {} ({})", o.test, o.source)?;
                            for f in &o.failures {
                                writeln!(out, "  {f}")?;
                            }
                        }
                    }
                }
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed, {errors} file(s) with errors")?;
    Ok(failed == 0 && errors == 0)
}

impl Decode for ExpectedAlert {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let mut m = MapReader::new(node, "expected alert", cx)?;
        let labels = m.or("labels", BTreeMap::new(), cx);
        let annotations = m.or("annotations", BTreeMap::new(), cx);
        m.finish(cx);
        Some(ExpectedAlert { labels, annotations })
    }
}

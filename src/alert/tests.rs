//! Rule format, engine states, reload and the rule test runner.

use bytes::Bytes;

use super::engine::Engine;
use super::rule;
use super::testing;
use crate::event::{Event, Position, SchemaMode};

const START: i64 = testing::START_MS;

fn event(at_s: i64, json: &str) -> Event {
    let text = json.replace("TS", &(START + at_s * 1000).to_string());
    Event::decode(Bytes::from(text), Position::Generator { seq: 0 }, SchemaMode::Strict)
        .expect("valid test event")
}

fn health(at_s: i64, component: &str, cpu: f64) -> Event {
    event(
        at_s,
        &format!(
            r#"{{"event_id":"e{at_s}{component}","timestamp":TS,"component":"{component}","event_type":"system.health","severity":"INFO","tags":{{}},"context":{{}},"data":{{"cpu_percent":{cpu}}}}}"#
        ),
    )
}

const HOT_CPU: &str = r#"
rules:
  - name: HotCpu
    tier: critical
    match: { event_type: system.health }
    group_by: [component]
    condition:
      threshold: { field: data.cpu_percent, above: 90 }
    for: 30s
    keep_firing_for: 20s
    annotations:
      summary: "{{ component }} at {{ value }}%"
"#;

#[test]
fn a_broken_rule_file_reports_every_error_with_its_position() {
    let text = "\
rules:
  - name: Broken
    tier: urgent
    match: { event_type: task.completed, colour: red }
    condition:
      ratio: { window: 5m, above: 0.1 }
    annotations:
      summary: \"{{ nope }}\"
  - name: NoCondition
    tier: info
    match: {}
    group_by: [data.]
    lables: { a: b }
";
    let errors = rule::parse(text, "bad.yaml").expect_err("invalid");
    let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
    let expect = [
        "bad.yaml:3:11: expected one of critical, warning, info, got `urgent`",
        "bad.yaml:4:42: unknown key `colour` in match",
        "bad.yaml:6:14: ratio: `where` (the events counted as matching) belongs to ratio, and ratio needs it",
        "bad.yaml:8:16: unknown placeholder `nope`",
        "bad.yaml:9:5: rule 2 is missing required key `condition`",
        "bad.yaml:12:16: field `data.` needs a key after `data.`",
        "bad.yaml:13:5: unknown key `lables` in rule 2",
    ];
    for want in expect {
        assert!(lines.iter().any(|l| l.starts_with(want)), "missing {want:?} in {lines:#?}");
    }
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
}

#[test]
fn the_shipped_rules_load() {
    let rules = rule::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("rules/");
    for tier in ["critical", "warning", "info"] {
        assert!(rules.iter().any(|r| r.tier.as_str() == tier), "no {tier} rule");
    }
    assert!(rules.iter().all(|r| !r.description.is_empty()), "every rule says what it reads");
    Engine::check(&rules).expect("within the field limit");
}

#[test]
fn pending_for_and_keep_firing_for() {
    let mut engine = Engine::new(rule::parse(HOT_CPU, "t.yaml").expect("rules"), 100).expect("engine");
    engine.feed(&[health(0, "swarm", 95.0)], START);
    let e = engine.evaluate(START);
    assert!(e.firing.is_empty());
    assert_eq!(e.pending, 1, "pending first");
    assert!(engine.evaluate(START + 20_000).firing.is_empty(), "for: 30s not yet over");
    let e = engine.evaluate(START + 30_000);
    assert_eq!(e.firing.len(), 1);
    let alert = &e.firing[0];
    assert_eq!(alert.labels["alertname"], "HotCpu");
    assert_eq!(alert.labels["severity"], "critical");
    assert_eq!(alert.labels["component"], "swarm");
    assert_eq!(alert.annotations["summary"], "swarm at 95%");
    assert_eq!(alert.starts_at_ms, START + 30_000);
    // It cools down: still firing for keep_firing_for, then resolved.
    engine.feed(&[health(40, "swarm", 50.0)], START + 40_000);
    assert_eq!(engine.evaluate(START + 40_000).firing.len(), 1, "kept firing");
    let e = engine.evaluate(START + 60_000);
    assert!(e.firing.is_empty());
    assert_eq!(e.resolved.len(), 1);
    assert_eq!(e.resolved[0].ends_at_ms, Some(START + 60_000));
    assert_eq!(engine.group_count(), 1, "the latest value counts until stale_after");
    engine.evaluate(START + 40_000 + 300_000);
    assert_eq!(engine.group_count(), 0, "a stale group is forgotten");
}

#[test]
fn hysteresis_keeps_an_alert_firing_until_the_clear_level_and_the_resolution_carries_the_value() {
    let rules =
        HOT_CPU.replace("above: 90 }", "above: 90, clear_below: 80 }").replace("keep_firing_for: 20s", "");
    let mut engine = Engine::new(rule::parse(&rules, "t.yaml").expect("rules"), 100).expect("engine");
    engine.feed(&[health(0, "swarm", 97.0)], START);
    engine.evaluate(START);
    assert_eq!(engine.evaluate(START + 30_000).firing.len(), 1, "fires after for: 30s");
    // Under the threshold, over the clear level: still firing, showing the value.
    engine.feed(&[health(40, "swarm", 85.0)], START + 40_000);
    let e = engine.evaluate(START + 40_000);
    assert_eq!(e.firing.len(), 1, "hysteresis holds it");
    assert_eq!(e.firing[0].annotations["summary"], "swarm at 85%");
    // Under the clear level: resolved, and the notification says at what value.
    engine.feed(&[health(50, "swarm", 42.5)], START + 50_000);
    let e = engine.evaluate(START + 50_000);
    assert!(e.firing.is_empty());
    assert_eq!(e.resolved.len(), 1);
    assert_eq!(e.resolved[0].annotations["summary"], "swarm at 42.5%");
    // Not firing, the ordinary threshold applies again: 85 does not start it.
    engine.feed(&[health(60, "swarm", 85.0)], START + 60_000);
    assert_eq!(engine.evaluate(START + 60_000).pending, 0);
}

#[test]
fn a_resolution_after_the_value_went_stale_reports_the_last_value_seen() {
    let rules =
        HOT_CPU.replace("above: 90 }", "above: 90, stale_after: 1m }").replace("keep_firing_for: 20s", "");
    let mut engine = Engine::new(rule::parse(&rules, "t.yaml").expect("rules"), 100).expect("engine");
    engine.feed(&[health(0, "swarm", 99.0)], START);
    engine.evaluate(START);
    assert_eq!(engine.evaluate(START + 30_000).firing.len(), 1);
    let e = engine.evaluate(START + 61_000);
    assert_eq!(e.resolved.len(), 1, "the reading went stale");
    assert_eq!(e.resolved[0].annotations["summary"], "swarm at 99%");
}

#[test]
fn a_clear_level_on_the_wrong_side_is_an_error_with_its_place() {
    let rules = HOT_CPU.replace("above: 90 }", "above: 90, clear_below: 95 }");
    let errors = rule::parse(&rules, "t.yaml").expect_err("invalid");
    assert!(errors.to_string().contains("t.yaml:8:56:"), "{errors}");
    assert!(errors.to_string().contains("clear_below (95) must not be above `above` (90)"), "{errors}");
    let rules = HOT_CPU.replace("above: 90 }", "above: 90, clear_above: 95 }");
    let errors = rule::parse(&rules, "t.yaml").expect_err("invalid");
    assert!(errors.to_string().contains("takes `clear_below`"), "{errors}");
}

#[test]
fn a_pending_alert_that_clears_never_fires() {
    let mut engine = Engine::new(rule::parse(HOT_CPU, "t.yaml").expect("rules"), 100).expect("engine");
    engine.feed(&[health(0, "swarm", 95.0)], START);
    engine.evaluate(START);
    engine.feed(&[health(10, "swarm", 10.0)], START + 10_000);
    let e = engine.evaluate(START + 10_000);
    assert!(e.firing.is_empty() && e.resolved.is_empty());
    assert!(engine.evaluate(START + 60_000).firing.is_empty());
}

#[test]
fn reload_keeps_the_state_of_unchanged_rules_and_resolves_removed_ones() {
    let other = r#"
rules:
  - name: Busy
    tier: warning
    match: { event_type: system.health }
    condition:
      count: { window: 1m, above: 0 }
"#;
    let mut both = rule::parse(HOT_CPU, "a.yaml").expect("rules");
    both.extend(rule::parse(other, "b.yaml").expect("rules"));
    let mut engine = Engine::new(both, 100).expect("engine");
    engine.feed(&[health(0, "swarm", 95.0)], START);
    engine.evaluate(START);
    let e = engine.evaluate(START + 30_000);
    assert_eq!(e.firing.len(), 2);
    // Same HotCpu (at another place in a file), Busy gone.
    let moved = format!("\n\n{HOT_CPU}");
    let resolved =
        engine.replace_rules(rule::parse(&moved, "a.yaml").expect("rules"), START + 31_000).expect("swap");
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].rule, "Busy");
    let e = engine.evaluate(START + 32_000);
    assert_eq!(e.firing.len(), 1, "HotCpu kept its firing state");
    assert_eq!(e.firing[0].starts_at_ms, START + 30_000);
    // A changed HotCpu starts afresh (pending again).
    let changed = HOT_CPU.replace("above: 90", "above: 80");
    engine.replace_rules(rule::parse(&changed, "a.yaml").expect("rules"), START + 33_000).expect("swap");
    let e = engine.evaluate(START + 33_000);
    assert!(e.firing.is_empty(), "a changed rule has no old state");
}

#[test]
fn a_reload_compares_whole_definitions_and_ignores_place_and_description() {
    let firing_after_reload = |text: &str| {
        let mut engine = Engine::new(rule::parse(HOT_CPU, "a.yaml").expect("rules"), 100).expect("engine");
        engine.feed(&[health(0, "swarm", 95.0)], START);
        engine.evaluate(START);
        assert_eq!(engine.evaluate(START + 30_000).firing.len(), 1);
        engine.replace_rules(rule::parse(text, "b.yaml").expect("rules"), START + 31_000).expect("swap");
        engine.evaluate(START + 31_000).firing.len()
    };
    let described = HOT_CPU.replace("    for: 30s", "    description: CPU over 90%\n    for: 30s");
    assert_eq!(firing_after_reload(&format!("\n# moved\n{described}")), 1, "same definition elsewhere");
    for (what, from, to) in [
        ("keep_firing_for", "keep_firing_for: 20s", "keep_firing_for: 25s"),
        ("an annotation", "at {{ value }}%", "is at {{ value }}%"),
        ("group_by", "group_by: [component]", "group_by: [component, severity]"),
        ("the tier", "tier: critical", "tier: warning"),
    ] {
        assert_eq!(firing_after_reload(&HOT_CPU.replace(from, to)), 0, "{what} changed: a new rule");
    }
}

#[test]
fn sampled_events_count_with_their_weight() {
    let rules = r#"
rules:
  - name: Many
    tier: info
    match: { event_type: system.health }
    condition:
      count: { window: 1m, above: 15 }
"#;
    let mut engine = Engine::new(rule::parse(rules, "t.yaml").expect("rules"), 100).expect("engine");
    let sampled = event(
        0,
        r#"{"event_id":"s","timestamp":TS,"component":"c","event_type":"system.health","severity":"INFO","sample_rate":0.1,"tags":{},"context":{},"data":{}}"#,
    );
    engine.feed(&[sampled.clone(), sampled], START);
    let e = engine.evaluate(START);
    assert_eq!(e.firing.len(), 1, "two events kept at 10% stand for 20");
    assert_eq!(e.firing[0].value, 20.0);
}

#[test]
fn the_test_runner_reports_a_wrong_expectation() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hot.yaml"), HOT_CPU).expect("write");
    let test = r#"
rule_files: [hot.yaml]
evaluation_interval: 10s
tests:
  - name: right
    input:
      - { at: 0s, event: { event_type: system.health, component: swarm, data: { cpu_percent: 99 } } }
    expect:
      - { at: 20s, alertname: HotCpu, alerts: [] }
      - { at: 40s, alertname: HotCpu, alerts: [ { labels: { component: swarm } } ] }
  - name: wrong
    input:
      - { at: 0s, event: { event_type: system.health, component: swarm, data: { cpu_percent: 99 } } }
    expect:
      - { at: 20s, alertname: HotCpu, alerts: [ { labels: { component: swarm } } ] }
      - { at: 40s, alertname: HotCpu, alerts: [ { labels: { component: mesh } } ] }
"#;
    let path = dir.path().join("hot.test.yaml");
    std::fs::write(&path, test).expect("write");
    let file = testing::TestFile::load(&path).expect("test file");
    let outcomes = testing::run_file(&file).expect("runs");
    assert!(outcomes[0].failures.is_empty(), "{:?}", outcomes[0].failures);
    assert_eq!(outcomes[1].failures.len(), 2, "{:?}", outcomes[1].failures);
    assert!(outcomes[1].failures[0].contains("hot.test.yaml:15: at 20s, HotCpu: expected an alert"));
    assert!(
        outcomes[1].failures[1].contains(r#"firing: [{component="swarm"}"#),
        "{}",
        outcomes[1].failures[1]
    );
}

#[test]
fn the_shipped_rule_tests_pass_and_cover_every_rule() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = rule::load(&root.join("rules")).expect("rules/");
    let mut covered: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for path in rule::rule_files(&root.join("rules/tests")).expect("rules/tests") {
        let file = testing::TestFile::load(&path).expect("test file");
        for outcome in testing::run_file(&file).expect("runs") {
            assert!(outcome.failures.is_empty(), "{}: {:?}", outcome.test, outcome.failures);
        }
        for test in &file.tests {
            for expect in &test.expect {
                let entry = covered.entry(expect.alertname.clone()).or_default();
                match expect.alerts.is_empty() {
                    true => entry.1 += 1,
                    false => entry.0 += 1,
                }
            }
        }
    }
    for rule in &rules {
        let (firing, quiet) = covered.get(&rule.name).copied().unwrap_or_default();
        assert!(firing > 0 && quiet > 0, "{}: {firing} firing and {quiet} quiet expectations", rule.name);
    }
}

const DOWN: &str = r#"
rules:
  - name: Down
    tier: critical
    match: { event_type: system.health }
    group_by: [component]
    condition:
      absent: 2m
"#;

const DOWN_EXPECTED: &str = r#"
rules:
  - name: Down
    tier: critical
    match: { event_type: system.health }
    group_by: [component]
    condition:
      absent: { after: 2m, expect: [scheduler, consensus] }
"#;

fn firing_components(engine: &mut Engine, at_ms: i64) -> Vec<String> {
    let mut firing: Vec<String> =
        engine.evaluate(at_ms).firing.iter().map(|a| a.labels["component"].clone()).collect();
    firing.sort();
    firing
}

#[test]
fn made_up_groups_cannot_lock_a_real_one_out_of_an_absent_rule() {
    // Five spoofed components fill the table before the real one reports.
    let mut engine = Engine::new(rule::parse(DOWN, "t.yaml").expect("rules"), 5).expect("engine");
    let spoofed: Vec<Event> = (0..5).map(|i| health(0, &format!("spoof{i}"), 1.0)).collect();
    engine.feed(&spoofed, START);
    engine.feed(&[health(10, "scheduler", 1.0)], START + 10_000);
    assert_eq!(engine.group_count(), 5, "bounded");
    assert_eq!(engine.groups_refused, 0, "the real one took the place of the oldest quiet one");
    // The spoofed ones fire (they went silent); the scheduler then goes silent too.
    assert!(!firing_components(&mut engine, START + 125_000).contains(&"scheduler".to_string()));
    assert!(firing_components(&mut engine, START + 200_000).contains(&"scheduler".to_string()));
}

#[test]
fn an_absent_rule_with_expected_groups_watches_only_those_and_from_the_start() {
    let mut engine = Engine::new(rule::parse(DOWN_EXPECTED, "t.yaml").expect("rules"), 1000).expect("engine");
    assert!(firing_components(&mut engine, START).is_empty());
    let spoofed: Vec<Event> = (0..100).map(|i| health(1, &format!("spoof{i}"), 1.0)).collect();
    engine.feed(&spoofed, START + 1000);
    engine.feed(&[health(60, "consensus", 1.0)], START + 60_000);
    assert_eq!(engine.group_count(), 2, "spoofed components are not tracked");
    // The scheduler never reported: silent since the first evaluation.
    assert_eq!(firing_components(&mut engine, START + 121_000), ["scheduler"]);
    assert_eq!(firing_components(&mut engine, START + 181_000), ["consensus", "scheduler"]);
}

#[test]
fn expected_groups_must_name_the_group_labels() {
    let text = DOWN_EXPECTED.replace("[scheduler, consensus]", "[{component: a}, {comp: b}, [c]]");
    let errors = rule::parse(&text, "t.yaml").expect_err("bad expect");
    assert_eq!(errors.0.len(), 2, "{errors:?}");
    assert!(errors.0[0]
        .to_string()
        .contains("an expected group gives exactly the group_by labels (component)"));
}

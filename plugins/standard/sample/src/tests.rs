use serde_json::Value;
use synaptic_plugin_sdk::{testing, Verdict};

use super::Sample;

fn event(event_type: &str, severity: &str, id: &str, data: &str) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{id}","timestamp":1767225600000,"component":"c","event_type":"{event_type}","severity":"{severity}","tags":{{}},"data":{data}}}"#
    )
    .into_bytes()
}

fn rate_of(verdict: &Verdict) -> Option<f64> {
    match verdict {
        Verdict::Replace(bytes) => {
            let doc: Value = serde_json::from_slice(bytes).expect("a stamped event is JSON");
            doc["sample_rate"].as_f64()
        }
        _ => None,
    }
}

fn kept_share(config: &str, make: impl Fn(usize) -> Vec<u8>, n: usize) -> f64 {
    let events: Vec<Vec<u8>> = (0..n).map(make).collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let verdicts = testing::run::<Sample>(config, &refs).expect("runs");
    verdicts.iter().filter(|v| **v != Verdict::Drop).count() as f64 / n as f64
}

#[test]
fn full_rate_types_are_kept_and_stamped_with_one() {
    let events = [
        event("agent.lifecycle", "INFO", "e1", "{}"),
        event("security.violation", "WARN", "e2", "{}"),
        event("consensus.vote", "INFO", "e3", "{}"),
        event("mesh.topology.change", "INFO", "e4", "{}"),
        event("system.health", "DEBUG", "e5", "{}"),
    ];
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let verdicts = testing::run::<Sample>("", &refs).expect("runs");
    for verdict in &verdicts {
        assert_eq!(rate_of(verdict), Some(1.0), "{verdict:?}");
    }
}

#[test]
fn bridge_swarm_and_task_rates_follow_the_spec() {
    let bridge = kept_share("", |i| event("bridge.message", "INFO", &format!("m-{i}"), "{}"), 200_000);
    assert!((0.0007..0.0013).contains(&bridge), "bridge kept {bridge}");
    let swarm = kept_share(
        "",
        |i| {
            event(
                "swarm.iteration",
                "DEBUG",
                &format!("s-{i}"),
                &format!(r#"{{"swarm_id":"s{}","iteration":{i}}}"#, i % 7),
            )
        },
        100_000,
    );
    assert!((0.008..0.012).contains(&swarm), "swarm kept {swarm}");
    let tasks = kept_share(
        "",
        |i| {
            event(
                "task.completed",
                "INFO",
                &format!("t-{i}"),
                &format!(r#"{{"task_id":"task-{i}","success":true}}"#),
            )
        },
        50_000,
    );
    assert!((0.09..0.11).contains(&tasks), "task successes kept {tasks}");
    let failures = kept_share(
        "",
        |i| {
            event(
                "task.completed",
                "WARN",
                &format!("t-{i}"),
                &format!(r#"{{"task_id":"task-{i}","success":false}}"#),
            )
        },
        1_000,
    );
    assert_eq!(failures, 1.0, "every failed task is kept");
}

#[test]
fn errors_are_always_kept_and_the_key_decides() {
    let errors = kept_share("", |i| event("bridge.message", "ERROR", &format!("m-{i}"), "{}"), 1_000);
    assert_eq!(errors, 1.0);
    // Same task_id, different events: one decision for the whole task.
    let events: Vec<Vec<u8>> = (0..200)
        .flat_map(|i| {
            let data = format!(r#"{{"task_id":"task-{i}","success":true}}"#);
            [
                event("task.assigned", "INFO", &format!("a-{i}"), &data),
                event("task.completed", "INFO", &format!("c-{i}"), &data),
            ]
        })
        .collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let verdicts = testing::run::<Sample>("", &refs).expect("runs");
    for pair in verdicts.chunks(2) {
        assert_eq!(pair[0] == Verdict::Drop, pair[1] == Verdict::Drop, "a task's events go together");
    }
    assert_eq!(verdicts, testing::run::<Sample>("", &refs).expect("runs"), "deterministic");
}

#[test]
fn overrides_rules_and_carried_rates() {
    let all = kept_share(
        r#"{"rates":{"bridge.*":1}}"#,
        |i| event("bridge.message", "INFO", &format!("m-{i}"), "{}"),
        500,
    );
    assert_eq!(all, 1.0);
    let half = kept_share(
        r#"{"rules":[{"event_type":"*","rate":0.5}],"always_keep":"none"}"#,
        |i| event("agent.lifecycle", "FATAL", &format!("a-{i}"), "{}"),
        20_000,
    );
    assert!((0.48..0.52).contains(&half), "{half}");
    let carried =
        br#"{"sample_rate":0.5,"event_id":"x","event_type":"agent.lifecycle","severity":"INFO","data":{}}"#;
    let verdicts = testing::run::<Sample>("", &[carried]).expect("runs");
    assert_eq!(rate_of(&verdicts[0]), Some(0.5), "1 × the carried 0.5");
}

#[test]
fn bad_config_is_named() {
    for (config, needle) in [
        (r#"{"rates":{"bridge.message":2}}"#, "config.rates.bridge.message"),
        (r#"{"rules":[{"rate":0.1}]}"#, "config.rules[0].event_type"),
        (r#"{"always_keep":"LOUD"}"#, "config.always_keep"),
        (r#"{"sampling":1}"#, "config.sampling: unknown key"),
    ] {
        let err = testing::run::<Sample>(config, &[]).err().unwrap_or_default();
        assert!(err.contains(needle), "{config}: {err}");
    }
}

//! The alert engine end to end: `synaptic-telemetry run` with an `alerts` step,
//! events on stdin, a real Alertmanager (Debian's prometheus-alertmanager on a
//! loopback port) and a webhook receiver built here. Every wait is bounded.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    active_alerts, alertmanager, alertmanager_on, command, free_port, http_get, metric, wait_for,
    write_config, Running,
};
use serde_json::{json, Value};

use common::{PROBE_ALERTMANAGER as ALERTMANAGER, PROBE_RULES as RULES};

fn probe(component: &str, down: u8, latency_ms: u32) -> Value {
    json!({
        "event_id": format!("{component}-{down}-{latency_ms}-{}", synaptic_telemetry::clock::now_ms()),
        "timestamp": synaptic_telemetry::clock::now_ms(),
        "component": component,
        "event_type": "test.probe",
        "severity": "INFO",
        "tags": {}, "context": {},
        "data": { "down": down, "latency_ms": latency_ms },
    })
}

fn send(stdin: &mut ChildStdin, events: &[Value]) {
    for e in events {
        let mut line = serde_json::to_vec(e).expect("json");
        line.push(b'\n');
        stdin.write_all(&line).expect("feed the pipeline");
    }
    stdin.flush().expect("flush");
}

/// A pipeline reading stdin with an alerts step over `rules_dir`.
fn pipeline(dir: &Path, rules_dir: &Path, receivers: &str) -> (Running, ChildStdin, SocketAddr) {
    let config = write_config(
        dir,
        &format!(
            "source: {{type: file, path: \"-\"}}\n\
             batch: {{max_events: 16, linger: 20ms}}\n\
             pipeline:\n\
             \x20 - type: alerts\n\
             \x20   rules: {rules}\n\
             \x20   evaluation_interval: 200ms\n\
             \x20   warning: {{group_wait: 1s, group_interval: 2s}}\n\
             \x20   receivers:\n{receivers}\
             sinks:\n  - {{name: out, type: file, path: {out}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            rules = rules_dir.display(),
            out = dir.join("out.jsonl").display(),
            dead = dir.join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config).stdin(Stdio::piped());
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let stdin = running.child.stdin.take().expect("stdin");
    (running, stdin, addr)
}

fn rules_dir(dir: &Path, text: &str) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("rules.yaml"), text).expect("rules");
    rules
}

fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["labels"]["alertname"] == name).collect()
}

/// A webhook receiver on `port`: every JSON body posted is kept.
fn webhook(port: u16) -> (tokio::runtime::Runtime, Arc<Mutex<Vec<Value>>>) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("webhook port");
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let value: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
                    store.lock().expect("lock").push(value);
                    "ok"
                }
            }),
        );
        let _ = axum::serve(listener, app).await;
    });
    (runtime, received)
}

#[test]
fn alerts_fire_inhibit_group_and_resolve_at_a_real_alertmanager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am) = alertmanager(dir.path(), ALERTMANAGER);
    let rules = rules_dir(dir.path(), RULES);
    // The webhook is down at first: its notifications wait in the outbox.
    let hook_port = free_port();
    let receivers = format!(
        "\x20     - {{name: am, type: alertmanager, url: \"http://{am}\"}}\n\
         \x20     - {{name: hook, type: webhook, url: \"http://127.0.0.1:{hook_port}/hook\"}}\n"
    );
    let (running, mut stdin, metrics_addr) = pipeline(dir.path(), &rules, &receivers);

    // consensus is down (critical) and slow (a warning the critical inhibits);
    // swarm and mesh are slow: two warnings, sent together.
    send(&mut stdin, &[probe("consensus", 1, 500), probe("swarm", 0, 500), probe("mesh", 0, 300)]);
    let alerts = wait_for("three alerts at Alertmanager", || active_alerts(am).filter(|a| a.len() >= 3));
    let down = named(&alerts, "ComponentDown");
    assert_eq!(down.len(), 1, "{alerts:#?}");
    assert_eq!(down[0]["labels"]["component"], "consensus");
    assert_eq!(down[0]["labels"]["severity"], "critical");
    assert_eq!(down[0]["annotations"]["summary"], "consensus is down");
    let mut slow: Vec<String> = named(&alerts, "Slow")
        .iter()
        .map(|a| a["labels"]["component"].as_str().unwrap_or("").to_string())
        .collect();
    slow.sort();
    assert_eq!(slow, ["mesh", "swarm"], "the consensus warning is inhibited: {alerts:#?}");
    assert_eq!(named(&alerts, "Slow")[0]["labels"]["severity"], "warning");

    // Alertmanager groups by alertname: the two warnings form one group.
    let (status, body) = http_get(am, "/api/v2/alerts/groups");
    assert_eq!(status, 200);
    let groups: Vec<Value> = serde_json::from_str(&body).expect("groups");
    let slow_group = groups.iter().find(|g| g["labels"]["alertname"] == "Slow").expect("a Slow group");
    assert_eq!(slow_group["alerts"].as_array().map(Vec::len), Some(2), "{groups:#?}");

    let (_, body) = http_get(metrics_addr, "/metrics");
    assert_eq!(metric(&body, "synaptic_telemetry_alerts_inhibited_total"), Some(1.0));
    assert_eq!(metric(&body, "synaptic_telemetry_alerts_firing{tier=\"warning\"}"), Some(3.0));

    // The webhook is still down: its deliveries failed and are being retried.
    wait_for("the webhook receiver retries", || {
        let (_, body) = http_get(metrics_addr, "/metrics");
        metric(&body, "synaptic_telemetry_alert_notifications_total{outcome=\"retried\",receiver=\"hook\"}")
            .filter(|n| *n >= 1.0)
    });
    // The webhook comes up: what waited is delivered, the warnings as one notification.
    let (_hook_runtime, received) = webhook(hook_port);
    let notes = wait_for("both notifications reach the webhook", || {
        let got = received.lock().expect("lock").clone();
        (got.len() >= 2).then_some(got)
    });
    let critical = notes.iter().find(|n| n["tier"] == "critical").expect("a critical notification");
    assert_eq!(critical["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(critical["alerts"][0]["labels"]["alertname"], "ComponentDown");
    assert_eq!(critical["status"], "firing");
    let warning = notes.iter().find(|n| n["tier"] == "warning").expect("a warning notification");
    assert_eq!(warning["alerts"].as_array().map(Vec::len), Some(2), "grouped: {warning:#}");

    // consensus is back up: the critical resolves, and its warning is no longer muted.
    send(&mut stdin, &[probe("consensus", 0, 500)]);
    let alerts = wait_for("ComponentDown resolved, Slow{consensus} sent", || {
        active_alerts(am).filter(|a| {
            named(a, "ComponentDown").is_empty()
                && named(a, "Slow").iter().any(|s| s["labels"]["component"] == "consensus")
        })
    });
    assert_eq!(named(&alerts, "Slow").len(), 3, "{alerts:#?}");
    let resolved = wait_for("the webhook hears of the resolution", || {
        let got = received.lock().expect("lock").clone();
        got.into_iter().find(|n| n["tier"] == "critical" && n["status"] == "resolved")
    });
    assert!(resolved["alerts"][0]["endsAt"].is_string());

    drop(stdin);
    let (code, summary) = running.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "summary {summary}");
}

#[test]
fn an_alertmanager_outage_loses_no_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_dir(dir.path(), RULES);
    let port = free_port();
    let receivers =
        format!("\x20     - {{name: am, type: alertmanager, url: \"http://127.0.0.1:{port}\"}}\n");
    let (running, mut stdin, metrics_addr) = pipeline(dir.path(), &rules, &receivers);
    let retried = |n: f64| {
        let (_, body) = http_get(metrics_addr, "/metrics");
        metric(&body, "synaptic_telemetry_alert_notifications_total{outcome=\"retried\",receiver=\"am\"}")
            .filter(|r| *r >= n)
    };
    // Alertmanager is down: consensus and swarm go down, then consensus recovers.
    send(&mut stdin, &[probe("consensus", 1, 10), probe("swarm", 1, 10)]);
    wait_for("the first delivery fails", || retried(1.0));
    send(&mut stdin, &[probe("consensus", 0, 10)]);
    wait_for("consensus resolved while Alertmanager is down", || {
        let (_, body) = http_get(metrics_addr, "/metrics");
        metric(&body, "synaptic_telemetry_alerts_firing{tier=\"critical\"}").filter(|n| *n == 1.0)
    });
    wait_for("still retrying", || retried(2.0));

    // Alertmanager comes up: the latest state of each alert arrives.
    let (_am, am) = alertmanager_on(dir.path(), ALERTMANAGER, port);
    let alerts = wait_for("ComponentDown{swarm} at Alertmanager", || {
        active_alerts(am).filter(|a| !named(a, "ComponentDown").is_empty())
    });
    let down = named(&alerts, "ComponentDown");
    assert_eq!(down.len(), 1, "consensus recovered during the outage: {alerts:#?}");
    assert_eq!(down[0]["labels"]["component"], "swarm");

    drop(stdin);
    let (code, _) = running.finish(Duration::from_secs(30));
    assert_eq!(code, 0);
}

/// A receiver with a disk outbox: a critical alert queued while Alertmanager is
/// unreachable survives a crash of the process and is delivered by the next run,
/// which sees no event at all.
#[test]
fn a_critical_alert_queued_while_alertmanager_is_down_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_dir(dir.path(), RULES);
    let port = free_port();
    let receivers = format!(
        "\x20     - {{name: am, type: alertmanager, url: \"http://127.0.0.1:{port}\",\n\
         \x20        buffer: {{type: disk, path: {outbox}}},\n\
         \x20        circuit_breaker: {{failures: 2, cool_down: 200ms, max_cool_down: 1s}}}}\n",
        outbox = dir.path().join("outbox").display()
    );
    let (running, mut stdin, metrics_addr) = pipeline(dir.path(), &rules, &receivers);
    send(&mut stdin, &[probe("consensus", 1, 10)]);
    wait_for("two deliveries fail: the circuit opens", || {
        let (_, body) = http_get(metrics_addr, "/metrics");
        metric(&body, "synaptic_telemetry_alert_notifications_total{outcome=\"retried\",receiver=\"am\"}")
            .filter(|r| *r >= 2.0)
    });
    let (status, ready) = http_get(metrics_addr, "/ready");
    assert_eq!(status, 200, "a receiver's outage does not make the pipeline unready");
    assert!(ready.contains("degraded: alert receiver am (circuit open"), "{ready}");
    running.child_kill();
    drop(stdin);

    let (_am, am) = alertmanager_on(dir.path(), ALERTMANAGER, port);
    let (running, stdin, _) = pipeline(dir.path(), &rules, &receivers);
    let alerts = wait_for("ComponentDown{consensus} at Alertmanager after the restart", || {
        active_alerts(am).filter(|a| !named(a, "ComponentDown").is_empty())
    });
    let down = named(&alerts, "ComponentDown");
    assert_eq!(down.len(), 1, "{alerts:#?}");
    assert_eq!(down[0]["labels"]["component"], "consensus");
    assert_eq!(down[0]["labels"]["severity"], "critical");
    drop(stdin);
    let (code, _) = running.finish(Duration::from_secs(30));
    assert_eq!(code, 0);
}

#[test]
fn two_instances_firing_the_same_alert_make_one_alert_at_alertmanager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am) = alertmanager(dir.path(), ALERTMANAGER);
    let receivers = format!("\x20     - {{name: am, type: alertmanager, url: \"http://{am}\"}}\n");
    let mut instances = Vec::new();
    for i in 0..2 {
        let own = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir_all(&own).expect("dir");
        let rules = rules_dir(&own, RULES);
        let (running, mut stdin, addr) = pipeline(&own, &rules, &receivers);
        // Each instance owns different partitions, but both see consensus go down.
        send(&mut stdin, &[probe("consensus", 1, 10)]);
        instances.push((running, stdin, addr));
    }
    for (_, _, addr) in &instances {
        wait_for("each instance has posted the alert", || {
            let (_, body) = http_get(*addr, "/metrics");
            metric(&body, "synaptic_telemetry_alert_notifications_total{outcome=\"sent\",receiver=\"am\"}")
                .filter(|n| *n >= 1.0)
        });
    }
    let alerts = active_alerts(am).expect("alerts");
    let down = named(&alerts, "ComponentDown");
    assert_eq!(down.len(), 1, "Alertmanager deduplicates identical label sets: {alerts:#?}");
    assert_eq!(down[0]["labels"]["component"], "consensus");
    for (running, stdin, _) in instances {
        drop(stdin);
        let (code, _) = running.finish(Duration::from_secs(30));
        assert_eq!(code, 0);
    }
}

#[test]
fn a_broken_rule_file_is_rejected_and_the_old_rules_keep_firing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_dir(dir.path(), RULES);
    let alerts_file = dir.path().join("alerts.jsonl");
    let receivers = format!("\x20     - {{name: file, type: file, path: {}}}\n", alerts_file.display());
    let (mut running, mut stdin, _) = pipeline(dir.path(), &rules, &receivers);
    let fired = |name: &str, component: &str| {
        let text = std::fs::read_to_string(&alerts_file).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|n| {
            n["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| a["labels"]["alertname"] == name && a["labels"]["component"] == component)
            })
        })
    };
    send(&mut stdin, &[probe("consensus", 1, 10)]);
    wait_for("ComponentDown{consensus}", || fired("ComponentDown", "consensus").then_some(()));

    // A broken edit: an unknown key and a bad tier.
    let broken = RULES.replace("    tier: warning\n", "    tier: urgent\n    colour: red\n");
    std::fs::write(rules.join("rules.yaml"), broken).expect("write");
    let line = running.wait_for_line("rules.yaml:13:11", Duration::from_secs(30));
    assert!(line.contains("expected one of critical, warning, info, got `urgent`"), "{line}");
    running.wait_for_line("rules.yaml:14:5: unknown key `colour`", Duration::from_secs(10));
    running.wait_for_line("alert rules rejected", Duration::from_secs(10));

    // The rules in service still fire for new groups.
    send(&mut stdin, &[probe("swarm", 1, 10)]);
    wait_for("ComponentDown{swarm} under the old rules", || fired("ComponentDown", "swarm").then_some(()));

    // A valid edit is applied: Slow becomes critical (sent at once, no grouping).
    let fixed = RULES.replace("    tier: warning\n", "    tier: critical\n");
    std::fs::write(rules.join("rules.yaml"), fixed).expect("write");
    running.wait_for_line("alert rules reloaded", Duration::from_secs(30));
    send(&mut stdin, &[probe("mesh", 0, 900)]);
    wait_for("Slow{mesh} under the new rules", || fired("Slow", "mesh").then_some(()));
    let text = std::fs::read_to_string(&alerts_file).expect("alerts file");
    let slow = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|n| n["alerts"][0]["labels"]["alertname"] == "Slow")
        .expect("Slow notification");
    assert_eq!(slow["tier"], "critical");

    drop(stdin);
    let (code, _) = running.finish(Duration::from_secs(30));
    assert_eq!(code, 0);
}

/// An hour of the demo's traffic (200 events/s from the generator, event time
/// starting at its fixed date) through a rule set on event time, evaluated every
/// second as the demo does.
fn an_hour_through(rules: &Path) -> synaptic_telemetry::alert::simulate::SimulationReport {
    use synaptic_telemetry::alert::notify::Policy;
    use synaptic_telemetry::alert::simulate::Simulation;
    use synaptic_telemetry::event::{Event, Position, SchemaMode};
    use synaptic_telemetry::source::traffic::Traffic;
    use synaptic_telemetry::source::GeneratorConfig;

    const RATE: f64 = 200.0;
    let config = GeneratorConfig {
        rate: RATE,
        total: 0,
        seed: 42,
        malformed_ratio: 0.0,
        start_ms: Some(1_767_225_600_000),
    };
    let mut traffic = Traffic::new(&config, 0);
    let rules = synaptic_telemetry::alert::engine::load_checked(rules).expect("the rules load");
    let mut simulation =
        Simulation::new(rules, Policy::default(), Duration::from_secs(1)).expect("the rules build");
    let mut batch = Vec::with_capacity(500);
    for seq in 0..(RATE as u64 * 3600) {
        let line = bytes::Bytes::from(traffic.next_event());
        if let Ok(event) = Event::decode(line, Position::Generator { seq }, SchemaMode::Strict) {
            batch.push(event);
        }
        if batch.len() == 500 {
            simulation.feed(&batch);
            batch.clear();
        }
    }
    simulation.feed(&batch);
    simulation.finish()
}

/// The shipped rule pack over an hour of the demo's traffic: a page means an
/// incident, so no critical alert flaps and the notifications per tier stay
/// within what the tiers' timing allows.
#[test]
fn an_hour_of_demo_traffic_makes_a_bounded_number_of_notifications_per_tier() {
    use synaptic_telemetry::alert::rule::Tier;
    let report = an_hour_through(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    let count = |tier| report.notifications.get(&tier).copied().unwrap_or(0);
    eprintln!(
        "an hour of demo traffic: {} evaluations over {} s of event time; notifications: {} critical, {} warning, {} info",
        report.evaluations,
        report.span_ms / 1000,
        count(Tier::Critical),
        count(Tier::Warning),
        count(Tier::Info)
    );
    for (key, history) in &report.alerts {
        eprintln!(
            "  {key}: fired {} resolved {} firing at end {}",
            history.fired, history.resolved, history.firing_at_end
        );
    }
    assert!(report.span_ms >= 3_599_000, "the traffic covers an hour of event time: {} ms", report.span_ms);
    assert!(report.evaluations >= 3_599, "evaluated every second: {}", report.evaluations);
    // The traffic holds real incidents (HIGH and CRITICAL security violations),
    // so the pack must page: a bound met by silence would prove nothing.
    assert!(
        report.alerts.keys().any(|k| k.rule == "SecurityBreach"),
        "the generated security violations fire SecurityBreach"
    );
    // No alert of any tier flaps (an info alert firing and resolving every few
    // seconds fills the digest with noise as surely as a page does).
    for (key, history) in &report.alerts {
        assert!(history.fired <= 2, "{key} fired {} times in an hour: it flaps", history.fired);
    }
    // Each critical alert: one notification when it fires, one when it resolves
    // (repeats come every 4 hours).
    let criticals = report.alerts.keys().filter(|k| k.tier == Tier::Critical).count() as u64;
    assert!(
        count(Tier::Critical) <= 2 * criticals.min(15),
        "{} critical notifications for {criticals} critical alerts",
        count(Tier::Critical)
    );
    // Warnings go grouped, at most once per group_interval (5 minutes).
    assert!(count(Tier::Warning) <= 13, "{} warning notifications in an hour", count(Tier::Warning));
    // Info alerts go into the daily digest: one, flushed at the end.
    assert!(count(Tier::Info) <= 1, "{} info notifications in an hour", count(Tier::Info));
    // A resolved notification says what the value was, never "n/a".
    for notification in &report.sent {
        for alert in notification.alerts() {
            for text in alert.annotations.values() {
                assert!(!text.contains("n/a"), "{}: annotation without a value: {text}", alert.rule);
            }
        }
    }
}

//! The Alertmanager receiver against a real Alertmanager (Debian's
//! prometheus-alertmanager, started here on loopback ports): an alert posted is
//! listed as active, the same alert posted by a second client stays one alert, and
//! posting it with `endsAt` in the past resolves it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{active_alerts, alertmanager, wait_for};
use synaptic_telemetry::alert::alertmanager::{Alert, AlertmanagerClient};
use synaptic_telemetry::tls::HttpEndpoint;

#[test]
fn alerts_fire_deduplicate_and_resolve_at_a_real_alertmanager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_alertmanager, addr) = alertmanager(
        dir.path(),
        "route: {receiver: none, group_wait: 1s, group_interval: 1s}\nreceivers: [{name: none}]\n",
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = format!("http://{addr}");
    let endpoint = HttpEndpoint::new(&base, Duration::from_secs(5));
    let first = AlertmanagerClient::new(&endpoint).expect("client");
    let second = AlertmanagerClient::new(&endpoint).expect("client");
    let labels: BTreeMap<String, String> =
        [("alertname", "SecurityBreach"), ("severity", "critical"), ("component", "agent")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let annotations =
        BTreeMap::from([("summary".to_string(), "unblocked HIGH violation by agent-007".to_string())]);
    let started = SystemTime::now() - Duration::from_secs(5);
    let firing = Alert { labels: labels.clone(), annotations, starts_at: started, ends_at: None };

    // Two instances post the same alert: Alertmanager holds one.
    runtime.block_on(first.post(std::slice::from_ref(&firing))).expect("post");
    runtime.block_on(second.post(std::slice::from_ref(&firing))).expect("post");
    let alerts = wait_for("the alert is listed", || active_alerts(addr).filter(|a| !a.is_empty()));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    for (key, value) in &labels {
        assert_eq!(alerts[0]["labels"][key], serde_json::json!(value), "{alerts:#?}");
    }
    assert_eq!(alerts[0]["annotations"]["summary"], "unblocked HIGH violation by agent-007");
    assert_eq!(alerts[0]["status"]["state"], "active");

    // Resolved: the same labels with an end in the past.
    let resolved = Alert { ends_at: Some(SystemTime::now() - Duration::from_secs(1)), ..firing };
    runtime.block_on(first.post(&[resolved])).expect("post");
    wait_for("the alert is resolved", || active_alerts(addr).filter(|a| a.is_empty()));

    // A bad request is an error naming the status, not a silent success.
    let broken =
        Alert { labels: BTreeMap::new(), annotations: BTreeMap::new(), starts_at: started, ends_at: None };
    let error = runtime.block_on(first.post(&[broken])).expect_err("an alert without labels is refused");
    assert!(error.to_string().contains("HTTP 400"), "{error}");
}

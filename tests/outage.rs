//! An output's outage holds back only that output. A Kafka source (librdkafka's
//! mock cluster) feeds a file sink, a Kafka sink and an InfluxDB sink with a disk
//! buffer, and an alerts step posting to a real Alertmanager. InfluxDB is stopped
//! for 60 s in the middle of the stream: the file and Kafka sinks keep receiving,
//! /metrics keeps counting, a critical alert fired during the outage reaches
//! Alertmanager during the outage, and once InfluxDB is back it holds every
//! point. Nothing is lost anywhere.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka;
use common::{
    active_alerts, alertmanager, command, free_port, http_get, influx_points, influxdb_on, metric,
    read_lines, wait_for, write_config, Running, PROBE_ALERTMANAGER, PROBE_RULES,
};
use serde_json::{json, Value};
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;

const OUTAGE: Duration = Duration::from_secs(60);

/// `count` generated events starting at `start_ms` (1 ms apart, so no two points
/// of a series share a timestamp).
fn traffic(count: usize, seed: u64, start_ms: i64) -> Vec<Vec<u8>> {
    let config =
        GeneratorConfig { rate: 1000.0, total: 0, seed, malformed_ratio: 0.0, start_ms: Some(start_ms) };
    let mut t = Traffic::new(&config, 0);
    (0..count).map(|_| t.next_event()).collect()
}

fn per_type(events: &[Vec<u8>]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in events {
        let event: Value = serde_json::from_slice(line).expect("JSON");
        // The pipeline writes the canonical name of an alias.
        let event_type = match event["event_type"].as_str().expect("type") {
            "mesh.topology_change" => "mesh.topology.change",
            other => other,
        };
        *counts.entry(event_type.to_string()).or_insert(0) += 1;
    }
    counts
}

fn metric_at(addr: std::net::SocketAddr, series: &str) -> f64 {
    metric(&http_get(addr, "/metrics").1, series).unwrap_or(0.0)
}

#[test]
fn an_influxdb_outage_holds_back_only_the_influxdb_sink_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let influx_ports = (free_port(), free_port());
    let (influx_service, influx) = influxdb_on(dir.path(), influx_ports);
    let (_am, am) = alertmanager(dir.path(), PROBE_ALERTMANAGER);
    let broker = kafka::mock_cluster(&[("in", 3), ("out", 3)]);
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("rules.yaml"), PROBE_RULES).expect("rules");
    let archive = dir.path().join("archive.jsonl");
    let bootstrap = &broker.bootstrap;
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: g-outage, commit_interval: 200ms}}\n\
             batch: {{max_events: 200, linger: 20ms}}\n\
             limits: {{drain_timeout: 20s}}\n\
             pipeline:\n\
             \x20 - type: alerts\n\
             \x20   rules: {rules}\n\
             \x20   evaluation_interval: 200ms\n\
             \x20   receivers: [{{name: am, type: alertmanager, url: \"http://{am}\"}}]\n\
             sinks:\n\
             \x20 - {{name: archive, type: file, path: {archive}}}\n\
             \x20 - {{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out}}\n\
             \x20 - {{name: influx, type: influxdb, url: \"http://{influx}\",\n\
             \x20     buffer: {{type: disk, path: {buffer}, fsync: interval}},\n\
             \x20     circuit_breaker: {{failures: 3, cool_down: 500ms, max_cool_down: 2s}}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            rules = rules.display(),
            archive = archive.display(),
            buffer = dir.path().join("influx-buffer").display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let acknowledged = |n: usize| {
        move || (metric_at(addr, "synaptic_telemetry_acknowledged_events_total") >= n as f64).then_some(())
    };

    // Before the outage: everything reaches every sink.
    let before = traffic(3_000, 1, 1_767_225_600_000);
    kafka::produce(bootstrap, "in", &before);
    wait_for("the first events acknowledged", acknowledged(before.len()));

    // InfluxDB goes away.
    drop(influx_service);
    let outage = Instant::now();
    let during = traffic(3_000, 2, 1_767_229_200_000);
    let probe = json!({
        "event_id": "probe-consensus-down",
        "timestamp": synaptic_telemetry::clock::now_ms(),
        "component": "consensus",
        "event_type": "test.probe",
        "severity": "INFO",
        "tags": {}, "context": {},
        "data": { "down": 1 },
    });
    kafka::produce(bootstrap, "in", &[serde_json::to_vec(&probe).expect("JSON")]);
    kafka::produce(bootstrap, "in", &during);
    let total = before.len() + during.len() + 1;

    // During the outage: the other sinks, the metrics and the alerts go on.
    wait_for("every event acknowledged during the outage", acknowledged(total));
    let dead = read_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(
        read_lines(&archive).len(),
        total,
        "the file sink received everything; dead letters: {dead:?}"
    );
    let out = kafka::read_topic(bootstrap, "out", total, Duration::from_secs(5));
    assert_eq!(out.len(), total, "the Kafka sink received everything");
    let alerts = wait_for("the critical alert at Alertmanager", || {
        active_alerts(am).filter(|a| a.iter().any(|x| x["labels"]["alertname"] == "ComponentDown"))
    });
    assert_eq!(alerts[0]["labels"]["component"], "consensus");
    let (_, ready) = http_get(addr, "/ready");
    assert!(ready.contains("degraded: sink influx"), "{ready}");
    let events_counted = metric_at(addr, "synaptic_telemetry_events_total{event_type=\"task.completed\"}");
    assert!(events_counted > 0.0, "/metrics keeps counting");
    let in_buffer = metric_at(addr, "synaptic_telemetry_buffer_bytes{sink=\"influx\"}");
    assert!(in_buffer > 0.0, "the InfluxDB sink's events wait in its disk buffer");
    let within = outage.elapsed();
    assert!(within < OUTAGE, "all of that happened during the outage ({within:?})");

    // InfluxDB comes back after its outage, with its data: the buffer drains.
    std::thread::sleep(OUTAGE.saturating_sub(outage.elapsed()));
    let (_influx_service, influx) = influxdb_on(dir.path(), influx_ports);
    let mut expected = per_type(&before);
    for (event_type, n) in per_type(&during) {
        *expected.entry(event_type).or_insert(0) += n;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing: Vec<(String, u64, u64)> = expected
            .iter()
            .map(|(t, n)| (t.clone(), *n, influx_points(influx, t)))
            .filter(|(_, n, got)| got != n)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "InfluxDB is missing points after the outage: {missing:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(influx_points(influx, "test.probe"), 1, "the probe too");

    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["unacknowledged"], 0, "{summary}");
    assert!(read_lines(&dir.path().join("dead.jsonl")).is_empty(), "nothing dead-lettered");
}

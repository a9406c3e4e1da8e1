//! The Kafka source and sink against real Kafka-protocol brokers: librdkafka's mock
//! cluster (in a helper process) and tansu.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::kafka::{self, Broker};
use common::{command, comparable, http_get, metric, write_config, Running};
use synaptic_telemetry::config::GeneratorConfig;
use synaptic_telemetry::source::traffic::Traffic;

fn traffic(count: usize, malformed_ratio: f64, seed: u64) -> Vec<Vec<u8>> {
    let config =
        GeneratorConfig { rate: 1000.0, total: 0, seed, malformed_ratio, start_ms: Some(1_767_225_600_000) };
    let mut t = Traffic::new(&config, 0);
    (0..count).map(|_| t.next_event()).collect()
}

fn pipeline_config(dir: &std::path::Path, bootstrap: &str, group: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: {group}, commit_interval: 200ms}}\n\
             batch: {{max_events: 500, linger: 20ms}}\n\
             limits: {{drain_timeout: 20s}}\n\
             sinks: [{{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out}}]\n\
             dead_letter: {{type: kafka, brokers: \"{bootstrap}\", topic: dlq}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n"
        ),
    )
}

/// Polls /metrics until `series` reaches `target` (bounded).
fn wait_metric(addr: std::net::SocketAddr, series: &str, target: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = metric(&http_get(addr, "/metrics").1, series).unwrap_or(0.0);
        if value >= target || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn multiset(lines: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// Every produced line comes out exactly once: forwarded, or as the raw bytes of a
/// dead letter.
fn assert_accounted(broker: &Broker, produced: &[Vec<u8>], dead_lettered: usize) {
    let quiet = Duration::from_secs(15);
    let out = kafka::read_topic(&broker.bootstrap, "out", produced.len() - dead_lettered, quiet);
    let dead = kafka::read_topic(&broker.bootstrap, "dlq", dead_lettered, quiet);
    assert_eq!(out.len() + dead.len(), produced.len(), "forwarded {} + dead {}", out.len(), dead.len());
    let mut got: Vec<String> = out.iter().map(|l| comparable(&String::from_utf8_lossy(l))).collect();
    for record in &dead {
        let record: serde_json::Value = serde_json::from_slice(record).expect("dead letter is JSON");
        assert!(record["reason"].as_str().is_some_and(|r| !r.is_empty()), "{record}");
        assert_eq!(record["source"]["kind"], "kafka", "{record}");
        let raw = match record["raw"].as_str() {
            Some(raw) => raw.to_string(),
            None => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(record["raw_base64"].as_str().expect("raw"))
                    .expect("base64");
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        got.push(comparable(&raw));
    }
    let expected: Vec<String> = produced.iter().map(|l| comparable(&String::from_utf8_lossy(l))).collect();
    assert!(multiset(got) == multiset(expected), "outputs are exactly the produced events");
}

fn run_until_acknowledged(config: &std::path::Path, count: usize) -> (i32, serde_json::Value) {
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let acked = wait_metric(
        addr,
        "synaptic_telemetry_acknowledged_events_total",
        count as f64,
        Duration::from_secs(180),
    );
    assert_eq!(acked as usize, count, "all produced events acknowledged");
    let commits = wait_metric(addr, "synaptic_telemetry_kafka_commits_total", 1.0, Duration::from_secs(10));
    assert!(commits >= 1.0, "offsets were committed");
    running.signal("TERM");
    running.finish(Duration::from_secs(60))
}

/// A second member of the same group, started after the first stopped, finds
/// nothing to read: every offset was committed.
fn assert_nothing_left(config: &std::path::Path) {
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let started = Instant::now();
    let assigned =
        wait_metric(addr, "synaptic_telemetry_kafka_assigned_partitions", 6.0, Duration::from_secs(60));
    eprintln!("restarted member assigned {assigned} partitions after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(3));
    let read =
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_source_events_total").unwrap_or(-1.0);
    running.signal("TERM");
    let (code, _) = running.finish(Duration::from_secs(30));
    assert_eq!(read, 0.0, "a restarted member re-read {read} events: offsets were not committed");
    assert_eq!(code, 0);
}

#[test]
fn mock_cluster_every_event_accounted_for_and_committed() {
    let started = Instant::now();
    let broker = kafka::mock_cluster(&[("in", 6), ("out", 6), ("dlq", 1)]);
    let produced = traffic(20_000, 0.01, 21);
    kafka::produce(&broker.bootstrap, "in", &produced);
    eprintln!("produced {} events in {:?}", produced.len(), started.elapsed());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = pipeline_config(dir.path(), &broker.bootstrap, "g-mock");
    let (code, summary) = run_until_acknowledged(&config, produced.len());
    eprintln!("pipeline done at {:?}: {summary}", started.elapsed());
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["unacknowledged"], 0, "{summary}");
    let dead_lettered = summary["dead_lettered"].as_u64().unwrap_or(0) as usize;
    assert_accounted(&broker, &produced, dead_lettered);
    eprintln!("outputs checked at {:?}", started.elapsed());
    assert_nothing_left(&config);
    eprintln!("restart checked at {:?}", started.elapsed());
}

#[test]
fn tansu_every_event_accounted_for() {
    let broker = kafka::tansu(&[("in", 6), ("out", 6), ("dlq", 1)]).expect(
        "tansu is installed by tests/run.sh (cargo install tansu --version 0.6.0 --features dynostore)",
    );
    let started = Instant::now();
    let produced = traffic(100_000, 0.01, 22);
    kafka::produce(&broker.bootstrap, "in", &produced);
    eprintln!("tansu: produced {} events in {:?}", produced.len(), started.elapsed());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = pipeline_config(dir.path(), &broker.bootstrap, "g-tansu");
    let (code, summary) = run_until_acknowledged(&config, produced.len());
    eprintln!("tansu: pipeline done at {:?}: {summary}", started.elapsed());
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["unacknowledged"], 0, "{summary}");
    let dead_lettered = summary["dead_lettered"].as_u64().unwrap_or(0) as usize;
    assert!(dead_lettered > 500, "about 1% malformed: {dead_lettered}");
    assert_accounted(&broker, &produced, dead_lettered);
    eprintln!("tansu: outputs checked at {:?}", started.elapsed());
    assert_nothing_left(&config);
}

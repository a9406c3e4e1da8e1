//! The Kafka source and sink against real Kafka-protocol brokers: librdkafka's mock
//! cluster (in a helper process) and tansu.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::kafka::{self, Broker};
use common::{command, comparable, http_get, metric, write_config, Running};
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;

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
    assert_accounted_with(broker, produced, dead_lettered, 0);
}

/// Every produced line comes out at least once, and at most `repeats_allowed`
/// lines more than once (delivery is at-least-once: a batch the sink sent while
/// the broker went away may be sent again).
fn assert_accounted_with(
    broker: &Broker,
    produced: &[Vec<u8>],
    dead_lettered: usize,
    repeats_allowed: usize,
) {
    let quiet = Duration::from_secs(15);
    let out =
        kafka::read_topic(&broker.bootstrap, "out", produced.len() - dead_lettered + repeats_allowed, quiet);
    let dead = kafka::read_topic(&broker.bootstrap, "dlq", dead_lettered + repeats_allowed, quiet);
    let total = out.len() + dead.len();
    assert!(
        total >= produced.len() && total - produced.len() <= repeats_allowed,
        "forwarded {} + dead {} for {} produced ({repeats_allowed} repeats allowed)",
        out.len(),
        dead.len(),
        produced.len()
    );
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
    let (got, expected) = (multiset(got), multiset(expected));
    if repeats_allowed == 0 {
        assert!(got == expected, "outputs are exactly the produced events");
    } else {
        let missing = expected.iter().filter(|(line, n)| got.get(*line).is_none_or(|g| g < *n)).count();
        let unknown = got.keys().filter(|line| !expected.contains_key(*line)).count();
        assert_eq!((missing, unknown), (0, 0), "every produced event came out, and nothing else");
    }
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

/// The identity of an output line: the event itself, or a dead letter's raw bytes.
fn identity(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    if let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) {
        if record.get("stage").is_some() && record.get("reason").is_some() {
            if let Some(raw) = record["raw"].as_str() {
                return comparable(raw);
            }
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(record["raw_base64"].as_str().unwrap_or_default())
                .unwrap_or_default();
            return comparable(&String::from_utf8_lossy(&bytes));
        }
    }
    comparable(&text)
}

const SCALE_EVENTS: usize = 200_000;
/// librdkafka's mock cluster keeps only about 5 MB per partition (some 12,000 of
/// these events) and deletes older messages even when no consumer has read them; its
/// rebalances take about 5 s a round. The rate keeps the backlog a rebalance builds
/// (about 15 s of one partition's traffic) well inside what the mock retains, so a
/// loss here is the pipeline's and not the mock's retention.
const SCALE_RATE: usize = 3_000;
const IN_FLIGHT_BATCHES: usize = 4;
const BATCH_EVENTS: usize = 250;
const COMMIT_INTERVAL_MS: usize = 200;

/// Starts following `out` and `dlq` now: the mock cluster deletes old messages, so
/// the outputs must be read as they are written, not afterwards.
/// Deliveries beyond what was produced, input line by input line (some generated
/// lines are identical on purpose, so "seen twice" alone is not a duplicate).
fn surplus(counts: &HashMap<String, usize>, produced: &[Vec<u8>]) -> usize {
    let expected = multiset(produced.iter().map(|l| comparable(&String::from_utf8_lossy(l))));
    counts.iter().map(|(k, n)| n.saturating_sub(expected.get(k).copied().unwrap_or(0))).sum()
}

fn follow_outputs(
    bootstrap: &str,
    expected: &std::collections::HashSet<String>,
) -> std::thread::JoinHandle<std::collections::HashMap<String, usize>> {
    let (bootstrap, expected) = (bootstrap.to_string(), expected.clone());
    let follower = std::thread::spawn(move || {
        kafka::follow_until_complete(
            &bootstrap,
            &["out", "dlq"],
            &expected,
            identity,
            Duration::from_secs(300),
        )
    });
    // Let the follower join its group before anything is written.
    std::thread::sleep(Duration::from_secs(5));
    follower
}

fn member_config(dir: &std::path::Path, name: &str, bootstrap: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: g-scale, \
             commit_interval: {COMMIT_INTERVAL_MS}ms, revoke_timeout: 5s, \
             properties: {{session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\"}}}}\n\
             batch: {{max_events: {BATCH_EVENTS}, linger: 20ms}}\n\
             limits: {{max_in_flight_batches: {IN_FLIGHT_BATCHES}, drain_timeout: 20s}}\n\
             sinks: [{{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out}}]\n\
             dead_letter: {{type: kafka, brokers: \"{bootstrap}\", topic: dlq}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n"
        ),
    )
    .expect("write config");
    path
}

fn start_member(config: &std::path::Path) -> Running {
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(config);
    let mut running = Running::spawn(cmd);
    running.wait_for_address(Duration::from_secs(30));
    running
}

/// Produces `events` at a steady rate in the background.
fn produce_steadily(bootstrap: String, events: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        for (i, chunk) in events.chunks(SCALE_RATE / 10).enumerate() {
            let due = started + Duration::from_millis(100 * i as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            kafka::produce(&bootstrap, "in", chunk);
        }
    })
}

/// 3 members, one SIGKILLed mid-stream and restarted: nothing lost, duplicates
/// bounded by what the killed member had read but not committed.
fn scale_and_failover(broker: &Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let produced = traffic(SCALE_EVENTS, 0.005, 23);
    let input = produced.clone();
    let expected: std::collections::HashSet<String> =
        produced.iter().map(|l| comparable(&String::from_utf8_lossy(l))).collect();
    let follower = follow_outputs(&broker.bootstrap, &expected);
    let configs: Vec<_> =
        (0..3).map(|i| member_config(dir.path(), &format!("m{i}"), &broker.bootstrap)).collect();
    let mut members: Vec<Running> = configs.iter().map(|c| start_member(c)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let producer = produce_steadily(broker.bootstrap.clone(), produced);

    std::thread::sleep(Duration::from_secs(7));
    let victim = members.remove(1);
    victim.child_kill();
    eprintln!("failover: member 1 killed with SIGKILL");
    std::thread::sleep(Duration::from_secs(6));
    members.push(start_member(&configs[1]));
    eprintln!("failover: member 1 restarted");
    producer.join().expect("producer thread");

    let counts = follower.join().expect("follower thread");
    for member in &members {
        member.signal("TERM");
    }
    for member in members {
        let (code, summary) = member.finish(Duration::from_secs(60));
        assert_eq!(code, 0, "a surviving member did not drain cleanly: {summary}");
    }
    let missing = expected.iter().filter(|k| !counts.contains_key(*k)).count();
    let delivered: usize = counts.values().sum();
    let duplicates = surplus(&counts, &input);
    // What the killed member could have read without its offsets committed: its
    // in-flight batches plus the open one, plus one commit interval of its share of
    // the traffic (it owned about a third of the partitions).
    let window = (IN_FLIGHT_BATCHES + 1) * BATCH_EVENTS + SCALE_RATE / 3 * (COMMIT_INTERVAL_MS + 1000) / 1000;
    eprintln!(
        "failover: produced {SCALE_EVENTS}, delivered {delivered}, missing {missing}, duplicates {duplicates}, window {window}"
    );
    assert_eq!(missing, 0, "events lost across SIGKILL");
    assert!(
        duplicates <= window,
        "duplicates {duplicates} exceed the killed member's in-flight window {window}"
    );
}

#[test]
fn mock_cluster_scale_out_and_sigkill_failover_lose_nothing() {
    let broker = kafka::mock_cluster(&[("in", 6), ("out", 6), ("dlq", 1)]);
    scale_and_failover(&broker);
}

#[test]
#[ignore = "fails on tansu 0.6.0 only: after a SIGKILL the survivor is assigned the dead member's partitions but never fetches them (a tansu defect); run with --ignored to see it"]
fn tansu_scale_out_and_sigkill_failover_lose_nothing() {
    let broker =
        kafka::tansu(&[("in", 6), ("out", 6), ("dlq", 1)]).expect("tansu is installed by tests/run.sh");
    scale_and_failover(&broker);
}

/// Waits (bounded) until `member` owns half of the 6 input partitions.
fn settle(member: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = member.wait_for_line("partitions assigned", left);
        let owned = line.split("partitions=").nth(1).map_or(0, |p| p.split(',').count());
        if owned == 3 {
            return;
        }
    }
}

/// A member stopped with SIGTERM drains, commits and leaves: nothing twice.
#[test]
fn mock_cluster_graceful_scale_in_repeats_nothing() {
    let broker = kafka::mock_cluster(&[("in", 6), ("out", 6), ("dlq", 1)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let produced = traffic(60_000, 0.005, 24);
    let input = produced.clone();
    let expected: std::collections::HashSet<String> =
        produced.iter().map(|l| comparable(&String::from_utf8_lossy(l))).collect();
    let follower = follow_outputs(&broker.bootstrap, &expected);
    let configs: Vec<_> =
        (0..2).map(|i| member_config(dir.path(), &format!("s{i}"), &broker.bootstrap)).collect();
    let mut members: Vec<Running> = configs.iter().map(|c| start_member(c)).collect();
    // Leave only once the group has settled with both members: a member that leaves
    // in the middle of a rebalance may have its last commit refused (a different
    // case, bounded by the failover test's window).
    for member in &mut members {
        settle(member);
    }
    let producer = produce_steadily(broker.bootstrap.clone(), produced);
    std::thread::sleep(Duration::from_secs(3));
    let leaving = members.remove(0);
    leaving.signal("TERM");
    let (code, summary) = leaving.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    eprintln!("scale-in: member 0 left after {summary}");
    producer.join().expect("producer thread");
    let counts = follower.join().expect("follower thread");
    for member in members {
        member.signal("TERM");
        let (code, summary) = member.finish(Duration::from_secs(60));
        assert_eq!(code, 0, "{summary}");
    }
    let missing = expected.iter().filter(|k| !counts.contains_key(*k)).count();
    let duplicates = surplus(&counts, &input);
    eprintln!("scale-in: produced {}, missing {missing}, duplicates {duplicates}", input.len());
    assert_eq!(missing, 0);
    assert_eq!(duplicates, 0, "a graceful scale-in must not repeat events");
}

/// The lag series of one member: partition → lag.
fn lag_series(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let body = http_get(addr, "/metrics").1;
    body.lines()
        .filter_map(|l| l.strip_prefix("synaptic_telemetry_kafka_consumer_lag{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let partition =
                labels.split(',').find_map(|kv| kv.strip_prefix("partition=\""))?.trim_end_matches('"');
            Some((partition.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Runs on the mock cluster: on tansu 0.6.0 a member given a moved partition does
/// not always fetch it (the defect behind the ignored failover test), so its high
/// watermark goes stale and neither the pipeline nor a lag figure can be right.
#[test]
fn mock_cluster_lag_is_correct_after_a_rebalance() {
    let broker = kafka::mock_cluster(&[("in", 6), ("out", 6), ("dlq", 1)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config_a = member_config(dir.path(), "lag-a", &broker.bootstrap);
    let config_b = member_config(dir.path(), "lag-b", &broker.bootstrap);
    let mut a = Running::spawn({
        let mut cmd = command();
        cmd.args(["run", "--config"]).arg(&config_a);
        cmd
    });
    let addr_a = a.wait_for_address(Duration::from_secs(30));
    wait_metric(addr_a, "synaptic_telemetry_kafka_assigned_partitions", 6.0, Duration::from_secs(30));
    kafka::produce(&broker.bootstrap, "in", &traffic(6_000, 0.0, 31));
    wait_metric(addr_a, "synaptic_telemetry_acknowledged_events_total", 6_000.0, Duration::from_secs(60));

    let mut b = Running::spawn({
        let mut cmd = command();
        cmd.args(["run", "--config"]).arg(&config_b);
        cmd
    });
    let addr_b = b.wait_for_address(Duration::from_secs(30));
    wait_metric(addr_b, "synaptic_telemetry_kafka_assigned_partitions", 1.0, Duration::from_secs(90));
    kafka::produce(&broker.bootstrap, "in", &traffic(6_000, 0.0, 32));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let acked = |addr| {
            metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_acknowledged_events_total")
                .unwrap_or(0.0)
        };
        if acked(addr_a) + acked(addr_b) >= 12_000.0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Commits every 200 ms; librdkafka's statistics every 5 s.
    std::thread::sleep(Duration::from_secs(7));
    let (lag_a, lag_b) = (lag_series(addr_a), lag_series(addr_b));
    let assigned = |addr| {
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_kafka_assigned_partitions").unwrap_or(0.0)
    };
    let (assigned_a, assigned_b) = (assigned(addr_a), assigned(addr_b));
    let acked = |addr| {
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_acknowledged_events_total").unwrap_or(0.0)
    };
    let (acked_a, acked_b) = (acked(addr_a), acked(addr_b));
    eprintln!(
        "lag after rebalance: a {lag_a:?} (assigned {assigned_a}, acked {acked_a}), b {lag_b:?} (assigned {assigned_b}, acked {acked_b})"
    );
    for member in [&a, &b] {
        member.signal("TERM");
    }
    let _ = a.wait_for_line("summary", Duration::from_secs(30));
    let _ = b.wait_for_line("summary", Duration::from_secs(30));

    // At least once: a commit the mock refuses during the rebalance repeats some.
    assert!(acked_a + acked_b >= 12_000.0, "every event consumed, so every lag must be 0");
    assert_eq!(lag_a.len() as f64, assigned_a, "a reports exactly its partitions: {lag_a:?}");
    assert_eq!(lag_b.len() as f64, assigned_b, "b reports exactly its partitions: {lag_b:?}");
    assert!(
        lag_a.keys().all(|p| !lag_b.contains_key(p)),
        "a partition is reported by both members: {lag_a:?} {lag_b:?}"
    );
    assert_eq!(lag_a.len() + lag_b.len(), 6, "every partition reported once: {lag_a:?} {lag_b:?}");
    assert!(!lag_a.is_empty() && !lag_b.is_empty(), "both members own partitions");
    assert!(
        lag_a.values().chain(lag_b.values()).all(|&lag| lag == 0.0),
        "all caught up: {lag_a:?} {lag_b:?}"
    );
}

/// A record over the producer's size limit is refused for good: it goes to the
/// dead-letter sink with the reason instead of being retried forever; a dead
/// letter over the dead-letter sink's own limit is replaced by a short summary
/// that says so. Nothing wedges, everything is acknowledged.
#[test]
fn an_oversize_record_is_dead_lettered_and_an_oversize_dead_letter_summarised() {
    let broker = kafka::mock_cluster(&[("in", 1), ("out", 1), ("dlq", 1)]);
    let mut produced = traffic(1_000, 0.0, 33);
    for line in produced.iter_mut().take(3) {
        let mut event: serde_json::Value = serde_json::from_slice(line).expect("JSON");
        let data = event["data"].as_object_mut().expect("data");
        let key = data.iter().find(|(_, v)| v.is_string()).map(|(k, _)| k.clone()).expect("a string in data");
        data[&key] = serde_json::Value::String("x".repeat(20_000));
        *line = serde_json::to_vec(&event).expect("JSON");
    }
    kafka::produce(&broker.bootstrap, "in", &produced);
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = &broker.bootstrap;
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: g-size, commit_interval: 200ms}}\n\
             batch: {{max_events: 100, linger: 20ms}}\n\
             limits: {{drain_timeout: 20s}}\n\
             sinks: [{{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out, properties: {{message.max.bytes: \"10000\"}}}}]\n\
             dead_letter: {{type: kafka, brokers: \"{bootstrap}\", topic: dlq, properties: {{message.max.bytes: \"15000\"}}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n"
        ),
    );
    let (code, summary) = run_until_acknowledged(&config, produced.len());
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["unacknowledged"], 0, "{summary}");
    let out = kafka::read_topic(bootstrap, "out", 997, Duration::from_secs(10));
    assert_eq!(out.len(), 997, "every record within the limit was forwarded");
    let dead = kafka::read_topic(bootstrap, "dlq", 3, Duration::from_secs(10));
    assert_eq!(dead.len(), 3, "each oversize record left one dead-letter record");
    for record in &dead {
        assert!(record.len() < 15_000, "the summary fits the dead-letter topic: {} bytes", record.len());
        let summary: serde_json::Value = serde_json::from_slice(record).expect("JSON");
        assert_eq!(summary["truncated"], true, "{summary}");
        assert!(summary["original_bytes"].as_u64().is_some_and(|n| n > 20_000), "{summary}");
        let reason = summary["reason"].as_str().expect("reason");
        assert!(
            reason.contains("too large") || reason.contains("TooLarge") || reason.contains("size"),
            "{reason}"
        );
    }
}

/// The broker goes down for 10 s while the pipeline works through a backlog
/// (connections cut and refused, its data kept, as in a broker restart): the
/// pipeline resumes by itself when it is back, and every event comes out,
/// forwarded or dead-lettered: at least once (a batch the sink had in flight when
/// the broker went away may be sent again), every acknowledgement counted exactly.
#[test]
fn mock_cluster_broker_down_and_up_under_load_loses_nothing() {
    let mut broker = kafka::mock_cluster(&[("in", 3), ("out", 3), ("dlq", 1)]);
    let produced = traffic(30_000, 0.01, 45);
    kafka::produce(&broker.bootstrap, "in", &produced);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = pipeline_config(dir.path(), &broker.bootstrap, "g-down");
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let acked =
        wait_metric(addr, "synaptic_telemetry_acknowledged_events_total", 3_000.0, Duration::from_secs(60));
    assert!(acked >= 3_000.0, "the pipeline is under way: {acked}");
    broker.set_broker(1, false);
    std::thread::sleep(Duration::from_secs(10));
    let during =
        metric(&http_get(addr, "/metrics").1, "synaptic_telemetry_acknowledged_events_total").unwrap_or(0.0);
    broker.set_broker(1, true);
    let total = produced.len() as f64;
    let acked =
        wait_metric(addr, "synaptic_telemetry_acknowledged_events_total", total, Duration::from_secs(120));
    assert_eq!(
        acked, total,
        "everything acknowledged after the broker came back (at {during} while it was down)"
    );
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    let dead_lettered = summary["dead_lettered"].as_u64().unwrap_or(0) as usize;
    // A batch in flight when the broker went away may be sent twice: at most the
    // in-flight window (16 batches of 500).
    assert_accounted_with(&broker, &produced, dead_lettered, 16 * 500);
}

/// A `{retention}` topic routes each event to its class's topic.
#[test]
fn mock_cluster_retention_classes_route_to_their_topics() {
    let classes = ["high", "medium", "low"];
    let broker = kafka::mock_cluster(&[
        ("in", 2),
        ("events-high", 1),
        ("events-medium", 1),
        ("events-low", 1),
        ("dlq", 1),
    ]);
    let produced = traffic(3_000, 0.0, 31);
    kafka::produce(&broker.bootstrap, "in", &produced);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: kafka, brokers: \"{b}\", topics: [in], group_id: g-classes}}\n\
             pipeline:\n  - {{type: retention}}\n\
             sinks:\n  - {{name: out, type: kafka, brokers: \"{b}\", topic: \"events-{{retention}}\"}}\n\
             dead_letter: {{type: kafka, brokers: \"{b}\", topic: dlq}}\n",
            b = broker.bootstrap
        ),
    );
    let (code, summary) = run_until_acknowledged(&config, produced.len());
    assert_eq!(code, 0, "{summary}");
    let class_of = |line: &Vec<u8>| {
        let event: serde_json::Value = serde_json::from_slice(line).expect("JSON");
        common::spec_retention_class(&event)
    };
    let mut routed = 0;
    for class in classes {
        let expected = produced.iter().filter(|l| class_of(l) == class).count();
        assert!(expected > 0, "{class}");
        let lines = kafka::read_topic(
            &broker.bootstrap,
            &format!("events-{class}"),
            expected,
            Duration::from_secs(15),
        );
        assert_eq!(lines.len(), expected, "{class}");
        for line in lines {
            let event: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
            assert_eq!(event["tags"]["retention"], class, "{event}");
            routed += 1;
        }
    }
    assert_eq!(routed, produced.len(), "every event on its class's topic");
}

/// `replay --kafka TOPIC:PARTITION:FROM-TO` reads exactly that range of the
/// partition (offsets included) and compares as with a file.
#[test]
fn mock_cluster_replay_reads_a_partition_range() {
    let broker = kafka::mock_cluster(&[("recorded", 1)]);
    let produced = traffic(1_000, 0.0, 5);
    kafka::produce(&broker.bootstrap, "recorded", &produced);
    let dir = tempfile::tempdir().expect("tempdir");
    let candidate = dir.path().join("filter.rhai");
    std::fs::write(&candidate, "fn process(event) { () }\n").expect("write candidate");
    let mut child = common::command()
        .args(["replay", "--kafka", "recorded:0:100-599", "--brokers", &broker.bootstrap, "--with"])
        .arg(&candidate)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("replay starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("replay did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("replayed 500 events from recorded:0 offsets 100-599"), "{report}");
    assert!(
        report.contains("recorded:0@100: step `filter`"),
        "the first example is the range's first record: {report}"
    );
    // A range past the partition's end is an error (exit 2), not a short replay.
    let out = common::command()
        .args(["replay", "--kafka", "recorded:0:900-1500", "--brokers", &broker.bootstrap, "--with"])
        .arg(&candidate)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("replay runs");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended before offset 1500"));
}

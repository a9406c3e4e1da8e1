//! Kafka over TLS and SASL against a real broker: tansu 0.6.0 with authentication
//! on (SCRAM users created through the admin API) behind stunnel for TLS, with a
//! CA, server and client certificates made by the test.
//!
//! tansu 0.6.0 offers SCRAM-SHA-256 and SCRAM-SHA-512, not PLAIN: PLAIN is
//! covered by the librdkafka properties it sets (unit test in `kafka_client`).

mod common;

use std::time::{Duration, Instant};

use common::kafka::{self, SecureBroker};
use common::pki::{self, Pki};
use common::{command, Running};
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;

const ALICE: &str = "alice-scram512-pw-7Qx";
const BOB: &str = "bob-scram256-pw-9Zr";

fn events(count: u64) -> Vec<Vec<u8>> {
    let config = GeneratorConfig {
        rate: 1000.0,
        total: count,
        seed: 18,
        malformed_ratio: 0.0,
        start_ms: Some(1_764_000_000_000),
    };
    let mut traffic = Traffic::new(&config, 0);
    (0..count).map(|_| traffic.next_event()).collect()
}

fn broker(dir: &std::path::Path, pki: &Pki, mutual: bool) -> Option<SecureBroker> {
    let users = [("alice", ALICE, 512), ("bob", BOB, 256)];
    let broker = kafka::secure_tansu(dir, pki, mutual, &users, &[("in", 2), ("out", 1), ("dlq", 1)]);
    if broker.is_none() {
        eprintln!("tansu or stunnel is not installed; skipping");
    }
    broker
}

/// `tls:` and `sasl:` sections in YAML flow style.
fn security(pki: &Pki, ca: &std::path::Path, client_cert: bool, sasl: &str) -> String {
    let cert = if client_cert {
        format!(", cert_file: \"{}\", key_file: \"{}\"", pki.client_cert.display(), pki.client_key.display())
    } else {
        String::new()
    };
    format!("tls: {{ca_file: \"{}\"{cert}}}, sasl: {sasl}", ca.display())
}

fn config(
    dir: &std::path::Path,
    name: &str,
    bootstrap: &str,
    source_security: &str,
    sink_security: &str,
    dead_security: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: g-{name}, commit_interval: 200ms, {source_security}}}\n\
             batch: {{max_events: 200, linger: 20ms}}\n\
             limits: {{drain_timeout: 20s}}\n\
             sinks: [{{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out, {sink_security}}}]\n\
             dead_letter: {{type: kafka, brokers: \"{bootstrap}\", topic: dlq, {dead_security}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n"
        ),
    )
    .expect("config");
    path
}

/// Starts the pipeline and expects it to fail within seconds with one error line
/// containing `needle`.
fn expect_refused_at_start(config: &std::path::Path, needle: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let running = Running::spawn(cmd);
    let (code, _, log) = running.finish_with_log(Duration::from_secs(40));
    let took = started.elapsed();
    assert_ne!(code, 0, "the start must fail; log:\n{}", log.join("\n"));
    let error = log.iter().find(|l| l.starts_with("error:")).cloned().unwrap_or_default();
    assert!(
        error.contains(needle),
        "expected an error naming {needle:?}, got {error:?}; log:\n{}",
        log.join("\n")
    );
    assert!(took < Duration::from_secs(20), "the failure took {took:?}");
    eprintln!("refused in {took:?}: {error}");
    error
}

#[test]
fn kafka_tls_with_scram_256_and_512_moves_every_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let Some(broker) = broker(dir.path(), &pki, false) else { return };
    let produced = events(300);
    let mut traffic = produced.clone();
    traffic.push(b"{not json".to_vec());
    kafka::produce_with(&broker.admin, "in", &traffic);
    std::fs::write(dir.path().join("bob.pw"), format!("{BOB}\n")).expect("password file");
    let path = config(
        dir.path(),
        "scram",
        &broker.tls_bootstrap,
        &security(
            &pki,
            &pki.ca,
            false,
            "{mechanism: SCRAM-SHA-512, username: alice, password: \"${KAFKA_ALICE_PASSWORD}\"}",
        ),
        &security(
            &pki,
            &pki.ca,
            false,
            "{mechanism: SCRAM-SHA-256, username: bob, password: {file: bob.pw}}",
        ),
        &security(
            &pki,
            &pki.ca,
            false,
            "{mechanism: SCRAM-SHA-256, username: bob, password: {file: bob.pw}}",
        ),
    );
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&path).env("KAFKA_ALICE_PASSWORD", ALICE);
    let mut running = Running::spawn(cmd);
    running.wait_for_address(Duration::from_secs(60));
    let out = kafka::read_topic_with(&broker.admin, "out", produced.len(), Duration::from_secs(30));
    let dead = kafka::read_topic_with(&broker.admin, "dlq", 1, Duration::from_secs(10));
    running.signal("TERM");
    let (code, summary, log) = running.finish_with_log(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{}", log.join("\n"));
    assert_eq!(out.len(), produced.len(), "every valid event forwarded over TLS+SCRAM-SHA-256");
    assert_eq!(dead.len(), 1, "the malformed record dead-lettered over TLS+SCRAM");
    assert_eq!(summary["unacknowledged"], 0, "{summary}");
    for line in &log {
        assert!(!line.contains(ALICE) && !line.contains(BOB), "a password in the log: {line}");
    }
}

#[test]
fn kafka_wrong_ca_wrong_password_and_plaintext_broker_fail_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let Some(broker) = broker(dir.path(), &pki, false) else { return };
    let good_sasl = format!("{{mechanism: SCRAM-SHA-512, username: alice, password: {ALICE}}}");
    let sink = security(&pki, &pki.ca, false, &good_sasl);

    let wrong_ca = config(
        dir.path(),
        "wrong-ca",
        &broker.tls_bootstrap,
        &security(&pki, &pki.other_ca, false, &good_sasl),
        &sink,
        &sink,
    );
    expect_refused_at_start(&wrong_ca, "certificate verify failed", &[]);

    let wrong_password = config(
        dir.path(),
        "wrong-password",
        &broker.tls_bootstrap,
        &security(
            &pki,
            &pki.ca,
            false,
            "{mechanism: SCRAM-SHA-512, username: alice, password: not-alices-password}",
        ),
        &sink,
        &sink,
    );
    let error = expect_refused_at_start(&wrong_password, "SASL authentication error", &[]);
    assert!(error.contains("check sasl.username, sasl.password and sasl.mechanism"), "{error}");
    assert!(!error.contains("not-alices-password"), "{error}");

    let plaintext = config(
        dir.path(),
        "plaintext",
        &broker.plain_bootstrap,
        &security(&pki, &pki.ca, false, &good_sasl),
        &sink,
        &sink,
    );
    expect_refused_at_start(&plaintext, "does not speak TLS on this port", &[]);
}

#[test]
fn kafka_mutual_tls_needs_the_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let Some(broker) = broker(dir.path(), &pki, true) else { return };
    let produced = events(50);
    kafka::produce_with(&broker.admin, "in", &produced);
    let sasl = format!("{{mechanism: SCRAM-SHA-512, username: alice, password: {ALICE}}}");
    let with_cert = security(&pki, &pki.ca, true, &sasl);
    let path = config(dir.path(), "mtls", &broker.tls_bootstrap, &with_cert, &with_cert, &with_cert);
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&path);
    let mut running = Running::spawn(cmd);
    running.wait_for_address(Duration::from_secs(60));
    let out = kafka::read_topic_with(&broker.admin, "out", produced.len(), Duration::from_secs(30));
    running.signal("TERM");
    let (code, _, log) = running.finish_with_log(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{}", log.join("\n"));
    assert_eq!(out.len(), produced.len());

    let without_cert = security(&pki, &pki.ca, false, &sasl);
    let path = config(dir.path(), "no-cert", &broker.tls_bootstrap, &without_cert, &with_cert, &with_cert);
    expect_refused_at_start(&path, "requires a client certificate", &[]);
}

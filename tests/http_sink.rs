//! The `http` sink against a real HTTP server started by the test: every event
//! arrives exactly once, in the configured format and encoding, with the
//! configured headers; 503 and 429 answers are retried, a 400 is logged with the
//! server's answer and not retried.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::{delivered, serve, Receiver};
use common::{command, write_config, Running};

fn pipeline(dir: &std::path::Path, sink: &str, total: usize) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "source: {{type: generator, rate: 0, total: {total}, seed: 11}}\n\
             batch: {{max_events: 200, linger: 20ms}}\n\
             limits: {{drain_timeout: 30s}}\n\
             sinks:\n\
             \x20 - {sink}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            dead = dir.join("dead.jsonl").display(),
        ),
    )
}

#[test]
fn every_event_arrives_once_through_retries_gzip_and_headers() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().expect("script").extend([(503, "busy"), (429, "slow down"), (503, "busy")]);
    let (addr, _server) = serve(receiver.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 2_000;
    let sink = format!(
        "{{name: out, type: http, url: \"http://{addr}/ingest\", format: json_array, gzip: true, \
         headers: {{authorization: Bearer t0ken, x-pipeline: test}}}}"
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(pipeline(dir.path(), &sink, total)).args(["--listen", "127.0.0.1:0"]);
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["acknowledged"], total, "{summary}");

    let ids = delivered(&receiver, true);
    assert_eq!(ids.len(), total, "every event arrived");
    assert!(ids.values().all(|n| *n == 1), "none twice: {:?}", ids.iter().find(|(_, n)| **n != 1));
    let requests = receiver.requests.lock().expect("requests");
    let refused = requests.iter().filter(|r| r.answered >= 300).count();
    assert_eq!(refused, 3, "the 503, 429 and 503 were answered and their batches sent again");
    for request in requests.iter() {
        assert_eq!(request.headers.get("authorization").map(|v| v.as_bytes()), Some(&b"Bearer t0ken"[..]));
        assert_eq!(request.headers.get("x-pipeline").map(|v| v.as_bytes()), Some(&b"test"[..]));
        assert_eq!(request.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
    }
}

#[test]
fn a_refused_batch_goes_to_dead_letter_with_the_answer_and_is_not_sent_again() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().expect("script").push_back((400, "mapping error: field `data.x` is not a date"));
    let (addr, _server) = serve(receiver.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 1_000;
    let sink = format!("{{name: out, type: http, url: \"http://{addr}/ingest\"}}");
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(pipeline(dir.path(), &sink, total)).args(["--listen", "127.0.0.1:0"]);
    let mut running = Running::spawn(cmd);
    let line =
        running.wait_for_line("refused by the output go to the dead-letter sink", Duration::from_secs(60));
    assert!(line.contains("mapping error: field `data.x` is not a date"), "{line}");
    assert!(line.contains("400"), "{line}");
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        summary["acknowledged"], total,
        "refused records are acknowledged once dead-lettered: {summary}"
    );

    let requests = receiver.requests.lock().expect("requests");
    assert_eq!(requests.iter().filter(|r| r.answered == 400).count(), 1);
    drop(requests);
    // JSON lines by default; the refused batch's events are not sent again.
    let ids = delivered(&receiver, false);
    let refused_batch = total - ids.len();
    assert!(refused_batch > 0 && refused_batch <= 200, "one batch refused: {refused_batch}");
    assert!(ids.values().all(|n| *n == 1));
    // ... they are in the dead-letter file, each with the server's answer.
    let dead = common::read_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), refused_batch, "every refused event is dead-lettered");
    for line in &dead {
        let letter: serde_json::Value = serde_json::from_str(line).expect("a JSON dead letter");
        assert_eq!(letter["stage"]["sink"], "out", "{letter}");
        assert_eq!(letter["source"]["kind"], "sink", "{letter}");
        let reason = letter["reason"].as_str().expect("reason");
        assert!(reason.contains("HTTP 400") && reason.contains("not a date"), "{reason}");
        let raw: serde_json::Value =
            serde_json::from_str(letter["raw"].as_str().expect("raw")).expect("the event");
        assert!(
            !ids.contains_key(raw["event_id"].as_str().expect("id")),
            "a refused event was not delivered too"
        );
    }
}

/// A receiver that is down (503 to everything) sees at most the circuit
/// breaker's probe rate once the circuit is open; the file sink beside it keeps
/// receiving every event, `/ready` names the degraded sink, and the state is
/// logged once per change, not per batch.
#[test]
fn an_open_circuit_probes_at_its_rate_while_the_other_sinks_keep_receiving() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().expect("script").extend(std::iter::repeat_n((503, "down"), 10_000));
    let (addr, _server) = serve(receiver.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: generator, rate: 2000, total: 24000, seed: 5}}\n\
             batch: {{max_events: 200, linger: 20ms}}\n\
             limits: {{drain_timeout: 2s}}\n\
             sinks:\n\
             \x20 - {{name: out, type: http, url: \"http://{addr}/ingest\",\n\
             \x20     buffer: {{type: memory, max_events: 1000, when_full: drop_newest}},\n\
             \x20     circuit_breaker: {{failures: 3, cool_down: 1s, max_cool_down: 2s}}}}\n\
             \x20 - {{name: archive, type: file, path: {archive}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            archive = archive.display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let server = running.wait_for_address(Duration::from_secs(30));
    running.wait_for_line("circuit open", Duration::from_secs(30));
    let opened = std::time::Instant::now();
    let before = receiver.requests.lock().expect("requests").len();
    let archived_before = common::read_lines(&archive).len();
    std::thread::sleep(Duration::from_secs(6));
    let probes = receiver.requests.lock().expect("requests").len() - before;
    let window = opened.elapsed().as_secs_f64();
    // Cool-downs of 1s then 2s, each at least 80% of itself: at most one probe
    // per 0.8 s, plus the one that may be on its way.
    let allowed = (window / 0.8).floor() as usize + 1;
    assert!((1..=allowed).contains(&probes), "{probes} probes in {window:.1}s (at most {allowed})");
    assert!(
        common::read_lines(&archive).len() > archived_before + 5_000,
        "the file sink kept receiving while the http sink was down"
    );
    let (status, ready) = common::http_get(server, "/ready");
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("degraded: sink out"), "{ready}");
    let (_, metrics) = common::http_get(server, "/metrics");
    let state = common::metric(&metrics, "synaptic_telemetry_sink_circuit_state{sink=\"out\"}")
        .expect("circuit state");
    assert!(state == 1.0 || state == 2.0, "open or half-open: {state}");
    assert!(
        common::metric(&metrics, "synaptic_telemetry_buffer_dropped_events_total{sink=\"out\"}")
            .expect("dropped")
            > 0.0
    );

    running.signal("TERM");
    let (_, summary, log) = running.finish_with_log(Duration::from_secs(60));
    let archived = common::read_lines(&archive).len() as u64;
    assert_eq!(Some(archived), summary["read"].as_u64(), "every event read reached the file sink: {summary}");
    let opened_lines = log.iter().filter(|l| l.contains("circuit open")).count();
    assert_eq!(opened_lines, 1, "the opening is logged once, not per probe");
    let failures = log.iter().filter(|l| l.contains("write failed")).count();
    assert_eq!(failures, 2, "failures before the circuit opens are logged; probes are not");
}

//! The `http` sink against a real HTTP server started by the test: every event
//! arrives exactly once, in the configured format and encoding, with the
//! configured headers; 503 and 429 answers are retried, a 400 is logged with the
//! server's answer and not retried.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{command, write_config, Running};

/// One request as the server saw it.
struct Request {
    headers: HeaderMap,
    /// The body, gunzipped when it came gzip-encoded.
    body: Vec<u8>,
    answered: u16,
}

/// A test server that answers the scripted statuses in turn (then 200) and keeps
/// every request.
#[derive(Default)]
struct Receiver {
    script: Mutex<VecDeque<(u16, &'static str)>>,
    requests: Mutex<Vec<Request>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (status, answer) = receiver.script.lock().expect("script").pop_front().unwrap_or((200, "ok"));
    let body = match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).expect("valid gzip");
            out
        }
        _ => body.to_vec(),
    };
    receiver.requests.lock().expect("requests").push(Request { headers, body, answered: status });
    (StatusCode::from_u16(status).expect("status"), answer.to_string())
}

/// Starts the server on a loopback port, in a runtime of its own thread.
fn serve(receiver: Arc<Receiver>) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let listener =
        runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind the test server");
    let addr = listener.local_addr().expect("address");
    let app = Router::new().route("/ingest", post(receive)).with_state(receiver);
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, runtime)
}

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

/// Event id → how many times it arrived in an answered-2xx request.
fn delivered(receiver: &Receiver, array: bool) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for request in receiver.requests.lock().expect("requests").iter().filter(|r| r.answered < 300) {
        let events: Vec<serde_json::Value> = if array {
            serde_json::from_slice(&request.body).expect("a JSON array")
        } else {
            request
                .body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).expect("a JSON line"))
                .collect()
        };
        for event in events {
            let id = event["event_id"].as_str().expect("event_id").to_string();
            *ids.entry(id).or_insert(0) += 1;
        }
    }
    ids
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
fn a_refused_batch_is_logged_with_the_answer_and_not_sent_again() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().expect("script").push_back((400, "mapping error: field `data.x` is not a date"));
    let (addr, _server) = serve(receiver.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 1_000;
    let sink = format!("{{name: out, type: http, url: \"http://{addr}/ingest\"}}");
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(pipeline(dir.path(), &sink, total)).args(["--listen", "127.0.0.1:0"]);
    let mut running = Running::spawn(cmd);
    let line = running.wait_for_line("the server refused the batch", Duration::from_secs(60));
    assert!(line.contains("mapping error: field `data.x` is not a date"), "{line}");
    assert!(line.contains("400"), "{line}");
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{summary}");

    let requests = receiver.requests.lock().expect("requests");
    assert_eq!(requests.iter().filter(|r| r.answered == 400).count(), 1);
    drop(requests);
    // JSON lines by default; the refused batch's events are not sent again.
    let ids = delivered(&receiver, false);
    let refused_batch = total - ids.len();
    assert!(refused_batch > 0 && refused_batch <= 200, "one batch refused: {refused_batch}");
    assert!(ids.values().all(|n| *n == 1));
}

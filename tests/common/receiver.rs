//! A test HTTP server for the sinks that POST: it answers scripted statuses in
//! turn (or 503 to everything while it is down), then 200, and keeps every request.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request as the server saw it.
pub struct Request {
    pub headers: HeaderMap,
    /// The body, gunzipped when it came gzip-encoded.
    pub body: Vec<u8>,
    pub answered: u16,
}

/// A test server that answers the scripted statuses in turn (then 200) and keeps
/// every request.
#[derive(Default)]
pub struct Receiver {
    pub script: Mutex<VecDeque<(u16, &'static str)>>,
    pub requests: Mutex<Vec<Request>>,
    /// While set, every request is answered 503.
    pub down: AtomicBool,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (status, answer) = if receiver.down.load(Ordering::SeqCst) {
        (503, "down")
    } else {
        receiver.script.lock().expect("script").pop_front().unwrap_or((200, "ok"))
    };
    let body = gunzip_if_encoded(&headers, &body);
    receiver.requests.lock().expect("requests").push(Request { headers, body, answered: status });
    (StatusCode::from_u16(status).expect("status"), answer.to_string())
}

/// The body, gunzipped when the request says it is gzip-encoded.
pub fn gunzip_if_encoded(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("valid gzip");
            out
        }
        _ => body.to_vec(),
    }
}

/// Starts the server on a loopback port, in a runtime of its own thread.
pub fn serve(receiver: Arc<Receiver>) -> (SocketAddr, tokio::runtime::Runtime) {
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

/// Event id → how many times it arrived in an answered-2xx request.
pub fn delivered(receiver: &Receiver, array: bool) -> BTreeMap<String, usize> {
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

//! HTTP endpoints: `/metrics` (Prometheus text format), `/health` (the process is
//! alive), `/ready` (accepting input; 503 while starting or draining), `/` (the
//! status page: charts and tables drawn in the browser from `/metrics` and
//! `/api/alerts`, the alerts firing now), `POST /forget`.
//!
//! Optionally over TLS (rustls; with `client_ca_file`, every client must present a
//! certificate from that CA) and behind bearer tokens (`auth`, see `auth.rs`):
//! every endpoint but `/health` then needs a token, `/metrics` too unless
//! `auth.metrics: open`. Refused requests are counted (`http_unauthorized_total`)
//! and recorded in the audit trail; every request to a protected endpoint gets an
//! access-log line (who, what, status).
//!
//! Connections are bounded so that clients cannot hold the server: at most
//! [`MAX_CONNECTIONS`] at once (more wait to be accepted), request headers must
//! arrive within [`HEADER_TIMEOUT`] (a slowloris client is cut off), and no
//! connection lives longer than [`CONNECTION_LIFETIME`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::decode::yaml::Node;
use crate::decode::{Decode, Diagnostics, MapReader};
use crate::telemetry::Telemetry;

mod auth;

pub(crate) use auth::{AuthConfig, MetricsAccess};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of /metrics, /health and /ready. The spec's default port is 9090.
    pub(crate) listen: SocketAddr,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) auth: Option<AuthConfig>,
}

/// The server's certificate and key, and the CA client certificates must chain to.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    pub(crate) cert_file: std::path::PathBuf,
    pub(crate) key_file: std::path::PathBuf,
    pub(crate) client_ca_file: Option<std::path::PathBuf>,
}

impl ServerTls {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<ServerTls> {
        let mut map = MapReader::new(node, "server tls", cx)?;
        let cert: Option<String> = map.required("cert_file", cx);
        let key: Option<String> = map.required("key_file", cx);
        let client_ca: Option<String> = map.optional("client_ca_file", cx);
        let pos = map.pos();
        map.finish(cx);
        let tls = ServerTls {
            cert_file: cert?.into(),
            key_file: key?.into(),
            client_ca_file: client_ca.map(Into::into),
        };
        // Read now: `validate` and the start report a bad certificate or key.
        if let Err(e) = tls.server_config() {
            cx.error(pos, format!("server tls: {e}"));
        }
        Some(tls)
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, crate::tls::TlsError> {
        crate::tls::server_config(&self.cert_file, &self.key_file, self.client_ca_file.as_deref())
    }
}

impl ServerConfig {
    pub(crate) fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> ServerConfig {
        let default =
            ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9090)), tls: None, auth: None };
        let Some(mut map) = node.and_then(|n| MapReader::new(n, "server", cx)) else { return default };
        let listen = map.node("listen").and_then(|n| {
            let text = String::decode(n, cx)?;
            match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    cx.error(
                        n.pos,
                        format!("listen must be an address such as 127.0.0.1:9090, got `{text}`"),
                    );
                    None
                }
            }
        });
        let tls = map.node("tls").and_then(|n| ServerTls::decode(n, cx));
        let auth = map.node("auth").and_then(|n| AuthConfig::decode(n, cx));
        map.finish(cx);
        ServerConfig { listen: listen.unwrap_or(default.listen), tls, auth }
    }

    /// What the start-up log says about a server reachable beyond this host.
    pub(crate) fn warn_if_exposed(&self, bound: SocketAddr) {
        if bound.ip().is_loopback() {
            return;
        }
        if self.auth.is_none() {
            tracing::warn!(address = %bound, "the HTTP server listens beyond this host without `server.auth`: anyone who can reach it reads /metrics and /ready");
        }
        if self.tls.is_none() {
            tracing::warn!(address = %bound, "the HTTP server listens beyond this host without `server.tls`: requests and tokens travel in the clear");
        }
    }
}

pub struct ServerState {
    pub(crate) telemetry: Arc<Telemetry>,
    /// Events streamed to taps, and dropped because a tap's client was slow.
    tap_events: prometheus::IntCounterVec,
    pub(crate) ready: AtomicBool,
    pub(crate) auth: Option<AuthConfig>,
    /// Requests refused for a missing or unknown token.
    pub(crate) unauthorized: prometheus::IntCounter,
    /// What `POST /forget` deletes from.
    pub(crate) forget: Option<Arc<crate::forget::Targets>>,
}

impl ServerState {
    pub(crate) fn new(telemetry: Arc<Telemetry>, auth: Option<AuthConfig>) -> Self {
        let unauthorized = telemetry.counter(
            "http_unauthorized_total",
            "HTTP requests refused for a missing or unknown bearer token",
        );
        let tap_events = telemetry.counter_vec(
            "tap_events_total",
            "Events offered to taps, by outcome (sent to the client, dropped because it read slower)",
            &["outcome"],
        );
        // Both series exist from the start (at 0), so a rate over them is defined.
        for outcome in ["sent", "dropped"] {
            tap_events.with_label_values(&[outcome]);
        }
        ServerState { telemetry, tap_events, ready: false.into(), auth, unauthorized, forget: None }
    }
}

/// The server's stop signal, for responses that stream until it fires (taps).
#[derive(Clone)]
struct Stopping(CancellationToken);

/// The peer of a connection, for the access log.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// The name of the token a request presented, for handlers that record it.
#[derive(Clone)]
struct Actor(String);

/// Bearer-token check and access log for every endpoint but `/health`.
async fn guard(State(state): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let peer = request.extensions().get::<Peer>().map(|p| p.0.to_string()).unwrap_or_default();
    let Some(auth) = &state.auth else { return next.run(request).await };
    // `/` is the status page itself, without data: it asks for a token and reads
    // the guarded endpoints with it.
    if path == "/health" || path == "/" || (path == "/metrics" && auth.metrics == MetricsAccess::Open) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let who = presented.and_then(|token| auth.identify(token)).map(str::to_string);
    let Some(who) = who else {
        state.unauthorized.inc();
        let reason = if presented.is_some() { "unknown token" } else { "no bearer token" };
        tracing::warn!(target: "access", %peer, %method, %path, status = 401, reason, "request refused");
        crate::audit::record(
            "anonymous",
            "auth.failed",
            &path,
            "denied",
            serde_json::json!({"peer": peer, "reason": reason}),
        );
        let mut response = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    };
    let mut request = request;
    request.extensions_mut().insert(Actor(who.clone()));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    tracing::info!(target: "access", %peer, who = %who, %method, %path, status, "request");
    crate::audit::record(
        &who,
        "read",
        &path,
        if status < 400 { "ok" } else { "error" },
        serde_json::json!({"peer": peer, "status": status}),
    );
    response
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Connections served at once; further clients wait to be accepted.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Time for a request's headers to arrive, the first and every later one on a
/// kept-alive connection.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is kept, however busy.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// On shutdown, how long requests in progress may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves until `stop` fires; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(status_page))
        .route("/api/alerts", get(firing_alerts))
        .route("/api/tap", get(tap))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/forget", post(forget))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "HTTP server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let service = TowerToHyperService::new(
            app.clone().layer(axum::Extension(Peer(peer))).layer(axum::Extension(Stopping(stop.clone()))),
        );
        let stopping = stop.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    // The handshake gets the same bound as a request's headers.
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(TokioIo::new(tls), service, stopping).await,
                        Ok(Err(e)) => {
                            tracing::info!(target: "access", %peer, error = %e, "TLS handshake refused")
                        }
                        Err(_) => tracing::info!(target: "access", %peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(TokioIo::new(stream), service, stopping).await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} })
        .await;
    Ok(())
}

/// One HTTP/1 connection, bounded in header time and lifetime.
async fn serve_connection<I, S>(io: I, service: S, stopping: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: 'static + Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    <S::ResBody as hyper::body::Body>::Data: Send,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
        _ = stopping.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// The server's TLS configuration, when `tls` is set.
pub(crate) fn tls_config(
    config: &ServerConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, crate::tls::TlsError> {
    config.tls.as_ref().map(|tls| tls.server_config().map(Arc::new)).transpose()
}

/// The status page: one self-contained file (no build step, nothing fetched
/// from elsewhere).
const STATUS_PAGE: &str = include_str!("status.html");

async fn status_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Its script is inline and talks to this origin only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'",
            ),
        ],
        STATUS_PAGE,
    )
}

/// Events a tap sends when the client names no limit, and the most it may ask.
const TAP_DEFAULT_LIMIT: u64 = 100;
const TAP_MAX_LIMIT: u64 = 1_000_000;
/// A tap ends by itself before the connection's lifetime does.
const TAP_MAX_DURATION: Duration = Duration::from_secs(100);

/// `GET /api/tap?step=NAME|sink=NAME[&event_type=GLOB][&component=GLOB]
/// [&min_severity=LEVEL][&limit=N]`: events as JSON lines while they pass, then
/// one `{"tap_end": …}` line. Events leave the process this way, so it needs
/// `server.auth` (403 without) and refuses steps before the PII scrubber.
async fn tap(
    State(state): State<Arc<ServerState>>,
    axum::Extension(Stopping(stop)): axum::Extension<Stopping>,
    uri: axum::http::Uri,
) -> Response {
    if state.auth.is_none() {
        let message = "tap streams events out of the process: it needs server.auth (bearer tokens)\n";
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let params = crate::query::params(uri.query().unwrap_or(""));
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let point = match (param("step"), param("sink")) {
        (Some(step), None) => crate::tap::Point::Step(step),
        (None, Some(sink)) => crate::tap::Point::Sink(sink),
        _ => return (StatusCode::BAD_REQUEST, "name one of step= or sink=\n").into_response(),
    };
    let min_severity = match param("min_severity") {
        None => None,
        Some(text) => match synaptic_plugin_sdk::Severity::parse(&text.to_uppercase()) {
            Some(level) => Some(level),
            None => {
                let message =
                    format!("min_severity `{text}`: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL\n");
                return (StatusCode::BAD_REQUEST, message).into_response();
            }
        },
    };
    let limit = match param("limit").map(|l| l.parse::<u64>()) {
        None => TAP_DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=TAP_MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            let message = format!("limit must be a number from 1 to {TAP_MAX_LIMIT}\n");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let filter =
        crate::tap::Filter { event_type: param("event_type"), component: param("component"), min_severity };
    let tap = match crate::tap::open(point, &filter, Some(state.tap_events.with_label_values(&["dropped"]))) {
        Ok(tap) => tap,
        Err(e @ crate::tap::TapError::Unknown(..)) => {
            return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response(),
    };
    let deadline = tokio::time::Instant::now() + TAP_MAX_DURATION;
    let sent_total = state.tap_events.with_label_values(&["sent"]);
    // The tap lives in the stream: when the client goes, the stream is dropped
    // and the tap closes with it.
    let stream = futures_util::stream::unfold((tap, 0u64, false), move |(mut tap, sent, ended)| {
        let sent_total = sent_total.clone();
        let stop = stop.clone();
        async move {
            if ended {
                return None;
            }
            // Ends at the limit, at the tap's time bound, or when the server
            // stops (a tap must not hold a shutdown for its grace period).
            let next = if sent >= limit {
                None
            } else {
                tokio::select! {
                    line = tokio::time::timeout_at(deadline, tap.events.recv()) => line.ok().flatten(),
                    _ = stop.cancelled() => None,
                }
            };
            match next {
                Some(line) => {
                    sent_total.inc();
                    let mut chunk = Vec::with_capacity(line.len() + 1);
                    chunk.extend_from_slice(&line);
                    chunk.push(b'\n');
                    Some((
                        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)),
                        (tap, sent + 1, false),
                    ))
                }
                None => {
                    // (The instance's metric counted them as they dropped.)
                    let dropped = tap.dropped.load(Ordering::Relaxed);
                    let reason = match (sent >= limit, stop.is_cancelled()) {
                        (true, _) => "limit",
                        (false, true) => "shutdown",
                        (false, false) => "time",
                    };
                    let end =
                        serde_json::json!({"tap_end": {"sent": sent, "dropped": dropped, "reason": reason}});
                    Some((Ok(bytes::Bytes::from(format!("{end}\n"))), (tap, sent, true)))
                }
            }
        }
    });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-ndjson"));
    response
}

/// The alerts firing now, as JSON (`crate::alert::board`).
async fn firing_alerts() -> impl IntoResponse {
    let board = crate::alert::board::current();
    let body = serde_json::json!({
        "now_ms": crate::clock::now_ms(),
        "total": board.total,
        "evaluated_ms": board.evaluated_ms,
        "alerts": board.alerts,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.render())
}

/// 200 while accepting input, with one line per degraded sink (its circuit open
/// or half-open: its events wait in its buffer); 503 while starting or draining.
async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string());
    }
    let mut body = String::from("ready\n");
    for (sink, state) in state.telemetry.nonzero_gauges("sink_circuit_state", "sink") {
        let circuit = if state == 1 { "open" } else { "half-open" };
        body.push_str(&format!("degraded: sink {sink} (circuit {circuit}; its events wait in its buffer)\n"));
    }
    for (receiver, state) in state.telemetry.nonzero_gauges("receiver_circuit_state", "receiver") {
        let circuit = if state == 1 { "open" } else { "half-open" };
        body.push_str(&format!(
            "degraded: alert receiver {receiver} (circuit {circuit}; its alerts wait in its outbox)\n"
        ));
    }
    (StatusCode::OK, body)
}

/// The largest `POST /forget` body read.
const FORGET_BODY_LIMIT: usize = 16 * 1024;

/// `POST /forget` with `{"subject": "data.agent_id=agent-017"}`: the deletion
/// request of `crate::forget`, answered with its outcome (200 when every place
/// was done, 500 when one was not). Refused unless the server checks tokens: a
/// deletion must name who asked.
async fn forget(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let plain = |status: StatusCode, text: String| (status, text + "\n").into_response();
    if state.auth.is_none() {
        return plain(
            StatusCode::FORBIDDEN,
            "POST /forget needs `server.auth`: a deletion request must name who asked".into(),
        );
    }
    let Some(targets) = state.forget.clone() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "deletion is not available in this process".into());
    };
    let actor = request.extensions().get::<Actor>().map_or_else(|| "unknown".to_string(), |a| a.0.clone());
    let body = match axum::body::to_bytes(request.into_body(), FORGET_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {FORGET_BODY_LIMIT} bytes"),
            )
        }
    };
    let subject = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|doc| {
            doc["subject"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "expected {\"subject\": \"FIELD=VALUE\"}".to_string())
        })
        .and_then(|text| crate::forget::Subject::parse(&text));
    let subject = match subject {
        Ok(subject) => subject,
        Err(message) => return plain(StatusCode::BAD_REQUEST, message),
    };
    let runtime = tokio::runtime::Handle::current();
    let done =
        tokio::task::spawn_blocking(move || crate::forget::forget(&targets, &subject, &actor, &runtime))
            .await;
    match done {
        Ok(outcome) => {
            let status = if outcome.complete { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
            let body = serde_json::to_string_pretty(&outcome).unwrap_or_default() + "\n";
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("the deletion request failed: {e}")),
    }
}

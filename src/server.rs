//! HTTP endpoints: `/metrics` (Prometheus text format), `/health` (the process is
//! alive), `/ready` (accepting input; 503 while starting or draining).
//!
//! Connections are bounded so that clients cannot hold the server: at most
//! [`MAX_CONNECTIONS`] at once (more wait to be accepted), request headers must
//! arrive within [`HEADER_TIMEOUT`] (a slowloris client is cut off), and no
//! connection lives longer than [`CONNECTION_LIFETIME`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
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

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of /metrics, /health and /ready. The spec's default port is 9090.
    pub(crate) listen: SocketAddr,
}

impl ServerConfig {
    pub(crate) fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> ServerConfig {
        let default = ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9090)) };
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
        map.finish(cx);
        ServerConfig { listen: listen.unwrap_or(default.listen) }
    }
}

pub struct ServerState {
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) ready: AtomicBool,
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

/// Serves until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .with_state(state);
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
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "HTTP server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let stopping = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} })
        .await;
    Ok(())
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

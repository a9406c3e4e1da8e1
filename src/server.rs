//! HTTP endpoints: `/metrics` (Prometheus text format), `/health` (the process is
//! alive), `/ready` (accepting input; 503 while starting or draining).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;

pub struct ServerState {
    pub telemetry: Arc<Telemetry>,
    pub ready: AtomicBool,
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

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
    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.render())
}

async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

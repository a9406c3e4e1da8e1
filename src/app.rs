//! Runs a pipeline: builds the topology from the config, serves the endpoints,
//! and shuts down in order: stop reading, drain in-flight batches (until the one
//! drain deadline), flush the sinks, stop the services, report.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::ack::AckLedger;
use crate::config::{Config, Topology};
use crate::server::{self, ServerState};
use crate::telemetry::Telemetry;

pub struct RunOptions {
    /// Overrides `server.listen`.
    pub listen: Option<SocketAddr>,
    /// Fires to stop reading and drain (SIGINT/SIGTERM in the CLI; tests inject it).
    pub shutdown: CancellationToken,
    /// Called once the server is bound, with its address.
    pub on_listening: Option<Box<dyn FnOnce(SocketAddr) + Send>>,
}

/// What a run did, printed at exit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Records read from the source.
    pub read: u64,
    /// Records whose batch every sink acknowledged.
    pub acknowledged: u64,
    /// Records whose batch was not acknowledged (a sink gave up or the drain timed out).
    pub unacknowledged: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub(crate) unrouted: u64,
}

/// A stop after the drain deadline still lets sinks answer for this long.
const GIVE_UP_GRACE: Duration = Duration::from_secs(5);

/// Spawns `task`; if it panics, logs it and fires `died`.
fn watched<F>(what: &'static str, task: F, died: &CancellationToken) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = tokio::spawn(task);
    let died = died.clone();
    tokio::spawn(async move {
        if let Err(e) = inner.await {
            tracing::error!(task = what, error = %e, "a {what} task died; stopping the run");
            died.cancel();
        }
    })
}

pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<Summary> {
    let telemetry = Arc::new(Telemetry::new());
    // Fires once, at the drain deadline: sinks stop retrying, the source stops
    // waiting for acknowledgements.
    let give_up = CancellationToken::new();
    let ledger = Arc::new(AckLedger::default());
    let _audit = open_audit(&config)?;
    crate::audit::record(
        "local",
        "config.loaded",
        &config.origin.file,
        "ok",
        serde_json::json!({"sha256": config.origin.sha256}),
    );
    let server_tls = server::tls_config(&config.server).context("the HTTP server's TLS settings")?;
    // Plugins load before anything is announced: a pipeline whose plugin cannot
    // load does not start.
    let Topology { source, emitter, acks, pipeline, batches, sinks, services } =
        config.build(&telemetry, ledger.clone(), &give_up).await?;

    let listen = options.listen.unwrap_or(config.server.listen);
    let listener =
        server::bind(listen).await.with_context(|| format!("binding the HTTP server to {listen}"))?;
    let bound = listener.local_addr().context("reading the HTTP server address")?;
    let mut state = ServerState::new(telemetry.clone(), config.server.auth.clone());
    state.forget = Some(Arc::new(crate::forget::Targets::of(&config.sinks, &config.dead_letter)));
    let state = Arc::new(state);
    let server_stop = CancellationToken::new();
    let scheme = if server_tls.is_some() { "https" } else { "http" };
    let server = tokio::spawn(server::serve(listener, state.clone(), server_tls, server_stop.clone()));
    tracing::info!(address = %bound, scheme, authenticated = config.server.auth.is_some(), "serving /metrics, /health and /ready");
    config.server.warn_if_exposed(bound);
    if let Some(callback) = options.on_listening {
        callback(bound);
    }

    let source_task = tokio::spawn(source.run(emitter, acks, options.shutdown.clone(), give_up.clone()));
    // A pipeline or sink task that panics would leave the source reading batches
    // that can never finish: the run stops instead, with an error.
    let died = CancellationToken::new();
    let pipeline_task = watched("pipeline", pipeline.run(batches), &died);
    let sink_handles: Vec<_> = sinks.into_iter().map(|t| watched("sink", t.run(), &died)).collect();
    state.ready.store(true, Ordering::Release);

    let drain = async {
        let source_result = source_task.await;
        let _ = pipeline_task.await;
        for handle in sink_handles {
            let _ = handle.await;
        }
        source_result
    };
    tokio::pin!(drain);
    let drain_timeout = config.limits.drain_timeout;
    let source_result = tokio::select! {
        result = &mut drain => result,
        _ = died.cancelled() => {
            state.ready.store(false, Ordering::Release);
            options.shutdown.cancel();
            give_up.cancel();
            // The source stops, nothing more is committed; what is unfinished is
            // read again by the next run.
            let _ = tokio::time::timeout(GIVE_UP_GRACE, &mut drain).await;
            server_stop.cancel();
            anyhow::bail!("a pipeline task died; unfinished batches were not acknowledged (see the log above)");
        }
        _ = options.shutdown.cancelled() => {
            state.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: draining in-flight events");
            match tokio::time::timeout(drain_timeout, &mut drain).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(timeout = ?drain_timeout, "drain timed out; unacknowledged batches will be reported");
                    give_up.cancel();
                    tokio::time::timeout(GIVE_UP_GRACE, &mut drain)
                        .await
                        .context("sinks did not stop after the drain deadline")?
                }
            }
        }
    };
    state.ready.store(false, Ordering::Release);
    let report = source_result.context("source task panicked")?.context("source failed")?;
    // Every event has passed the steps: the services finish their work (the alert
    // engine's last evaluation and what it holds) and stop.
    for service in services {
        service.shutdown().await;
    }
    server_stop.cancel();
    if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "HTTP server stopped with an error");
    }

    let acknowledged = ledger.done_events.load(Ordering::Relaxed);
    Ok(Summary {
        read: report.records,
        acknowledged,
        unacknowledged: report.records.saturating_sub(acknowledged),
        dead_lettered: ledger.dead_lettered.load(Ordering::Relaxed),
        dropped: ledger.dropped.load(Ordering::Relaxed),
        unrouted: ledger.unrouted.load(Ordering::Relaxed),
    })
}

/// A request made without a running pipeline (`forget --config`): refused while
/// something serves on the config's server address, since a running pipeline's
/// file sinks would go on writing to the files this replaces.
pub fn forget_stopped(
    config: &Config,
    subject: &crate::forget::Subject,
    actor: &str,
) -> anyhow::Result<crate::forget::Outcome> {
    let listen = config.server.listen;
    if std::net::TcpStream::connect_timeout(&listen, std::time::Duration::from_millis(500)).is_ok() {
        anyhow::bail!(
            "something serves on {listen}, this config's server address: if it is the pipeline, send the request to it (--url http://{listen}) instead"
        );
    }
    let _audit = open_audit(config)?;
    // Multi-threaded: `Handle::block_on` drives I/O only on a runtime with its own
    // worker threads.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let targets = crate::forget::Targets::of(&config.sinks, &config.dead_letter);
    Ok(crate::forget::forget(&targets, subject, actor, runtime.handle()))
}

/// `replay`: the records through the config's steps and through a copy with
/// `with` swapped in (see `Config::with_candidate`), compared. Returns the
/// differences and the two versions' descriptions.
pub fn replay(
    config: &Config,
    with: &[std::path::PathBuf],
    step: Option<&str>,
    records: impl Iterator<Item = crate::replay::Record>,
    show: usize,
) -> anyhow::Result<(crate::replay::Diff, String)> {
    let (candidate, changes) = config.with_candidate(with, step)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let diff = runtime.block_on(async {
        let current = config.replay_version().context("building the current pipeline")?;
        let candidate = candidate.replay_version().context("building the candidate pipeline")?;
        crate::replay::run(records, current, candidate, show).await
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok((diff, changes.join("; ")))
}

/// The config's audit trail, open until the session is dropped.
fn open_audit(config: &Config) -> anyhow::Result<Option<crate::audit::AuditSession>> {
    let Some(audit) = &config.audit else { return Ok(None) };
    let session = crate::audit::open(audit)
        .with_context(|| format!("opening the audit log {}", audit.path.display()))?;
    Ok(Some(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_fires_died_and_one_that_returns_does_not() {
        let died = CancellationToken::new();
        let fine = watched("sink", async {}, &died);
        fine.await.expect("the watcher itself ends");
        assert!(!died.is_cancelled(), "a task that returns is not a death");
        let doomed = watched("pipeline", async { panic!("boom") }, &died);
        tokio::time::timeout(Duration::from_secs(5), died.cancelled()).await.expect("died fires");
        doomed.await.expect("the watcher ends after reporting");
    }
}

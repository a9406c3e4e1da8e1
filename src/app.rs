//! Wires source → pipeline → sinks, serves the endpoints, and shuts down in order:
//! stop reading, drain in-flight batches, flush sinks, report.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::{AckLedger, AckNotice};
use crate::alert::service::AlertService;
use crate::config::{Config, StepKind};
use crate::pipeline::{Pipeline, SinkRoute};
use crate::plugin::PluginHost;
use crate::route::Matcher;
use crate::scrub::DeadLetterScrubber;
use crate::server::{self, ServerState};
use crate::sink::{Output, SinkTask, QUEUE_BATCHES};
use crate::source::kafka::KafkaOffsets;
use crate::source::{Emitter, Source};
use crate::step::RunningStep;
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
    pub unrouted: u64,
}

/// A stop after the drain deadline still lets sinks answer for this long.
const GIVE_UP_GRACE: Duration = Duration::from_secs(5);

pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<Summary> {
    let telemetry = Arc::new(Telemetry::new());
    let give_up = CancellationToken::new();

    let mut sink_tasks = Vec::new();
    let mut routes = Vec::new();
    let traces = config.traces();
    for sink in &config.sinks {
        let output = Output::open(&sink.output, &traces)
            .await
            .with_context(|| format!("starting sink `{}`", sink.name))?;
        let takes_spans = output.takes_spans();
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        sink_tasks.push(SinkTask {
            name: sink.name.clone(),
            output,
            counters: telemetry.sink_counters(&sink.name),
            rx,
            give_up: give_up.clone(),
        });
        routes.push(SinkRoute {
            name: sink.name.clone(),
            matcher: sink.matcher.as_ref().map(Matcher::new),
            tx,
            takes_spans,
        });
    }
    let dead_letter_output =
        Output::open(&config.dead_letter, &traces).await.context("starting the dead-letter sink")?;
    let (dlq_tx, dlq_rx) = mpsc::channel(QUEUE_BATCHES);
    sink_tasks.push(SinkTask {
        name: "dead_letter".into(),
        output: dead_letter_output,
        counters: telemetry.sink_counters("dead_letter"),
        rx: dlq_rx,
        give_up: give_up.clone(),
    });

    // Plugins load before anything is announced: a pipeline whose plugin cannot
    // load does not start.
    let mut plugins = PluginHost::new(&config.plugins);
    let alerts = config.pipeline.iter().find_map(|s| match &s.kind {
        StepKind::Alerts(a) => Some(a),
        _ => None,
    });
    let alerts = alerts.map(|a| AlertService::start(a, &telemetry)).transpose()?;
    let steps = config
        .pipeline
        .iter()
        .map(|s| match (&s.kind, &alerts) {
            (StepKind::Alerts(_), Some(service)) => {
                Ok(RunningStep::new(Box::new(service.step(&s.name)), &telemetry))
            }
            _ => RunningStep::build(s, config.schema, &mut plugins, &telemetry),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Watches plugin files until the run ends (dropping it stops the thread).
    let _plugin_watcher = plugins.watch()?;

    let listen = options.listen.unwrap_or(config.server.listen);
    let listener =
        server::bind(listen).await.with_context(|| format!("binding the HTTP server to {listen}"))?;
    let bound = listener.local_addr().context("reading the HTTP server address")?;
    let state = Arc::new(ServerState { telemetry: telemetry.clone(), ready: false.into() });
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, state.clone(), server_stop.clone()));
    tracing::info!(address = %bound, "serving /metrics, /health and /ready");
    if let Some(callback) = options.on_listening {
        callback(bound);
    }

    for warning in crate::scrub::exports_before_scrubber(&config.pipeline) {
        tracing::warn!("{warning}");
    }
    let scrubber = DeadLetterScrubber::for_pipeline(&config.pipeline)?;
    let pipeline =
        Pipeline::new(config.schema, config.limits.max_event_bytes, steps, routes, dlq_tx, telemetry.clone())
            .with_scrubber(scrubber);
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let ledger = Arc::new(AckLedger::default());
    let emitter = Emitter::new(batch_tx, ack_tx, &config.batch, &config.limits, telemetry.clone());
    let source = Source::build(&config.source, config.limits.max_event_bytes);
    let ledger_task = tokio::spawn(follow_acks(ack_rx, ledger.clone(), telemetry.clone(), source.offsets()));
    let source_task =
        tokio::spawn(source.run(emitter, options.shutdown.clone(), config.limits.drain_timeout));
    let pipeline_task = tokio::spawn(pipeline.run(batch_rx));
    let sink_handles: Vec<_> = sink_tasks.into_iter().map(|t| tokio::spawn(t.run())).collect();
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
    let source_result = tokio::select! {
        result = &mut drain => result,
        _ = options.shutdown.cancelled() => {
            state.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: draining in-flight events");
            match tokio::time::timeout(config.limits.drain_timeout, &mut drain).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(timeout = ?config.limits.drain_timeout, "drain timed out; unacknowledged batches will be reported");
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
    let _ = ledger_task.await;
    // Every event has passed the alerts step: a last evaluation, then what is held goes out.
    if let Some(alerts) = alerts {
        alerts.shutdown().await;
    }
    server_stop.cancel();
    if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "HTTP server stopped with an error");
    }

    let acknowledged = ledger.done_events.load(Ordering::Relaxed);
    let summary = Summary {
        read: report.records,
        acknowledged,
        unacknowledged: report.records.saturating_sub(acknowledged),
        dead_lettered: telemetry.dead_lettered.with_label_values(&["decode"]).get()
            + telemetry.dead_lettered.with_label_values(&["schema"]).get()
            + telemetry.dead_lettered.with_label_values(&["step"]).get(),
        dropped: config.pipeline.iter().map(|s| telemetry.step_counters(&s.name).dropped.get()).sum(),
        unrouted: telemetry.unrouted.get(),
    };
    Ok(summary)
}

async fn follow_acks(
    mut rx: mpsc::UnboundedReceiver<AckNotice>,
    ledger: Arc<AckLedger>,
    telemetry: Arc<Telemetry>,
    offsets: Option<Arc<KafkaOffsets>>,
) {
    while let Some(notice) = rx.recv().await {
        ledger.record(&notice);
        if let Some(offsets) = &offsets {
            offsets.batch_finished(&notice);
        }
        telemetry.in_flight_batches.dec();
        match notice.outcome {
            crate::ack::Outcome::Done => telemetry.acked_events.inc_by(notice.events as u64),
            crate::ack::Outcome::Failed => telemetry.failed_events.inc_by(notice.events as u64),
        }
    }
}

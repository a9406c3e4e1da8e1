//! Building a run from the config: the sinks opened, the steps built (plugins
//! loaded, services registered), the pipeline and the source wired to them. The
//! result is generic: whoever runs it needs to know no component.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pipeline::{exports_before_scrubber, scrubber_step};
use super::Config;
use crate::ack::{AckLedger, Acks};
use crate::pipeline::{Pipeline, SinkRoute};
use crate::plugin::PluginHost;
use crate::route::Matcher;
use crate::scrub::DeadLetterScrubber;
use crate::sink::{SinkTask, DEAD_LETTER, QUEUE_BATCHES};
use crate::source::{Emitter, RawBatch, Source};
use crate::step::{BuildContext, Service};
use crate::telemetry::Telemetry;

/// Everything a run is made of, built and not yet started.
pub struct Topology {
    pub(crate) source: Source,
    pub(crate) emitter: Emitter,
    /// The source's acknowledgement stream.
    pub(crate) acks: Acks,
    pub(crate) pipeline: Pipeline,
    pub(crate) batches: mpsc::Receiver<RawBatch>,
    pub(crate) sinks: Vec<SinkTask>,
    /// Started with the steps; shut down after the last batch.
    pub(crate) services: Vec<Box<dyn Service>>,
}

impl Config {
    /// Opens the sinks, builds the steps (a plugin that cannot load fails the start)
    /// and the source. What becomes of every record is recorded in `ledger`; sinks
    /// stop retrying when `give_up` fires. Must run inside the Tokio runtime.
    pub async fn build(
        &self,
        telemetry: &Arc<Telemetry>,
        ledger: Arc<AckLedger>,
        give_up: &CancellationToken,
    ) -> anyhow::Result<Topology> {
        // The dead-letter sink first: the others pass it what their outputs refuse.
        let (dead_letter_tx, dead_letter_rx) = mpsc::channel(QUEUE_BATCHES);
        let dead_letter_parts =
            self.dead_letter.open(telemetry).await.context("starting the dead-letter sink")?;
        let mut sinks =
            vec![SinkTask::new(DEAD_LETTER, dead_letter_parts, dead_letter_rx, give_up.clone(), None)];
        let mut routes = Vec::new();
        for sink in &self.sinks {
            let parts =
                sink.open(telemetry).await.with_context(|| format!("starting sink `{}`", sink.name))?;
            let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
            sinks.push(SinkTask::new(&sink.name, parts, rx, give_up.clone(), Some(dead_letter_tx.clone())));
            routes.push(SinkRoute {
                name: sink.name.clone(),
                matcher: sink.matcher.as_ref().map(Matcher::new),
                tx,
                side_input: sink.output.side_input(),
            });
        }

        let workers = self.workers.count();
        let mut cx = BuildContext::new(telemetry.clone(), self.schema);
        cx.insert_shared(PluginHost::new(&self.plugins_for(workers)));
        let steps =
            self.pipeline.iter().map(|step| step.build(&mut cx)).collect::<anyhow::Result<Vec<_>>>()?;
        let services = cx.finish()?;

        for warning in exports_before_scrubber(&self.pipeline) {
            tracing::warn!("{warning}");
        }
        let scrubber =
            scrubber_step(&self.pipeline).map(|(_, p)| DeadLetterScrubber::new(&p.config)).transpose()?;
        // What `tap` may listen to: every step after the scrubber, and the sinks.
        let step_names: Vec<String> = self.pipeline.iter().map(|s| s.name.clone()).collect();
        let sink_names: Vec<String> = self.sinks.iter().map(|s| s.name.clone()).collect();
        crate::tap::register_points(&step_names, scrubber_step(&self.pipeline).map(|(i, _)| i), &sink_names);
        let max_event_bytes = self.limits.max_event_bytes;
        let pipeline =
            Pipeline::new(self.schema, max_event_bytes, steps, routes, dead_letter_tx, telemetry.clone())
                .with_scrubber(scrubber)
                .with_ledger(ledger.clone())
                .with_workers(workers)?;
        tracing::info!(workers, "pipeline workers");
        // One batch ready for each worker.
        let (batch_tx, batches) = mpsc::channel(workers);
        let (emitter, acks) = Emitter::new(batch_tx, &self.batch, &self.limits, telemetry, ledger);
        let source = Source::build(&self.source, max_event_bytes, telemetry);
        Ok(Topology { source, emitter, acks, pipeline, batches, sinks, services })
    }

    /// The plugin host's settings, its instance pool large enough for `workers`:
    /// each worker holds an instance of every plugin, and a swap one more.
    pub(super) fn plugins_for(&self, workers: usize) -> crate::plugin::PluginHostConfig {
        let mut plugins = self.plugins.clone();
        let steps = self.pipeline.iter().filter(|s| matches!(s.kind, super::StepKind::Plugin(_))).count();
        let needed = u32::try_from(steps.saturating_mul(workers + 1)).unwrap_or(u32::MAX);
        if needed > plugins.max_instances {
            tracing::info!(
                configured = plugins.max_instances,
                needed,
                "plugins.max_instances raised: {steps} plugin steps on {workers} workers"
            );
            plugins.max_instances = needed;
        }
        plugins
    }

    /// Warnings about the pipeline's order (steps that export event text before the
    /// PII scrubber), for `validate`.
    pub fn warnings(&self) -> Vec<String> {
        exports_before_scrubber(&self.pipeline)
    }
}

//! Steps: what runs on every batch, in config order. A step receives the batch and
//! may change, drop or dead-letter events; it never blocks on I/O.

mod drop;
mod tag;
mod traces;

use crate::config::{StepConfig, StepKind};
use crate::event::{Batch, SchemaMode};
use crate::metrics::MetricsStep;
use crate::plugin::PluginHost;
use crate::route::Matcher;
use crate::telemetry::{StepCounters, Telemetry};

pub use drop::DropStep;
pub use tag::TagStep;
pub use traces::TracesStep;

/// One pipeline stage. Built-in steps and (hot-swappable) plugins implement it.
pub trait Step: Send {
    fn name(&self) -> &str;
    /// Processes the batch in place: change events, remove them (counting
    /// `batch.dropped`), or move them to `batch.dead_letters`.
    fn process(&mut self, batch: &mut Batch);
}

/// A step plus its metric handles.
pub struct RunningStep {
    step: Box<dyn Step>,
    counters: StepCounters,
}

impl RunningStep {
    /// Builds a step; plugin steps load their first version through `plugins`.
    pub fn build(
        config: &StepConfig,
        schema: SchemaMode,
        plugins: &mut PluginHost,
        telemetry: &Telemetry,
    ) -> anyhow::Result<Self> {
        let step: Box<dyn Step> = match &config.kind {
            StepKind::Tag { tags } => Box::new(TagStep::new(&config.name, tags)),
            StepKind::Drop { matcher } => Box::new(DropStep::new(&config.name, Matcher::new(matcher))),
            StepKind::Plugin(plugin) => {
                Box::new(plugins.build_step(&config.name, plugin, schema, telemetry)?)
            }
            StepKind::Metrics(m) => Box::new(MetricsStep::new(&config.name, m.mapping.clone(), telemetry)),
            StepKind::Traces(t) => Box::new(TracesStep::new(&config.name, t, telemetry)),
            // It shares its engine with the evaluation task the app starts.
            StepKind::Alerts(_) => {
                anyhow::bail!("the alerts step `{}` is built with its service", config.name)
            }
        };
        Ok(RunningStep { counters: telemetry.step_counters(step.name()), step })
    }

    /// A step built by hand (benchmarks, tests).
    pub fn new(step: Box<dyn Step>, telemetry: &Telemetry) -> Self {
        RunningStep { counters: telemetry.step_counters(step.name()), step }
    }

    pub fn process(&mut self, batch: &mut Batch) {
        let (events_in, dropped, dead) = (batch.events.len(), batch.dropped, batch.dead_letters.len());
        self.step.process(batch);
        self.counters.events_in.inc_by(events_in as u64);
        self.counters.events_out.inc_by(batch.events.len() as u64);
        self.counters.dropped.inc_by(batch.dropped.saturating_sub(dropped) as u64);
        self.counters.dead_lettered.inc_by(batch.dead_letters.len().saturating_sub(dead) as u64);
    }
}

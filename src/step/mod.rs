//! Steps: what runs on every batch, in config order. A step receives the batch and
//! may change, drop or dead-letter events; it never blocks on I/O.
//!
//! Every kind of step builds itself from its config through a [`BuildContext`]:
//! the pipeline's metrics registry and schema mode, resources shared by steps of
//! one kind (the plugin host), and the background [`Service`]s a step needs beside
//! the batch path (the alert engine's evaluation task), which the app shuts down
//! after the last batch without knowing what they are. The built-in `tag`, `drop`,
//! `consent`, `minimize`, `retention` and `traces` steps live here; `plugin`, `metrics` and `alerts` with their modules.

mod consent;
mod degrade;
mod drop;
mod minimize;
pub(crate) mod order;
mod retention;
mod tag;
pub mod traces;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prometheus::IntCounter;

use crate::event::{Batch, SchemaMode};
use crate::telemetry::Telemetry;

pub(crate) use consent::ConsentStepConfig;
pub(crate) use degrade::DegradeStepConfig;
pub(crate) use drop::DropStepConfig;
pub(crate) use minimize::MinimizeStepConfig;
pub(crate) use retention::RetentionStepConfig;
pub(crate) use tag::TagStepConfig;
pub use traces::{TracesConfig, TracesStep};

/// One pipeline stage. Built-in steps and (hot-swappable) plugins implement it.
pub trait Step: Send {
    fn name(&self) -> &str;
    /// Processes the batch in place: change events, remove them (counting
    /// `batch.dropped`), or move them to `batch.dead_letters`.
    fn process(&mut self, batch: &mut Batch);
    /// A copy of this step for another pipeline worker, sharing whatever must be
    /// shared (a plugin's version and rollback state) and owning the rest (its
    /// instance). `None` (the default) marks a step whose results depend on the
    /// order of batches (metrics, alerts, traces, degrade): the workers then run its
    /// one copy a batch at a time, in input order.
    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(None)
    }
}

/// A task that runs beside the pipeline for as long as the run lasts. It is shut
/// down after every batch has passed the steps and reached the sinks.
pub trait Service: Send {
    /// Finishes the service's work (a last evaluation, a flush) and stops it.
    fn shutdown(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A resource the steps of one kind share while they are built (the plugin host),
/// started once every step is built.
pub(crate) trait SharedResource: Any + Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Starts what the resource does while the pipeline runs, if anything.
    fn start(self: Box<Self>) -> anyhow::Result<Option<Box<dyn Service>>>;
}

/// What steps are built with.
pub struct BuildContext {
    telemetry: Arc<Telemetry>,
    schema: SchemaMode,
    shared: Vec<Box<dyn SharedResource>>,
    services: Vec<Box<dyn Service>>,
}

impl BuildContext {
    pub(crate) fn new(telemetry: Arc<Telemetry>, schema: SchemaMode) -> Self {
        BuildContext { telemetry, schema, shared: Vec::new(), services: Vec::new() }
    }

    pub(crate) fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub(crate) fn schema(&self) -> SchemaMode {
        self.schema
    }

    /// Makes `resource` available to the steps built after this.
    pub(crate) fn insert_shared<T: SharedResource>(&mut self, resource: T) {
        self.shared.push(Box::new(resource));
    }

    /// The shared resource of type `T`, if one was inserted.
    pub(crate) fn shared<T: SharedResource>(&mut self) -> Option<&mut T> {
        self.shared.iter_mut().find_map(|r| r.as_any_mut().downcast_mut::<T>())
    }

    /// Runs `service` beside the pipeline until the run ends.
    pub(crate) fn add_service(&mut self, service: Box<dyn Service>) {
        self.services.push(service);
    }

    /// Starts the shared resources; returns every service to shut down at the end.
    pub(crate) fn finish(self) -> anyhow::Result<Vec<Box<dyn Service>>> {
        let mut services = self.services;
        for resource in self.shared {
            services.extend(resource.start()?);
        }
        Ok(services)
    }
}

/// The steps' own metrics: events in and out of each step.
#[derive(Clone)]
pub(crate) struct StepCounters {
    pub(crate) events_in: IntCounter,
    pub(crate) events_out: IntCounter,
    pub dropped: IntCounter,
    pub(crate) dead_lettered: IntCounter,
}

impl StepCounters {
    pub(crate) fn register(telemetry: &Telemetry, step: &str) -> Self {
        let family = telemetry.counter_vec(
            "step_events_total",
            "Events through each step: in, out, dropped, dead_lettered",
            &["step", "outcome"],
        );
        StepCounters {
            events_in: family.with_label_values(&[step, "in"]),
            events_out: family.with_label_values(&[step, "out"]),
            dropped: family.with_label_values(&[step, "dropped"]),
            dead_lettered: family.with_label_values(&[step, "dead_lettered"]),
        }
    }
}

/// A step plus its metric handles.
pub struct RunningStep {
    step: Box<dyn Step>,
    counters: StepCounters,
}

impl RunningStep {
    pub fn new(step: Box<dyn Step>, telemetry: &Telemetry) -> Self {
        RunningStep { counters: StepCounters::register(telemetry, step.name()), step }
    }

    /// This step for another worker, with the same counters; `None` for an
    /// order-dependent step (see [`Step::fork`]).
    pub fn fork(&self) -> anyhow::Result<Option<RunningStep>> {
        Ok(self.step.fork()?.map(|step| RunningStep { step, counters: self.counters.clone() }))
    }

    pub fn name(&self) -> &str {
        self.step.name()
    }

    pub fn process(&mut self, batch: &mut Batch) {
        let (events_in, dropped, dead) = (batch.events.len(), batch.dropped, batch.dead_letters.len());
        self.step.process(batch);
        self.counters.events_in.inc_by(events_in as u64);
        self.counters.events_out.inc_by(batch.events.len() as u64);
        self.counters.dropped.inc_by(batch.dropped.saturating_sub(dropped) as u64);
        self.counters.dead_lettered.inc_by(batch.dead_letters.len().saturating_sub(dead) as u64);
        if crate::tap::active() {
            crate::tap::offer(&crate::tap::Point::Step(self.step.name().to_string()), batch.events.iter());
        }
    }
}

//! The pipeline step around one plugin: batch in, verdicts applied; failures
//! contained to their batch; new versions swapped in between batches; a new version
//! that keeps failing rolled back.

use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;
use synaptic_plugin_sdk::contract::{BatchBuffer, VerdictRef, KEEP};

use super::{Instance, PluginError, Version};
use crate::config::OnError;
use crate::event::{Batch, DeadLetter, Event, SchemaMode, Stage};
use crate::step::Step;
use crate::telemetry::PluginMetrics;

/// A new version, compiled and started off the hot path, waiting for the next batch.
pub struct Prepared {
    pub version: Version,
    pub instance: Box<dyn Instance>,
}

/// When a new version is withdrawn: `failures` failed batches among its first
/// `window`.
#[derive(Debug, Clone, Copy)]
pub struct RollbackPolicy {
    pub failures: u32,
    pub window: u32,
}

#[derive(Debug, Default)]
struct Probation {
    batches: u32,
    failures: u32,
}

pub struct PluginStep {
    name: String,
    on_error: OnError,
    schema: SchemaMode,
    current: Version,
    /// `None` after a failure that may have left the instance broken; the next
    /// batch starts a fresh one.
    instance: Option<Box<dyn Instance>>,
    /// The version before a swap, kept until the new one has passed probation.
    previous: Option<Version>,
    probation: Option<Probation>,
    policy: RollbackPolicy,
    updates: mpsc::Receiver<Prepared>,
    buffer: BatchBuffer,
    metrics: PluginMetrics,
}

impl PluginStep {
    pub fn new(
        name: &str,
        on_error: OnError,
        schema: SchemaMode,
        first: Prepared,
        policy: RollbackPolicy,
        updates: mpsc::Receiver<Prepared>,
        metrics: PluginMetrics,
    ) -> Self {
        metrics.set_version(first.version.code.runtime(), &first.version.hash);
        PluginStep {
            name: name.to_string(),
            on_error,
            schema,
            current: first.version,
            instance: Some(first.instance),
            previous: None,
            probation: None,
            policy,
            updates,
            buffer: BatchBuffer::default(),
            metrics,
        }
    }

    /// The content hash of the version in service.
    pub fn version_hash(&self) -> &str {
        &self.current.hash
    }

    /// Takes the newest prepared version, if any. Called only between batches, so
    /// that every batch is processed wholly by one version.
    fn take_update(&mut self) {
        let Some(prepared) = self.updates.try_iter().last() else { return };
        if prepared.version.hash == self.current.hash {
            return;
        }
        tracing::info!(
            plugin = %self.name,
            from = %self.current.hash,
            to = %prepared.version.hash,
            "plugin swapped: the new version processes the next batch"
        );
        self.metrics.swaps.inc();
        self.metrics.set_version(prepared.version.code.runtime(), &prepared.version.hash);
        self.previous = Some(std::mem::replace(&mut self.current, prepared.version));
        self.instance = Some(prepared.instance);
        self.probation = Some(Probation::default());
    }

    fn run(&mut self, batch: &mut Batch) -> Result<(), PluginError> {
        let instance = match &mut self.instance {
            Some(instance) => instance,
            None => self.instance.insert(self.current.code.start()?),
        };
        self.buffer.clear();
        for event in &batch.events {
            self.buffer.push(&event.wire()).map_err(|e| PluginError::Contract(e.0))?;
        }
        let events = batch.events.len();
        self.metrics.events_in.inc_by(events as u64);
        let list = match instance.process(&mut self.buffer) {
            Ok(list) => list,
            Err(error) => {
                // A trap or an interrupted call leaves the instance unusable.
                if !matches!(error, PluginError::Guest(_)) {
                    self.instance = None;
                }
                return Err(error);
            }
        };
        if list.codes.len() == events && list.codes.iter().all(|&code| code == KEEP) {
            self.metrics.kept.inc_by(events as u64);
            return Ok(());
        }
        let verdicts = list.read(events).map_err(|e| PluginError::Contract(e.0))?;
        let (mut kept, mut dropped, mut replaced) = (0u64, 0u64, 0u64);
        let mut out = Vec::with_capacity(events);
        for (event, verdict) in std::mem::take(&mut batch.events).into_iter().zip(verdicts) {
            match verdict {
                VerdictRef::Keep => {
                    kept += 1;
                    out.push(event);
                }
                VerdictRef::Drop => dropped += 1,
                VerdictRef::Replace(bytes) => {
                    replaced += 1;
                    match Event::decode(Bytes::copy_from_slice(bytes), event.position().clone(), self.schema)
                    {
                        Ok(new) => out.push(new),
                        Err(rejected) => batch.dead_letters.push(self.dead_letter(
                            &event,
                            &format!("replaced the event with invalid output: {}", rejected.rejection),
                        )),
                    }
                }
            }
        }
        batch.events = out;
        batch.dropped += dropped as usize;
        self.metrics.kept.inc_by(kept);
        self.metrics.dropped.inc_by(dropped);
        self.metrics.replaced.inc_by(replaced);
        Ok(())
    }

    fn dead_letter(&self, event: &Event, what: &str) -> DeadLetter {
        DeadLetter::new(
            Stage::Step(self.name.clone()),
            format!("plugin {} ({}) {what}", self.name, self.current.hash),
            event.position().clone(),
            Bytes::from(event.wire().into_owned()),
        )
    }

    /// A failed batch: its events go to dead letter, or on unchanged.
    fn fail(&mut self, batch: &mut Batch, error: &PluginError) {
        self.metrics.failure(error.failure_kind()).inc();
        tracing::warn!(
            plugin = %self.name,
            version = %self.current.hash,
            events = batch.events.len(),
            error = %error,
            on_error = ?self.on_error,
            "plugin failed a batch"
        );
        if self.on_error == OnError::DeadLetter {
            let what = error.to_string();
            let letters: Vec<DeadLetter> = batch.events.iter().map(|e| self.dead_letter(e, &what)).collect();
            batch.events.clear();
            batch.dead_letters.extend(letters);
        }
    }

    /// Counts a batch against a new version's probation; rolls it back when it has
    /// failed too often.
    fn judge(&mut self, failed: bool) {
        let Some(probation) = &mut self.probation else { return };
        probation.batches += 1;
        probation.failures += u32::from(failed);
        if probation.failures >= self.policy.failures {
            let failures = probation.failures;
            let batches = probation.batches;
            self.probation = None;
            let Some(previous) = self.previous.take() else { return };
            tracing::error!(
                plugin = %self.name,
                withdrawn = %self.current.hash,
                restored = %previous.hash,
                failures,
                batches,
                "plugin rolled back: the new version failed {failures} of its first {batches} batches"
            );
            self.metrics.rollbacks.inc();
            self.metrics.set_version(previous.code.runtime(), &previous.hash);
            self.current = previous;
            self.instance = None;
        } else if probation.batches >= self.policy.window {
            tracing::info!(plugin = %self.name, version = %self.current.hash, "plugin version passed its first batches");
            self.probation = None;
            self.previous = None;
        }
    }
}

impl Step for PluginStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        self.take_update();
        if batch.events.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcome = self.run(batch);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(error) = &outcome {
            self.fail(batch, error);
        }
        self.judge(outcome.is_err());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use synaptic_plugin_sdk::contract::{Verdict, VerdictList};

    use super::*;
    use crate::event::Position;
    use crate::plugin::Code;
    use crate::telemetry::{PluginFailureKind, Telemetry};

    type Behavior = fn(&BatchBuffer) -> Result<VerdictList, PluginError>;

    /// A runtime whose instances answer with `behavior`, counting starts.
    struct Fake {
        behavior: Behavior,
        starts: Arc<AtomicUsize>,
    }

    struct FakeInstance(Behavior);

    impl Code for Fake {
        fn runtime(&self) -> &'static str {
            "fake"
        }
        fn start(&self) -> Result<Box<dyn Instance>, PluginError> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(FakeInstance(self.behavior)))
        }
    }

    impl Instance for FakeInstance {
        fn process(&mut self, batch: &mut BatchBuffer) -> Result<VerdictList, PluginError> {
            (self.0)(batch)
        }
    }

    fn version(hash: &str, behavior: Behavior) -> (Version, Arc<AtomicUsize>) {
        let starts = Arc::new(AtomicUsize::new(0));
        let code = Arc::new(Fake { behavior, starts: starts.clone() });
        (Version { hash: hash.to_string(), code }, starts)
    }

    fn prepared(hash: &str, behavior: Behavior) -> (Prepared, Arc<AtomicUsize>) {
        let (version, starts) = version(hash, behavior);
        let instance = version.code.start().expect("fake starts");
        (Prepared { version, instance }, starts)
    }

    fn keep_all(batch: &BatchBuffer) -> Result<VerdictList, PluginError> {
        Ok(VerdictList { codes: vec![KEEP; batch.len()], ..VerdictList::default() })
    }

    fn trap(_: &BatchBuffer) -> Result<VerdictList, PluginError> {
        Err(PluginError::Trap("unreachable".into()))
    }

    fn refuse(_: &BatchBuffer) -> Result<VerdictList, PluginError> {
        Err(PluginError::Guest("no".into()))
    }

    /// Event 0 kept, 1 dropped, 2 replaced validly, 3 replaced with garbage.
    fn mixed(batch: &BatchBuffer) -> Result<VerdictList, PluginError> {
        assert_eq!(batch.len(), 4);
        let mut list = VerdictList::default();
        let replacement = event_bytes("new").to_vec();
        for verdict in
            [Verdict::Keep, Verdict::Drop, Verdict::Replace(replacement), Verdict::Replace(b"{".to_vec())]
        {
            list.push(verdict).map_err(|e| PluginError::Contract(e.0))?;
        }
        Ok(list)
    }

    fn event_bytes(id: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"event_id":"{id}","timestamp":1,"component":"c","event_type":"x.y","severity":"INFO","data":{{}}}}"#
        ))
    }

    fn batch(n: usize) -> Batch {
        let events = (0..n)
            .map(|i| {
                Event::decode(
                    event_bytes(&format!("e{i}")),
                    Position::Generator { seq: i as u64 },
                    SchemaMode::Strict,
                )
                .expect("valid event")
            })
            .collect();
        Batch { events, ..Batch::default() }
    }

    fn step(first: Prepared, on_error: OnError) -> (PluginStep, mpsc::Sender<Prepared>, PluginMetrics) {
        let metrics = Telemetry::new().plugin_metrics("p");
        let (tx, rx) = mpsc::channel();
        let policy = RollbackPolicy { failures: 2, window: 4 };
        let step = PluginStep::new("p", on_error, SchemaMode::Strict, first, policy, rx, metrics.clone());
        (step, tx, metrics)
    }

    #[test]
    fn verdicts_keep_drop_and_replace_and_bad_replacements_are_dead_lettered() {
        let (first, _) = prepared("sha256:a", mixed);
        let (mut step, _tx, metrics) = step(first, OnError::DeadLetter);
        let mut b = batch(4);
        step.process(&mut b);
        let ids: Vec<&str> = b.events.iter().map(Event::event_id).collect();
        assert_eq!(ids, ["e0", "new"]);
        assert_eq!(b.dropped, 1);
        assert_eq!(b.dead_letters.len(), 1);
        assert!(b.dead_letters[0]
            .reason
            .starts_with("plugin p (sha256:a) replaced the event with invalid output"));
        assert_eq!(
            b.dead_letters[0].raw,
            event_bytes("e3"),
            "the dead letter keeps the event, not the garbage"
        );
        assert_eq!(
            (metrics.events_in.get(), metrics.kept.get(), metrics.dropped.get(), metrics.replaced.get()),
            (4, 1, 1, 2)
        );
    }

    #[test]
    fn a_trap_dead_letters_its_batch_and_the_next_batch_gets_a_fresh_instance() {
        let (first, starts) = prepared("sha256:a", trap);
        let (mut step, _tx, metrics) = step(first, OnError::DeadLetter);
        let mut b = batch(3);
        step.process(&mut b);
        assert!(b.events.is_empty());
        assert_eq!(b.dead_letters.len(), 3);
        assert_eq!(b.dead_letters[0].reason, "plugin p (sha256:a) trapped: unreachable");
        assert_eq!(b.dead_letters[0].stage, Stage::Step("p".into()));
        step.process(&mut batch(3));
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the trapped instance was replaced");
        assert_eq!(metrics.failure(PluginFailureKind::Trap).get(), 2);
    }

    #[test]
    fn on_error_pass_lets_a_failed_batch_through_and_a_guest_error_keeps_the_instance() {
        let (first, starts) = prepared("sha256:a", refuse);
        let (mut step, _tx, metrics) = step(first, OnError::Pass);
        for _ in 0..3 {
            let mut b = batch(2);
            step.process(&mut b);
            assert_eq!(b.events.len(), 2);
            assert!(b.dead_letters.is_empty());
        }
        assert_eq!(starts.load(Ordering::SeqCst), 1, "an error the guest returned does not poison it");
        assert_eq!(metrics.failure(PluginFailureKind::Error).get(), 3);
    }

    #[test]
    fn a_new_version_takes_over_between_batches_and_is_rolled_back_when_it_keeps_failing() {
        let (first, _) = prepared("sha256:good", keep_all);
        let (mut step, tx, metrics) = step(first, OnError::DeadLetter);
        step.process(&mut batch(2));
        let (bad, _) = prepared("sha256:bad", trap);
        tx.send(bad).expect("step listens");
        assert_eq!(step.version_hash(), "sha256:good", "no swap until the next batch");

        let mut b = batch(2);
        step.process(&mut b);
        assert_eq!(step.version_hash(), "sha256:bad");
        assert_eq!(b.dead_letters.len(), 2);
        step.process(&mut batch(2));
        assert_eq!(step.version_hash(), "sha256:good", "two failures within the window roll back");
        assert_eq!((metrics.swaps.get(), metrics.rollbacks.get()), (1, 1));
        let mut b = batch(2);
        step.process(&mut b);
        assert_eq!(b.events.len(), 2, "the restored version serves");
    }

    #[test]
    fn a_version_that_passes_its_window_is_kept_despite_later_failures() {
        let (first, _) = prepared("sha256:one", keep_all);
        let (mut step, tx, metrics) = step(first, OnError::DeadLetter);
        let (second, _) = prepared("sha256:two", keep_all);
        tx.send(second).expect("step listens");
        for _ in 0..4 {
            step.process(&mut batch(1));
        }
        let (third, _) = prepared("sha256:three", trap);
        tx.send(third).expect("step listens");
        step.process(&mut batch(1));
        step.process(&mut batch(1));
        assert_eq!(step.version_hash(), "sha256:two", "rolled back to the accepted version, not the first");
        assert_eq!(metrics.rollbacks.get(), 1);
    }
}

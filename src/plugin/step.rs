//! The pipeline step around one plugin: batch in, verdicts applied; failures
//! contained to their batch; new versions swapped in between batches; a new version
//! that keeps failing rolled back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use synaptic_plugin_sdk::contract::{BatchBuffer, VerdictRef, KEEP};

use super::config::OnError;
use super::metrics::PluginMetrics;
use super::{Instance, PluginError, Version};
use crate::event::{Batch, DeadLetter, Event, SchemaMode, Stage};
use crate::step::order::Turnstile;
use crate::step::Step;

/// A new version, compiled and started off the hot path, waiting for the next batch.
pub struct Prepared {
    pub(crate) version: Version,
    pub(crate) instance: Box<dyn Instance>,
}

/// When a new version is withdrawn: `failures` failed batches among its first
/// `window`.
#[derive(Debug, Clone, Copy)]
pub struct RollbackPolicy {
    pub(crate) failures: u32,
    pub(crate) window: u32,
}

#[derive(Debug, Default)]
struct Probation {
    batches: u32,
    failures: u32,
}

/// What the copies of one plugin step in the pipeline's workers share: the version
/// in service and its generation, the swap and rollback state, and the updates
/// from the watcher. Locked twice per batch (before and after it), never during.
struct Shared {
    current: Version,
    /// Changes with every swap and rollback; a worker whose instance belongs to
    /// another generation starts one of the current version.
    generation: u64,
    /// The instance the watcher started for the newest version, for the first
    /// worker to take; the others start their own.
    spare: Option<Box<dyn Instance>>,
    /// The version before a swap, kept until the new one has passed probation.
    previous: Option<Version>,
    probation: Option<Probation>,
    updates: mpsc::Receiver<Prepared>,
}

/// The shared state, also after a worker panicked while holding it: it is
/// consistent between statements, so that worker left nothing half-done.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where batches enter a step that has copies in other workers.
#[derive(Default)]
struct Entry {
    turnstile: Turnstile,
    /// Set once the step is copied (before the first batch).
    ordered: AtomicBool,
}

pub struct PluginStep {
    /// Set on a step with copies in other workers: batches look for a new version
    /// in input order, so that versions never go backwards along the input.
    entry: Arc<Entry>,
    name: String,
    on_error: OnError,
    schema: SchemaMode,
    policy: RollbackPolicy,
    shared: Arc<Mutex<Shared>>,
    /// The version this copy processes the current batch with, and its generation.
    version: Version,
    generation: u64,
    /// `None` after a failure that may have left the instance broken; the next
    /// batch starts a fresh one.
    instance: Option<Box<dyn Instance>>,
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
        let shared = Shared {
            current: first.version.clone(),
            generation: 0,
            spare: None,
            previous: None,
            probation: None,
            updates,
        };
        PluginStep {
            entry: Arc::default(),
            name: name.to_string(),
            on_error,
            schema,
            policy,
            shared: Arc::new(Mutex::new(shared)),
            version: first.version,
            generation: 0,
            instance: Some(first.instance),
            buffer: BatchBuffer::default(),
            metrics,
        }
    }

    /// The content hash of the version in service.
    #[cfg(test)]
    pub(crate) fn version_hash(&self) -> String {
        lock(&self.shared).current.hash.clone()
    }

    /// Takes the newest prepared version, if any, and moves this copy to the
    /// version in service. Called only between batches, so that every batch is
    /// processed wholly by one version.
    fn take_update(&mut self) {
        let mut shared = lock(&self.shared);
        if let Some(prepared) = shared.updates.try_iter().last() {
            if prepared.version.hash != shared.current.hash {
                self.metrics.swaps.inc();
                self.metrics.set_version(prepared.version.code.runtime(), &prepared.version.hash);
                tracing::info!(
                    plugin = %self.name,
                    from = %shared.current.hash,
                    to = %prepared.version.hash,
                    "plugin swapped: the new version processes the next batch"
                );
                crate::audit::record(
                    "local",
                    "plugin.swapped",
                    &self.name,
                    "ok",
                    serde_json::json!({"from": shared.current.hash, "to": prepared.version.hash}),
                );
                let old = std::mem::replace(&mut shared.current, prepared.version);
                shared.previous = Some(old);
                shared.generation += 1;
                shared.spare = Some(prepared.instance);
                shared.probation = Some(Probation::default());
            }
        }
        if shared.generation != self.generation {
            self.version = shared.current.clone();
            self.generation = shared.generation;
            self.instance = shared.spare.take();
        }
    }

    fn run(&mut self, batch: &mut Batch) -> Result<(), PluginError> {
        let instance = match &mut self.instance {
            Some(instance) => instance,
            None => self.instance.insert(self.version.code.start()?),
        };
        self.buffer.clear();
        for event in &batch.events {
            self.buffer.push(&event.wire()).map_err(|e| PluginError::Contract(e.0))?;
        }
        let events = batch.events.len();
        let result = instance.process(&mut self.buffer);
        match &result {
            // A trap or an interrupted call leaves the instance unusable.
            Err(error) if !matches!(error, PluginError::Guest(_)) => self.instance = None,
            // One that goes on serving is replaced when its memory runs low.
            _ => {
                if let Some(worn) = instance.worn() {
                    tracing::debug!(
                        plugin = %self.name,
                        memory = worn.size,
                        cap = worn.limit,
                        "plugin instance replaced with a fresh one: its memory is running out"
                    );
                    self.metrics.recycles.inc();
                    self.instance = None;
                }
            }
        }
        let list = result?;
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
            format!("plugin {} ({}) {what}", self.name, self.version.hash),
            event.position().clone(),
            Bytes::from(event.wire().into_owned()),
        )
    }

    /// A failed batch: with `on_error: pass` its events go on unchanged. Otherwise
    /// it is split in halves and each half run again, and so on, so that only the
    /// events that fail on their own go to dead letter, not their neighbours. The
    /// retries are bounded (see [`retry_budget`]); what still fails when they are
    /// spent goes to dead letter with the error it failed with.
    fn contain(&mut self, batch: &mut Batch, error: PluginError) {
        self.metrics.failure(error.failure_kind()).inc();
        tracing::warn!(
            plugin = %self.name,
            version = %self.version.hash,
            events = batch.events.len(),
            error = %error,
            on_error = ?self.on_error,
            "plugin failed a batch"
        );
        if self.on_error == OnError::Pass {
            return;
        }
        let mut budget = retry_budget(batch.events.len());
        let events = std::mem::take(&mut batch.events);
        // Parts still to run, the next one last; each with the error of the run
        // that failed it.
        let mut todo: Vec<(Vec<Event>, String)> = Vec::new();
        if events.len() == 1 {
            batch.dead_letters.extend(events.iter().map(|e| self.dead_letter(e, &error.to_string())));
            return;
        }
        push_halves(&mut todo, events, error.to_string());
        while let Some((part, error)) = todo.pop() {
            if budget == 0 {
                batch.dead_letters.extend(part.iter().map(|e| self.dead_letter(e, &error)));
                continue;
            }
            budget -= 1;
            let mut sub = Batch { events: part, ..Batch::default() };
            match self.run(&mut sub) {
                Ok(()) => {
                    batch.events.append(&mut sub.events);
                    batch.dead_letters.append(&mut sub.dead_letters);
                    batch.dropped += sub.dropped;
                }
                // It fails on its own.
                Err(error) if sub.events.len() == 1 => {
                    batch.dead_letters.push(self.dead_letter(&sub.events[0], &error.to_string()));
                }
                Err(error) => push_halves(&mut todo, sub.events, error.to_string()),
            }
        }
    }

    /// Counts a batch against a new version's probation; rolls it back when it has
    /// failed too often. A batch run by an older generation (a worker that started
    /// it before a swap) does not count.
    fn judge(&mut self, failed: bool) {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        if shared.generation != self.generation {
            return;
        }
        let Some(probation) = &mut shared.probation else { return };
        probation.batches += 1;
        probation.failures += u32::from(failed);
        if probation.failures >= self.policy.failures {
            let failures = probation.failures;
            let batches = probation.batches;
            shared.probation = None;
            let Some(previous) = shared.previous.take() else { return };
            // Metrics first: whoever reads the log line then finds them updated.
            self.metrics.rollbacks.inc();
            self.metrics.set_version(previous.code.runtime(), &previous.hash);
            tracing::error!(
                plugin = %self.name,
                withdrawn = %shared.current.hash,
                restored = %previous.hash,
                failures,
                batches,
                "plugin rolled back: the new version failed {failures} of its first {batches} batches"
            );
            crate::audit::record(
                "local",
                "plugin.rolled_back",
                &self.name,
                "ok",
                serde_json::json!({"withdrawn": shared.current.hash, "restored": previous.hash, "failures": failures, "batches": batches}),
            );
            shared.current = previous;
            shared.generation += 1;
            shared.spare = None;
        } else if probation.batches >= self.policy.window {
            tracing::info!(plugin = %self.name, version = %shared.current.hash, "plugin version passed its first batches");
            shared.probation = None;
            shared.previous = None;
        }
    }
}

impl Step for PluginStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        self.entry.ordered.store(true, Ordering::Relaxed);
        // The copy's instance is started now, so that a pool too small for the
        // workers fails the start instead of the first batches.
        let instance = self.version.code.start().map_err(|e| {
            anyhow::anyhow!("plugin `{}`: starting an instance for another worker: {e}", self.name)
        })?;
        Ok(Some(Box::new(PluginStep {
            entry: self.entry.clone(),
            name: self.name.clone(),
            on_error: self.on_error,
            schema: self.schema,
            policy: self.policy,
            shared: self.shared.clone(),
            version: self.version.clone(),
            generation: self.generation,
            instance: Some(instance),
            buffer: BatchBuffer::default(),
            metrics: self.metrics.clone(),
        })))
    }

    fn process(&mut self, batch: &mut Batch) {
        if self.entry.ordered.load(Ordering::Relaxed) {
            let entry = self.entry.clone();
            let _turn = entry.turnstile.wait(batch.seq);
            self.take_update();
        } else {
            self.take_update();
        }
        if batch.events.is_empty() {
            return;
        }
        let started = Instant::now();
        self.metrics.events_in.inc_by(batch.events.len() as u64);
        let outcome = self.run(batch);
        let failed = outcome.is_err();
        if let Err(error) = outcome {
            self.contain(batch, error);
        }
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        self.judge(failed);
    }
}

/// Runs of parts of a failed batch of `events`: enough to find two events that
/// fail on their own by halving (two runs a level for each). A plugin that
/// fails every event costs that many runs per batch, not one per event.
fn retry_budget(events: usize) -> u32 {
    4 * events.next_power_of_two().trailing_zeros() + 4
}

/// Queues the two halves of `part` (two or more events), the first half to run
/// first.
fn push_halves(todo: &mut Vec<(Vec<Event>, String)>, mut part: Vec<Event>, error: String) {
    let second = part.split_off(part.len() / 2);
    todo.push((second, error.clone()));
    todo.push((part, error));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use synaptic_plugin_sdk::contract::{Verdict, VerdictList};

    use super::*;
    use crate::event::Position;
    use crate::plugin::Code;
    use crate::plugin::PluginFailureKind;
    use crate::telemetry::Telemetry;

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
        let metrics = crate::plugin::PluginMetrics::register(&Telemetry::new(), "p");
        let (tx, rx) = mpsc::channel();
        let policy = RollbackPolicy { failures: 2, window: 4 };
        let step = PluginStep::new("p", on_error, SchemaMode::Strict, first, policy, rx, metrics.clone());
        (step, tx, metrics)
    }

    /// Instances that report themselves worn after their second batch.
    struct Wearing {
        starts: Arc<AtomicUsize>,
    }

    struct WearingInstance {
        batches: usize,
    }

    impl Code for Wearing {
        fn runtime(&self) -> &'static str {
            "fake"
        }
        fn start(&self) -> Result<Box<dyn Instance>, PluginError> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(WearingInstance { batches: 0 }))
        }
    }

    impl Instance for WearingInstance {
        fn process(&mut self, batch: &mut BatchBuffer) -> Result<VerdictList, PluginError> {
            self.batches += 1;
            assert!(self.batches <= 2, "a worn instance was given another batch");
            keep_all(batch)
        }
        fn worn(&self) -> Option<crate::plugin::Worn> {
            (self.batches >= 2).then_some(crate::plugin::Worn { size: 2, limit: 3 })
        }
    }

    #[test]
    fn a_worn_instance_is_replaced_between_batches_and_no_event_is_affected() {
        let starts = Arc::new(AtomicUsize::new(0));
        let code = Arc::new(Wearing { starts: starts.clone() });
        let version = Version { hash: "sha256:w".into(), code };
        let instance = version.code.start().expect("starts");
        let (mut step, _tx, metrics) = step(Prepared { version, instance }, OnError::DeadLetter);
        for _ in 0..5 {
            let mut b = batch(3);
            step.process(&mut b);
            assert_eq!(b.events.len(), 3, "every event kept");
            assert!(b.dead_letters.is_empty());
        }
        // Batches 1-2, 3-4 and 5 on three instances; two replaced for wear.
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(metrics.recycles.get(), 2);
        assert_eq!(metrics.failure(PluginFailureKind::Trap).get(), 0);
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
        // Each batch: one run of all three, then the halves (one event, two
        // events), then the two events alone; every run after a trap starts afresh.
        assert_eq!(starts.load(Ordering::SeqCst), 5, "the trapped instance was replaced");
        step.process(&mut batch(3));
        assert_eq!(starts.load(Ordering::SeqCst), 10);
        assert_eq!(metrics.failure(PluginFailureKind::Trap).get(), 2, "failures count batches, not retries");
    }

    /// Traps on any batch that holds an event whose id starts with `poison`.
    fn trap_on_poison(batch: &BatchBuffer) -> Result<VerdictList, PluginError> {
        if batch.data.windows(7).any(|w| w == b"\"poison") {
            return Err(PluginError::Trap("poison".into()));
        }
        keep_all(batch)
    }

    fn batch_with_poison(n: usize, poison: &[usize]) -> Batch {
        let events = (0..n)
            .map(|i| {
                let id = if poison.contains(&i) { format!("poison{i}") } else { format!("e{i}") };
                Event::decode(event_bytes(&id), Position::Generator { seq: i as u64 }, SchemaMode::Strict)
                    .expect("valid event")
            })
            .collect();
        Batch { events, ..Batch::default() }
    }

    #[test]
    fn a_failed_batch_is_split_so_only_the_events_that_fail_alone_are_dead_lettered() {
        let (first, starts) = prepared("sha256:a", trap_on_poison);
        let (mut step, _tx, metrics) = step(first, OnError::DeadLetter);
        let mut b = batch_with_poison(512, &[77]);
        step.process(&mut b);
        assert_eq!(b.events.len(), 511, "the neighbours of the poison event go on");
        let ids: Vec<u64> = b
            .events
            .iter()
            .map(|e| match e.position() {
                Position::Generator { seq } => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "order is kept");
        assert_eq!(b.dead_letters.len(), 1);
        assert_eq!(b.dead_letters[0].raw, event_bytes("poison77"));
        assert_eq!(metrics.failure(PluginFailureKind::Trap).get(), 1);
        let runs = starts.load(Ordering::SeqCst);
        assert!(runs <= 1 + 2 * 9, "at most two fresh instances per level of halving: {runs}");

        // Two poison events far apart are both found, and only they.
        let mut b = batch_with_poison(512, &[3, 400]);
        step.process(&mut b);
        assert_eq!((b.events.len(), b.dead_letters.len()), (510, 2));
    }

    #[test]
    fn retries_of_a_batch_that_always_fails_are_bounded() {
        let (first, starts) = prepared("sha256:a", trap);
        let (mut step, _tx, _metrics) = step(first, OnError::DeadLetter);
        let mut b = batch(512);
        step.process(&mut b);
        assert_eq!(b.dead_letters.len(), 512, "nothing lost: all dead-lettered");
        let runs = starts.load(Ordering::SeqCst);
        assert!(runs <= 1 + retry_budget(512) as usize, "{runs} runs");
        assert_eq!(retry_budget(512), 40);
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
    fn copies_for_other_workers_share_the_version_the_swap_and_the_rollback() {
        let (first, starts) = prepared("sha256:good", keep_all);
        let (mut a, tx, metrics) = step(first, OnError::DeadLetter);
        let mut b = a.fork().expect("forks").expect("a plugin step is copied");
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the copy has an instance of its own");
        let mut seq = 0;
        let mut next = |n| {
            let mut numbered = batch(n);
            numbered.seq = seq;
            seq += 1;
            numbered
        };
        a.process(&mut next(1));
        b.process(&mut next(1));
        let (bad, bad_starts) = prepared("sha256:bad", trap);
        tx.send(bad).expect("step listens");
        // One copy takes the new version; the other sees it on its next batch.
        let mut first_bad = next(2);
        b.process(&mut first_bad);
        assert_eq!(first_bad.dead_letters.len(), 2);
        let mut second_bad = next(2);
        a.process(&mut second_bad);
        assert_eq!(second_bad.dead_letters.len(), 2);
        assert!(bad_starts.load(Ordering::SeqCst) >= 2, "each copy ran its own instance of the new version");
        // Two failures among both copies' batches roll the version back for both.
        assert_eq!(a.version_hash(), "sha256:good");
        assert_eq!((metrics.swaps.get(), metrics.rollbacks.get()), (1, 1));
        for step in [b.as_mut(), &mut a as &mut dyn Step] {
            let mut restored = next(2);
            step.process(&mut restored);
            assert_eq!(restored.events.len(), 2, "the restored version serves every copy");
        }
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

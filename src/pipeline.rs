//! The pipeline core: decode + validate → steps → route → hand to the sinks, each
//! with its share of the batch's acknowledgement; a batch at a time on each of
//! its workers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use prometheus::{Histogram, IntCounter, IntCounterVec};
use tokio::sync::mpsc;

use crate::ack::{AckLedger, Tracker};
use crate::event::{Batch, DeadLetter, Event, EventKind, Rejected, Rejection, SchemaMode, SideOutput, Stage};
use crate::route::{route, Matcher, Selection};
use crate::scrub::DeadLetterScrubber;
use crate::sink::{SideInput, SinkInput, SinkMessage};
use crate::source::{RawBatch, RawRecord};
use crate::step::order::Turnstile;
use crate::step::RunningStep;
use crate::telemetry::Telemetry;

/// A sink as the router sees it.
pub struct SinkRoute {
    pub name: String,
    pub(crate) matcher: Option<Matcher>,
    pub(crate) tx: mpsc::Sender<SinkMessage>,
    /// Set for a sink that takes a side output (spans) instead of events.
    pub(crate) side_input: Option<SideInput>,
}

/// The pipeline core's metrics: what was decoded, validated, dead-lettered, routed.
struct PipelineMetrics {
    /// Indexed by `EventKind as usize`.
    by_type: Vec<IntCounter>,
    dead_decode: IntCounter,
    dead_schema: IntCounter,
    dead_step: IntCounter,
    schema_warnings: IntCounter,
    unrouted: IntCounter,
    batch_seconds: Histogram,
    /// Time a worker waited for its turn at a shared step or the hand-over.
    order_wait_seconds: Histogram,
}

impl PipelineMetrics {
    fn register(telemetry: &Telemetry) -> Self {
        let by_type: IntCounterVec = telemetry.counter_vec(
            "events_total",
            "Valid events by canonical event type (unknown types as `unknown`)",
            &["event_type"],
        );
        let dead = telemetry.counter_vec(
            "dead_lettered_total",
            "Inputs sent to the dead-letter sink, by stage (decode, schema, step)",
            &["stage"],
        );
        PipelineMetrics {
            by_type: EventKind::indexed()
                .into_iter()
                .map(|k| by_type.with_label_values(&[k.canonical_name().unwrap_or("unknown")]))
                .collect(),
            dead_decode: dead.with_label_values(&["decode"]),
            dead_schema: dead.with_label_values(&["schema"]),
            dead_step: dead.with_label_values(&["step"]),
            schema_warnings: telemetry
                .counter("schema_warnings_total", "Events with schema problems passed on in lenient mode"),
            unrouted: telemetry.counter("unrouted_events_total", "Events that matched no sink"),
            order_wait_seconds: telemetry.histogram(
                "order_wait_seconds",
                "Time a pipeline worker waited for the batch before its own to pass a shared step or the hand-over",
                &[0.00001, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            batch_seconds: telemetry.histogram(
                "batch_duration_seconds",
                "Time to decode, validate, run the steps and route one batch",
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
        }
    }

    /// Runs `wait`, observing how long it took.
    fn waited<T>(&self, wait: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let turn = wait();
        self.order_wait_seconds.observe(started.elapsed().as_secs_f64());
        turn
    }
}

/// What every worker shares: the routes, the dead-letter channel, the metrics.
struct Core {
    schema: SchemaMode,
    max_event_bytes: usize,
    sinks: Vec<SinkRoute>,
    side_sinks: Vec<SinkRoute>,
    matchers: Vec<Option<Matcher>>,
    dead_letter: mpsc::Sender<SinkMessage>,
    metrics: PipelineMetrics,
    ledger: Arc<AckLedger>,
    /// Set when the pipeline has a PII scrubber: every dead letter goes through it.
    /// Dead letters are rare: the workers share one.
    scrubber: Option<Mutex<DeadLetterScrubber>>,
    /// With several workers, batches are handed to the sinks in input order.
    handover: Option<Turnstile>,
}

/// The pipeline: `workers` copies of the steps, each processing whole batches on a
/// thread of its own. Steps that can be copied (plugins, tag, drop) run in
/// parallel, each worker with its own plugin instances; the order-dependent ones
/// (metrics, alerts, traces, degrade) exist once and take the batches one at a
/// time in input order, as does the hand-over to the sinks. So N workers give the
/// same metrics, alerts and outputs, in the same order, as one.
pub struct Pipeline {
    core: Core,
    workers: Vec<Worker>,
    /// The sequence number of the next batch `process` is given directly.
    next_seq: u64,
}

/// One worker's steps.
struct Worker {
    stages: Vec<WorkerStep>,
}

enum WorkerStep {
    /// This worker's own copy.
    Own(RunningStep),
    /// The one copy all workers share, taken in input order.
    Ordered(Arc<OrderedStep>),
}

struct OrderedStep {
    step: Mutex<RunningStep>,
    turn: Turnstile,
}

/// The result of processing one batch, ready for the sinks: each surviving event as
/// the JSON line a sink writes.
pub struct Processed {
    pub lines: Arc<Vec<Bytes>>,
    pub(crate) selections: Vec<Selection>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) side_outputs: Vec<SideOutput>,
}

impl Pipeline {
    /// A pipeline of one worker; [`Pipeline::with_workers`] adds more.
    pub fn new(
        schema: SchemaMode,
        max_event_bytes: usize,
        steps: Vec<RunningStep>,
        sinks: Vec<SinkRoute>,
        dead_letter: mpsc::Sender<SinkMessage>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let (side_sinks, sinks): (Vec<SinkRoute>, Vec<SinkRoute>) =
            sinks.into_iter().partition(|s| s.side_input.is_some());
        let matchers = sinks.iter().map(|s| s.matcher.clone()).collect();
        let core = Core {
            schema,
            max_event_bytes,
            sinks,
            side_sinks,
            matchers,
            dead_letter,
            metrics: PipelineMetrics::register(&telemetry),
            ledger: Arc::new(AckLedger::default()),
            scrubber: None,
            handover: None,
        };
        let worker = Worker { stages: steps.into_iter().map(WorkerStep::Own).collect() };
        Pipeline { core, workers: vec![worker], next_seq: 0 }
    }

    /// Records what becomes of the records in `ledger` (the run summary's source).
    pub(crate) fn with_ledger(mut self, ledger: Arc<AckLedger>) -> Self {
        self.core.ledger = ledger;
        self
    }

    /// Scrubs every dead letter with `scrubber` before it is handed on.
    pub(crate) fn with_scrubber(mut self, scrubber: Option<DeadLetterScrubber>) -> Self {
        self.core.scrubber = scrubber.map(Mutex::new);
        self
    }

    /// Runs `count` workers (at least one). Each gets its own copy of every step
    /// that can be copied (a plugin's instance is started here: a pool too small
    /// fails now); the others are shared and taken in input order.
    pub fn with_workers(mut self, count: usize) -> anyhow::Result<Self> {
        if count <= 1 || self.workers.len() != 1 {
            return Ok(self);
        }
        let first = self.workers.remove(0);
        let mut workers: Vec<Worker> =
            (0..count).map(|_| Worker { stages: Vec::with_capacity(first.stages.len()) }).collect();
        for stage in first.stages {
            let step = match stage {
                WorkerStep::Own(step) => step,
                WorkerStep::Ordered(shared) => {
                    workers.iter_mut().for_each(|w| w.stages.push(WorkerStep::Ordered(shared.clone())));
                    continue;
                }
            };
            match step.fork()? {
                None => {
                    let shared = Arc::new(OrderedStep { step: Mutex::new(step), turn: Turnstile::default() });
                    workers.iter_mut().for_each(|w| w.stages.push(WorkerStep::Ordered(shared.clone())));
                }
                Some(copy) => {
                    let mut copies = Vec::with_capacity(count);
                    while copies.len() + 2 < count {
                        copies.push(step.fork()?.ok_or_else(|| {
                            anyhow::anyhow!("step `{}` could be copied once and not again", step.name())
                        })?);
                    }
                    copies.push(copy);
                    copies.push(step);
                    for (worker, copy) in workers.iter_mut().zip(copies) {
                        worker.stages.push(WorkerStep::Own(copy));
                    }
                }
            }
        }
        self.workers = workers;
        self.core.handover = Some(Turnstile::default());
        Ok(self)
    }

    /// How many workers process batches.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Processes batches until the source closes its channel: each worker on a
    /// thread of its own (plugin calls block for up to their deadline, and WASI's
    /// synchronous bindings drive futures of their own, which tokio allows only
    /// outside its async context).
    pub async fn run(self, rx: mpsc::Receiver<RawBatch>) {
        // The receiver with the next sequence number: whoever takes a batch numbers
        // it, so numbers follow the source's order.
        let intake = Arc::new(Mutex::new((rx, 0u64)));
        let core = Arc::new(self.core);
        let mut threads = tokio::task::JoinSet::new();
        for mut worker in self.workers {
            let (core, intake) = (core.clone(), intake.clone());
            threads.spawn_blocking(move || loop {
                let next = {
                    let mut intake = intake.lock().unwrap_or_else(PoisonError::into_inner);
                    let (rx, seq) = &mut *intake;
                    let batch = rx.blocking_recv();
                    *seq += 1;
                    batch.map(|b| (*seq - 1, b))
                };
                let Some((seq, RawBatch { records, tracker })) = next else { break };
                let started = Instant::now();
                let processed = worker.process(&core, seq, records);
                core.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
                let _turn = core.handover.as_ref().map(|t| core.metrics.waited(|| t.wait(seq)));
                core.hand_over(processed, &tracker);
                // The pipeline's own share; the batch completes when the sinks ack.
                tracker.dispatched();
            });
        }
        // In the order they end: a worker that died must be reported while the
        // others may be waiting for a turn its batch will never take.
        while let Some(ended) = threads.join_next().await {
            if let Err(e) = ended {
                if e.is_panic() {
                    // The task watching the pipeline learns of it this way.
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }

    /// Decode, validate, run the steps and route one batch, on the first worker. No
    /// I/O.
    pub fn process(&mut self, records: Vec<RawRecord>) -> Processed {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.workers[0].process(&self.core, seq, records)
    }
}

impl Worker {
    /// Decode, validate, run the steps and route batch number `seq`.
    fn process(&mut self, core: &Core, seq: u64, records: Vec<RawRecord>) -> Processed {
        let mut batch = Batch { seq, events: Vec::with_capacity(records.len()), ..Batch::default() };
        let mut per_kind = [0u64; EventKind::KNOWN.len() + 1];
        let (mut decode_errors, mut schema_errors, mut warnings) = (0u64, 0u64, 0u64);
        for record in records {
            match core.decode(record) {
                Ok(event) => {
                    per_kind[event.kind() as usize] += 1;
                    warnings += u64::from(event.has_schema_warning());
                    batch.events.push(event);
                }
                Err(letter) => {
                    match letter.stage {
                        Stage::Schema => schema_errors += 1,
                        _ => decode_errors += 1,
                    }
                    batch.dead_letters.push(*letter);
                }
            }
        }
        let metrics = &core.metrics;
        for (counter, n) in metrics.by_type.iter().zip(per_kind) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        metrics.dead_decode.inc_by(decode_errors);
        metrics.dead_schema.inc_by(schema_errors);
        metrics.schema_warnings.inc_by(warnings);

        let before_steps = batch.dead_letters.len();
        for stage in &mut self.stages {
            match stage {
                WorkerStep::Own(step) => step.process(&mut batch),
                WorkerStep::Ordered(shared) => {
                    let _turn = metrics.waited(|| shared.turn.wait(seq));
                    shared.step.lock().unwrap_or_else(PoisonError::into_inner).process(&mut batch);
                }
            }
        }
        let step_letters = batch.dead_letters.len() - before_steps;
        metrics.dead_step.inc_by(step_letters as u64);
        if let Some(scrubber) = core.scrubber.as_ref().filter(|_| !batch.dead_letters.is_empty()) {
            let mut scrubber = scrubber.lock().unwrap_or_else(PoisonError::into_inner);
            for letter in &mut batch.dead_letters {
                scrubber.scrub(letter);
            }
        }

        let (selections, unrouted) = route(&batch.events, &core.matchers);
        metrics.unrouted.inc_by(unrouted as u64);
        if crate::tap::active() {
            for (sink, selection) in core.sinks.iter().zip(&selections) {
                let point = crate::tap::Point::Sink(sink.name.clone());
                crate::tap::offer(&point, selection.pick(&batch.events));
            }
        }
        core.ledger.record_batch(batch.dead_letters.len(), batch.dropped, unrouted);
        let lines = batch.events.into_iter().map(Event::into_wire).collect();
        Processed {
            lines: Arc::new(lines),
            selections,
            dead_letters: batch.dead_letters,
            side_outputs: batch.side_outputs,
        }
    }
}

impl Core {
    /// Hands a processed batch to its sinks, each with its share of the batch's
    /// acknowledgement. Blocks while a sink's queue is full.
    fn hand_over(&self, processed: Processed, tracker: &Tracker) {
        for (sink, selection) in self.sinks.iter().zip(processed.selections) {
            if selection.is_empty(processed.lines.len()) {
                continue;
            }
            let input = SinkInput::Events { lines: processed.lines.clone(), selection };
            if sink.tx.blocking_send(SinkMessage { input, delivery: tracker.delivery() }).is_err() {
                tracing::error!(sink = %sink.name, "sink task is gone; its events are not acknowledged");
            }
        }
        for side in &processed.side_outputs {
            for sink in &self.side_sinks {
                if !sink.side_input.as_ref().is_some_and(|input| input.takes(side)) {
                    continue;
                }
                let input = SinkInput::Side(side.clone());
                if sink.tx.blocking_send(SinkMessage { input, delivery: tracker.delivery() }).is_err() {
                    tracing::error!(sink = %sink.name, side_output = %side.name, "sink task is gone; its side output is not acknowledged");
                }
            }
        }
        if !processed.dead_letters.is_empty() {
            let input = SinkInput::DeadLetters(processed.dead_letters);
            if self.dead_letter.blocking_send(SinkMessage { input, delivery: tracker.delivery() }).is_err() {
                tracing::error!("dead-letter sink task is gone; its records are not acknowledged");
            }
        }
    }

    /// The event, or its dead letter (boxed: rare, and larger than an event).
    fn decode(&self, record: RawRecord) -> Result<Event, Box<DeadLetter>> {
        let RawRecord { bytes, position, oversize } = record;
        if let Some(size) = oversize {
            let reason = Rejection::TooLarge { size, limit: self.max_event_bytes }.to_string();
            let kept = bytes.slice(..bytes.len().min(self.max_event_bytes));
            return Err(Box::new(DeadLetter::new(Stage::Decode, reason, position, kept)));
        }
        Event::decode(bytes, position, self.schema).map_err(|Rejected { rejection, raw, position }| {
            let stage = match rejection {
                Rejection::Schema(_) => Stage::Schema,
                _ => Stage::Decode,
            };
            Box::new(DeadLetter::new(stage, rejection.to_string(), position, raw))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ack::Tracker;
    use crate::event::Position;
    use crate::step::Step;

    /// A copyable step that panics on the batch numbered `seq`.
    #[derive(Clone)]
    struct PanicsOn(u64);

    impl Step for PanicsOn {
        fn name(&self) -> &str {
            "panics_on"
        }
        fn process(&mut self, batch: &mut Batch) {
            assert_ne!(batch.seq, self.0, "this worker dies");
        }
        fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
            Ok(Some(Box::new(self.clone())))
        }
    }

    /// An order-dependent step that does nothing.
    struct Shared;

    impl Step for Shared {
        fn name(&self) -> &str {
            "shared"
        }
        fn process(&mut self, _batch: &mut Batch) {}
    }

    fn raw_batch(id: u64, notify: &tokio::sync::mpsc::UnboundedSender<crate::ack::AckNotice>) -> RawBatch {
        let record = RawRecord {
            bytes: Bytes::from_static(
                br#"{"event_id":"e","timestamp":1,"component":"c","event_type":"x.y","severity":"INFO"}"#,
            ),
            position: Position::Generator { seq: id },
            oversize: None,
        };
        RawBatch { records: vec![record], tracker: Tracker::new(id, 1, notify.clone(), None) }
    }

    #[test]
    fn a_worker_that_dies_is_reported_while_the_others_wait_for_its_turn() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let joined = runtime.block_on(async {
            let telemetry = Arc::new(Telemetry::new());
            let steps = vec![
                RunningStep::new(Box::new(PanicsOn(1)), &telemetry),
                RunningStep::new(Box::new(Shared), &telemetry),
            ];
            let (dead_letter, _dead_rx) = mpsc::channel(16);
            let pipeline =
                Pipeline::new(SchemaMode::Lenient, 1 << 20, steps, Vec::new(), dead_letter, telemetry)
                    .with_workers(2)
                    .expect("two workers");
            let (tx, rx) = mpsc::channel(4);
            let (notify, _notices) = tokio::sync::mpsc::unbounded_channel();
            // Batch 1's worker dies before the shared step; batch 2's waits there
            // for batch 1's turn, which never comes.
            for id in 0..3 {
                tx.send(raw_batch(id, &notify)).await.expect("pipeline takes batches");
            }
            let run = tokio::spawn(pipeline.run(rx));
            let ended = tokio::time::timeout(Duration::from_secs(20), run).await;
            drop(tx);
            ended.expect("the run ends instead of waiting forever")
        });
        assert!(joined.is_err_and(|e| e.is_panic()), "the worker's panic reaches the pipeline task");
        // The waiting worker stays blocked; the process exits around it (main
        // shuts its runtime down with a timeout, as here).
        runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

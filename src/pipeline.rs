//! The pipeline core: one batch at a time, decode + validate → steps → route →
//! hand to the sinks, each with its share of the batch's acknowledgement.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use prometheus::{Histogram, IntCounter, IntCounterVec};
use tokio::sync::mpsc;

use crate::ack::AckLedger;
use crate::event::{Batch, DeadLetter, Event, EventKind, Rejected, Rejection, SchemaMode, SideOutput, Stage};
use crate::route::{route, Matcher, Selection};
use crate::scrub::DeadLetterScrubber;
use crate::sink::{SideInput, SinkInput, SinkMessage};
use crate::source::{RawBatch, RawRecord};
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
            batch_seconds: telemetry.histogram(
                "batch_duration_seconds",
                "Time to decode, validate, run the steps and route one batch",
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
        }
    }
}

pub struct Pipeline {
    schema: SchemaMode,
    max_event_bytes: usize,
    steps: Vec<RunningStep>,
    sinks: Vec<SinkRoute>,
    side_sinks: Vec<SinkRoute>,
    matchers: Vec<Option<Matcher>>,
    dead_letter: mpsc::Sender<SinkMessage>,
    metrics: PipelineMetrics,
    ledger: Arc<AckLedger>,
    /// Set when the pipeline has a PII scrubber: every dead letter goes through it.
    scrubber: Option<DeadLetterScrubber>,
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
        Pipeline {
            schema,
            max_event_bytes,
            steps,
            sinks,
            side_sinks,
            matchers,
            dead_letter,
            metrics: PipelineMetrics::register(&telemetry),
            ledger: Arc::new(AckLedger::default()),
            scrubber: None,
        }
    }

    /// Records what becomes of the records in `ledger` (the run summary's source).
    pub(crate) fn with_ledger(mut self, ledger: Arc<AckLedger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Scrubs every dead letter with `scrubber` before it is handed on.
    pub(crate) fn with_scrubber(mut self, scrubber: Option<DeadLetterScrubber>) -> Self {
        self.scrubber = scrubber;
        self
    }

    /// Processes batches until the source closes its channel.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RawBatch>) {
        while let Some(RawBatch { records, tracker }) = rx.recv().await {
            let started = Instant::now();
            let processed = self.process_blocking(records);
            self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());

            for (sink, selection) in self.sinks.iter().zip(processed.selections) {
                if selection.is_empty(processed.lines.len()) {
                    continue;
                }
                let input = SinkInput::Events { lines: processed.lines.clone(), selection };
                if sink.tx.send(SinkMessage { input, delivery: tracker.delivery() }).await.is_err() {
                    tracing::error!(sink = %sink.name, "sink task is gone; its events are not acknowledged");
                }
            }
            for side in &processed.side_outputs {
                for sink in &self.side_sinks {
                    if !sink.side_input.as_ref().is_some_and(|input| input.takes(side)) {
                        continue;
                    }
                    let input = SinkInput::Side(side.clone());
                    if sink.tx.send(SinkMessage { input, delivery: tracker.delivery() }).await.is_err() {
                        tracing::error!(sink = %sink.name, side_output = %side.name, "sink task is gone; its side output is not acknowledged");
                    }
                }
            }
            if !processed.dead_letters.is_empty() {
                let input = SinkInput::DeadLetters(processed.dead_letters);
                if self.dead_letter.send(SinkMessage { input, delivery: tracker.delivery() }).await.is_err() {
                    tracing::error!("dead-letter sink task is gone; its records are not acknowledged");
                }
            }
            // The pipeline's own share; the batch completes when the sinks ack.
            tracker.dispatched();
        }
    }

    /// `process` on a runtime worker: plugin calls block for up to their deadline,
    /// and WASI's synchronous bindings drive futures of their own, which tokio
    /// allows only outside the worker's async context.
    fn process_blocking(&mut self, records: Vec<RawRecord>) -> Processed {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.process(records))
        } else {
            self.process(records)
        }
    }

    /// Decode, validate, run the steps and route one batch. No I/O.
    pub fn process(&mut self, records: Vec<RawRecord>) -> Processed {
        let mut batch = Batch { events: Vec::with_capacity(records.len()), ..Batch::default() };
        let mut per_kind = [0u64; EventKind::KNOWN.len() + 1];
        let (mut decode_errors, mut schema_errors, mut warnings) = (0u64, 0u64, 0u64);
        for record in records {
            match self.decode(record) {
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
        for (counter, n) in self.metrics.by_type.iter().zip(per_kind) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        self.metrics.dead_decode.inc_by(decode_errors);
        self.metrics.dead_schema.inc_by(schema_errors);
        self.metrics.schema_warnings.inc_by(warnings);

        let before_steps = batch.dead_letters.len();
        for step in &mut self.steps {
            step.process(&mut batch);
        }
        let step_letters = batch.dead_letters.len() - before_steps;
        self.metrics.dead_step.inc_by(step_letters as u64);
        if let Some(scrubber) = &mut self.scrubber {
            for letter in &mut batch.dead_letters {
                scrubber.scrub(letter);
            }
        }

        let (selections, unrouted) = route(&batch.events, &self.matchers);
        self.metrics.unrouted.inc_by(unrouted as u64);
        self.ledger.record_batch(batch.dead_letters.len(), batch.dropped, unrouted);
        let lines = batch.events.into_iter().map(Event::into_wire).collect();
        Processed {
            lines: Arc::new(lines),
            selections,
            dead_letters: batch.dead_letters,
            side_outputs: batch.side_outputs,
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

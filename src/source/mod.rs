//! Sources: where raw records come from. Each record carries its position, and each
//! batch carries the acknowledgement tracker that tells the source when every sink
//! has taken it (see `ack.rs`). A source owns the stream of those notices: the Kafka
//! source moves its commit points by it; the others let it be recorded.

mod config;
mod file;
mod generator;
pub mod kafka;
pub mod rng;
pub mod traffic;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ack::{AckLedger, AckMetrics, AckNotice, Acks, Tracker};
use crate::event::Position;
use crate::telemetry::Telemetry;

pub(crate) use config::{BatchConfig, LimitsConfig, SourceConfig};
pub use generator::GeneratorConfig;

/// One input record, as received.
#[derive(Debug)]
pub struct RawRecord {
    pub bytes: Bytes,
    pub position: Position,
    /// Set when the input was larger than `limits.max_event_bytes`: its full size
    /// (`bytes` then holds only the first bytes).
    pub oversize: Option<usize>,
}

pub struct RawBatch {
    pub(crate) records: Vec<RawRecord>,
    pub(crate) tracker: Tracker,
}

/// What a source reports when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceReport {
    pub(crate) records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open input `{path}`: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("cannot read input `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("kafka source ({brokers}): {message}")]
    Kafka { brokers: String, message: String },
}

pub enum Source {
    Generator(generator::GeneratorSource),
    File(file::FileSource),
    Kafka(kafka::KafkaSource),
}

impl Source {
    pub(crate) fn build(config: &SourceConfig, max_event_bytes: usize, telemetry: &Telemetry) -> Self {
        match config {
            SourceConfig::Generator(c) => Source::Generator(generator::GeneratorSource::new(c)),
            SourceConfig::File(c) => Source::File(file::FileSource::new(&c.path, max_event_bytes)),
            SourceConfig::Kafka(c) => Source::Kafka(kafka::KafkaSource::new(c, telemetry)),
        }
    }

    /// Reads until the input ends or `shutdown` fires; records already read are
    /// always emitted before returning. A committing source also waits for what it
    /// emitted to be acknowledged, until `give_up` fires, and commits it.
    pub(crate) async fn run(
        self,
        mut emitter: Emitter,
        acks: Acks,
        shutdown: CancellationToken,
        give_up: CancellationToken,
    ) -> Result<SourceReport, SourceError> {
        match self {
            Source::Kafka(s) => s.run(emitter, acks, shutdown, give_up).await,
            Source::Generator(s) => {
                let follower = tokio::spawn(acks.follow());
                let report = s.run(&mut emitter, shutdown).await;
                finish(emitter, follower).await;
                report
            }
            Source::File(s) => {
                let follower = tokio::spawn(acks.follow());
                let report = s.run(&mut emitter, shutdown).await;
                finish(emitter, follower).await;
                report
            }
        }
    }
}

/// Waits until every batch `emitter` sent has finished (acknowledged, failed, or
/// given up on at the drain deadline), so that the ledger is complete when the
/// source returns.
async fn finish(emitter: Emitter, follower: tokio::task::JoinHandle<()>) {
    drop(emitter);
    let _ = follower.await;
}

/// The source stage's metrics.
#[derive(Clone)]
pub(crate) struct SourceMetrics {
    events: IntCounter,
    batches: IntCounter,
}

impl SourceMetrics {
    pub(crate) fn register(telemetry: &Telemetry) -> Self {
        // The consumer-group families are shown whatever the source (at zero when it
        // is not Kafka), so that dashboards and alerts need no case for it.
        kafka::KafkaMetrics::register(telemetry);
        SourceMetrics {
            events: telemetry.counter("source_events_total", "Records read from the source"),
            batches: telemetry.counter("source_batches_total", "Batches read from the source"),
        }
    }
}

/// Waits for the batch deadline, or forever when no batch is open.
pub(crate) async fn linger(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Groups records into batches (size or linger, whichever first) and sends them to
/// the pipeline, holding an in-flight permit per batch.
pub struct Emitter {
    out: mpsc::Sender<RawBatch>,
    acks: mpsc::UnboundedSender<AckNotice>,
    permits: Arc<Semaphore>,
    max_events: usize,
    linger: Duration,
    records: Vec<RawRecord>,
    deadline: Option<Instant>,
    next_batch_id: u64,
    emitted: u64,
    max_event_bytes: usize,
    metrics: SourceMetrics,
    ack_metrics: AckMetrics,
}

/// The pipeline is gone; nothing more can be emitted.
#[derive(Debug)]
pub struct Closed;

impl Emitter {
    /// The emitter, and the stream of its batches' acknowledgements (recorded in
    /// `ledger`).
    pub(crate) fn new(
        out: mpsc::Sender<RawBatch>,
        batch: &BatchConfig,
        limits: &LimitsConfig,
        telemetry: &Telemetry,
        ledger: Arc<AckLedger>,
    ) -> (Self, Acks) {
        let (acks, notices) = mpsc::unbounded_channel();
        let ack_metrics = AckMetrics::register(telemetry);
        let emitter = Emitter {
            out,
            acks,
            permits: Arc::new(Semaphore::new(limits.max_in_flight_batches)),
            max_events: batch.max_events,
            linger: batch.linger,
            records: Vec::with_capacity(batch.max_events),
            deadline: None,
            next_batch_id: 0,
            emitted: 0,
            max_event_bytes: limits.max_event_bytes,
            metrics: SourceMetrics::register(telemetry),
            ack_metrics: ack_metrics.clone(),
        };
        (emitter, Acks::new(notices, ledger, ack_metrics))
    }

    /// Adds a record; sends the batch when it is full.
    pub(crate) async fn push(&mut self, record: RawRecord) -> Result<(), Closed> {
        if self.records.is_empty() {
            self.deadline = Some(Instant::now() + self.linger);
        }
        self.records.push(record);
        if self.records.len() >= self.max_events {
            self.flush().await?;
        }
        Ok(())
    }

    /// When the open batch must be sent even if not full.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Records emitted so far.
    pub(crate) fn emitted(&self) -> u64 {
        self.emitted
    }

    /// The id the open batch will be sent with.
    pub(crate) fn open_batch_id(&self) -> u64 {
        self.next_batch_id
    }

    pub(crate) fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Whether the next push would wait for an in-flight permit.
    pub(crate) fn would_block(&self) -> bool {
        self.records.len() + 1 >= self.max_events && self.permits.available_permits() == 0
    }

    /// Keeps only the open batch's records for which `keep` holds.
    pub(crate) fn retain_open(&mut self, keep: impl FnMut(&RawRecord) -> bool) {
        self.records.retain(keep);
        if self.records.is_empty() {
            self.deadline = None;
        }
    }

    /// Sends the open batch, if any. Waits for an in-flight permit first: this is
    /// where a slow sink slows the source down.
    pub(crate) async fn flush(&mut self) -> Result<(), Closed> {
        self.deadline = None;
        if self.records.is_empty() {
            return Ok(());
        }
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| Closed)?;
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(self.max_events));
        let count = records.len();
        let tracker = Tracker::new(self.next_batch_id, count, self.acks.clone(), Some(permit));
        self.next_batch_id += 1;
        self.out.send(RawBatch { records, tracker }).await.map_err(|_| Closed)?;
        self.emitted += count as u64;
        self.metrics.events.inc_by(count as u64);
        self.metrics.batches.inc();
        self.ack_metrics.in_flight_batches.inc();
        Ok(())
    }
}

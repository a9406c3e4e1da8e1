//! End-to-end acknowledgement of batches.
//!
//! Every batch a source emits carries a [`Tracker`]. The pipeline hands one
//! [`Delivery`] to each sink the batch (or part of it) was routed to, and to the
//! dead-letter sink. The batch is finished when the tracker and every delivery are
//! gone; the source then receives an [`AckNotice`] saying whether every sink
//! acknowledged. A delivery dropped without [`Delivery::ack`] (a sink that gave up,
//! a task that died) marks the batch failed, so nothing is reported done by accident.
//!
//! The source's in-flight permit lives inside the tracker: it is released exactly
//! when the batch is finished, which is what bounds memory under any input rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::telemetry::Telemetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every sink acknowledged (or the events were dropped on purpose).
    Done,
    /// At least one delivery was not acknowledged: the batch must not be committed.
    Failed,
}

/// Sent to the source when a batch is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckNotice {
    pub(crate) batch_id: u64,
    pub events: usize,
    pub(crate) outcome: Outcome,
}

struct Inner {
    batch_id: u64,
    events: usize,
    failed: AtomicBool,
    notify: mpsc::UnboundedSender<AckNotice>,
}

/// The source's in-flight permit, held by the tracker and by each delivery until
/// its sink has taken the batch in (delivered it or put it in its buffer). Memory
/// is then bounded by the buffers, and a slow sink with room in its buffer does
/// not hold the source back.
struct Hold {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let outcome = if self.failed.load(Ordering::Acquire) { Outcome::Failed } else { Outcome::Done };
        // The source may already be gone at shutdown; then nobody needs the notice.
        let _ = self.notify.send(AckNotice { batch_id: self.batch_id, events: self.events, outcome });
    }
}

/// The pipeline's share of a batch; dropped once the batch has been dispatched.
pub(crate) struct Tracker {
    inner: Arc<Inner>,
    hold: Arc<Hold>,
    /// Set by `dispatched`; a tracker dropped without it (a pipeline that panicked,
    /// a batch still queued when its consumer died) fails the batch.
    dispatched: bool,
}

impl Tracker {
    pub(crate) fn new(
        batch_id: u64,
        events: usize,
        notify: mpsc::UnboundedSender<AckNotice>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let inner = Inner { batch_id, events, failed: AtomicBool::new(false), notify };
        Tracker { inner: Arc::new(inner), hold: Arc::new(Hold { _permit: permit }), dispatched: false }
    }

    pub(crate) fn delivery(&self) -> Delivery {
        Delivery { inner: Some(self.inner.clone()), hold: Some(self.hold.clone()) }
    }

    /// The pipeline has handed every part of the batch on: from now on the
    /// deliveries alone decide its outcome.
    pub(crate) fn dispatched(mut self) {
        self.dispatched = true;
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.dispatched {
            self.inner.failed.store(true, Ordering::Release);
        }
    }
}

pub struct Delivery {
    inner: Option<Arc<Inner>>,
    hold: Option<Arc<Hold>>,
}

impl Delivery {
    pub(crate) fn ack(mut self) {
        self.inner = None;
    }

    /// The sink has taken the batch into its buffer: its share of the in-flight
    /// permit is released; the acknowledgement still waits for `ack`.
    pub(crate) fn accepted(&mut self) {
        self.hold = None;
    }

    /// Another delivery of the same batch (for records a sink passes on to the
    /// dead-letter sink): the batch is finished when both are.
    pub(crate) fn share(&self) -> Delivery {
        Delivery { inner: self.inner.clone(), hold: None }
    }

    /// A delivery that tracks nothing: for records already acknowledged upstream
    /// (they were written to a disk buffer) that a sink passes on.
    pub(crate) fn detached() -> Delivery {
        Delivery { inner: None, hold: None }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.failed.store(true, Ordering::Release);
        }
    }
}

/// Running totals of what became of the records read: the run summary is read
/// from here. Finished batches are recorded by the [`Acks`] stream; the pipeline
/// records what it dead-lettered, dropped and could not route.
#[derive(Debug, Default)]
pub struct AckLedger {
    pub(crate) done_events: AtomicU64,
    pub(crate) failed_events: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub dropped: AtomicU64,
    pub(crate) unrouted: AtomicU64,
}

impl AckLedger {
    pub(crate) fn record(&self, notice: &AckNotice) {
        let counter = match notice.outcome {
            Outcome::Done => &self.done_events,
            Outcome::Failed => &self.failed_events,
        };
        counter.fetch_add(notice.events as u64, Ordering::Relaxed);
    }

    /// Adds what the pipeline did with one batch.
    pub(crate) fn record_batch(&self, dead_lettered: usize, dropped: usize, unrouted: usize) {
        self.dead_lettered.fetch_add(dead_lettered as u64, Ordering::Relaxed);
        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        self.unrouted.fetch_add(unrouted as u64, Ordering::Relaxed);
    }
}

/// Acknowledgement metrics: batches in flight, records acknowledged or not.
#[derive(Clone)]
pub struct AckMetrics {
    pub(crate) in_flight_batches: IntGauge,
    acknowledged: IntCounter,
    unacknowledged: IntCounter,
}

impl AckMetrics {
    pub(crate) fn register(telemetry: &Telemetry) -> Self {
        AckMetrics {
            in_flight_batches: telemetry
                .gauge("in_flight_batches", "Batches read but not yet acknowledged by every sink"),
            acknowledged: telemetry
                .counter("acknowledged_events_total", "Input records whose batch every sink acknowledged"),
            unacknowledged: telemetry.counter(
                "unacknowledged_events_total",
                "Input records whose batch was not acknowledged by every sink",
            ),
        }
    }
}

/// The stream of finished batches, owned by the source that emitted them: a
/// committing source follows it to move its commit point; the others let it be
/// followed in the background. Every notice is recorded in the ledger and the
/// metrics on its way.
pub struct Acks {
    rx: mpsc::UnboundedReceiver<AckNotice>,
    ledger: Arc<AckLedger>,
    metrics: AckMetrics,
}

impl Acks {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<AckNotice>,
        ledger: Arc<AckLedger>,
        metrics: AckMetrics,
    ) -> Self {
        Acks { rx, ledger, metrics }
    }

    /// The next finished batch; `None` once every batch emitted is finished and the
    /// emitter is gone.
    pub(crate) async fn next(&mut self) -> Option<AckNotice> {
        let notice = self.rx.recv().await?;
        Some(self.record(notice))
    }

    /// Records every notice until the stream ends.
    pub(crate) async fn follow(mut self) {
        while self.next().await.is_some() {}
    }

    fn record(&self, notice: AckNotice) -> AckNotice {
        self.ledger.record(&notice);
        self.metrics.in_flight_batches.dec();
        match notice.outcome {
            Outcome::Done => self.metrics.acknowledged.inc_by(notice.events as u64),
            Outcome::Failed => self.metrics.unacknowledged.inc_by(notice.events as u64),
        }
        notice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_done_only_when_every_delivery_acked() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tracker = Tracker::new(7, 3, tx, None);
        let a = tracker.delivery();
        let b = tracker.delivery();
        tracker.dispatched();
        a.ack();
        assert!(rx.try_recv().is_err(), "b has not acknowledged yet");
        b.ack();
        assert_eq!(rx.try_recv().ok(), Some(AckNotice { batch_id: 7, events: 3, outcome: Outcome::Done }));
    }

    #[test]
    fn a_dropped_delivery_fails_the_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tracker = Tracker::new(1, 2, tx, None);
        let a = tracker.delivery();
        let b = tracker.delivery();
        tracker.dispatched();
        a.ack();
        drop(b);
        assert_eq!(rx.try_recv().map(|n| n.outcome).ok(), Some(Outcome::Failed));
    }

    #[test]
    fn a_tracker_dropped_before_dispatch_fails_the_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tracker = Tracker::new(3, 4, tx, None);
        let a = tracker.delivery();
        drop(tracker);
        a.ack();
        assert_eq!(rx.try_recv().map(|n| n.outcome).ok(), Some(Outcome::Failed));
    }

    #[test]
    fn a_batch_with_no_deliveries_is_done_when_dispatched() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        Tracker::new(2, 5, tx, None).dispatched();
        assert_eq!(rx.try_recv().map(|n| n.outcome).ok(), Some(Outcome::Done));
    }

    #[test]
    fn permit_is_released_when_the_batch_finishes() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = sem.clone().try_acquire_owned().ok();
        let tracker = Tracker::new(3, 1, tx, permit);
        let d = tracker.delivery();
        drop(tracker);
        assert_eq!(sem.available_permits(), 0);
        d.ack();
        assert_eq!(sem.available_permits(), 1);
    }
}

//! A sink's task: the intake puts each batch the pipeline hands over into the
//! sink's buffer; the delivery loop takes batches out of the buffer, in order, and
//! writes them, behind the sink's circuit breaker.
//!
//! Acknowledgement: a batch in a memory buffer is acknowledged once written; a
//! batch in a disk buffer once it is on disk (synced, with `fsync: every_batch`).
//! Either way the source's in-flight permit is released as soon as the batch is in
//! the buffer, so a sink that is down holds back only itself until its buffer is
//! full.
//!
//! Errors are classified: a transient one (connection refused, timeout, 5xx) is
//! retried with backoff and then through the circuit breaker; records the receiver
//! refuses for good ([`SinkError::Refused`]) go to the dead-letter sink with the
//! reason, and the rest of the batch counts as delivered. The dead-letter sink
//! replaces a record it cannot write by a short record that says so.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{Encoded, Output, Refusal, SinkCounters, SinkError, SinkInput, SinkMessage};
use crate::ack::Delivery;
use crate::breaker::{Breaker, BreakerConfig};
use crate::buffer::disk::{Appended, DiskError, DiskQueue, Record};
use crate::buffer::{BufferConfig, BufferKind, BufferMetrics, Fsync, MemoryQueue, WhenFull};
use crate::event::{DeadLetter, Position, Stage};

/// How a sink's batches wait: in memory (acknowledged once written) or on disk
/// (acknowledged once stored).
pub(crate) enum Buffer {
    Memory(MemoryQueue<SinkMessage>),
    Disk(DiskBuffer),
}

pub(crate) struct DiskBuffer {
    queue: Arc<DiskQueue>,
    fsync: Fsync,
    /// A record was appended, or the intake closed.
    appended: Notify,
    /// A record was delivered: there may be room.
    delivered: Notify,
    /// The intake has closed: the run is ending.
    closed: CancellationToken,
}

impl Buffer {
    /// Opens the buffer `config` describes; a disk buffer is read from where the
    /// last run left it.
    pub(crate) fn open(config: &BufferConfig) -> Result<Buffer, SinkError> {
        Ok(match &config.kind {
            BufferKind::Memory { max_events, max_bytes } => {
                Buffer::Memory(MemoryQueue::new(*max_events, *max_bytes))
            }
            BufferKind::Disk { path, max_bytes, fsync, encryption } => {
                let queue = DiskQueue::open(path, *max_bytes)
                    .map_err(|e| SinkError::Buffer(e.to_string()))?
                    .with_sealer(encryption.clone());
                let queue = Arc::new(queue);
                crate::buffer::disk::register(path, &queue);
                Buffer::Disk(DiskBuffer {
                    queue,
                    fsync: *fsync,
                    appended: Notify::new(),
                    delivered: Notify::new(),
                    closed: CancellationToken::new(),
                })
            }
        })
    }
}

pub struct SinkTask {
    name: String,
    parts: SinkParts,
    rx: mpsc::Receiver<SinkMessage>,
    /// Fires when the drain deadline passed: stop retrying.
    give_up: CancellationToken,
    /// Where refused records go; `None` for the dead-letter sink itself.
    dead_letter: Option<mpsc::Sender<SinkMessage>>,
}

/// What became of one batch taken from the buffer.
enum Written {
    /// Every record was written, except these, refused for good.
    Done(Vec<Refusal>),
    /// Not written: the deadline passed, or the run is ending and the output is
    /// failing (a disk buffer keeps the batch for the next run).
    Stopped,
    /// Not written, and the disk buffer's records were rewritten since the batch
    /// was taken (a deletion request): it is to be read again before a retry.
    Rewritten,
}

/// A batch taken from the buffer, with what completes it.
enum Taken {
    Memory(SinkMessage),
    Disk(Record),
}

pub(crate) struct SinkParts {
    pub(crate) output: Output,
    pub(crate) counters: SinkCounters,
    pub(crate) buffer: Buffer,
    pub(crate) when_full: WhenFull,
    pub(crate) metrics: BufferMetrics,
    pub(crate) breaker: BreakerConfig,
    pub(crate) circuit_gauge: prometheus::IntGauge,
}

impl SinkTask {
    pub(crate) fn new(
        name: &str,
        parts: SinkParts,
        rx: mpsc::Receiver<SinkMessage>,
        give_up: CancellationToken,
        dead_letter: Option<mpsc::Sender<SinkMessage>>,
    ) -> Self {
        SinkTask { name: name.to_string(), parts, rx, give_up, dead_letter }
    }

    /// Runs until the pipeline closes the queue and the buffer is delivered (a
    /// disk buffer: or the output fails at the end of the run), then closes the
    /// output.
    pub(crate) async fn run(self) {
        let SinkTask { name, parts, rx, give_up, dead_letter } = self;
        let SinkParts { mut output, counters, buffer, when_full, metrics, breaker, circuit_gauge } = parts;
        let intake = Intake { name: &name, buffer: &buffer, when_full, metrics: &metrics, give_up: &give_up };
        let mut drain = Drain {
            name: &name,
            output: &mut output,
            counters: &counters,
            buffer: &buffer,
            metrics: &metrics,
            breaker: Breaker::new(&name, breaker, circuit_gauge),
            give_up: &give_up,
            dead_letter,
        };
        tokio::join!(intake.run(rx), drain.run());
        if let Err(e) = output.close().await {
            tracing::error!(sink = %name, error = %e, "closing sink failed");
        }
    }
}

/// Turns a batch's lines (each followed by a newline, as `encode_lines` writes
/// them into `buf`) into a disk buffer record, in place: each line's length
/// (u32 LE) and then the line count are appended after the lines.
pub(crate) fn pack(mut buf: Vec<u8>, ranges: &[Range<usize>]) -> Vec<u8> {
    buf.reserve(4 * ranges.len() + 4);
    for range in ranges {
        buf.extend_from_slice(&(range.len() as u32).to_le_bytes());
    }
    buf.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    buf
}

/// The lines of a packed record: the buffer and each line's range in it. `None`
/// when the lengths do not add up (the record passed its checksum, so this means
/// a record written by something else).
pub(crate) fn unpack(payload: &[u8]) -> Option<(&[u8], Vec<Range<usize>>)> {
    let count_at = payload.len().checked_sub(4)?;
    let count = u32::from_le_bytes(payload[count_at..].try_into().ok()?) as usize;
    let lens_at = count_at.checked_sub(count.checked_mul(4)?)?;
    let (buf, lens) = (&payload[..lens_at], &payload[lens_at..count_at]);
    let mut ranges = Vec::with_capacity(count);
    let mut start = 0usize;
    for len in lens.chunks_exact(4) {
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let end = start.checked_add(len)?;
        // Each line is followed by its newline.
        if end >= buf.len() {
            return None;
        }
        ranges.push(start..end);
        start = end + 1;
    }
    (start == buf.len()).then_some((buf, ranges))
}

struct Intake<'a> {
    name: &'a str,
    buffer: &'a Buffer,
    when_full: WhenFull,
    metrics: &'a BufferMetrics,
    give_up: &'a CancellationToken,
}

impl Intake<'_> {
    async fn run(self, mut rx: mpsc::Receiver<SinkMessage>) {
        match self.buffer {
            Buffer::Memory(queue) => {
                while let Some(message) = rx.recv().await {
                    self.put_in_memory(queue, message).await;
                }
                queue.close();
            }
            Buffer::Disk(disk) => {
                let mut sync_timer = match disk.fsync {
                    Fsync::Interval(every) => Some(tokio::time::interval(every)),
                    Fsync::EveryBatch => None,
                };
                let mut ranges = Vec::new();
                // The timed sync runs beside the intake, one at a time: waiting
                // for it would stall the intake for as long as the disk takes.
                let mut syncing: Option<tokio::task::JoinHandle<()>> = None;
                loop {
                    let tick = async {
                        match sync_timer.as_mut() {
                            Some(timer) => {
                                timer.tick().await;
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        message = rx.recv() => {
                            let Some(message) = message else { break };
                            self.put_on_disk(disk, message, &mut ranges).await;
                        }
                        _ = tick => {
                            if syncing.as_ref().is_none_or(|s| s.is_finished()) {
                                let (queue, name) = (disk.queue.clone(), self.name.to_string());
                                syncing = Some(tokio::spawn(async move { sync_logged(queue, &name).await; }));
                            }
                        }
                    }
                }
                if let Some(syncing) = syncing {
                    let _ = syncing.await;
                }
                sync_logged(disk.queue.clone(), self.name).await;
                disk.closed.cancel();
                disk.appended.notify_one();
            }
        }
    }

    async fn put_in_memory(&self, queue: &MemoryQueue<SinkMessage>, mut message: SinkMessage) {
        let (events, bytes) = message.input.size();
        if self.when_full == WhenFull::Block {
            queue.wait_for_room(events, bytes).await;
        }
        if queue.fits(events, bytes) {
            // Taken in: the source may read on. The intake is the only producer,
            // so the push cannot find the queue full.
            message.delivery.accepted();
            if let Err(message) = queue.try_push(message, events, bytes) {
                drop(message);
                tracing::error!(sink = %self.name, "buffer refused a batch it had room for; it is not acknowledged");
            }
        } else {
            self.dropped(events);
            // Dropped on purpose (the operator chose drop_newest): the batch
            // does not wait for this sink.
            message.delivery.ack();
        }
        self.metrics.set_size_of(queue);
    }

    fn dropped(&self, events: u64) {
        if self.metrics.dropped.get() == 0 {
            tracing::warn!(sink = %self.name, "buffer full: dropping new batches (when_full: drop_newest); counted in buffer_dropped_events_total");
        }
        self.metrics.dropped.inc_by(events);
    }

    async fn put_on_disk(&self, disk: &DiskBuffer, message: SinkMessage, ranges: &mut Vec<Range<usize>>) {
        ranges.clear();
        if let SinkInput::Side(side) = &message.input {
            // Refused at config load; kept from failing silently all the same.
            tracing::error!(sink = %self.name, side_output = %side.name, "a disk buffer cannot hold a side output; the batch is not acknowledged");
            return;
        }
        // A buffer of its own: it becomes the record, moved to the writing thread.
        let mut buf = Vec::new();
        message.input.encode_lines(&mut buf, ranges);
        let events = ranges.len() as u64;
        let payload = Arc::new(pack(buf, ranges));
        let mut backoff = crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let room = disk.delivered.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let queue = disk.queue.clone();
            let record = payload.clone();
            let appended = blocking(move || queue.append(&record)).await;
            let error = match appended {
                Ok(Appended::Written) => None,
                Ok(Appended::Full) => match self.when_full {
                    WhenFull::DropNewest => {
                        self.dropped(events);
                        message.delivery.ack();
                        return;
                    }
                    WhenFull::Block => {
                        tokio::select! {
                            _ = room => continue,
                            _ = self.give_up.cancelled() => {
                                tracing::error!(sink = %self.name, events, "disk buffer still full at the drain deadline; the batch is not acknowledged");
                                return;
                            }
                        }
                    }
                },
                Err(error) => Some(error),
            };
            match error {
                None => break,
                Some(error) => {
                    if self.when_full == WhenFull::DropNewest {
                        tracing::error!(sink = %self.name, %error, events, "cannot write to the disk buffer; the batch is dropped (when_full: drop_newest)");
                        self.dropped(events);
                        message.delivery.ack();
                        return;
                    }
                    let wait = backoff.after_failure();
                    tracing::error!(sink = %self.name, %error, retry_in = ?wait, "cannot write to the disk buffer");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.give_up.cancelled() => return,
                    }
                }
            }
        }
        if disk.fsync == Fsync::EveryBatch && !sync_logged(disk.queue.clone(), self.name).await {
            // Not known to be durable: not acknowledged (the source sends the
            // batch again after a restart; the buffer may then hold it twice).
            return;
        }
        message.delivery.ack();
        let m = self.metrics;
        m.set_size(m.records.get() as u64 + 1, m.events.get() as u64 + events, disk.queue.bytes());
        disk.appended.notify_one();
    }
}

/// Runs blocking disk buffer work off the async workers; its error, or the
/// task's failure, as text for the log.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DiskError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("disk buffer task failed: {e}")),
    }
}

/// Syncs a disk buffer; `false` (logged) if that failed.
async fn sync_logged(queue: Arc<DiskQueue>, sink: &str) -> bool {
    match blocking(move || queue.sync()).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(sink = %sink, %error, "cannot sync the disk buffer");
            false
        }
    }
}

struct Drain<'a> {
    name: &'a str,
    output: &'a mut Output,
    counters: &'a SinkCounters,
    buffer: &'a Buffer,
    metrics: &'a BufferMetrics,
    breaker: Breaker,
    give_up: &'a CancellationToken,
    dead_letter: Option<mpsc::Sender<SinkMessage>>,
}

impl Drain<'_> {
    async fn run(&mut self) {
        let mut buf = Vec::with_capacity(256 * 1024);
        let mut ranges = Vec::new();
        while let Some(taken) = self.take().await {
            match taken {
                Taken::Memory(message) => {
                    buf.clear();
                    ranges.clear();
                    message.input.encode_lines(&mut buf, &mut ranges);
                    let side = match &message.input {
                        SinkInput::Side(side) => Some(side),
                        _ => None,
                    };
                    let count = side.map_or(ranges.len(), |s| s.count) as u64;
                    let encoded = Encoded { buf: &buf, ranges: &ranges, side };
                    match self.write(&encoded, None).await {
                        Written::Done(refused) => {
                            self.settle(&encoded, count, refused, Some(&message.delivery)).await;
                            message.delivery.ack();
                        }
                        // (`Rewritten` comes only for a batch from a disk buffer.)
                        Written::Stopped | Written::Rewritten => {
                            self.counters.failed.inc_by(count);
                            tracing::error!(sink = %self.name, events = count, "giving up on a batch at shutdown; it is not acknowledged");
                        }
                    }
                }
                Taken::Disk(mut record) => {
                    let Buffer::Disk(disk) = self.buffer else { return };
                    loop {
                        let Some((lines, ranges)) = unpack(&record.payload) else {
                            tracing::error!(sink = %self.name, seq = record.seq, "a disk buffer record does not hold lines; skipped");
                            self.metrics.count_losses(&crate::buffer::disk::Losses(vec![(
                                crate::buffer::disk::Damage::Corrupt,
                                1,
                            )]));
                            self.confirm(disk, record.seq, 0).await;
                            break;
                        };
                        let encoded = Encoded { buf: lines, ranges: &ranges, side: None };
                        let count = ranges.len() as u64;
                        match self.write(&encoded, Some(disk.queue.rewrites())).await {
                            Written::Done(refused) => {
                                self.settle(&encoded, count, refused, None).await;
                                self.confirm(disk, record.seq, count).await;
                                break;
                            }
                            // Left in the buffer for the next run.
                            Written::Stopped => return,
                            // A deletion request removed lines from the buffer: the
                            // retry sends the record as it is now, never the copy
                            // taken before.
                            Written::Rewritten => match disk.queue.reread(record.seq) {
                                Ok(Some(payload)) => record.payload = payload,
                                Ok(None) => {
                                    self.confirm(disk, record.seq, 0).await;
                                    break;
                                }
                                Err(error) => {
                                    tracing::error!(sink = %self.name, %error, "cannot read a rewritten buffer record again; it stays for the next run");
                                    return;
                                }
                            },
                        }
                    }
                }
            }
        }
    }

    /// The next batch from the buffer; `None` when the intake is closed and the
    /// buffer is empty.
    async fn take(&mut self) -> Option<Taken> {
        match self.buffer {
            Buffer::Memory(queue) => {
                let message = queue.pop().await?;
                self.metrics.set_size_of(queue);
                Some(Taken::Memory(message))
            }
            Buffer::Disk(disk) => loop {
                let appended = disk.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                let closed = disk.closed.is_cancelled();
                let queue = disk.queue.clone();
                match blocking(move || queue.next()).await {
                    Ok((record, losses)) => {
                        self.metrics.count_losses(&losses);
                        if let Some(record) = record {
                            return Some(Taken::Disk(record));
                        }
                        self.metrics.set_size(0, 0, disk.queue.bytes());
                        if closed {
                            return None;
                        }
                        appended.await;
                    }
                    Err(error) => {
                        tracing::error!(sink = %self.name, %error, "cannot read the disk buffer; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = self.give_up.cancelled() => return None,
                        }
                    }
                }
            },
        }
    }

    async fn confirm(&self, disk: &DiskBuffer, seq: u64, events: u64) {
        // A 12-byte write (and, when a segment is done, an unlink): too small to
        // hand to another thread.
        if let Err(e) = disk.queue.delivered(seq) {
            tracing::warn!(sink = %self.name, error = %e, "cannot record a delivery; it may be delivered again after a restart");
        }
        let m = self.metrics;
        let records = (m.records.get() as u64).saturating_sub(1);
        m.set_size(records, (m.events.get() as u64).saturating_sub(events), disk.queue.bytes());
        disk.delivered.notify_one();
    }

    /// Writes one batch: retried while the error is transient, until it is
    /// written, refused, or the run ends (see [`Written::Stopped`]).
    /// `rewrites_seen`: for a batch taken from a disk buffer, the buffer's rewrite
    /// count when it was read.
    async fn write(&mut self, encoded: &Encoded<'_>, rewrites_seen: Option<u64>) -> Written {
        let disk_backed = rewrites_seen.is_some();
        loop {
            if self.give_up.is_cancelled() {
                return Written::Stopped;
            }
            self.breaker.before_attempt();
            match self.output.write(encoded).await {
                Ok(()) => {
                    self.breaker.success();
                    return Written::Done(Vec::new());
                }
                Err(SinkError::Refused(refused)) => {
                    // The output answered: it is up, it just will not take these.
                    self.breaker.success();
                    return Written::Done(refused);
                }
                Err(e) => {
                    self.counters.write_errors.inc();
                    let wait = self.breaker.failure(&e);
                    // A disk buffer keeps what it holds for the next run: once the
                    // run is ending, a failing output is not waited for.
                    let ending = async {
                        match self.buffer {
                            Buffer::Disk(disk) if disk_backed => disk.closed.cancelled().await,
                            _ => std::future::pending().await,
                        }
                    };
                    let stop = tokio::select! {
                        _ = self.give_up.cancelled() => true,
                        _ = ending => true,
                        _ = tokio::time::sleep(wait) => false,
                    };
                    if stop {
                        if disk_backed {
                            tracing::warn!(sink = %self.name, error = %e, "output failing at shutdown; the disk buffer keeps the rest for the next run");
                        }
                        return Written::Stopped;
                    }
                    if let (Buffer::Disk(disk), Some(seen)) = (self.buffer, rewrites_seen) {
                        if disk.queue.rewrites() != seen {
                            return Written::Rewritten;
                        }
                    }
                }
            }
        }
    }

    /// Counts a written batch and passes its refused records on, tracked by a
    /// share of `delivery` (a batch still waiting for this sink's acknowledgement)
    /// or untracked (a batch acknowledged when it was stored in a disk buffer).
    async fn settle(
        &mut self,
        encoded: &Encoded<'_>,
        count: u64,
        refused: Vec<Refusal>,
        delivery: Option<&Delivery>,
    ) {
        let refused_count = refused.len() as u64;
        self.counters.sent.inc_by(count.saturating_sub(refused_count));
        if refused.is_empty() {
            return;
        }
        self.counters.refused.inc_by(refused_count);
        let first_reason = refused[0].reason.clone();
        match &self.dead_letter {
            Some(dead_letter) => {
                let sink: Arc<str> = self.name.into();
                let letters: Vec<DeadLetter> = refused
                    .into_iter()
                    .filter_map(|Refusal { line, reason }| {
                        let range = encoded.ranges.get(line)?;
                        let raw = bytes::Bytes::copy_from_slice(&encoded.buf[range.clone()]);
                        let reason = format!("sink `{}` refused it: {reason}", self.name);
                        Some(DeadLetter::new(
                            Stage::Sink(self.name.to_string()),
                            reason,
                            Position::Sink { sink: sink.clone() },
                            raw,
                        ))
                    })
                    .collect();
                tracing::warn!(sink = %self.name, records = letters.len(), reason = %first_reason, "records refused by the output go to the dead-letter sink");
                let delivery = delivery.map_or_else(Delivery::detached, Delivery::share);
                let message = SinkMessage { input: SinkInput::DeadLetters(letters), delivery };
                if dead_letter.send(message).await.is_err() {
                    tracing::error!(sink = %self.name, "the dead-letter sink is gone; refused records are not acknowledged");
                }
            }
            None => self.replace_refused_dead_letters(encoded, refused).await,
        }
    }

    /// The dead-letter sink's own refusals: each refused record is replaced by a
    /// short one that says what happened, written once more; what is refused
    /// again is logged and counted, never retried forever.
    async fn replace_refused_dead_letters(&mut self, encoded: &Encoded<'_>, refused: Vec<Refusal>) {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for Refusal { line, reason } in &refused {
            let Some(range) = encoded.ranges.get(*line) else { continue };
            let original = &encoded.buf[range.clone()];
            let head: String =
                String::from_utf8_lossy(&original[..original.len().min(SUMMARY_HEAD_BYTES)]).into_owned();
            let summary = serde_json::json!({
                "time": crate::clock::now_ms(),
                "stage": "sink",
                "reason": format!("the dead-letter sink refused this record ({reason}); it was replaced by this summary"),
                "truncated": true,
                "original_bytes": original.len(),
                "head": head,
            });
            let start = buf.len();
            if serde_json::to_writer(&mut buf, &summary).is_err() {
                continue;
            }
            ranges.push(start..buf.len());
            buf.push(b'\n');
        }
        tracing::error!(sink = %self.name, records = refused.len(), "the dead-letter sink refused records; writing summaries in their place");
        let summaries = Encoded { buf: &buf, ranges: &ranges, side: None };
        match self.write(&summaries, None).await {
            Written::Done(again) if again.is_empty() => {}
            Written::Done(again) => {
                tracing::error!(sink = %self.name, records = again.len(), "the dead-letter sink refused the summaries too; these records are lost (counted in sink_events_total, outcome refused)");
            }
            Written::Stopped | Written::Rewritten => {
                tracing::error!(sink = %self.name, "the run ended before the summaries of refused dead letters were written");
            }
        }
    }
}

/// How much of a refused dead letter its summary keeps.
const SUMMARY_HEAD_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_lines_unpack_to_the_same_lines() {
        let buf = b"{\"a\":1}\n\n{\"b\":22}\n".to_vec();
        let ranges = vec![0..7, 8..8, 9..17];
        let packed = pack(buf.clone(), &ranges);
        let (lines, back) = unpack(&packed).expect("unpacks");
        assert_eq!(lines, &buf[..]);
        assert_eq!(back, ranges);
    }

    #[test]
    fn records_that_do_not_add_up_are_refused() {
        assert!(unpack(b"").is_none());
        assert!(unpack(&[9, 0, 0, 0]).is_none(), "9 lengths announced, none present");
        let one_line = [std::ops::Range { start: 0, end: 2 }];
        let mut bad = pack(b"ab\n".to_vec(), &one_line);
        bad[3] = 5; // the line's length: 5 bytes in a 3-byte buffer
        assert!(unpack(&bad).is_none());
        assert_eq!(unpack(&pack(Vec::new(), &[])).map(|(b, r)| (b.len(), r.len())), Some((0, 0)));
    }
}

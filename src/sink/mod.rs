//! Sinks: where events (and dead letters) are written. Each sink runs as its own
//! task with a bounded queue, writes a whole batch at once, and acknowledges only
//! after the write succeeded. Failed writes are retried with backoff until they
//! succeed or the shutdown deadline passes; then the delivery is dropped without
//! acknowledgement and the batch is reported failed.

mod file;
mod stdout;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::Delivery;
use crate::config::OutputConfig;
use bytes::Bytes;

use crate::event::DeadLetter;
use crate::route::Selection;
use crate::telemetry::SinkCounters;

pub use file::FileOutput;
pub use stdout::StdoutOutput;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open `{path}`: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("write to `{path}` failed: {source}")]
    Write { path: String, source: std::io::Error },
}

/// What a sink is asked to write: events as JSON lines (without newline), shared by
/// every sink of the batch, or dead-letter records.
pub enum SinkInput {
    Events { lines: Arc<Vec<Bytes>>, selection: Selection },
    DeadLetters(Vec<DeadLetter>),
}

pub struct SinkMessage {
    pub input: SinkInput,
    pub delivery: Delivery,
}

impl SinkInput {
    /// Appends one JSON line per item; returns how many.
    fn encode_lines(&self, out: &mut Vec<u8>) -> usize {
        let mut push = |bytes: &[u8]| {
            out.extend_from_slice(bytes);
            out.push(b'\n');
        };
        match self {
            SinkInput::Events { lines, selection: Selection::All } => {
                lines.iter().for_each(|l| push(l));
                lines.len()
            }
            SinkInput::Events { lines, selection: Selection::Indices(indices) } => {
                for &i in indices {
                    if let Some(l) = lines.get(i as usize) {
                        push(l);
                    }
                }
                indices.len()
            }
            SinkInput::DeadLetters(letters) => {
                for letter in letters {
                    letter.encode(out);
                    out.push(b'\n');
                }
                letters.len()
            }
        }
    }
}

/// The closed set of outputs a sink can write to.
pub enum Output {
    Stdout(StdoutOutput),
    File(FileOutput),
}

impl Output {
    pub async fn open(config: &OutputConfig) -> Result<Output, SinkError> {
        Ok(match config {
            OutputConfig::Stdout => Output::Stdout(StdoutOutput::new()),
            OutputConfig::File(c) => Output::File(FileOutput::open(c).await?),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        match self {
            Output::Stdout(o) => o.write(bytes).await,
            Output::File(o) => o.write(bytes).await,
        }
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        match self {
            Output::Stdout(o) => o.flush().await,
            Output::File(o) => o.close().await,
        }
    }
}

/// Queue depth per sink, in batches. In-flight batches are bounded at the source;
/// this only smooths hand-over.
pub const QUEUE_BATCHES: usize = 4;

pub struct SinkTask {
    pub name: String,
    pub output: Output,
    pub counters: SinkCounters,
    pub rx: mpsc::Receiver<SinkMessage>,
    /// Fires when the drain deadline passed: stop retrying.
    pub give_up: CancellationToken,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl SinkTask {
    /// Runs until the pipeline closes the queue, then flushes and closes the output.
    pub async fn run(mut self) {
        let mut buf = Vec::with_capacity(256 * 1024);
        while let Some(message) = self.rx.recv().await {
            buf.clear();
            let count = message.input.encode_lines(&mut buf) as u64;
            let mut backoff = FIRST_BACKOFF;
            loop {
                match self.output.write(&buf).await {
                    Ok(()) => {
                        self.counters.sent.inc_by(count);
                        message.delivery.ack();
                        break;
                    }
                    Err(e) => {
                        self.counters.write_errors.inc();
                        tracing::warn!(sink = %self.name, error = %e, retry_in = ?backoff, "sink write failed");
                        let gave_up = tokio::select! {
                            _ = self.give_up.cancelled() => true,
                            _ = tokio::time::sleep(backoff) => false,
                        };
                        if gave_up {
                            self.counters.failed.inc_by(count);
                            tracing::error!(sink = %self.name, events = count, "giving up on a batch at shutdown; it is not acknowledged");
                            drop(message.delivery);
                            break;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        if let Err(e) = self.output.close().await {
            tracing::error!(sink = %self.name, error = %e, "closing sink failed");
        }
    }
}

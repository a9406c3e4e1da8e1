//! Sinks: where events (and dead letters) are written. Each sink runs as its own
//! task with a bounded queue, writes a whole batch at once, and acknowledges only
//! after the write succeeded. Failed writes are retried with backoff until they
//! succeed or the shutdown deadline passes; then the delivery is dropped without
//! acknowledgement and the batch is reported failed.

mod file;
mod kafka;
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
pub use kafka::KafkaOutput;
pub use stdout::StdoutOutput;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open `{path}`: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("write to `{path}` failed: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("kafka topic `{topic}`: {message}")]
    Kafka { topic: String, message: String },
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
    /// Appends one JSON line per item to `out`, and each line's range (without the
    /// newline) to `ranges`.
    fn encode_lines(&self, out: &mut Vec<u8>, ranges: &mut Vec<std::ops::Range<usize>>) {
        let mut push = |out: &mut Vec<u8>, write: &dyn Fn(&mut Vec<u8>)| {
            let start = out.len();
            write(out);
            ranges.push(start..out.len());
            out.push(b'\n');
        };
        match self {
            SinkInput::Events { lines, selection: Selection::All } => {
                for line in lines.iter() {
                    push(out, &|o| o.extend_from_slice(line));
                }
            }
            SinkInput::Events { lines, selection: Selection::Indices(indices) } => {
                for line in indices.iter().filter_map(|&i| lines.get(i as usize)) {
                    push(out, &|o| o.extend_from_slice(line));
                }
            }
            SinkInput::DeadLetters(letters) => {
                for letter in letters {
                    push(out, &|o| letter.encode(o));
                }
            }
        }
    }
}

/// The closed set of outputs a sink can write to.
pub enum Output {
    Stdout(StdoutOutput),
    File(FileOutput),
    Kafka(KafkaOutput),
}

impl Output {
    pub async fn open(config: &OutputConfig) -> Result<Output, SinkError> {
        Ok(match config {
            OutputConfig::Stdout => Output::Stdout(StdoutOutput::new()),
            OutputConfig::File(c) => Output::File(FileOutput::open(c).await?),
            OutputConfig::Kafka(c) => Output::Kafka(KafkaOutput::open(c)?),
        })
    }

    /// Writes the encoded lines: streams take the buffer whole, message outputs one
    /// message per range.
    async fn write(&mut self, buf: &[u8], ranges: &[std::ops::Range<usize>]) -> Result<(), SinkError> {
        match self {
            Output::Stdout(o) => o.write(buf).await,
            Output::File(o) => o.write(buf).await,
            Output::Kafka(o) => {
                let lines: Vec<&[u8]> = ranges.iter().map(|r| &buf[r.clone()]).collect();
                o.write(&lines).await
            }
        }
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        match self {
            Output::Stdout(o) => o.flush().await,
            Output::File(o) => o.close().await,
            Output::Kafka(o) => o.close().await,
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
        let mut ranges = Vec::new();
        while let Some(message) = self.rx.recv().await {
            buf.clear();
            ranges.clear();
            message.input.encode_lines(&mut buf, &mut ranges);
            let count = ranges.len() as u64;
            let mut backoff = FIRST_BACKOFF;
            loop {
                match self.output.write(&buf, &ranges).await {
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

//! Sinks: where events (and dead letters) are written. Each sink runs as its own
//! task with a bounded queue, writes a whole batch at once, and acknowledges only
//! after the write succeeded. Failed writes are retried with backoff until they
//! succeed or the shutdown deadline passes; then the delivery is dropped without
//! acknowledgement and the batch is reported failed.

mod file;
mod influx;
mod kafka;
mod otlp;
mod stdout;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::Delivery;
use crate::config::{OutputConfig, TracesConfig};
use bytes::Bytes;

use crate::event::DeadLetter;
use crate::route::Selection;
use crate::telemetry::SinkCounters;
use opentelemetry_proto::tonic::trace::v1::Span;

pub use file::FileOutput;
pub use influx::InfluxOutput;
pub use kafka::KafkaOutput;
pub use otlp::{OtlpOutput, SCOPE_NAME};
pub use stdout::StdoutOutput;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open `{path}`: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("write to `{path}` failed: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("kafka topic `{topic}`: {message}")]
    Kafka { topic: String, message: String },
    #[error("OTLP endpoint `{endpoint}`: {message}")]
    Otlp { endpoint: String, message: String },
    #[error("InfluxDB `{url}`: {message}")]
    Influx { url: String, message: String },
}

/// The most of an error response's body kept for the log: services answer errors
/// with whole HTML pages or megabytes of echo, and a retry loop would log them
/// again every time.
pub const RESPONSE_EXCERPT_BYTES: usize = 512;

/// Up to `limit` bytes of a response's body, reading no further (the rest is left
/// unread), and whether there was more.
pub async fn read_body_capped(mut response: reqwest::Response, limit: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return (body, true);
        }
        body.extend_from_slice(&chunk);
    }
    (body, false)
}

/// The start of an error response's body as one line of text, for a log or an
/// error message: at most [`RESPONSE_EXCERPT_BYTES`], `…` when cut.
pub async fn response_excerpt(response: reqwest::Response) -> String {
    let (body, cut) = read_body_capped(response, RESPONSE_EXCERPT_BYTES).await;
    let text = String::from_utf8_lossy(&body);
    let mut line: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if cut {
        line.push('…');
    }
    line
}

/// gzip for request bodies (OTLP/HTTP, InfluxDB).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// What a sink is asked to write: events as JSON lines (without newline), shared by
/// every sink of the batch, or dead-letter records.
pub enum SinkInput {
    Events {
        lines: Arc<Vec<Bytes>>,
        selection: Selection,
    },
    DeadLetters(Vec<DeadLetter>),
    /// The traces step's spans, for `otlp` outputs.
    Spans(Arc<Vec<Span>>),
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
            // Spans are not lines; `otlp` outputs take them as they are.
            SinkInput::Spans(_) => {}
        }
    }
}

/// The closed set of outputs a sink can write to.
pub enum Output {
    Stdout(StdoutOutput),
    File(FileOutput),
    Kafka(KafkaOutput),
    Otlp(OtlpOutput),
    Influx(InfluxOutput),
}

impl Output {
    /// `traces` describes the spans' service for `otlp` outputs.
    pub async fn open(config: &OutputConfig, traces: &TracesConfig) -> Result<Output, SinkError> {
        Ok(match config {
            OutputConfig::Stdout => Output::Stdout(StdoutOutput::new()),
            OutputConfig::File(c) => Output::File(FileOutput::open(c).await?),
            OutputConfig::Kafka(c) => Output::Kafka(KafkaOutput::open(c)?),
            OutputConfig::Otlp(c) => Output::Otlp(OtlpOutput::open(c, traces)?),
            OutputConfig::Influx(c) => Output::Influx(InfluxOutput::open(c)?),
        })
    }

    /// Whether the output takes spans instead of events.
    pub fn takes_spans(&self) -> bool {
        matches!(self, Output::Otlp(_))
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
            Output::Influx(o) => {
                let lines: Vec<&[u8]> = ranges.iter().map(|r| &buf[r.clone()]).collect();
                o.write(&lines).await
            }
            // Spans arrive as `SinkInput::Spans`; an otlp output is routed no events.
            Output::Otlp(_) => Ok(()),
        }
    }

    async fn write_input(
        &mut self,
        input: &SinkInput,
        buf: &[u8],
        ranges: &[std::ops::Range<usize>],
    ) -> Result<(), SinkError> {
        match (self, input) {
            (Output::Otlp(o), SinkInput::Spans(spans)) => o.write(spans).await,
            (_, SinkInput::Spans(_)) => Ok(()),
            (output, _) => output.write(buf, ranges).await,
        }
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        match self {
            Output::Stdout(o) => o.flush().await,
            Output::File(o) => o.close().await,
            Output::Kafka(o) => o.close().await,
            Output::Otlp(_) | Output::Influx(_) => Ok(()),
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
            let count = match &message.input {
                SinkInput::Spans(spans) => spans.len() as u64,
                _ => ranges.len() as u64,
            };
            let mut backoff = FIRST_BACKOFF;
            loop {
                match self.output.write_input(&message.input, &buf, &ranges).await {
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

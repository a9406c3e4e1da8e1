//! Sinks: where events (and dead letters) are written. Each sink runs as its own
//! task with a bounded queue, writes a whole batch at once, and acknowledges only
//! after the write succeeded. Failed writes are retried with backoff until they
//! succeed or the shutdown deadline passes; then the delivery is dropped without
//! acknowledgement and the batch is reported failed.
//!
//! Every kind of sink lives in a module of its own, holding its config, its decoder
//! and its output, and implements [`SinkKind`] and [`Write`]. The `sinks!` list at
//! the bottom of this file is the one place that names them all: it makes the
//! closed enums [`OutputConfig`] and [`Output`] and their dispatch.

mod config;
pub(crate) mod elasticsearch;
pub(crate) mod file;
pub(crate) mod file_split;
mod http;
mod influx;
mod kafka;
mod metrics;
mod otlp;
mod stdout;
pub(crate) mod task;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::ack::Delivery;
use crate::decode::{Diagnostics, MapReader};
use crate::event::{DeadLetter, SideOutput};
use crate::route::Selection;

pub(crate) use config::{SinkConfig, DEAD_LETTER};
pub(crate) use metrics::SinkCounters;
pub(crate) use task::{Buffer, SinkParts, SinkTask};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
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
    #[error("HTTP sink `{url}`: {message}")]
    Http { url: String, message: String },
    #[error("{0}")]
    Buffer(String),
    /// The output refused these records for good (the rest of the batch was
    /// written): they go to the dead-letter sink, never retried.
    #[error("{} record(s) refused, the first: {}", .0.len(), .0.first().map_or("", |r| r.reason.as_str()))]
    Refused(Vec<Refusal>),
}

/// A record an output refused for good: its line in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

impl Refusal {
    /// Every line of `batch`, refused for one reason (a receiver that refuses the
    /// whole request).
    pub(crate) fn all(batch: &Encoded<'_>, reason: &str) -> Vec<Refusal> {
        (0..batch.ranges.len()).map(|line| Refusal { line, reason: reason.to_string() }).collect()
    }
}

/// What a kind of sink provides to be configured and opened. The common keys of a
/// sink (`name`, `type`, `match`) are read by the caller.
pub(crate) trait SinkKind: Sized {
    type Output: Write;
    /// Reads the kind's own keys.
    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self>;
    /// Where the events go, for the start-up banner.
    fn describe(&self) -> String;
    /// The side output this kind consumes instead of events, if any.
    fn side_input(&self) -> Option<SideInput> {
        None
    }
    async fn open(&self, cx: &OpenContext<'_>) -> Result<Self::Output, SinkError>;
}

/// What an output is opened with besides its config.
pub(crate) struct OpenContext<'a> {
    /// The sink's name (for its metrics and logs).
    pub(crate) sink: &'a str,
    pub(crate) telemetry: &'a crate::telemetry::Telemetry,
}

/// The side outputs a sink subscribes to (see [`crate::event::SideOutput`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SideInput {
    /// The kind of side output (`spans`).
    pub kind: &'static str,
    /// Only the side output of the step with this name; `None`: of every step.
    pub(crate) from: Option<String>,
    /// What it is, for messages ("the traces step's spans").
    pub(crate) what: &'static str,
}

impl SideInput {
    pub(crate) fn takes(&self, side: &SideOutput) -> bool {
        self.kind == side.kind && self.from.as_deref().is_none_or(|from| from == &*side.name)
    }
}

/// An open output.
pub(crate) trait Write: Send {
    /// Writes one batch. [`SinkError::Refused`] names the records refused for
    /// good; any other error means "try again" (and the whole batch is written
    /// again: an output must tolerate that, or repair its state first).
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError>;
    /// Flushes what is buffered at the end of the run.
    async fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// One batch as a sink writes it: events or dead letters as JSON lines, or the
/// side output the sink subscribed to.
pub(crate) struct Encoded<'a> {
    /// The JSON lines, each followed by a newline.
    pub(crate) buf: &'a [u8],
    /// Each line's range in `buf`, without its newline.
    pub(crate) ranges: &'a [Range<usize>],
    pub(crate) side: Option<&'a SideOutput>,
}

impl Encoded<'_> {
    /// The lines, without their newlines.
    pub(crate) fn lines(&self) -> Vec<&[u8]> {
        self.ranges.iter().map(|r| &self.buf[r.clone()]).collect()
    }
}

/// The most of an error response's body kept for the log: services answer errors
/// with whole HTML pages or megabytes of echo, and a retry loop would log them
/// again every time.
pub(crate) const RESPONSE_EXCERPT_BYTES: usize = 512;

/// Up to `limit` bytes of a response's body, reading no further (the rest is left
/// unread), and whether there was more.
pub(crate) async fn read_body_capped(mut response: reqwest::Response, limit: usize) -> (Vec<u8>, bool) {
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
pub(crate) async fn response_excerpt(response: reqwest::Response) -> String {
    let (body, cut) = read_body_capped(response, RESPONSE_EXCERPT_BYTES).await;
    let text = String::from_utf8_lossy(&body);
    let mut line: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if cut {
        line.push('…');
    }
    line
}

/// gzip for request bodies (OTLP/HTTP, InfluxDB, HTTP).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// What a sink is asked to write: events as JSON lines (without newline), shared by
/// every sink of the batch, dead-letter records, or a side output.
pub enum SinkInput {
    Events { lines: Arc<Vec<Bytes>>, selection: Selection },
    DeadLetters(Vec<DeadLetter>),
    Side(SideOutput),
}

pub struct SinkMessage {
    pub(crate) input: SinkInput,
    pub(crate) delivery: Delivery,
}

impl SinkInput {
    /// Items and bytes, for a buffer's limits.
    pub(crate) fn size(&self) -> (u64, u64) {
        match self {
            SinkInput::Events { lines, selection: Selection::All } => {
                (lines.len() as u64, lines.iter().map(|l| l.len() as u64 + 1).sum())
            }
            SinkInput::Events { lines, selection: Selection::Indices(indices) } => {
                let bytes =
                    indices.iter().filter_map(|&i| lines.get(i as usize)).map(|l| l.len() as u64 + 1).sum();
                (indices.len() as u64, bytes)
            }
            SinkInput::DeadLetters(letters) => (
                letters.len() as u64,
                letters.iter().map(|l| l.raw.len() as u64 + l.reason.len() as u64 + 128).sum(),
            ),
            SinkInput::Side(side) => (side.count as u64, side.count as u64 * 256),
        }
    }

    /// Appends one JSON line per item to `out`, and each line's range (without the
    /// newline) to `ranges`.
    fn encode_lines(&self, out: &mut Vec<u8>, ranges: &mut Vec<Range<usize>>) {
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
            // A side output is not lines; its subscribers take it as it is.
            SinkInput::Side(_) => {}
        }
    }
}

/// Queue depth per sink, in batches, between the pipeline and the sink's intake
/// (the buffer behind it is what holds batches while the output is down).
pub(crate) const QUEUE_BATCHES: usize = 4;

/// The list of sink kinds: `Variant("type", module)`. Each module has a config type
/// implementing [`SinkKind`] whose output implements [`Write`].
macro_rules! sinks {
    ($($variant:ident($type_name:literal, $config:ty)),* $(,)?) => {
        /// The closed set of sink kinds, as configured.
        #[derive(Debug, Clone)]
        pub enum OutputConfig {
            $($variant($config),)*
        }

        /// The closed set of open outputs.
        pub(crate) enum Output {
            $($variant(<$config as SinkKind>::Output),)*
        }

        impl OutputConfig {
            /// The `type` names, in the order messages list them.
            pub(crate) const TYPES: &'static [&'static str] = &[$($type_name),*];

            /// Decodes the kind named `type_name` (one of [`Self::TYPES`]).
            pub(crate) fn decode_kind(
                type_name: &str,
                map: &mut MapReader<'_>,
                cx: &mut Diagnostics,
            ) -> Option<OutputConfig> {
                match type_name {
                    $($type_name => <$config as SinkKind>::decode(map, cx).map(OutputConfig::$variant),)*
                    _ => None,
                }
            }

            pub(crate) fn type_name(&self) -> &'static str {
                match self {
                    $(OutputConfig::$variant(_) => $type_name,)*
                }
            }

            /// Where the events go, for the start-up banner.
            pub(crate) fn describe(&self) -> String {
                match self {
                    $(OutputConfig::$variant(c) => c.describe(),)*
                }
            }

            /// The side output the sink consumes instead of events, if any.
            pub(crate) fn side_input(&self) -> Option<SideInput> {
                match self {
                    $(OutputConfig::$variant(c) => c.side_input(),)*
                }
            }

            pub(crate) async fn open(&self, cx: &OpenContext<'_>) -> Result<Output, SinkError> {
                Ok(match self {
                    $(OutputConfig::$variant(c) => Output::$variant(c.open(cx).await?),)*
                })
            }
        }

        impl Output {
            async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
                match self {
                    $(Output::$variant(o) => Write::write(o, batch).await,)*
                }
            }

            async fn close(&mut self) -> Result<(), SinkError> {
                match self {
                    $(Output::$variant(o) => Write::close(o).await,)*
                }
            }
        }
    };
}

sinks! {
    Stdout("stdout", stdout::StdoutConfig),
    File("file", file::FileSinkConfig),
    Kafka("kafka", kafka::KafkaSinkConfig),
    Otlp("otlp", otlp::OtlpSinkConfig),
    Influx("influxdb", influx::InfluxSinkConfig),
    Http("http", http::HttpSinkConfig),
    Elasticsearch("elasticsearch", elasticsearch::ElasticsearchSinkConfig),
}

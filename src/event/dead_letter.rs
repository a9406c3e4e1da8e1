//! The dead-letter record: why an input was not processed, where it came from, and
//! the bytes exactly as received, so it can be fixed and replayed.

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use super::Position;

/// Which stage refused the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Not JSON, not an object, or over the size limit.
    Decode,
    /// Valid JSON that does not conform to schema v1.0.
    Schema,
    /// A pipeline step (named) could not process it.
    Step(String),
    /// A sink's output (named) refused it for good.
    Sink(String),
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub stage: Stage,
    pub reason: String,
    pub position: Position,
    pub raw: Bytes,
    /// Unix ms when it was dead-lettered.
    pub(crate) time_ms: i64,
    /// `raw` and `reason` went through the PII scrubber: `raw` is text now.
    pub scrubbed: bool,
}

#[derive(Serialize)]
struct Record<'a> {
    time: i64,
    stage: &'a Stage,
    reason: &'a str,
    source: &'a Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    /// Only when the bytes are not UTF-8: then they are kept exactly, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_scrubbed: bool,
}

impl DeadLetter {
    pub fn new(stage: Stage, reason: String, position: Position, raw: Bytes) -> Self {
        DeadLetter { stage, reason, position, raw, time_ms: crate::clock::now_ms(), scrubbed: false }
    }

    /// One JSON line (without the newline).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let lossy;
        let (raw, raw_base64) = match std::str::from_utf8(&self.raw) {
            Ok(text) => (Some(text), None),
            // Scrubbed bytes are text; base64 would carry what the scrubber cannot see.
            Err(_) if self.scrubbed => {
                lossy = String::from_utf8_lossy(&self.raw);
                (Some(lossy.as_ref()), None)
            }
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(&self.raw))),
        };
        let record = Record {
            time: self.time_ms,
            stage: &self.stage,
            reason: &self.reason,
            source: &self.position,
            raw,
            raw_base64,
            raw_scrubbed: self.scrubbed,
        };
        // Plain strings and integers: serialization cannot fail.
        let _ = serde_json::to_writer(out, &record);
    }
}

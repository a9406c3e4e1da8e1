//! The event as a plugin sees it: the JSON bytes the host validated, with cheap
//! accessors that read one field without building a document. Parse the whole
//! event (`json`) only when a plugin needs to change it.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use crate::field::find_str;

/// TRACE < DEBUG < INFO < WARN < ERROR < FATAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    pub const ALL: [Severity; 6] =
        [Severity::Trace, Severity::Debug, Severity::Info, Severity::Warn, Severity::Error, Severity::Fatal];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a batch, borrowed from the batch buffer.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    raw: &'a [u8],
}

impl<'a> Event<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Event { raw }
    }

    /// The event's JSON bytes, exactly as the host holds them.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// A string or number field by dotted path (`data.agent_id`, `tags.env`).
    pub fn text(&self, path: &str) -> Option<Cow<'a, str>> {
        let parts: Vec<&str> = path.split('.').collect();
        find_str(self.raw, &parts)
    }

    pub fn event_type(&self) -> Option<Cow<'a, str>> {
        find_str(self.raw, &["event_type"])
    }

    pub fn component(&self) -> Option<Cow<'a, str>> {
        find_str(self.raw, &["component"])
    }

    pub fn event_id(&self) -> Option<Cow<'a, str>> {
        find_str(self.raw, &["event_id"])
    }

    pub fn severity(&self) -> Option<Severity> {
        find_str(self.raw, &["severity"]).and_then(|s| Severity::parse(&s))
    }

    /// Unix milliseconds.
    pub fn timestamp_ms(&self) -> Option<i64> {
        find_str(self.raw, &["timestamp"]).and_then(|s| s.parse::<f64>().ok()).map(|ms| ms as i64)
    }

    /// The whole document, to read deeply or to change and hand back with
    /// [`crate::Verdict::replace_json`].
    pub fn json(&self) -> Result<Map<String, Value>, String> {
        serde_json::from_slice(self.raw).map_err(|e| format!("event is not a JSON object: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_read_single_fields() {
        let event = Event::new(
            br#"{"event_id":"e-1","timestamp":1767225600000,"component":"mesh","event_type":"agent.lifecycle","severity":"WARN","data":{"agent_id":"a-7"},"tags":{}}"#,
        );
        assert_eq!(event.event_type().as_deref(), Some("agent.lifecycle"));
        assert_eq!(event.component().as_deref(), Some("mesh"));
        assert_eq!(event.event_id().as_deref(), Some("e-1"));
        assert_eq!(event.severity(), Some(Severity::Warn));
        assert_eq!(event.timestamp_ms(), Some(1_767_225_600_000));
        assert_eq!(event.text("data.agent_id").as_deref(), Some("a-7"));
        assert_eq!(event.text("data.missing"), None);
        assert!(event.json().is_ok());
        assert!(Severity::Error > Severity::Warn);
    }
}

//! The event envelope of schema v1.0, its validation, and the batch that flows
//! through the pipeline.
//!
//! An event keeps the bytes it arrived as. As long as no step changes it, those bytes
//! are what the sinks write: no re-serialization on the common path, and the output is
//! byte-for-byte what the emitter sent.

mod dead_letter;
pub mod field;
mod guard;
pub mod json;
mod scan;
pub mod schema;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

pub use dead_letter::DeadLetter;
pub(crate) use dead_letter::Stage;
pub(crate) use scan::RECORDED_FIELDS;
use scan::{Header, Text};
use synaptic_plugin_sdk::field::{Finder, Scalar};

/// The objects of the envelope a step can read fields from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Data,
    Context,
    Tags,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Data => "data",
            Section::Context => "context",
            Section::Tags => "tags",
        }
    }
}

/// TRACE < DEBUG < INFO < WARN < ERROR < FATAL; shared with the plugin SDK, so
/// host and plugins order severities the same way.
pub(crate) use synaptic_plugin_sdk::Severity;

/// The event types of both revisions of the spec, by canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    AgentLifecycle,
    SwarmIteration,
    ConsensusProposal,
    ConsensusVote,
    ConsensusDecision,
    MemoryBridgeSync,
    MeshTopologyChange,
    SecurityPolicyViolation,
    SecurityViolation,
    TaskExecution,
    TaskAssigned,
    TaskCompleted,
    BridgeMessage,
    /// Passed on and counted: a newer emitter must not lose data.
    Unknown,
}

impl EventKind {
    /// Every kind, `Unknown` included, in the order of their `as usize` index: for
    /// tables indexed by kind.
    pub(crate) fn indexed() -> Vec<EventKind> {
        let mut kinds: Vec<EventKind> = EventKind::KNOWN.to_vec();
        kinds.push(EventKind::Unknown);
        kinds.sort_by_key(|k| *k as usize);
        kinds
    }

    pub(crate) const KNOWN: [EventKind; 13] = [
        EventKind::AgentLifecycle,
        EventKind::SwarmIteration,
        EventKind::ConsensusProposal,
        EventKind::ConsensusVote,
        EventKind::ConsensusDecision,
        EventKind::MemoryBridgeSync,
        EventKind::MeshTopologyChange,
        EventKind::SecurityPolicyViolation,
        EventKind::SecurityViolation,
        EventKind::TaskExecution,
        EventKind::TaskAssigned,
        EventKind::TaskCompleted,
        EventKind::BridgeMessage,
    ];

    pub(crate) fn canonical_name(self) -> Option<&'static str> {
        Some(match self {
            EventKind::AgentLifecycle => "agent.lifecycle",
            EventKind::SwarmIteration => "swarm.iteration",
            EventKind::ConsensusProposal => "consensus.proposal",
            EventKind::ConsensusVote => "consensus.vote",
            EventKind::ConsensusDecision => "consensus.decision",
            EventKind::MemoryBridgeSync => "memory.bridge.sync",
            EventKind::MeshTopologyChange => "mesh.topology.change",
            EventKind::SecurityPolicyViolation => "security.policy.violation",
            EventKind::SecurityViolation => "security.violation",
            EventKind::TaskExecution => "task.execution",
            EventKind::TaskAssigned => "task.assigned",
            EventKind::TaskCompleted => "task.completed",
            EventKind::BridgeMessage => "bridge.message",
            EventKind::Unknown => return None,
        })
    }

    /// The kind for an `event_type` as emitted, and whether it was an alias.
    pub(crate) fn from_event_type(name: &str) -> (EventKind, bool) {
        if name == "mesh.topology_change" {
            return (EventKind::MeshTopologyChange, true);
        }
        let kind = EventKind::KNOWN
            .into_iter()
            .find(|k| k.canonical_name() == Some(name))
            .unwrap_or(EventKind::Unknown);
        (kind, false)
    }
}

/// Where an event came from, so dead letters and commits can point back at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    Generator {
        seq: u64,
    },
    File {
        path: Arc<str>,
        line: u64,
    },
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// Refused by a sink's output; where it was read is not kept that far.
    Sink {
        sink: Arc<str>,
    },
}

/// `schema: strict` dead-letters a known event type with a bad `data`; `lenient`
/// passes it on with a `schema_warning` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaMode {
    #[default]
    Strict,
    Lenient,
}

/// Tag that keeps an alias's original event_type after canonicalization.
pub(crate) const ORIGINAL_TYPE_TAG: &str = "original_event_type";
/// Tag that carries schema problems of an event passed in lenient mode.
pub(crate) const SCHEMA_WARNING_TAG: &str = "schema_warning";

/// Why an input could not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("event must be a JSON object, got {0}")]
    NotAnObject(String),
    #[error("{0}")]
    Schema(String),
    #[error("event is {size} bytes, over the limit of {limit} bytes (limits.max_event_bytes)")]
    TooLarge { size: usize, limit: usize },
}

/// One valid event. Its JSON document is built only when a step asks for it:
/// validation does not need it, and an unchanged event is written as its raw bytes.
/// An input that did not become an event: why, with the input handed back so it can
/// be dead-lettered without having been copied in advance.
#[derive(Debug, thiserror::Error)]
#[error("{rejection}")]
pub struct Rejected {
    pub(crate) rejection: Rejection,
    pub(crate) raw: Bytes,
    pub(crate) position: Position,
}

#[derive(Debug, Clone)]
pub struct Event {
    raw: Bytes,
    header: Header,
    doc: OnceCell<Map<String, Value>>,
    position: Position,
    /// Changed by a step (or not writable as one line as received): re-encode it.
    dirty: bool,
    /// Passed in lenient mode despite schema problems (listed in its tags).
    schema_warning: bool,
}

impl Event {
    /// Parses and validates one input record.
    pub fn decode(raw: Bytes, position: Position, mode: SchemaMode) -> Result<Event, Rejected> {
        if let Err(e) = guard::check(&raw) {
            return Err(Rejected { rejection: Rejection::Json(e.to_string()), raw, position });
        }
        match scan::scan(&raw) {
            Some(header) => {
                let alias = header.alias;
                // A raw line with a newline inside (pretty-printed JSON) cannot be
                // written to a JSONL sink as it is.
                let multiline = memchr::memchr(b'\n', &raw).is_some();
                let mut event = Event {
                    raw,
                    header,
                    doc: OnceCell::new(),
                    position,
                    dirty: multiline,
                    schema_warning: false,
                };
                if alias {
                    event.canonicalize();
                }
                Ok(event)
            }
            None => Event::decode_slow(raw, position, mode),
        }
    }

    /// The precise path: builds the document and names every problem.
    fn decode_slow(raw: Bytes, position: Position, mode: SchemaMode) -> Result<Event, Rejected> {
        let reject = |rejection, raw, position| Err(Rejected { rejection, raw, position });
        if let Err(e) = guard::check(&raw) {
            return reject(Rejection::Json(e.to_string()), raw, position);
        }
        let value: Value = match json::parse_document(&raw) {
            Ok(value) => value,
            Err(e) => return reject(Rejection::Json(e.to_string()), raw, position),
        };
        let Value::Object(doc) = value else {
            return reject(Rejection::NotAnObject(schema::describe(&value)), raw, position);
        };
        let mut problems = Vec::new();
        let envelope = check_envelope(&doc, &mut problems);
        let text = |key: &str| Text::Owned(doc.get(key).and_then(Value::as_str).unwrap_or("").into());
        let (kind, alias) = doc
            .get("event_type")
            .and_then(Value::as_str)
            .map_or((EventKind::Unknown, false), EventKind::from_event_type);
        let Some((severity, timestamp_ms)) = envelope else {
            return reject(Rejection::Schema(problems.join("; ")), raw, position);
        };

        if kind != EventKind::Unknown {
            match doc.get("data") {
                Some(Value::Object(data)) => {
                    schema::check_object("data", data, schema::fields(kind), &mut problems)
                }
                Some(other) => {
                    problems.push(format!("data: expected an object, got {}", schema::describe(other)))
                }
                None => problems.push("data: required field is missing".into()),
            }
        }
        if !problems.is_empty() && mode == SchemaMode::Strict {
            return reject(Rejection::Schema(problems.join("; ")), raw, position);
        }
        let header = Header {
            event_id: text("event_id"),
            component: text("component"),
            event_type: match (alias, kind.canonical_name()) {
                (true, Some(name)) => Text::Static(name),
                _ => text("event_type"),
            },
            kind,
            alias,
            severity,
            timestamp_ms,
            sections: scan::Sections::default(),
            sample_rate: doc.get("sample_rate").and_then(Value::as_f64),
            data_fields: scan::FieldStarts::default(),
        };
        let multiline = memchr::memchr(b'\n', &raw).is_some();
        let schema_warning = !problems.is_empty();
        let mut event =
            Event { raw, header, doc: OnceCell::from(doc), position, dirty: multiline, schema_warning };
        if alias {
            event.canonicalize();
        }
        if !problems.is_empty() {
            event.set_tag(SCHEMA_WARNING_TAG, Value::String(problems.join("; ")));
        }
        Ok(event)
    }

    /// Maps an alias event_type to its canonical name, keeping the original in a tag.
    fn canonicalize(&mut self) {
        let Some(name) = self.header.kind.canonical_name() else { return };
        let doc = self.doc_mut();
        let original = doc.insert("event_type".into(), Value::String(name.into()));
        if let Some(original) = original {
            self.set_tag(ORIGINAL_TYPE_TAG, original);
        }
    }

    pub fn kind(&self) -> EventKind {
        self.header.kind
    }

    pub fn severity(&self) -> Severity {
        self.header.severity
    }

    pub fn timestamp_ms(&self) -> i64 {
        self.header.timestamp_ms
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Whether it was passed in lenient mode despite schema problems.
    pub(crate) fn has_schema_warning(&self) -> bool {
        self.schema_warning
    }

    /// The bytes as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn event_id(&self) -> &str {
        self.header.event_id.resolve(&self.raw)
    }

    /// The canonical event type (aliases already mapped).
    pub fn event_type(&self) -> &str {
        self.header.event_type.resolve(&self.raw)
    }

    pub fn component(&self) -> &str {
        self.header.component.resolve(&self.raw)
    }

    /// The `sample_rate` a sampler stamped on the event (the product of every
    /// sampling it went through), if any.
    pub fn sample_rate(&self) -> Option<f64> {
        self.header.sample_rate
    }

    /// Sets the top-level `sample_rate` (what a sampler stamps: the product of
    /// every sampling the event went through).
    pub(crate) fn set_sample_rate(&mut self, rate: f64) {
        if let Some(number) = serde_json::Number::from_f64(rate) {
            self.doc_mut().insert("sample_rate".to_string(), Value::Number(number));
            self.header.sample_rate = Some(rate);
        }
    }

    /// How many events this one stands for: `1 / sample_rate` for a sampled event
    /// (a rate outside (0, 1] counts as unsampled), else 1.
    pub(crate) fn sample_weight(&self) -> f64 {
        match self.sample_rate() {
            Some(rate) if rate > 0.0 && rate <= 1.0 => 1.0 / rate,
            _ => 1.0,
        }
    }

    /// Reads several fields of one section (the `finder`'s paths are relative to
    /// it, e.g. `[["agent_id"], ["resource_usage", "memory_mb"]]`) into `out`:
    /// scalars only, `None` where absent. Scans just that object's bytes when the
    /// event is as it arrived; reads the document when a step changed it.
    pub fn read_section<'a>(&'a self, section: Section, finder: &Finder, out: &mut [Option<Scalar<'a>>]) {
        let span = match section {
            Section::Data => self.header.sections.data,
            Section::Context => self.header.sections.context,
            Section::Tags => self.header.sections.tags,
        };
        if let (false, Some((start, end))) = (self.dirty, span) {
            if let Some(bytes) = self.raw.get(start as usize..end as usize) {
                if finder.find(bytes, out) {
                    return;
                }
            }
        }
        let root = self.doc().get(section.key());
        for (slot, path) in out.iter_mut().zip(finder.paths()) {
            let value = root.and_then(|root| path.iter().try_fold(root, |v, key| v.as_object()?.get(key)));
            *slot = value.and_then(scalar_of);
        }
    }

    /// The places of `data`'s schema fields that validation recorded, while they
    /// hold: `None` when the precise path took the event or a step changed it
    /// (then scan for the fields).
    pub(crate) fn data_places(&self) -> Option<DataPlaces<'_>> {
        let fields = &self.header.data_fields;
        (!self.dirty && fields.recorded).then_some(DataPlaces { raw: &self.raw, fields })
    }

    /// The whole document, parsed on first use.
    pub fn doc(&self) -> &Map<String, Value> {
        self.doc.get_or_init(|| parse_object(&self.raw))
    }

    /// A value by dotted path: `data.agent_id`, `tags.environment`, `severity`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = self.doc().get(parts.next()?)?;
        parts.try_fold(first, |value, key| value.as_object()?.get(key))
    }

    /// Mutable access to the whole document; marks the event as changed, so it is
    /// re-encoded for the sinks. The envelope fields the header caches (event_id,
    /// timestamp, component, event_type, severity) must not be changed through it.
    pub(crate) fn doc_mut(&mut self) -> &mut Map<String, Value> {
        self.dirty = true;
        self.doc();
        // Initialized just above; `get_or_init` cannot hand out a mutable reference.
        self.doc.get_mut().unwrap_or_else(|| unreachable!("document initialized"))
    }

    pub(crate) fn set_tag(&mut self, key: &str, value: Value) {
        let tags = self.doc_mut().entry("tags").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(tags) = tags {
            tags.insert(key.to_string(), value);
        }
    }

    /// The event's JSON as it stands: the bytes as received unless a step changed
    /// it, else its encoding (what a plugin is given).
    pub fn wire(&self) -> Cow<'_, [u8]> {
        match (self.dirty, self.doc.get()) {
            (true, Some(doc)) => Cow::Owned(serde_json::to_vec(doc).unwrap_or_default()),
            _ => Cow::Borrowed(&self.raw),
        }
    }

    /// The bytes a sink writes, consuming the event: the original bytes unless a
    /// step changed it, else its re-encoding. Called after the last step, so the
    /// document is freed while still in cache rather than when the slowest sink is
    /// done.
    pub(crate) fn into_wire(self) -> Bytes {
        if !self.dirty {
            return self.raw;
        }
        let doc = match self.doc.into_inner() {
            Some(doc) => doc,
            None => parse_object(&self.raw),
        };
        // Serializing a Map of JSON values cannot fail: keys are strings and numbers
        // are finite by construction.
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

/// A JSON value as a scalar; objects, arrays and null are not scalars.
fn scalar_of(value: &Value) -> Option<Scalar<'_>> {
    Some(match value {
        Value::String(s) => Scalar::Text(Cow::Borrowed(s)),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64()?),
        },
        _ => return None,
    })
}

/// The document of bytes already validated as a JSON object.
fn parse_object(raw: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(raw).unwrap_or_default()
}

/// Checks the envelope; returns severity and timestamp when they are usable.
fn check_envelope(doc: &Map<String, Value>, problems: &mut Vec<String>) -> Option<(Severity, i64)> {
    let before = problems.len();
    for key in ["event_id", "component", "event_type"] {
        match doc.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => problems.push(format!("{key}: must not be empty")),
            Some(other) => {
                problems.push(format!("{key}: expected a string, got {}", schema::describe(other)))
            }
            None => problems.push(format!("{key}: required field is missing")),
        }
    }
    let timestamp = match doc.get("timestamp") {
        Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
            Some(ms) if ms >= 0 => Some(ms),
            _ => {
                problems.push(format!("timestamp: expected Unix milliseconds >= 0, got {n}"));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "timestamp: expected a number (Unix milliseconds), got {}",
                schema::describe(other)
            ));
            None
        }
        None => {
            problems.push("timestamp: required field is missing".into());
            None
        }
    };
    let severity = match doc.get("severity") {
        Some(Value::String(s)) => match Severity::parse(s) {
            Some(sev) => Some(sev),
            None => {
                problems.push(format!(
                    "severity: expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, got {s:?}"
                ));
                None
            }
        },
        Some(other) => {
            problems.push(format!("severity: expected a string, got {}", schema::describe(other)));
            None
        }
        None => {
            problems.push("severity: required field is missing".into());
            None
        }
    };
    for key in ["tags", "context"] {
        match doc.get(key) {
            None | Some(Value::Object(_)) => {}
            Some(other) => {
                problems.push(format!("{key}: expected an object, got {}", schema::describe(other)))
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    Some((severity?, timestamp?))
}

/// Whether the zero-copy scan accepts `raw` (the precise path is not needed).
#[cfg(test)]
pub(crate) fn takes_fast_path(raw: &[u8]) -> bool {
    scan::scan(raw).is_some()
}

/// How the two validation paths disagree on `raw`, if they do: the fast path
/// accepting what the precise path rejects or reading another header, the two
/// JSON rule sets answering differently, or an accepted event whose document
/// cannot be built. For tests and the fuzz target (`tests/fuzz`).
#[doc(hidden)]
pub fn paths_disagree(raw: &[u8]) -> Option<String> {
    let bytes = Bytes::copy_from_slice(raw);
    let position = Position::Generator { seq: 0 };
    let checked = json::check_document(raw);
    let built = json::parse_document(raw).map(|_| ()).map_err(|e| e.to_string());
    if checked.is_ok() != built.is_ok() {
        return Some(format!("JSON rules disagree: walking says {checked:?}, building says {built:?}"));
    }
    let slow = Event::decode_slow(bytes.clone(), position.clone(), SchemaMode::Strict);
    let fast = guard::check(raw).ok().and_then(|()| scan::scan(raw));
    if let Some(header) = fast {
        let slow = match slow {
            Ok(slow) => slow,
            Err(e) => return Some(format!("fast path accepted what the precise path rejects: {e}")),
        };
        let fast = (
            header.event_id.resolve(raw),
            header.component.resolve(raw),
            header.event_type.resolve(raw),
            header.kind,
            header.severity,
            header.timestamp_ms,
            header.sample_rate.map(f64::to_bits),
        );
        let precise = (
            slow.event_id(),
            slow.component(),
            slow.event_type(),
            slow.kind(),
            slow.severity(),
            slow.timestamp_ms(),
            slow.sample_rate().map(f64::to_bits),
        );
        if fast != precise {
            return Some(format!("headers differ: fast {fast:?}, precise {precise:?}"));
        }
    }
    if let Ok(event) = Event::decode(bytes, position, SchemaMode::Lenient) {
        if let Err(e) = serde_json::from_slice::<Map<String, Value>>(raw) {
            return Some(format!("accepted an event whose document cannot be built: {e}"));
        }
        if event.doc().is_empty() {
            return Some("accepted an event with an empty document".to_string());
        }
        if let Some(problem) = places_disagree(&event) {
            return Some(problem);
        }
    }
    None
}

/// Where `data`'s schema fields are in an unchanged event (see
/// [`Event::data_places`]).
#[derive(Clone, Copy)]
pub(crate) struct DataPlaces<'e> {
    raw: &'e [u8],
    fields: &'e scan::FieldStarts,
}

impl DataPlaces<'_> {
    /// Where the value of schema field number `index` (its place in
    /// `schema::fields(kind)`, below [`RECORDED_FIELDS`]) starts in the raw event,
    /// or `None` when the event has no such field.
    pub(crate) fn value_at(&self, index: usize) -> Option<usize> {
        let key_end = *self.fields.starts.get(index)? as usize;
        if key_end == 0 {
            return None;
        }
        // Only space lies between a key and its `:` (validated): the value
        // starts after it, with any space before it left to the reader.
        let after = self.raw.get(key_end..)?;
        let colon = match after.first() {
            Some(b':') => 0,
            _ => memchr::memchr(b':', after)?,
        };
        Some(key_end + colon + 1)
    }

    /// Whether `data` has keys besides the recorded fields; when not, any other
    /// field is absent.
    pub(crate) fn has_others(&self) -> bool {
        self.fields.others
    }
}

/// Whether the places of `data`'s fields recorded by validation read the same
/// values as scanning `data` for them (for `paths_disagree`).
fn places_disagree(event: &Event) -> Option<String> {
    let places = event.data_places()?;
    for (index, field) in schema::fields(event.kind()).iter().enumerate().take(RECORDED_FIELDS) {
        let direct =
            places.value_at(index).and_then(|at| synaptic_plugin_sdk::field::scalar_at(event.raw(), at));
        let mut scanned = [None];
        event.read_section(Section::Data, &Finder::new(&[[field.name]]), &mut scanned);
        if direct != scanned[0] {
            return Some(format!(
                "data.{}: recorded place reads {direct:?}, a scan {:?}",
                field.name, scanned[0]
            ));
        }
    }
    None
}

/// One batch through the steps: the events still alive, plus those a step sent to
/// dead letter, plus how many a step dropped on purpose.
#[derive(Debug, Default)]
pub struct Batch {
    /// The batch's place in input order (0, 1, 2, …), set by the pipeline: steps
    /// shared by several workers take batches in this order.
    pub seq: u64,
    pub events: Vec<Event>,
    pub dead_letters: Vec<DeadLetter>,
    pub dropped: usize,
    /// What steps produced beside the events (the traces step's spans), for the
    /// sinks that subscribe to them by name.
    pub side_outputs: Vec<SideOutput>,
}

/// Items a step produces beside the events, under a name sinks subscribe to. The
/// pipeline only carries them: the producing step and the subscribing sinks agree
/// on the items' type.
#[derive(Clone)]
pub struct SideOutput {
    /// What it holds (`spans`); subscribers downcast `items` by it.
    pub kind: &'static str,
    /// The producing step's name.
    pub name: Arc<str>,
    /// How many items there are (for the sinks' counters).
    pub(crate) count: usize,
    pub(crate) items: Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for SideOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideOutput")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("count", &self.count)
            .finish()
    }
}

#[cfg(test)]
mod tests;

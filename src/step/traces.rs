//! The `traces` step: events that carry a duration become OpenTelemetry spans,
//! handed with the batch to the `otlp` sinks (acknowledged like events).
//!
//! A span ends at the event's timestamp and starts `duration` earlier. Its ids come
//! from the event's `context` (`trace_id`, `span_id`, `parent_span_id`, hex) when
//! present and well-formed, else they are derived from the event id, so a replayed
//! event makes the same span. Traces are sampled by trace id the way OpenTelemetry's
//! `TraceIdRatioBased` sampler does (the trace id's last 8 bytes against the rate):
//! every span of a trace, on every instance, is kept or dropped together.
//!
//! Span attributes are an allow-list, because spans leave the pipeline by a path
//! of their own and free text in `data` (`error_message`, `reasoning`, …) can hold
//! personal data. By default a span carries the fields of `data` that cannot hold
//! free text: numbers, booleans, identifiers and types (`*_id`, `*_type`), and the
//! schema's enumerations. `attributes: [task_id, resource_usage.cpu_percent]`
//! names exactly the fields to carry instead. Text is cut to 128 bytes, and a span
//! has at most 64 attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};
use prometheus::IntCounter;
use serde_json::Value;
use synaptic_plugin_sdk::field::{Finder, Scalar};

use crate::decode::{Diagnostics, MapReader};
use crate::event::schema::{self, FieldType};
use crate::event::{Batch, Event, Section, Severity, SideOutput};
use crate::fields::cap_exported;
use crate::step::Step;
use crate::telemetry::Telemetry;

/// Attributes on one span, at most.
const MAX_ATTRIBUTES: usize = 64;

/// The kind of side output the step makes: a [`SpanBatch`].
pub(crate) const SPANS: &str = "spans";

#[derive(Debug, Clone)]
pub struct TracesConfig {
    /// Share of traces kept, decided by the trace id (so every span of a trace is
    /// kept or dropped together, on every instance).
    pub sampling_rate: f64,
    /// Event type → the `data` field holding its duration in milliseconds.
    pub durations: BTreeMap<String, String>,
    /// The `data` fields spans carry (dotted paths below `data`); `None`: every
    /// field that cannot hold free text (see above).
    pub attributes: Option<Vec<String>>,
    /// Resource attributes `service.name`, `service.version`, `deployment.environment`.
    pub(crate) service: ServiceIdentity,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            sampling_rate: 0.1,
            durations: default_span_durations(),
            attributes: None,
            service: ServiceIdentity {
                service_name: "codex-synaptic".into(),
                service_version: "1.0.0".into(),
                environment: "production".into(),
            },
        }
    }
}

/// Event types with a duration, and where it is, as the spec's events carry it.
pub fn default_span_durations() -> BTreeMap<String, String> {
    [
        ("consensus.decision", "decision_time_ms"),
        ("consensus.proposal", "decision_time_ms"),
        ("task.completed", "duration_ms"),
        ("task.execution", "duration_ms"),
        ("bridge.message", "processing_time_ms"),
        ("memory.bridge.sync", "sync_duration_ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl TracesConfig {
    pub(crate) fn build(&self, name: &str, cx: &mut crate::step::BuildContext) -> crate::step::RunningStep {
        crate::step::RunningStep::new(Box::new(TracesStep::new(name, self, cx.telemetry())), cx.telemetry())
    }

    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let sampling_rate = map.or("sampling_rate", 0.1, cx);
        if !(0.0..=1.0).contains(&sampling_rate) {
            cx.error(map.key_pos("sampling_rate"), "sampling_rate must be from 0.0 to 1.0");
        }
        let mut durations = default_span_durations();
        if let Some(extra) = map.optional::<BTreeMap<String, String>>("durations", cx) {
            durations.extend(extra);
        }
        let attributes: Option<Vec<String>> = map.optional("attributes", cx);
        Some(TracesConfig {
            sampling_rate,
            durations,
            attributes,
            service: ServiceIdentity {
                service_name: map.or("service_name", "codex-synaptic".to_string(), cx),
                service_version: map.or("service_version", "1.0.0".to_string(), cx),
                environment: map.or("environment", "production".to_string(), cx),
            },
        })
    }
}

/// The service the spans describe (OpenTelemetry resource attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceIdentity {
    pub(crate) service_name: String,
    pub(crate) service_version: String,
    pub(crate) environment: String,
}

/// The step's side output for one batch: its spans and whose they are.
#[derive(Debug, Clone)]
pub(crate) struct SpanBatch {
    pub(crate) service: Arc<ServiceIdentity>,
    pub(crate) spans: Vec<Span>,
}

pub struct TracesStep {
    name: String,
    side_name: Arc<str>,
    service: Arc<ServiceIdentity>,
    /// Event type → a finder of its duration inside `data`.
    durations: BTreeMap<String, Finder>,
    /// Keep a trace when its id's last 8 bytes (>> 1) are below this.
    threshold: u64,
    /// trace_id, span_id, parent_span_id in `context`.
    context_ids: Finder,
    /// The `data` fields carried as attributes (dotted paths); `None`: the default
    /// rule (no free text).
    attributes: Option<Vec<Vec<String>>>,
    made: IntCounter,
    sampled_out: IntCounter,
    no_duration: IntCounter,
}

impl TracesStep {
    pub fn new(name: &str, config: &TracesConfig, telemetry: &Telemetry) -> Self {
        let durations = config
            .durations
            .iter()
            .map(|(t, f)| (t.clone(), Finder::new(&[f.split('.').collect::<Vec<_>>()])))
            .collect();
        let spans = telemetry.counter_vec(
            "spans_total",
            "Events the traces step considered: span (made into a span), sampled_out (trace not sampled)",
            &["outcome"],
        );
        let outcome = |o: &str| spans.with_label_values(&[o]);
        TracesStep {
            name: name.to_string(),
            side_name: Arc::from(name),
            service: Arc::new(config.service.clone()),
            durations,
            threshold: ratio_threshold(config.sampling_rate),
            context_ids: Finder::new(&[["trace_id"], ["span_id"], ["parent_span_id"]]),
            attributes: config
                .attributes
                .as_ref()
                .map(|list| list.iter().map(|p| p.split('.').map(str::to_string).collect()).collect()),
            made: outcome("span"),
            sampled_out: outcome("sampled_out"),
            no_duration: outcome("no_duration"),
        }
    }

    /// The span of one event, or why there is none.
    fn span_of(&self, event: &Event) -> Result<Option<Span>, ()> {
        let Some(finder) = self.durations.get(event.event_type()) else { return Ok(None) };
        let mut duration = [None];
        event.read_section(Section::Data, finder, &mut duration);
        let Some(duration_ms) = duration[0].as_ref().and_then(Scalar::as_f64).filter(|d| *d >= 0.0) else {
            return Err(());
        };
        let mut ids = [None, None, None];
        event.read_section(Section::Context, &self.context_ids, &mut ids);
        let hex_id = |slot: &Option<Scalar<'_>>, len: usize| match slot {
            Some(Scalar::Text(t)) => decode_hex(t, len),
            _ => None,
        };
        let trace_id = hex_id(&ids[0], 16).unwrap_or_else(|| derive_id(event.event_id(), b"trace", 16));
        if !sampled(&trace_id, self.threshold) {
            return Ok(None);
        }
        let span_id = hex_id(&ids[1], 8).unwrap_or_else(|| derive_id(event.event_id(), b"span", 8));
        let parent_span_id = hex_id(&ids[2], 8).unwrap_or_default();

        let end_ns = (event.timestamp_ms().max(0) as u64).saturating_mul(1_000_000);
        let start_ns = end_ns.saturating_sub((duration_ms * 1e6).round() as u64);
        let data = event.doc().get("data");
        let mut attributes = Vec::new();
        if let Some(Value::Object(data)) = data {
            match &self.attributes {
                Some(paths) => allowed(data, paths, &mut attributes),
                None => no_free_text(data, schema::fields(event.kind()), &mut attributes),
            }
        }
        attributes.push(text_attr("event.id", event.event_id()));
        attributes.push(text_attr("event.component", event.component()));
        attributes.push(text_attr("event.severity", event.severity().as_str()));
        Ok(Some(Span {
            trace_id,
            span_id,
            parent_span_id,
            name: event.event_type().to_string(),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: end_ns,
            attributes,
            status: Some(status_of(event, data)),
            ..Span::default()
        }))
    }
}

impl Step for TracesStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        let (mut made, mut sampled_out, mut no_duration) = (0, 0, 0);
        let mut spans = Vec::new();
        for event in &batch.events {
            match self.span_of(event) {
                Ok(Some(span)) => {
                    spans.push(span);
                    made += 1;
                }
                Ok(None) if self.durations.contains_key(event.event_type()) => sampled_out += 1,
                Ok(None) => {}
                Err(()) => no_duration += 1,
            }
        }
        self.made.inc_by(made);
        self.sampled_out.inc_by(sampled_out);
        self.no_duration.inc_by(no_duration);
        if !spans.is_empty() {
            batch.side_outputs.push(SideOutput {
                kind: SPANS,
                name: self.side_name.clone(),
                count: spans.len(),
                items: Arc::new(SpanBatch { service: self.service.clone(), spans }),
            });
        }
    }
}

/// OpenTelemetry's ratio sampler: a trace is kept when its id's last 8 bytes, as a
/// big-endian number shifted right by one, are below `rate × 2^63`.
fn ratio_threshold(rate: f64) -> u64 {
    if rate >= 1.0 {
        u64::MAX
    } else if rate <= 0.0 {
        0
    } else {
        (rate * (1u64 << 63) as f64) as u64
    }
}

fn sampled(trace_id: &[u8], threshold: u64) -> bool {
    if threshold == u64::MAX {
        return true;
    }
    let mut low = [0u8; 8];
    if let Some(tail) = trace_id.get(trace_id.len().saturating_sub(8)..) {
        low[8 - tail.len()..].copy_from_slice(tail);
    }
    (u64::from_be_bytes(low) >> 1) < threshold
}

/// A hex id of exactly `len` bytes that is not all zero (OTLP's "invalid id").
fn decode_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok()?;
    (bytes.len() == len && bytes.iter().any(|b| *b != 0)).then_some(bytes)
}

/// `len` bytes from the event id: SHA-256 of a domain tag and the id, so the same
/// event always makes the same ids and trace and span ids differ.
fn derive_id(event_id: &str, domain: &[u8], len: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(domain).chain_update(event_id.as_bytes()).finalize();
    digest[..len].to_vec()
}

/// ERROR when the event reports a failure (`success: false`, a `failure`/`error`
/// status, a TIMEOUT decision) or has severity ERROR or FATAL; else UNSET, as
/// OpenTelemetry asks of instrumentation that does not know better.
fn status_of(event: &Event, data: Option<&Value>) -> Status {
    let field = |k: &str| data.and_then(|d| d.get(k));
    let failed = field("success") == Some(&Value::Bool(false))
        || field("status")
            .and_then(Value::as_str)
            .is_some_and(|s| matches!(s, "failure" | "failed" | "error"))
        || field("decision").and_then(Value::as_str) == Some("TIMEOUT")
        || event.severity() >= Severity::Error;
    if !failed {
        return Status::default();
    }
    // Not `error_message`: free text, which may hold personal data.
    let message = ["error_type", "decision", "status"]
        .iter()
        .find_map(|k| field(k).and_then(Value::as_str))
        .map_or_else(|| "failed".to_string(), |m| cap_exported(m).into_owned());
    Status { message, code: StatusCode::Error as i32 }
}

fn text_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
    }
}

/// The fields of `data` at `paths`, as attributes named by their paths.
fn allowed(data: &serde_json::Map<String, Value>, paths: &[Vec<String>], out: &mut Vec<KeyValue>) {
    for path in paths.iter().take(MAX_ATTRIBUTES) {
        let Some((first, rest)) = path.split_first() else { continue };
        let value = rest.iter().fold(data.get(first), |v, key| v.and_then(|v| v.get(key)));
        if let Some(value) = value.and_then(any_value_of) {
            out.push(KeyValue { key: path.join("."), value: Some(value) });
        }
    }
}

/// The default attributes: what in `data` cannot be free text. Numbers and
/// booleans (also one object level down: `resource_usage.cpu_percent`), and text
/// only in identifiers and types (`*_id`, `*_type`) and the schema's enumerations.
fn no_free_text(data: &serde_json::Map<String, Value>, fields: &[schema::Field], out: &mut Vec<KeyValue>) {
    let enumerated = |key: &str| fields.iter().any(|f| f.name == key && matches!(f.ty, FieldType::Enum(_)));
    let text_allowed = |key: &str| key.ends_with("_id") || key.ends_with("_type") || enumerated(key);
    for (key, value) in data {
        if out.len() >= MAX_ATTRIBUTES {
            return;
        }
        match value {
            Value::Number(_) | Value::Bool(_) => out.extend(any_value_of(value).map(|v| keyed(key, v))),
            Value::String(_) if text_allowed(key) => out.extend(any_value_of(value).map(|v| keyed(key, v))),
            Value::Object(inner) => {
                for (inner_key, value) in inner {
                    if matches!(value, Value::Number(_) | Value::Bool(_)) && out.len() < MAX_ATTRIBUTES {
                        out.extend(any_value_of(value).map(|v| keyed(&format!("{key}.{inner_key}"), v)));
                    }
                }
            }
            _ => {}
        }
    }
}

fn keyed(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(value) }
}

fn any_value_of(value: &Value) -> Option<AnyValue> {
    let v = match value {
        Value::Null | Value::Object(_) => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::String(s) => any_value::Value::StringValue(cap_exported(s).into_owned()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        // Arrays of scalars, bounded like the attributes.
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .filter(|v| !matches!(v, Value::Array(_) | Value::Object(_)))
                .take(MAX_ATTRIBUTES)
                .filter_map(any_value_of)
                .collect(),
        }),
    };
    Some(AnyValue { value: Some(v) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_ratio_and_the_trace_id_alone() {
        let threshold = ratio_threshold(0.1);
        let kept =
            (0u64..100_000).filter(|i| sampled(&derive_id(&i.to_string(), b"trace", 16), threshold)).count();
        // Binomial(100000, 0.1): sd ≈ 95; 5 sd either side.
        assert!((9_525..=10_475).contains(&kept), "kept {kept}");
        assert!(sampled(&[0u8; 16], threshold));
        assert!(!sampled(&[0xffu8; 16], threshold));
        assert!(sampled(&[0xffu8; 16], ratio_threshold(1.0)));
        assert!(!sampled(&[0u8; 16], ratio_threshold(0.0)));
    }

    #[test]
    fn ids_must_be_hex_of_the_right_length_and_not_zero() {
        assert_eq!(decode_hex("0102030405060708", 8), Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(decode_hex("0102", 8), None);
        assert_eq!(decode_hex("zz02030405060708", 8), None);
        assert_eq!(decode_hex("0000000000000000", 8), None);
        assert_eq!(derive_id("e-1", b"span", 8), derive_id("e-1", b"span", 8));
        assert_ne!(derive_id("e-1", b"span", 8), derive_id("e-2", b"span", 8));
    }
}

//! The config sections of metrics, traces and their outputs: the `metrics` and
//! `traces` steps, and the `otlp` and `influxdb` sinks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::decode::{one_of, Diagnostics, MapReader};
use super::{Config, StepKind};

#[derive(Debug, Clone)]
pub struct MetricsStepConfig {
    /// The mapping file (`mapping:`), or the built-in spec mapping when absent.
    pub source: String,
    pub mapping: crate::metrics::mapping::Mapping,
}

#[derive(Debug, Clone)]
pub struct TracesConfig {
    /// Share of traces kept, decided by the trace id (so every span of a trace is
    /// kept or dropped together, on every instance).
    pub sampling_rate: f64,
    /// Event type → the `data` field holding its duration in milliseconds.
    pub durations: BTreeMap<String, String>,
    /// The `data` fields spans carry (dotted paths below `data`); `None`: every
    /// field that cannot hold free text (see `step::traces`).
    pub attributes: Option<Vec<String>>,
    /// Resource attributes `service.name`, `service.version`, `deployment.environment`.
    pub service_name: String,
    pub service_version: String,
    pub environment: String,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            sampling_rate: 0.1,
            durations: default_span_durations(),
            attributes: None,
            service_name: "codex-synaptic".into(),
            service_version: "1.0.0".into(),
            environment: "production".into(),
        }
    }
}

impl Config {
    /// The traces step's config (service attributes for `otlp` sinks), or the defaults.
    pub fn traces(&self) -> TracesConfig {
        self.pipeline
            .iter()
            .find_map(|s| match &s.kind {
                StepKind::Traces(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// The built-in metric mapping: every metric of the spec's Metrics Schema.
pub const SPEC_METRICS: &str = include_str!("../../config/metrics.yaml");

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone)]
pub struct OtlpSinkConfig {
    /// `http://host:4317` (gRPC) or `http://host:4318` (HTTP; `/v1/traces` is added).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// gzip the requests.
    pub compression: bool,
    pub timeout: Duration,
    /// Extra request headers (authentication).
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct InfluxSinkConfig {
    /// `http://host:8086`; points are written to `{url}/write`.
    pub url: String,
    pub database: String,
    pub retention_policy: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Fields written as tags besides component and severity (`data.namespace`).
    pub tag_fields: Vec<String>,
    pub gzip: bool,
    pub timeout: Duration,
}

pub(super) fn decode_metrics_step(
    map: &mut MapReader<'_>,
    base: &Path,
    cx: &mut Diagnostics,
) -> Option<MetricsStepConfig> {
    use crate::metrics::mapping::{Mapping, DEFAULT_PREFIX};
    let prefix = map.or("prefix", DEFAULT_PREFIX.to_string(), cx);
    if !prefix.is_empty() && crate::metrics::names::check_name(&format!("{prefix}x"), "gauge").is_err() {
        cx.error(map.key_pos("prefix"), format!("prefix `{prefix}` is not a valid start of a metric name"));
    }
    let file: Option<String> = map.optional("mapping", cx);
    let loaded = match &file {
        Some(f) => {
            let path = base.join(f);
            Mapping::load_file(&path, &prefix).map(|m| (path.display().to_string(), m))
        }
        None => Mapping::parse(SPEC_METRICS, "<built-in config/metrics.yaml>", &prefix)
            .map(|m| ("<built-in>".to_string(), m)),
    };
    match loaded {
        Ok((source, mapping)) => {
            if let Err(e) = crate::metrics::MetricsStep::check(&mapping) {
                cx.error(map.key_pos("mapping"), e);
                return None;
            }
            Some(MetricsStepConfig { source, mapping })
        }
        Err(errors) => {
            errors.0.into_iter().for_each(|e| cx.push(e));
            None
        }
    }
}

pub(super) fn decode_traces(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<TracesConfig> {
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
        service_name: map.or("service_name", "codex-synaptic".to_string(), cx),
        service_version: map.or("service_version", "1.0.0".to_string(), cx),
        environment: map.or("environment", "production".to_string(), cx),
    })
}

pub(super) fn decode_otlp(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<OtlpSinkConfig> {
    let endpoint: Option<String> = map.required("endpoint", cx);
    let protocol = map
        .node("protocol")
        .and_then(|n| {
            one_of(n, &[("grpc", OtlpProtocol::Grpc), ("http/protobuf", OtlpProtocol::HttpProtobuf)], cx)
        })
        .unwrap_or(OtlpProtocol::Grpc);
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            cx.error(
                map.key_pos("endpoint"),
                format!("endpoint must start with http:// or https://, got `{e}`"),
            );
        }
    }
    Some(OtlpSinkConfig {
        endpoint: endpoint?,
        protocol,
        compression: map
            .node("compression")
            .and_then(|n| one_of(n, &[("gzip", true), ("none", false)], cx))
            .unwrap_or(true),
        timeout: map.or("timeout", Duration::from_secs(10), cx),
        headers: map.or("headers", BTreeMap::new(), cx),
    })
}

pub(super) fn decode_influx(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<InfluxSinkConfig> {
    let url: Option<String> = map.required("url", cx);
    if let Some(u) = &url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            cx.error(map.key_pos("url"), format!("url must start with http:// or https://, got `{u}`"));
        }
    }
    let tag_fields: Vec<String> = map.or("tag_fields", Vec::new(), cx);
    for field in &tag_fields {
        if let Err(e) = crate::metrics::mapping::parse_field(field) {
            cx.error(map.key_pos("tag_fields"), e);
        }
    }
    Some(InfluxSinkConfig {
        url: url?,
        database: map.or("database", "codex_metrics".to_string(), cx),
        retention_policy: map.optional("retention_policy", cx),
        username: map.optional("username", cx),
        password: map.optional("password", cx),
        tag_fields,
        gzip: map.or("gzip", true, cx),
        timeout: map.or("timeout", Duration::from_secs(10), cx),
    })
}

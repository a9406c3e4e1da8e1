//! The declarative metric mapping (`config/metrics.yaml`): which events feed which
//! metric, how. Strict like the pipeline config: unknown keys rejected, every error
//! with `file:line:col`, all errors at once, and metric names checked against what
//! Prometheus' linter (`promtool check metrics`) accepts before anything runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::names::check_name;
use crate::decode::yaml::{Node, NodeKind, Pos};
use crate::decode::{list_items, one_of, parse_document, ConfigErrors, Decode, Diagnostics, MapReader};
use crate::fields::{decode_conditions, field_ref, field_refs, Condition, FieldRef};
use crate::files::read_document;
use crate::route::{decode_match, MatchConfig};

/// The spec's prefix (Export Configuration → Prometheus → metric_prefix).
pub const DEFAULT_PREFIX: &str = "codex_synaptic_";
/// Labels per metric; more would make each event's series lookup slow.
pub(crate) const MAX_LABELS: usize = 8;

#[derive(Debug, Clone)]
pub struct Mapping {
    pub(crate) lookups: Vec<LookupDef>,
    pub metrics: Vec<MetricDef>,
}

/// A table learned from events: e.g. agent_id → agent_type from agent.lifecycle,
/// for events that name the agent but not its type.
#[derive(Debug, Clone)]
pub(crate) struct LookupDef {
    pub name: String,
    pub(crate) matcher: MatchConfig,
    pub(crate) key: FieldRef,
    pub(crate) value: FieldRef,
    pub(crate) max_entries: usize,
    /// Events after which a key is no longer needed (a task that finished): the
    /// table then holds only what is still open, small and cache-resident.
    pub(crate) forget_on: Option<MatchConfig>,
}

#[derive(Debug, Clone)]
pub struct MetricDef {
    /// The exposed name: prefix + name with dots as underscores.
    pub name: String,
    pub(crate) help: String,
    pub kind: MetricKind,
    pub(crate) matcher: MatchConfig,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) labels: Vec<LabelDef>,
    /// Counters: added per event (default 1); gauges and histograms: the value.
    pub(crate) value: Option<ValueDef>,
    pub(crate) max_series: usize,
}

#[derive(Debug, Clone)]
pub enum MetricKind {
    Counter,
    /// The last value per label set.
    Gauge,
    /// Sum over live keys (each key's last value, or 1): "how many agents are
    /// active", "how many proposals are pending".
    KeyedGauge(KeyedDef),
    Histogram(Vec<f64>),
}

#[derive(Debug, Clone)]
pub struct KeyedDef {
    pub(crate) key: Vec<FieldRef>,
    /// Matching events that end a key instead of setting it.
    pub(crate) remove_when: Vec<Condition>,
    /// Keys not refreshed for this long (event time) are removed.
    pub(crate) expire_after: Option<Duration>,
    pub(crate) max_keys: usize,
}

#[derive(Debug, Clone)]
pub struct ValueDef {
    pub(crate) field: FieldRef,
    /// Multiplied in: unit conversion to base units (ms → s is 0.001).
    pub(crate) scale: f64,
    /// A second field multiplied in (CPU time = duration × CPU share).
    pub(crate) times: Option<FieldRef>,
}

#[derive(Debug, Clone)]
pub struct LabelDef {
    pub name: String,
    pub(crate) source: LabelSource,
    /// Values rewritten after reading (`low: LOW`); applied before `case`.
    pub(crate) map: BTreeMap<String, String>,
    pub(crate) case: Case,
    /// When the field is absent and no lookup knows it.
    pub(crate) default: String,
}

#[derive(Debug, Clone)]
pub enum LabelSource {
    Const(String),
    /// The first field present, else the lookup by `key`.
    Field {
        fields: Vec<FieldRef>,
        lookup: Option<(usize, FieldRef)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Keep,
    Upper,
    Lower,
}

impl Mapping {
    pub fn load_file(path: &Path, prefix: &str) -> Result<Mapping, ConfigErrors> {
        let (text, name) = read_document(path, "the metric mapping", false)?;
        Mapping::parse(&text, &name, prefix)
    }

    pub fn parse(text: &str, file: &str, prefix: &str) -> Result<Mapping, ConfigErrors> {
        parse_document(text, file, |root, cx| decode_mapping(root, prefix, cx))
    }
}

fn decode_mapping(root: &Node, prefix: &str, cx: &mut Diagnostics) -> Option<Mapping> {
    let mut map = MapReader::new(root, "the metric mapping", cx)?;
    let default_series: usize = map.or("max_series", 1000, cx);
    let lookups = map.node("lookups").map(|n| decode_lookups(n, cx)).unwrap_or_default();
    let metrics = match map.node("metrics") {
        Some(n) => decode_metrics(n, prefix, default_series, &lookups, cx),
        None => {
            cx.error(map.pos(), "the metric mapping is missing required key `metrics`");
            Vec::new()
        }
    };
    map.finish(cx);
    Some(Mapping { lookups, metrics })
}

fn decode_lookups(node: &Node, cx: &mut Diagnostics) -> Vec<LookupDef> {
    let mut out: Vec<LookupDef> = Vec::new();
    for (i, item) in list_items(node, "lookups", cx).iter().enumerate() {
        let what = format!("lookup {}", i + 1);
        let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
        let name: Option<String> = map.required("name", cx);
        let matcher = required_match(&mut map, &what, cx);
        let key = map.node("key").and_then(|n| field_ref(n, cx));
        let value = map.node("value").and_then(|n| field_ref(n, cx));
        for (k, present) in [("key", key.is_some()), ("value", value.is_some())] {
            if !present && map.node(k).is_none() {
                cx.error(map.pos(), format!("{what} is missing required key `{k}`"));
            }
        }
        let max_entries = map.or("max_entries", 100_000usize, cx);
        let forget_on = map.node("forget_on").and_then(|n| decode_match(n, cx));
        if let Some(n) = &name {
            if out.iter().any(|l| &l.name == n) {
                cx.error(map.key_pos("name"), format!("lookup name `{n}` is used twice"));
            }
        }
        map.finish(cx);
        if let (Some(name), Some(matcher), Some(key), Some(value)) = (name, matcher, key, value) {
            out.push(LookupDef { name, matcher, key, value, max_entries: max_entries.max(2), forget_on });
        }
    }
    out
}

fn required_match(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<MatchConfig> {
    match map.node("match") {
        Some(m) => decode_match(m, cx),
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `match`"));
            None
        }
    }
}

fn decode_metrics(
    node: &Node,
    prefix: &str,
    default_series: usize,
    lookups: &[LookupDef],
    cx: &mut Diagnostics,
) -> Vec<MetricDef> {
    let mut out: Vec<MetricDef> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, item) in list_items(node, "metrics", cx).iter().enumerate() {
        let what = format!("metric {}", i + 1);
        let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
        let name: Option<String> = map.required("name", cx);
        let kind_name = match map.node("type") {
            Some(n) => {
                one_of(n, &[("counter", "counter"), ("gauge", "gauge"), ("histogram", "histogram")], cx)
            }
            None => {
                cx.error(map.pos(), format!("{what} is missing required key `type`"));
                None
            }
        };
        let help: Option<String> = map.required("help", cx);
        let matcher = required_match(&mut map, &what, cx);
        let conditions = map.node("where").map(|n| decode_conditions(n, cx)).unwrap_or_default();
        let value = map.node("value").and_then(|n| decode_value(n, cx));
        let labels = map.node("labels").map(|n| decode_labels(n, lookups, cx)).unwrap_or_default();
        let max_series = map.or("max_series", default_series, cx);
        let buckets: Option<Vec<f64>> = map.optional("buckets", cx);
        let key = map.node("key").map(|n| (n.pos, field_refs(n, cx)));
        let remove_when = map.node("remove_when").map(|n| decode_conditions(n, cx));
        let expire_after: Option<Duration> = map.optional("expire_after", cx);
        let max_keys: usize = map.or("max_keys", 100_000, cx);

        let exposed = name.as_ref().map(|n| format!("{prefix}{}", n.replace('.', "_")));
        let kind = match kind_name {
            Some("histogram") => {
                if map.key_pos("value") == map.pos() {
                    cx.error(map.pos(), format!("{what}: a histogram needs `value`"));
                }
                match buckets {
                    Some(b) => {
                        check_buckets(&b, map.key_pos("buckets"), cx).then_some(MetricKind::Histogram(b))
                    }
                    None => {
                        cx.error(map.pos(), format!("{what}: a histogram needs `buckets`"));
                        None
                    }
                }
            }
            Some("gauge") => match key {
                Some((_, key)) => Some(MetricKind::KeyedGauge(KeyedDef {
                    key: key.unwrap_or_default(),
                    remove_when: remove_when.unwrap_or_default(),
                    expire_after,
                    max_keys: max_keys.max(1),
                })),
                None => {
                    if map.key_pos("value") == map.pos() {
                        cx.error(map.pos(), format!("{what}: a gauge needs `value` (the last value is shown) or `key` (live keys are summed)"));
                    }
                    Some(MetricKind::Gauge)
                }
            },
            Some(_) => Some(MetricKind::Counter),
            None => None,
        };
        let has = |key: &str| map.key_pos(key) != map.pos();
        let keyed = kind_name == Some("gauge") && has("key");
        let histogram = kind_name == Some("histogram");
        for (key, used) in [
            ("buckets", !histogram && has("buckets")),
            ("remove_when", !keyed && has("remove_when")),
            ("expire_after", !keyed && has("expire_after")),
            ("max_keys", !keyed && has("max_keys")),
            ("key", kind_name.is_some_and(|k| k != "gauge") && has("key")),
        ] {
            if used {
                cx.error(
                    map.key_pos(key),
                    format!("`{key}` does not apply to a {}", kind_name.unwrap_or("metric")),
                );
            }
        }
        if let (Some(exposed), Some(kind_name)) = (&exposed, kind_name) {
            if let Err(problem) = check_name(exposed, kind_name) {
                cx.error(map.key_pos("name"), format!("metric name `{exposed}`: {problem}"));
            }
            if names.contains(exposed) {
                cx.error(map.key_pos("name"), format!("metric `{exposed}` is defined twice"));
            }
            names.push(exposed.clone());
        }
        if labels.len() > MAX_LABELS {
            cx.error(map.key_pos("labels"), format!("at most {MAX_LABELS} labels per metric"));
        }
        if histogram && labels.iter().any(|l| l.name == "le") {
            cx.error(map.key_pos("labels"), "`le` is the bucket label of a histogram");
        }
        if max_series == 0 {
            cx.error(map.key_pos("max_series"), "max_series must be at least 1");
        }
        map.finish(cx);
        if let (Some(name), Some(help), Some(matcher), Some(kind)) = (exposed, help, matcher, kind) {
            out.push(MetricDef { name, help, kind, matcher, conditions, labels, value, max_series });
        }
    }
    out
}

fn check_buckets(buckets: &[f64], pos: Pos, cx: &mut Diagnostics) -> bool {
    if buckets.is_empty() {
        cx.error(pos, "buckets must not be empty");
        return false;
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        cx.error(pos, "buckets must be strictly increasing");
        return false;
    }
    true
}

fn decode_value(node: &Node, cx: &mut Diagnostics) -> Option<ValueDef> {
    if let NodeKind::Scalar { .. } = node.kind {
        return field_ref(node, cx).map(|field| ValueDef { field, scale: 1.0, times: None });
    }
    let mut map = MapReader::new(node, "value", cx)?;
    let field_node = map.node("field");
    let field = field_node.and_then(|n| field_ref(n, cx));
    if field_node.is_none() {
        cx.error(map.pos(), "value is missing required key `field`");
    }
    let scale = map.or("scale", 1.0, cx);
    let times = map.node("times").and_then(|n| field_ref(n, cx));
    map.finish(cx);
    Some(ValueDef { field: field?, scale, times })
}

fn decode_labels(node: &Node, lookups: &[LookupDef], cx: &mut Diagnostics) -> Vec<LabelDef> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(node.pos, format!("labels must be a mapping of name: field, got {}", node.describe()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let name_ok = key
            .name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_lowercase() || c == '_' || (i > 0 && c.is_ascii_digit()))
            && !key.name.is_empty()
            && !key.name.starts_with("__");
        if !name_ok {
            cx.error(
                key.pos,
                format!("label name `{}` must be snake_case and not start with `__`", key.name),
            );
        }
        let label = match &value.kind {
            NodeKind::Map(_) => decode_label(&key.name, value, lookups, cx),
            _ => field_ref(value, cx).map(|f| LabelDef {
                name: key.name.clone(),
                source: LabelSource::Field { fields: vec![f], lookup: None },
                map: BTreeMap::new(),
                case: Case::Keep,
                default: "unknown".into(),
            }),
        };
        out.extend(label);
    }
    out
}

fn decode_label(name: &str, node: &Node, lookups: &[LookupDef], cx: &mut Diagnostics) -> Option<LabelDef> {
    let what = format!("label `{name}`");
    let mut map = MapReader::new(node, &what, cx)?;
    let constant: Option<String> = map.optional("value", cx);
    let fields = map.node("field").and_then(|n| field_refs(n, cx));
    let lookup = map.node("lookup").and_then(|n| {
        let text = String::decode(n, cx)?;
        let found = lookups.iter().position(|l| l.name == text);
        if found.is_none() {
            cx.error(n.pos, format!("no lookup is named `{text}`"));
        }
        found
    });
    let key = map.node("key").and_then(|n| field_ref(n, cx));
    let value_map = map.or("map", BTreeMap::new(), cx);
    let case = map
        .node("case")
        .and_then(|n| one_of(n, &[("keep", Case::Keep), ("upper", Case::Upper), ("lower", Case::Lower)], cx))
        .unwrap_or(Case::Keep);
    let default = map.or("default", "unknown".to_string(), cx);
    if lookup.is_none() && map.key_pos("lookup") != map.pos() {
        // Its error is reported; the combination cannot be judged without it.
        map.finish(cx);
        return None;
    }
    let source = match (constant, fields, lookup, key) {
        (Some(c), None, None, None) => Some(LabelSource::Const(c)),
        (None, fields, Some(l), Some(key)) => {
            Some(LabelSource::Field { fields: fields.unwrap_or_default(), lookup: Some((l, key)) })
        }
        (None, Some(fields), None, None) => Some(LabelSource::Field { fields, lookup: None }),
        _ => {
            cx.error(
                map.pos(),
                format!(
                    "{what}: give `value`, or `field`, or `lookup` with `key` (and optionally `field` first)"
                ),
            );
            None
        }
    };
    map.finish(cx);
    Some(LabelDef { name: name.to_string(), source: source?, map: value_map, case, default })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported_with_its_position() {
        let text = "\
metrics:
  - name: task.done
    type: counter
    help: x
    match: {event_type: task.completed}
    colour: red
  - name: latency_ms
    type: histogram
    help: y
    match: {}
    value: data.latency_ms
    buckets: [5, 1]
  - name: up
    type: gauge
    help: z
    match: {}
    value: payload.x
    labels: {Agent: data.agent_id, kind: {lookup: nowhere, key: data.x}}
";
        let errors = Mapping::parse(text, "m.yaml", DEFAULT_PREFIX).expect_err("invalid");
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        let expect = [
            "m.yaml:2:5: metric name `codex_synaptic_task_done`: a counter's name ends in `_total`",
            "m.yaml:6:5: unknown key `colour`",
            "m.yaml:7:5: metric name `codex_synaptic_latency_ms`: abbreviated unit `ms`",
            "m.yaml:12:5: buckets must be strictly increasing",
            "m.yaml:17:12: field `payload.x` must start with data.",
            "m.yaml:18:14: label name `Agent` must be snake_case",
            "m.yaml:18:51: no lookup is named `nowhere`",
        ];
        assert_eq!(lines.len(), expect.len(), "{lines:#?}");
        for (line, want) in lines.iter().zip(expect) {
            assert!(line.starts_with(want), "{line}\n  wanted: {want}");
        }
    }

    #[test]
    fn a_value_may_be_written_as_a_block_mapping() {
        // The block mapping starts where its first key does: `field` first must
        // still count as present.
        let text = "\
metrics:
  - name: sync_seconds
    type: histogram
    help: x
    match: {event_type: memory.bridge.sync}
    value:
      field: data.sync_duration_ms
      scale: 0.001
    buckets: [0.1, 1]
";
        let mapping = Mapping::parse(text, "m.yaml", DEFAULT_PREFIX).expect("valid");
        let value = mapping.metrics[0].value.as_ref().expect("value");
        assert_eq!(value.scale, 0.001);
        let missing =
            "metrics:\n  - {name: lag_seconds, type: gauge, help: x, match: {}, value: {scale: 2}}\n";
        let errors = Mapping::parse(missing, "m.yaml", DEFAULT_PREFIX).expect_err("no field");
        assert!(errors.0[0].to_string().contains("value is missing required key `field`"), "{errors:?}");
    }
}

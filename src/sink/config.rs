//! The `sinks` list and the `dead_letter` section: a sink's common keys (`name`,
//! `type`, `match`); each kind decodes its own keys.

use super::{Buffer, OutputConfig, SideInput, SinkCounters, SinkError, SinkParts};
use crate::breaker::BreakerConfig;
use crate::buffer::{BufferConfig, BufferMetrics};
use crate::decode::yaml::Node;
use crate::decode::{check_unique_name, list_items, one_of, Diagnostics, MapReader};
use crate::route::{decode_match, MatchConfig};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    /// Only matching events are routed to this sink; absent means all.
    pub(crate) matcher: Option<MatchConfig>,
    pub(crate) output: OutputConfig,
    /// Where batches wait while the output is slow or down.
    pub(crate) buffer: BufferConfig,
    pub(crate) breaker: BreakerConfig,
}

/// The name the dead-letter sink has in metrics and logs.
pub(crate) const DEAD_LETTER: &str = "dead_letter";

impl SinkConfig {
    /// The `sinks` list: at least one, names unique.
    pub(crate) fn decode_list(node: &Node, cx: &mut Diagnostics) -> Vec<SinkConfig> {
        let items = list_items(node, "sinks", cx);
        let mut names: Vec<String> = Vec::new();
        let mut sinks = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let what = format!("sink {}", index + 1);
            let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
            let name: Option<String> = map.required("name", cx);
            let matcher = map.node("match").and_then(|m| decode_match(m, cx));
            let output = decode_output_fields(&mut map, &what, cx);
            let owner = name.as_deref().map_or(what.clone(), |n| format!("sink `{n}`"));
            let (buffer, breaker) = decode_delivery(&mut map, &owner, output.as_ref(), cx);
            if let (Some(output), Some(_)) = (&output, &matcher) {
                if let Some(SideInput { what, .. }) = output.side_input() {
                    cx.error(
                        map.key_pos("match"),
                        format!(
                            "an {} sink receives {what}, not events: `match` does not apply",
                            output.type_name()
                        ),
                    );
                }
            }
            if let Some(name) = &name {
                check_unique_name(&mut names, name, map.key_pos("name"), "sink", cx);
            }
            map.finish(cx);
            if let (Some(name), Some(output)) = (name, output) {
                sinks.push(SinkConfig { name, matcher, output, buffer, breaker });
            }
        }
        if sinks.is_empty() && !cx.has_errors() {
            cx.error(node.pos, "sinks must name at least one sink");
        }
        sinks
    }

    /// The `dead_letter` section: one output without a name or `match`. An output
    /// that only takes a side output (spans) is refused: dead letters sent to it
    /// would be lost.
    pub(crate) fn decode_dead_letter(node: &Node, cx: &mut Diagnostics) -> Option<SinkConfig> {
        let mut map = MapReader::new(node, DEAD_LETTER, cx)?;
        let output = decode_output_fields(&mut map, DEAD_LETTER, cx);
        let (buffer, breaker) = decode_delivery(&mut map, "the dead-letter sink", output.as_ref(), cx);
        map.finish(cx);
        let output = output?;
        if let Some(side) = output.side_input() {
            cx.error(
                node.pos,
                format!(
                    "dead_letter cannot be an {} sink: it receives {}, and dead letters sent to it would be lost",
                    output.type_name(),
                    side.what
                ),
            );
            return None;
        }
        Some(SinkConfig { name: DEAD_LETTER.to_string(), matcher: None, output, buffer, breaker })
    }

    /// Opens the output and the buffer, and registers the sink's metrics.
    pub(crate) async fn open(&self, telemetry: &Telemetry) -> Result<SinkParts, SinkError> {
        let output = self.output.open(&super::OpenContext { sink: &self.name, telemetry }).await?;
        let buffer = Buffer::open(&self.buffer)?;
        let circuit_gauge = telemetry
            .gauge_vec(
                "sink_circuit_state",
                "Circuit breaker state by sink: 0 closed, 1 open, 2 half-open",
                &["sink"],
            )
            .with_label_values(&[&self.name]);
        Ok(SinkParts {
            output,
            counters: SinkCounters::register(telemetry, &self.name),
            buffer,
            when_full: self.buffer.when_full,
            metrics: BufferMetrics::register(telemetry, &self.name, &self.buffer),
            breaker: self.breaker.clone(),
            circuit_gauge,
        })
    }

    /// For the start-up banner: where the events go and how they wait.
    pub(crate) fn describe(&self) -> String {
        format!("{}; {}", self.output.describe(), self.buffer.describe())
    }
}

/// The keys every sink has for delivery: `buffer` and `circuit_breaker`.
fn decode_delivery(
    map: &mut MapReader<'_>,
    owner: &str,
    output: Option<&OutputConfig>,
    cx: &mut Diagnostics,
) -> (BufferConfig, BreakerConfig) {
    let buffer = map.node("buffer").and_then(|n| BufferConfig::decode(n, owner, cx)).unwrap_or_default();
    if let (Some(output), Some(_)) = (output, buffer.disk_path()) {
        if let Some(side) = output.side_input() {
            cx.error(
                map.key_pos("buffer"),
                format!(
                    "{owner}: a disk buffer holds JSON lines, and an {} sink receives {}: use a memory buffer",
                    output.type_name(),
                    side.what
                ),
            );
        }
    }
    let breaker =
        map.node("circuit_breaker").and_then(|n| BreakerConfig::decode(n, owner, cx)).unwrap_or_default();
    (buffer, breaker)
}

fn decode_output_fields(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<OutputConfig> {
    let kinds: Vec<(&str, &str)> = OutputConfig::TYPES.iter().map(|t| (*t, *t)).collect();
    let kind = match map.node("type") {
        Some(node) => one_of(node, &kinds, cx),
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `type`"));
            None
        }
    };
    OutputConfig::decode_kind(kind?, map, cx)
}

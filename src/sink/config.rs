//! The `sinks` list and the `dead_letter` section: a sink's common keys (`name`,
//! `type`, `match`); each kind decodes its own keys.

use super::{OutputConfig, SideInput};
use crate::decode::yaml::Node;
use crate::decode::{check_unique_name, list_items, one_of, Diagnostics, MapReader};
use crate::route::{decode_match, MatchConfig};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    /// Only matching events are routed to this sink; absent means all.
    pub(crate) matcher: Option<MatchConfig>,
    pub(crate) output: OutputConfig,
}

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
                sinks.push(SinkConfig { name, matcher, output });
            }
        }
        if sinks.is_empty() && !cx.has_errors() {
            cx.error(node.pos, "sinks must name at least one sink");
        }
        sinks
    }
}

impl OutputConfig {
    /// A section that is one output without a name (`dead_letter`).
    pub(crate) fn decode(node: &Node, what: &str, cx: &mut Diagnostics) -> Option<OutputConfig> {
        let mut map = MapReader::new(node, what, cx)?;
        let output = decode_output_fields(&mut map, what, cx);
        map.finish(cx);
        output
    }
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

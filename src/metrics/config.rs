//! The `metrics` step's config: the mapping from events to the spec's metrics.

use std::path::Path;

use super::mapping::{Mapping, DEFAULT_PREFIX};
use super::names::check_name;
use super::MetricsStep;
use crate::decode::{Diagnostics, MapReader};
use crate::step::{BuildContext, RunningStep};

#[derive(Debug, Clone)]
pub struct MetricsStepConfig {
    /// From the mapping file (`mapping:`), or the built-in spec mapping when absent.
    pub(crate) mapping: Mapping,
}

/// The built-in metric mapping: every metric of the spec's Metrics Schema.
pub const SPEC_METRICS: &str = include_str!("../../config/metrics.yaml");

impl MetricsStepConfig {
    /// Reads the step's keys; a relative `mapping` file is found from `base`.
    pub(crate) fn decode(map: &mut MapReader<'_>, base: &Path, cx: &mut Diagnostics) -> Option<Self> {
        let prefix = map.or("prefix", DEFAULT_PREFIX.to_string(), cx);
        if !prefix.is_empty() && check_name(&format!("{prefix}x"), "gauge").is_err() {
            cx.error(
                map.key_pos("prefix"),
                format!("prefix `{prefix}` is not a valid start of a metric name"),
            );
        }
        let file: Option<String> = map.optional("mapping", cx);
        let loaded = match &file {
            Some(f) => Mapping::load_file(&base.join(f), &prefix),
            None => Mapping::parse(SPEC_METRICS, "<built-in config/metrics.yaml>", &prefix),
        };
        match loaded {
            Ok(mapping) => {
                if let Err(e) = MetricsStep::check(&mapping) {
                    cx.error(map.key_pos("mapping"), e);
                    return None;
                }
                Some(MetricsStepConfig { mapping })
            }
            Err(errors) => {
                errors.0.into_iter().for_each(|e| cx.push(e));
                None
            }
        }
    }

    pub(crate) fn build(&self, name: &str, cx: &mut BuildContext) -> RunningStep {
        let step = MetricsStep::new(name, self.mapping.clone(), cx.telemetry());
        RunningStep::new(Box::new(step), cx.telemetry())
    }
}

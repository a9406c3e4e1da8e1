//! The `pipeline` list: its steps in order. The `steps!` list below is the one
//! place that names every kind of step; each kind's config type lives with its
//! runtime and builds its step through [`BuildContext`].

use std::path::Path;

use crate::alert::AlertsConfig;
use crate::decode::yaml::Node;
use crate::decode::{check_unique_name, list_items, one_of, Diagnostics, MapReader};
use crate::metrics::MetricsStepConfig;
use crate::plugin::{PluginHostConfig, PluginStepConfig};
use crate::step::{
    BuildContext, ConsentStepConfig, DegradeStepConfig, DropStepConfig, MinimizeStepConfig,
    RetentionStepConfig, RunningStep, TagStepConfig, TracesConfig,
};

#[derive(Debug, Clone)]
pub struct StepConfig {
    pub name: String,
    pub kind: StepKind,
}

/// What the decoder of a step kind is given besides its keys.
struct DecodeEnv<'a> {
    /// Relative files (mappings, rules) are found from here.
    base: &'a Path,
    plugins: &'a PluginHostConfig,
    /// `pipeline step N`, for messages.
    what: &'a str,
}

/// The list of step kinds: `Variant("type", Config) => decode, build`, then how
/// an unnamed step is named, whether a pipeline may hold only one, and what it
/// exports from events (for the warning about steps placed before the scrubber).
macro_rules! steps {
    ($($variant:ident($type_name:literal, $config:ty) {
        decode: |$map:ident, $env:ident, $cx:ident| $decode:expr,
        build: |$c:ident, $name:ident, $bcx:ident| $build:expr,
        named: |$n:ident, $index:ident| $named:expr,
        only_one: $only_one:expr,
        exports: $exports:expr $(,)?
    }),* $(,)?) => {
        #[derive(Debug, Clone)]
        pub enum StepKind {
            $($variant($config),)*
        }

        #[derive(Clone, Copy)]
        enum Kind {
            $($variant,)*
        }

        const KINDS: &[(&str, Kind)] = &[$(($type_name, Kind::$variant),)*];

        impl Kind {
            /// Why a pipeline may hold only one step of this kind.
            fn only_one(self) -> Option<&'static str> {
                match self {
                    $(Kind::$variant => $only_one,)*
                }
            }

            fn decode(self, map: &mut MapReader<'_>, env: &DecodeEnv<'_>, cx: &mut Diagnostics) -> Option<StepKind> {
                match self {
                    $(Kind::$variant => {
                        let decode = |$map: &mut MapReader<'_>, $env: &DecodeEnv<'_>, $cx: &mut Diagnostics| $decode;
                        decode(map, env, cx).map(StepKind::$variant)
                    })*
                }
            }
        }

        impl StepKind {
            /// The name of a step without `name:`, the `index`-th of the pipeline.
            fn default_name(&self, index: usize) -> String {
                match self {
                    $(StepKind::$variant(config) => {
                        let named = |$n: &$config, $index: usize| $named;
                        named(config, index)
                    })*
                }
            }

            /// What the step takes from events out of the pipeline, if anything.
            fn exports(&self) -> Option<&'static str> {
                match self {
                    $(StepKind::$variant(_) => $exports,)*
                }
            }
        }

        impl StepConfig {
            /// Builds the running step. Plugin steps load their first version here.
            pub fn build(&self, cx: &mut BuildContext) -> anyhow::Result<RunningStep> {
                match &self.kind {
                    $(StepKind::$variant(config) => {
                        let build = |$c: &$config, $name: &str, $bcx: &mut BuildContext| -> anyhow::Result<RunningStep> { $build };
                        build(config, &self.name, cx)
                    })*
                }
            }
        }
    };
}

steps! {
    Tag("tag", TagStepConfig) {
        decode: |map, _env, cx| TagStepConfig::decode(map, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, index| format!("tag_{}", index + 1),
        only_one: None,
        exports: None,
    },
    Drop("drop", DropStepConfig) {
        decode: |map, env, cx| DropStepConfig::decode(map, env.what, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, index| format!("drop_{}", index + 1),
        only_one: None,
        exports: None,
    },
    Consent("consent", ConsentStepConfig) {
        decode: |map, env, cx| ConsentStepConfig::decode(map, env.base, cx),
        build: |c, name, cx| c.build(name, cx),
        named: |_c, _index| "consent".to_string(),
        only_one: Some("only one consent step: it must be the first step"),
        exports: None,
    },
    Minimize("minimize", MinimizeStepConfig) {
        decode: |map, _env, cx| MinimizeStepConfig::decode(map, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, _index| "minimize".to_string(),
        only_one: None,
        exports: None,
    },
    Retention("retention", RetentionStepConfig) {
        decode: |map, _env, cx| RetentionStepConfig::decode(map, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, _index| "retention".to_string(),
        only_one: None,
        exports: None,
    },
    Degrade("degrade", DegradeStepConfig) {
        decode: |map, env, cx| DegradeStepConfig::decode(map, env.what, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, index| format!("degrade_{}", index + 1),
        only_one: None,
        exports: None,
    },
    Plugin("plugin", PluginStepConfig) {
        decode: |map, env, cx| PluginStepConfig::decode(map, env.plugins, cx),
        build: |c, name, cx| c.build(name, cx),
        named: |c, _index| c.path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string(),
        only_one: None,
        exports: None,
    },
    Metrics("metrics", MetricsStepConfig) {
        decode: |map, env, cx| MetricsStepConfig::decode(map, env.base, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, _index| "metrics".to_string(),
        only_one: Some("only one metrics step: two would expose the same metrics twice"),
        exports: Some("metric labels"),
    },
    Traces("traces", TracesConfig) {
        decode: |map, _env, cx| TracesConfig::decode(map, cx),
        build: |c, name, cx| Ok(c.build(name, cx)),
        named: |_c, _index| "traces".to_string(),
        only_one: None,
        exports: Some("span attributes"),
    },
    Alerts("alerts", Box<AlertsConfig>) {
        decode: |map, env, cx| AlertsConfig::decode(map, env.base, cx).map(Box::new),
        build: |c, name, cx| c.build(name, cx),
        named: |_c, _index| "alerts".to_string(),
        only_one: Some("only one alerts step: two would send every alert twice"),
        exports: Some("alert labels and annotations"),
    },
}

impl StepConfig {
    /// The `pipeline` list; step names are unique.
    pub(crate) fn decode_list(
        node: &Node,
        plugins: &PluginHostConfig,
        base: &Path,
        cx: &mut Diagnostics,
    ) -> Vec<StepConfig> {
        let items = list_items(node, "pipeline", cx);
        let mut names = Vec::new();
        let mut steps = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let what = format!("pipeline step {}", index + 1);
            let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
            let kind = match map.node("type") {
                Some(node) => one_of(node, KINDS, cx),
                None => {
                    cx.error(map.pos(), format!("{what} is missing required key `type`"));
                    None
                }
            };
            let name: Option<String> = map.optional("name", cx);
            if let Some(only_one) = kind.and_then(Kind::only_one) {
                if seen.iter().filter(|s| **s == only_one).count() == 1 {
                    cx.error(map.pos(), only_one);
                }
                seen.push(only_one);
            }
            if matches!(kind, Some(Kind::Consent)) && index > 0 {
                cx.error(
                    map.pos(),
                    "the consent step must be the first step: the steps before it would see the events of subjects who opted out",
                );
            }
            let env = DecodeEnv { base, plugins, what: &what };
            let kind = kind.and_then(|k| k.decode(&mut map, &env, cx));
            // A plugin is named after its file; the built-ins after their position.
            let name = name.unwrap_or_else(|| match &kind {
                Some(kind) => kind.default_name(index),
                None => format!("drop_{}", index + 1),
            });
            check_unique_name(&mut names, &name, map.key_pos("name"), "step", cx);
            map.finish(cx);
            if let Some(kind) = kind {
                steps.push(StepConfig { name, kind });
            }
        }
        steps
    }

    /// Where the step sends things besides the batch (the alerts step's receivers),
    /// for the start-up banner.
    pub(crate) fn describe_outputs(&self) -> Vec<String> {
        match &self.kind {
            StepKind::Alerts(alerts) => alerts.describe_receivers(),
            _ => Vec::new(),
        }
    }
}

/// The pipeline's PII scrubber step and its position, if it has one.
pub(crate) fn scrubber_step(steps: &[StepConfig]) -> Option<(usize, &PluginStepConfig)> {
    steps.iter().enumerate().find_map(|(i, step)| match &step.kind {
        StepKind::Plugin(plugin) if plugin.is_scrubber() => Some((i, plugin)),
        _ => None,
    })
}

/// Warnings for steps that export event text (metric labels, span attributes,
/// alert labels and annotations) and run before the pipeline's PII scrubber:
/// what they take from an event leaves unscrubbed.
pub(crate) fn exports_before_scrubber(steps: &[StepConfig]) -> Vec<String> {
    let Some((at, _)) = scrubber_step(steps) else { return Vec::new() };
    steps[..at]
        .iter()
        .filter_map(|step| {
            let exports = step.kind.exports()?;
            Some(format!(
                "step `{}` runs before the PII scrubber `{}`: the {exports} it takes from events are not scrubbed (move it after the scrubber)",
                step.name, steps[at].name
            ))
        })
        .collect()
}

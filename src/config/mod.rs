//! The pipeline config: one strict YAML file, assembled from the components' own
//! config types. Each source, step, sink and receiver decodes its own section
//! (next to its runtime); this module reads the top level, hands each section to
//! its owner, and builds the running topology from the result (`topology`).
//!
//! Unknown keys are rejected, every error carries `file:line:col`, and all errors are
//! reported at once. Every field is documented with its type and in `config/demo.yaml`.

mod pipeline;
mod replay;
mod topology;

use std::path::Path;

pub(crate) use pipeline::{StepConfig, StepKind};
pub(crate) use topology::Topology;

use crate::audit::AuditConfig;
use crate::decode::yaml::Node;
use crate::decode::{one_of, parse_document, ConfigErrors, Diagnostics, MapReader};
use crate::event::SchemaMode;
use crate::plugin::PluginHostConfig;
use crate::server::ServerConfig;
use crate::sink::SinkConfig;
use crate::source::{BatchConfig, LimitsConfig, SourceConfig};

#[derive(Debug, Clone)]
pub struct Config {
    /// `strict` (default): a known event type with bad `data` goes to dead letter.
    /// `lenient`: it is passed on with a `schema_warning` tag.
    pub schema: SchemaMode,
    pub source: SourceConfig,
    pub batch: BatchConfig,
    pub limits: LimitsConfig,
    /// Pipeline workers in this process (`auto`: one per core).
    pub workers: Workers,
    /// The plugin host: plugin directory, watching, instance pool.
    pub plugins: PluginHostConfig,
    /// Steps, run in this order on every batch.
    pub pipeline: Vec<StepConfig>,
    pub sinks: Vec<SinkConfig>,
    /// Where inputs that cannot be processed go, with the reason.
    pub dead_letter: SinkConfig,
    pub server: ServerConfig,
    /// The audit trail's file, when kept.
    pub audit: Option<AuditConfig>,
    /// Where the config came from and the SHA-256 of its text, for the audit trail.
    pub origin: ConfigOrigin,
}

/// How many pipeline workers a process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Workers {
    /// One per core the process may use.
    #[default]
    Auto,
    Fixed(usize),
}

impl Workers {
    /// More workers than this gain nothing and cost plugin instances.
    const MAX: usize = 256;

    fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> Workers {
        let Some(node) = node else { return Workers::Auto };
        if matches!(&node.kind, crate::decode::yaml::NodeKind::Scalar { text, .. } if text == "auto") {
            return Workers::Auto;
        }
        match crate::decode::Decode::decode(node, cx) {
            Some(n) if (1..=Self::MAX).contains(&n) => Workers::Fixed(n),
            Some(_) => {
                cx.error(node.pos, format!("workers must be `auto` or a number from 1 to {}", Self::MAX));
                Workers::Auto
            }
            None => Workers::Auto,
        }
    }

    /// The number of workers to run.
    pub fn count(self) -> usize {
        match self {
            Workers::Fixed(n) => n,
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()).min(Self::MAX),
        }
    }
}

/// The config file's name and the SHA-256 of its text.
#[derive(Debug, Clone, Default)]
pub struct ConfigOrigin {
    pub file: String,
    pub sha256: String,
}

impl Config {
    pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
        let (text, name) = crate::files::read_document(path, "config file", false)?;
        Config::parse(&text, &name)
    }

    /// Loads the plugins from `dir` instead: the host's directory and every plugin
    /// step's file (by its name) move there.
    pub fn move_plugins_to(&mut self, dir: &Path) {
        self.plugins.dir = dir.to_path_buf();
        for step in &mut self.pipeline {
            if let StepKind::Plugin(plugin) = &mut step.kind {
                if let Some(name) = plugin.path.file_name() {
                    plugin.path = dir.join(name);
                }
            }
        }
    }

    /// Parses config text; `file` is only used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        Config::parse_relative_to(text, file, Path::new(""))
    }

    /// Like `parse`, with a relative `plugins.dir` taken from `base` (the demo
    /// finds its plugins in the source tree wherever it is started).
    pub fn parse_relative_to(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let mut config = parse_document(text, file, |root, cx| decode_config(root, base, cx))?;
        use sha2::Digest;
        config.origin =
            ConfigOrigin { file: file.to_string(), sha256: hex::encode(sha2::Sha256::digest(text)) };
        Ok(config)
    }

    /// Where events, dead letters and alerts go, one line each, for the start-up
    /// banner.
    pub fn describe_outputs(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .sinks
            .iter()
            .map(|s| (s.name.as_str(), s))
            .chain(std::iter::once(("dead letter", &self.dead_letter)))
            .map(|(name, sink)| format!("{name}: {}", sink.describe()))
            .collect();
        lines.extend(self.pipeline.iter().flat_map(StepConfig::describe_outputs));
        lines
    }
}

fn decode_config(root: &Node, base: &Path, cx: &mut Diagnostics) -> Option<Config> {
    let mut map = MapReader::new(root, "the config", cx)?;
    let schema = map
        .node("schema")
        .and_then(|n| one_of(n, &[("strict", SchemaMode::Strict), ("lenient", SchemaMode::Lenient)], cx))
        .unwrap_or_default();
    let source = match map.node("source") {
        Some(node) => SourceConfig::decode(node, cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `source`");
            None
        }
    };
    let batch = BatchConfig::decode(map.node("batch"), cx);
    let limits = LimitsConfig::decode(map.node("limits"), cx);
    let workers = Workers::decode(map.node("workers"), cx);
    let plugins = PluginHostConfig::decode(map.node("plugins"), base, cx);
    let pipeline =
        map.node("pipeline").map(|n| StepConfig::decode_list(n, &plugins, base, cx)).unwrap_or_default();
    let sinks = match map.node("sinks") {
        Some(node) => SinkConfig::decode_list(node, cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `sinks`");
            Vec::new()
        }
    };
    let dead_letter = match map.node("dead_letter") {
        Some(node) => SinkConfig::decode_dead_letter(node, cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `dead_letter`");
            None
        }
    };
    if let Some(dead_letter) = &dead_letter {
        check_unique_buffer_paths(sinks.iter().chain(std::iter::once(dead_letter)), map.pos(), cx);
    }
    let server = ServerConfig::decode(map.node("server"), cx);
    let audit = AuditConfig::decode(map.node("audit"), cx);
    map.finish(cx);
    Some(Config {
        schema,
        source: source?,
        batch,
        limits,
        workers,
        plugins,
        pipeline,
        sinks,
        dead_letter: dead_letter?,
        server,
        audit,
        origin: ConfigOrigin::default(),
    })
}

/// Two sinks cannot share a disk buffer: each would deliver the other's batches.
fn check_unique_buffer_paths<'a>(
    sinks: impl Iterator<Item = &'a SinkConfig>,
    pos: crate::decode::yaml::Pos,
    cx: &mut Diagnostics,
) {
    let mut seen: Vec<(&Path, &str)> = Vec::new();
    for sink in sinks {
        let Some(path) = sink.buffer.disk_path() else { continue };
        if let Some((_, other)) = seen.iter().find(|(p, _)| *p == path) {
            cx.error(
                pos,
                format!(
                    "sinks `{other}` and `{}` use the same disk buffer path `{}`",
                    sink.name,
                    path.display()
                ),
            );
        }
        seen.push((path, &sink.name));
    }
}

#[cfg(test)]
mod tests;

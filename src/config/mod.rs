//! The pipeline config: one strict YAML file.
//!
//! Unknown keys are rejected, every error carries `file:line:col`, and all errors are
//! reported at once. Every field is documented here and in `config/demo.yaml`.

mod alerts;
pub mod decode;
mod observe;
pub mod plugin;
pub mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use alerts::AlertsConfig;
pub use decode::ConfigError;
use decode::{one_of, ByteSize, Decode, Diagnostics, MapReader, OneOrMany};
pub use observe::{
    default_span_durations, InfluxSinkConfig, MetricsStepConfig, OtlpProtocol, OtlpSinkConfig, TracesConfig,
    SPEC_METRICS,
};
pub use plugin::{DirGrant, Grants, OnError, PluginHostConfig, PluginStepConfig};
use yaml::{Node, NodeKind, Pos};

use crate::event::{SchemaMode, Severity};

#[derive(Debug, Clone)]
pub struct Config {
    /// `strict` (default): a known event type with bad `data` goes to dead letter.
    /// `lenient`: it is passed on with a `schema_warning` tag.
    pub schema: SchemaMode,
    pub source: SourceConfig,
    pub batch: BatchConfig,
    pub limits: LimitsConfig,
    /// The plugin host: plugin directory, watching, instance pool.
    pub plugins: PluginHostConfig,
    /// Steps, run in this order on every batch.
    pub pipeline: Vec<StepConfig>,
    pub sinks: Vec<SinkConfig>,
    /// Where inputs that cannot be processed go, with the reason.
    pub dead_letter: OutputConfig,
    pub server: ServerConfig,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Generator(GeneratorConfig),
    File(FileSourceConfig),
    Kafka(KafkaSourceConfig),
}

/// A Kafka consumer-group member. More instances with the same `group_id` share the
/// partitions.
#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic names; a name starting with `^` is a regular expression.
    pub topics: Vec<String>,
    pub group_id: String,
    /// How often acknowledged offsets are committed.
    pub commit_interval: Duration,
    /// On a partition revoke, how long to wait for its in-flight events.
    pub revoke_timeout: Duration,
    /// Passed to librdkafka as they are (TLS, SASL, tuning).
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Events per second; 0 means as fast as the pipeline takes them.
    pub rate: f64,
    /// Events in all; 0 means endless.
    pub total: u64,
    pub seed: u64,
    /// Share of deliberately malformed events, 0.0 to 1.0.
    pub malformed_ratio: f64,
    /// Timestamp of the first event (Unix ms); absent means "now".
    pub start_ms: Option<i64>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig { rate: 1000.0, total: 0, seed: 42, malformed_ratio: 0.0, start_ms: None }
    }
}

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// A JSONL file, or `-` for standard input.
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// A batch is closed at this many events…
    pub max_events: usize,
    /// …or this long after its first event arrived, whichever comes first.
    pub linger: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Batches read but not yet acknowledged by every sink; the source waits beyond it.
    pub max_in_flight_batches: usize,
    /// Larger inputs go to dead letter (their first bytes kept).
    pub max_event_bytes: usize,
    /// On shutdown, how long to wait for in-flight events to be acknowledged.
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct StepConfig {
    pub name: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// Adds fixed tags to every event (existing tags with the same key are replaced).
    Tag { tags: BTreeMap<String, String> },
    /// Drops the events that match, on purpose (they count as done).
    Drop { matcher: MatchConfig },
    /// A hot-swappable plugin (WebAssembly component).
    Plugin(PluginStepConfig),
    /// The spec's metrics, derived from events by a mapping, served on /metrics.
    Metrics(MetricsStepConfig),
    /// Spans from events that carry a duration, handed to the `otlp` sinks.
    Traces(TracesConfig),
    /// Alert rules evaluated on the events; notifications to receivers.
    Alerts(Box<AlertsConfig>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchConfig {
    /// Globs on the canonical event_type; empty means any.
    pub event_type: Vec<String>,
    /// Globs on the component; empty means any.
    pub component: Vec<String>,
    /// Only events at or above this severity.
    pub min_severity: Option<Severity>,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    /// Only matching events are routed to this sink; absent means all.
    pub matcher: Option<MatchConfig>,
    pub output: OutputConfig,
}

#[derive(Debug, Clone)]
pub enum OutputConfig {
    Stdout,
    File(FileSinkConfig),
    Kafka(KafkaSinkConfig),
    /// Receives the traces step's spans (not events).
    Otlp(OtlpSinkConfig),
    Influx(InfluxSinkConfig),
}

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub brokers: String,
    pub topic: String,
    /// Dotted path of the message key (default `data.agent_id`); events without it
    /// are keyed by `event_id`.
    pub key_field: String,
    /// none | gzip | snappy | lz4 (default lz4).
    pub compression: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Start a new file when the current one reaches this size.
    pub rotate_bytes: Option<u64>,
    /// Start a new file when the current one is this old.
    pub rotate_interval: Option<Duration>,
    /// fsync before acknowledging (slower; survives power loss, not just a crash).
    pub fsync: bool,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of /metrics, /health and /ready. The spec's default port is 9090.
    pub listen: SocketAddr,
}

/// All problems of one config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl Config {
    pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
        let (text, name) = read_document(path, "config file", false)?;
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
        parse_document(text, file, |root, cx| decode_config(root, base, cx))
    }
}

/// A config document's text and the name its errors use; an unreadable file is
/// one error naming `what` it was meant to be. Only a regular file of at most
/// 16 MiB is read; `confined`, only one whose links stay in its directory (the
/// files of a directory others drop files into, like `rules/`).
pub fn read_document(path: &Path, what: &str, confined: bool) -> Result<(String, String), ConfigErrors> {
    let name = path.display().to_string();
    match crate::files::read_text(path, crate::files::MAX_CONFIG_BYTES, confined) {
        Ok(text) => Ok((text, name)),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            line: 0,
            col: 0,
            message: format!("{what} {e}"),
        }])),
    }
}

/// Parses one strict YAML document and decodes it, with every error of both stages.
pub fn parse_document<T>(
    text: &str,
    file: &str,
    decode: impl FnOnce(&Node, &mut Diagnostics) -> Option<T>,
) -> Result<T, ConfigErrors> {
    let root = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: e.line,
            col: e.col,
            message: format!("YAML syntax error: {}", e.message),
        }])
    })?;
    let mut cx = Diagnostics::new(file);
    match decode(&root, &mut cx) {
        Some(value) if !cx.has_errors() => Ok(value),
        _ => Err(ConfigErrors(cx.into_errors())),
    }
}

fn decode_config(root: &Node, base: &Path, cx: &mut Diagnostics) -> Option<Config> {
    let mut map = MapReader::new(root, "the config", cx)?;
    let schema = map
        .node("schema")
        .and_then(|n| one_of(n, &[("strict", SchemaMode::Strict), ("lenient", SchemaMode::Lenient)], cx))
        .unwrap_or_default();
    let source = match map.node("source") {
        Some(node) => decode_source(node, cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `source`");
            None
        }
    };
    let batch = decode_batch(map.node("batch"), cx);
    let limits = decode_limits(map.node("limits"), cx);
    let plugins = plugin::decode_host(map.node("plugins"), base, cx);
    let pipeline = map.node("pipeline").map(|n| decode_steps(n, &plugins, base, cx)).unwrap_or_default();
    let sinks = match map.node("sinks") {
        Some(node) => decode_sinks(node, cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `sinks`");
            Vec::new()
        }
    };
    let dead_letter = match map.node("dead_letter") {
        Some(node) => decode_output(node, "dead_letter", cx),
        None => {
            cx.error(map.pos(), "the config is missing required key `dead_letter`");
            None
        }
    };
    let server = decode_server(map.node("server"), cx);
    map.finish(cx);
    Some(Config {
        schema,
        source: source?,
        batch,
        limits,
        plugins,
        pipeline,
        sinks,
        dead_letter: dead_letter?,
        server,
    })
}

/// The `type` key of a tagged section, checked against `choices`.
fn section_type<T: Copy>(
    map: &mut MapReader<'_>,
    what: &str,
    choices: &[(&str, T)],
    cx: &mut Diagnostics,
) -> Option<T> {
    match map.node("type") {
        Some(node) => one_of(node, choices, cx),
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `type`"));
            None
        }
    }
}

fn decode_source(node: &Node, cx: &mut Diagnostics) -> Option<SourceConfig> {
    #[derive(Clone, Copy)]
    enum Kind {
        Generator,
        File,
        Kafka,
    }
    let mut map = MapReader::new(node, "source", cx)?;
    let kind = section_type(
        &mut map,
        "source",
        &[("generator", Kind::Generator), ("file", Kind::File), ("kafka", Kind::Kafka)],
        cx,
    );
    let source = match kind? {
        Kind::Generator => {
            let d = GeneratorConfig::default();
            let rate = map.or("rate", d.rate, cx);
            let malformed_ratio = map.or("malformed_ratio", d.malformed_ratio, cx);
            let config = GeneratorConfig {
                rate,
                total: map.or("total", d.total, cx),
                seed: map.or("seed", d.seed, cx),
                malformed_ratio,
                start_ms: map.optional::<u64>("start_ms", cx).map(|v| v as i64),
            };
            if rate < 0.0 {
                cx.error(map.key_pos("rate"), "rate must be >= 0 (0 means unthrottled)");
            }
            if !(0.0..=1.0).contains(&malformed_ratio) {
                cx.error(map.key_pos("malformed_ratio"), "malformed_ratio must be from 0.0 to 1.0");
            }
            SourceConfig::Generator(config)
        }
        Kind::File => {
            let path: Option<String> = map.required("path", cx);
            if let Some(p) = &path {
                if p != "-" && !Path::new(p).is_file() {
                    cx.error(
                        map.key_pos("path"),
                        format!("input file `{p}` does not exist or is not a file"),
                    );
                }
            }
            SourceConfig::File(FileSourceConfig { path: path.unwrap_or_default() })
        }
        Kind::Kafka => {
            let brokers: Option<String> = map.required("brokers", cx);
            let topics = map.required::<OneOrMany<String>>("topics", cx).map(|t| t.0);
            SourceConfig::Kafka(KafkaSourceConfig {
                brokers: brokers.unwrap_or_default(),
                topics: topics.unwrap_or_default(),
                group_id: map.or("group_id", "synaptic-telemetry".to_string(), cx),
                commit_interval: map.or("commit_interval", Duration::from_secs(1), cx),
                revoke_timeout: map.or("revoke_timeout", Duration::from_secs(10), cx),
                properties: map.or("properties", BTreeMap::new(), cx),
            })
        }
    };
    map.finish(cx);
    Some(source)
}

fn decode_batch(node: Option<&Node>, cx: &mut Diagnostics) -> BatchConfig {
    let default = BatchConfig { max_events: 512, linger: Duration::from_millis(50) };
    let Some(mut map) = node.and_then(|n| MapReader::new(n, "batch", cx)) else { return default };
    let config = BatchConfig {
        max_events: map.or("max_events", default.max_events, cx),
        linger: map.or("linger", default.linger, cx),
    };
    if config.max_events == 0 {
        cx.error(map.key_pos("max_events"), "max_events must be at least 1");
    }
    map.finish(cx);
    config
}

fn decode_limits(node: Option<&Node>, cx: &mut Diagnostics) -> LimitsConfig {
    let default = LimitsConfig {
        max_in_flight_batches: 16,
        max_event_bytes: 1 << 20,
        drain_timeout: Duration::from_secs(30),
    };
    let Some(mut map) = node.and_then(|n| MapReader::new(n, "limits", cx)) else { return default };
    let config = LimitsConfig {
        max_in_flight_batches: map.or("max_in_flight_batches", default.max_in_flight_batches, cx),
        max_event_bytes: map
            .optional::<ByteSize>("max_event_bytes", cx)
            .map_or(default.max_event_bytes, |b| usize::try_from(b.0).unwrap_or(usize::MAX)),
        drain_timeout: map.or("drain_timeout", default.drain_timeout, cx),
    };
    if config.max_in_flight_batches == 0 {
        cx.error(map.key_pos("max_in_flight_batches"), "max_in_flight_batches must be at least 1");
    }
    map.finish(cx);
    config
}

/// Items of a list section, each with a name unique within the list.
fn named_items<'n>(node: &'n Node, what: &str, cx: &mut Diagnostics) -> Vec<(&'n Node, usize)> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, i)).collect(),
        _ => {
            cx.error(node.pos, format!("{what} must be a list, got {}", node.describe()));
            Vec::new()
        }
    }
}

fn check_unique_name(names: &mut Vec<String>, name: &str, pos: Pos, what: &str, cx: &mut Diagnostics) {
    if names.iter().any(|n| n == name) {
        cx.error(pos, format!("{what} name `{name}` is used twice"));
    }
    names.push(name.to_string());
}

fn decode_steps(
    node: &Node,
    plugins: &PluginHostConfig,
    base: &Path,
    cx: &mut Diagnostics,
) -> Vec<StepConfig> {
    #[derive(Clone, Copy)]
    enum Kind {
        Tag,
        Drop,
        Plugin,
        Metrics,
        Traces,
        Alerts,
    }
    let mut names = Vec::new();
    let mut steps = Vec::new();
    let mut metrics_steps = 0;
    let mut alert_steps = 0;
    for (item, index) in named_items(node, "pipeline", cx) {
        let what = format!("pipeline step {}", index + 1);
        let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
        let kinds = [
            ("tag", Kind::Tag),
            ("drop", Kind::Drop),
            ("plugin", Kind::Plugin),
            ("metrics", Kind::Metrics),
            ("traces", Kind::Traces),
            ("alerts", Kind::Alerts),
        ];
        let kind = section_type(&mut map, &what, &kinds, cx);
        let name: Option<String> = map.optional("name", cx);
        let kind = match kind {
            Some(Kind::Tag) => map.required("tags", cx).map(|tags| StepKind::Tag { tags }),
            Some(Kind::Drop) => match map.node("match") {
                Some(m) => decode_match(m, cx).map(|matcher| StepKind::Drop { matcher }),
                None => {
                    cx.error(map.pos(), format!("{what} is missing required key `match`"));
                    None
                }
            },
            Some(Kind::Plugin) => plugin::decode_step(&mut map, plugins, cx).map(StepKind::Plugin),
            Some(Kind::Metrics) => {
                metrics_steps += 1;
                if metrics_steps == 2 {
                    cx.error(map.pos(), "only one metrics step: two would expose the same metrics twice");
                }
                observe::decode_metrics_step(&mut map, base, cx).map(StepKind::Metrics)
            }
            Some(Kind::Traces) => observe::decode_traces(&mut map, cx).map(StepKind::Traces),
            Some(Kind::Alerts) => {
                alert_steps += 1;
                if alert_steps == 2 {
                    cx.error(map.pos(), "only one alerts step: two would send every alert twice");
                }
                alerts::decode_alerts_step(&mut map, base, cx).map(|a| StepKind::Alerts(Box::new(a)))
            }
            None => None,
        };
        // A plugin is named after its file; the built-ins after their position.
        let name = name.unwrap_or_else(|| match &kind {
            Some(StepKind::Plugin(p)) => {
                p.path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string()
            }
            Some(StepKind::Tag { .. }) => format!("tag_{}", index + 1),
            Some(StepKind::Metrics(_)) => "metrics".to_string(),
            Some(StepKind::Traces(_)) => "traces".to_string(),
            Some(StepKind::Alerts(_)) => "alerts".to_string(),
            _ => format!("drop_{}", index + 1),
        });
        check_unique_name(&mut names, &name, map.key_pos("name"), "step", cx);
        map.finish(cx);
        if let Some(kind) = kind {
            steps.push(StepConfig { name, kind });
        }
    }
    steps
}

pub(crate) fn decode_match(node: &Node, cx: &mut Diagnostics) -> Option<MatchConfig> {
    let mut map = MapReader::new(node, "match", cx)?;
    let event_type = map.optional::<OneOrMany<String>>("event_type", cx).map(|v| v.0);
    let component = map.optional::<OneOrMany<String>>("component", cx).map(|v| v.0);
    let min_severity = map.node("min_severity").and_then(|n| {
        let choices: Vec<(&str, Severity)> = Severity::ALL.iter().map(|s| (s.as_str(), *s)).collect();
        one_of(n, &choices, cx)
    });
    map.finish(cx);
    Some(MatchConfig {
        event_type: event_type.unwrap_or_default(),
        component: component.unwrap_or_default(),
        min_severity,
    })
}

fn decode_sinks(node: &Node, cx: &mut Diagnostics) -> Vec<SinkConfig> {
    let mut names = Vec::new();
    let mut sinks = Vec::new();
    for (item, index) in named_items(node, "sinks", cx) {
        let what = format!("sink {}", index + 1);
        let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
        let name: Option<String> = map.required("name", cx);
        let matcher = map.node("match").and_then(|m| decode_match(m, cx));
        let output = decode_output_fields(&mut map, &what, cx);
        if matches!(output, Some(OutputConfig::Otlp(_))) && matcher.is_some() {
            cx.error(
                map.key_pos("match"),
                "an otlp sink receives the traces step's spans, not events: `match` does not apply",
            );
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

fn decode_output(node: &Node, what: &str, cx: &mut Diagnostics) -> Option<OutputConfig> {
    let mut map = MapReader::new(node, what, cx)?;
    let output = decode_output_fields(&mut map, what, cx);
    map.finish(cx);
    output
}

fn decode_output_fields(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<OutputConfig> {
    #[derive(Clone, Copy)]
    enum Kind {
        Stdout,
        File,
        Kafka,
        Otlp,
        Influx,
    }
    let kinds = [
        ("stdout", Kind::Stdout),
        ("file", Kind::File),
        ("kafka", Kind::Kafka),
        ("otlp", Kind::Otlp),
        ("influxdb", Kind::Influx),
    ];
    match section_type(map, what, &kinds, cx)? {
        Kind::Stdout => Some(OutputConfig::Stdout),
        Kind::Otlp => observe::decode_otlp(map, cx).map(OutputConfig::Otlp),
        Kind::Influx => observe::decode_influx(map, cx).map(OutputConfig::Influx),
        Kind::Kafka => {
            let brokers: Option<String> = map.required("brokers", cx);
            let topic: Option<String> = map.required("topic", cx);
            let compression = map.node("compression").and_then(|n| {
                let choices = [("none", "none"), ("gzip", "gzip"), ("snappy", "snappy"), ("lz4", "lz4")];
                one_of(n, &choices, cx)
            });
            Some(OutputConfig::Kafka(KafkaSinkConfig {
                brokers: brokers?,
                topic: topic?,
                key_field: map.or("key_field", "data.agent_id".to_string(), cx),
                compression: compression.unwrap_or("lz4").to_string(),
                properties: map.or("properties", BTreeMap::new(), cx),
            }))
        }
        Kind::File => {
            let path: Option<String> = map.required("path", cx);
            let rotate_bytes = map.optional::<ByteSize>("rotate_bytes", cx).map(|b| b.0);
            let rotate_interval = map.optional::<Duration>("rotate_interval", cx);
            let fsync = map.or("fsync", false, cx);
            let path = PathBuf::from(path?);
            if let Err(message) = check_writable_dir(&path) {
                cx.error(map.key_pos("path"), message);
            }
            Some(OutputConfig::File(FileSinkConfig { path, rotate_bytes, rotate_interval, fsync }))
        }
    }
}

/// A file sink creates its directory; this checks that it will be able to.
fn check_writable_dir(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("`{}` is a directory; a file sink needs a file path", path.display()));
    }
    let mut dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    while !dir.exists() {
        dir = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            Err(format!("cannot create `{}`: `{}` is not a directory", path.display(), dir.display()))
        }
        Ok(meta) if meta.permissions().readonly() => {
            Err(format!("cannot write `{}`: `{}` is read-only", path.display(), dir.display()))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot use `{}`: {e}", path.display())),
    }
}

fn decode_server(node: Option<&Node>, cx: &mut Diagnostics) -> ServerConfig {
    let default = ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9090)) };
    let Some(mut map) = node.and_then(|n| MapReader::new(n, "server", cx)) else { return default };
    let listen = map.node("listen").and_then(|n| {
        let text = String::decode(n, cx)?;
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.error(n.pos, format!("listen must be an address such as 127.0.0.1:9090, got `{text}`"));
                None
            }
        }
    });
    map.finish(cx);
    ServerConfig { listen: listen.unwrap_or(default.listen) }
}

#[cfg(test)]
mod tests;

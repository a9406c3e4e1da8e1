//! `synaptic-telemetry test plugin`: runs a plugin over a file of events, as the
//! pipeline would, and prints each event's verdict and output. For plugin authors.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{Map, Value};
use synaptic_plugin_sdk::contract::{BatchBuffer, VerdictRef};

use super::config::{Grants, PluginHostConfig};
use super::wasm::InstanceSettings;
use super::PluginHost;
use super::{content_hash, Code};
use crate::event::{Event, Position, SchemaMode};
use crate::telemetry::Telemetry;

pub struct TestOptions {
    pub plugin: PathBuf,
    /// JSON Lines; `-` for standard input.
    pub input: PathBuf,
    pub config: Map<String, Value>,
    pub batch_size: usize,
    pub deadline: Duration,
    pub memory: u64,
}

/// What the run found; the command fails when anything went wrong.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TestReport {
    pub events: u64,
    pub kept: u64,
    pub dropped: u64,
    pub replaced: u64,
    /// Input lines that are not valid events (not given to the plugin).
    pub invalid_input: u64,
    /// Replacements that are not valid events.
    pub invalid_output: u64,
    pub failed_batches: u64,
}

impl TestReport {
    pub fn clean(&self) -> bool {
        self.invalid_input == 0 && self.invalid_output == 0 && self.failed_batches == 0
    }
}

/// Parses `--config`: a file, or inline YAML/JSON (`'{mode: trap}'`).
pub fn parse_config(text: &str) -> anyhow::Result<Map<String, Value>> {
    let source = if Path::new(text).is_file() {
        std::fs::read_to_string(text).with_context(|| format!("reading {text}"))?
    } else {
        text.to_string()
    };
    let node = crate::decode::yaml::parse(&source)
        .map_err(|e| anyhow::anyhow!("--config {}:{}: {}", e.line, e.col, e.message))?;
    match crate::decode::to_json(&node) {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => anyhow::bail!("--config must be a mapping, got {other}"),
    }
}

pub fn run(options: &TestOptions, out: &mut dyn Write) -> anyhow::Result<TestReport> {
    let host = PluginHostConfig { max_memory: options.memory.max(1 << 20), ..PluginHostConfig::default() };
    let telemetry = Telemetry::new();
    let name = options.plugin.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string();
    let bytes = super::watch::read_plugin(&options.plugin)
        .with_context(|| format!("reading {}", options.plugin.display()))?;
    let hash = content_hash(&bytes);
    let settings = Arc::new(InstanceSettings {
        plugin: name.clone(),
        init_config: Value::Object(options.config.clone()).to_string(),
        deadline: options.deadline,
        // `--deadline` is the whole batch's.
        deadline_per_event: std::time::Duration::ZERO,
        memory: options.memory,
        grants: Grants::default(),
        metrics: super::PluginMetrics::register(&telemetry, &name),
    });
    let compile = PluginHost::new(&host).compiler(&options.plugin, settings)?;
    let code = compile(&bytes).with_context(|| format!("{} ({hash})", options.plugin.display()))?;
    let mut instance = Some(code.start().with_context(|| format!("{} ({hash})", options.plugin.display()))?);
    writeln!(out, "# plugin {} ({hash})", options.plugin.display())?;

    let reader: Box<dyn BufRead> = if options.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&options.input)
            .with_context(|| format!("opening {}", options.input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut report = TestReport::default();
    let mut pending: Vec<(u64, Event)> = Vec::new();
    let input: Arc<str> = options.input.display().to_string().into();
    for (index, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", options.input.display()))?;
        let number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let position = Position::File { path: input.clone(), line: number };
        match Event::decode(Bytes::from(line), position, SchemaMode::Strict) {
            Ok(event) => pending.push((number, event)),
            Err(rejected) => {
                report.invalid_input += 1;
                writeln!(out, "{number}: invalid input, not given to the plugin: {}", rejected.rejection)?;
            }
        }
        if pending.len() >= options.batch_size.max(1) {
            run_batch(&*code, &mut instance, std::mem::take(&mut pending), &mut report, out)?;
        }
    }
    if !pending.is_empty() {
        run_batch(&*code, &mut instance, pending, &mut report, out)?;
    }
    Ok(report)
}

fn run_batch(
    code: &dyn Code,
    instance: &mut Option<Box<dyn super::Instance>>,
    events: Vec<(u64, Event)>,
    report: &mut TestReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut buffer = BatchBuffer::default();
    buffer.clear();
    for (_, event) in &events {
        buffer.push(&event.wire()).map_err(|e| anyhow::anyhow!(e.0))?;
    }
    let (first, last) = (events.first().map_or(0, |e| e.0), events.last().map_or(0, |e| e.0));
    let running = match instance {
        Some(running) => running,
        None => instance.insert(code.start().context("restarting the plugin")?),
    };
    let result = running.process(&mut buffer);
    // As the pipeline does: a fresh instance for the next batch when this one's
    // memory runs low.
    if running.worn().is_some() {
        *instance = None;
    }
    let list = match result {
        Ok(list) => list,
        Err(error) => {
            report.failed_batches += 1;
            *instance = None;
            writeln!(out, "{first}-{last}: batch of {} events failed: plugin {error}", events.len())?;
            return Ok(());
        }
    };
    let verdicts = match list.read(events.len()) {
        Ok(verdicts) => verdicts,
        Err(error) => {
            report.failed_batches += 1;
            writeln!(out, "{first}-{last}: batch failed: plugin broke the batch contract: {}", error.0)?;
            return Ok(());
        }
    };
    for ((number, event), verdict) in events.iter().zip(verdicts) {
        report.events += 1;
        match verdict {
            VerdictRef::Keep => {
                report.kept += 1;
                writeln!(out, "{number}: keep")?;
            }
            VerdictRef::Drop => {
                report.dropped += 1;
                writeln!(out, "{number}: drop")?;
            }
            VerdictRef::Replace(bytes) => {
                report.replaced += 1;
                let text = String::from_utf8_lossy(bytes);
                match Event::decode(
                    Bytes::copy_from_slice(bytes),
                    event.position().clone(),
                    SchemaMode::Strict,
                ) {
                    Ok(_) => writeln!(out, "{number}: replace {text}")?,
                    Err(rejected) => {
                        report.invalid_output += 1;
                        writeln!(out, "{number}: replace, INVALID ({}): {text}", rejected.rejection)?;
                    }
                }
            }
        }
    }
    Ok(())
}

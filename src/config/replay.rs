//! The two versions `replay` compares: the config as it is, and a copy with the
//! candidate plugin files or rules swapped in, each built as steps (the alerts
//! step's rules kept aside for the simulation; nothing is sent anywhere).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::{Config, StepKind};
use crate::plugin::PluginHost;
use crate::replay::{AlertsAt, Version};
use crate::step::BuildContext;
use crate::telemetry::Telemetry;

impl Config {
    /// A copy of this config with each of `with` swapped in: a `.wasm` or `.rhai`
    /// file replaces the plugin of the step `step` names, or else of the plugin
    /// step whose file has the same name, or else of the only plugin step; a
    /// directory or a `.yaml` file replaces the alerts step's rules. Returns the
    /// copy and what was swapped, for the report.
    pub fn with_candidate(
        &self,
        with: &[PathBuf],
        step: Option<&str>,
    ) -> anyhow::Result<(Config, Vec<String>)> {
        let mut candidate = self.clone();
        let mut changes = Vec::new();
        for path in with {
            let is_plugin = path.extension().is_some_and(|e| e == "wasm" || e == "rhai");
            if is_plugin {
                crate::files::check_readable(path, crate::files::MAX_PLUGIN_BYTES)
                    .map_err(|e| anyhow::anyhow!("--with {}: {e}", path.display()))?;
                let name = candidate.plugin_step_for(path, step)?;
                for s in &mut candidate.pipeline {
                    if let (true, StepKind::Plugin(plugin)) = (s.name == name, &mut s.kind) {
                        plugin.path = path.clone();
                    }
                }
                changes.push(format!("step `{name}` runs {}", path.display()));
            } else {
                let alerts = candidate.pipeline.iter_mut().find_map(|s| match &mut s.kind {
                    StepKind::Alerts(alerts) => Some(alerts),
                    _ => None,
                });
                let Some(alerts) = alerts else {
                    anyhow::bail!("--with {}: the pipeline has no alerts step to take rules", path.display())
                };
                let rules = crate::alert::engine::load_checked(path).map_err(|errors| {
                    anyhow::anyhow!("--with {}: invalid rules:\n{errors}", path.display())
                })?;
                changes.push(format!("alerts step runs the {} rules of {}", rules.len(), path.display()));
                alerts.rules = rules;
                alerts.rules_path = path.clone();
            }
        }
        anyhow::ensure!(!changes.is_empty(), "--with names nothing to compare");
        Ok((candidate, changes))
    }

    fn plugin_step_for(&self, path: &Path, step: Option<&str>) -> anyhow::Result<String> {
        let plugins: Vec<(&str, &Path)> = (self.pipeline.iter())
            .filter_map(|s| match &s.kind {
                StepKind::Plugin(p) => Some((s.name.as_str(), p.path.as_path())),
                _ => None,
            })
            .collect();
        let names = || plugins.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        if let Some(wanted) = step {
            return match plugins.iter().find(|(n, _)| *n == wanted) {
                Some((n, _)) => Ok(n.to_string()),
                None => {
                    anyhow::bail!("--step {wanted}: no plugin step of that name (plugin steps: {})", names())
                }
            };
        }
        if let Some((n, _)) = plugins.iter().find(|(_, p)| p.file_name() == path.file_name()) {
            return Ok(n.to_string());
        }
        match plugins.as_slice() {
            [(n, _)] => Ok(n.to_string()),
            [] => anyhow::bail!("--with {}: the pipeline has no plugin step", path.display()),
            _ => anyhow::bail!(
                "--with {}: no plugin step runs a file of that name; say which with --step (plugin steps: {})",
                path.display(),
                names()
            ),
        }
    }

    /// Builds the steps for a replay, on one worker; the alerts step is left out
    /// and its rules returned with its place. Must run inside the Tokio runtime.
    pub fn replay_version(&self) -> anyhow::Result<Version> {
        let telemetry = Arc::new(Telemetry::new());
        let mut cx = BuildContext::new(telemetry.clone(), self.schema);
        cx.insert_shared(PluginHost::new(&self.plugins_for(1)));
        let mut steps = Vec::new();
        let mut alerts = None;
        for step in &self.pipeline {
            match &step.kind {
                StepKind::Alerts(config) => {
                    alerts = Some(AlertsAt {
                        index: steps.len(),
                        rules: config.rules.clone(),
                        policy: config.policy.clone(),
                        interval: config.evaluation_interval,
                    });
                }
                _ => {
                    steps.push(step.build(&mut cx).with_context(|| format!("building step `{}`", step.name))?)
                }
            }
        }
        let services = cx.finish()?;
        Ok(Version { steps, alerts, telemetry, services, schema: self.schema })
    }
}

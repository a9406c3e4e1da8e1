//! The `alerts` step's config: where the rules are, how often they are evaluated,
//! the tiers' timing and the receivers. The rules are loaded here too, so
//! `validate` reports a rule's mistakes with their place in the rule file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec};

use super::notify::{Policy, WARNING_RESPONSE};
use super::receiver::{ReceiverConfig, ReceiverDelivery};
use super::rule::{self, Rule};
use super::service::AlertService;
use crate::decode::yaml::Node;
use crate::decode::{Diagnostics, MapReader};
use crate::step::{BuildContext, RunningStep};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// A rule file or a directory of them.
    pub(crate) rules_path: PathBuf,
    /// The rules as loaded at startup.
    pub(crate) rules: Vec<Rule>,
    pub(crate) evaluation_interval: Duration,
    /// Groups per rule; more are refused and counted.
    pub(crate) max_groups: usize,
    pub(crate) policy: Policy,
    pub(crate) receivers: Vec<(String, ReceiverConfig, ReceiverDelivery)>,
    /// Watch the rules and swap in valid changes while running.
    pub(crate) reload: bool,
    /// On shutdown, how long receivers may take to deliver what is left.
    pub(crate) flush_timeout: Duration,
    /// Which clock the rules run on.
    pub(crate) clock: ClockMode,
}

/// `clock: wall` (live traffic) or `clock: event` (recorded events: the rules
/// run on the events' timestamps, see `alert::clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    Wall,
    Event,
}

/// The alert engine's metrics.
#[derive(Clone)]
pub(crate) struct AlertMetrics {
    pub firing: IntGaugeVec,
    pub(crate) notifications: IntCounterVec,
    pub(crate) reloads: IntCounterVec,
    pub(crate) inhibited: IntCounter,
    pub(crate) groups_refused: IntCounter,
}

impl AlertMetrics {
    pub(crate) fn register(telemetry: &Telemetry) -> Self {
        AlertMetrics {
            firing: telemetry.gauge_vec("alerts_firing", "Alerts firing now, by tier", &["tier"]),
            notifications: telemetry.counter_vec(
                "alert_notifications_total",
                "Alert notifications by receiver and outcome (sent, retried)",
                &["receiver", "outcome"],
            ),
            reloads: telemetry.counter_vec(
                "alert_rule_reloads_total",
                "Rule set reloads by outcome (applied, rejected)",
                &["outcome"],
            ),
            inhibited: telemetry.counter(
                "alerts_inhibited_total",
                "Warnings not sent because a critical alert with the same group labels was firing",
            ),
            groups_refused: telemetry.counter(
                "alert_groups_refused_total",
                "Events that would have opened a group past a rule's max_groups",
            ),
        }
    }
}

impl AlertsConfig {
    /// The step, with the engine's evaluation task and receivers started as a
    /// service of the run. Must run inside the Tokio runtime.
    pub(crate) fn build(&self, name: &str, cx: &mut BuildContext) -> anyhow::Result<RunningStep> {
        let service = AlertService::start(self, cx.telemetry())?;
        let step = RunningStep::new(Box::new(service.step(name)), cx.telemetry());
        cx.add_service(Box::new(service));
        Ok(step)
    }

    /// Where the alerts go, for the start-up banner.
    pub(crate) fn describe_receivers(&self) -> Vec<String> {
        self.receivers
            .iter()
            .map(|(name, receiver, _)| format!("alerts ({name}): {}", receiver.describe()))
            .collect()
    }
}

impl AlertsConfig {
    /// Reads the step's keys and loads its rules; a relative `rules` path is found
    /// from `base`.
    pub(crate) fn decode(map: &mut MapReader<'_>, base: &Path, cx: &mut Diagnostics) -> Option<Self> {
        let rules_text: Option<String> = map.required("rules", cx);
        let evaluation_interval = map.or("evaluation_interval", Duration::from_secs(1), cx);
        if evaluation_interval < Duration::from_millis(100) {
            cx.error(map.key_pos("evaluation_interval"), "evaluation_interval must be at least 100ms");
        }
        let max_groups = map.or("max_groups", 1000usize, cx);
        if max_groups == 0 {
            cx.error(map.key_pos("max_groups"), "max_groups must be at least 1");
        }
        let repeat_interval = map.or("repeat_interval", Policy::default().repeat_interval, cx);
        let (group_wait, group_interval) = decode_warning(map.node("warning"), cx);
        let digest_at_minute = decode_info(map.node("info"), cx);
        let reload = map.or("reload", true, cx);
        let flush_timeout = map.or("flush_timeout", Duration::from_secs(10), cx);
        let clock = match map.node("clock") {
            Some(n) => {
                crate::decode::one_of(n, &[("wall", ClockMode::Wall), ("event", ClockMode::Event)], cx)
                    .unwrap_or(ClockMode::Wall)
            }
            None => ClockMode::Wall,
        };
        let receivers = match map.node("receivers") {
            Some(n) => ReceiverConfig::decode_list(n, cx),
            None => {
                cx.error(map.pos(), "the alerts step needs `receivers` (alertmanager, webhook, file or log)");
                Vec::new()
            }
        };
        let rules_path = base.join(rules_text?);
        let rules = match rule::load(&rules_path) {
            Ok(rules) => {
                if let Err(e) = super::engine::Engine::check(&rules) {
                    cx.error(map.key_pos("rules"), e.to_string());
                }
                rules
            }
            Err(errors) => {
                errors.0.into_iter().for_each(|e| cx.push(e));
                return None;
            }
        };
        let policy = Policy { repeat_interval, group_wait, group_interval, digest_at_minute };
        Some(AlertsConfig {
            rules_path,
            rules,
            evaluation_interval,
            max_groups,
            policy,
            receivers,
            reload,
            flush_timeout,
            clock,
        })
    }
}

fn decode_warning(node: Option<&Node>, cx: &mut Diagnostics) -> (Duration, Duration) {
    let defaults = Policy::default();
    let Some(node) = node else { return (defaults.group_wait, defaults.group_interval) };
    let Some(mut map) = MapReader::new(node, "warning", cx) else {
        return (defaults.group_wait, defaults.group_interval);
    };
    let wait = map.or("group_wait", defaults.group_wait, cx);
    let interval = map.or("group_interval", defaults.group_interval, cx);
    for (key, value) in [("group_wait", wait), ("group_interval", interval)] {
        if value > WARNING_RESPONSE {
            cx.error(
                map.key_pos(key),
                format!("{key} must be at most 15m: warnings are due within 15 minutes"),
            );
        }
    }
    map.finish(cx);
    (wait, interval)
}

/// `info: {digest_at: "09:00"}`, a UTC time of day.
fn decode_info(node: Option<&Node>, cx: &mut Diagnostics) -> u32 {
    let default = Policy::default().digest_at_minute;
    let Some(node) = node else { return default };
    let Some(mut map) = MapReader::new(node, "info", cx) else { return default };
    let text: Option<String> = map.optional("digest_at", cx);
    let pos = map.key_pos("digest_at");
    map.finish(cx);
    let Some(text) = text else { return default };
    let parsed =
        text.split_once(':').and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
    match parsed {
        Some((h, m)) if h < 24 && m < 60 => h * 60 + m,
        _ => {
            cx.error(pos, format!("digest_at must be a UTC time of day such as \"09:00\", got `{text}`"));
            default
        }
    }
}

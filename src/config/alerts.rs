//! The `alerts` step's config: where the rules are, how often they are evaluated,
//! the tiers' timing and the receivers. The rules are loaded here too, so
//! `validate` reports a rule's mistakes with their place in the rule file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::decode::{one_of, Diagnostics, MapReader};
use super::yaml::{Node, NodeKind};
use crate::alert::notify::{Policy, WARNING_RESPONSE};
use crate::alert::receiver::ReceiverConfig;
use crate::alert::rule::{self, Rule};

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// A rule file or a directory of them.
    pub rules_path: PathBuf,
    /// The rules as loaded at startup.
    pub rules: Vec<Rule>,
    pub evaluation_interval: Duration,
    /// Groups per rule; more are refused and counted.
    pub max_groups: usize,
    pub policy: Policy,
    pub receivers: Vec<(String, ReceiverConfig)>,
    /// Watch the rules and swap in valid changes while running.
    pub reload: bool,
    /// On shutdown, how long receivers may take to deliver what is left.
    pub flush_timeout: Duration,
}

pub(super) fn decode_alerts_step(
    map: &mut MapReader<'_>,
    base: &Path,
    cx: &mut Diagnostics,
) -> Option<AlertsConfig> {
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
    let receivers = match map.node("receivers") {
        Some(n) => decode_receivers(n, cx),
        None => {
            cx.error(map.pos(), "the alerts step needs `receivers` (alertmanager, webhook, file or log)");
            Vec::new()
        }
    };
    let rules_path = base.join(rules_text?);
    let rules = match rule::load(&rules_path) {
        Ok(rules) => {
            if let Err(e) = crate::alert::engine::Engine::check(&rules) {
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
    })
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

fn decode_receivers(node: &Node, cx: &mut Diagnostics) -> Vec<(String, ReceiverConfig)> {
    #[derive(Clone, Copy)]
    enum Kind {
        Alertmanager,
        Webhook,
        File,
        Log,
    }
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(node.pos, format!("receivers must be a list, got {}", node.describe()));
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(node.pos, "receivers is empty: alerts would go nowhere (use `{type: log}` at least)");
    }
    let mut out: Vec<(String, ReceiverConfig)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("receiver {}", i + 1);
        let Some(mut map) = MapReader::new(item, &what, cx) else { continue };
        let kinds = [
            ("alertmanager", Kind::Alertmanager),
            ("webhook", Kind::Webhook),
            ("file", Kind::File),
            ("log", Kind::Log),
        ];
        let kind = match map.node("type") {
            Some(n) => one_of(n, &kinds, cx),
            None => {
                cx.error(map.pos(), format!("{what} is missing required key `type`"));
                None
            }
        };
        let name: Option<String> = map.optional("name", cx);
        let timeout =
            |map: &mut MapReader<'_>, cx: &mut Diagnostics| map.or("timeout", Duration::from_secs(10), cx);
        let config = match kind {
            Some(Kind::Alertmanager) => {
                let url: Option<String> = map.required("url", cx);
                let resend_interval = map.or("resend_interval", Duration::from_secs(60), cx);
                let timeout = timeout(&mut map, cx);
                url.map(|url| ReceiverConfig::Alertmanager { url, resend_interval, timeout })
            }
            Some(Kind::Webhook) => {
                let url: Option<String> = map.required("url", cx);
                let timeout = timeout(&mut map, cx);
                url.map(|url| ReceiverConfig::Webhook { url, timeout })
            }
            Some(Kind::File) => {
                let path: Option<String> = map.required("path", cx);
                path.map(|p| ReceiverConfig::File { path: PathBuf::from(p) })
            }
            Some(Kind::Log) => Some(ReceiverConfig::Log),
            None => None,
        };
        map.finish(cx);
        let Some(config) = config else { continue };
        let name = name.unwrap_or_else(|| format!("{}_{}", config.kind(), i + 1));
        if out.iter().any(|(n, _)| *n == name) {
            cx.error(item.pos, format!("receiver name `{name}` is used twice"));
        }
        out.push((name, config));
    }
    out
}

//! From evaluations to notifications, by tier:
//!
//! - **critical**: each alert is sent in the evaluation that fires or resolves it;
//! - **warning**: alerts that fire or resolve are held and sent together, once the
//!   oldest has waited `group_wait` and the last warning notification is
//!   `group_interval` old (both ≤ 15 minutes, the spec's response time);
//! - **info**: collected into one digest a day, at `digest_at` (UTC).
//!
//! A firing alert is sent again every `repeat_interval` (critical alone, warnings
//! with the next group, info in every digest). A firing critical inhibits the
//! warnings whose group labels it shares: they are not sent while it fires.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::engine::{Alert, Evaluation};
use super::rule::Tier;

/// The spec's response time for warnings.
pub(crate) const WARNING_RESPONSE: Duration = Duration::from_secs(15 * 60);
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) repeat_interval: Duration,
    pub(crate) group_wait: Duration,
    pub(crate) group_interval: Duration,
    /// Minutes after midnight UTC.
    pub(crate) digest_at_minute: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            repeat_interval: Duration::from_secs(4 * 3600),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            digest_at_minute: 9 * 60,
        }
    }
}

/// One message to every receiver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    pub(crate) tier: Tier,
    /// The daily info digest (or its early flush at shutdown).
    pub(crate) digest: bool,
    /// Firing alerts, and resolved ones (with `ends_at_ms`).
    pub(crate) alerts: Vec<Alert>,
}

impl Notification {
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }
}

struct Known {
    last_sent_ms: Option<i64>,
    inhibited: bool,
}

pub(crate) struct Dispatcher {
    policy: Policy,
    known: HashMap<u128, Known>,
    warnings: BTreeMap<u128, Alert>,
    oldest_warning_ms: Option<i64>,
    last_warning_flush_ms: Option<i64>,
    digest: BTreeMap<u128, Alert>,
    next_digest_ms: Option<i64>,
    /// Warnings held back by a firing critical, over the run.
    pub(crate) inhibited_total: u64,
}

impl Dispatcher {
    pub(crate) fn new(policy: Policy) -> Self {
        Dispatcher {
            policy,
            known: HashMap::new(),
            warnings: BTreeMap::new(),
            oldest_warning_ms: None,
            last_warning_flush_ms: None,
            digest: BTreeMap::new(),
            next_digest_ms: None,
            inhibited_total: 0,
        }
    }

    /// Takes one evaluation; returns what is due now.
    pub(crate) fn step(&mut self, evaluation: Evaluation, now_ms: i64) -> Vec<Notification> {
        let mut out = Vec::new();
        let repeat_ms = self.policy.repeat_interval.as_millis() as i64;
        let criticals: Vec<&Alert> = evaluation.firing.iter().filter(|a| a.tier == Tier::Critical).collect();
        for alert in &evaluation.firing {
            let inhibited = alert.tier == Tier::Warning && criticals.iter().any(|c| inhibits(c, alert));
            let known =
                self.known.entry(alert.fingerprint).or_insert(Known { last_sent_ms: None, inhibited: false });
            if inhibited {
                if !known.inhibited {
                    self.inhibited_total += 1;
                }
                known.inhibited = true;
                self.warnings.remove(&alert.fingerprint);
                continue;
            }
            known.inhibited = false;
            if alert.tier == Tier::Info {
                self.digest.insert(alert.fingerprint, alert.clone());
                continue;
            }
            let due = known.last_sent_ms.is_none_or(|at| now_ms - at >= repeat_ms);
            if !due {
                continue;
            }
            known.last_sent_ms = Some(now_ms);
            match alert.tier {
                Tier::Critical => out.push(Notification {
                    tier: Tier::Critical,
                    digest: false,
                    alerts: vec![alert.clone()],
                }),
                _ => self.queue_warning(alert.clone(), now_ms),
            }
        }
        for alert in evaluation.resolved {
            let Some(known) = self.known.remove(&alert.fingerprint) else { continue };
            match alert.tier {
                Tier::Critical if known.last_sent_ms.is_some() => {
                    out.push(Notification { tier: Tier::Critical, digest: false, alerts: vec![alert] });
                }
                // Never sent (inhibited throughout): nothing to take back.
                Tier::Critical => {}
                Tier::Warning if known.last_sent_ms.is_some() => self.queue_warning(alert, now_ms),
                Tier::Warning => {}
                Tier::Info => {
                    self.digest.insert(alert.fingerprint, alert);
                }
            }
        }
        out.extend(self.due_warnings(now_ms));
        out.extend(self.due_digest(now_ms));
        out
    }

    /// Everything held, sent now (at shutdown: nothing waits for a timer that
    /// will not come).
    pub(crate) fn flush(&mut self) -> Vec<Notification> {
        let mut out = Vec::new();
        if !self.warnings.is_empty() {
            out.push(self.take_warnings());
        }
        if !self.digest.is_empty() {
            out.push(Notification {
                tier: Tier::Info,
                digest: true,
                alerts: std::mem::take(&mut self.digest).into_values().collect(),
            });
        }
        out
    }

    fn queue_warning(&mut self, alert: Alert, now_ms: i64) {
        self.warnings.insert(alert.fingerprint, alert);
        self.oldest_warning_ms.get_or_insert(now_ms);
    }

    fn take_warnings(&mut self) -> Notification {
        self.oldest_warning_ms = None;
        Notification {
            tier: Tier::Warning,
            digest: false,
            alerts: std::mem::take(&mut self.warnings).into_values().collect(),
        }
    }

    fn due_warnings(&mut self, now_ms: i64) -> Option<Notification> {
        if self.warnings.is_empty() {
            // All that waited was inhibited: the next warning waits its own group_wait.
            self.oldest_warning_ms = None;
            return None;
        }
        let oldest = self.oldest_warning_ms?;
        let waited = now_ms - oldest >= self.policy.group_wait.as_millis() as i64;
        let spaced = self
            .last_warning_flush_ms
            .is_none_or(|last| now_ms - last >= self.policy.group_interval.as_millis() as i64);
        if !(waited && spaced) {
            return None;
        }
        self.last_warning_flush_ms = Some(now_ms);
        Some(self.take_warnings())
    }

    fn due_digest(&mut self, now_ms: i64) -> Option<Notification> {
        let next = *self
            .next_digest_ms
            .get_or_insert_with(|| next_time_of_day(now_ms, self.policy.digest_at_minute));
        if now_ms < next {
            return None;
        }
        self.next_digest_ms = Some(next_time_of_day(now_ms, self.policy.digest_at_minute));
        if self.digest.is_empty() {
            return None;
        }
        // Resolved alerts leave with this digest; firing ones come back in the next.
        let alerts: Vec<Alert> = std::mem::take(&mut self.digest).into_values().collect();
        Some(Notification { tier: Tier::Info, digest: true, alerts })
    }
}

/// A critical inhibits a warning when the warning has group labels and the
/// critical carries every one of them with the same value.
fn inhibits(critical: &Alert, warning: &Alert) -> bool {
    !warning.group.is_empty() && warning.group.iter().all(|(k, v)| critical.labels.get(k) == Some(v))
}

/// The first moment after `now_ms` at `minute` minutes past midnight UTC.
pub(crate) fn next_time_of_day(now_ms: i64, minute: u32) -> i64 {
    let midnight = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let today = midnight + i64::from(minute) * 60_000;
    if today > now_ms {
        today
    } else {
        today + DAY_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, tier: Tier, component: &str) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), rule.to_string());
        labels.insert("severity".to_string(), tier.as_str().to_string());
        labels.insert("component".to_string(), component.to_string());
        let mut hash = crate::fields::KeyHash::default();
        for (k, v) in &labels {
            hash.add(k.as_bytes());
            hash.add(v.as_bytes());
        }
        Alert {
            rule: rule.to_string(),
            tier,
            fingerprint: hash.finish(),
            labels,
            group: vec![("component".to_string(), component.to_string())],
            annotations: BTreeMap::new(),
            value: 1.0,
            starts_at_ms: 0,
            ends_at_ms: None,
        }
    }

    fn firing(alerts: &[Alert]) -> Evaluation {
        Evaluation { firing: alerts.to_vec(), ..Evaluation::default() }
    }

    #[test]
    fn critical_goes_at_once_and_repeats_on_the_interval() {
        let mut d = Dispatcher::new(Policy { repeat_interval: Duration::from_secs(60), ..Policy::default() });
        let a = alert("Down", Tier::Critical, "mesh");
        assert_eq!(d.step(firing(std::slice::from_ref(&a)), 0).len(), 1);
        assert!(
            d.step(firing(std::slice::from_ref(&a)), 30_000).is_empty(),
            "deduplicated within the interval"
        );
        assert_eq!(d.step(firing(std::slice::from_ref(&a)), 60_000).len(), 1, "repeated");
        let mut resolved = a.clone();
        resolved.ends_at_ms = Some(61_000);
        let out = d.step(Evaluation { resolved: vec![resolved], ..Evaluation::default() }, 61_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].alerts[0].ends_at_ms, Some(61_000));
    }

    #[test]
    fn warnings_wait_and_go_together() {
        let policy = Policy {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            ..Policy::default()
        };
        let mut d = Dispatcher::new(policy);
        let a = alert("Slow", Tier::Warning, "consensus");
        let b = alert("Slow", Tier::Warning, "swarm");
        assert!(d.step(firing(std::slice::from_ref(&a)), 0).is_empty());
        assert!(d.step(firing(&[a.clone(), b.clone()]), 10_000).is_empty());
        let out = d.step(firing(&[a.clone(), b.clone()]), 30_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].alerts.len(), 2, "one notification for both");
        // A third one waits for the group interval after the first flush.
        let c = alert("Errors", Tier::Warning, "bridge");
        assert!(d.step(firing(&[a.clone(), b.clone(), c.clone()]), 60_000).is_empty());
        assert!(d.step(firing(&[a.clone(), b.clone(), c.clone()]), 300_000).is_empty());
        let out = d.step(firing(&[a, b, c]), 330_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].alerts.len(), 1);
    }

    #[test]
    fn a_critical_inhibits_warnings_of_its_group() {
        let mut d = Dispatcher::new(Policy { group_wait: Duration::ZERO, ..Policy::default() });
        let down = alert("Down", Tier::Critical, "consensus");
        let slow = alert("Slow", Tier::Warning, "consensus");
        let other = alert("Slow", Tier::Warning, "swarm");
        let out = d.step(firing(&[down, slow, other]), 0);
        let sent: Vec<(&str, &str)> = out
            .iter()
            .flat_map(|n| n.alerts.iter())
            .map(|a| (a.rule.as_str(), a.labels["component"].as_str()))
            .collect();
        assert_eq!(sent, vec![("Down", "consensus"), ("Slow", "swarm")]);
        assert_eq!(d.inhibited_total, 1);
    }

    #[test]
    fn a_warning_after_an_inhibited_one_waits_its_own_group_wait() {
        let mut d = Dispatcher::new(Policy { group_wait: Duration::from_secs(30), ..Policy::default() });
        let slow = alert("Slow", Tier::Warning, "consensus");
        assert!(d.step(firing(std::slice::from_ref(&slow)), 0).is_empty(), "queued");
        let down = alert("Down", Tier::Critical, "consensus");
        let out = d.step(firing(&[down.clone(), slow]), 10_000);
        assert_eq!(out.len(), 1, "only the critical: {out:?}");
        let other = alert("Slow", Tier::Warning, "swarm");
        assert!(
            d.step(firing(&[down.clone(), other.clone()]), 40_000).is_empty(),
            "waits from 40 s, not 0 s"
        );
        assert_eq!(d.step(firing(&[down, other]), 70_000).len(), 1);
    }

    #[test]
    fn info_goes_into_the_daily_digest() {
        let mut d = Dispatcher::new(Policy { digest_at_minute: 9 * 60, ..Policy::default() });
        let day = 20_000 * DAY_MS;
        let trend = alert("Trend", Tier::Info, "swarm");
        assert!(d.step(firing(std::slice::from_ref(&trend)), day + 3_600_000).is_empty());
        assert!(d.step(firing(std::slice::from_ref(&trend)), day + 8 * 3_600_000).is_empty());
        let out = d.step(firing(std::slice::from_ref(&trend)), day + 9 * 3_600_000);
        assert_eq!(out.len(), 1);
        assert!(out[0].digest);
        assert!(d.step(firing(&[trend]), day + 10 * 3_600_000).is_empty(), "next digest tomorrow");
        assert_eq!(next_time_of_day(day + 10 * 3_600_000, 9 * 60), day + DAY_MS + 9 * 3_600_000);
    }
}

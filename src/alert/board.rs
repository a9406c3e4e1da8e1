//! The alerts firing now, as the last evaluation found them: what the HTTP API
//! (`/api/alerts`), the status page and `top` show. One board per process (a
//! process runs one pipeline); bounded to [`MAX_SHOWN`] alerts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::engine::Alert;
use super::rule::Tier;

/// Alerts kept on the board; the count of all is kept beside them.
const MAX_SHOWN: usize = 500;

#[derive(Debug, Clone, serde::Serialize)]
pub struct FiringAlert {
    pub rule: String,
    pub tier: Tier,
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    pub value: Option<f64>,
    /// When it started firing (Unix ms).
    pub since_ms: i64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Board {
    /// Firing alerts of all tiers (the list below may hold fewer).
    pub total: usize,
    pub alerts: Vec<FiringAlert>,
    /// When it was last evaluated (Unix ms, on the engine's clock).
    pub evaluated_ms: Option<i64>,
}

static BOARD: Mutex<Option<Board>> = Mutex::new(None);

/// Puts an evaluation's firing alerts on the board: critical first, then by rule.
pub(crate) fn publish(firing: &[Alert], now_ms: i64) {
    let mut alerts: Vec<FiringAlert> = firing
        .iter()
        .take(MAX_SHOWN)
        .map(|a| FiringAlert {
            rule: a.rule.clone(),
            tier: a.tier,
            labels: a.labels.clone(),
            summary: a.annotations.get("summary").cloned(),
            value: a.value.is_finite().then_some(a.value),
            since_ms: a.starts_at_ms,
        })
        .collect();
    alerts.sort_by(|a, b| (a.tier, &a.rule, &a.labels).cmp(&(b.tier, &b.rule, &b.labels)));
    let board = Board { total: firing.len(), alerts, evaluated_ms: Some(now_ms) };
    *BOARD.lock().unwrap_or_else(|p| p.into_inner()) = Some(board);
}

/// The board as last published (empty before the first evaluation, or without
/// an alerts step).
pub fn current() -> Board {
    BOARD.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

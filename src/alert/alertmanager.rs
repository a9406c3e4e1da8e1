//! The Prometheus Alertmanager receiver: alerts posted to its v2 API
//! (`POST /api/v2/alerts`). Alertmanager deduplicates alerts with identical label
//! sets, so two instances posting the same alert yield one; an alert is resolved
//! by posting it again with `endsAt` in the past.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::tls::{describe_http_error, HttpEndpoint};

#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error("Alertmanager at `{url}`: {message}")]
    Request { url: String, message: String },
    #[error("Alertmanager at `{url}` answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

/// One alert as Alertmanager takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identify the alert: `alertname`, `severity` (the tier) and the group labels.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: SystemTime,
    /// Set when resolved (a past time resolves it at once).
    pub ends_at: Option<SystemTime>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
}

pub struct AlertmanagerClient {
    client: reqwest::Client,
    endpoint: HttpEndpoint,
    /// The v2 alerts URL, and the same without credentials for messages.
    url: String,
    shown_url: String,
}

impl AlertmanagerClient {
    /// `endpoint.url` is Alertmanager's address, e.g. `http://127.0.0.1:9093`.
    pub fn new(endpoint: &HttpEndpoint) -> Result<Self, AlertmanagerError> {
        let url = format!("{}/api/v2/alerts", endpoint.url.trim_end_matches('/'));
        let shown_url = crate::decode::secret::display_url(&url);
        let client = endpoint
            .client("alertmanager receiver")
            .map_err(|e| AlertmanagerError::Request { url: shown_url.clone(), message: e.to_string() })?;
        Ok(AlertmanagerClient { client, endpoint: endpoint.clone(), url, shown_url })
    }

    /// Posts the alerts in one request; an error means "try again".
    pub async fn post(&self, alerts: &[Alert]) -> Result<(), AlertmanagerError> {
        let wire: Vec<Wire<'_>> = alerts
            .iter()
            .map(|a| Wire {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: humantime::format_rfc3339_millis(a.starts_at).to_string(),
                ends_at: a.ends_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            })
            .collect();
        // Serializing strings and maps cannot fail.
        let body = serde_json::to_vec(&wire).unwrap_or_default();
        let request = self.client.post(&self.url).header("content-type", "application/json").body(body);
        let response = self.endpoint.with_headers(request).send().await.map_err(|e| {
            AlertmanagerError::Request { url: self.shown_url.clone(), message: describe_http_error(e) }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = crate::sink::response_excerpt(response).await;
        Err(AlertmanagerError::Status { url: self.shown_url.clone(), status: status.as_u16(), body })
    }
}

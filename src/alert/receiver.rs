//! Receivers: where notifications go — Alertmanager (v2 API), a webhook (JSON), a
//! file (JSON lines) or the log. Each receiver has its own task and outbox: a
//! notification stays in the outbox until the receiver takes it, retried with
//! backoff, so a receiver that is down loses nothing and delays no other.
//! Alertmanager's outbox keeps the latest state of each alert (all it needs), so
//! a long outage does not grow it beyond the number of alerts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::mpsc;

use super::alertmanager::{self, AlertmanagerClient};
use super::engine::{format_value, Alert};
use super::notify::Notification;
use crate::breaker::{Breaker, BreakerConfig};
use crate::buffer::disk::DiskQueue;
use crate::buffer::{BufferConfig, BufferKind};
use crate::decode::yaml::{Node, NodeKind};
use crate::decode::{one_of, Diagnostics, MapReader};
use crate::seal::Sealer;
use crate::tls::{describe_http_error, HttpEndpoint};

/// How a receiver's notifications wait and are retried: in memory (the default)
/// or in a disk outbox that survives a restart, behind a circuit breaker.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ReceiverDelivery {
    /// The disk outbox: its directory, size and encryption.
    pub(crate) outbox: Option<(PathBuf, u64, Option<Sealer>)>,
    pub(crate) breaker: BreakerConfig,
}

impl ReceiverDelivery {
    fn decode(map: &mut MapReader<'_>, owner: &str, cx: &mut Diagnostics) -> ReceiverDelivery {
        let outbox = match map.node("buffer").and_then(|n| BufferConfig::decode(n, owner, cx)) {
            // Alerts are never dropped and always synced: `when_full` and `fsync`
            // do not apply to an outbox.
            Some(BufferConfig { kind: BufferKind::Disk { path, max_bytes, encryption, .. }, .. }) => {
                Some((path, max_bytes, encryption))
            }
            _ => None,
        };
        let breaker =
            map.node("circuit_breaker").and_then(|n| BreakerConfig::decode(n, owner, cx)).unwrap_or_default();
        ReceiverDelivery { outbox, breaker }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverConfig {
    Alertmanager {
        endpoint: HttpEndpoint,
        /// Firing alerts are posted again this often: Alertmanager resolves an
        /// alert whose `endsAt` passes, and `endsAt` is set to 4 × this.
        resend_interval: Duration,
    },
    Webhook {
        endpoint: HttpEndpoint,
    },
    File {
        path: PathBuf,
        /// Each notification written as one sealed frame.
        encryption: Option<Sealer>,
    },
    Log,
}

impl ReceiverConfig {
    /// The alerts step's `receivers` list: at least one, names unique (a receiver
    /// without a name is called `<type>_<position>`).
    pub(crate) fn decode_list(
        node: &Node,
        cx: &mut Diagnostics,
    ) -> Vec<(String, ReceiverConfig, ReceiverDelivery)> {
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
        let mut out: Vec<(String, ReceiverConfig, ReceiverDelivery)> = Vec::new();
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
            let config = match kind {
                Some(Kind::Alertmanager) => {
                    let endpoint = HttpEndpoint::decode(&mut map, &what, "url", cx);
                    let resend_interval = map.or("resend_interval", Duration::from_secs(60), cx);
                    endpoint.map(|endpoint| ReceiverConfig::Alertmanager { endpoint, resend_interval })
                }
                Some(Kind::Webhook) => HttpEndpoint::decode(&mut map, &what, "url", cx)
                    .map(|endpoint| ReceiverConfig::Webhook { endpoint }),
                Some(Kind::File) => {
                    let path: Option<String> = map.required("path", cx);
                    let encryption = Sealer::decode_key(&mut map, &what, cx);
                    path.map(|p| ReceiverConfig::File { path: PathBuf::from(p), encryption })
                }
                Some(Kind::Log) => Some(ReceiverConfig::Log),
                None => None,
            };
            let delivery = ReceiverDelivery::decode(&mut map, &what, cx);
            map.finish(cx);
            let Some(config) = config else { continue };
            let name = name.unwrap_or_else(|| format!("{}_{}", config.kind(), i + 1));
            if out.iter().any(|(n, _, _)| *n == name) {
                cx.error(item.pos, format!("receiver name `{name}` is used twice"));
            }
            out.push((name, config, delivery));
        }
        out
    }

    /// Where the alerts go, for the start-up banner.
    pub(crate) fn describe(&self) -> String {
        match self {
            ReceiverConfig::Alertmanager { endpoint, .. } => {
                format!("Alertmanager at {}", endpoint.shown_url())
            }
            ReceiverConfig::Webhook { endpoint } => format!("webhook {}", endpoint.shown_url()),
            ReceiverConfig::File { path, .. } => path.display().to_string(),
            ReceiverConfig::Log => "the log".to_string(),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Alertmanager { .. } => "alertmanager",
            ReceiverConfig::Webhook { .. } => "webhook",
            ReceiverConfig::File { .. } => "file",
            ReceiverConfig::Log => "log",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiverError {
    #[error(transparent)]
    Alertmanager(#[from] alertmanager::AlertmanagerError),
    #[error("webhook `{url}`: {message}")]
    Webhook { url: String, message: String },
    #[error("alert file `{path}`: {message}")]
    File { path: String, message: String },
    #[error("{message}")]
    Outbox { message: String },
}

/// Counters of one receiver.
#[derive(Clone)]
pub(crate) struct ReceiverCounters {
    pub(crate) sent: IntCounter,
    pub(crate) retries: IntCounter,
    /// The circuit breaker's state (`receiver_circuit_state`).
    pub(crate) circuit: prometheus::IntGauge,
}

/// The notification as JSON: the shape of Alertmanager's webhook payload plus the tier.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireNotification<'a> {
    version: &'static str,
    receiver: &'a str,
    tier: &'static str,
    digest: bool,
    status: &'static str,
    alerts: Vec<WireAlert<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    value: String,
    fingerprint: String,
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(crate) fn to_json(receiver: &str, n: &Notification) -> Vec<u8> {
    let firing = n.alerts.iter().any(|a| a.ends_at_ms.is_none());
    let wire = WireNotification {
        version: "1",
        receiver,
        tier: n.tier.as_str(),
        digest: n.digest,
        status: if firing { "firing" } else { "resolved" },
        alerts: n
            .alerts
            .iter()
            .map(|a| WireAlert {
                status: if a.ends_at_ms.is_some() { "resolved" } else { "firing" },
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: rfc3339(a.starts_at_ms),
                ends_at: a.ends_at_ms.map(rfc3339),
                value: format_value(a.value),
                fingerprint: format!("{:032x}", a.fingerprint),
            })
            .collect(),
    };
    // Serializing strings and maps cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

enum Target {
    Alertmanager {
        client: AlertmanagerClient,
        resend_interval: Duration,
        /// What Alertmanager holds as firing (re-posted every `resend_interval`).
        active: HashMap<u128, Alert>,
    },
    Webhook {
        client: reqwest::Client,
        endpoint: HttpEndpoint,
    },
    File {
        path: PathBuf,
        encryption: Option<Sealer>,
    },
    Log,
}

/// What waits for a receiver. Alertmanager only needs each alert's latest state,
/// so its outbox keeps one entry per alert and an outage grows it no further than
/// the number of alerts; the others get every notification, in order.
enum Outbox {
    Latest(BTreeMap<u128, Alert>),
    Queue(VecDeque<Arc<Notification>>),
}

impl Outbox {
    fn push(&mut self, n: Arc<Notification>) {
        match self {
            Outbox::Latest(latest) => {
                for a in &n.alerts {
                    latest.insert(a.fingerprint, a.clone());
                }
            }
            Outbox::Queue(queue) => queue.push_back(n),
        }
    }

    fn len(&self) -> usize {
        match self {
            Outbox::Latest(latest) => latest.len(),
            Outbox::Queue(queue) => queue.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) struct ReceiverTask {
    name: String,
    target: Target,
    rx: mpsc::UnboundedReceiver<Arc<Notification>>,
    outbox: Outbox,
    /// The outbox on disk, when configured: every notification is written (and
    /// synced) there before it is queued, and confirmed once the outbox is empty.
    durable: Option<Arc<DiskQueue>>,
    breaker: Breaker,
    counters: ReceiverCounters,
}

impl ReceiverTask {
    pub(crate) fn new(
        name: &str,
        config: &ReceiverConfig,
        delivery: &ReceiverDelivery,
        rx: mpsc::UnboundedReceiver<Arc<Notification>>,
        counters: ReceiverCounters,
    ) -> Result<Self, ReceiverError> {
        let target = match config {
            ReceiverConfig::Alertmanager { endpoint, resend_interval } => Target::Alertmanager {
                client: AlertmanagerClient::new(endpoint)?,
                resend_interval: *resend_interval,
                active: HashMap::new(),
            },
            ReceiverConfig::Webhook { endpoint } => Target::Webhook {
                client: endpoint.client("webhook receiver").map_err(|e| ReceiverError::Webhook {
                    url: endpoint.shown_url(),
                    message: e.to_string(),
                })?,
                endpoint: endpoint.clone(),
            },
            ReceiverConfig::File { path, encryption } => {
                Target::File { path: path.clone(), encryption: encryption.clone() }
            }
            ReceiverConfig::Log => Target::Log,
        };
        let mut outbox = match target {
            Target::Alertmanager { .. } => Outbox::Latest(BTreeMap::new()),
            _ => Outbox::Queue(VecDeque::new()),
        };
        let durable = match &delivery.outbox {
            Some((path, max_bytes, encryption)) => {
                let queue = DiskQueue::open(path, *max_bytes)
                    .map_err(|e| ReceiverError::Outbox { message: e.to_string() })?
                    .with_sealer(encryption.clone());
                let restored = restore(&queue, &mut outbox, name)?;
                if restored > 0 {
                    tracing::info!(receiver = %name, notifications = restored, "notifications queued before the restart will be delivered");
                }
                Some(Arc::new(queue))
            }
            None => None,
        };
        let breaker = Breaker::new(name, delivery.breaker.clone(), counters.circuit.clone());
        Ok(ReceiverTask { name: name.to_string(), target, rx, outbox, durable, breaker, counters })
    }

    /// Queues a notification; with a disk outbox, once it is written and synced.
    async fn accept(&mut self, n: Arc<Notification>) {
        if let Some(queue) = &self.durable {
            let queue = queue.clone();
            let record = serde_json::to_vec(&*n).unwrap_or_default();
            let stored = tokio::task::spawn_blocking(move || match queue.append(&record)? {
                crate::buffer::disk::Appended::Written => queue.sync().map(|()| true),
                crate::buffer::disk::Appended::Full => Ok(false),
            })
            .await;
            match stored {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::error!(receiver = %self.name, "the disk outbox is full; this notification is queued in memory only")
                }
                Ok(Err(e)) => {
                    tracing::error!(receiver = %self.name, error = %e, "cannot write the disk outbox; this notification is queued in memory only")
                }
                Err(e) => tracing::error!(receiver = %self.name, error = %e, "disk outbox task failed"),
            }
        }
        self.outbox.push(n);
    }

    /// Everything in the outbox was delivered: the disk outbox is confirmed up to
    /// its last record (a crash before this delivers some again, never none).
    async fn confirm_delivered(&self) {
        let Some(queue) = &self.durable else { return };
        let queue = queue.clone();
        let confirmed = tokio::task::spawn_blocking(move || {
            let mut last = None;
            while let (Some(record), _) = queue.next()? {
                last = Some(record.seq);
            }
            match last {
                Some(seq) => queue.delivered(seq),
                None => Ok(()),
            }
        })
        .await;
        if !matches!(confirmed, Ok(Ok(()))) {
            tracing::warn!(receiver = %self.name, "cannot confirm the disk outbox; its notifications may be sent again after a restart");
        }
    }

    /// Delivers until the sender side closes and the outbox is empty.
    pub(crate) async fn run(mut self) {
        let resend = match &self.target {
            Target::Alertmanager { resend_interval, .. } => Some(*resend_interval),
            _ => None,
        };
        let mut resend_timer = tokio::time::interval(resend.unwrap_or(Duration::from_secs(3600)));
        resend_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resend_timer.tick().await;
        let mut closed = false;
        loop {
            if !self.outbox.is_empty() {
                self.breaker.before_attempt();
                match self.deliver_next().await {
                    Ok(()) => {
                        self.counters.sent.inc();
                        self.breaker.success();
                        if self.outbox.is_empty() {
                            self.confirm_delivered().await;
                        }
                    }
                    Err(e) => {
                        self.counters.retries.inc();
                        let wait = self.breaker.failure(&format!("{e} ({} queued)", self.outbox.len()));
                        // Keep taking new notifications while waiting, so none is lost.
                        let wait = tokio::time::sleep(wait);
                        tokio::pin!(wait);
                        loop {
                            tokio::select! {
                                _ = &mut wait => break,
                                n = self.rx.recv(), if !closed => match n {
                                    Some(n) => self.accept(n).await,
                                    None => closed = true,
                                },
                            }
                        }
                    }
                }
                continue;
            }
            if closed {
                return;
            }
            tokio::select! {
                n = self.rx.recv() => match n {
                    Some(n) => self.accept(n).await,
                    None => closed = true,
                },
                _ = resend_timer.tick(), if resend.is_some() => self.resend().await,
            }
        }
    }

    /// Delivers what is first in the outbox (for Alertmanager: all of it, in one
    /// request); it leaves the outbox only once delivered.
    async fn deliver_next(&mut self) -> Result<(), ReceiverError> {
        match (&mut self.target, &mut self.outbox) {
            (Target::Alertmanager { client, resend_interval, active }, Outbox::Latest(latest)) => {
                let now = crate::clock::now_ms();
                let alerts: Vec<alertmanager::Alert> =
                    latest.values().map(|a| to_alertmanager(a, now, *resend_interval)).collect();
                client.post(&alerts).await?;
                for (fingerprint, a) in std::mem::take(latest) {
                    match a.ends_at_ms {
                        None => active.insert(fingerprint, a),
                        Some(_) => active.remove(&fingerprint),
                    };
                }
                Ok(())
            }
            (_, Outbox::Queue(queue)) => {
                let Some(next) = queue.front().cloned() else { return Ok(()) };
                self.deliver(&next).await?;
                if let Outbox::Queue(queue) = &mut self.outbox {
                    queue.pop_front();
                }
                Ok(())
            }
            // Alertmanager always has the `Latest` outbox (set in `new`).
            (_, Outbox::Latest(_)) => Ok(()),
        }
    }

    async fn deliver(&self, n: &Notification) -> Result<(), ReceiverError> {
        match &self.target {
            // Delivered through `deliver_next` from its own outbox.
            Target::Alertmanager { .. } => Ok(()),
            Target::Webhook { client, endpoint } => {
                let body = to_json(&self.name, n);
                let request = client.post(endpoint.url.as_str()).header("content-type", "application/json");
                let response = endpoint.with_headers(request).body(body).send().await.map_err(|e| {
                    ReceiverError::Webhook { url: endpoint.shown_url(), message: describe_http_error(e) }
                })?;
                match response.status() {
                    s if s.is_success() => Ok(()),
                    s => Err(ReceiverError::Webhook {
                        url: endpoint.shown_url(),
                        message: format!("answered HTTP {}", s.as_u16()),
                    }),
                }
            }
            Target::File { path, encryption } => {
                let mut line = to_json(&self.name, n);
                line.push(b'\n');
                if let Some(sealer) = encryption {
                    line = sealer.seal(&line);
                }
                let file_error = |e: std::io::Error| ReceiverError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                };
                let mut file = crate::files::open_append_private(path).map_err(file_error)?;
                file.write_all(&line).map_err(file_error)?;
                Ok(())
            }
            Target::Log => {
                for a in &n.alerts {
                    let status = if a.ends_at_ms.is_some() { "resolved" } else { "firing" };
                    let summary = a.annotations.get("summary").map(String::as_str).unwrap_or("");
                    tracing::warn!(alert = %a.rule, tier = n.tier.as_str(), status, labels = ?a.labels, summary, "alert");
                }
                Ok(())
            }
        }
    }

    /// Posts every alert Alertmanager holds as firing again, with a new `endsAt`.
    async fn resend(&mut self) {
        let Target::Alertmanager { client, resend_interval, active } = &self.target else { return };
        if active.is_empty() || !self.outbox.is_empty() {
            return;
        }
        let now = crate::clock::now_ms();
        let alerts: Vec<alertmanager::Alert> =
            active.values().map(|a| to_alertmanager(a, now, *resend_interval)).collect();
        if let Err(e) = client.post(&alerts).await {
            self.counters.retries.inc();
            tracing::warn!(receiver = %self.name, error = %e, "re-posting firing alerts failed; will retry on the next interval");
        }
    }
}

/// Reads a disk outbox back into `outbox` (without confirming anything); how
/// many notifications it held.
fn restore(queue: &DiskQueue, outbox: &mut Outbox, name: &str) -> Result<usize, ReceiverError> {
    let mut restored = 0;
    loop {
        let (record, losses) = queue.next().map_err(|e| ReceiverError::Outbox { message: e.to_string() })?;
        for (damage, n) in losses.0 {
            tracing::error!(receiver = %name, reason = damage.label(), records = n, "skipped damaged records in the disk outbox");
        }
        let Some(record) = record else { return Ok(restored) };
        match serde_json::from_slice::<Notification>(&record.payload) {
            Ok(n) => {
                outbox.push(Arc::new(n));
                restored += 1;
            }
            Err(e) => {
                tracing::error!(receiver = %name, error = %e, "skipped an unreadable notification in the disk outbox")
            }
        }
    }
}

fn to_alertmanager(a: &Alert, now_ms: i64, resend: Duration) -> alertmanager::Alert {
    let mut annotations = a.annotations.clone();
    annotations.insert("value".to_string(), format_value(a.value));
    let ends_at = match a.ends_at_ms {
        Some(end) => system_time(end),
        None => system_time(now_ms) + resend * 4,
    };
    alertmanager::Alert {
        labels: a.labels.clone(),
        annotations,
        starts_at: system_time(a.starts_at_ms),
        ends_at: Some(ends_at),
    }
}

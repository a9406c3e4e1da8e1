//! The audit trail: one JSON line per security-relevant action, in its own file
//! (sealed like the other files when `encryption` is set):
//!
//! ```json
//! {"time":"2026-11-30T17:00:00.000Z","actor":"local","action":"config.loaded","target":"config/prod.yaml","outcome":"ok","detail":{…}}
//! ```
//!
//! Recorded: the config loaded at start, plugin swaps and rollbacks (with both
//! hashes), rule reloads and rejections, authentication failures on the HTTP
//! server, and every read of data the server offers (`/metrics`, `/ready`).
//! `actor` is the token's name for a request, `local` for what the process does
//! on its own. The trail is process-wide: components record without being handed
//! a writer, and a run without an `audit` section records nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::Serialize;

use crate::decode::yaml::Node;
use crate::decode::{Diagnostics, MapReader};
use crate::seal::Sealer;

#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    pub(crate) path: PathBuf,
    pub(crate) encryption: Option<Sealer>,
}

impl AuditConfig {
    /// The optional top-level `audit` section.
    pub(crate) fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> Option<AuditConfig> {
        let mut map = MapReader::new(node?, "audit", cx)?;
        let path: Option<String> = map.required("path", cx);
        let encryption = Sealer::decode_key(&mut map, "audit", cx);
        map.finish(cx);
        Some(AuditConfig { path: PathBuf::from(path?), encryption })
    }
}

/// An open audit file.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
    sealer: Option<Sealer>,
    path: PathBuf,
}

#[derive(Serialize)]
struct Entry<'a> {
    time: String,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    detail: serde_json::Value,
}

fn current() -> &'static RwLock<Option<Arc<AuditLog>>> {
    static CURRENT: OnceLock<RwLock<Option<Arc<AuditLog>>>> = OnceLock::new();
    CURRENT.get_or_init(|| RwLock::new(None))
}

/// Opens the audit file (appending, 0640) and makes it the process's trail
/// until the returned session is dropped.
pub fn open(config: &AuditConfig) -> std::io::Result<AuditSession> {
    let file = crate::files::open_append_private(&config.path)?;
    let log =
        AuditLog { file: Mutex::new(file), sealer: config.encryption.clone(), path: config.path.clone() };
    let mut slot = current().write().unwrap_or_else(|p| p.into_inner());
    *slot = Some(Arc::new(log));
    Ok(AuditSession(()))
}

/// Keeps the trail open; dropping it (at the end of a run) closes it.
pub struct AuditSession(());

impl Drop for AuditSession {
    fn drop(&mut self) {
        close();
    }
}

fn close() {
    let mut slot = current().write().unwrap_or_else(|p| p.into_inner());
    *slot = None;
}

/// Records one action. Never fails the caller: a trail that cannot be written
/// is logged as an error (every time, so the operator sees it persists).
pub fn record(actor: &str, action: &str, target: &str, outcome: &str, detail: serde_json::Value) {
    let Some(log) = current().read().unwrap_or_else(|p| p.into_inner()).clone() else { return };
    let entry = Entry {
        time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        actor,
        action,
        target,
        outcome,
        detail,
    };
    let mut line = serde_json::to_vec(&entry).unwrap_or_default();
    line.push(b'\n');
    if let Some(sealer) = &log.sealer {
        line = sealer.seal(&line);
    }
    let mut file = log.file.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = file.write_all(&line) {
        tracing::error!(path = %log.path.display(), error = %e, action, "cannot write the audit log");
    }
}

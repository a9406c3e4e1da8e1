//! The right to deletion: one subject's events removed from everything the
//! pipeline keeps — file sinks' archives (rotated and per-class/day files
//! included), the dead-letter file, disk buffers — and from Elasticsearch by a
//! delete-by-query; the request and its outcome go to the audit trail.
//!
//! A subject is `FIELD=VALUE` with the field under `data`, `tags` or `context`
//! (`data.agent_id=agent-017`), as on the consent list. An event is the subject's
//! when that field holds the value. A dead letter is the subject's when the input
//! it holds (`raw`, `raw_base64`, or a truncated record's `head`) has the value as
//! a string anywhere: bad input has no trustworthy field positions, so any
//! mention counts. A line that is not JSON at all is the subject's when it holds
//! the value as a JSON string (`"agent-017"`).
//!
//! Files are rewritten whole (a new file beside the old, synced, renamed over it),
//! never edited in place: a crash leaves the old file or the new one. Sealed files
//! are opened frame by frame and every kept frame sealed again; a frame that fails
//! its check leaves its file untouched and the outcome incomplete. In a running
//! process the file sinks wait while files are rewritten and then reopen them
//! ([`crate::files::archive_gate`]); disk buffers are rewritten under their own
//! lock.
//!
//! A sink retrying a buffer record it took before the rewrite reads it again
//! (`DiskQueue::reread`) instead of sending the old copy. What deletion cannot
//! reach: events between source and sinks at the moment of the request (a batch
//! in flight, a write under way). Put the subject on the consent list first so no
//! new valid events of theirs are kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::buffer::disk::DiskQueue;
use crate::buffer::BufferKind;
use crate::fields::parse_subject;
use crate::seal::Sealer;
use crate::sink::elasticsearch::ElasticsearchSinkConfig;
use crate::sink::file_split::PathTemplate;
use crate::sink::{OutputConfig, SinkConfig};

/// The longest line read from an archive: longer ones leave their file untouched
/// (the pipeline never writes such lines; the bound keeps memory bounded).
const MAX_LINE: usize = 64 << 20;

/// One subject: `FIELD=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    field: String,
    path: Vec<String>,
    value: String,
    /// The value as a JSON string (`"agent-017"`): what text is searched for.
    quoted: String,
}

impl Subject {
    /// Parses `data.agent_id=agent-017`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Subject, String> {
        let (field, value) = parse_subject(text)?;
        let path = field.split('.').map(str::to_string).collect();
        let quoted = serde_json::Value::from(value).to_string();
        Ok(Subject { field: field.to_string(), path, value: value.to_string(), quoted })
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    /// SHA-256 of the value, hex: what the audit trail records instead of it.
    pub fn value_digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.value.as_bytes()))
    }

    fn is_value(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => *s == self.value,
            Value::Number(n) => n.to_string() == self.value,
            _ => false,
        }
    }

    /// Whether a document holds the value at the subject's field.
    fn at_field(&self, doc: &Value) -> bool {
        let mut at = doc;
        for key in &self.path {
            match at.get(key) {
                Some(next) => at = next,
                None => return false,
            }
        }
        self.is_value(at)
    }

    /// Whether the value is any string (or number) in a document: a walk with an
    /// explicit stack (serde_json bounds the nesting to 128 when parsing).
    fn anywhere(&self, doc: &Value) -> bool {
        let mut stack = vec![doc];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => stack.extend(map.values()),
                Value::Array(items) => stack.extend(items.iter()),
                other if self.is_value(other) => return true,
                _ => {}
            }
        }
        false
    }

    /// Whether text holds the value as a JSON string: anywhere in it when it is JSON
    /// (escapes decoded), else as `"VALUE"` in the text.
    fn in_text(&self, text: &str) -> bool {
        if let Ok(doc) = serde_json::from_str::<Value>(text) {
            return self.anywhere(&doc);
        }
        text.contains(&self.quoted)
    }

    /// Whether one output line (an event or a dead letter) is the subject's.
    pub fn owns_line(&self, line: &[u8]) -> bool {
        let doc = match serde_json::from_slice::<Value>(line) {
            Ok(doc @ Value::Object(_)) => doc,
            _ => {
                return memchr::memmem::find(line, self.quoted.as_bytes()).is_some();
            }
        };
        if self.at_field(&doc) {
            return true;
        }
        // A dead letter: the input it carries.
        for key in ["raw", "head"] {
            if let Some(Value::String(held)) = doc.get(key) {
                if self.in_text(held) {
                    return true;
                }
            }
        }
        if let Some(Value::String(encoded)) = doc.get("raw_base64") {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                if self.in_text(&String::from_utf8_lossy(&bytes)) {
                    return true;
                }
            }
        }
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForgetError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}; the file was left as it is")]
    Unreadable { path: String, message: String },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ForgetError + '_ {
    move |source| ForgetError::Io { path: path.display().to_string(), source }
}

/// Whether a line as read (with its newline, if any) is the subject's; blank
/// lines are nobody's.
fn owned(subject: &Subject, line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    !body.is_empty() && subject.owns_line(body)
}

/// Lines of `text` (each with its newline) that are not the subject's, and how
/// many were removed.
fn keep_lines(subject: &Subject, text: &[u8], kept: &mut Vec<u8>) -> u64 {
    let mut removed = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        if owned(subject, line) {
            removed += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    removed
}

/// Rewrites one file without the subject's lines; the number removed. A file with
/// none is not touched.
pub(crate) fn rewrite_file(
    path: &Path,
    subject: &Subject,
    sealer: Option<&Sealer>,
) -> Result<u64, ForgetError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let tmp = temporary_name(path);
    let _ = std::fs::remove_file(&tmp);
    let mut out =
        crate::files::private_options().write(true).create_new(true).open(&tmp).map_err(io_error(&tmp))?;
    let result = match sealer {
        Some(sealer) => copy_sealed(file, &mut out, path, subject, sealer),
        None => copy_lines(file, &mut out, path, subject),
    }
    .and_then(|removed| out.sync_all().map(|()| removed).map_err(io_error(path)));
    match result {
        Ok(0) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(0)
        }
        Ok(removed) => {
            std::fs::rename(&tmp, path).map_err(io_error(path))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
            }
            Ok(removed)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `dir/.name.forget` beside the file (same file system, so the rename is atomic).
fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.forget"))
}

fn copy_lines(
    file: impl Read,
    out: &mut impl Write,
    path: &Path,
    subject: &Subject,
) -> Result<u64, ForgetError> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut removed = 0;
    loop {
        line.clear();
        let read =
            (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE {
            return Err(ForgetError::Unreadable {
                path: path.display().to_string(),
                message: format!("a line longer than {MAX_LINE} bytes"),
            });
        }
        if owned(subject, &line) {
            removed += 1;
        } else {
            out.write_all(&line).map_err(io_error(path))?;
        }
    }
    Ok(removed)
}

fn copy_sealed(
    mut file: impl Read,
    out: &mut impl Write,
    path: &Path,
    subject: &Subject,
    sealer: &Sealer,
) -> Result<u64, ForgetError> {
    let unreadable = |message: String| ForgetError::Unreadable { path: path.display().to_string(), message };
    let mut removed = 0;
    let mut frame = Vec::new();
    let mut offset = 0u64;
    let mut index = 0u64;
    loop {
        let mut header = [0u8; crate::seal::FRAME_HEADER];
        match read_full(&mut file, &mut header).map_err(io_error(path))? {
            0 => break,
            n if n < header.len() => return Err(unreadable(format!("a frame cut short at byte {offset}"))),
            _ => {}
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > crate::seal::MAX_FRAME {
            return Err(unreadable(format!("a frame of {len} bytes at byte {offset}")));
        }
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(header.len() + len, 0);
        if read_full(&mut file, &mut frame[header.len()..]).map_err(io_error(path))? < len {
            return Err(unreadable(format!("a frame cut short at byte {offset}")));
        }
        index += 1;
        let (plain, _) = sealer.open_frame(&frame, index, offset).map_err(|e| unreadable(e.to_string()))?;
        offset += frame.len() as u64;
        let mut kept = Vec::with_capacity(plain.len());
        let gone = keep_lines(subject, &plain, &mut kept);
        removed += gone;
        if gone == 0 {
            out.write_all(&frame).map_err(io_error(path))?;
        } else if !kept.is_empty() {
            out.write_all(&sealer.seal(&kept)).map_err(io_error(path))?;
        }
    }
    Ok(removed)
}

/// An archive's bytes without the subject's lines, and how many were removed: what
/// [`rewrite_file`] writes, in memory (for the fuzz target).
pub fn filter_archive(
    input: &[u8],
    subject: &Subject,
    sealer: Option<&Sealer>,
) -> Result<(Vec<u8>, u64), String> {
    let mut out = Vec::new();
    let path = Path::new("<memory>");
    let removed = match sealer {
        Some(sealer) => copy_sealed(input, &mut out, path, subject, sealer),
        None => copy_lines(input, &mut out, path, subject),
    }
    .map_err(|e| e.to_string())?;
    Ok((out, removed))
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a deletion request covers, from a config.
#[derive(Debug, Clone)]
pub struct Targets {
    files: Vec<FileTarget>,
    buffers: Vec<BufferTarget>,
    elasticsearch: Vec<(String, ElasticsearchSinkConfig)>,
}

#[derive(Debug, Clone)]
struct FileTarget {
    sink: String,
    path: PathBuf,
    sealer: Option<Sealer>,
}

#[derive(Debug, Clone)]
struct BufferTarget {
    sink: String,
    dir: PathBuf,
    max_bytes: u64,
    sealer: Option<Sealer>,
}

impl Targets {
    /// What the sinks and the dead-letter sink of a config keep.
    pub fn of(sinks: &[SinkConfig], dead_letter: &SinkConfig) -> Targets {
        let mut targets = Targets { files: Vec::new(), buffers: Vec::new(), elasticsearch: Vec::new() };
        let dead_letter = (crate::sink::DEAD_LETTER.to_string(), dead_letter);
        for (name, sink) in sinks.iter().map(|s| (s.name.clone(), s)).chain(std::iter::once(dead_letter)) {
            match &sink.output {
                OutputConfig::File(file) => targets.files.push(FileTarget {
                    sink: name.clone(),
                    path: file.path.clone(),
                    sealer: file.encryption.clone(),
                }),
                OutputConfig::Elasticsearch(elastic) => {
                    targets.elasticsearch.push((name.clone(), elastic.clone()))
                }
                _ => {}
            }
            if let BufferKind::Disk { path, max_bytes, encryption, .. } = &sink.buffer.kind {
                targets.buffers.push(BufferTarget {
                    sink: name,
                    dir: path.clone(),
                    max_bytes: *max_bytes,
                    sealer: encryption.clone(),
                });
            }
        }
        targets
    }

    /// The disk buffers' directories, to find out whether a pipeline holds them.
    pub fn buffer_dirs(&self) -> impl Iterator<Item = &Path> {
        self.buffers.iter().map(|b| b.dir.as_path())
    }
}

/// How many of the subject's events one place held, or why it could not be done.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Removal {
    pub sink: String,
    /// `file`, `buffer` or `elasticsearch`.
    pub kind: &'static str,
    /// The file, buffer directory or index pattern.
    pub target: String,
    pub removed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A request's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub field: String,
    pub removed: u64,
    /// Every place was done; false when any place reported an error.
    pub complete: bool,
    pub places: Vec<Removal>,
}

/// Removes the subject's events from every place `targets` names and records the
/// request in the audit trail as `actor`'s. Runs blocking file I/O: call it from
/// a thread that may block (the CLI, or `spawn_blocking`).
pub fn forget(
    targets: &Targets,
    subject: &Subject,
    actor: &str,
    runtime: &tokio::runtime::Handle,
) -> Outcome {
    let mut places = Vec::new();
    // Buffers first: what waits there would otherwise reach the outputs later.
    for buffer in &targets.buffers {
        places.push(forget_in_buffer(buffer, subject));
    }
    {
        let _exclusive = crate::files::archive_gate().blocking_write();
        for target in &targets.files {
            let files = PathTemplate::any(&target.path).existing_files();
            for (path, _) in files {
                let result = rewrite_file(&path, subject, target.sealer.as_ref());
                places.push(Removal {
                    sink: target.sink.clone(),
                    kind: "file",
                    target: path.display().to_string(),
                    removed: *result.as_ref().unwrap_or(&0),
                    error: result.err().map(|e| e.to_string()),
                });
            }
        }
        crate::files::archive_rewritten();
    }
    for (sink, config) in &targets.elasticsearch {
        places.push(runtime.block_on(delete_by_query(sink, config, subject)));
    }
    let removed = places.iter().map(|p| p.removed).sum();
    let complete = places.iter().all(|p| p.error.is_none());
    let outcome = Outcome { field: subject.field.clone(), removed, complete, places };
    let detail = serde_json::json!({
        "field": subject.field,
        "value_sha256": subject.value_digest(),
        "removed": removed,
        "places": outcome.places,
    });
    crate::audit::record(actor, "forget", &subject.field, if complete { "ok" } else { "incomplete" }, detail);
    let failed = outcome.places.iter().filter(|p| p.error.is_some()).count();
    tracing::info!(field = %subject.field, removed, failed, "deletion request done");
    outcome
}

fn forget_in_buffer(target: &BufferTarget, subject: &Subject) -> Removal {
    let mut removal = Removal {
        sink: target.sink.clone(),
        kind: "buffer",
        target: target.dir.display().to_string(),
        removed: 0,
        error: None,
    };
    if !target.dir.exists() {
        return removal;
    }
    let queue = match crate::buffer::disk::registered(&target.dir) {
        Some(queue) => queue,
        None => match DiskQueue::open(&target.dir, target.max_bytes) {
            Ok(queue) => Arc::new(queue.with_sealer(target.sealer.clone())),
            Err(e) => {
                removal.error = Some(e.to_string());
                return removal;
            }
        },
    };
    let mut removed = 0;
    let mut edit = |payload: &[u8]| -> Option<Vec<u8>> {
        let (buf, ranges) = crate::sink::task::unpack(payload)?;
        let mut kept = Vec::new();
        let mut kept_ranges = Vec::new();
        let mut gone = 0;
        for range in ranges {
            let line = &buf[range.clone()];
            if subject.owns_line(line) {
                gone += 1;
                continue;
            }
            let start = kept.len();
            kept.extend_from_slice(line);
            kept_ranges.push(start..kept.len());
            kept.push(b'\n');
        }
        removed += gone;
        (gone > 0).then(|| crate::sink::task::pack(kept, &kept_ranges))
    };
    match queue.rewrite(&mut edit) {
        Ok(result) if result.unreadable > 0 => {
            removal.error =
                Some(format!("{} sealed records could not be opened and were kept", result.unreadable))
        }
        Ok(_) => {}
        Err(e) => removal.error = Some(e.to_string()),
    }
    removal.removed = removed;
    removal
}

/// `POST <prefix>*/_delete_by_query` with a term query on the field.
async fn delete_by_query(sink: &str, config: &ElasticsearchSinkConfig, subject: &Subject) -> Removal {
    let pattern = format!("{}*", crate::sink::elasticsearch::index_prefix(&config.index));
    let mut removal = Removal {
        sink: sink.to_string(),
        kind: "elasticsearch",
        target: pattern.clone(),
        removed: 0,
        error: None,
    };
    let result = async {
        let client = config.endpoint.client("elasticsearch sink").map_err(|e| e.to_string())?;
        let url = format!(
            "{}/{pattern}/_delete_by_query?conflicts=proceed&refresh=true&expand_wildcards=open",
            config.endpoint.url.trim_end_matches('/')
        );
        let body = serde_json::json!({"query": {"term": {subject.field.as_str(): subject.value.as_str()}}});
        let response = config
            .endpoint
            .with_headers(client.post(&url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await
            .map_err(crate::tls::describe_http_error)?;
        let status = response.status();
        let text = response.bytes().await.map_err(|e| e.to_string())?;
        if status.as_u16() == 404 {
            // No index matches yet: nothing stored.
            return Ok(0);
        }
        if !status.is_success() {
            return Err(format!("_delete_by_query: HTTP {status}"));
        }
        let answer: Value =
            serde_json::from_slice(&text).map_err(|e| format!("_delete_by_query answer: {e}"))?;
        let deleted = answer["deleted"].as_u64().unwrap_or(0);
        let failures = answer["failures"].as_array().map_or(0, Vec::len);
        if failures > 0 {
            return Err(format!("_delete_by_query: {deleted} deleted, {failures} failures"));
        }
        Ok(deleted)
    }
    .await;
    match result {
        Ok(deleted) => removal.removed = deleted,
        Err(e) => removal.error = Some(e),
    }
    removal
}

#[cfg(test)]
mod tests;

//! A file sink's path with placeholders: `out/{retention}/events-{date}.jsonl`
//! writes each event to the file of its retention class (`tags.retention`) and its
//! day (UTC, from its timestamp), and `delete_after` deletes each class's files
//! once their day is past the class's age, on a timer.
//!
//! A class that is not a plain name (`[a-z0-9_-]`, 1–32 characters) or is absent
//! is written as `unclassified`, so no tag can steer a write outside the sink's
//! directory. A line without a timestamp (a dead letter) is filed under the day it
//! was written.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use synaptic_plugin_sdk::field::{Finder, Scalar};

/// The class of a line without a usable `tags.retention`.
pub(crate) const UNCLASSIFIED: &str = "unclassified";

/// The most files a split sink keeps open; beyond it the open ones are closed
/// (and reopened for append when written again).
pub(crate) const MAX_OPEN_FILES: usize = 32;

/// A path with `{retention}` and/or `{date}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathTemplate {
    text: String,
}

impl PathTemplate {
    /// `None` for a plain path; an error for an unknown placeholder.
    pub(crate) fn parse(path: &str) -> Result<Option<PathTemplate>, String> {
        if !path.contains('{') {
            return Ok(None);
        }
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').ok_or_else(|| format!("`{path}`: `{{` without `}}`"))?;
            let name = &rest[open + 1..open + close];
            if name != "retention" && name != "date" {
                return Err(format!(
                    "`{path}`: unknown placeholder `{{{name}}}` (known: {{retention}}, {{date}})"
                ));
            }
            rest = &rest[open + close + 1..];
        }
        Ok(Some(PathTemplate { text: path.to_string() }))
    }

    pub(crate) fn has(&self, placeholder: &str) -> bool {
        self.text.contains(&format!("{{{placeholder}}}"))
    }

    fn resolve(&self, class: &str, date: &str) -> PathBuf {
        PathBuf::from(self.text.replace("{retention}", class).replace("{date}", date))
    }

    /// The directory above the first placeholder: what deletion walks.
    fn root(&self) -> PathBuf {
        let fixed = &self.text[..self.text.find('{').unwrap_or(self.text.len())];
        match fixed.rfind('/') {
            Some(slash) => PathBuf::from(&fixed[..slash.max(1)]),
            None => PathBuf::from("."),
        }
    }

    /// A pattern matching the paths this template writes, rotated ones included
    /// (`events-2026-01-01-20261125T224331.123Z.jsonl`), capturing class and date.
    fn pattern(&self) -> regex::Regex {
        let (stem, ext) = match self.text.rfind('.') {
            Some(dot) if !self.text[dot..].contains('/') && !self.text[dot..].contains('{') => {
                (&self.text[..dot], &self.text[dot..])
            }
            _ => (self.text.as_str(), ""),
        };
        let mut pattern = String::from("^");
        let mut rest = stem;
        while let Some(open) = rest.find('{') {
            pattern.push_str(&regex::escape(&rest[..open]));
            let close = open + rest[open..].find('}').unwrap_or(0);
            pattern.push_str(match &rest[open + 1..close] {
                "retention" => "(?P<class>[a-z0-9_-]{1,32})",
                _ => "(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})",
            });
            rest = &rest[close + 1..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push_str(r"(?:-[0-9]{8}T[0-9]{6}(?:\.[0-9]+)?Z(?:-[0-9]+)?)?");
        pattern.push_str(&regex::escape(ext));
        pattern.push('$');
        // Built from escaped text and fixed groups: it always compiles.
        regex::Regex::new(&pattern).unwrap_or_else(|e| unreachable!("file sink template pattern: {e}"))
    }
}

/// Splits a batch's lines by the file each belongs to, in their order.
pub(crate) struct Splitter {
    template: PathTemplate,
    finder: Finder,
}

impl Splitter {
    pub(crate) fn new(template: PathTemplate) -> Splitter {
        Splitter {
            template,
            finder: Finder::new(&[["tags", "retention"].as_slice(), ["timestamp"].as_slice()]),
        }
    }

    /// (path, the lines for it, each with its newline), paths in first-seen order.
    pub(crate) fn split(&self, lines: &[&[u8]], now: SystemTime) -> Vec<(PathBuf, Vec<u8>)> {
        let today = utc_date(now);
        let mut groups: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        let mut found: [Option<Scalar<'_>>; 2] = [None, None];
        for line in lines {
            let (class, date) = if self.finder.find(line, &mut found) {
                let class = match &found[0] {
                    Some(Scalar::Text(c)) if is_class_name(c) => c.to_string(),
                    _ => UNCLASSIFIED.to_string(),
                };
                let date = match &found[1] {
                    Some(Scalar::Int(ms)) => date_of_ms(*ms).unwrap_or_else(|| today.clone()),
                    Some(Scalar::Float(ms)) => date_of_ms(*ms as i64).unwrap_or_else(|| today.clone()),
                    _ => today.clone(),
                };
                (class, date)
            } else {
                (UNCLASSIFIED.to_string(), today.clone())
            };
            let path = self.template.resolve(&class, &date);
            let at = *index.entry(path.clone()).or_insert_with(|| {
                groups.push((path, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.extend_from_slice(line);
            groups[at].1.push(b'\n');
        }
        groups
    }
}

pub(crate) fn is_class_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `2026-01-01` for a time.
fn utc_date(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()[..10].to_string()
}

/// The UTC day of a Unix time in milliseconds; `None` outside 1970–9999.
pub(crate) fn date_of_ms(ms: i64) -> Option<String> {
    const YEAR_10000_MS: i64 = 253_402_300_800_000;
    if !(0..YEAR_10000_MS).contains(&ms) {
        return None;
    }
    Some(utc_date(SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)))
}

/// `delete_after`: each class's age, and `*` for the others.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeleteAfter {
    pub(crate) ages: BTreeMap<String, Duration>,
    pub(crate) check_every: Duration,
}

impl DeleteAfter {
    fn age(&self, class: Option<&str>) -> Option<Duration> {
        class.and_then(|c| self.ages.get(c)).or_else(|| self.ages.get("*")).copied()
    }
}

/// Deletes the template's files whose day is past their class's age at `now`:
/// a file of day D goes once D's last moment is older than the age. Returns the
/// deleted paths with their class.
pub(crate) fn enforce(
    template: &PathTemplate,
    rules: &DeleteAfter,
    now: SystemTime,
) -> Vec<(PathBuf, String)> {
    let mut deleted = Vec::new();
    for (path, captures) in template.existing_files() {
        let Some(date) = captures.date.as_deref().and_then(day_start) else { continue };
        let Some(age) = rules.age(captures.class.as_deref()) else { continue };
        let day_end = date + Duration::from_secs(86_400);
        if now.duration_since(day_end).is_ok_and(|past| past >= age) {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted.push((path, captures.class.unwrap_or_else(|| "*".to_string()))),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot delete an expired file")
                }
            }
        }
    }
    deleted
}

/// What a file's name says about its lines.
#[derive(Debug, Default)]
pub(crate) struct FileCaptures {
    pub(crate) class: Option<String>,
    pub(crate) date: Option<String>,
}

impl PathTemplate {
    /// Any path, template or plain: what a file sink writes there.
    pub(crate) fn any(path: &Path) -> PathTemplate {
        PathTemplate { text: path.to_string_lossy().into_owned() }
    }

    /// The files on disk this path writes, rotated ones included: a walk below the
    /// template's root, no deeper than the template itself.
    pub(crate) fn existing_files(&self) -> Vec<(PathBuf, FileCaptures)> {
        let pattern = self.pattern();
        let root = self.root();
        let depth =
            self.text.matches('/').count().saturating_sub(root.to_string_lossy().matches('/').count()) + 1;
        let mut found = Vec::new();
        let mut dirs = vec![(root, 0usize)];
        while let Some((dir, level)) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() {
                    if level < depth {
                        dirs.push((path, level + 1));
                    }
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                // A template without a directory walks `.`, whose entries read `./name`.
                let shown = if self.text.starts_with("./") {
                    path.as_path()
                } else {
                    path.strip_prefix(".").unwrap_or(&path)
                };
                let text = shown.to_string_lossy().into_owned();
                let Some(captures) = pattern.captures(&text) else { continue };
                let captures = FileCaptures {
                    class: captures.name("class").map(|c| c.as_str().to_string()),
                    date: captures.name("date").map(|d| d.as_str().to_string()),
                };
                found.push((path, captures));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

/// The start of a `YYYY-MM-DD` day, UTC.
fn day_start(date: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()
}

/// Runs [`enforce`] at start and every `check_every` until dropped.
pub(crate) struct Enforcer(tokio::task::JoinHandle<()>);

impl Enforcer {
    pub(crate) fn start(
        template: PathTemplate,
        rules: DeleteAfter,
        sink: String,
        deleted: IntCounterVec,
    ) -> Enforcer {
        Enforcer(tokio::spawn(async move {
            loop {
                let (template, walked) = (template.clone(), rules.clone());
                let removed =
                    tokio::task::spawn_blocking(move || enforce(&template, &walked, SystemTime::now()))
                        .await
                        .unwrap_or_default();
                for (path, class) in &removed {
                    tracing::info!(sink = %sink, path = %path.display(), class = %class, "deleted a file past its retention");
                    deleted.with_label_values(&[&sink, class]).inc();
                }
                tokio::time::sleep(rules.check_every).await;
            }
        }))
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_by_class_and_day_and_tags_cannot_escape_the_directory() {
        let template =
            PathTemplate::parse("out/{retention}/events-{date}.jsonl").expect("parses").expect("a template");
        let splitter = Splitter::new(template);
        let lines: Vec<&[u8]> = vec![
            br#"{"timestamp":1767225600000,"tags":{"retention":"high"}}"#,
            br#"{"timestamp":1767225600001,"tags":{"retention":"low"}}"#,
            br#"{"timestamp":1767312000000,"tags":{"retention":"high"}}"#,
            br#"{"timestamp":1767225600002,"tags":{"retention":"../../etc"}}"#,
            br#"{"timestamp":1767225600003}"#,
            br#"{"timestamp":1767225600004,"tags":{"retention":"high"}}"#,
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let groups = splitter.split(&lines, now);
        let paths: Vec<String> = groups.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "out/high/events-2026-01-01.jsonl",
                "out/low/events-2026-01-01.jsonl",
                "out/high/events-2026-01-02.jsonl",
                "out/unclassified/events-2026-01-01.jsonl"
            ]
        );
        assert_eq!(
            groups[0].1.iter().filter(|b| **b == b'\n').count(),
            2,
            "both high lines of the day, in order"
        );
        assert_eq!(groups[3].1.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(PathTemplate::parse("out/{region}.jsonl").is_err());
        assert_eq!(PathTemplate::parse("out/plain.jsonl"), Ok(None));
    }

    #[test]
    fn files_past_their_class_age_are_deleted_on_a_simulated_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("{}/{{retention}}/events-{{date}}.jsonl", dir.path().display());
        let template = PathTemplate::parse(&text).expect("parses").expect("a template");
        let files = [
            "high/events-2026-01-01.jsonl",
            "high/events-2025-09-01.jsonl",
            "low/events-2026-01-01.jsonl",
            "low/events-2025-12-20.jsonl",
            "low/events-2025-12-20-20251221T000000.000Z.jsonl",
            "custom/events-2025-12-01.jsonl",
            "low/notes.txt",
        ];
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, b"{}\n").expect("write");
        }
        let day = Duration::from_secs(86_400);
        let rules = DeleteAfter {
            ages: BTreeMap::from([
                ("high".to_string(), 90 * day),
                ("low".to_string(), 7 * day),
                ("*".to_string(), 30 * day),
            ]),
            check_every: Duration::from_secs(3600),
        };
        // 2026-01-05 12:00 UTC.
        let now = humantime::parse_rfc3339("2026-01-05T12:00:00Z").expect("time");
        let mut deleted: Vec<String> = enforce(&template, &rules, now)
            .into_iter()
            .map(|(p, class)| format!("{} {class}", p.strip_prefix(dir.path()).expect("inside").display()))
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            [
                "custom/events-2025-12-01.jsonl custom",
                "high/events-2025-09-01.jsonl high",
                "low/events-2025-12-20-20251221T000000.000Z.jsonl low",
                "low/events-2025-12-20.jsonl low"
            ]
        );
        for kept in ["high/events-2026-01-01.jsonl", "low/events-2026-01-01.jsonl", "low/notes.txt"] {
            assert!(dir.path().join(kept).exists(), "{kept} kept");
        }
        // A day is kept until its last moment is older than the age.
        let edge = humantime::parse_rfc3339("2026-01-08T23:59:59Z").expect("time");
        assert!(enforce(&template, &rules, edge).is_empty(), "2026-01-01 + 7 days not yet over");
        let over = humantime::parse_rfc3339("2026-01-09T00:00:00Z").expect("time");
        assert_eq!(enforce(&template, &rules, over).len(), 1, "now it is");
    }
}

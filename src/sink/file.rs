//! `file`: JSON Lines appended to a file, rotated by size and by age.
//!
//! A rotated file is renamed `<stem>-<UTC time>.<ext>` beside the live one, so the
//! live path is stable for `tail -F`. A write that fails is cut back to the length
//! before it, so a retry does not leave half a batch behind.
//!
//! A path with `{retention}` and `{date}` writes one file per retention class and
//! day, and `delete_after` deletes them once past their class's age (see
//! [`super::file_split`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::file_split::{DeleteAfter, Enforcer, PathTemplate, Splitter, MAX_OPEN_FILES};
use super::{Encoded, OpenContext, SinkError, SinkKind, Write};
use crate::decode::{ByteSize, Diagnostics, MapReader};
use crate::seal::Sealer;

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub(crate) path: PathBuf,
    /// Start a new file when the current one reaches this size.
    pub(crate) rotate_bytes: Option<u64>,
    /// Start a new file when the current one is this old.
    pub(crate) rotate_interval: Option<std::time::Duration>,
    /// fsync before acknowledging (slower; survives power loss, not just a crash).
    pub(crate) fsync: bool,
    /// Each batch written as one sealed frame (`decrypt` reads the file back).
    pub(crate) encryption: Option<Sealer>,
    /// `path` with `{retention}` / `{date}`: one file per class and day.
    pub(crate) template: Option<PathTemplate>,
    /// Deletes the template's files past their class's age.
    pub(crate) delete_after: Option<DeleteAfter>,
}

impl SinkKind for FileSinkConfig {
    type Output = FileOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let path: Option<String> = map.required("path", cx);
        let rotate_bytes = map.optional::<ByteSize>("rotate_bytes", cx).map(|b| b.0);
        let rotate_interval = map.optional::<std::time::Duration>("rotate_interval", cx);
        let fsync = map.or("fsync", false, cx);
        let encryption = Sealer::decode_key(map, "file sink", cx);
        let path = path?;
        let template = match PathTemplate::parse(&path) {
            Ok(template) => template,
            Err(message) => {
                cx.error(map.key_pos("path"), format!("file sink path {message}"));
                None
            }
        };
        let delete_after = decode_delete_after(map, template.as_ref(), cx);
        let path = PathBuf::from(path);
        // A template's files go under the directory above its first placeholder.
        let checked = match path.to_string_lossy().find('{') {
            Some(at) => PathBuf::from(&path.to_string_lossy()[..at]).join("file"),
            None => path.clone(),
        };
        if let Err(message) = check_writable_dir(&checked) {
            cx.error(map.key_pos("path"), message);
        }
        Some(FileSinkConfig {
            path,
            rotate_bytes,
            rotate_interval,
            fsync,
            encryption,
            template,
            delete_after,
        })
    }

    fn describe(&self) -> String {
        match self.encryption {
            Some(_) => format!("{} (encrypted)", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    async fn open(&self, cx: &OpenContext<'_>) -> Result<FileOutput, SinkError> {
        let Some(template) = &self.template else { return FileOutput::open(self).await };
        let enforcer = self.delete_after.as_ref().map(|rules| {
            let deleted = cx.telemetry.counter_vec(
                "file_retention_deleted_total",
                "Files a file sink deleted past their retention class's age",
                &["sink", "class"],
            );
            Enforcer::start(template.clone(), rules.clone(), cx.sink.to_string(), deleted)
        });
        Ok(FileOutput {
            config: self.clone(),
            file: None,
            size: 0,
            opened: Instant::now(),
            split: Some(Split {
                splitter: Splitter::new(template.clone()),
                outputs: HashMap::new(),
                _enforcer: enforcer,
            }),
            generation: crate::files::archive_generation(),
        })
    }
}

/// `delete_after: {high: 90d, medium: 30d, low: 7d, "*": 30d}` and `delete_check`.
fn decode_delete_after(
    map: &mut MapReader<'_>,
    template: Option<&PathTemplate>,
    cx: &mut Diagnostics,
) -> Option<DeleteAfter> {
    let pos = map.key_pos("delete_after");
    let check_every = map.or("delete_check", std::time::Duration::from_secs(3600), cx);
    let ages: BTreeMap<String, std::time::Duration> = map
        .optional::<BTreeMap<String, String>>("delete_after", cx)?
        .into_iter()
        .filter_map(|(class, age)| match humantime::parse_duration(&age) {
            Ok(age) => Some((class, age)),
            Err(e) => {
                cx.error(pos, format!("file sink delete_after.{class}: `{age}` is not a duration ({e})"));
                None
            }
        })
        .collect();
    if !template.is_some_and(|t| t.has("date")) {
        cx.error(pos, "file sink: `delete_after` needs `{date}` in the path (files are aged by their day)");
        return None;
    }
    Some(DeleteAfter { ages, check_every })
}

/// The files of a path template, opened as they are first written.
pub(crate) struct Split {
    splitter: Splitter,
    outputs: HashMap<PathBuf, FileOutput>,
    _enforcer: Option<Enforcer>,
}

impl Write for FileOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        if let Some(split) = &mut self.split {
            // A failure part-way is retried whole: files already written get those
            // lines again (at-least-once), the others get them once.
            for (path, bytes) in split.splitter.split(&batch.lines(), SystemTime::now()) {
                if !split.outputs.contains_key(&path) {
                    if split.outputs.len() >= MAX_OPEN_FILES {
                        for (_, mut output) in split.outputs.drain() {
                            output.close().await?;
                        }
                    }
                    let config = FileSinkConfig {
                        path: path.clone(),
                        template: None,
                        delete_after: None,
                        ..self.config.clone()
                    };
                    split.outputs.insert(path.clone(), FileOutput::open(&config).await?);
                }
                let Some(output) = split.outputs.get_mut(&path) else { continue };
                match &self.config.encryption {
                    Some(sealer) => output.write(&sealer.seal(&bytes)).await?,
                    None => output.write(&bytes).await?,
                }
            }
            return Ok(());
        }
        match &self.config.encryption {
            Some(sealer) => {
                let sealed = sealer.seal(batch.buf);
                self.write(&sealed).await
            }
            None => self.write(batch.buf).await,
        }
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.close().await
    }
}

/// A file sink creates its directory; this checks that it will be able to.
fn check_writable_dir(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("`{}` is a directory; a file sink needs a file path", path.display()));
    }
    let mut dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    while !dir.exists() {
        dir = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            Err(format!("cannot create `{}`: `{}` is not a directory", path.display(), dir.display()))
        }
        Ok(meta) if meta.permissions().readonly() => {
            Err(format!("cannot write `{}`: `{}` is read-only", path.display(), dir.display()))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot use `{}`: {e}", path.display())),
    }
}

pub(crate) struct FileOutput {
    config: FileSinkConfig,
    /// `None` after a failed reopen: the next write opens the file again, so a
    /// sink whose reopen failed (no descriptors left) heals once it can.
    file: Option<File>,
    size: u64,
    opened: Instant,
    /// With a path template: the files it writes instead of `file`.
    split: Option<Split>,
    /// The archive generation `file` was opened in: a deletion request that
    /// rewrote the archive since (see `forget`) means `file` is a replaced inode.
    generation: u64,
}

impl FileOutput {
    pub(crate) async fn open(config: &FileSinkConfig) -> Result<Self, SinkError> {
        let (file, size) = open_append(&config.path).await?;
        Ok(FileOutput {
            config: config.clone(),
            file: Some(file),
            size,
            opened: Instant::now(),
            split: None,
            generation: crate::files::archive_generation(),
        })
    }

    fn path_str(&self) -> String {
        self.config.path.display().to_string()
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        // A deletion request rewrites files while holding this exclusively; after
        // one, the file is opened again (the old handle is the replaced file).
        let _gate = crate::files::archive_gate().read().await;
        let generation = crate::files::archive_generation();
        if generation != self.generation {
            self.file = None;
            self.generation = generation;
        }
        if self.due_for_rotation(bytes.len() as u64) {
            self.rotate().await?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let (file, size) = open_append(&self.config.path).await?;
                self.size = size;
                self.opened = Instant::now();
                self.file.insert(file)
            }
        };
        let before = self.size;
        let fsync = self.config.fsync;
        let result = async {
            file.write_all(bytes).await?;
            file.flush().await?;
            if fsync {
                file.sync_data().await?;
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Best effort: if even this fails, the retry appends after a partial
                // batch, which at-least-once delivery allows.
                let _ = file.set_len(before).await;
                Err(SinkError::Write { path: self.path_str(), source })
            }
        }
    }

    fn due_for_rotation(&self, incoming: u64) -> bool {
        if self.size == 0 || self.file.is_none() {
            return false;
        }
        let too_big = self.config.rotate_bytes.is_some_and(|max| self.size + incoming > max);
        let too_old = self.config.rotate_interval.is_some_and(|age| self.opened.elapsed() >= age);
        too_big || too_old
    }

    async fn rotate(&mut self) -> Result<(), SinkError> {
        let path = self.path_str();
        if let Some(file) = &mut self.file {
            file.flush().await.map_err(|source| SinkError::Write { path, source })?;
        }
        let target = rotated_name(&self.config.path);
        tokio::fs::rename(&self.config.path, &target)
            .await
            .map_err(|source| SinkError::Write { path: target.display().to_string(), source })?;
        tracing::info!(from = %self.config.path.display(), to = %target.display(), "rotated file sink");
        // From here the old handle points at the rotated file: whatever happens
        // next, it is not written to again.
        self.file = None;
        let (file, size) = open_append(&self.config.path).await?;
        self.file = Some(file);
        self.size = size;
        self.opened = Instant::now();
        Ok(())
    }

    pub(crate) async fn close(&mut self) -> Result<(), SinkError> {
        if let Some(split) = &mut self.split {
            for output in split.outputs.values_mut() {
                Box::pin(output.close()).await?;
            }
            return Ok(());
        }
        let path = self.path_str();
        let Some(file) = &mut self.file else { return Ok(()) };
        file.flush().await.map_err(|source| SinkError::Write { path: path.clone(), source })?;
        file.sync_all().await.map_err(|source| SinkError::Write { path, source })
    }
}

async fn open_append(path: &Path) -> Result<(File, u64), SinkError> {
    let err = |source| SinkError::Open { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(err)?;
    }
    // 0640, and never through a symlink someone placed at the path.
    let file = OpenOptions::from(crate::files::private_options())
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(err)?;
    let size = file.metadata().await.map_err(err)?.len();
    Ok((file, size))
}

/// `out/events.jsonl` → `out/events-20261125T224331.123Z.jsonl` (with `-N` if taken).
fn rotated_name(path: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_millis(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let stem = path.file_stem().map_or_else(|| "events".into(), |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut candidate = dir.join(format!("{stem}-{stamp}{ext}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.join(format!("{stem}-{stamp}-{n}{ext}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_by_size_and_keeps_every_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/events.jsonl");
        let config = FileSinkConfig {
            path: path.clone(),
            rotate_bytes: Some(100),
            rotate_interval: None,
            fsync: false,
            encryption: None,
            template: None,
            delete_after: None,
        };
        let mut out = FileOutput::open(&config).await.expect("open");
        let line = b"0123456789012345678901234567890123456789\n"; // 41 bytes
        for _ in 0..5 {
            out.write(line).await.expect("write");
        }
        out.close().await.expect("close");
        let mut total = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(path.parent().expect("dir")).expect("read dir") {
            let content = std::fs::read(entry.expect("entry").path()).expect("read");
            assert!(content.len() <= 100);
            total += content.len();
            files += 1;
        }
        assert_eq!(total, 5 * line.len());
        assert_eq!(files, 3, "2 + 2 + 1 lines");
    }

    /// The state a rotation leaves when reopening fails (no descriptors left): no
    /// open file. Writes fail while the path cannot be opened, and succeed again,
    /// into a fresh file at the path, once it can: the sink heals by itself.
    #[tokio::test]
    async fn a_failed_reopen_is_repaired_by_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let config = FileSinkConfig {
            path: path.clone(),
            rotate_bytes: None,
            rotate_interval: None,
            fsync: false,
            encryption: None,
            template: None,
            delete_after: None,
        };
        let mut out = FileOutput::open(&config).await.expect("open");
        out.write(b"first\n").await.expect("write");
        std::fs::rename(&path, dir.path().join("rotated.jsonl")).expect("rotate by hand");
        out.file = None;
        std::fs::create_dir(&path).expect("something in the way");
        assert!(out.write(b"second\n").await.is_err(), "cannot open yet");
        std::fs::remove_dir(&path).expect("cleared");
        out.write(b"second\n").await.expect("the retry opens the file again");
        out.close().await.expect("close");
        assert_eq!(std::fs::read(&path).expect("new file"), b"second\n");
        assert_eq!(std::fs::read(dir.path().join("rotated.jsonl")).expect("rotated"), b"first\n");
    }
}

//! The `file` source: JSON Lines from a file, or from standard input with `-`.
//!
//! Input is read in large chunks and split into lines in place: each record is a
//! zero-copy slice of a shared chunk, and the only await points are "read more" and
//! "send a full batch", so the per-line cost is a newline search.
//!
//! Blank lines are skipped (they are not events). A line longer than
//! `limits.max_event_bytes` is not buffered whole: its first bytes are kept for the
//! dead-letter record and the rest is skipped, so one runaway line cannot exhaust
//! memory.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{linger, Emitter, RawRecord, SourceError, SourceReport};
use crate::decode::{Diagnostics, MapReader};
use crate::event::Position;

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// A JSONL file, or `-` for standard input.
    pub(crate) path: String,
}

impl FileSourceConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> FileSourceConfig {
        let path: Option<String> = map.required("path", cx);
        if let Some(p) = &path {
            if p != "-" && !std::path::Path::new(p).is_file() {
                cx.error(map.key_pos("path"), format!("input file `{p}` does not exist or is not a file"));
            }
        }
        FileSourceConfig { path: path.unwrap_or_default() }
    }
}

pub struct FileSource {
    path: String,
    max_event_bytes: usize,
}

impl FileSource {
    pub(crate) fn new(path: &str, max_event_bytes: usize) -> Self {
        FileSource { path: path.to_string(), max_event_bytes }
    }

    pub(crate) async fn run(
        self,
        emitter: &mut Emitter,
        shutdown: CancellationToken,
    ) -> Result<SourceReport, SourceError> {
        let reader: Box<dyn AsyncRead + Unpin + Send> = if self.path == "-" {
            Box::new(tokio::io::stdin())
        } else {
            let file = tokio::fs::File::open(&self.path)
                .await
                .map_err(|source| SourceError::Open { path: self.path.clone(), source })?;
            Box::new(file)
        };
        let name: Arc<str> = Arc::from(if self.path == "-" { "<stdin>" } else { self.path.as_str() });
        let mut splitter = LineSplitter::new(self.max_event_bytes, name);
        let result = self.read(reader, &mut splitter, emitter, &shutdown).await;
        let _ = emitter.flush().await;
        result.map(|()| SourceReport { records: emitter.emitted() })
    }

    async fn read(
        &self,
        mut reader: Box<dyn AsyncRead + Unpin + Send>,
        splitter: &mut LineSplitter,
        emitter: &mut Emitter,
        shutdown: &CancellationToken,
    ) -> Result<(), SourceError> {
        loop {
            while let Some(record) = splitter.next_record() {
                if emitter.push(record).await.is_err() {
                    return Ok(());
                }
            }
            splitter.buf.reserve(CHUNK);
            // `read_buf` is cancel-safe: a read interrupted by the timer or by
            // shutdown has consumed nothing.
            let read = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = linger(emitter.deadline()) => {
                    if emitter.flush().await.is_err() { return Ok(()) }
                    continue;
                }
                read = reader.read_buf(&mut splitter.buf) => {
                    read.map_err(|source| SourceError::Read { path: self.path.clone(), source })?
                }
            };
            if read == 0 {
                if let Some(record) = splitter.finish() {
                    let _ = emitter.push(record).await;
                }
                return Ok(());
            }
        }
    }
}

/// Splits buffered input into records; all state lives here, so reads can be
/// interrupted at any point.
struct LineSplitter {
    buf: BytesMut,
    max: usize,
    name: Arc<str>,
    line_no: u64,
    /// Inside an over-long line: its kept head and its size so far.
    oversize: Option<(Bytes, usize)>,
}

impl LineSplitter {
    fn new(max: usize, name: Arc<str>) -> Self {
        LineSplitter { buf: BytesMut::with_capacity(CHUNK), max, name, line_no: 0, oversize: None }
    }

    /// The next complete record in the buffer, if any.
    fn next_record(&mut self) -> Option<RawRecord> {
        loop {
            let Some(newline) = memchr::memchr(b'\n', &self.buf) else {
                self.absorb_partial_line();
                return None;
            };
            let line = self.buf.split_to(newline + 1).freeze();
            self.line_no += 1;
            if let Some((head, size)) = self.oversize.take() {
                return Some(self.record(head, Some(size + newline)));
            }
            let line = trim_line_end(line);
            if line.len() > self.max {
                let size = line.len();
                return Some(self.record(line.slice(..self.max + 1), Some(size)));
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(self.record(line, None));
            }
        }
    }

    /// A partial line longer than the limit is cut to its head; the rest is only
    /// counted, so the buffer never grows past the limit.
    fn absorb_partial_line(&mut self) {
        match &mut self.oversize {
            Some((_, size)) => {
                *size += self.buf.len();
                self.buf.clear();
            }
            None if self.buf.len() > self.max => {
                let size = self.buf.len();
                let head = self.buf.split_to(self.max + 1).freeze();
                self.buf.clear();
                self.oversize = Some((head, size));
            }
            None => {}
        }
    }

    /// The last line, when the input does not end with a newline.
    fn finish(&mut self) -> Option<RawRecord> {
        if let Some((head, size)) = self.oversize.take() {
            self.line_no += 1;
            return Some(self.record(head, Some(size)));
        }
        let rest = trim_line_end(self.buf.split().freeze());
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        self.line_no += 1;
        Some(self.record(rest, None))
    }

    fn record(&self, bytes: Bytes, oversize: Option<usize>) -> RawRecord {
        RawRecord {
            bytes,
            position: Position::File { path: self.name.clone(), line: self.line_no },
            oversize,
        }
    }
}

fn trim_line_end(mut line: Bytes) -> Bytes {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.truncate(line.len() - 1);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[&[u8]], max: usize) -> Vec<(String, u64, Option<usize>)> {
        let mut s = LineSplitter::new(max, Arc::from("t"));
        let mut out = Vec::new();
        let mut take = |r: RawRecord| {
            let Position::File { line, .. } = r.position else { panic!("file position") };
            out.push((String::from_utf8_lossy(&r.bytes).into_owned(), line, r.oversize));
        };
        for chunk in input {
            s.buf.extend_from_slice(chunk);
            while let Some(r) = s.next_record() {
                take(r);
            }
        }
        if let Some(r) = s.finish() {
            take(r);
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_with_positions() {
        let out = split(&[b"ab", b"c\r\n\n  \nde", b"f\nlast"], 100);
        assert_eq!(out, vec![("abc".into(), 1, None), ("def".into(), 4, None), ("last".into(), 5, None)]);
    }

    #[test]
    fn long_lines_are_cut_to_a_head_and_measured() {
        let out = split(&[b"0123456789", b"abcdef", b"ghij\nok\n"], 8);
        assert_eq!(out, vec![("012345678".into(), 1, Some(20)), ("ok".into(), 2, None)]);
        let out = split(&[b"0123456789abc\nok"], 8);
        assert_eq!(out, vec![("012345678".into(), 1, Some(13)), ("ok".into(), 2, None)]);
    }
}

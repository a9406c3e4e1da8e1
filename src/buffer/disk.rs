//! A queue of records in segment files, for a sink's disk buffer and a receiver's
//! outbox.
//!
//! Layout of a buffer directory:
//! - `<first seq, 20 digits>.seg`: segments, appended to in sequence order. Each
//!   record is a 20-byte header — magic `SYNB`, payload length (u32 LE), sequence
//!   number (u64 LE), CRC-32 of length, sequence and payload (u32 LE) — then the
//!   payload.
//! - `delivered`: the sequence number of the next record to deliver, with its own
//!   CRC. Written after each delivery, not synced: after a crash it may lag, so a
//!   few records are delivered twice, never skipped.
//! - `lock`: held (`flock`) while a process uses the directory.
//!
//! Damage never stops a start. A record whose header or checksum is wrong is
//! skipped and the reader looks for the next valid header (resync); a segment cut
//! short ends at its last whole record; a missing segment shows as a gap in the
//! sequence numbers. Each is counted by reason: `corrupt`, `truncated`, `missing`.
//! With `encryption`, each payload is a sealed frame (`seal.rs`); one whose
//! authentication fails was changed on disk, and is skipped and counted as
//! `tampered`.
//! Space is reclaimed a segment at a time, as soon as the reader has delivered
//! every record in it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::seal::Sealer;

const MAGIC: [u8; 4] = *b"SYNB";
const HEADER: u64 = 20;
/// Bytes scanned per read while looking for the next valid header.
const SCAN_CHUNK: usize = 64 * 1024;
const DIR_MODE: u32 = 0o750;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("disk buffer `{dir}`: {what}: {source}")]
    Io { dir: String, what: &'static str, source: io::Error },
    #[error("disk buffer `{dir}` is in use by another process (its `lock` file is held)")]
    Locked { dir: String },
}

/// Why records were lost, as the `reason` label of `buffer_records_lost_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// A header or checksum that does not match its record (a flipped byte).
    Corrupt,
    /// A record cut short at the end of its segment.
    Truncated,
    /// Sequence numbers missing between two valid records (a deleted segment).
    Missing,
    /// An encrypted record whose authentication failed: changed on disk.
    Tampered,
}

impl Damage {
    pub(crate) const ALL: [Damage; 4] =
        [Damage::Corrupt, Damage::Truncated, Damage::Missing, Damage::Tampered];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Damage::Corrupt => "corrupt",
            Damage::Truncated => "truncated",
            Damage::Missing => "missing",
            Damage::Tampered => "tampered",
        }
    }
}

/// A record read back, to be delivered and then confirmed with [`DiskQueue::delivered`].
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) payload: Vec<u8>,
}

/// What [`DiskQueue::rewrite`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// Records replaced.
    pub(crate) records: u64,
    /// Sealed records that could not be opened, kept as they were.
    pub(crate) unreadable: u64,
}

/// What one `next` call found besides the record: damage skipped on the way.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Losses(pub(crate) Vec<(Damage, u64)>);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Written,
    /// No room: the record was not written.
    Full,
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

struct State {
    /// Oldest first; the writer appends to the last one while `writer` is set.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    /// Bytes in every segment on disk.
    total: u64,
    /// The segment the reader is in, and its offset there.
    read_index: usize,
    read_offset: u64,
    /// Every record below this sequence number was delivered.
    delivered_upto: u64,
    /// The sequence number the reader expects next; `None` until the first record
    /// when the delivered pointer could not be read.
    expected: Option<u64>,
    /// Damage found and not yet counted (counted once the size of the gap is known).
    damage: Option<Damage>,
    records: u64,
}

pub(crate) struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    pointer: File,
    _lock: File,
    /// Seals payloads on the way in and opens them on the way out.
    sealer: Option<Sealer>,
    /// How many [`Self::rewrite`] calls changed a record: a record taken before
    /// one is read again ([`Self::reread`]) rather than sent as it was.
    rewrites: std::sync::atomic::AtomicU64,
}

impl DiskQueue {
    /// Opens (or creates) the buffer in `dir`. Damaged content does not fail the
    /// open; only I/O errors on the directory itself and a lock held by another
    /// process do.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<DiskQueue, DiskError> {
        let err = |what: &'static str| {
            move |source: io::Error| DiskError::Io { dir: dir.display().to_string(), what, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(err("creating the directory"))?;
        let lock = private(OpenOptions::new().read(true).write(true).create(true))
            .open(dir.join("lock"))
            .map_err(err("opening its lock file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DiskError::Locked { dir: dir.display().to_string() })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err("locking it")(e)),
        }
        let pointer = private(OpenOptions::new().read(true).write(true).create(true))
            .open(dir.join("delivered"))
            .map_err(err("opening its delivered pointer"))?;
        let delivered = read_pointer(&pointer);

        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err("listing it"))? {
            let entry = entry.map_err(err("listing it"))?;
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(segment_seq) else { continue };
            found.push((seq, entry.path()));
        }
        found.sort();
        let mut segments = VecDeque::new();
        let mut total = 0;
        for (first_seq, path) in found {
            let file =
                private(OpenOptions::new().read(true)).open(&path).map_err(err("opening a segment"))?;
            let len = file.metadata().map_err(err("reading a segment's size"))?.len();
            if len == 0 {
                // Created and never written: nothing to read, and its name may be
                // the next segment's.
                std::fs::remove_file(&path).map_err(err("removing an empty segment"))?;
                continue;
            }
            total += len;
            segments.push_back(Segment { first_seq, path, file, len });
        }
        let max_record = max_bytes.max(1 << 20);
        let mut next_seq = delivered.unwrap_or(0);
        if let Some(last) = segments.back() {
            // Past every record in the last segment, and past its name even if it
            // holds no valid record (its name must not be taken again).
            let last_valid = last_valid_seq(last, max_record).map_err(err("reading the last segment"))?;
            next_seq = next_seq.max(last.first_seq + 1).max(last_valid.map_or(0, |s| s + 1));
        }
        let state = State {
            segments,
            writer: None,
            next_seq,
            total,
            read_index: 0,
            read_offset: 0,
            delivered_upto: delivered.unwrap_or(0),
            expected: delivered,
            damage: None,
            records: 0,
        };
        let queue = DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes(max_bytes),
            state: Mutex::new(state),
            pointer,
            _lock: lock,
            sealer: None,
            rewrites: std::sync::atomic::AtomicU64::new(0),
        };
        Ok(queue)
    }

    /// Encrypts every record from now on (and decrypts what it reads).
    pub(crate) fn with_sealer(mut self, sealer: Option<Sealer>) -> Self {
        self.sealer = sealer;
        self
    }

    fn io(&self, what: &'static str) -> impl Fn(io::Error) -> DiskError + '_ {
        move |source| DiskError::Io { dir: self.dir.display().to_string(), what, source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state behind (every
        // update is a whole record or none), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes on disk (segments only).
    pub(crate) fn bytes(&self) -> u64 {
        self.lock().total
    }

    /// Appends one record. `Full` when it would take the buffer past `max_bytes`
    /// (an empty buffer takes one record of any size). After `Written` the record
    /// is in the operating system's cache; [`Self::sync`] makes it durable.
    pub(crate) fn append(&self, payload: &[u8]) -> Result<Appended, DiskError> {
        let sealed;
        let payload = match &self.sealer {
            Some(sealer) => {
                sealed = sealer.seal(payload);
                sealed.as_slice()
            }
            None => payload,
        };
        let record_len = HEADER + payload.len() as u64;
        let mut state = self.lock();
        if state.total > 0 && state.total + record_len > self.max_bytes {
            return Ok(Appended::Full);
        }
        let back_len = state.segments.back().map_or(0, |s| s.len);
        if state.writer.is_some() && back_len > 0 && back_len + record_len > self.segment_bytes {
            self.seal(&mut state)?;
        }
        if state.writer.is_none() {
            self.start_segment(&mut state)?;
        }
        let seq = state.next_seq;
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        header[16..].copy_from_slice(&checksum(payload.len() as u32, seq, payload).to_le_bytes());
        let State { writer, segments, .. } = &mut *state;
        let (Some(writer), Some(back)) = (writer.as_mut(), segments.back_mut()) else {
            return Err(self.io("appending")(io::Error::other("no segment to write to")));
        };
        if let Err(e) = write_all_vectored(writer, &header, payload) {
            // Cut the partial record off; if even that fails, write no more to
            // this segment (its tail is left for the reader to skip).
            if writer.set_len(back.len).is_err() {
                state.writer = None;
            }
            return Err(self.io("appending a record")(e));
        }
        back.len += record_len;
        state.total += record_len;
        state.next_seq += 1;
        state.records += 1;
        Ok(Appended::Written)
    }

    /// Makes every record appended so far durable (fsync of the segment being
    /// written; sealed segments were synced when sealed).
    pub(crate) fn sync(&self) -> Result<(), DiskError> {
        let handle = {
            let state = self.lock();
            match &state.writer {
                Some(writer) => writer.try_clone().map_err(self.io("syncing"))?,
                None => return Ok(()),
            }
        };
        handle.sync_data().map_err(self.io("syncing"))
    }

    fn seal(&self, state: &mut State) -> Result<(), DiskError> {
        if let Some(writer) = state.writer.take() {
            writer.sync_data().map_err(self.io("syncing a full segment"))?;
        }
        Ok(())
    }

    fn start_segment(&self, state: &mut State) -> Result<(), DiskError> {
        let path = self.dir.join(format!("{:020}.seg", state.next_seq));
        let writer = private(OpenOptions::new().append(true).create_new(true))
            .open(&path)
            .map_err(self.io("creating a segment"))?;
        let file =
            private(OpenOptions::new().read(true)).open(&path).map_err(self.io("opening a segment"))?;
        // The new name must survive a crash too.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(self.io("syncing the directory"))?;
        state.segments.push_back(Segment { first_seq: state.next_seq, path, file, len: 0 });
        state.writer = Some(writer);
        Ok(())
    }

    /// The next record to deliver, and the damage skipped to reach it; `None` when
    /// the reader has caught up. Records are read in order; a segment is removed
    /// once every record in it is confirmed with [`Self::delivered`].
    pub(crate) fn next(&self) -> Result<(Option<Record>, Losses), DiskError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut losses = Losses::default();
        let max_record = self.max_bytes.max(1 << 20);
        while let Some(segment) = state.segments.get(state.read_index) {
            if state.read_offset >= segment.len {
                if state.read_index + 1 >= state.segments.len() {
                    // The last segment, read to its end: caught up.
                    break;
                }
                state.read_index += 1;
                state.read_offset = 0;
                continue;
            }
            let offset = state.read_offset;
            match read_record(&segment.file, offset, segment.len, max_record).map_err(self.io("reading"))? {
                Ok((seq, payload)) => {
                    state.read_offset = offset + HEADER + payload.len() as u64;
                    let expected = state.expected.unwrap_or(seq);
                    if seq < expected {
                        // Delivered before a restart; damage before it lost nothing.
                        state.damage = None;
                        continue;
                    }
                    let gap = seq - expected;
                    match state.damage.take() {
                        Some(damage) => losses.0.push((damage, gap.max(1))),
                        None if gap > 0 => losses.0.push((Damage::Missing, gap)),
                        None => {}
                    }
                    state.expected = Some(seq + 1);
                    let payload = match &self.sealer {
                        Some(sealer) => match sealer.open_frame(&payload, seq, offset) {
                            Ok((plain, _)) => plain,
                            Err(e) => {
                                tracing::error!(dir = %self.dir.display(), seq, error = %e, "an encrypted buffer record failed its check; skipped");
                                losses.0.push((Damage::Tampered, 1));
                                continue;
                            }
                        },
                        None => payload,
                    };
                    return Ok((Some(Record { seq, payload }), losses));
                }
                Err(damage) => {
                    let resume = find_next_header(&segment.file, offset + 1, segment.len, max_record)
                        .map_err(self.io("reading"))?;
                    state.read_offset = resume.unwrap_or(segment.len);
                    // A record that runs past the end with a valid one after it
                    // was not cut short: its length is damaged.
                    let damage = if resume.is_some() { Damage::Corrupt } else { damage };
                    state.damage.get_or_insert(damage);
                }
            }
        }
        // Caught up: damage at the very end is counted now, as one record, and
        // the next record written is the next one expected.
        if let Some(damage) = state.damage.take() {
            losses.0.push((damage, 1));
        }
        state.expected = Some(state.next_seq);
        Ok((None, losses))
    }

    /// Confirms that every record up to `seq` was delivered: none will be read
    /// again, even after a restart (within the pointer's at-least-once window),
    /// and segments holding only delivered records are removed.
    pub(crate) fn delivered(&self, seq: u64) -> Result<(), DiskError> {
        let next = seq + 1;
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&next.to_le_bytes());
        bytes[8..].copy_from_slice(&crc32fast::hash(&next.to_le_bytes()).to_le_bytes());
        self.pointer.write_all_at(&bytes, 0).map_err(self.io("writing the delivered pointer"))?;
        let mut guard = self.lock();
        let state = &mut *guard;
        state.delivered_upto = state.delivered_upto.max(next);
        // A segment is done when the reader has left it (or read it to the end
        // and no more will be written to it) and every record in it — all below
        // the next segment's first sequence number — was delivered.
        while let Some(front) = state.segments.front() {
            let last = state.segments.len() == 1;
            let reader_done =
                state.read_index > 0 || (state.read_offset >= front.len && state.writer.is_none());
            let bound = state.segments.get(1).map_or(state.next_seq, |s| s.first_seq);
            if !reader_done || bound > state.delivered_upto || (last && state.writer.is_some()) {
                break;
            }
            let Some(done) = state.segments.pop_front() else { break };
            state.total -= done.len;
            if state.read_index > 0 {
                state.read_index -= 1;
            } else {
                state.read_offset = 0;
            }
            std::fs::remove_file(&done.path).map_err(self.io("removing a delivered segment"))?;
        }
        Ok(())
    }

    /// Rewrites the records `edit` changes, in place, for a deletion request:
    /// `edit` gets each valid record's payload (opened, when sealed) and returns a
    /// replacement, or `None` to keep it. Every record keeps its sequence number, so
    /// the reader, the delivered pointer and a restart see the same queue minus what
    /// was removed. A segment is rewritten whole (a new file renamed over the old);
    /// damaged bytes in it are dropped, as the reader would skip them. Records that
    /// cannot be opened (`tampered`) are kept as they are and counted in the result.
    pub(crate) fn rewrite(
        &self,
        edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Rewritten, DiskError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let max_record = self.max_bytes.max(1 << 20);
        let mut result = Rewritten::default();
        for index in 0..state.segments.len() {
            let segment = &state.segments[index];
            let mut out = Vec::new();
            let mut changed = false;
            let mut offset = 0;
            // Where the reader's position lands in the new file.
            let mut new_read_offset = None;
            while offset < segment.len {
                if index == state.read_index && offset >= state.read_offset && new_read_offset.is_none() {
                    new_read_offset = Some(out.len() as u64);
                }
                match read_record(&segment.file, offset, segment.len, max_record)
                    .map_err(self.io("reading"))?
                {
                    Ok((seq, stored)) => {
                        offset += HEADER + stored.len() as u64;
                        let plain = match &self.sealer {
                            Some(sealer) => match sealer.open_frame(&stored, seq, offset) {
                                Ok((plain, _)) => Some(plain),
                                Err(_) => None,
                            },
                            None => Some(stored.clone()),
                        };
                        let replacement = match plain {
                            Some(plain) => edit(&plain),
                            None => {
                                result.unreadable += 1;
                                None
                            }
                        };
                        let payload = match replacement {
                            Some(plain) => {
                                changed = true;
                                result.records += 1;
                                match &self.sealer {
                                    Some(sealer) => sealer.seal(&plain),
                                    None => plain,
                                }
                            }
                            None => stored,
                        };
                        let mut header = [0u8; HEADER as usize];
                        header[..4].copy_from_slice(&MAGIC);
                        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
                        header[8..16].copy_from_slice(&seq.to_le_bytes());
                        header[16..]
                            .copy_from_slice(&checksum(payload.len() as u32, seq, &payload).to_le_bytes());
                        out.extend_from_slice(&header);
                        out.extend_from_slice(&payload);
                    }
                    Err(_) => {
                        changed = true;
                        offset = find_next_header(&segment.file, offset + 1, segment.len, max_record)
                            .map_err(self.io("reading"))?
                            .unwrap_or(segment.len);
                    }
                }
            }
            if !changed {
                continue;
            }
            let path = segment.path.clone();
            let tmp = path.with_extension("seg.rewrite");
            let _ = std::fs::remove_file(&tmp);
            let mut file = private(OpenOptions::new().write(true).create_new(true))
                .open(&tmp)
                .map_err(self.io("writing a rewritten segment"))?;
            file.write_all(&out)
                .and_then(|()| file.sync_all())
                .map_err(self.io("writing a rewritten segment"))?;
            std::fs::rename(&tmp, &path).map_err(self.io("replacing a segment"))?;
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(self.io("syncing the directory"))?;
            let reader =
                private(OpenOptions::new().read(true)).open(&path).map_err(self.io("opening a segment"))?;
            let new_len = out.len() as u64;
            let old_len = segment.len;
            let last = index + 1 == state.segments.len();
            if index == state.read_index {
                state.read_offset = new_read_offset.unwrap_or(new_len);
            }
            state.total = state.total - old_len + new_len;
            let segment = &mut state.segments[index];
            segment.file = reader;
            segment.len = new_len;
            if last && state.writer.is_some() {
                // The writer's handle is the replaced file: append to the new one.
                state.writer = Some(
                    private(OpenOptions::new().append(true))
                        .open(&path)
                        .map_err(self.io("reopening the segment being written"))?,
                );
            }
        }
        if result.records > 0 {
            self.rewrites.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(result)
    }

    /// How many rewrites changed records so far.
    pub(crate) fn rewrites(&self) -> u64 {
        self.rewrites.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The record `seq` as it is on disk now (opened, when sealed); `None` when it
    /// is no longer there or cannot be read. For a record taken before a rewrite.
    pub(crate) fn reread(&self, seq: u64) -> Result<Option<Vec<u8>>, DiskError> {
        let state = self.lock();
        let max_record = self.max_bytes.max(1 << 20);
        let Some(index) = state.segments.iter().rposition(|s| s.first_seq <= seq) else { return Ok(None) };
        let segment = &state.segments[index];
        let mut offset = 0;
        while offset < segment.len {
            match read_record(&segment.file, offset, segment.len, max_record).map_err(self.io("reading"))? {
                Ok((found, stored)) => {
                    let at = offset;
                    offset += HEADER + stored.len() as u64;
                    if found != seq {
                        continue;
                    }
                    return Ok(match &self.sealer {
                        Some(sealer) => sealer.open_frame(&stored, seq, at).ok().map(|(plain, _)| plain),
                        None => Some(stored),
                    });
                }
                Err(_) => match find_next_header(&segment.file, offset + 1, segment.len, max_record)
                    .map_err(self.io("reading"))?
                {
                    Some(next) => offset = next,
                    None => break,
                },
            }
        }
        Ok(None)
    }

    /// Records appended since this process opened the buffer.
    #[cfg(test)]
    pub(crate) fn appended(&self) -> u64 {
        self.lock().records
    }
}

/// The disk buffers this process has open, by directory, so a deletion request
/// can rewrite them under their own lock (no other process can open them).
type OpenQueues = Mutex<Vec<(PathBuf, std::sync::Weak<DiskQueue>)>>;

fn open_queues() -> &'static OpenQueues {
    static QUEUES: std::sync::OnceLock<OpenQueues> = std::sync::OnceLock::new();
    QUEUES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Makes an open buffer findable by [`registered`] while it stays open.
pub(crate) fn register(dir: &Path, queue: &std::sync::Arc<DiskQueue>) {
    let mut queues = open_queues().lock().unwrap_or_else(|p| p.into_inner());
    queues.retain(|(_, q)| q.strong_count() > 0);
    queues.push((dir.to_path_buf(), std::sync::Arc::downgrade(queue)));
}

/// The buffer in `dir` if this process has it open.
pub(crate) fn registered(dir: &Path) -> Option<std::sync::Arc<DiskQueue>> {
    let queues = open_queues().lock().unwrap_or_else(|p| p.into_inner());
    queues.iter().find(|(d, _)| d == dir).and_then(|(_, q)| q.upgrade())
}

/// Writes `header` then `payload` without copying them together.
fn write_all_vectored(writer: &mut File, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut slices = [io::IoSlice::new(header), io::IoSlice::new(payload)];
    let mut left: &mut [io::IoSlice<'_>] = &mut slices;
    while !left.is_empty() {
        match writer.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(0o640).custom_flags(libc::O_NOFOLLOW)
}

/// A segment size that keeps reclaiming steady: an eighth of the buffer, between
/// 64 KiB and 128 MiB.
fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(64 * 1024, 128 << 20)
}

fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

fn read_pointer(file: &File) -> Option<u64> {
    let mut bytes = [0u8; 12];
    file.read_exact_at(&mut bytes, 0).ok()?;
    let seq = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(bytes[8..].try_into().ok()?);
    (crc32fast::hash(&bytes[..8]) == crc).then_some(seq)
}

fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The record at `offset` in a segment of `limit` bytes: `Ok(Ok(..))` when whole
/// and valid, `Ok(Err(damage))` when not. I/O errors are the outer `Err`.
fn read_record(
    file: &File,
    offset: u64,
    limit: u64,
    max_record: u64,
) -> io::Result<Result<(u64, Vec<u8>), Damage>> {
    if limit - offset < HEADER {
        return Ok(Err(Damage::Truncated));
    }
    let mut header = [0u8; HEADER as usize];
    if let Some(damage) = read_at(file, &mut header, offset)? {
        return Ok(Err(damage));
    }
    if header[..4] != MAGIC {
        return Ok(Err(Damage::Corrupt));
    }
    let [_, _, _, _, l0, l1, l2, l3, s0, s1, s2, s3, s4, s5, s6, s7, c0, c1, c2, c3] = header;
    let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    let seq = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len > max_record {
        return Ok(Err(Damage::Corrupt));
    }
    if len > limit - offset - HEADER {
        return Ok(Err(Damage::Truncated));
    }
    let mut payload = vec![0u8; len as usize];
    if let Some(damage) = read_at(file, &mut payload, offset + HEADER)? {
        return Ok(Err(damage));
    }
    if checksum(len as u32, seq, &payload) != crc {
        return Ok(Err(Damage::Corrupt));
    }
    Ok(Ok((seq, payload)))
}

/// Reads exactly `buf.len()` bytes; a file shorter than its recorded length (cut
/// while open) is a truncation, not an I/O failure.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<Option<Damage>> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(Damage::Truncated)),
        Err(e) => Err(e),
    }
}

/// The offset of the next valid record at or after `from`, if any.
fn find_next_header(file: &File, from: u64, limit: u64, max_record: u64) -> io::Result<Option<u64>> {
    let mut chunk = vec![0u8; SCAN_CHUNK];
    let mut at = from;
    while at < limit {
        let n = ((limit - at) as usize).min(SCAN_CHUNK);
        if read_at(file, &mut chunk[..n], at)?.is_some() {
            break;
        }
        let mut search = 0;
        while let Some(found) = memchr::memmem::find(&chunk[search..n], &MAGIC) {
            let candidate = at + (search + found) as u64;
            if read_record(file, candidate, limit, max_record)?.is_ok() {
                return Ok(Some(candidate));
            }
            search += found + 1;
        }
        // Overlap by the magic's length less one, so a header split between two
        // chunks is still found.
        if n < SCAN_CHUNK {
            break;
        }
        at += (n - (MAGIC.len() - 1)) as u64;
    }
    Ok(None)
}

/// The sequence number of the last valid record in `segment`.
fn last_valid_seq(segment: &Segment, max_record: u64) -> io::Result<Option<u64>> {
    let mut offset = 0;
    let mut last = None;
    while offset < segment.len {
        match read_record(&segment.file, offset, segment.len, max_record)? {
            Ok((seq, payload)) => {
                last = Some(seq);
                offset += HEADER + payload.len() as u64;
            }
            Err(_) => match find_next_header(&segment.file, offset + 1, segment.len, max_record)? {
                Some(next) => offset = next,
                None => break,
            },
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests;

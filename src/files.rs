//! Files from and to places the operator shares with others: plugin and rule
//! directories, where anyone who can deploy drops files, and the paths the sinks
//! write to.
//!
//! Reading ([`read_bounded`]): only a regular file, of bounded size, whose real
//! path (links resolved) stays inside the directory it is named in; opened
//! without blocking, so a FIFO or a device is refused instead of read forever.
//! Creating ([`create_private`], [`open_append_private`]): mode 0640 for a new
//! file, and never through a symlink planted at the path.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::decode::ConfigErrors;

/// The largest plugin file read (a WebAssembly component with a language runtime
/// inside, as JavaScript and Python plugins have, runs to tens of MB).
pub(crate) const MAX_PLUGIN_BYTES: u64 = 64 << 20;
/// The largest config, mapping or rule file read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Mode of every file the service creates: owner read/write, group read.
pub(crate) const FILE_MODE: u32 = 0o640;

/// Why a file was not read; each reads after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("does not exist")]
    Missing,
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
    #[error("leads to `{real}`, outside `{dir}` (links may only point within the directory)")]
    Outside { real: PathBuf, dir: PathBuf },
    #[error("is not a regular file (a directory, FIFO, socket or device)")]
    NotRegular,
    #[error("is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => FileError::Missing,
            _ => FileError::Io(e),
        }
    }
}

/// The contents of `path`, a regular file of at most `limit` bytes whose real
/// path is inside the real path of the directory it is named in.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    read(path, limit, true)
}

fn read(path: &Path, limit: u64, confined: bool) -> Result<Vec<u8>, FileError> {
    let (file, meta) = open_checked(path, limit, confined)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never past the limit.
    (&file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Whether `path` would be read by [`read_bounded`], reading nothing.
pub(crate) fn check_readable(path: &Path, limit: u64) -> Result<(), FileError> {
    open_checked(path, limit, true).map(drop)
}

/// Opens `path` as [`read_bounded`] would; `confined: false` leaves out the
/// directory check (a file the operator names on the command line).
fn open_checked(path: &Path, limit: u64, confined: bool) -> Result<(File, std::fs::Metadata), FileError> {
    let real = path.canonicalize()?;
    if confined {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let real_dir = dir.canonicalize()?;
        if !real.starts_with(&real_dir) {
            return Err(FileError::Outside { real, dir: real_dir });
        }
    }
    // No blocking open of a FIFO; no link at the last step (the real path has
    // none, unless one was put there since).
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(&real)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok((file, meta))
}

/// A file as UTF-8 text: [`read_bounded`]'s checks, the directory check only
/// when `confined`.
pub fn read_text(path: &Path, limit: u64, confined: bool) -> Result<String, FileError> {
    let bytes = read(path, limit, confined)?;
    String::from_utf8(bytes)
        .map_err(|e| FileError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))
}

/// Options that create a file 0640 and refuse a symlink at its path.
pub(crate) fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    options
}

/// Opens `path` for appending, creating it 0640; a symlink at `path` is refused.
pub(crate) fn open_append_private(path: &Path) -> std::io::Result<File> {
    private_options().create(true).append(true).open(path)
}

/// Creates or truncates `path`, 0640; a symlink at `path` is refused.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    private_options().create(true).write(true).truncate(true).open(path)
}

/// A config document's text and the name its errors use; an unreadable file is
/// one error naming `what` it was meant to be. Only a regular file of at most
/// 16 MiB is read; `confined`, only one whose links stay in its directory (the
/// files of a directory others drop files into, like `rules/`).
pub(crate) fn read_document(
    path: &Path,
    what: &str,
    confined: bool,
) -> Result<(String, String), ConfigErrors> {
    let name = path.display().to_string();
    match read_text(path, MAX_CONFIG_BYTES, confined) {
        Ok(text) => Ok((text, name)),
        Err(e) => Err(ConfigErrors::file(name, format!("{what} {e}"))),
    }
}

/// Held shared by every file sink write and exclusively while a deletion request
/// rewrites files (`forget`); after one, file sinks reopen their files (their
/// handles are the replaced files), which [`archive_generation`] tells them.
pub(crate) fn archive_gate() -> &'static tokio::sync::RwLock<()> {
    static GATE: std::sync::OnceLock<tokio::sync::RwLock<()>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| tokio::sync::RwLock::new(()))
}

static ARCHIVE_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times files were rewritten under [`archive_gate`].
pub(crate) fn archive_generation() -> u64 {
    ARCHIVE_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

/// Called with [`archive_gate`] held exclusively, after files were replaced.
pub(crate) fn archive_rewritten() {
    ARCHIVE_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    #[test]
    fn regular_files_inside_the_directory_are_read_links_within_it_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.rhai"), b"true").expect("write");
        symlink(dir.path().join("a.rhai"), dir.path().join("b.rhai")).expect("link");
        assert_eq!(read_bounded(&dir.path().join("a.rhai"), 100).expect("read"), b"true");
        assert_eq!(read_bounded(&dir.path().join("b.rhai"), 100).expect("read via link"), b"true");
        assert!(matches!(read_bounded(&dir.path().join("a.rhai"), 3), Err(FileError::TooLarge { limit: 3 })));
    }

    #[test]
    fn links_out_of_the_directory_devices_fifos_and_directories_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        symlink(outside.path().join("secret"), dir.path().join("secret.wasm")).expect("link");
        symlink("/dev/zero", dir.path().join("zero.wasm")).expect("link");
        let err = read_bounded(&dir.path().join("secret.wasm"), 100).expect_err("outside");
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(matches!(read_bounded(&dir.path().join("zero.wasm"), 100), Err(FileError::Outside { .. })));
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 100), Err(FileError::NotRegular)));
        let fifo = dir.path().join("fifo.wasm");
        let c_path = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("no NUL");
        // SAFETY: a valid NUL-terminated path and a plain mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
        assert!(matches!(read_bounded(&fifo, 100), Err(FileError::NotRegular)), "no blocking on a FIFO");
        std::fs::create_dir(dir.path().join("d.wasm")).expect("mkdir");
        assert!(matches!(read_bounded(&dir.path().join("d.wasm"), 100), Err(FileError::NotRegular)));
    }

    #[test]
    fn files_are_created_0640_and_not_through_a_planted_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        drop(open_append_private(&path).expect("create"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o} is at most 0640");
        let target = dir.path().join("victim");
        std::fs::write(&target, b"keep").expect("write");
        let planted = dir.path().join("planted.jsonl");
        symlink(&target, &planted).expect("link");
        assert!(open_append_private(&planted).is_err());
        assert!(create_private(&planted).is_err());
        assert_eq!(std::fs::read(&target).expect("read"), b"keep");
    }
}

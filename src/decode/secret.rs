//! Secrets: config values that must never be shown.
//!
//! A value is a secret when the config marks it so (a password, a token, a key, a
//! header value, the credentials inside a URL) or when it was read from the
//! environment (`${NAME}`) or from a file (`{file: path}`). Every secret is
//! registered here when the config is decoded, and every text this process shows
//! (log lines, config errors, `validate` output, the error a failed start prints,
//! panic messages) passes through [`mask`], which replaces each registered secret
//! with `***`. Hiding secrets where they are printed, not where they are used,
//! covers the paths nobody thought of: a library's error message that quotes a URL,
//! a `Debug` of a config struct.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{OnceLock, RwLock};

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Secrets shorter than this are not masked inside other text: a one-letter
/// "secret" would garble every message. Such a value is refused where it is
/// declared (see [`Secret::is_weak`]).
const MIN_MASKED_LEN: usize = 4;

fn registry() -> &'static RwLock<Vec<String>> {
    static REGISTRY: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remembers `value` as a secret for [`mask`].
pub fn register(value: &str) {
    if value.len() < MIN_MASKED_LEN {
        return;
    }
    let mut secrets = match registry().write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longest first: a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret and every URL's credentials replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let secrets = match registry().read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    match strip_url_credentials(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(stripped) => Cow::Owned(stripped),
    }
}

/// Every `scheme://user:password@host` in `text` becomes `scheme://***@host`.
pub fn strip_url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '`' | '\'' | '"' | ')') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str(MASK);
                out.push_str(&authority[userinfo_end..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// A URL for logs and messages: its credentials registered as secrets and shown
/// as `***`.
pub fn display_url(url: &str) -> String {
    strip_url_credentials(url).into_owned()
}

/// Registers the user-info part of `url` (`user:password`) and the password alone.
pub fn register_url_credentials(url: &str) {
    let Some(start) = url.find("://").map(|i| i + 3) else { return };
    let authority = &url[start..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    if let Some(at) = authority[..end].rfind('@') {
        let userinfo = &authority[..at];
        register(userinfo);
        if let Some((_, password)) = userinfo.split_once(':') {
            register(password);
        }
    }
}

/// A config value that is a secret: shown as `***` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers `value`.
    pub fn new(value: String) -> Self {
        register(&value);
        Secret(value)
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Too short to be masked in other text, hence too short to be a secret.
    pub fn is_weak(&self) -> bool {
        self.0.len() < MIN_MASKED_LEN
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// A writer that masks what passes through it line by line: the log output.
pub struct MaskingWriter<W: Write> {
    inner: W,
}

impl<W: Write> MaskingWriter<W> {
    pub fn new(inner: W) -> Self {
        MaskingWriter { inner }
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing's fmt layer writes one whole event per call.
        match std::str::from_utf8(buf) {
            Ok(text) => match mask(text) {
                Cow::Borrowed(_) => self.inner.write_all(buf)?,
                Cow::Owned(masked) => self.inner.write_all(masked.as_bytes())?,
            },
            Err(_) => self.inner.write_all(String::from_utf8_lossy(buf).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Panic messages pass through [`mask`] too.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        eprintln!("panic{location}: {}", mask(&message));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_url_credentials_are_masked() {
        register("s3cr3t-token-xyz");
        let text = "auth failed for s3cr3t-token-xyz at http://bob:hunter22@db:8086/write and https://h/x";
        let masked = mask(text);
        assert!(!masked.contains("s3cr3t-token-xyz"));
        assert!(!masked.contains("hunter22"));
        assert!(masked.contains("http://***@db:8086/write"), "{masked}");
        assert!(masked.contains("https://h/x"));
    }

    #[test]
    fn url_credentials_are_registered_alone_too() {
        register_url_credentials("http://telemetry:InfluxPa55-unique@influx:8086");
        assert_eq!(mask("password InfluxPa55-unique refused"), "password *** refused");
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        assert!(matches!(mask("nothing to hide here"), Cow::Borrowed(_)));
    }

    #[test]
    fn secrets_debug_as_a_mask() {
        let s = Secret::new("very-private-value".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "very-private-value");
    }
}

//! Who may call the HTTP server: named bearer tokens.
//!
//! Tokens come from the config (`tokens: [{name, token}]`, where `token` is
//! usually `${ENV}` or `{file: path}`) or from a tokens file (`tokens_file`, one
//! `name token` pair per line, `#` comments). A request's token is compared with
//! every configured token in constant time (both hashed first, so lengths do not
//! show either), and the name of the one it matches is the request's actor in the
//! access log and the audit trail.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::decode::secret::{self, Secret};
use crate::decode::yaml::Node;
use crate::decode::{list_items, one_of, Diagnostics, MapReader};

/// Largest tokens file read.
const MAX_TOKENS_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricsAccess {
    /// `/metrics` needs a token like every other endpoint but `/health`.
    Token,
    /// `/metrics` is open (a scraper without credentials on a trusted network).
    Open,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuthConfig {
    /// (name, SHA-256 of the token).
    tokens: Vec<(String, [u8; 32])>,
    pub(crate) metrics: MetricsAccess,
}

impl AuthConfig {
    pub(crate) fn decode(node: &Node, cx: &mut Diagnostics) -> Option<AuthConfig> {
        let mut map = MapReader::new(node, "server auth", cx)?;
        let mut tokens: Vec<(String, [u8; 32])> = Vec::new();
        if let Some(list) = map.node("tokens") {
            for item in list_items(list, "server auth tokens", cx) {
                let Some(mut entry) = MapReader::new(item, "a server token", cx) else { continue };
                let name: Option<String> = entry.required("name", cx);
                let token: Option<Secret> = entry.required("token", cx);
                entry.finish(cx);
                if let (Some(name), Some(token)) = (name, token) {
                    tokens.push((name, digest(token.expose())));
                }
            }
        }
        if let Some(path) = map.optional::<String>("tokens_file", cx) {
            match read_tokens_file(&PathBuf::from(&path)) {
                Ok(found) => tokens.extend(found),
                Err(e) => cx.error(map.key_pos("tokens_file"), format!("tokens_file `{path}`: {e}")),
            }
        }
        let metrics = map
            .node("metrics")
            .and_then(|n| one_of(n, &[("token", MetricsAccess::Token), ("open", MetricsAccess::Open)], cx))
            .unwrap_or(MetricsAccess::Token);
        let pos = map.pos();
        map.finish(cx);
        if tokens.is_empty() {
            cx.error(pos, "server auth has no tokens (give `tokens` or `tokens_file`)");
        }
        let mut names: Vec<&str> = tokens.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            cx.error(pos, "server auth: two tokens have the same name");
        }
        Some(AuthConfig { tokens, metrics })
    }

    /// The name of the token `presented` matches. Every configured token is
    /// compared, so the time taken does not say which one (or how much) matched.
    pub(crate) fn identify(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (name, token) in &self.tokens {
            if bool::from(token.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `name token` per line; blank lines and `#` comments skipped.
fn read_tokens_file(path: &PathBuf) -> Result<Vec<(String, [u8; 32])>, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKENS_FILE).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    let mut tokens = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, token)) = line.split_once(char::is_whitespace) else {
            return Err(format!("line {}: expected `name token`", number + 1));
        };
        let token = token.trim();
        if token.len() < 16 {
            return Err(format!("line {}: token `{name}` is shorter than 16 characters", number + 1));
        }
        secret::register(token);
        tokens.push((name.to_string(), digest(token)));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_identified_by_name() {
        let auth = AuthConfig {
            tokens: vec![
                ("prometheus".into(), digest("prom-token-0123456789")),
                ("ops".into(), digest("ops-token-0123456789")),
            ],
            metrics: MetricsAccess::Token,
        };
        assert_eq!(auth.identify("ops-token-0123456789"), Some("ops"));
        assert_eq!(auth.identify("prom-token-0123456789"), Some("prometheus"));
        assert_eq!(auth.identify("prom-token-012345678"), None);
        assert_eq!(auth.identify(""), None);
    }

    #[test]
    fn a_tokens_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# who\nprometheus  abcdefghijklmnopqrstuvwxyz\n\nops 0123456789abcdef0123\n")
            .expect("write");
        let tokens = read_tokens_file(&path).expect("read");
        assert_eq!(tokens.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["prometheus", "ops"]);
        std::fs::write(&path, "short abc\n").expect("write");
        assert!(read_tokens_file(&path).expect_err("short").contains("shorter than 16"));
    }
}

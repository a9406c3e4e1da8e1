//! Encryption at rest: what the pipeline writes to disk (file sinks, the
//! dead-letter file, disk buffers and outboxes, alert files, the audit log) can be
//! sealed with XChaCha20-Poly1305 (authenticated encryption, RustCrypto's
//! `chacha20poly1305`), keyed by a 256-bit secret from the config.
//!
//! A sealed file is a sequence of frames, one per write (a batch of lines, a
//! notification, an audit entry):
//!
//! ```text
//! "STS1" | ciphertext length (u32 LE) | nonce (24 bytes) | ciphertext + 16-byte tag
//! ```
//!
//! The nonce is random per frame (192 bits: no counter to keep across restarts);
//! the magic and length are authenticated with the payload. A changed byte
//! anywhere fails that frame's check, and `decrypt` reports which frame, where.
//! Whole frames removed or reordered are not detected: each frame stands alone so
//! that files can be appended to after a restart and rotated.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::decode::secret::Secret;
use crate::decode::{Diagnostics, MapReader};

pub(crate) const MAGIC: [u8; 4] = *b"STS1";
const NONCE: usize = 24;
const TAG: usize = 16;
/// Magic, length and nonce.
pub(crate) const FRAME_HEADER: usize = 4 + 4 + NONCE;
/// The largest frame read back: bounds what a damaged length field can allocate.
pub(crate) const MAX_FRAME: usize = 256 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "frame {frame} at byte {offset}: authentication failed (the data was changed, or the key is wrong)"
    )]
    Tampered { frame: u64, offset: u64 },
    #[error("frame {frame} at byte {offset}: cut short ({have} of {need} bytes)")]
    Truncated { frame: u64, offset: u64, have: usize, need: usize },
    #[error("byte {offset}: not a sealed frame (no STS1 header) — is the file encrypted?")]
    NotSealed { offset: u64 },
    #[error("frame {frame} at byte {offset}: length {len} is larger than any frame written")]
    TooLarge { frame: u64, offset: u64, len: usize },
}

/// A key that seals and opens frames.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl PartialEq for Sealer {
    /// Two sealers are never compared for their keys; configs compare equal
    /// when both seal.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Sealer {
    /// A key written as 64 hex digits or as base64 of 32 bytes.
    pub fn from_key_text(text: &str) -> Result<Sealer, String> {
        use base64::Engine;
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "the key must be 64 hex digits or base64 of 32 bytes".to_string())?
        };
        if bytes.len() != 32 {
            return Err(format!("the key must be 32 bytes (256 bits), got {}", bytes.len()));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(Sealer { cipher })
    }

    /// The optional `encryption: {key: SECRET}` of a section.
    pub(crate) fn decode_key(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<Sealer> {
        let node = map.node("encryption")?;
        let label = format!("{what} encryption");
        let mut section = MapReader::new(node, &label, cx)?;
        let key: Option<Secret> = section.required("key", cx);
        let pos = section.pos();
        section.finish(cx);
        match Sealer::from_key_text(key?.expose()) {
            Ok(sealer) => Some(sealer),
            Err(e) => {
                cx.error(pos, format!("{label}: {e}"));
                None
            }
        }
    }

    /// Appends one frame holding `plaintext` to `out`.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let len = (plaintext.len() + TAG) as u32;
        let mut aad = [0u8; 8];
        aad[..4].copy_from_slice(&MAGIC);
        aad[4..].copy_from_slice(&len.to_le_bytes());
        // Encryption fails only for inputs beyond the cipher's limit (256 GiB).
        let ciphertext =
            self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &aad }).unwrap_or_default();
        out.reserve(FRAME_HEADER + ciphertext.len());
        out.extend_from_slice(&aad);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(plaintext, &mut out);
        out
    }

    /// Opens the frame at the start of `data` (the `frame`-th, at `offset` in its
    /// file, for messages): its plaintext and the bytes it took.
    pub fn open_frame(&self, data: &[u8], frame: u64, offset: u64) -> Result<(Vec<u8>, usize), SealError> {
        if data.len() < 8 || data[..4] != MAGIC {
            if data.len() < 8 && MAGIC.starts_with(&data[..data.len().min(4)]) {
                return Err(SealError::Truncated { frame, offset, have: data.len(), need: FRAME_HEADER });
            }
            return Err(SealError::NotSealed { offset });
        }
        let len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
        if len > MAX_FRAME {
            return Err(SealError::TooLarge { frame, offset, len });
        }
        let need = FRAME_HEADER + len;
        if data.len() < need {
            return Err(SealError::Truncated { frame, offset, have: data.len(), need });
        }
        if len < TAG {
            return Err(SealError::Tampered { frame, offset });
        }
        let nonce = XNonce::from_slice(&data[8..FRAME_HEADER]);
        let plaintext = self
            .cipher
            .decrypt(nonce, Payload { msg: &data[FRAME_HEADER..need], aad: &data[..8] })
            .map_err(|_| SealError::Tampered { frame, offset })?;
        Ok((plaintext, need))
    }

    /// Every frame of a sealed file, in order; stops at the first bad one.
    pub fn open_all(&self, data: &[u8]) -> (Vec<Vec<u8>>, Option<SealError>) {
        let mut frames = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            match self.open_frame(&data[at..], frames.len() as u64 + 1, at as u64) {
                Ok((plaintext, used)) => {
                    frames.push(plaintext);
                    at += used;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
        (frames, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_key_text(&"ab".repeat(32)).expect("key")
    }

    #[test]
    fn frames_round_trip() {
        let s = sealer();
        let mut file = s.seal(b"{\"a\":1}\n");
        s.seal_into(b"{\"b\":2}\n{\"c\":3}\n", &mut file);
        let (frames, error) = s.open_all(&file);
        assert_eq!(error, None);
        assert_eq!(frames, vec![b"{\"a\":1}\n".to_vec(), b"{\"b\":2}\n{\"c\":3}\n".to_vec()]);
        assert!(!file.windows(5).any(|w| w == b"\"a\":1"), "plaintext visible in the sealed file");
    }

    #[test]
    fn any_changed_byte_is_detected_and_located() {
        let s = sealer();
        let mut file = s.seal(b"first frame");
        let second_at = file.len() as u64;
        s.seal_into(b"second frame", &mut file);
        for i in second_at as usize..file.len() {
            let mut changed = file.clone();
            changed[i] ^= 0x01;
            let (frames, error) = s.open_all(&changed);
            assert_eq!(frames.len(), 1, "byte {i}");
            let error = error.expect("detected");
            assert!(
                matches!(error, SealError::Tampered { frame: 2, offset } | SealError::Truncated { frame: 2, offset, .. } if offset == second_at)
                    || matches!(error, SealError::NotSealed { offset } | SealError::TooLarge { offset, .. } if offset == second_at),
                "byte {i}: {error}"
            );
        }
    }

    #[test]
    fn a_wrong_key_and_a_cut_are_reported() {
        let file = sealer().seal(b"payload");
        let other = Sealer::from_key_text(&"cd".repeat(32)).expect("key");
        assert_eq!(other.open_all(&file).1, Some(SealError::Tampered { frame: 1, offset: 0 }));
        let cut = &file[..file.len() - 3];
        assert!(matches!(sealer().open_all(cut).1, Some(SealError::Truncated { .. })));
        assert!(matches!(
            sealer().open_all(b"{\"plain\":true}\n").1,
            Some(SealError::NotSealed { offset: 0 })
        ));
    }

    #[test]
    fn keys_must_be_256_bits() {
        assert!(Sealer::from_key_text("abcd").is_err());
        assert!(Sealer::from_key_text(&"zz".repeat(32)).is_err());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(Sealer::from_key_text(&b64).is_ok());
    }
}

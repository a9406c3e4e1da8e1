//! PII scrubbing of what leaves a pipeline beside its steps: dead letters.
//!
//! A pipeline with the `pii_scrub` plugin promises that no PII leaves it. Dead
//! letters carry the input that failed — before the scrubber ran, or because the
//! scrubber could not finish — so, in such a pipeline, every dead letter's bytes
//! and reason go through the same detectors, with the step's own config, before
//! they are written. The host runs the scrubber's code natively for this (the same
//! crate the plugin is built from), so a plugin that traps or times out on an
//! input cannot stop its dead letter from being scrubbed.
//!
//! A dead letter that is a JSON document is scrubbed field by field, every field
//! of it, the envelope included; anything else is scrubbed as text, with JSON
//! escapes decoded first. Either way the record says `raw_scrubbed: true`, and the
//! bytes are no longer exactly those received: their position (Kafka topic,
//! partition, offset; file and line) is what leads back to the original.

use anyhow::Context;
use bytes::Bytes;
use pii_scrub::PiiScrub;
use synaptic_plugin_sdk::{Config, Plugin};

use crate::event::DeadLetter;

pub(crate) struct DeadLetterScrubber {
    scrub: PiiScrub,
}

impl DeadLetterScrubber {
    /// The scrubber with the `pii_scrub` step's config. Fails when the config does
    /// not load, as the plugin would: the pipeline must then not start.
    pub(crate) fn new(config: &serde_json::Map<String, serde_json::Value>) -> anyhow::Result<Self> {
        let json = serde_json::Value::Object(config.clone()).to_string();
        let config = Config::parse(&json).map_err(anyhow::Error::msg)?;
        let scrub = PiiScrub::init(&config)
            .map_err(anyhow::Error::msg)
            .context("building the dead-letter scrubber from the pii_scrub step's config")?;
        Ok(DeadLetterScrubber { scrub: scrub.everywhere() })
    }

    /// Replaces the dead letter's bytes and reason with their scrubbed forms.
    pub(crate) fn scrub(&mut self, letter: &mut DeadLetter) {
        letter.reason = self.scrub.scrub_text(&letter.reason);
        let raw = match std::str::from_utf8(&letter.raw) {
            Ok(_) => match self.scrub.scrub_event(&letter.raw) {
                Ok(Some(scrubbed)) => Bytes::from(scrubbed),
                Ok(None) => letter.raw.clone(),
                // Not a document it can walk: as text.
                Err(_) => Bytes::from(self.scrub.scrub_text(&String::from_utf8_lossy(&letter.raw))),
            },
            Err(_) => Bytes::from(self.scrub.scrub_text(&String::from_utf8_lossy(&letter.raw))),
        };
        letter.raw = raw;
        letter.scrubbed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, Stage};

    fn letter(raw: &[u8], reason: &str) -> DeadLetter {
        DeadLetter::new(
            Stage::Decode,
            reason.into(),
            Position::Generator { seq: 1 },
            Bytes::copy_from_slice(raw),
        )
    }

    fn scrubbed(raw: &[u8], reason: &str) -> (String, String) {
        let mut scrubber = DeadLetterScrubber::new(&serde_json::Map::new()).expect("default config loads");
        let mut letter = letter(raw, reason);
        scrubber.scrub(&mut letter);
        let mut out = Vec::new();
        letter.encode(&mut out);
        let record: serde_json::Value = serde_json::from_slice(&out).expect("record is JSON");
        assert_eq!(record["raw_scrubbed"], true);
        assert!(record.get("raw_base64").is_none(), "no bytes that bypass the scrubber");
        (
            record["raw"].as_str().expect("raw as text").to_string(),
            record["reason"].as_str().unwrap_or("").to_string(),
        )
    }

    const PII: [&str; 3] = ["jane.doe@example.com", "4111 1111 1111 1111", "+44 20 7946 0958"];

    fn assert_clean(text: &str) {
        for pii in PII {
            assert!(!text.contains(pii), "{pii} left in {text}");
        }
        assert!(!text.contains("jane.doe"), "{text}");
    }

    #[test]
    fn a_json_dead_letter_is_scrubbed_in_every_field_the_envelope_included() {
        let raw = br#"{"event_id":"jane.doe@example.com","note":"card 4111 1111 1111 1111","data":{"x":"call +44 20 7946 0958"},"severity":"LOUD"}"#;
        let (raw, reason) = scrubbed(raw, "severity: got \"jane.doe@example.com\"");
        assert_clean(&raw);
        assert_clean(&reason);
        assert!(raw.contains("[REDACTED:email]") && raw.contains("\"severity\":\"LOUD\""), "{raw}");
    }

    #[test]
    fn broken_json_invalid_utf8_and_escapes_are_scrubbed_as_text() {
        let cases: [&[u8]; 5] = [
            br#"{"event_id":"e1","data":{"m":"mail jane.doe@example.com","n":4111 1111 1111 1111"#,
            b"\xff\xfe jane.doe@example.com 4111 1111 1111 1111 +44 20 7946 0958",
            br#"{"a":"\ud800","b":"jane.doe\u0040example.com"}"#,
            br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["jane.doe@example.com"]]]}"#,
            br#"jane.doe&#64;example.com jane.doe\u0040example.com"#,
        ];
        for raw in cases {
            let (text, _) = scrubbed(raw, "invalid JSON");
            assert!(
                !text.contains("jane.doe\\u0040example.com") && !text.contains("4111 1111 1111 1111"),
                "{text}"
            );
            if !raw.starts_with(b"jane.doe&#64;") {
                assert_clean(&text);
            }
        }
    }
}

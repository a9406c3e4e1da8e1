//! Stamps its build's version into every event as `tags.plugin_version`.
//!
//! The version lives in a fixed-size placeholder in the module's data, so that the
//! hot-swap tests can make many distinct, valid versions of one build by rewriting
//! those bytes in the `.wasm` file, instead of compiling each one.

use serde_json::{Map, Value};
use synaptic_plugin_sdk::{Config, Event, Plugin, Verdict};

/// `stamp-version:` followed by ten digits.
#[used]
static VERSION: [u8; 24] = *b"stamp-version:0000000000";

pub fn version() -> String {
    // Read through an opaque reference, so the compiler keeps the bytes in the
    // data segment instead of folding the constant.
    let bytes = std::hint::black_box(&VERSION);
    String::from_utf8_lossy(&bytes[14..]).into_owned()
}

pub struct Stamp {
    version: Value,
}

impl Plugin for Stamp {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Stamp { version: Value::String(version()) })
    }

    fn process(&mut self, event: &Event<'_>) -> Verdict {
        let Ok(mut doc) = event.json() else { return Verdict::Keep };
        let tags = doc.entry("tags").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(tags) = tags {
            tags.insert("plugin_version".to_string(), self.version.clone());
        }
        Verdict::replace_json(&doc)
    }
}

synaptic_plugin_sdk::export_plugin!(Stamp);

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::{testing, Verdict};

    #[test]
    fn stamps_the_version_into_tags() {
        let verdicts =
            testing::run::<super::Stamp>("", &[br#"{"event_id":"e","tags":{"a":"b"}}"#]).expect("runs");
        let Verdict::Replace(bytes) = &verdicts[0] else {
            panic!("expected a replacement, got {verdicts:?}")
        };
        let doc: serde_json::Value = serde_json::from_slice(bytes).expect("JSON");
        assert_eq!(doc["tags"]["plugin_version"], "0000000000");
        assert_eq!(doc["tags"]["a"], "b");
    }
}

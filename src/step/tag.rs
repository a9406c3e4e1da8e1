//! `tag`: adds fixed tags to every event (an environment, a cluster name).

use std::collections::BTreeMap;

use serde_json::Value;

use super::Step;
use crate::event::Batch;

pub struct TagStep {
    name: String,
    tags: Vec<(String, Value)>,
}

impl TagStep {
    pub fn new(name: &str, tags: &BTreeMap<String, String>) -> Self {
        let tags = tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        TagStep { name: name.to_string(), tags }
    }
}

impl Step for TagStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        for event in &mut batch.events {
            for (key, value) in &self.tags {
                event.set_tag(key, value.clone());
            }
        }
    }
}

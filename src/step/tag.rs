//! `tag`: adds fixed tags to every event (an environment, a cluster name).

use std::collections::BTreeMap;

use serde_json::Value;

use super::Step;
use crate::decode::{Diagnostics, MapReader};
use crate::event::Batch;

#[derive(Debug, Clone)]
pub struct TagStepConfig {
    /// Tags set on every event (existing tags with the same key are replaced).
    pub(crate) tags: BTreeMap<String, String>,
}

impl TagStepConfig {
    pub(crate) fn build(&self, name: &str, cx: &mut super::BuildContext) -> super::RunningStep {
        super::RunningStep::new(Box::new(TagStep::new(name, &self.tags)), cx.telemetry())
    }

    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        map.required("tags", cx).map(|tags| TagStepConfig { tags })
    }
}

#[derive(Clone)]
pub(crate) struct TagStep {
    name: String,
    tags: Vec<(String, Value)>,
}

impl TagStep {
    pub(crate) fn new(name: &str, tags: &BTreeMap<String, String>) -> Self {
        let tags = tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        TagStep { name: name.to_string(), tags }
    }
}

impl Step for TagStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(Some(Box::new(self.clone())))
    }

    fn process(&mut self, batch: &mut Batch) {
        for event in &mut batch.events {
            for (key, value) in &self.tags {
                event.set_tag(key, value.clone());
            }
        }
    }
}

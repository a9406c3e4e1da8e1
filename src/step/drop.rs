//! `drop`: removes matching events on purpose. Dropped events count as done for
//! acknowledgement, so their offsets are committed like delivered ones.

use super::Step;
use crate::decode::{Diagnostics, MapReader};
use crate::event::Batch;
use crate::route::{decode_match, MatchConfig, Matcher};

#[derive(Debug, Clone)]
pub struct DropStepConfig {
    /// The events dropped.
    pub(crate) matcher: MatchConfig,
}

impl DropStepConfig {
    pub(crate) fn build(&self, name: &str, cx: &mut super::BuildContext) -> super::RunningStep {
        super::RunningStep::new(Box::new(DropStep::new(name, Matcher::new(&self.matcher))), cx.telemetry())
    }

    /// `what` names the step in messages.
    pub(crate) fn decode(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<Self> {
        match map.node("match") {
            Some(m) => decode_match(m, cx).map(|matcher| DropStepConfig { matcher }),
            None => {
                cx.error(map.pos(), format!("{what} is missing required key `match`"));
                None
            }
        }
    }
}

#[derive(Clone)]
pub(crate) struct DropStep {
    name: String,
    matcher: Matcher,
}

impl DropStep {
    pub(crate) fn new(name: &str, matcher: Matcher) -> Self {
        DropStep { name: name.to_string(), matcher }
    }
}

impl Step for DropStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(Some(Box::new(self.clone())))
    }

    fn process(&mut self, batch: &mut Batch) {
        let before = batch.events.len();
        batch.events.retain(|e| !self.matcher.matches(e));
        batch.dropped += before - batch.events.len();
    }
}

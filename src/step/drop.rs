//! `drop`: removes matching events on purpose. Dropped events count as done for
//! acknowledgement, so their offsets are committed like delivered ones.

use super::Step;
use crate::event::Batch;
use crate::route::Matcher;

pub struct DropStep {
    name: String,
    matcher: Matcher,
}

impl DropStep {
    pub fn new(name: &str, matcher: Matcher) -> Self {
        DropStep { name: name.to_string(), matcher }
    }
}

impl Step for DropStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        let before = batch.events.len();
        batch.events.retain(|e| !self.matcher.matches(e));
        batch.dropped += before - batch.events.len();
    }
}

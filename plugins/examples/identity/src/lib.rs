//! Keeps every event unchanged: the cost of the plugin boundary alone.

use synaptic_plugin_sdk::{Config, Event, Plugin, Verdict};

pub struct Identity;

impl Plugin for Identity {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Identity)
    }

    fn process(&mut self, _event: &Event<'_>) -> Verdict {
        Verdict::Keep
    }
}

synaptic_plugin_sdk::export_plugin!(Identity);

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::{testing, Verdict};

    #[test]
    fn keeps_everything() {
        let verdicts = testing::run::<super::Identity>("", &[b"{}", b"{\"a\":1}"]).expect("runs");
        assert_eq!(verdicts, vec![Verdict::Keep, Verdict::Keep]);
    }
}

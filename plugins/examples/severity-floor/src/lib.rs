//! Drops events below a minimum severity. Config: `min` (TRACE … FATAL, default
//! INFO). Counts what it dropped as `below_floor`.

use synaptic_plugin_sdk::{host, Config, Event, Plugin, Severity, Verdict};

pub struct SeverityFloor {
    min: Severity,
}

impl Plugin for SeverityFloor {
    fn init(config: &Config) -> Result<Self, String> {
        let min = match config.str("min")? {
            None => Severity::Info,
            Some(text) => Severity::parse(text).ok_or_else(|| {
                format!("config.min: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL, got {text:?}")
            })?,
        };
        Ok(SeverityFloor { min })
    }

    fn process(&mut self, event: &Event<'_>) -> Verdict {
        match event.severity() {
            Some(severity) if severity < self.min => Verdict::Drop,
            _ => Verdict::Keep,
        }
    }

    fn process_batch(&mut self, events: &[Event<'_>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        verdicts.extend(events.iter().map(|event| self.process(event)));
        let dropped = verdicts.iter().filter(|v| **v == Verdict::Drop).count() as u64;
        if dropped > 0 {
            host::count("below_floor", dropped);
        }
        Ok(())
    }
}

synaptic_plugin_sdk::export_plugin!(SeverityFloor);

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::{testing, Verdict};

    use super::SeverityFloor;

    #[test]
    fn drops_below_the_floor_and_counts() {
        let events: [&[u8]; 3] =
            [br#"{"severity":"DEBUG"}"#, br#"{"severity":"WARN"}"#, br#"{"severity":"ERROR"}"#];
        let verdicts = testing::run::<SeverityFloor>(r#"{"min":"WARN"}"#, &events).expect("runs");
        assert_eq!(verdicts, vec![Verdict::Drop, Verdict::Keep, Verdict::Keep]);
        assert_eq!(testing::counters().get("below_floor"), Some(&1));
    }

    #[test]
    fn a_bad_floor_is_a_clear_init_error() {
        let err = testing::run::<SeverityFloor>(r#"{"min":"LOUD"}"#, &[]).unwrap_err();
        assert!(err.contains("config.min") && err.contains("LOUD"), "{err}");
    }
}

//! Misbehaves on purpose, to test that the host contains plugins. Config `mode`:
//! `keep` (default; behaves), `trap` (panics on every batch), `loop` (never
//! returns), `alloc` (allocates until stopped), `error` (fails every batch),
//! `garbage` (replaces each event with bytes that are not JSON), `poison` (traps
//! on a batch holding an event whose bytes contain `poison`, keeps the others),
//! `init_error` (refuses to start).

use synaptic_plugin_sdk::{Config, Event, Plugin, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keep,
    Trap,
    Loop,
    Alloc,
    Error,
    Garbage,
    Poison,
}

pub struct Faulty {
    mode: Mode,
}

impl Plugin for Faulty {
    fn init(config: &Config) -> Result<Self, String> {
        let mode = match config.str("mode")?.unwrap_or("keep") {
            "keep" => Mode::Keep,
            "trap" => Mode::Trap,
            "loop" => Mode::Loop,
            "alloc" => Mode::Alloc,
            "error" => Mode::Error,
            "garbage" => Mode::Garbage,
            "poison" => Mode::Poison,
            "init_error" => return Err("refusing to start, as configured (mode: init_error)".to_string()),
            other => return Err(format!("config.mode: unknown mode {other:?}")),
        };
        Ok(Faulty { mode })
    }

    fn process(&mut self, _event: &Event<'_>) -> Verdict {
        match self.mode {
            Mode::Garbage => Verdict::Replace(b"not json".to_vec()),
            _ => Verdict::Keep,
        }
    }

    fn process_batch(&mut self, events: &[Event<'_>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        match self.mode {
            Mode::Trap => panic!("faulty plugin traps, as configured"),
            Mode::Loop => {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Mode::Alloc => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::Error => Err("faulty plugin fails the batch, as configured".to_string()),
            Mode::Poison if events.iter().any(|e| e.raw().windows(6).any(|w| w == b"poison")) => {
                panic!("faulty plugin traps on a poisoned batch, as configured")
            }
            Mode::Keep | Mode::Garbage | Mode::Poison => {
                verdicts.extend(events.iter().map(|event| self.process(event)));
                Ok(())
            }
        }
    }
}

synaptic_plugin_sdk::export_plugin!(Faulty);

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::{testing, Verdict};

    use super::Faulty;

    #[test]
    fn modes_that_return_do_what_they_say() {
        let keep = testing::run::<Faulty>("", &[b"{}"]).expect("runs");
        assert_eq!(keep, vec![Verdict::Keep]);
        let garbage = testing::run::<Faulty>(r#"{"mode":"garbage"}"#, &[b"{}"]).expect("runs");
        assert_eq!(garbage, vec![Verdict::Replace(b"not json".to_vec())]);
        let error = testing::run::<Faulty>(r#"{"mode":"error"}"#, &[b"{}"]).unwrap_err();
        assert!(error.contains("as configured"));
        assert!(testing::run::<Faulty>(r#"{"mode":"init_error"}"#, &[]).is_err());
        assert!(testing::run::<Faulty>(r#"{"mode":"bogus"}"#, &[]).unwrap_err().contains("bogus"));
    }
}

//! Runs `sample` (default config) over a JSON Lines file in 512-event batches, as
//! the host would, and prints the time per event: for profiling natively
//! (`valgrind --tool=callgrind … sample_file events.jsonl`).
use sample::Sample;
use synaptic_plugin_sdk::{testing, Config, Plugin};

fn main() -> Result<(), String> {
    let path = std::env::args().nth(1).ok_or("usage: sample_file FILE")?;
    let mut plugin = Sample::init(&Config::parse("")?)?;
    let (events, per_event) = testing::time_file(&mut plugin, path.as_ref())?;
    println!("{events} events: {per_event:.0} ns/event");
    Ok(())
}

//! Runs `filter` (the config `benches/standard_plugins.rs` measures) over a JSON
//! Lines file in 512-event batches, as the host would, and prints the time per
//! event: for profiling natively (`valgrind --tool=callgrind … filter_file events.jsonl`).
use filter::Filter;
use synaptic_plugin_sdk::{testing, Config, Plugin};

const FILTER: &str = r#"{"event_types":["*"],"min_severity":"DEBUG","tags":{"environment":"prod*"},"where":[{"field":"data.bridge_type","in":["MCP","A2A"]}],"action":"drop"}"#;

fn main() -> Result<(), String> {
    let path = std::env::args().nth(1).ok_or("usage: filter_file FILE")?;
    let mut plugin = Filter::init(&Config::parse(FILTER)?)?;
    let (events, per_event) = testing::time_file(&mut plugin, path.as_ref())?;
    println!("{events} events: {per_event:.0} ns/event");
    Ok(())
}

//! Scrubs each line of a JSON Lines file with the default config and prints the
//! time per event and how many events changed: for profiling the scrubber
//! natively (`perf record … scrub_file events.jsonl`).
use pii_scrub::PiiScrub;
use synaptic_plugin_sdk::{Config, Plugin};

fn main() {
    let path = std::env::args().nth(1).expect("usage: scrub_file FILE");
    let text = std::fs::read_to_string(path).expect("readable file");
    let mut scrub = PiiScrub::init(&Config::parse("").expect("config")).expect("default config");
    let lines: Vec<&str> = text.lines().collect();
    let started = std::time::Instant::now();
    let mut changed = 0;
    for _ in 0..5 {
        for line in &lines {
            changed += usize::from(matches!(scrub.scrub_event(line.as_bytes()), Ok(Some(_))));
        }
    }
    let per_event = started.elapsed().as_nanos() as f64 / (5 * lines.len()) as f64;
    println!("{} events x5: {per_event:.0} ns/event, {changed} changed", lines.len());
}

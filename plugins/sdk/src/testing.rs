//! Native test harness: run a plugin over events exactly as the host would, without
//! WebAssembly.

use crate::contract::{BatchBuffer, Verdict, VerdictRef};
use crate::{run_batch, Config, Plugin};

/// Builds the plugin from `config` (a JSON object, or "" for none) and runs one
/// batch of `events` through it.
pub fn run<P: Plugin>(config: &str, events: &[&[u8]]) -> Result<Vec<Verdict>, String> {
    let mut plugin = P::init(&Config::parse(config)?)?;
    run_with(&mut plugin, events)
}

/// Runs one batch through an already built plugin (to test state across batches).
pub fn run_with<P: Plugin>(plugin: &mut P, events: &[&[u8]]) -> Result<Vec<Verdict>, String> {
    let mut batch = BatchBuffer::default();
    batch.clear();
    for event in events {
        batch.push(event).map_err(|e| e.0)?;
    }
    let list = run_batch(plugin, &batch.data, &batch.offsets)?;
    let verdicts = list.read(events.len()).map_err(|e| e.0)?;
    Ok(verdicts.into_iter().map(VerdictRef::to_verdict).collect())
}

/// The counters this thread's plugins have counted so far.
#[cfg(not(target_arch = "wasm32"))]
pub fn counters() -> std::collections::BTreeMap<String, u64> {
    crate::host::imp::COUNTERS.with(|c| c.borrow().clone())
}

/// Runs every line of a JSON Lines file through `plugin` in batches of 512, as
/// the host would: the number of events and the time per event in nanoseconds.
/// For profiling a plugin natively (`valgrind --tool=callgrind`, `perf`).
#[cfg(not(target_arch = "wasm32"))]
pub fn time_file<P: Plugin>(plugin: &mut P, path: &std::path::Path) -> Result<(usize, f64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let started = std::time::Instant::now();
    for batch in lines.chunks(512) {
        run_with(plugin, batch)?;
    }
    Ok((lines.len(), started.elapsed().as_nanos() as f64 / lines.len().max(1) as f64))
}

//! Cost of evaluating the default rule pack (`rules/`) on generator events, in ns
//! per event, as the pipeline runs it: decode + validate a 512-event batch, then
//! the alert engine; the engine's cost is the difference to decode + validate
//! alone (the baseline, measured in the same run, rounds interleaved).
//!
//! The engine's clock follows the events' own time (the generator writes 1,000
//! events per simulated second), and the rules are evaluated once per simulated
//! second, the default `evaluation_interval`; that cost is included. Each round
//! starts with a fresh engine (built outside the timing), so windows fill as in
//! a live run instead of seeing replayed, late events.
//!
//! Target: ≤ 500 ns/event. Run on one core: `taskset -c 1 cargo bench --bench alerts`;
//! `ALERTS_BENCH_EVENTS=N` (default 200,000).

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use synaptic_telemetry::alert::engine::Engine;
use synaptic_telemetry::alert::rule;
use synaptic_telemetry::event::Event;

const BATCH: usize = 512;
const ROUNDS: usize = 11;
const EVALUATION_MS: i64 = 1000;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let count: usize =
        std::env::var("ALERTS_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let lines = common::generator_lines(count);
    let mean = lines.iter().map(|l| l.len()).sum::<usize>() / count.max(1);
    let rules = rule::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("rules/ loads");
    println!(
        "alerts bench: {count} generator events, mean {mean} bytes, batches of {BATCH}, {} rules",
        rules.len()
    );

    let chunks: Vec<&[bytes::Bytes]> = lines.chunks(BATCH).collect();
    let mut best = [Duration::MAX; 2];
    let mut evaluations = 0;
    let mut firing = 0;
    for _ in 0..ROUNDS {
        for (with_engine, best) in best.iter_mut().enumerate() {
            let mut engine = Engine::new(rules.clone(), 1000).expect("engine");
            let mut next_evaluation = i64::MIN;
            evaluations = 0;
            let started = Instant::now();
            for (b, chunk) in chunks.iter().enumerate() {
                let events: Vec<Event> = common::decode_batch(chunk, b * BATCH);
                if with_engine == 1 {
                    let now = events.last().map_or(0, |e| e.timestamp_ms());
                    engine.feed(&events, now);
                    if now >= next_evaluation {
                        let evaluation = engine.evaluate(now);
                        firing = evaluation.firing.len();
                        std::hint::black_box(&evaluation);
                        next_evaluation = now + EVALUATION_MS;
                        evaluations += 1;
                    }
                }
                std::hint::black_box(&events);
            }
            *best = (*best).min(started.elapsed());
        }
    }
    let per_event = |d: Duration| d.as_nanos() as f64 / count as f64;
    let (decode, with_alerts) = (per_event(best[0]), per_event(best[1]));
    let cost = with_alerts - decode;
    println!("in place: decode + validate {decode:.1} ns/event; + alert engine {with_alerts:.1} ns/event");
    println!("({evaluations} evaluations per round, {firing} alerts firing at the end)");
    println!(
        "alert engine in place: {cost:.1} ns/event, {:.2}x of decode + validate (target <= 500): {}",
        cost / decode,
        if cost <= 500.0 { "met" } else { "NOT met" }
    );
}

//! Cost of the metrics step with the full spec mapping (`config/metrics.yaml`), in
//! ns per event, on ~430-byte generator events in 512-event batches, two ways:
//!
//! - in place, as the pipeline runs it: decode + validate a batch, then the step;
//!   the step's cost is the difference to decode + validate alone (the baseline,
//!   measured in the same run, rounds interleaved);
//! - alone, on batches decoded beforehand and cold in cache: an upper bound, since
//!   it pays memory misses that the pipeline (which just decoded the batch) does not.
//!
//! The traces step (10% of traces sampled) is timed alone for reference.
//!
//! Target: metrics ≤ 250 ns/event. Run on one core:
//! `taskset -c 1 cargo bench --bench metrics`; `METRICS_BENCH_EVENTS=N` (default 200,000).

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use synaptic_telemetry::event::{Batch, Event, Position, SchemaMode};
use synaptic_telemetry::metrics::mapping::{Mapping, DEFAULT_PREFIX};
use synaptic_telemetry::metrics::MetricsStep;
use synaptic_telemetry::metrics::SPEC_METRICS;
use synaptic_telemetry::step::TracesConfig;
use synaptic_telemetry::step::{Step, TracesStep};
use synaptic_telemetry::telemetry::Telemetry;

const BATCH: usize = 512;
const ROUNDS: usize = 11;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The floor: touches each event as every step must (its type), nothing else.
struct ReadType(usize);

impl Step for ReadType {
    fn name(&self) -> &str {
        "read_type"
    }
    fn process(&mut self, batch: &mut Batch) {
        for event in &batch.events {
            self.0 = self.0.wrapping_add(event.event_type().len());
        }
    }
}

fn main() {
    let count: usize =
        std::env::var("METRICS_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let lines = common::generator_lines(count);
    let mean = lines.iter().map(|l| l.len()).sum::<usize>() / count.max(1);
    println!("metrics bench: {count} generator events, mean {mean} bytes, batches of {BATCH}");
    let batches: Vec<Vec<Event>> = lines
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let seq = (b * BATCH + i) as u64;
                    Event::decode(l.clone(), Position::Generator { seq }, SchemaMode::Strict).expect("valid")
                })
                .collect()
        })
        .collect();

    let telemetry = Telemetry::new();
    let mapping = Mapping::parse(SPEC_METRICS, "config/metrics.yaml", DEFAULT_PREFIX).expect("spec mapping");
    let families = mapping.metrics.len();
    let mut steps: Vec<(&str, Box<dyn Step>, Duration)> = vec![
        ("floor (read the event type)", Box::new(ReadType(0)), Duration::MAX),
        (
            "metrics (full spec mapping)",
            Box::new(MetricsStep::new("metrics", mapping, &telemetry)),
            Duration::MAX,
        ),
        (
            "traces (10% of traces)",
            Box::new(TracesStep::new("traces", &TracesConfig::default(), &telemetry)),
            Duration::MAX,
        ),
    ];
    println!("{families} metric families in the mapping");

    // In place: decode + validate, with and without the step.
    let chunks: Vec<&[bytes::Bytes]> = lines.chunks(BATCH).collect();
    let mut in_place = [Duration::MAX; 2];
    let mut in_place_step = MetricsStep::new(
        "metrics",
        Mapping::parse(SPEC_METRICS, "config/metrics.yaml", DEFAULT_PREFIX).expect("spec mapping"),
        &Telemetry::new(),
    );
    for _ in 0..ROUNDS {
        for (with_step, best) in in_place.iter_mut().enumerate() {
            let started = Instant::now();
            for (b, chunk) in chunks.iter().enumerate() {
                let events = common::decode_batch(chunk, b * BATCH);
                let mut batch = Batch { events, ..Batch::default() };
                if with_step == 1 {
                    in_place_step.process(&mut batch);
                }
                std::hint::black_box(&batch);
            }
            *best = (*best).min(started.elapsed());
        }
    }

    for _ in 0..ROUNDS {
        for (_, step, best) in &mut steps {
            // Fresh batches each round, built outside the timing.
            let mut round: Vec<Batch> =
                batches.iter().map(|events| Batch { events: events.clone(), ..Batch::default() }).collect();
            let started = Instant::now();
            for batch in &mut round {
                step.process(batch);
            }
            *best = (*best).min(started.elapsed());
            std::hint::black_box(&round);
        }
    }
    let per_event = |d: Duration| d.as_nanos() as f64 / count as f64;
    let (decode, with_metrics) = (per_event(in_place[0]), per_event(in_place[1]));
    println!("in place: decode + validate {decode:.1} ns/event; + metrics {with_metrics:.1} ns/event");
    let in_place_cost = with_metrics - decode;
    println!(
        "metrics step in place: {in_place_cost:.1} ns/event (target <= 250): {}",
        if in_place_cost <= 250.0 { "met" } else { "NOT met" }
    );
    println!("alone, on cache-cold batches:");
    let floor = per_event(steps[0].2);
    println!("{:<32} {:>12} {:>14}", "step", "ns/event", "minus floor");
    for (label, _, best) in &steps {
        let ns = per_event(*best);
        println!("{label:<32} {ns:>12.1} {:>14.1}", ns - floor);
    }
    println!("metrics step alone (upper bound): {:.1} ns/event", per_event(steps[1].2));
    if std::env::var_os("METRICS_BENCH_SCAN").is_some() {
        scan_only(&batches);
    }
    if std::env::var_os("METRICS_BENCH_BY_TYPE").is_some() {
        by_type(&batches, count);
    }
    let rendered = telemetry.render();
    println!("/metrics after the run: {} bytes, {} lines", rendered.len(), rendered.lines().count());
}

/// Where the step's time goes: the step alone over each event type's events
/// (`METRICS_BENCH_BY_TYPE=1`), ns per event of that type and its share of all.
fn by_type(batches: &[Vec<Event>], count: usize) {
    let mut groups: std::collections::BTreeMap<String, Vec<Event>> = std::collections::BTreeMap::new();
    for event in batches.iter().flatten() {
        groups.entry(event.event_type().to_string()).or_default().push(event.clone());
    }
    let mapping = Mapping::parse(SPEC_METRICS, "config/metrics.yaml", DEFAULT_PREFIX).expect("spec mapping");
    let mut step = MetricsStep::new("metrics", mapping, &Telemetry::new());
    println!("{:<28} {:>8} {:>10} {:>14}", "event type", "events", "ns/event", "ns per stream event");
    let only = std::env::var("METRICS_BENCH_TYPE").ok();
    for (event_type, events) in &groups {
        if only.as_ref().is_some_and(|o| o != event_type) {
            continue;
        }
        let mut best = Duration::MAX;
        for _ in 0..ROUNDS {
            let mut round: Vec<Batch> =
                events.chunks(BATCH).map(|c| Batch { events: c.to_vec(), ..Batch::default() }).collect();
            let started = Instant::now();
            for batch in &mut round {
                step.process(batch);
            }
            best = best.min(started.elapsed());
        }
        let ns = best.as_nanos() as f64 / events.len() as f64;
        let share = best.as_nanos() as f64 / count as f64;
        println!("{event_type:<28} {:>8} {ns:>10.1} {share:>14.1}", events.len());
    }
}

/// The field scan alone, hot in cache (`METRICS_BENCH_SCAN=1`): five `data`
/// paths looked up in every event of a batch, the batch repeated.
fn scan_only(batches: &[Vec<Event>]) {
    use synaptic_plugin_sdk::field::Finder;
    use synaptic_telemetry::event::Section;
    let finder = Finder::new(&[["agent_id"], ["task_id"], ["duration_ms"], ["success"], ["bridge_type"]]);
    let mut best = Duration::MAX;
    let mut found = 0usize;
    let events: usize = batches.iter().take(50).map(Vec::len).sum();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for batch in batches.iter().take(50) {
            for _ in 0..20 {
                for event in batch {
                    let mut out = [None, None, None, None, None];
                    event.read_section(Section::Data, &finder, &mut out);
                    found += out.iter().filter(|o| o.is_some()).count();
                }
            }
        }
        best = best.min(started.elapsed());
    }
    println!(
        "field scan, hot: {:.1} ns/event ({found} found)",
        best.as_nanos() as f64 / (events * 20) as f64
    );
}

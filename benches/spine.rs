//! Spine throughput: decode → validate → route → file sink, through the real
//! pipeline (file source, tasks, acknowledgement) on a single-threaded runtime,
//! against a baseline measured in the same run: serde_json parse + serialize of the
//! same events alone, in memory. Prints both and their ratio.
//!
//! `cargo bench --bench spine` (pin to one core with `taskset -c 0` for the figure
//! the target is stated in). Optional: `SPINE_BENCH_EVENTS=N`.

#[path = "common.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

/// The binary's allocator, so both sides of the comparison run on what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize =
        std::env::var("SPINE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    let lines = common::write_input(&input, events);
    let mean = lines.iter().map(Vec::len).sum::<usize>() / lines.len();
    println!("spine bench: {events} generator events, mean {mean} bytes");

    // `SPINE_BENCH_ONLY=baseline|spine|tag` runs one part, for `perf stat`.
    let only = std::env::var("SPINE_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    // Rounds are interleaved (baseline, spine, tagged, baseline, …) and the best of
    // each kept, so load from other tenants of the machine hits all three alike.
    let (mut baseline, mut plain, mut tagged) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        if part("baseline") {
            baseline = baseline.min(run_baseline(&lines));
        }
        if part("spine") {
            plain = plain.min(spine(dir.path(), &input, false));
        }
        if part("tag") {
            tagged = tagged.min(spine(dir.path(), &input, true));
        }
    }
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("baseline  serde_json parse+serialize      {:>10.0} events/s", rate(baseline));
    println!(
        "spine     decode→validate→route→file      {:>10.0} events/s  ratio {:.2}",
        rate(plain),
        baseline.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "spine+tag every event changed, re-encoded {:>10.0} events/s  ratio {:.2}",
        rate(tagged),
        baseline.as_secs_f64() / tagged.as_secs_f64()
    );
}

fn run_baseline(lines: &[Vec<u8>]) -> Duration {
    let started = Instant::now();
    let mut out = Vec::with_capacity(512 * 1024);
    for chunk in lines.chunks(512) {
        out.clear();
        for line in chunk {
            let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
            serde_json::to_writer(&mut out, &value).expect("serialize");
            out.push(b'\n');
        }
        black_box(&out);
    }
    started.elapsed()
}

fn spine(dir: &Path, input: &Path, tag: bool) -> Duration {
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let batch = std::env::var("SPINE_BENCH_BATCH").unwrap_or_else(|_| "512".into());
    let steps = if tag { "pipeline: [{type: tag, tags: {pipeline: bench}}]\n" } else { "" };
    let text = format!(
        "source: {{type: file, path: {}}}\nbatch: {{max_events: {batch}}}\n{steps}\
         sinks: [{{name: out, type: file, path: {}}}]\n\
         dead_letter: {{type: file, path: {}}}\n\
         server: {{listen: \"127.0.0.1:0\"}}\n",
        input.display(),
        out.display(),
        dir.join("dead.jsonl").display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    common::run_pipeline(&text, &runtime)
}

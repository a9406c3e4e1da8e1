//! Disk buffers' cost: events/s through file source → file sink with the default
//! memory buffer, against the same pipeline with a disk buffer in front of the
//! sink (`fsync: interval`, then `fsync: every_batch`), measured in the same run
//! with rounds interleaved and the best of each kept. Prints the rates and the
//! ratios to the memory-buffered pipeline.
//!
//! `cargo bench --bench buffers`. Optional: `BUFFER_BENCH_EVENTS=N`.

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

const ROUNDS: usize = 5;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize =
        std::env::var("BUFFER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    common::write_input(&input, events);
    println!("buffer bench: {events} generator events, file source → file sink, batches of 512");

    let variants = [
        ("memory buffer (default)", ""),
        ("disk buffer, fsync: interval", "buffer: {type: disk, path: BUF, fsync: interval}"),
        ("disk buffer, fsync: every_batch", "buffer: {type: disk, path: BUF, fsync: every_batch}"),
    ];
    let mut best = [Duration::MAX; 3];
    for _ in 0..ROUNDS {
        for (i, (_, buffer)) in variants.iter().enumerate() {
            best[i] = best[i].min(run(dir.path(), &input, events, buffer));
        }
    }
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "{name:<34} {:>10.0} events/s  ratio {:.2}",
            rate(best[i]),
            best[0].as_secs_f64() / best[i].as_secs_f64()
        );
    }
}

fn run(dir: &Path, input: &Path, events: usize, buffer: &str) -> Duration {
    let out = dir.join("out.jsonl");
    let buffer_dir = dir.join("buffer");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&buffer_dir);
    let buffer = buffer.replace("BUF", &buffer_dir.display().to_string());
    let sep = if buffer.is_empty() { "" } else { ", " };
    let text = format!(
        "source: {{type: file, path: {}}}\nbatch: {{max_events: 512}}\n\
         sinks: [{{name: out, type: file, path: {}{sep}{buffer}}}]\n\
         dead_letter: {{type: file, path: {}}}\n\
         server: {{listen: \"127.0.0.1:0\"}}\n",
        input.display(),
        out.display(),
        dir.join("dead.jsonl").display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let elapsed = common::run_pipeline(&text, &runtime);
    let written = std::fs::read(&out).expect("output").iter().filter(|b| **b == b'\n').count();
    assert_eq!(written, events, "every event written by the sink");
    elapsed
}

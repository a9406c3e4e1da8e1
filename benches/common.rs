//! What the benchmarks share: the generator's events and the plugins built for
//! this target directory. Each bench uses part of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;

/// `count` valid generator events (seed 42), as the pipeline receives them.
pub fn generator_lines(count: usize) -> Vec<Bytes> {
    let config = GeneratorConfig {
        rate: 1000.0,
        total: 0,
        seed: 42,
        malformed_ratio: 0.0,
        start_ms: Some(1_767_225_600_000),
    };
    let mut traffic = Traffic::new(&config, 0);
    (0..count).map(|_| Bytes::from(traffic.next_event())).collect()
}

/// Builds the plugins with `plugins/build.sh` into this bench's target directory
/// and returns the directory of the built `.wasm` files.
pub fn build_plugins() -> PathBuf {
    // …/target/release/deps/<bench>-<hash>
    let exe = std::env::current_exe().expect("bench path");
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(root.join("plugins/build.sh"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("plugins/build.sh runs");
    assert!(status.success(), "plugins/build.sh failed");
    target.join("wasm32-wasip2/plugin")
}

/// Decodes and validates one batch of lines, as the pipeline does; `first` is the
/// sequence number of its first line. Invalid lines are left out.
pub fn decode_batch(lines: &[Bytes], first: usize) -> Vec<synaptic_telemetry::event::Event> {
    use synaptic_telemetry::event::{Event, Position, SchemaMode};
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let seq = (first + i) as u64;
            Event::decode(l.clone(), Position::Generator { seq }, SchemaMode::Strict).ok()
        })
        .collect()
}

/// Writes `count` generator events to `path`, one per line; returns them.
pub fn write_input(path: &Path, count: usize) -> Vec<Vec<u8>> {
    use std::io::Write;
    let lines: Vec<Vec<u8>> = generator_lines(count).iter().map(|l| l.to_vec()).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("input file"));
    for line in &lines {
        file.write_all(line).and_then(|()| file.write_all(b"\n")).expect("write input");
    }
    file.flush().expect("flush input");
    lines
}

/// Runs the pipeline `text` configures on `runtime` to its end; its wall time,
/// after checking that every event read was acknowledged.
pub fn run_pipeline(text: &str, runtime: &tokio::runtime::Runtime) -> std::time::Duration {
    use synaptic_telemetry::app::{self, RunOptions};
    let config = synaptic_telemetry::config::Config::parse(text, "bench").expect("bench config");
    let options =
        RunOptions { listen: None, shutdown: tokio_util::sync::CancellationToken::new(), on_listening: None };
    let started = std::time::Instant::now();
    let summary = runtime.block_on(app::run(config, options)).expect("pipeline runs");
    let elapsed = started.elapsed();
    assert_eq!(summary.acknowledged, summary.read, "every event acknowledged");
    elapsed
}

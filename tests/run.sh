#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then runs
# every test, and a short run of the benchmark to prove it still works.
#
#   tests/run.sh
#
# Builds go to $CARGO_TARGET_DIR (default ~/.cache/synaptic-telemetry/target), so a
# fresh clone reuses earlier builds.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/synaptic-telemetry/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "checking the toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust 1.95 with rustup first" >&2
    exit 1
fi
cargo --version
# The C parts of dependencies (the allocator) need a C compiler and make.
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    step "installing a C toolchain"
    apt-get update -qq && apt-get install -y -qq build-essential
fi

# Real services the tests talk to, from Debian: Prometheus and promtool (scrape and
# lint /metrics), Alertmanager (alert delivery), InfluxDB 1.x (the influxdb sink);
# curl for their admin calls; chromium and tmux for the operators' views; stunnel (TLS in front of the Kafka broker); perl
# (OpenSSL's build, vendored into librdkafka for Kafka TLS and SCRAM).
missing=()
command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# python3 and GNU time for benches/chain.sh (its events; CPU-seconds per process).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
# The TypeScript and Python plugin SDKs: Node.js (20.6 or later) and npm build and
# test the TypeScript plugins; Python's venv holds componentize-py (plugins/build.sh).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# Headless Chromium loads the status page; tmux runs `top` for the tests to read.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# A Kafka-protocol broker for the Kafka tests: tansu, pinned, from crates.io.
export PATH="$HOME/.cargo/bin:$PATH"
TANSU_VERSION=0.6.0
if ! command -v tansu >/dev/null 2>&1 || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    step "installing tansu $TANSU_VERSION (Kafka-protocol broker; takes several minutes once)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
fi
# The same broker with SQLite storage, for the SASL tests: SCRAM users are created
# before authentication is switched on, so they must outlive a broker restart.
export TANSU_SQL="$HOME/.cache/synaptic-telemetry/tansu-sql/bin/tansu"
if [ ! -x "$TANSU_SQL" ] || ! "$TANSU_SQL" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    step "installing tansu $TANSU_VERSION with SQLite storage (for the Kafka SASL tests; once)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
        --root "$HOME/.cache/synaptic-telemetry/tansu-sql"
fi

step "building the plugins: Rust (wasm32-wasip2), TypeScript (componentize-js), Python (componentize-py)"
plugins/build.sh

step "unit and integration tests (and a short fuzzing run: tests/fuzz.rs)"
# Tests run on the release profile, like the benchmarks below (the bench profile is
# the release one): every dependency is built once, optimized, not twice.
# The Kafka tests run several pipeline processes against one broker each; run them
# one at a time so that CPU contention does not turn into broker backlog.
cargo test --release --workspace --locked -- --skip mock_cluster_ --skip tansu_
cargo test --release --workspace --locked --test kafka -- --test-threads=1

step "benchmark smoke run (20,000 events; the full run is: cargo bench --bench spine)"
SPINE_BENCH_EVENTS=20000 cargo bench --locked --bench spine

step "plugin benchmark smoke run (20,000 events; the full run is: cargo bench --bench plugin)"
PLUGIN_BENCH_EVENTS=20000 cargo bench --locked --bench plugin

step "plugin languages benchmark smoke run (20,000 events; the full run is: cargo bench --bench plugin_languages)"
PLUGIN_LANG_BENCH_EVENTS=20000 PLUGIN_LANG_BENCH_SWAPS=1 cargo bench --locked --bench plugin_languages

step "standard plugins benchmark smoke run (20,000 events; the full run is: cargo bench --bench standard_plugins)"
STANDARD_BENCH_EVENTS=20000 cargo bench --locked --bench standard_plugins

step "metrics benchmark smoke run (20,000 events; the full run is: cargo bench --bench metrics)"
METRICS_BENCH_EVENTS=20000 cargo bench --locked --bench metrics

step "alerts benchmark smoke run (20,000 events; the full run is: cargo bench --bench alerts)"
ALERTS_BENCH_EVENTS=20000 cargo bench --locked --bench alerts

step "kafka benchmark smoke run (20,000 events; the full run is: cargo bench --bench kafka)"
KAFKA_BENCH_EVENTS=20000 cargo bench --locked --bench kafka

step "full-chain benchmark smoke run (20,000 events; the full run is: benches/chain.sh)"
benches/chain.sh 20000 1 20000

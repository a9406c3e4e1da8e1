#!/usr/bin/env bash
# Resident memory during a sink outage: the release binary at 5,000 events/s with
# a stdout sink (to /dev/null) beside an http sink whose receiver is down, once
# with a memory buffer and once with a disk buffer in front of the http sink
# (both `when_full: drop_newest`, so the pipeline keeps its pace). Prints RSS
# every SAMPLE seconds for DURATION seconds, then the peak.
#
#   benches/rss_outage.sh [DURATION_SECONDS] [SAMPLE_SECONDS]
set -euo pipefail
duration=${1:-600}
sample=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin synaptic-telemetry
bin=$target/release/synaptic-telemetry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A port nothing listens on: connection refused, as when the receiver is down.
dead_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

run() {
  local name=$1 buffer=$2
  cat > "$work/$name.yaml" <<YAML
source: {type: generator, rate: 5000, total: 0, seed: 3}
sinks:
  - {name: out, type: stdout}
  - {name: down, type: http, url: "http://127.0.0.1:$dead_port/ingest", buffer: $buffer}
dead_letter: {type: file, path: $work/$name-dead.jsonl}
server: {listen: "127.0.0.1:0"}
YAML
  "$bin" run --config "$work/$name.yaml" > /dev/null 2> "$work/$name.log" &
  local pid=$! peak=0
  echo "== $name: $buffer"
  for ((t = 0; t <= duration; t += sample)); do
    local rss
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    (( rss > peak )) && peak=$rss
    printf '%5ds  RSS %6d KiB\n' "$t" "$rss"
    (( t < duration )) && sleep "$sample"
  done
  kill -TERM "$pid"; wait "$pid" || true
  echo "== $name: peak RSS $((peak / 1024)) MiB over ${duration}s"
}

run memory "{type: memory, when_full: drop_newest}"
run disk "{type: disk, path: $work/buffer, max_bytes: 256MiB, when_full: drop_newest}"

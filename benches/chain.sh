#!/usr/bin/env bash
# The full-chain benchmark, on the release binary, every leg run ROUNDS times,
# interleaved, CPU = user + sys of the process (GNU time):
#
# Part 1, the chain users compare with a peer's (Vector: parse, redact, sample
# 1/10 by event id, drop DEBUG), on EVENTS PII-heavy task.completed events
# (benches/chain/pii_events.py):
#   baseline  a bare serde_json parse+serialize loop (benches/serde_baseline.rs)
#   parse     file source → validate → stdout
#   chain     file source → pii_scrub (every detector, every string) → sample 0.1
#             by event_id → filter min INFO → stdout; compiled plugins cached
#   cold      the same with the plugin cache off (start-up compiles all three)
#   vector    the same chain in Vector, when a `vector` binary is on PATH
# Part 2, scaling: the demo's chain (pii_scrub → metrics → traces → alerts →
# drop → filter → sample → file sink) on SCALE_EVENTS generated events with
# workers 1, 2 and 4: events/s from wall time; beside it, two serde_json loops at
# once against one, for what the machine's cores give together.
# Part 3, start-up: one event through part 1's chain, cache cold and warm; the time
# to serving with the pii_scrub plugin, cache cold and warm, and the swap latency to
# a new version and back to a cached one (benches/chain/swap_latency.py).
#
#   benches/chain.sh [EVENTS] [ROUNDS] [SCALE_EVENTS]
set -euo pipefail
events=${1:-1000000}
rounds=${2:-2}
scale_events=${3:-300000}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/synaptic-telemetry/target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin synaptic-telemetry
"$root/plugins/build.sh"
baseline_bin=$(cargo bench --no-run --manifest-path "$root/Cargo.toml" --bench serde_baseline 2>&1 \
  | sed -n 's/.*Executable.*(\(.*\)).*/\1/p' | tail -1)
bin=$CARGO_TARGET_DIR/release/synaptic-telemetry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" "$work/cache"
cp "$root"/plugins/{pii_scrub,sample,filter}.wasm "$root/plugins/filter.rhai" "$work/plugins/"

python3 "$root/benches/chain/pii_events.py" "$events" > "$work/pii.jsonl"
python3 "$root/benches/chain/pii_events.py" 1 > "$work/one.jsonl"
"$bin" generate --count "$scale_events" --seed 5 --out "$work/demo.jsonl"
echo "inputs: $events PII-heavy events, $(( $(wc -c < "$work/pii.jsonl") / events )) bytes each; $scale_events demo events"

chain_config() { # name input workers cache
  cat > "$work/$1.yaml" <<YAML
workers: $3
source: {type: file, path: $2}
batch: {max_events: 512, linger: 50ms}
plugins: {dir: $work/plugins, watch: false, cache: $4}
pipeline:
  - {name: pii_scrub, type: plugin, file: pii_scrub.wasm}
  - {name: sample, type: plugin, file: sample.wasm, config: {rules: [], default_rate: 0.1, always_keep: none}}
  - {name: filter, type: plugin, file: filter.wasm, config: {min_severity: INFO}}
sinks: [{name: out, type: stdout}]
dead_letter: {type: file, path: $work/$1-dead.jsonl}
server: {listen: "127.0.0.1:0"}
YAML
}
cat > "$work/parse.yaml" <<YAML
workers: 1
source: {type: file, path: $work/pii.jsonl}
batch: {max_events: 512, linger: 50ms}
sinks: [{name: out, type: stdout}]
dead_letter: {type: file, path: $work/parse-dead.jsonl}
server: {listen: "127.0.0.1:0"}
YAML
chain_config chain "$work/pii.jsonl" 1 "$work/cache"
chain_config chain2 "$work/pii.jsonl" 2 "$work/cache"
chain_config cold "$work/pii.jsonl" 1 off
chain_config one_cold "$work/one.jsonl" 1 off
chain_config one_warm "$work/one.jsonl" 1 "$work/cache"
for workers in 1 2 4; do
  cat > "$work/scale$workers.yaml" <<YAML
workers: $workers
source: {type: file, path: $work/demo.jsonl}
batch: {max_events: 512, linger: 50ms}
plugins: {dir: $work/plugins, watch: false, cache: $work/cache}
pipeline:
  - {name: pii_scrub, type: plugin, file: pii_scrub.wasm, config: {mode: redact, detectors: {card: mask}}}
  - {type: metrics}
  - {type: traces, sampling_rate: 0.1}
  - {type: alerts, rules: $root/rules, receivers: [{name: log, type: file, path: $work/alerts$workers.jsonl}]}
  - {type: drop, match: {event_type: system.health}}
  - {name: filter, type: plugin, file: filter.rhai, config: {min_severity: INFO}}
  - {name: sample, type: plugin, file: sample.wasm}
sinks: [{name: archive, type: file, path: $work/scale$workers-out.jsonl}]
dead_letter: {type: file, path: $work/scale$workers-dead.jsonl}
server: {listen: "127.0.0.1:0"}
YAML
done

# Prints "user+sys wall" of one run; its output goes to /dev/null.
measure() {
  /usr/bin/time -f "%U %S %e" -o "$work/time" "$@" > /dev/null 2> "$work/stderr" || {
    echo "failed: $*" >&2; tail -5 "$work/stderr" >&2; exit 1; }
  awk '{printf "%.2f %.2f\n", $1 + $2, $3}' "$work/time"
}
run_leg() { # leg → appends "cpu wall" to $work/leg.times
  local leg=$1 result
  case $leg in
    baseline) result=$(measure "$baseline_bin" "$work/pii.jsonl") ;;
    # Two baselines at once: what the machine's cores give together (shared or
    # throttled cores give less than 2×), the ceiling of any scaling figure.
    pair) result=$(measure bash -c "'$baseline_bin' '$work/pii.jsonl' > /dev/null & '$baseline_bin' '$work/pii.jsonl'; wait") ;;
    vector) result=$(measure vector --quiet --config "$root/benches/chain/vector.yaml" \
              --threads 1 < "$work/pii.jsonl") ;;
    scale*) rm -f "$work/$leg-out.jsonl"; result=$(measure "$bin" run --config "$work/$leg.yaml") ;;
    *) result=$(measure "$bin" run --config "$work/$leg.yaml") ;;
  esac
  echo "$result" >> "$work/$leg.times"
  printf '  %-10s cpu %7s s  wall %7s s\n' "$leg" $result
}

legs=(baseline parse chain chain2 cold)
command -v vector > /dev/null && legs+=(vector) || echo "(no vector binary on PATH: the peer leg is skipped)"
# Warm the cache once, untimed.
"$bin" run --config "$work/one_warm.yaml" > /dev/null 2>&1
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  for leg in "${legs[@]}" pair scale1 scale2 scale4; do run_leg "$leg"; done
  run_leg one_cold; run_leg one_warm
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cpu() { cut -d' ' -f1 "$work/$1.times" | median; }
wall() { cut -d' ' -f2 "$work/$1.times" | median; }
per_million() { awk -v c="$1" -v n="$events" 'BEGIN {printf "%.2f", c * 1000000 / n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo
echo "medians over $rounds rounds (CPU-s per million events; × = ratio to the serde_json baseline, same run)"
base=$(cpu baseline)
for leg in "${legs[@]}"; do
  printf '  %-10s %7s CPU-s/M  %6s×  wall %s s\n' "$leg" "$(per_million "$(cpu "$leg")")" \
    "$(ratio "$(cpu "$leg")" "$base")" "$(wall "$leg")"
done
echo "  chain / parse: $(ratio "$(cpu chain)" "$(cpu parse)")×   cold / chain: $(ratio "$(cpu cold)" "$(cpu chain)")×"
if command -v vector > /dev/null; then
  echo "  chain / vector: $(ratio "$(cpu chain)" "$(cpu vector)")×"
fi
echo
echo "scaling, demo chain, $scale_events events (events/s from wall time)"
w1=$(wall scale1)
for workers in 1 2 4; do
  w=$(wall "scale$workers")
  printf '  workers %s: %8.0f events/s  %s× workers 1  (CPU %s s)\n' "$workers" \
    "$(awk -v n="$scale_events" -v w="$w" 'BEGIN {print n / w}')" "$(ratio "$w1" "$w")" "$(cpu "scale$workers")"
done
echo "  workers 4 / workers 2: $(ratio "$(wall scale2)" "$(wall scale4)")× (events/s)"
echo "  the machine: two serde_json loops at once do $(awk -v a="$(wall baseline)" -v b="$(wall pair)" \
  'BEGIN {printf "%.2f", 2 * a / b}')× the work of one in the same wall time"
echo
rm -rf "$work/swap-cache"
python3 "$root/benches/chain/swap_latency.py" "$bin" "$work" "$work/plugins"
echo
echo "start-up, one event through the chain: cold cache $(cpu one_cold) CPU-s, $(wall one_cold) s wall;" \
  "warm cache $(cpu one_warm) CPU-s, $(wall one_warm) s wall"

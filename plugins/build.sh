#!/usr/bin/env bash
# Builds the Rust plugins in plugins/standard and plugins/examples for wasm32-wasip2
# (adding the target through rustup when it is missing) and copies the standard
# plugins and the examples into plugins/.
#
#   plugins/build.sh
#
# Builds go to $CARGO_TARGET_DIR (default ~/.cache/synaptic-telemetry/target), under
# wasm32-wasip2/plugin/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/synaptic-telemetry/target}"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

packages=()
for dir in plugins/standard/*/ plugins/examples/*/; do
    packages+=(-p "plugin-$(basename "$dir")")
done
cargo build --quiet --locked --profile plugin --target wasm32-wasip2 "${packages[@]}"

# `faulty` misbehaves on purpose; it is for tests only and stays out of plugins/.
for name in sample filter pii_scrub identity stamp severity_floor; do
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/plugin/$name.wasm" plugins/
done

#!/usr/bin/env bash
# Builds every plugin of this repository into WebAssembly components and copies the
# standard plugins and the examples into plugins/:
#   - Rust: plugins/standard and plugins/examples, for wasm32-wasip2 (the target is
#     added through rustup when missing);
#   - TypeScript: plugins/js/examples, with the SDK's builder (esbuild, then
#     componentize-js from the npm registry; `npm ci` in plugins/js when needed);
#   - Python: plugins/python/examples, with componentize-py from PyPI (installed in
#     a virtual environment under ~/.cache/synaptic-telemetry when missing).
#
#   plugins/build.sh               every plugin
#   plugins/build.sh --rust-only   the Rust ones only (what the demo runs; no Node.js
#                                  or Python needed)
#
# Builds go to $CARGO_TARGET_DIR (default ~/.cache/synaptic-telemetry/target), under
# wasm32-wasip2/plugin/. A TypeScript or Python component is built again only when
# its sources, the SDK, the contract or the tool's version changed.
set -euo pipefail
cd "$(dirname "$0")/.."

rust_only=false
case "${1:-}" in
    "") ;;
    --rust-only) rust_only=true ;;
    *) echo "usage: plugins/build.sh [--rust-only]" >&2; exit 2 ;;
esac

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
if $rust_only; then
    exit 0
fi

out="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
# The SHA-256 of every file under the given paths (caches and installs left out):
# a component is rebuilt when this changes.
inputs_hash() {
    find "$@" -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print0 |
        sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
# build_if_changed NAME HASH COMMAND...: runs COMMAND (which writes $out/NAME.wasm)
# unless NAME.wasm was built from inputs of HASH, and records HASH.
build_if_changed() {
    local name=$1 hash=$2
    shift 2
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$out/$name.wasm.inputs" 2>/dev/null)" = "$hash" ]; then
        return
    fi
    echo "building $out/$name.wasm" >&2
    "$@" >&2
    echo "$hash" > "$out/$name.wasm.inputs"
}

# TypeScript: Node.js 20.6 or later (module hooks, for the SDK's tests) and npm.
node_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || true)
if [ -z "$node_major" ] || [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
    echo "plugins/build.sh: the TypeScript plugins need Node.js 20 or later and npm (found: ${node_major:-none})" >&2
    exit 1
fi
lock_hash=$(sha256sum plugins/js/package-lock.json | cut -d' ' -f1)
if [ "$(cat plugins/js/node_modules/.synaptic-lock 2>/dev/null)" != "$lock_hash" ]; then
    echo "installing the TypeScript SDK's packages (npm ci in plugins/js)" >&2
    (cd plugins/js && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > plugins/js/node_modules/.synaptic-lock
fi
for dir in plugins/js/examples/*/ plugins/js/bench/*/; do
    name="$(basename "$dir" | tr - _)_ts"
    hash=$(inputs_hash plugins/js/sdk "$dir" plugins/wit plugins/js/package-lock.json)
    build_if_changed "$name" "$hash" node plugins/js/sdk/bin/build.mjs "$dir/plugin.ts" "$out/$name.wasm"
done

# Python: componentize-py, pinned, in its own virtual environment.
COMPONENTIZE_PY_VERSION=0.25.1
venv="$HOME/.cache/synaptic-telemetry/componentize-py-$COMPONENTIZE_PY_VERSION"
if [ ! -x "$venv/bin/componentize-py" ]; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION (PyPI) in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
for dir in plugins/python/examples/*/ plugins/python/bench/*/; do
    module=$(basename "$dir")
    name="${module}_py"
    hash=$(inputs_hash plugins/python/sdk/synaptic_plugin "$dir" plugins/wit; echo "$COMPONENTIZE_PY_VERSION")
    # componentize-py imports the module at build time and snapshots the interpreter
    # after it (its own pre-initialisation): imports and module-level setup cost
    # nothing when an instance starts.
    build_if_changed "$name" "$hash" "$venv/bin/componentize-py" -d plugins/wit -w plugin componentize \
        -p plugins/python/sdk -p "$dir" "$module" -o "$out/$name.wasm"
done

# `faulty_*` misbehave on purpose; `identity_*` and `setup_*` are for the benchmarks: they stay
# out of plugins/.
for name in severity_filter_ts redact_ts severity_filter_py redact_py; do
    cp "$out/$name.wasm" plugins/
done

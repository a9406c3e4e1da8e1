// The host's imports in a plugin's own tests: log lines and counters are recorded
// on a global that `testing.logs()` and `testing.counters()` read.
const state = (globalThis.__synapticPluginHost ??= { logs: [], counters: new Map() });

export function log(level, message) {
  state.logs.push({ level, message });
}

export function count(name, delta) {
  if (typeof delta !== 'bigint') throw new TypeError('count: delta must be a bigint (u64)');
  state.counters.set(name, (state.counters.get(name) ?? 0n) + delta);
}

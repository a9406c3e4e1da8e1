// What the host offers a plugin: its log and its counters. In the component these
// are the contract's imports; in a plugin's own tests (`npm test`, under
// `@synaptic/plugin-sdk/testing/register`) the same import resolves to a recorder
// that `testing.counters()` and `testing.logs()` read.

import { log as hostLog, count as hostCount } from 'synaptic:plugin/host@1.0.0';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Writes one line to the service's log, tagged with the plugin's name. The host rate-limits it. */
export function log(level: Level, message: string): void {
  hostLog(level, message);
}

/**
 * Adds `delta` (a whole number ≥ 0) to the plugin's counter `name`, exported on /metrics as
 * `synaptic_telemetry_plugin_guest_counter_total{plugin, name}`.
 */
export function count(name: string, delta: number): void {
  if (!Number.isSafeInteger(delta) || delta < 0) {
    throw new RangeError(`count(${JSON.stringify(name)}, ${delta}): delta must be a whole number >= 0`);
  }
  hostCount(name, BigInt(delta));
}

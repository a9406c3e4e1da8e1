// Running a plugin's logic in Node's own test runner, without the host: the same
// contract encoding the component uses, around the same plugin object.
//
//   node --import tsx --import @synaptic/plugin-sdk/testing/register --test

import { decode, type Verdict } from './contract.ts';
import type { PluginExports } from './index.ts';

const encoder = new TextEncoder();

type HostState = { logs: { level: string; message: string }[]; counters: Map<string, bigint> };

function hostState(): HostState {
  const global = globalThis as { __synapticPluginHost?: HostState };
  return (global.__synapticPluginHost ??= { logs: [], counters: new Map() });
}

/** Packs events (objects or JSON text) into one batch buffer, as the host does. */
export function batch(events: readonly (string | object)[]): { data: Uint8Array; offsets: Uint32Array } {
  const parts = events.map((e) => encoder.encode(typeof e === 'string' ? e : JSON.stringify(e)));
  const offsets = new Uint32Array(parts.length + 1);
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.forEach((part, i) => {
    data.set(part, offsets[i]);
    offsets[i + 1] = offsets[i] + part.length;
  });
  return { data, offsets };
}

/** Calls `init(config)` then `process` on one batch of `events`; the verdicts, decoded. */
export function run(plugin: PluginExports, config: object, events: readonly (string | object)[]): Verdict[] {
  plugin.init(JSON.stringify(config));
  return runAgain(plugin, events);
}

/** Runs one more batch through an already initialised plugin (to test state across batches). */
export function runAgain(plugin: PluginExports, events: readonly (string | object)[]): Verdict[] {
  return decode(plugin.process(batch(events)));
}

/** A replaced event's document. */
export function replacedDocument(verdict: Verdict): unknown {
  if (verdict.kind !== 'replace') throw new Error(`expected a replacement, got ${verdict.kind}`);
  return JSON.parse(new TextDecoder().decode(verdict.bytes));
}

/** The counters plugins have counted so far in this test process. */
export function counters(): Map<string, bigint> {
  return new Map(hostState().counters);
}

/** The log lines plugins have written so far in this test process. */
export function logs(): { level: string; message: string }[] {
  return [...hostState().logs];
}

/** Forgets recorded counters and log lines. */
export function reset(): void {
  const state = hostState();
  state.logs.length = 0;
  state.counters.clear();
}

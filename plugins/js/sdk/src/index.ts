// Write synaptic-telemetry plugins in TypeScript or JavaScript.
//
// A plugin is a factory: given the step's `config` map it returns an object with
// `process(event)` (and optionally `processBatch(events)`). `definePlugin` turns it
// into the two functions the contract exports, `init` and `process`:
//
//   import { definePlugin, Verdict, Severity } from '@synaptic/plugin-sdk';
//   export const { init, process } = definePlugin(() => ({
//     process: (event) => (event.severity === Severity.DEBUG ? Verdict.drop : Verdict.keep),
//   }));
//
// Build it with `synaptic-plugin-build plugin.ts plugin.wasm` and drop the .wasm
// into the service's plugins/ directory.

import { encode, events, offsetsError, Verdict, VerdictWriter, type Batch, type Verdicts } from './contract.ts';
import { Event } from './event.ts';

export { Event, Severity, parseSeverity, severityName, type Document, type Json } from './event.ts';
export { Verdict, type Batch, type Verdicts } from './contract.ts';
export { log, count, type Level } from './host.ts';
export { configString, configStrings } from './config.ts';

/** The plugin's `config` map from the pipeline file. */
export type Config = { [key: string]: unknown };

/** What a plugin factory returns. */
export interface Plugin {
  /** The verdict on one event. */
  process(event: Event): Verdict;
  /**
   * The verdicts on a whole batch, one per event in order; implement it to work
   * across events. Throwing fails the batch: the host dead-letters it (or passes it
   * with `on_error: pass`).
   */
  processBatch?(events: Event[]): Verdict[];
}

/** The contract's exports, ready to be exported from the plugin's entry module. */
export interface PluginExports {
  init(config: string): void;
  process(batch: Batch): Verdicts;
}

/**
 * Makes the contract's `init` and `process` from a plugin factory. The factory runs in
 * `init`, once per instance; throwing there (with a message naming the bad key) rejects
 * this version of the plugin and the host keeps the one it has.
 */
export function definePlugin(factory: (config: Config) => Plugin): PluginExports {
  let plugin: Plugin | undefined;
  return {
    init(config: string): void {
      plugin = undefined;
      try {
        plugin = factory(parseConfig(config));
      } catch (error) {
        // The contract's error is a string; componentize-js maps a thrown string to `err`.
        throw describe(error);
      }
    },
    process(batch: Batch): Verdicts {
      try {
        if (plugin === undefined) throw new Error('process was called before init');
        if (plugin.processBatch) {
          const list = events(batch);
          return encode(plugin.processBatch(list), list.length);
        }
        // One pass, no array of events or verdicts: the engine interprets, and
        // every object made per event shows in the cost.
        const { data, offsets } = batch;
        if (offsets.length === 0) throw offsetsError(batch, 0);
        const writer = new VerdictWriter(offsets.length - 1);
        for (let i = 0; i + 1 < offsets.length; i++) {
          const start = offsets[i];
          const end = offsets[i + 1];
          if (end < start || end > data.length) throw offsetsError(batch, i);
          writer.set(i, plugin.process(new Event(data, start, end)));
        }
        return writer.finish();
      } catch (error) {
        throw describe(error);
      }
    },
  };
}

/** Parses the JSON object the host passes to `init` ("" for none). */
export function parseConfig(json: string): Config {
  if (json.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new Error(`plugin config is not valid JSON: ${describe(error)}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('plugin config must be a map');
  }
  return parsed as Config;
}

/** An error as one line: `TypeError: x is undefined`. */
function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

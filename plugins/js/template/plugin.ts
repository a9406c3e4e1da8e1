// A synaptic-telemetry plugin. `init` gets the step's `config` map once per instance;
// `process` gives each event a verdict: Verdict.keep, Verdict.drop or
// Verdict.replace(changedDocument).
//
//   npm test        runs plugin.test.ts in Node, without the host
//   npm run build   writes plugin.wasm; copy it into the service's plugins/ directory
import { configStrings, count, definePlugin, Verdict, type Event } from '@synaptic/plugin-sdk';

export const { init, process } = definePlugin((config) => {
  // Read and check the config here: a throw rejects this version, naming the key.
  const dropTypes = new Set(configStrings(config, 'drop_event_types') ?? []);
  return {
    process(event: Event): Verdict {
      if (event.eventType !== undefined && dropTypes.has(event.eventType)) {
        count('dropped_by_type', 1);
        return Verdict.drop;
      }
      return Verdict.keep;
    },
  };
});

// Keeps every event: the baseline of the per-event cost of a TypeScript plugin
// (the SDK's batch decoding and encoding, one call per event).
import { definePlugin, Verdict } from '@synaptic/plugin-sdk';

export const { init, process } = definePlugin(() => ({
  process: () => Verdict.keep,
}));

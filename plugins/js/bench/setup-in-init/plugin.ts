// Benchmark only (benches/plugin_languages.rs): the same setup as setup-at-import,
// done in the factory, so every instance pays for it when it starts.
import { definePlugin, Verdict } from '@synaptic/plugin-sdk';

export const { init, process } = definePlugin(() => {
  const patterns = Array.from({ length: 300 }, (_, i) => new RegExp(`user-${i}-[a-z]+@example\\.(com|org)`));
  const table = new Map(Array.from({ length: 50_000 }, (_, i) => [`agent-${String(i).padStart(5, '0')}`, i]));
  return { process: (event) => (patterns.length > 0 && table.size > 0 && event ? Verdict.keep : Verdict.drop) };
});

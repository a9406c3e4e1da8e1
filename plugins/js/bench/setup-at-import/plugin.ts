// Benchmark only (benches/plugin_languages.rs): setup at module level, which the
// build's pre-initialisation runs once, at build time. Compare setup-in-init.
import { definePlugin, Verdict } from '@synaptic/plugin-sdk';

const PATTERNS = Array.from({ length: 300 }, (_, i) => new RegExp(`user-${i}-[a-z]+@example\\.(com|org)`));
const TABLE = new Map(Array.from({ length: 50_000 }, (_, i) => [`agent-${String(i).padStart(5, '0')}`, i]));

export const { init, process } = definePlugin(() => ({
  process: (event) => (PATTERNS.length > 0 && TABLE.size > 0 && event ? Verdict.keep : Verdict.drop),
}));

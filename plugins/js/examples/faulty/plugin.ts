// Misbehaves on purpose, to test that the host contains TypeScript plugins. For tests
// only; it stays out of plugins/. Config `mode`: `keep` (default), `throw` (throws on
// every batch), `loop` (never returns), `alloc` (allocates until stopped); `poison`
// does `throw` only on a batch holding an event whose `data.poison` is set.
import { configString, definePlugin, Verdict, type Event } from '@synaptic/plugin-sdk';

const MODES = ['keep', 'throw', 'loop', 'alloc', 'poison'];

export const { init, process } = definePlugin((config) => {
  const mode = configString(config, 'mode') ?? 'keep';
  if (!MODES.includes(mode)) throw new Error(`config.mode: unknown mode ${JSON.stringify(mode)}`);
  return {
    process: () => Verdict.keep,
    processBatch(events: Event[]): Verdict[] {
      if (mode === 'throw' || (mode === 'poison' && events.some((e) => e.field('data.poison') !== undefined))) {
        throw new Error('faulty plugin throws, as configured');
      }
      if (mode === 'loop') {
        let spins = 0;
        for (;;) spins = (spins + 1) | 0;
      }
      if (mode === 'alloc') {
        const hoard: Uint8Array[] = [];
        for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
      }
      return events.map(() => Verdict.keep);
    },
  };
});

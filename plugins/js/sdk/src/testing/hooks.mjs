// Module resolution hook (see register.mjs): the host import becomes fake-host.mjs.
const FAKE_HOST = new URL('./fake-host.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('synaptic:plugin/host@')) {
    return { url: FAKE_HOST, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

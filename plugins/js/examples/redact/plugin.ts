// Replaces the values of chosen fields with a mask. Config: `fields` (dotted paths,
// `data.user_email`; required), `mask` (default "[REDACTED]"). Events without any of
// the fields are kept untouched; the others are replaced, and `redacted` counts the
// fields masked. Objects and arrays at a path are masked whole.
import { configString, configStrings, count, definePlugin, Verdict, type Event, type Json } from '@synaptic/plugin-sdk';

export const { init, process } = definePlugin((config) => {
  const fields = configStrings(config, 'fields');
  if (fields === undefined || fields.length === 0) {
    throw new Error('config.fields: name at least one dotted path to redact, e.g. [data.user_email]');
  }
  const paths = fields.map((field) => {
    const parts = field.split('.');
    if (parts.some((part) => part === '')) throw new Error(`config.fields: ${JSON.stringify(field)} has an empty part`);
    return parts;
  });
  const mask = configString(config, 'mask') ?? '[REDACTED]';
  return {
    process(event: Event): Verdict {
      let doc: { [key: string]: Json } | undefined;
      let masked = 0;
      for (const path of paths) {
        // Walk to the parent object of the last key; only existing, non-null values are masked.
        let parent: Json = doc ?? event.json();
        for (const key of path.slice(0, -1)) {
          parent = parent !== null && typeof parent === 'object' && !Array.isArray(parent) ? parent[key] : null;
        }
        const last = path[path.length - 1];
        if (parent === null || parent === undefined || typeof parent !== 'object' || Array.isArray(parent)) continue;
        if (!Object.prototype.hasOwnProperty.call(parent, last) || parent[last] === null || parent[last] === mask) continue;
        parent[last] = mask;
        doc = event.json();
        masked++;
      }
      if (masked === 0 || doc === undefined) return Verdict.keep;
      count('redacted', masked);
      return Verdict.replace(doc);
    },
  };
});

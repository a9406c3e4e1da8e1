// The batch contract of plugins/wit/plugin.wit, on the JavaScript side: the batch
// buffer cut into events, and verdicts encoded as codes plus the replaced events'
// bytes back to back. Plugins never see this; `definePlugin` uses it, and so does
// `testing.run`, so a plugin's tests go through the same encoding as the host.

import { Event, type Document } from './event.ts';

const KEEP_CODE = 0;
const DROP_CODE = 1;
const REPLACE_CODE = 2;

/** Keep the event, drop it, or replace it with new bytes. */
export type Verdict =
  | { readonly kind: 'keep' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'replace'; readonly bytes: Uint8Array };

const encoder = new TextEncoder();
const KEEP: Verdict = Object.freeze({ kind: 'keep' });
const DROP: Verdict = Object.freeze({ kind: 'drop' });

export const Verdict = {
  keep: KEEP,
  drop: DROP,
  /** Replaces the event with a changed document (it must still be a schema v1.0 event). */
  replace(doc: Document): Verdict {
    // JSON.stringify writes lone surrogates as \u escapes, so the bytes are always UTF-8.
    return { kind: 'replace', bytes: encoder.encode(JSON.stringify(doc)) };
  },
  /** Replaces the event with these bytes, as they are. */
  replaceBytes(bytes: Uint8Array): Verdict {
    return { kind: 'replace', bytes };
  },
};

/** The batch record of the contract. */
export interface Batch {
  data: Uint8Array;
  offsets: Uint32Array | number[];
}

/** The verdicts record of the contract. */
export interface Verdicts {
  codes: Uint8Array;
  replacements: Uint8Array;
  replacementEnds: Uint32Array;
}

/** The error for offsets that do not cut `data` into events (empty, out of order, or past the end). */
export function offsetsError(batch: Batch, i: number): Error {
  const { data, offsets } = batch;
  if (offsets.length === 0) return new Error('batch offsets are empty (the first entry must be 0)');
  return new Error(
    `batch offsets ${offsets[i]}..${offsets[i + 1]} of event ${i} are outside the data (${data.length} bytes)`,
  );
}

/** The batch's events, each a view into `data`. Throws when the offsets do not fit the data. */
export function events(batch: Batch): Event[] {
  const { data, offsets } = batch;
  if (offsets.length === 0) throw offsetsError(batch, 0);
  const out: Event[] = new Array(offsets.length - 1);
  for (let i = 0; i + 1 < offsets.length; i++) {
    const start = offsets[i];
    const end = offsets[i + 1];
    if (end < start || end > data.length) throw offsetsError(batch, i);
    out[i] = new Event(data, start, end);
  }
  return out;
}

/** Collects one verdict per event into the contract's encoding. Unset verdicts are keep. */
export class VerdictWriter {
  private readonly codes: Uint8Array;
  private readonly replaced: Uint8Array[] = [];
  private total = 0;

  constructor(count: number) {
    this.codes = new Uint8Array(count);
  }

  /** Sets the verdict of event `i`; replacements must be set in event order. */
  set(i: number, verdict: Verdict): void {
    // Keep is the common verdict and the codes start as keep: skip it first.
    if (verdict === KEEP) return;
    switch (verdict?.kind) {
      case 'keep':
        return;
      case 'drop':
        this.codes[i] = DROP_CODE;
        return;
      case 'replace':
        this.codes[i] = REPLACE_CODE;
        this.replaced.push(verdict.bytes);
        this.total += verdict.bytes.length;
        if (this.total > 0xffffffff) throw new Error('replacements exceed 4 GiB');
        return;
      default:
        throw new Error(`verdict ${i} is not Verdict.keep, Verdict.drop or Verdict.replace(…): ${String(verdict)}`);
    }
  }

  finish(): Verdicts {
    const replacements = new Uint8Array(this.total);
    const replacementEnds = new Uint32Array(this.replaced.length);
    let at = 0;
    this.replaced.forEach((bytes, j) => {
      replacements.set(bytes, at);
      at += bytes.length;
      replacementEnds[j] = at;
    });
    return { codes: this.codes, replacements, replacementEnds };
  }
}

/** Encodes one verdict per event. Throws when the count is wrong or a verdict is not one. */
export function encode(verdicts: readonly Verdict[], count: number): Verdicts {
  if (verdicts.length !== count) {
    throw new Error(`plugin gave ${verdicts.length} verdicts for ${count} events`);
  }
  const writer = new VerdictWriter(count);
  for (let i = 0; i < count; i++) writer.set(i, verdicts[i]);
  return writer.finish();
}

/** Reads encoded verdicts back (for tests): the inverse of `encode`. */
export function decode(wire: Verdicts): Verdict[] {
  const out: Verdict[] = [];
  let replacement = 0;
  let start = 0;
  for (const code of wire.codes) {
    if (code === KEEP_CODE) out.push(KEEP);
    else if (code === DROP_CODE) out.push(DROP);
    else if (code === REPLACE_CODE) {
      const end = wire.replacementEnds[replacement++];
      if (end === undefined || end < start || end > wire.replacements.length) {
        throw new Error(`replacement ${replacement - 1} ends outside the replacement bytes`);
      }
      out.push({ kind: 'replace', bytes: wire.replacements.slice(start, end) });
      start = end;
    } else throw new Error(`unknown verdict code ${code}`);
  }
  return out;
}

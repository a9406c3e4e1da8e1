// The event as a plugin sees it: the JSON bytes the host validated, read lazily.
// Nothing is decoded until a field is asked for; then the event is parsed once
// (by the engine's native JSON parser, far faster than a scanner written in
// interpreted JavaScript) and every later read uses that document.

/** TRACE < DEBUG < INFO < WARN < ERROR < FATAL: compare them with `<`. */
export enum Severity {
  TRACE = 0,
  DEBUG = 1,
  INFO = 2,
  WARN = 3,
  ERROR = 4,
  FATAL = 5,
}

const SEVERITY_NAMES: readonly string[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

/** The severity named `text` (exactly as schema v1.0 spells it), or undefined. */
export function parseSeverity(text: unknown): Severity | undefined {
  if (typeof text !== 'string') return undefined;
  const index = SEVERITY_NAMES.indexOf(text);
  return index < 0 ? undefined : (index as Severity);
}

/** The name of a severity (`Severity.WARN` → `"WARN"`). */
export function severityName(severity: Severity): string {
  return SEVERITY_NAMES[severity] ?? 'UNKNOWN';
}

/** A JSON value as `JSON.parse` returns it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** An event's document: one JSON object of schema v1.0. */
export type Document = { [key: string]: Json };

// The host validated the bytes as UTF-8 JSON; no need to check them again.
const decoder = new TextDecoder();

/**
 * One event of a batch: where its bytes lie in the batch buffer. Nothing is
 * allocated per event until the plugin reads it (the JavaScript engine in a
 * component interprets, so each object made per event shows in the cost).
 */
export class Event {
  private readonly data: Uint8Array;
  private readonly start: number;
  private readonly end: number;
  private doc: Document | undefined;

  constructor(data: Uint8Array, start = 0, end = data.length) {
    this.data = data;
    this.start = start;
    this.end = end;
    this.doc = undefined;
  }

  /** The event's JSON bytes, exactly as the host holds them (a view: do not keep it past the batch). */
  get raw(): Uint8Array {
    return this.data.subarray(this.start, this.end);
  }

  /** The whole document, parsed once. Change it and return `Verdict.replace(doc)`. */
  json(): Document {
    if (this.doc === undefined) {
      const parsed: unknown = JSON.parse(decoder.decode(this.raw));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new TypeError('event is not a JSON object');
      }
      this.doc = parsed as Document;
    }
    return this.doc;
  }

  /**
   * The value at a dotted path (`data.agent_id`, `tags.env`), or undefined when
   * any part of the path is missing or not an object.
   */
  field(path: string): Json | undefined {
    let value: Json | undefined = this.json();
    // A top-level key (the severity, the type: read for every event) needs no split.
    if (path.indexOf('.') < 0) return Object.prototype.hasOwnProperty.call(value, path) ? value[path] : undefined;
    for (const key of path.split('.')) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
      if (!Object.prototype.hasOwnProperty.call(value, key)) return undefined;
      value = value[key];
    }
    return value;
  }

  /** A string or number field as text, like the Rust SDK's `text`; undefined otherwise. */
  text(path: string): string | undefined {
    const value = this.field(path);
    if (typeof value === 'string') return value;
    if (typeof value === 'number') return String(value);
    return undefined;
  }

  get eventType(): string | undefined {
    return this.text('event_type');
  }

  get component(): string | undefined {
    return this.text('component');
  }

  get eventId(): string | undefined {
    return this.text('event_id');
  }

  /** Undefined when the event has no severity the schema knows. */
  get severity(): Severity | undefined {
    return parseSeverity(this.field('severity'));
  }

  /** Unix milliseconds. */
  get timestampMs(): number | undefined {
    const value = this.field('timestamp');
    return typeof value === 'number' ? value : undefined;
  }
}

// Drops events below a minimum severity. Config: `min` (TRACE … FATAL, default
// INFO). Counts what it dropped as `below_floor`. The same verdicts as the Rust
// example `severity-floor` and the Python `severity_filter`.
import { configString, count, definePlugin, parseSeverity, Severity, Verdict, type Event } from '@synaptic/plugin-sdk';

export const { init, process } = definePlugin((config) => {
  const text = configString(config, 'min');
  const min = text === undefined ? Severity.INFO : parseSeverity(text);
  if (min === undefined) {
    throw new Error(`config.min: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL, got ${JSON.stringify(text)}`);
  }
  return {
    process(event: Event): Verdict {
      const severity = event.severity;
      return severity !== undefined && severity < min ? Verdict.drop : Verdict.keep;
    },
    processBatch(events: Event[]): Verdict[] {
      const verdicts = events.map((event) => this.process(event));
      const dropped = verdicts.filter((v) => v === Verdict.drop).length;
      if (dropped > 0) count('below_floor', dropped);
      return verdicts;
    },
  };
});

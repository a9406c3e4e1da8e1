"""Drops events below a minimum severity. Config: ``min`` (TRACE ... FATAL, default
INFO). Counts what it dropped as ``below_floor``. The same verdicts as the Rust
example ``severity-floor`` and the TypeScript ``severity-filter``."""

from synaptic_plugin import Config, Plugin, Severity, Verdict, count, export


class SeverityFilter(Plugin):
    def __init__(self, config: Config):
        text = config.string("min")
        self.min = Severity.INFO if text is None else Severity.parse(text)
        if self.min is None:
            raise ValueError(f"config.min: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL, got {text!r}")

    def process(self, event):
        severity = event.severity
        return Verdict.DROP if severity is not None and severity < self.min else Verdict.KEEP

    def process_batch(self, events):
        verdicts = [self.process(event) for event in events]
        dropped = sum(1 for v in verdicts if v is Verdict.DROP)
        if dropped:
            count("below_floor", dropped)
        return verdicts


WitWorld = export(SeverityFilter)

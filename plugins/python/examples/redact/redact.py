"""Replaces the values of chosen fields with a mask. Config: ``fields`` (dotted
paths, ``data.user_email``; required), ``mask`` (default "[REDACTED]"). Events
without any of the fields are kept untouched; the others are replaced, and
``redacted`` counts the fields masked. Objects and arrays at a path are masked whole.
The same output as the TypeScript ``redact``."""

from synaptic_plugin import Config, Plugin, Verdict, count, export


class Redact(Plugin):
    def __init__(self, config: Config):
        fields = config.strings("fields")
        if not fields:
            raise ValueError("config.fields: name at least one dotted path to redact, e.g. [data.user_email]")
        self.paths = []
        for field in fields:
            parts = field.split(".")
            if "" in parts:
                raise ValueError(f"config.fields: {field!r} has an empty part")
            self.paths.append(parts)
        self.mask = config.string("mask")
        if self.mask is None:
            self.mask = "[REDACTED]"

    def process(self, event):
        doc = event.json()
        masked = 0
        for path in self.paths:
            parent = doc
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            last = path[-1]
            if not isinstance(parent, dict) or parent.get(last) is None or parent[last] == self.mask:
                continue
            parent[last] = self.mask
            masked += 1
        if not masked:
            return Verdict.KEEP
        count("redacted", masked)
        return Verdict.replace(doc)


WitWorld = export(Redact)

"""Keeps every event: the baseline of the per-event cost of a Python plugin (the
SDK's batch decoding and encoding, one call per event)."""

from synaptic_plugin import Plugin, Verdict, export


class Identity(Plugin):
    def process(self, event):
        return Verdict.KEEP


WitWorld = export(Identity)

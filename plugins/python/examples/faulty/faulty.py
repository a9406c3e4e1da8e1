"""Misbehaves on purpose, to test that the host contains Python plugins. For tests
only; it stays out of plugins/. Config ``mode``: ``keep`` (default), ``throw``
(raises on every batch), ``loop`` (never returns), ``alloc`` (allocates until
stopped); ``poison`` raises only on a batch holding an event whose ``data.poison``
is set."""

from synaptic_plugin import Config, Plugin, Verdict, export

MODES = ("keep", "throw", "loop", "alloc", "poison")


class Faulty(Plugin):
    def __init__(self, config: Config):
        self.mode = config.string("mode") or "keep"
        if self.mode not in MODES:
            raise ValueError(f"config.mode: unknown mode {self.mode!r}")

    def process_batch(self, events):
        poisoned = self.mode == "poison" and any(e.field("data.poison") is not None for e in events)
        if self.mode == "throw" or poisoned:
            raise RuntimeError("faulty plugin raises, as configured")
        if self.mode == "loop":
            spins = 0
            while True:
                spins = (spins + 1) & 0xFFFF
        if self.mode == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        return [Verdict.KEEP for _ in events]


WitWorld = export(Faulty)

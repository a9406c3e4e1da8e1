"""Benchmark only (benches/plugin_languages.rs): the same setup as setup_at_import,
done in ``__init__``, so every instance pays for it when it starts."""

import re

from synaptic_plugin import Plugin, Verdict, export


class SetupInInit(Plugin):
    def __init__(self, config):
        self.patterns = [re.compile(rf"user-{i}-[a-z]+@example\.(com|org)") for i in range(300)]
        self.table = {f"agent-{i:05}": i for i in range(50_000)}

    def process(self, event):
        return Verdict.KEEP if self.patterns and self.table else Verdict.DROP


WitWorld = export(SetupInInit)

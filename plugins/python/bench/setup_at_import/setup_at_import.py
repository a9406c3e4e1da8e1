"""Benchmark only (benches/plugin_languages.rs): setup at module level, which the
build's pre-initialisation runs once, at build time. Compare setup_in_init."""

import re

from synaptic_plugin import Plugin, Verdict, export

PATTERNS = [re.compile(rf"user-{i}-[a-z]+@example\.(com|org)") for i in range(300)]
TABLE = {f"agent-{i:05}": i for i in range(50_000)}


class SetupAtImport(Plugin):
    def process(self, event):
        return Verdict.KEEP if PATTERNS and TABLE else Verdict.DROP


WitWorld = export(SetupAtImport)

"""A synaptic-telemetry plugin. ``__init__`` gets the step's ``config`` map once per
instance; ``process`` gives each event a verdict: ``Verdict.KEEP``, ``Verdict.DROP``
or ``Verdict.replace(changed_document)``.

    python -m unittest                  runs test_app.py, without the host
    see README.md for the build command (componentize-py)
"""

from synaptic_plugin import Config, Plugin, Verdict, count, export


class App(Plugin):
    def __init__(self, config: Config):
        # Read and check the config here: raising rejects this version, naming the key.
        self.drop_types = set(config.strings("drop_event_types") or [])

    def process(self, event):
        if event.event_type in self.drop_types:
            count("dropped_by_type")
            return Verdict.DROP
        return Verdict.KEEP


WitWorld = export(App)

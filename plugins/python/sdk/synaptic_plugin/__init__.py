"""Write synaptic-telemetry plugins in Python.

A plugin is a class: built from the step's ``config`` map once per instance, then
asked for a verdict on each event. ``export`` makes the contract's ``WitWorld``
from it::

    from synaptic_plugin import Plugin, Severity, Verdict, export

    class DropDebug(Plugin):
        def process(self, event):
            return Verdict.DROP if event.severity == Severity.DEBUG else Verdict.KEEP

    WitWorld = export(DropDebug)

Build: ``componentize-py -d plugins/wit -w plugin componentize -p . -p SDK module -o plugin.wasm``
(``plugins/build.sh`` shows the whole command), then copy the .wasm into the
service's ``plugins/`` directory.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from . import host
from ._contract import Verdict, encode, events
from ._event import Event, Severity
from .host import count, log

__all__ = ["Config", "Event", "Plugin", "Severity", "Verdict", "count", "export", "log"]


class Config(dict):
    """The plugin's ``config`` map from the pipeline file, with readers whose errors name the key."""

    @staticmethod
    def parse(text: str) -> "Config":
        if text.strip() == "":
            return Config()
        try:
            value = json.loads(text)
        except ValueError as error:
            raise ValueError(f"plugin config is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ValueError("plugin config must be a map")
        return Config(value)

    def string(self, key: str) -> Optional[str]:
        """``config[key]`` as a string, or None when absent."""
        value = self.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"config.{key}: expected a string, got {json.dumps(value)}")
        return value

    def strings(self, key: str) -> Optional[List[str]]:
        """``config[key]`` as a list of strings, or None when absent."""
        value = self.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"config.{key}: expected a list of strings, got {json.dumps(value)}")
        return value


class Plugin:
    """Subclass it: ``__init__(config)`` reads and checks the config (raise to reject
    this version), ``process(event)`` gives the verdict on one event, and
    ``process_batch(events)`` may be overridden to work across a batch (raising fails
    the batch: the host dead-letters it, or passes it with ``on_error: pass``)."""

    def __init__(self, config: Config):
        self.config = config

    def process(self, event: Event) -> Verdict:
        return Verdict.KEEP

    def process_batch(self, events: List[Event]) -> List[Verdict]:
        process = self.process
        return [process(event) for event in events]


def describe(error: BaseException) -> str:
    """An error as one line: ``KeyError: 'x'``."""
    return f"{type(error).__name__}: {error}"


try:  # In the component: the bindings componentize-py generates from plugins/wit.
    import wit_world as _world
    from componentize_py_types import Err as _Err
    from wit_world.imports import types as _types
except ImportError:  # In tests, without the host.
    _world = None


class _NativeVerdicts:
    """The verdicts record outside the component (tests)."""

    def __init__(self, codes: bytes, replacements: bytes, replacement_ends: List[int]):
        self.codes = codes
        self.replacements = replacements
        self.replacement_ends = replacement_ends


def export(plugin_class: type) -> type:
    """The contract's ``WitWorld`` for a ``Plugin`` subclass: assign it to ``WitWorld`` in
    the module componentize-py builds. Every exception becomes the contract's error (the
    batch is dead-lettered; the instance goes on serving), named by its type and message."""
    state: dict = {}

    def fail(error: BaseException) -> BaseException:
        return _Err(describe(error)) if _world is not None else RuntimeError(describe(error))

    def init(self: Any, config: str) -> None:
        state.pop("plugin", None)
        try:
            state["plugin"] = plugin_class(Config.parse(config))
        except Exception as error:
            raise fail(error) from None

    def process(self: Any, batch: Any) -> Any:
        try:
            plugin = state.get("plugin")
            if plugin is None:
                raise RuntimeError("process was called before init")
            batch_events = events(batch.data, batch.offsets)
            codes, replacements, ends = encode(plugin.process_batch(batch_events), len(batch_events))
        except Exception as error:
            raise fail(error) from None
        record = _types.Verdicts if _world is not None else _NativeVerdicts
        return record(codes=codes, replacements=replacements, replacement_ends=ends)

    base = (_world.WitWorld,) if _world is not None else ()
    return type("WitWorld", base, {"init": init, "process": process, "plugin_class": plugin_class})

"""What the host offers a plugin: its log and its counters. In the component these
are the contract's imports; in a plugin's own tests (``python -m unittest``) they
are recorded, and ``synaptic_plugin.testing`` reads them."""

from __future__ import annotations

from typing import Dict, List, Tuple

try:  # In the component: the bindings componentize-py generates from plugins/wit.
    from wit_world.imports import host as _wire
except ImportError:  # In tests, without the host.
    _wire = None

LEVELS = ("trace", "debug", "info", "warn", "error")

# What tests read (see testing.py); unused in the component.
recorded_logs: List[Tuple[str, str]] = []
recorded_counters: Dict[str, int] = {}


def log(level: str, message: str) -> None:
    """Writes one line to the service's log, tagged with the plugin's name. The host rate-limits it.
    ``level`` is one of trace, debug, info, warn, error."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if _wire is None:
        recorded_logs.append((level, message))
    else:
        _wire.log(_wire.Level[level.upper()], message)


def count(name: str, delta: int = 1) -> None:
    """Adds ``delta`` (a whole number >= 0) to the plugin's counter ``name``, exported on
    /metrics as ``synaptic_telemetry_plugin_guest_counter_total{plugin, name}``."""
    if not isinstance(delta, int) or isinstance(delta, bool) or not 0 <= delta < 2**64:
        raise ValueError(f"count({name!r}, {delta!r}): delta must be a whole number >= 0")
    if _wire is None:
        recorded_counters[name] = recorded_counters.get(name, 0) + delta
    else:
        _wire.count(name, delta)

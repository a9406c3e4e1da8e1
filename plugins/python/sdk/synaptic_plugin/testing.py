"""Running a plugin's logic in Python's own test runner (``python -m unittest``),
without the host: the same contract encoding the component uses, around the same
plugin class."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence, Tuple

from . import export, host
from ._contract import Verdict, decode


class _Batch:
    def __init__(self, data: bytes, offsets: List[int]):
        self.data = data
        self.offsets = offsets


def batch(events: Sequence[Any]) -> _Batch:
    """Packs events (dicts or JSON text) into one batch buffer, as the host does."""
    parts = [(e if isinstance(e, str) else json.dumps(e)).encode("utf-8") for e in events]
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return _Batch(b"".join(parts), offsets)


def start(plugin_class: type, config: Any = None):
    """The exported world for ``plugin_class``, ``init`` already called with ``config``."""
    world = export(plugin_class)()
    world.init(json.dumps(config or {}))
    return world


def run(plugin_class: type, config: Any, events: Sequence[Any]) -> List[Verdict]:
    """Calls ``init(config)`` then ``process`` on one batch of ``events``: the verdicts, decoded."""
    return run_again(start(plugin_class, config), events)


def run_again(world: Any, events: Sequence[Any]) -> List[Verdict]:
    """One more batch through a started world (to test state across batches)."""
    out = world.process(batch(events))
    return decode(out.codes, out.replacements, out.replacement_ends)


def replaced_document(verdict: Verdict) -> Any:
    if verdict.code != 2:
        raise AssertionError(f"expected a replacement, got {verdict!r}")
    return json.loads(verdict.data)


def counters() -> Dict[str, int]:
    return dict(host.recorded_counters)


def logs() -> List[Tuple[str, str]]:
    return list(host.recorded_logs)


def reset() -> None:
    host.recorded_counters.clear()
    host.recorded_logs.clear()

"""The event as a plugin sees it: a view of the JSON bytes the host validated,
parsed once, on the first field read (by the C ``json`` module, faster than any
scanner written in Python)."""

from __future__ import annotations

import enum
import json
from typing import Any, Optional


class Severity(enum.IntEnum):
    """TRACE < DEBUG < INFO < WARN < ERROR < FATAL: compare them with ``<``."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    FATAL = 5

    @classmethod
    def parse(cls, text: Any) -> Optional["Severity"]:
        """The severity named ``text`` exactly as schema v1.0 spells it, or None."""
        return _SEVERITY_BY_NAME.get(text) if isinstance(text, str) else None


_SEVERITY_BY_NAME = {severity.name: severity for severity in Severity}
_MISSING = object()


class Event:
    """One event of a batch."""

    __slots__ = ("_view", "_doc")

    def __init__(self, raw: bytes | memoryview):
        self._view = raw
        self._doc: Optional[dict] = None

    @property
    def raw(self) -> bytes:
        """The event's JSON bytes, exactly as the host holds them."""
        return bytes(self._view)

    def json(self) -> dict:
        """The whole document, parsed once. Change it and return ``Verdict.replace(doc)``."""
        if self._doc is None:
            doc = json.loads(bytes(self._view))
            if not isinstance(doc, dict):
                raise TypeError("event is not a JSON object")
            self._doc = doc
        return self._doc

    def field(self, path: str, default: Any = None) -> Any:
        """The value at a dotted path (``data.agent_id``), or ``default`` when any part is missing."""
        value: Any = self.json()
        if "." not in path:
            # A top-level key (the severity, the type: read for every event) needs no split.
            return value.get(path, default)
        for key in path.split("."):
            if not isinstance(value, dict):
                return default
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return default
        return value

    def text(self, path: str) -> Optional[str]:
        """A string or number field as text (like the Rust SDK's ``text``); None otherwise."""
        value = self.field(path)
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return json.dumps(value)
        return None

    @property
    def event_type(self) -> Optional[str]:
        return self.text("event_type")

    @property
    def component(self) -> Optional[str]:
        return self.text("component")

    @property
    def event_id(self) -> Optional[str]:
        return self.text("event_id")

    @property
    def severity(self) -> Optional[Severity]:
        """None when the event has no severity the schema knows."""
        return Severity.parse(self.field("severity"))

    @property
    def timestamp_ms(self) -> Optional[float]:
        """Unix milliseconds."""
        value = self.field("timestamp")
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

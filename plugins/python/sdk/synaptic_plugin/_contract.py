"""The batch contract of plugins/wit/plugin.wit on the Python side: the batch
buffer cut into events, verdicts encoded as codes plus the replaced events' bytes
back to back. ``export`` uses it, and so does ``testing.run``, so a plugin's tests
go through the same encoding as the component."""

from __future__ import annotations

import json
from typing import Any, List, Sequence, Tuple

from ._event import Event

KEEP_CODE = 0
DROP_CODE = 1
REPLACE_CODE = 2


class Verdict:
    """Keep the event, drop it, or replace it: ``Verdict.KEEP``, ``Verdict.DROP``,
    ``Verdict.replace(doc)``."""

    __slots__ = ("code", "data")
    KEEP: "Verdict"
    DROP: "Verdict"

    def __init__(self, code: int, data: bytes = b""):
        self.code = code
        self.data = data

    @staticmethod
    def replace(doc: dict) -> "Verdict":
        """Replaces the event with a changed document (it must still be a schema v1.0 event)."""
        try:
            text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from a \ud800 escape in the input) is not UTF-8:
            # written as an escape, the bytes stay valid JSON and valid UTF-8.
            data = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        return Verdict(REPLACE_CODE, data)

    @staticmethod
    def replace_bytes(data: bytes) -> "Verdict":
        """Replaces the event with these bytes, as they are."""
        return Verdict(REPLACE_CODE, bytes(data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verdict) and (self.code, self.data) == (other.code, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.data))

    def __repr__(self) -> str:
        if self.code == KEEP_CODE:
            return "Verdict.KEEP"
        if self.code == DROP_CODE:
            return "Verdict.DROP"
        return f"Verdict.replace_bytes({self.data!r})"


Verdict.KEEP = Verdict(KEEP_CODE)
Verdict.DROP = Verdict(DROP_CODE)


def events(data: bytes, offsets: Sequence[int]) -> List[Event]:
    """The batch's events, each a view into ``data``."""
    if len(offsets) == 0:
        raise ValueError("batch offsets are empty (the first entry must be 0)")
    view = memoryview(data)
    out = []
    for i in range(len(offsets) - 1):
        start, end = offsets[i], offsets[i + 1]
        if end < start or end > len(data):
            raise ValueError(f"batch offsets {start}..{end} of event {i} are outside the data ({len(data)} bytes)")
        out.append(Event(view[start:end]))
    return out


def encode(verdicts: Sequence[Any], count: int) -> Tuple[bytes, bytes, List[int]]:
    """Codes, replacement bytes and replacement ends for one verdict per event."""
    if len(verdicts) != count:
        raise ValueError(f"plugin gave {len(verdicts)} verdicts for {count} events")
    codes = bytearray(count)
    parts = []
    ends = []
    total = 0
    for i, verdict in enumerate(verdicts):
        if not isinstance(verdict, Verdict):
            raise TypeError(f"verdict {i} is not Verdict.KEEP, Verdict.DROP or Verdict.replace(...): {verdict!r}")
        codes[i] = verdict.code
        if verdict.code == REPLACE_CODE:
            parts.append(verdict.data)
            total += len(verdict.data)
            if total > 0xFFFFFFFF:
                raise ValueError("replacements exceed 4 GiB")
            ends.append(total)
    return bytes(codes), b"".join(parts), ends


def decode(codes: bytes, replacements: bytes, ends: Sequence[int]) -> List[Verdict]:
    """Encoded verdicts read back (for tests): the inverse of ``encode``."""
    out = []
    start = 0
    replacement = 0
    for code in codes:
        if code == KEEP_CODE:
            out.append(Verdict.KEEP)
        elif code == DROP_CODE:
            out.append(Verdict.DROP)
        elif code == REPLACE_CODE:
            end = ends[replacement]
            replacement += 1
            out.append(Verdict(REPLACE_CODE, replacements[start:end]))
            start = end
        else:
            raise ValueError(f"unknown verdict code {code}")
    return out

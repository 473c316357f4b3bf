"""A Distribution envelope ``{"events": [...]}`` read one event at a time, up to a cap.

``json.loads`` of an 8 MB envelope builds every one of its 100k events before anything can look
at how many there are: hundreds of megabytes, and the event loop held for the whole parse.
Here each event is decoded on its own (``JSONDecoder.raw_decode``), so an envelope over
``registry.max_events`` is refused after ``max_events + 1`` events, holding no more than that,
and the reader yields to the event loop every ``SLICE`` events, so a scrape never waits for
more than one slice. Anything that ``json.loads`` refuses is refused here too (``ValueError``),
except that text after an envelope that is already over the cap is not looked at.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

SLICE = 200  # events decoded between two yields to the event loop
_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


class TooManyEvents(ValueError):
    """The envelope holds more than the cap."""


async def read_envelope(raw: bytes, max_events: int) -> Any:
    """The decoded envelope (a dict whose ``events`` is a list, or any other JSON value, left
    for the caller to refuse); raises ``TooManyEvents`` or ``ValueError``."""
    text = raw.decode("utf-8")
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return json.loads(text)  # not an object: the caller says what was expected
    out: dict[str, Any] = {}
    at = _skip(text, at + 1)
    if text.startswith("}", at):
        return _end(text, at + 1, out)
    while True:
        key, at = _DECODER.raw_decode(text, at)
        if not isinstance(key, str):
            raise ValueError(f"expected a key at character {at}")
        at = _expect(text, at, ":")
        if key == "events" and text.startswith("[", at):
            out[key], at = await _events(text, at + 1, max_events)
        else:
            out[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return _end(text, at + 1, out)
        at = _expect(text, at, ",")


async def _events(text: str, at: int, max_events: int) -> tuple[list[Any], int]:
    """The events list from just after its ``[``, and where it ends."""
    events: list[Any] = []
    at = _skip(text, at)
    if text.startswith("]", at):
        return events, at + 1
    while True:
        event, at = _DECODER.raw_decode(text, at)
        events.append(event)
        if len(events) > max_events:
            raise TooManyEvents(f"more than {max_events} events in one envelope")
        if len(events) % SLICE == 0:
            await asyncio.sleep(0)
        at = _skip(text, at)
        if text.startswith("]", at):
            return events, at + 1
        at = _expect(text, at, ",")


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _expect(text: str, at: int, char: str) -> int:
    at = _skip(text, at)
    if not text.startswith(char, at):
        raise ValueError(f"expected {char!r} at character {at}")
    return _skip(text, at + 1)


def _end(text: str, at: int, out: dict[str, Any]) -> dict[str, Any]:
    if _skip(text, at) != len(text):
        raise ValueError(f"extra data at character {_skip(text, at)}")
    return out

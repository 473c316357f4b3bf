"""A Distribution envelope ``{"events": [...]}`` read one event at a time, up to a cap.

``json.loads`` of an 8 MB envelope builds every one of its 100k events before anything can look
at how many there are: hundreds of megabytes, and the event loop held for the whole parse.
Here each event is decoded on its own (``JSONDecoder.raw_decode``), so an envelope over
``registry.max_events`` is refused after ``max_events + 1`` events, holding no more than that,
and the reader yields to the event loop every ``SLICE`` events, so a scrape never waits for
more than one slice. Anything that ``json.loads`` refuses is refused here too (``ValueError``),
except that text after an envelope that is already over the cap is not looked at.

An envelope of at most ``WHOLE_BYTES`` (a registry's usual batch of a few events) is decoded in
one call by msgspec instead: what it holds is bounded by its size, and it is the hot path (the
reader above took about as long as all the rest of a webhook's own work for one event, and five
microseconds an event in a batch; msgspec takes a quarter of that). msgspec, not orjson: every
document msgspec takes decodes to what ``json.loads`` makes of it (orjson turns an integer over
64 bits into a float), and the few it refuses that ``json.loads`` takes (``NaN``, ``1e400``, lone
surrogates in escapes) go to the reader above, which decides as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec

SLICE = 200  # events decoded between two yields to the event loop
WHOLE_BYTES = 64 * 1024  # envelopes up to this size are decoded in one call
_DECODER = json.JSONDecoder()
_WHOLE = msgspec.json.Decoder().decode
_SPACE = " \t\n\r"
UNDECIDED: Any = object()  # ``read_small`` leaves the envelope to ``read_envelope``


class TooManyEvents(ValueError):
    """The envelope holds more than the cap."""


async def read_envelope(raw: bytes, max_events: int) -> Any:
    """The decoded envelope (a dict whose ``events`` is a list, or any other JSON value, left
    for the caller to refuse); raises ``TooManyEvents`` or ``ValueError``."""
    payload = read_small(raw, max_events)
    return payload if payload is not UNDECIDED else await _incremental(raw, max_events)


def read_small(raw: bytes, max_events: int) -> Any:
    """``read_envelope`` of a small envelope in one call, with no coroutine (the hot path);
    ``UNDECIDED`` for one that is too large or that msgspec refuses (``read_envelope``
    decides)."""
    if len(raw) > WHOLE_BYTES:
        return UNDECIDED
    try:
        payload = _WHOLE(raw)
    except msgspec.DecodeError:
        return UNDECIDED  # maybe valid for json.loads (NaN, big integers, lone surrogates)
    events = payload.get("events") if isinstance(payload, dict) else None
    if isinstance(events, list) and len(events) > max_events:
        raise TooManyEvents(f"more than {max_events} events in one envelope")
    return payload


async def _incremental(raw: bytes, max_events: int) -> Any:
    """``read_envelope`` one event at a time, yielding to the loop every ``SLICE`` events."""
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

"""Clocks: the timestamps a log carries (line prefixes, rawjson fields) and the CLI's own clock.

A piped log (``cat ci.log | cachewatch ingest-build``) streams in a blink, so its wall-clock
time says nothing about the build; CI prefixes (GitHub Actions, Render, Go's ``log``) and
rawjson records do say when the build ran.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

# ISO 8601 / RFC 3339 with any number of fraction digits (trailing zeros trimmed), or Go's
# ``log`` prefix ``2024/03/29 14:00:00``; with a zone or without (then read as UTC: only
# differences are ever used).
_STAMP = re.compile(
    r"(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,12}))?"
    r"\s*(Z|[+-]\d\d:?\d\d)?")


def prefix_seconds(prefix: str) -> float | None:
    """Epoch seconds of the timestamp at the start of a line's prefix, if it has one."""
    match = _STAMP.match(prefix.lstrip("["))
    return _epoch(match) if match else None


def rfc3339(value: object) -> float | None:
    """RFC 3339 with nanoseconds (Go's format, rawjson's ``started``) -> epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    match = _STAMP.match(value)
    return _epoch(match) if match else None


def _epoch(match: re.Match[str]) -> float | None:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         tzinfo=UTC)
    except ValueError:  # 2025-13-45: not a date after all
        return None
    seconds = stamp.timestamp() + (float("0." + fraction) if fraction else 0.0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        seconds -= sign * offset.total_seconds()
    return seconds


def now() -> float:
    """The clock the CLI gives the parser for live builds."""
    return time.monotonic()

"""A minimal parser for Redis ``INFO`` replies.

redis-py's own INFO parser converts every one of ~200 fields and was half of a scrape's CPU
time; the collector needs a few dozen, so this keeps values as strings and leaves conversion to
the caller. Format: ``# Section`` headers, ``key:value`` lines, nested ``a=1,b=2`` values.
"""

from __future__ import annotations

import re

# A ``key:value`` line (split at its first colon), not a ``# Section`` header: one compiled
# scan over the whole reply instead of a Python step per line (a scrape reads ~200 lines).
_LINE = re.compile(r"^(?!#)([^\r\n:]*):([^\r\n]*)", re.MULTILINE)


def parse_info(raw: bytes | str) -> dict[str, str]:
    """``key -> value`` for every ``key:value`` line; headers and blank lines are skipped."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return dict(_LINE.findall(text))


def parse_nested(value: str) -> dict[str, str]:
    """``"keys=1,expires=0"`` -> ``{"keys": "1", "expires": "0"}``."""
    nested: dict[str, str] = {}
    for item in value.split(","):
        key, sep, inner = item.partition("=")
        if sep:
            nested[key] = inner
    return nested

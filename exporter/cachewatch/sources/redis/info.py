"""A minimal parser for Redis ``INFO`` replies.

redis-py's own INFO parser converts every one of ~200 fields and was half of a scrape's CPU
time; the collector needs a few dozen, so this keeps values as strings and leaves conversion to
the caller. Format: ``# Section`` headers, ``key:value`` lines, nested ``a=1,b=2`` values.
"""

from __future__ import annotations


def parse_info(raw: bytes | str) -> dict[str, str]:
    """``key -> value`` for every ``key:value`` line; headers and blank lines are skipped.
    (``partition`` per line measured faster than a compiled scan: fewer objects per line.)"""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and line[0] != "#":
            info[key] = value
    return info


def parse_nested(value: str) -> dict[str, str]:
    """``"keys=1,expires=0"`` -> ``{"keys": "1", "expires": "0"}``."""
    nested: dict[str, str] = {}
    for item in value.split(","):
        key, sep, inner = item.partition("=")
        if sep:
            nested[key] = inner
    return nested

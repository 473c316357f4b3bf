"""Counts said the way a person says them: "1 build", "2 builds", "the only build".

Doctor's messages and cost sentences put numbers next to nouns; these helpers keep "1 builds",
"1 of the 1 build" and "step(s)" out of what users read.
"""

from __future__ import annotations

__all__ = ["count", "line_list", "share"]


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 build``, ``3 builds`` (``plural`` for nouns that do not just take an ``s``)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def share(part: int, total: int, noun: str) -> str:
    """``2 of the 5 builds``, ``all 3 builds``, ``the only build``: part of a counted whole."""
    if part == total:
        return f"the only {noun}" if total == 1 else f"all {count(total, noun)}"
    return f"{part} of the {count(total, noun)}"


def line_list(lines: list[int], limit: int = 5) -> str:
    """``line 4``, ``lines 4, 6 and 9``, ``lines 4, 6, 9, 11, 12 and 2 more``."""
    shown = [str(n) for n in lines[:limit]]
    rest = len(lines) - len(shown)
    if rest:
        return f"lines {', '.join(shown)} and {rest} more"
    if len(shown) == 1:
        return f"line {shown[0]}"
    return f"lines {', '.join(shown[:-1])} and {shown[-1]}"

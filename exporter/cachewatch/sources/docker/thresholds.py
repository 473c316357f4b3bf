"""The Docker source's alert thresholds: ``cachewatch bundle --build-hit-rate ...``.

Apart from the bundle part so that building the CLI (which derives ``bundle``'s options from
these fields) never loads the dashboards and rules: ``serve`` pays for neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...bundle.thresholds import Flag, checked, duration, positive, ratio, threshold

# A size as `docker builder prune --keep-storage` takes it: 20GiB, 20GB, 20G, bytes.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def size_bytes(text: str) -> int:
    """``20GiB`` / ``20GB`` / ``20G`` -> bytes, 1024-based as Docker's ``--keep-storage`` reads
    them; a plain number is bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 20GiB, 512MiB or 1073741824")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(match.group(1)) * 1024 ** _POWERS[unit])


def gib(size: int) -> str:
    """``21474836480`` -> ``20GiB``: how a budget reads in alerts and docs."""
    return f"{size / 2**30:g}GiB"


@dataclass(frozen=True)
class DockerThresholds:
    """What the build cache alerts are drawn at."""

    build_hit_rate: float = threshold(0.5, check=ratio, flag=Flag(
        "Alert when builds take fewer of their steps from cache."))
    build_window: str = threshold("1h", check=duration, flag=Flag(
        "The window of builds --build-hit-rate is measured over."))
    # Fewer builds than this in the window and their hit rate says little: no alert.
    min_builds: int = 3
    # Held longer than the window: one burst of busted builds never fires, a lasting one does.
    build_for: str = threshold("15m", check=duration)
    # The build cache size a host should stay under (what `docker builder prune
    # --keep-storage` would keep), and how long it may stay above before the alert fires.
    build_cache_budget_bytes: int = threshold(
        20 * 2**30, check=positive("the build cache budget"), flag=Flag(
            "Alert when a host's build cache stays above this size (what `docker builder "
            "prune --keep-storage` would keep), like 20GiB.", "--build-cache-budget",
            size_bytes, gib, metavar="SIZE"))
    build_cache_for: str = threshold("1h", check=duration, flag=Flag(
        "How long the build cache must stay above --build-cache-budget before "
        "DockerBuildCacheOverBudget fires."))

    def __post_init__(self) -> None:
        checked(self)

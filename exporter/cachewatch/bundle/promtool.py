"""Building blocks of ``promtool test rules`` cases, for the core's cases and the sources'.

Input series are written in promtool's expanding notation from rates, so a case scales with
the user's thresholds; expected annotations are the rendered text, so a broken template fails.
"""

from __future__ import annotations

import re
from typing import Any

from .. import contract

LOOKUPS = contract.CACHE_LOOKUPS.name


def counter(per_second: float, minutes: int, start: float = 0.0) -> str:
    """promtool's expanding notation for a counter growing ``per_second`` for ``minutes``."""
    return f"{start:g}+{per_second * 60:g}x{minutes}"


def two_phase(first: float, second: float, switch: int, end: int) -> str:
    """A counter at ``first``/s until minute ``switch``, then ``second``/s until ``end``."""
    at_switch = first * 60 * switch
    return (f"{counter(first, switch)} "
            f"{counter(second, end - switch - 1, at_switch + second * 60)}")


def _render(template: str, labels: dict[str, str], value: str) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return re.sub(r"\{\{ \$value[^}]*\}\}", value, text)


def expected(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, Any]:
    """The alert ``rule`` raises for a series with ``labels`` at ``value`` (already humanized)."""
    all_labels = {**labels, **rule["labels"]}
    return {"exp_labels": all_labels,
            "exp_annotations": {k: _render(v, all_labels, value)
                                for k, v in rule["annotations"].items()}}


def duration(value: float) -> str:
    """Prometheus' humanizeDuration for values under a second."""
    for prefix in ("", "m", "u", "n"):
        if value >= 1 or prefix == "n":
            return f"{value:.4g}{prefix}s"
        value *= 1000
    raise AssertionError("unreachable")


def number(value: float) -> str:
    """Prometheus' humanize for plain numbers."""
    return f"{value:.4g}"


def lookups(layer: str, cache: str, hits: str, misses: str) -> list[dict[str, str]]:
    """Hit and miss counters of one cache, the input of the hit-ratio recording rules."""
    base = f'{LOOKUPS}{{layer="{layer}",cache="{cache}",result='
    return [{"series": base + '"hit"}', "values": hits},
            {"series": base + '"miss"}', "values": misses}]

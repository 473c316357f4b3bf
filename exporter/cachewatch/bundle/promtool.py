"""Building blocks of ``promtool test rules`` cases, for the core's cases and the sources'.

Input series are written in promtool's expanding notation from rates, so a case scales with
the user's thresholds; expected annotations are the rendered text, so a broken template fails.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote_plus

from prometheus_client.utils import floatToGoString

from ..metrics import contract
from .thresholds import seconds

LOOKUPS = contract.CACHE_LOOKUPS.name


def counter(per_second: float, minutes: int, start: float = 0.0) -> str:
    """promtool's expanding notation for a counter growing ``per_second`` for ``minutes``."""
    return f"{start:g}+{per_second * 60:g}x{minutes}"


def two_phase(first: float, second: float, switch: int, end: int) -> str:
    """A counter at ``first``/s until minute ``switch``, then ``second``/s until ``end``."""
    at_switch = first * 60 * switch
    return (f"{counter(first, switch)} "
            f"{counter(second, end - switch - 1, at_switch + second * 60)}")


_CHAIN = re.compile(r"\{\{ if .*?\{\{ end \}\}", re.S)
_BRANCH = re.compile(
    r'\{\{ (?:else )?if eq \$labels\.(\w+) "([^"]*)" \}\}(.*?)(?=\{\{ else|\{\{ end)', re.S)
_DEFAULT = re.compile(r"\{\{ else \}\}(.*?)\{\{ end \}\}", re.S)
_LABEL = re.compile(r"\{\{ \$labels\.(\w+)( \| urlquery)? \}\}")


def _branch(chain: str, labels: dict[str, str]) -> str:
    """The text an ``{{ if eq $labels.x "v" }}...{{ else }}...{{ end }}`` chain renders."""
    for label, value, text in _BRANCH.findall(chain):
        if labels.get(label, "") == value:
            return text
    default = _DEFAULT.search(chain)
    return default.group(1) if default else ""


def _render(template: str, labels: dict[str, str], value: str) -> str:
    """What Prometheus renders of the templates the bundle writes: label choices, labels (URL
    escaped as Go's urlquery does), the value."""
    text = _CHAIN.sub(lambda m: _branch(m.group(0), labels), template)
    text = _LABEL.sub(lambda m: (quote_plus if m.group(2) else str)(labels.get(m.group(1), "")),
                      text)
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


def lookups(layer: str, cache: str, hits: str, misses: str,
            labels: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Hit and miss counters of one cache (with more ``labels``: a namespace, a pod), the
    input of the hit-ratio recording rules."""
    more = "".join(f'{key}="{value}",' for key, value in (labels or {}).items())
    base = f'{LOOKUPS}{{{more}layer="{layer}",cache="{cache}",result='
    return [{"series": base + '"hit"}', "values": hits},
            {"series": base + '"miss"}', "values": misses}]


def histogram(metric: str, labels: str, edges: Sequence[float], all_in: float | None,
              per_second: float, minutes: int, *, switch: int | None = None,
              then_in: float | None = None) -> list[dict[str, str]]:
    """Buckets and count of a histogram observed ``per_second`` for ``minutes``, every
    observation in the bucket ending at ``all_in`` (the first bucket when ``None``); from minute
    ``switch`` on, if given, every observation in the bucket ending at ``then_in`` instead."""
    def rate(edge: float | str, bucket: float | None) -> float:
        counted = edge == "+Inf" or bucket is None or float(edge) >= bucket
        return per_second if counted else 0.0

    rows = []
    for edge in [*edges, "+Inf"]:
        le = edge if isinstance(edge, str) else floatToGoString(edge)
        values = (counter(rate(edge, all_in), minutes) if switch is None else
                  two_phase(rate(edge, all_in), rate(edge, then_in), switch, minutes))
        rows.append({"series": f'{metric}_bucket{{{labels},le="{le}"}}', "values": values})
    rows.append({"series": f"{metric}_count{{{labels}}}",
                 "values": counter(per_second, minutes)})
    return rows


def interpolated_p99(edges: Sequence[float], all_in: float) -> float:
    """What histogram_quantile(0.99, ...) gives when every observation is in the bucket ending
    at ``all_in``: it interpolates linearly inside the bucket."""
    lower = max((e for e in edges if e < all_in), default=0.0)
    return lower + (all_in - lower) * 0.99


def before_for(duration: str, alertname: str) -> dict[str, Any]:
    """An ``alert_rule_test`` expecting no alert a minute before ``for`` has passed, though the
    condition holds from the start: the alert waits its ``for``."""
    return {"eval_time": f"{max(0, seconds(duration) // 60 - 1)}m", "alertname": alertname,
            "exp_alerts": []}

"""The one place alert thresholds and durations come from (``cachewatch bundle --hit-rate ...``).

Defaults are the contract's targets: hit rate 85 %, P99 50 ms. A user regenerates the whole
bundle (rules, their unit tests, dashboards' threshold lines) with their own numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..metrics import contract

_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_EQUALS = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\]*)"\s*$')
# Labels the rules set or aggregate themselves: an identity label by one of these names would
# collide with them.
_RESERVED = frozenset({"layer", "cache", "result", "le", "command", "image", "reason",
                       "endpoint", "collector", "target", "severity", "alertname", "quantile"})


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


def seconds(duration: str) -> int:
    """``10m`` -> 600: Prometheus durations, the units the rules use."""
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"{duration!r} is not a duration like 30s, 10m or 1h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass(frozen=True)
class Thresholds:
    """Everything the rules and dashboards are drawn at."""

    hit_rate: float = contract.HIT_RATE_TARGET
    hit_rate_for: str = "10m"
    p99_seconds: float = contract.LATENCY_P99_TARGET_SECONDS
    p99_for: str = "5m"
    # Fewer lookups a second than this and a hit rate says little: no alert (low traffic).
    min_lookups_per_second: float = 1.0
    min_latency_observations_per_second: float = 0.1
    build_hit_rate: float = 0.5
    build_window: str = "1h"
    min_builds: int = 3
    registry_hit_rate: float = contract.HIT_RATE_TARGET
    registry_for: str = "15m"
    down_for: str = "5m"
    errors_window: str = "10m"
    max_errors: int = 3
    runbook_url: str = "https://github.com/cachewatch/cachewatch/blob/main/README.md"
    grafana_url: str = "http://localhost:3000"
    # Which cache a series is in a fleet: every aggregation keeps these labels, alerts carry
    # them and inhibitions match on them (the mixins' clusterLabel, generalised). Labels a
    # Prometheus does not have (no `cluster` in a single cluster) simply stay empty.
    identity_labels: tuple[str, ...] = ("cluster", "namespace", "job")
    # The label matchers that select cachewatch's own scrape targets in `up`: equality matchers
    # only, the labels absent() can give its alert.
    cachewatch_selector: str = 'job="cachewatch"'
    # Labels on the PrometheusRule and PodMonitor that the Prometheus Operator selects them by
    # (kube-prometheus-stack: `release: <its release name>`).
    operator_selector: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    # `for` of the alerts on windows: held longer than the window, so that one burst (which
    # stays in a window for exactly its length) never fires, and a lasting fault does.
    build_for: str = "15m"
    absent_for: str = "15m"
    errors_for: str = "15m"
    rejected_window: str = "5m"
    rejected_for: str = "10m"
    # The build cache size a host should stay under (what `docker builder prune --keep-storage`
    # would keep), and how long it may stay above before the alert fires.
    build_cache_budget_bytes: int = 20 * 2**30
    build_cache_for: str = "1h"

    def __post_init__(self) -> None:
        for name in ("hit_rate", "build_hit_rate", "registry_hit_rate"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1 (a ratio), not "
                                 f"{getattr(self, name)}")
        if self.p99_seconds <= 0:
            raise ValueError("p99 must be positive")
        if self.build_cache_budget_bytes <= 0:
            raise ValueError("the build cache budget must be positive")
        for name in ("hit_rate_for", "p99_for", "build_window", "registry_for", "down_for",
                     "errors_window", "build_for", "absent_for", "errors_for", "rejected_window",
                     "rejected_for", "build_cache_for"):
            seconds(getattr(self, name))
        labels = [*self.identity_labels, *(key for key, _ in self.operator_selector)]
        for label in labels:
            if not _LABEL.match(label):
                raise ValueError(f"{label!r} is not a Prometheus label name")
        clash = _RESERVED.intersection(self.identity_labels)
        if clash:
            raise ValueError(f"identity labels cannot be {', '.join(sorted(clash))}: the rules "
                             "use those names themselves")
        if len(set(self.identity_labels)) != len(self.identity_labels):
            raise ValueError("identity labels must not repeat")
        self.cachewatch_labels  # noqa: B018 - validates the selector

    @property
    def cachewatch_labels(self) -> dict[str, str]:
        """``job="cachewatch"`` -> ``{"job": "cachewatch"}``: the labels of cachewatch's ``up``."""
        found = {}
        for matcher in self.cachewatch_selector.split(","):
            match = _EQUALS.match(matcher)
            if not match:
                raise ValueError(f"the cachewatch selector takes label=\"value\" matchers "
                                 f"separated by commas (absent() needs them), not "
                                 f"{self.cachewatch_selector!r}")
            found[match.group(1)] = match.group(2)
        return found

    def by(self, *labels: str) -> str:
        """``cluster, namespace, job, <labels>``: the grouping of every aggregation and vector
        match, so two namespaces' caches of the same name stay two series."""
        return ", ".join((*self.identity_labels, *labels))

    @property
    def p99_is_bucket_edge(self) -> bool:
        """histogram_quantile is exact only at a bucket edge; elsewhere it interpolates."""
        return self.p99_seconds in contract.LATENCY_BUCKETS

"""The one place alert thresholds and durations come from (``cachewatch bundle --hit-rate ...``).

Defaults are the contract's targets: hit rate 85 %, P99 50 ms. A user regenerates the whole
bundle (rules, their unit tests, dashboards' threshold lines) with their own numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import contract

_DURATION = re.compile(r"^(\d+)(s|m|h)$")


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
    errors_window: str = "15m"
    max_errors: int = 3
    runbook_url: str = "https://github.com/cachewatch/cachewatch/blob/main/README.md"
    grafana_url: str = "http://localhost:3000"

    def __post_init__(self) -> None:
        for name in ("hit_rate", "build_hit_rate", "registry_hit_rate"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1 (a ratio), not "
                                 f"{getattr(self, name)}")
        if self.p99_seconds <= 0:
            raise ValueError("p99 must be positive")
        for name in ("hit_rate_for", "p99_for", "build_window", "registry_for", "down_for",
                     "errors_window"):
            seconds(getattr(self, name))

    @property
    def p99_is_bucket_edge(self) -> bool:
        """histogram_quantile is exact only at a bucket edge; elsewhere it interpolates."""
        return self.p99_seconds in contract.LATENCY_BUCKETS

"""The registry source's alert thresholds: ``cachewatch bundle --registry-hit-rate ...``.

Apart from the bundle part so that building the CLI (which derives ``bundle``'s options from
these fields) never loads the dashboards and rules: ``serve`` pays for neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...bundle.thresholds import Flag, checked, duration, ratio, threshold
from ...metrics.contract import HIT_RATE_TARGET


@dataclass(frozen=True)
class RegistryThresholds:
    """What the pull-through cache alert is drawn at."""

    registry_hit_rate: float = threshold(HIT_RATE_TARGET, check=ratio, flag=Flag(
        "Alert below this pull-through cache hit ratio."))
    registry_for: str = threshold("15m", check=duration)
    # Twice a 30-minute replication schedule: one late or skipped run is not an alert.
    replication_stale: str = threshold("1h", check=duration, flag=Flag(
        "Alert when a destination has had no successful replication for this long."))
    replication_window: str = threshold("1h", check=duration)
    replication_failing_for: str = threshold("5m", check=duration)

    def __post_init__(self) -> None:
        checked(self)

"""The CI caches' part of the bundle: their dashboard (hit rate per cache, restores by
result, bytes restored, saves) and the receiver's refusals. Their hit-rate alert is the core's
CacheHitRateLow: a partial restore is a miss in ``cachewatch_cache_lookups_total``."""

from __future__ import annotations

from ...bundle.goals import Goal, generic
from ...bundle.panels import NEUTRAL, DashboardSpec, Panel, fleet, hit_steps, legend
from ...bundle.part import BundlePart, Rejections
from ...bundle.series import HIT_RATIO, TOTAL
from ...bundle.thresholds import Thresholds
from . import contract

L = contract


def panels(t: Thresholds) -> list[Panel]:
    """Hit rate per cache, then why: restores by result, bytes restored, saves."""
    sel = fleet(t, 'layer="ci"', 'cache=~"$cache"')
    one = fleet(t, 'cache=~"$cache"')
    rate = "[$__rate_interval]"
    return [
        Panel("timeseries", "Hit rate per CI cache", ((f"{HIT_RATIO}{sel}",
                                                      legend(t, "{{cache}}")),),
              "percentunit", hit_steps(t.hit_rate), 12,
              "Share of job restores that hit the primary key over 5 minutes (a partial"
              " restore on a fallback key is a miss: the job rebuilds what changed)."),
        Panel("timeseries", "Restores by result",
              ((f"sum by ({t.by('ci', 'cache', 'result')}) "
                f"(increase({L.CI_CACHE_RESTORES.name}{one}{rate}))",
                legend(t, "{{ci}} {{cache}} {{result}}")),),
              "none", NEUTRAL, 12,
              "Restores per interval: hit (primary key), partial (restore or fallback key),"
              " miss."),
        Panel("timeseries", "Bytes restored",
              ((f"sum by ({t.by('ci', 'cache')}) "
                f"(rate({L.CI_CACHE_RESTORED_BYTES.name}{one}{rate}))",
                legend(t, "{{ci}} {{cache}}")),),
              "Bps", NEUTRAL, 12, "Cache bytes jobs downloaded, as the CI printed them."),
        Panel("timeseries", "Saves",
              ((f"sum by ({t.by('ci', 'cache')}) "
                f"(increase({L.CI_CACHE_SAVES.name}{one}{rate}))",
                legend(t, "{{ci}} {{cache}}")),),
              "none", NEUTRAL, 12,
              "Caches uploaded per interval; many saves with few hits means a key that changes"
              " every run."),
    ]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The CI caches of the selected fleet."""
    ci = fleet(t, 'layer="ci"')
    return (("cache", f"label_values({TOTAL}{ci}, cache)"),)


DASHBOARD = DashboardSpec("ci", "cachewatch-ci-caches", "cachewatch: CI caches", panels,
                          variables)


def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Judged by the core's CacheHitRateLow."""
    return (generic(t, "ci", DASHBOARD.uid, panel="Hit rate per CI cache"),)


PART = BundlePart(
    dashboard=DASHBOARD, goals=goals,
    rejections=Rejections(L.CI_INGEST_REJECTED.name, "ci/caches", position=4,
                          benign_reason="duplicate",
                          test_series=(('reason="auth"', "0x5 3x35"),)),
)

"""The application caches' part of the bundle: Micrometer's cache metrics fed into the shared
lookup series (with their promtool case), the application caches dashboard and the push
receiver's refusals. Their hit-rate alert is the core's CacheHitRateLow."""

from __future__ import annotations

from typing import Any

from ...bundle.goals import Goal, generic
from ...bundle.panels import (
    NEUTRAL,
    DashboardSpec,
    Panel,
    fleet,
    hit_steps,
    latency_steps,
    legend,
    tidy_table,
)
from ...bundle.part import BundlePart, Rejections
from ...bundle.promtool import counter
from ...bundle.series import BY_RESULT, HIT_RATIO, P99, TOTAL
from ...bundle.thresholds import Thresholds
from . import contract

L = contract


def micrometer_lookups(t: Thresholds) -> list[dict[str, Any]]:
    """Spring apps scraped directly: Micrometer's cache.gets becomes the shared lookup series,
    so their caches get the same hit rate, dashboards and alerts as pushed ones."""
    return [
        {"record": BY_RESULT,
         "expr": f"label_replace(sum by ({t.by('cache', 'result')}) "
                 f'(rate(cache_gets_total{{result=~"hit|miss"}}[5m])), "layer", "app", "", "")',
         "labels": {"source": "micrometer"}},
    ]


def panels(t: Thresholds) -> list[Panel]:
    """Hit rates (one- and two-level), load time, evictions and the instances pushing."""
    sel = fleet(t, 'layer="app"', 'cache=~"$cache"')
    one = fleet(t, 'cache=~"$cache"')
    by = t.by("cache")
    rate = "[$__rate_interval]"
    who = legend(t, "{{cache}}")
    return [
        Panel("timeseries", "Hit rate per cache", ((f"{HIT_RATIO}{sel}", who),),
              "percentunit", hit_steps(t.hit_rate), 12,
              "Share of lookups served from cache over 5 minutes (pushed caches and Spring "
              "apps' Micrometer cache_gets alike); the line is the target."),
        Panel("timeseries", "Two-level effective hit rate",
              ((f"sum by ({by}) (rate({L.CACHE_EFFECTIVE_HITS.name}{sel}{rate})) / "
                f"(sum by ({by}) (rate({L.CACHE_LOOKUPS.name}{sel}{rate})) > 0)", who),),
              "percentunit", hit_steps(t.hit_rate), 12,
              "(L1 hits + L2 hits on L1 misses) / L1 lookups: a ratio of rates."),
        Panel("timeseries", "Load time per load",
              ((f"sum by ({by}) (rate({L.APP_CACHE_LOAD_SECONDS.name}{one}{rate})) / "
                f"(sum by ({by}) (rate({L.APP_CACHE_LOADS.name}{one}{rate})) > 0)", who),),
              "s", latency_steps(t.p99_seconds), 12,
              "Average time to load a missing value (what a miss costs the application)."),
        Panel("timeseries", "P99 latency", ((f"{P99}{sel}", who),), "s",
              latency_steps(t.p99_seconds), 12,
              "99th percentile of lookup latency over 5 minutes, per cache; the line is where "
              "CacheLatencyP99High fires."),
        Panel("timeseries", "Evictions",
              ((f"sum by ({by}) (rate({L.CACHE_EVICTIONS.name}{sel}{rate}))", who),),
              "ops", NEUTRAL, 12, "Entries evicted per second to make room."),
        Panel("timeseries", "Instances reporting",
              ((f"{L.APP_CACHE_INSTANCES.name}{one}", who),), "none", NEUTRAL, 12,
              "Application instances whose pushes cachewatch holds for each cache."),
        Panel("table", "Seconds since each instance pushed",
              ((f"time() - {L.APP_CACHE_LAST_PUSH.name}{fleet(t)}", ""),), "s",
              (("green", None), ("orange", 60)), 12,
              "Per instance: how long ago it last pushed; one that stopped pushing is stale.",
              extra=tidy_table(t, {"app_instance": "app instance", "Value": "Since last push"},
                               "Since last push", coloured=True)),
    ]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The application caches of the selected fleet."""
    app = fleet(t, 'layer="app"')
    return (("cache", f"label_values({TOTAL}{app}, cache)"),)


DASHBOARD = DashboardSpec("app", "cachewatch-app-caches", "cachewatch: application caches",
                          panels, variables)


def micrometer_tests(t: Thresholds) -> list[dict[str, Any]]:
    """Micrometer's hits and misses come out as an ``app`` layer hit ratio."""
    return [{
        "interval": "1m",
        "input_series": [
            {"series": 'cache_gets_total{cache="books",result="hit",cacheManager="cm"}',
             "values": counter(9, 20)},
            {"series": 'cache_gets_total{cache="books",result="miss",cacheManager="cm"}',
             "values": counter(1, 20)},
        ],
        "promql_expr_test": [
            {"expr": f'{HIT_RATIO}{{cache="books"}}',
             "eval_time": "10m",
             "exp_samples": [{"labels": f'{HIT_RATIO}{{cache="books",layer="app"}}',
                              "value": 0.9}]},
        ],
    }]



def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Judged by the core's CacheHitRateLow."""
    return (generic(t, "app", DASHBOARD.uid, panel="Hit rate per cache",
                    latency_panel="P99 latency"),)


PART = BundlePart(
    dashboard=DASHBOARD, goals=goals, lookup_feeds=micrometer_lookups,
    recording_tests=micrometer_tests,
    rejections=Rejections(L.APP_PUSH_REJECTED.name, "caches", position=2,
                          # one burst of refusals, then none: no alert
                          test_series=(('reason="auth"', "0x5 3x35"),)))

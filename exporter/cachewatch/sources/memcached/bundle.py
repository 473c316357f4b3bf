"""Memcached's part of the bundle: its dashboard and the promtool case of the core's P99 alert
for ``layer="memcached"``. The source adds no alert of its own: its layer is declared with
``generic_alerts`` (``SOURCE.layers``), so the core's CacheHitRateLow selects it and the core's
hit-rate case gives it a failing cache; the core draws its latency case on the first covered
layer only, hence this part's.
"""

from __future__ import annotations

from typing import Any

from ...bundle import series
from ...bundle.goals import Goal, generic
from ...bundle.panels import (
    NEUTRAL,
    DashboardSpec,
    Panel,
    fleet,
    hit_steps,
    latency_steps,
    legend,
)
from ...bundle.part import BundlePart
from ...bundle.promtool import (
    before_for,
    duration,
    expected,
    histogram,
    interpolated_p99,
)
from ...bundle.thresholds import Thresholds, seconds
from . import contract
from .contract import LAYER
from .probe import OP


def panels(t: Thresholds) -> list[Panel]:
    """Hit rate, latency, the items stored for nothing, memory and connections of each
    memcached."""
    sel = fleet(t, f'layer="{LAYER}"', 'cache=~"$cache"')
    one = fleet(t, 'cache=~"$cache"')
    rate = "[$__rate_interval]"
    by = t.by("cache")
    stored = f"sum by ({by}) (rate({contract.MEMCACHED_ITEMS_STORED.name}{one}{rate}))"
    return [
        Panel("timeseries", "Hit rate", ((f"{series.HIT_RATIO}{sel}", legend(t, "{{cache}}")),),
              "percentunit", hit_steps(t.hit_rate), 12,
              "get_hits / (get_hits + get_misses) over 5 minutes; the line is the target "
              "CacheHitRateLow alerts below."),
        Panel("timeseries", "P99 latency (client-observed)",
              ((f"{series.P99}{sel}", legend(t, "{{cache}}")),), "s",
              latency_steps(t.p99_seconds), 12,
              "The probe's `version` round trip, network included (it reads no key, so the hit"
              " rate is untouched); the line is the target CacheLatencyP99High alerts above."),
        Panel("timeseries", "Stored and never read",
              ((f"sum by ({by}) (rate({contract.MEMCACHED_EVICTED_UNFETCHED.name}{one}{rate}))\n"
                f"/ ({stored} > 0)", legend(t, "{{cache}} evicted unread")),
               (f"sum by ({by}) (rate({contract.MEMCACHED_EXPIRED_UNFETCHED.name}{one}{rate}))\n"
                f"/ ({stored} > 0)", legend(t, "{{cache}} expired unread"))),
              "percentunit", NEUTRAL, 12,
              "Items evicted or expired without a single read, as a share of items stored: "
              "writes and memory spent on nothing. High with a low hit rate: keys are written "
              "that nobody asks for, or TTLs end before the next read."),
        Panel("timeseries", "Evictions",
              ((f"sum by ({by}) (rate({contract.CACHE_EVICTIONS.name}{sel}{rate}))",
                legend(t, "{{cache}}")),), "ops", NEUTRAL, 12,
              "Items evicted to make room (the memory limit reached) while still live."),
        Panel("timeseries", "Memory vs limit",
              ((f"{contract.CACHE_BYTES.name}{sel}", legend(t, "{{cache}} used")),
               (f"{contract.MEMCACHED_LIMIT_BYTES.name}{one}", legend(t, "{{cache}} limit"))),
              "bytes", NEUTRAL, 12,
              "Bytes of items stored against limit_maxbytes (the -m option)."),
        Panel("timeseries", "Items and connections",
              ((f"{contract.CACHE_ENTRIES.name}{sel}", legend(t, "{{cache}} items")),
               (f"{contract.MEMCACHED_CONNECTIONS.name}{one}", legend(t, "{{cache}} connections"))),
              "none", NEUTRAL, 12,
              "Items held now, and client connections open (cachewatch's own included)."),
    ]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The memcached caches of the selected fleet."""
    memcached = fleet(t, f'layer="{LAYER}"')
    return (("cache", f"label_values({series.TOTAL}{memcached}, cache)"),)


DASHBOARD = DashboardSpec("memcached", "cachewatch-memcached", "cachewatch: Memcached", panels,
                          variables)


def _generic(name: str, t: Thresholds) -> dict[str, Any]:
    """The core's generic alert ``name``: the one this layer's case tests."""
    # Imported here: the rules module reads the parts (this one included) when it is imported.
    from ...bundle.rules import cache_alerts

    return next(rule for rule in cache_alerts(t) if rule["alert"] == name)


def latency_case(t: Thresholds) -> dict[str, Any]:
    """CacheLatencyP99High for a slow memcached, not for a fast one nor one probed too rarely
    to judge."""
    rule = _generic("CacheLatencyP99High", t)
    edges = contract.LATENCY_BUCKETS
    slow = next(e for e in edges if e > t.p99_seconds)  # every round trip just over the target
    rate = max(1.0, t.min_latency_observations_per_second * 10)
    minutes = 30 + seconds(t.p99_for) // 60

    def cache(name: str, all_in: float | None, per_second: float) -> list[dict[str, str]]:
        return histogram(contract.CACHE_LATENCY.name,
                         f'layer="{LAYER}",cache="{name}",op="{OP}"', edges, all_in, per_second,
                         minutes)

    return {
        "interval": "1m",
        "input_series": [
            *cache("sessions", slow, rate),
            *cache("pages", None, rate),
            *cache("rare", slow, t.min_latency_observations_per_second / 4),
        ],
        "alert_rule_test": [
            before_for(t.p99_for, "CacheLatencyP99High"),
            {"eval_time": f"{minutes - 2}m", "alertname": "CacheLatencyP99High",
             "exp_alerts": [expected(rule, {"layer": LAYER, "cache": "sessions"},
                                     duration(interpolated_p99(edges, slow)))]},
        ],
    }


def tests(t: Thresholds) -> list[dict[str, Any]]:
    """The generic latency alert's case for this layer."""
    return [latency_case(t)]



def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Judged by the core's CacheHitRateLow."""
    return (generic(t, LAYER, DASHBOARD.uid, panel="Hit rate",
                    latency_panel="P99 latency (client-observed)"),)


PART = BundlePart(dashboard=DASHBOARD, goals=goals, alert_tests=tests,
                  targets="Memcached servers")

"""Redis's part of the bundle: the server-side P99 per command over the last 5 minutes (from the
LATENCY HISTOGRAM buckets), its alert and promtool case, and the Redis dashboard (the shared
hit-rate and client-latency alerts are the core's)."""

from __future__ import annotations

from typing import Any

from ...bundle import series
from ...bundle.alerting import PanelLink, alert
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
from ...bundle.part import BundlePart
from ...bundle.promtool import before_for, duration, expected, histogram, interpolated_p99
from ...bundle.thresholds import Thresholds
from . import contract

L = contract
HISTOGRAM = L.REDIS_COMMAND_LATENCY.name
EDGES = L.REDIS_COMMAND_LATENCY_BUCKETS
COMMAND_CALLS = "cache_command:cachewatch_redis_command_calls:rate5m"
COMMAND_P99 = "cache_command:cachewatch_redis_command_latency_seconds:p99_5m"
# Commands slow by nature, or run by operators, left out of the server-side P99 alert.
ADMIN_COMMANDS = "info|config.*|client.*|slowlog.*|latency.*|debug.*|save|bgsave|flush.*|keys|scan"


def recording_rules(t: Thresholds) -> list[dict[str, Any]]:
    """Calls and the server-side P99 per command over 5 minutes: a window, unlike INFO
    latencystats' percentiles since the server started, so the P99 recovers with the server."""
    by = t.by("cache", "command")
    return [
        {"record": COMMAND_CALLS, "expr": f"sum by ({by}) (rate({HISTOGRAM}_count[5m]))"},
        {"record": COMMAND_P99,
         "expr": f"histogram_quantile(0.99, sum by ({t.by('cache', 'command', 'le')}) "
                 f"(rate({HISTOGRAM}_bucket[5m])))\nand on ({by}) ({COMMAND_CALLS} > 0)"},
    ]


def panels(t: Thresholds) -> list[Panel]:
    """Hit rate, client vs server latency, memory and load of each Redis."""
    sel = fleet(t, 'layer="redis"', 'cache=~"$cache"')
    one = fleet(t, 'cache=~"$cache"')
    served = fleet(t, 'cache=~"$cache"', f'command!~"{ADMIN_COMMANDS}"')
    # A cluster's capacity is its masters'; a server of its own has no role label.
    masters = fleet(t, 'cache=~"$cache"', 'role!="replica"')
    rate = "[$__rate_interval]"
    return [
        Panel("timeseries", "Hit rate", ((f"{series.HIT_RATIO}{sel}", legend(t, "{{cache}}")),),
              "percentunit", hit_steps(t.hit_rate), 12,
              "keyspace_hits / (hits + misses) over 5 minutes; the line is the target."),
        Panel("timeseries", "P99: client-observed vs server-side",
              ((f"{series.P99}{sel}", legend(t, "{{cache}} client")),
               (f"max by ({t.by('cache')}) ({COMMAND_P99}{served})",
                legend(t, "{{cache}} server (slowest command)"))),
              "s", latency_steps(t.p99_seconds), 12,
              "Client P99 is the probe's round trip (network included); server P99 is the "
              "slowest command inside Redis over 5 minutes. Far apart: the network is slow."),
        Panel("timeseries", "Server-side P99 by command",
              ((f"{COMMAND_P99}{one}", legend(t, "{{cache}} {{command}}")),), "s",
              latency_steps(t.p99_seconds), 12,
              "From LATENCY HISTOGRAM over 5 minutes (power-of-two buckets: between edges the "
              "value is interpolated). Admin commands included here, not in the alert."),
        Panel("timeseries", "Evictions and expirations",
              ((f"sum by ({t.by('cache')}) (rate({L.CACHE_EVICTIONS.name}{sel}{rate}))",
                legend(t, "{{cache}} evicted")),
               (f"sum by ({t.by('cache')}) (rate({L.REDIS_EXPIRED_KEYS.name}{one}{rate}))",
                legend(t, "{{cache}} expired"))), "ops", NEUTRAL, 12,
              "Keys evicted to make room (maxmemory reached) and keys expired by their TTL."),
        Panel("timeseries", "Memory vs maxmemory",
              ((f"sum by ({t.by('cache')}) ({L.CACHE_BYTES.name}{sel})",
                legend(t, "{{cache}} used")),
               (f"sum by ({t.by('cache')}) ({L.REDIS_MAXMEMORY.name}{masters}) > 0",
                legend(t, "{{cache}} maxmemory"))),
              "bytes", NEUTRAL, 12,
              "used_memory against the maxmemory limit (no line: no limit set); a cluster's "
              "masters added up (a replica holds a copy)."),
        Panel("timeseries", "Connected clients",
              ((f"sum by ({t.by('cache')}) ({L.REDIS_CONNECTED_CLIENTS.name}{one})",
                legend(t, "{{cache}}")),), "none",
              NEUTRAL, 12, "Client connections open now, cachewatch's own included (a "
              "cluster's nodes added up)."),
        Panel("table", "Findings (cachewatch doctor)",
              ((f"sum by ({t.by('cache', 'rule')}) ({L.REDIS_FINDINGS.name}{one}) > 0",
                legend(t, "{{cache}} {{rule}}")),), "none", NEUTRAL, 12,
              "Causes of misses (or trouble ahead) that INFO shows now, per cache: the value "
              "is how many of its servers (cluster nodes) show it. `cachewatch doctor "
              "redis://host:port` gives the evidence and the fix, and samples hot and big keys.",
              no_data="No findings: no cause of misses in INFO of the selected caches",
              extra=tidy_table(t, {"cache": "cache", "rule": "finding",
                                   "Value": "Servers showing it"}, "Servers showing it")),
        Panel("timeseries", "Commands per second",
              ((f"sum by ({t.by('cache')}) "
                f"(rate({L.REDIS_COMMANDS_PROCESSED.name}{one}{rate}))", legend(t, "{{cache}}")),),
              "ops", NEUTRAL, 24, "Commands the server processed, every command."),
    ]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The Redis caches of the selected fleet."""
    redis = fleet(t, 'layer="redis"')
    return (("cache", f"label_values({series.TOTAL}{redis}, cache)"),)


DASHBOARD = DashboardSpec("redis", "cachewatch-redis", "cachewatch: Redis", panels, variables)


def _server_latency_alert(t: Thresholds) -> dict[str, Any]:
    ms = f"{t.p99_seconds * 1000:g} ms"
    by = t.by("cache", "command")
    return alert(
        "RedisServerLatencyP99High",
        f'{COMMAND_P99}{{command!~"{ADMIN_COMMANDS}"}} > {t.p99_seconds}\n'
        f"and on ({by}) {COMMAND_CALLS} > {t.min_lookups_per_second}",
        t.p99_for, "warning",
        f"Redis {{{{ $labels.cache }}}}: {{{{ $labels.command }}}} P99 above {ms} "
        "inside the server",
        f"Redis {{{{ $labels.cache }}}} took {{{{ $value | humanizeDuration }}}} at "
        f"the 99th percentile for {{{{ $labels.command }}}} over the last 5 minutes (target "
        f"{ms}); the network is not in this number.",
        PanelLink(DASHBOARD.uid, "Server-side P99 by command", (("cache", "cache"),)), t,
        layer="redis")


def alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Latency inside the server, which the client-observed P99 cannot tell from the network."""
    return [_server_latency_alert(t)]


def _server_latency_case(t: Thresholds) -> dict[str, Any]:
    rule = _server_latency_alert(t)
    busy = t.min_lookups_per_second * 4
    slow = next(e for e in EDGES if e > t.p99_seconds)  # every call in the bucket above it
    minutes = 40

    def command(cmd: str, all_in: float | None, calls: float, **then: Any) -> list[dict]:
        return histogram(HISTOGRAM, f'cache="main",command="{cmd}"', EDGES, all_in, calls,
                         minutes, **then)

    p99 = duration(interpolated_p99(EDGES, slow))
    return {
        "interval": "1m",
        "input_series": [
            *command("get", slow, busy),  # fires
            *command("set", None, busy),  # fast: no alert
            *command("hgetall", slow, t.min_lookups_per_second / 4),  # too rare to judge
            *command("info", slow, busy),  # admin command: left out
            # slow for 20 minutes, then fast: the 5-minute P99 recovers
            *command("lrange", slow, busy, switch=20, then_in=None),
        ],
        "alert_rule_test": [
            before_for(t.p99_for, "RedisServerLatencyP99High"),
            {"eval_time": "15m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                expected(rule, {"cache": "main", "command": "get"}, p99),
                expected(rule, {"cache": "main", "command": "lrange"}, p99)]},
            {"eval_time": "35m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                expected(rule, {"cache": "main", "command": "get"}, p99)]},
        ],
    }


def tests(t: Thresholds) -> list[dict[str, Any]]:
    """Slow, fast, rare, admin and recovering commands: only the slow busy ones alert."""
    return [_server_latency_case(t)]



def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Judged by the core's CacheHitRateLow."""
    return (generic(t, "redis", DASHBOARD.uid, panel="Hit rate",
                    latency_panel="P99: client-observed vs server-side"),)


PART = BundlePart(dashboard=DASHBOARD, goals=goals, recording_rules=recording_rules,
                  alert_rules=alerts,
                  alert_tests=tests, cache_alerts=("RedisServerLatencyP99High",),
                  targets="Redis servers")

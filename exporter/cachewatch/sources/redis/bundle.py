"""Redis's part of the bundle: the server-side latency alert, its promtool case and the Redis
dashboard (the shared hit-rate and client-latency alerts are the core's)."""

from __future__ import annotations

from typing import Any

from ... import contract
from ...bundle import series
from ...bundle.alerting import alert
from ...bundle.panels import NEUTRAL, DashboardSpec, Panel, hit_steps, latency_steps
from ...bundle.part import BundlePart
from ...bundle.promtool import counter, duration, expected
from ...bundle.thresholds import Thresholds

L = contract
SERVER_LATENCY = L.REDIS_SERVER_LATENCY.name
# Commands slow by nature, or run by operators, left out of the server-side P99 alert.
ADMIN_COMMANDS = "info|config.*|client.*|slowlog.*|latency.*|debug.*|save|bgsave|flush.*|keys|scan"


def panels(t: Thresholds) -> list[Panel]:
    """Hit rate, client vs server latency, memory and load of each Redis."""
    sel = '{layer="redis", cache=~"$cache"}'
    one = '{cache=~"$cache"}'
    return [
        Panel("timeseries", "Hit rate", ((f"{series.HIT_RATIO}{sel}", "{{cache}}"),),
              "percentunit", hit_steps(t.hit_rate), 12),
        Panel("timeseries", "P99: client-observed vs server-side",
              ((f"{series.P99}{sel}", "{{cache}} client"),
               (f'max by (cache) ({SERVER_LATENCY}{{quantile="0.99", '
                f'cache=~"$cache", command!~"{ADMIN_COMMANDS}"}})', "{{cache}} server")),
              "s", latency_steps(t.p99_seconds), 12),
        Panel("timeseries", "Evictions and expirations",
              ((f"sum by (cache) (rate({L.CACHE_EVICTIONS.name}{sel}[5m]))",
                "{{cache}} evicted"),
               (f"sum by (cache) (rate({L.REDIS_EXPIRED_KEYS.name}{one}[5m]))",
                "{{cache}} expired")), "ops", NEUTRAL, 12),
        Panel("timeseries", "Memory vs maxmemory",
              ((f"{L.CACHE_BYTES.name}{sel}", "{{cache}} used"),
               (f"{L.REDIS_MAXMEMORY.name}{one} > 0", "{{cache}} maxmemory")),
              "bytes", NEUTRAL, 12),
        Panel("timeseries", "Connected clients",
              ((f"{L.REDIS_CONNECTED_CLIENTS.name}{one}", "{{cache}}"),), "none", NEUTRAL, 12),
        Panel("timeseries", "Commands per second",
              ((f"sum by (cache) (rate({L.REDIS_COMMANDS_PROCESSED.name}{one}[5m]))",
                "{{cache}}"),), "ops", NEUTRAL, 12),
    ]


DASHBOARD = DashboardSpec(
    "redis", "cachewatch-redis", "cachewatch: Redis", panels,
    (("cache", f'label_values({L.CACHE_LOOKUPS.name}{{layer="redis"}}, cache)'),))


def _server_latency_alert(t: Thresholds) -> dict[str, Any]:
    ms = f"{t.p99_seconds * 1000:g} ms"
    return alert(
        "RedisServerLatencyP99High",
        f'max by (cache, command) ({SERVER_LATENCY}'
        f'{{quantile="0.99", command!~"{ADMIN_COMMANDS}"}}) > {t.p99_seconds}\n'
        f"and on (cache, command) sum by (cache, command) "
        f"(rate({SERVER_LATENCY}_count[5m])) > "
        f"{t.min_lookups_per_second}",
        t.p99_for, "warning",
        f"Redis {{{{ $labels.cache }}}}: {{{{ $labels.command }}}} P99 above {ms} "
        "inside the server",
        f"Redis {{{{ $labels.cache }}}} reports a server-side P99 of "
        f"{{{{ $value | humanizeDuration }}}} for {{{{ $labels.command }}}} (target {ms}); "
        "the network is not in this number.", DASHBOARD.uid, t, layer="redis")


def alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Latency inside the server, which the client-observed P99 cannot tell from the network."""
    return [_server_latency_alert(t)]


def _server_latency_case(t: Thresholds) -> dict[str, Any]:
    rule = _server_latency_alert(t)
    busy = t.min_lookups_per_second * 4
    slow, fast = t.p99_seconds * 2, t.p99_seconds / 10

    def command(cmd: str, p99: str, calls: str) -> list[dict[str, str]]:
        return [{"series": f'{SERVER_LATENCY}{{cache="main",command="{cmd}",quantile="0.99"}}',
                 "values": p99},
                {"series": f'{SERVER_LATENCY}_count{{cache="main",command="{cmd}"}}',
                 "values": calls}]

    return {
        "interval": "1m",
        "input_series": [
            *command("get", f"{slow:g}x40", counter(busy, 40)),  # fires
            *command("set", f"{fast:g}x40", counter(busy, 40)),  # fast: no alert
            *command("hgetall", f"{slow:g}x40", counter(t.min_lookups_per_second / 4, 40)),
            *command("info", f"{slow:g}x40", counter(busy, 40)),  # admin command: left out
            *command("lrange", f"{slow:g}x20 {fast:g}x20", counter(busy, 40)),  # recovers
        ],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                expected(rule, {"cache": "main", "command": "get"}, duration(slow)),
                expected(rule, {"cache": "main", "command": "lrange"}, duration(slow))]},
            {"eval_time": "35m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                expected(rule, {"cache": "main", "command": "get"}, duration(slow))]},
        ],
    }


def tests(t: Thresholds) -> list[dict[str, Any]]:
    """Slow, fast, rare, admin and recovering commands: only the slow busy ones alert."""
    return [_server_latency_case(t)]


PART = BundlePart(dashboard=DASHBOARD, alert_prefix="Redis", alert_rules=alerts,
                  alert_tests=tests)

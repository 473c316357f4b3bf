"""Every query of the Memcached dashboard returns data from a real Prometheus that scrapes a real
exporter reading a real memcached, with the bundle's recording rules loaded."""

from __future__ import annotations

import threading
import time

import pytest

from cachewatch.bundle import assembly, dashboards
from cachewatch.bundle.thresholds import Thresholds

from support import settings, wait_until

pytestmark = pytest.mark.e2e

VARIABLES = {"$__rate_interval": "1m", "$cluster": ".*", "$namespace": ".*",
             "$job": "cachewatch", "$cache": ".*"}


def _query(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def test_every_memcached_panel_query_returns_data(memcached, exporter_factory,
                                                  prometheus_factory, tmp_path):
    t = Thresholds()
    rules = tmp_path / "rules.yml"
    rules.write_text(assembly.files(t)["alerts/cachewatch-rules.yml"])
    exporter = exporter_factory(settings([], **{
        "redis.enabled": False, "memcached.enabled": True,
        "memcached.targets": [f"sessions={memcached.address}"],
        "memcached.probe_interval": "100ms"}))
    prometheus = prometheus_factory([f"127.0.0.1:{exporter.port}"], [rules])
    stop = threading.Event()

    def traffic() -> None:  # stores, hits and misses all the time: every rate has a value
        n = 0
        while not stop.is_set():
            memcached.set(f"k{n}")
            memcached.get(f"k{n}", f"absent{n}")
            n += 1
            time.sleep(0.05)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    exprs = [(title, _query(expr)) for board, title, expr in dashboards.all_exprs(t)
             if board == "memcached"]
    assert len(exprs) == 9  # six panels
    try:
        wait_until(lambda: all(prometheus.query(expr) for _, expr in exprs), timeout=90,
                   interval=1)
    finally:
        stop.set()
        thread.join()
    ratio = prometheus.scalar(_query(exprs[0][1]))
    assert ratio is not None
    assert 0.3 < ratio < 0.7  # one hit and one miss per round

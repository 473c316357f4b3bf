"""The first hour of a new user, end to end with the real ``cachewatch serve``: every source fed,
200 scrapes, then what the log and promtool say about it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from support import FIXTURES, ROOT, RedisServer, free_port, promtool_clean, wait_until

pytestmark = pytest.mark.e2e  # a real exporter process, redis-server and promtool

# A Distribution 2.8 pull-through cache's /debug/vars, as the registry_proxy collector reads it
# (the registry's own registry tests read a real one; here only its shape matters).
DEBUG_VARS = {"registry": {
    "proxy": {"blobs": {"Requests": 40, "Hits": 40, "Misses": 4, "BytesPulled": 4096},
              "manifests": {"Requests": 10, "Hits": 10, "Misses": 1, "BytesPulled": 512}},
    "notifications": {"endpoints": [{"name": "cachewatch", "Metrics": {
        "Pending": 0, "Events": 3, "Successes": 3, "Failures": 0, "Errors": 0}}]}}}


class _DebugVars(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(DEBUG_VARS).encode()
        self.send_response(200 if self.path == "/debug/vars" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the exporter's log, not this one's."""


@dataclass
class Day:
    url: str
    log: Path
    metrics: str
    probe: str


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Iterator[Day]:
    """One exporter with every source fed, scraped 200 times, then stopped."""
    workdir = tmp_path_factory.mktemp("first-hour")
    redis = RedisServer(workdir / "redis").start()
    debug = ThreadingHTTPServer(("127.0.0.1", 0), _DebugVars)
    threading.Thread(target=debug.serve_forever, daemon=True).start()
    port = free_port()
    log = workdir / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEWATCH_")}
    # the default backend (SQLite), in a file of this test's own, never the user's
    env["CACHEWATCH_STATE__URL"] = f"sqlite:///{workdir / 'state.db'}"
    env["CACHEWATCH_REGISTRY_PROXY__TARGETS"] = json.dumps(
        [f"mirror=http://127.0.0.1:{debug.server_address[1]}"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
         "--port", str(port), "--redis-target", f"main={redis.url}",
         "--redis-probe-interval", "50ms"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/readyz").status_code == 200, timeout=20)
        redis.client().get("absent")
        _feed(url)
        with httpx.Client() as client:
            for _ in range(200):
                assert client.get(url + "/metrics").status_code == 200
            metrics = client.get(url + "/metrics").text
            probe = client.get(url + "/probe", params={"target": "main"}).text
        proc.terminate()
        proc.wait(timeout=15)
        yield Day(url, log, metrics, probe)
    finally:
        if proc.poll() is None:
            proc.kill()
        debug.shutdown()
        redis.stop()


def _feed(url: str) -> None:
    """A build, an app cache push, Distribution and Harbor notifications."""
    build = (FIXTURES / "buildlogs" / "buildkit-busted.log").read_bytes()
    assert httpx.post(url + "/api/v1/builds", content=build, params={"image": "app"},
                      headers={"Content-Type": "text/plain"}).status_code == 202
    assert httpx.post(url + "/api/v1/caches", json={"instance": "w1", "caches": [
        {"name": "users", "stats": {"hitCount": 9, "missCount": 1}},
        {"name": "pages", "micrometer": {"cache_gets": {"hit": 5, "miss": 3}}}]}
    ).status_code == 202
    event = {"id": "e1", "action": "pull", "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
        "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
        "request": {"method": "GET", "host": "registry:5000"}}
    assert httpx.post(url + "/webhooks/registry", json={"events": [event]}).status_code == 200
    harbor = {"type": "PULL_ARTIFACT", "occur_at": 1, "operator": "ci", "event_data": {
        "resources": [{"tag": "v1"}], "repository": {"repo_full_name": "team/app"}}}
    assert httpx.post(url + "/webhooks/harbor", json=harbor).status_code == 200


def test_start_up_and_200_scrapes_take_at_most_ten_log_lines(day):
    lines = day.log.read_text().splitlines()
    assert 0 < len(lines) <= 10, "\n".join(lines)
    assert not [line for line in lines if "=None" in line], lines
    assert not [line for line in lines if "HTTP Request" in line], lines  # httpx per scrape
    assert "cachewatch starting" in lines[0]
    assert "cachewatch stopped" in lines[-1]


def test_promtool_check_metrics_is_clean_for_every_source(day):
    # every source is in this one exposition, the pull-through cache and the probe included
    for family in ("cachewatch_cache_lookups_total{cache=\"main\"",
                   "cachewatch_registry_proxy_lookups_total", "cachewatch_docker_builds_total",
                   "cachewatch_app_cache_loads_total", "cachewatch_registry_image_pulls_total",
                   "cachewatch_cache_latency_seconds_bucket", "process_cpu_seconds_total"):
        assert family.split("{")[0] in day.metrics, family
    promtool_clean(day.metrics)
    promtool_clean(day.probe)
    for golden in sorted((ROOT / "tests" / "golden").glob("*.prom")):
        promtool_clean(golden.read_text().replace(" <volatile>", " 1"))

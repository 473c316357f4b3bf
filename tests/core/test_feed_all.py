"""``examples/feed_all.py``, the README's "see every source at once": it feeds every source of a
real exporter (a real Redis under the app's L2), stops by itself after ``--duration``, and what
it says it sent is what the exporter counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import ROOT, settings

LOOKUPS = "cachewatch_cache_lookups_total"


@pytest.mark.e2e
def test_feed_all_feeds_every_source_for_its_duration_and_the_counts_match(redis_plain,
                                                                          exporter_factory):
    exporter = exporter_factory(settings([f"l2={redis_plain.url}"]))
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "feed_all.py"), "--exporter", exporter.url,
         "--redis", redis_plain.url, "--duration", "3s", "--build-every", "1s",
         "--pull-every", "1s", "--job-every", "1s", "--rate", "500"],
        capture_output=True, text=True, timeout=60, check=True)
    sent = json.loads(run.stdout)
    assert sent["refused"] == {}
    assert sent["failed_cache_pushes"] == 0
    assert sent["builds"] >= 2  # one a second for 3 s, the first at once
    assert sent["pulls"] == sent["builds"]
    assert sent["ci_jobs"] == sent["builds"]
    assert "feeding " + exporter.url + " for 3s" in run.stderr
    m = exporter.scrape()
    assert sum(m.find(LOOKUPS, layer="app", cache="catalog")) == sent["lookups"] > 0
    # the first build is cold (5 misses), every later one takes 3 steps from cache
    builds = sent["builds"]
    assert m.value(LOOKUPS, layer="docker_build", cache="demo/web", result="hit") == \
        3 * (builds - 1)
    assert m.value(LOOKUPS, layer="docker_build", cache="demo/web", result="miss") == \
        5 + 2 * (builds - 1)
    assert m.value("cachewatch_docker_builds_total", image="demo/web", source="log",
                   status="success", target="") == builds
    assert m.value("cachewatch_registry_image_pulls_total", registry="demo",
                   repository="demo/web", tag="") == sent["pulls"]
    assert m.value(LOOKUPS, layer="ci", cache="pip-Linux", result="hit") == sent["ci_jobs"]
    assert m.value(LOOKUPS, layer="ci", cache="mypy-Linux", result="miss") == sent["ci_jobs"]
    # the app's L2 is the real Redis the exporter reads: its GETs are Redis' keyspace lookups
    info = redis_plain.client().info("stats")
    redis_lookups = info["keyspace_hits"] + info["keyspace_misses"]
    assert sum(m.find(LOOKUPS, layer="app", cache="catalog-redis")) == redis_lookups


def test_feed_all_without_an_exporter_stops_at_once_saying_what_to_start():
    from support import free_port

    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "feed_all.py"), "--exporter",
         f"http://127.0.0.1:{free_port()}", "--duration", "10m"],
        capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert "feed: no cachewatch at http://127.0.0.1:" in run.stderr
    assert "start it with `make run` (or `cachewatch serve`), or pass --exporter" in run.stderr

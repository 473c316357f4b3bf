"""The whole ``/metrics`` of each source on fixed inputs, against a committed golden file.

The node_exporter habit: a change to any family, label, value or help text shows up as a diff of
``tests/golden/<source>.prom`` in review. Volatile samples (process, durations, versions) are
masked. Regenerate after an intended change with ``make golden``
(``CACHEWATCH_UPDATE_GOLDEN=1 pytest tests/core/test_golden.py``) and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

import httpx
import pytest

from cachewatch.sources.redis.client import ClientCache

from support import FIXTURES, ROOT, Exporter
from support import settings as exporter_settings

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("CACHEWATCH_UPDATE_GOLDEN") == "1"
SECTIONS = ("redis", "builds", "docker", "registry", "registry_proxy", "app")
# Samples whose values depend on the machine or the moment, not on the inputs.
VOLATILE = re.compile(
    r"^((?:cachewatch_collector_duration_seconds|cachewatch_build_info"
    r"|cachewatch_app_cache_last_push_timestamp_seconds)\{[^}]*\}) .*$")


async def _captured_replies(self: ClientCache, target: object, *commands: tuple[str, ...],
                            raise_errors: bool = True) -> list[object]:
    """The INFO sections and the LATENCY HISTOGRAM captured together from a real 7.0
    redis-server (tests/fixtures/redis): the golden file is about our output, not Redis'."""
    return [_captured(command) for command in commands]


def _captured(command: tuple[str, ...]) -> object:
    """The captured reply: INFO text as bytes, the histogram as RESP2 lists of bytes and ints."""
    if command == ("LATENCY", "HISTOGRAM"):
        def resp2(value: object) -> object:
            if isinstance(value, list):
                return [resp2(item) for item in value]
            return value.encode() if isinstance(value, str) else value

        return resp2(json.loads((FIXTURES / "redis" / "latency-histogram.json").read_text()))
    return (FIXTURES / "redis" / f"info-{command[1]}.txt").read_bytes()


def _only(*enabled: str, **overrides: object):
    switches = {f"{name}.enabled": name in enabled for name in SECTIONS}
    return exporter_settings(["golden=redis://127.0.0.1:1"], **switches,
                             **{"state.replica_id": "golden", **overrides})


def _feed_redis(exporter: Exporter) -> None:
    """Nothing to send: the collector reads the captured INFO."""


def _feed_builds(exporter: Exporter) -> None:
    for name in ("buildkit-cold.log", "buildkit-busted.log", "legacy-busted.log"):
        response = httpx.post(exporter.url + "/api/v1/builds",
                              content=(FIXTURES / "buildlogs" / name).read_bytes(),
                              params={"image": "app", "id": name},
                              headers={"Content-Type": "text/plain"}, timeout=30)
        assert response.status_code == 202, response.text


def _feed_registry(exporter: Exporter) -> None:
    manifest = "application/vnd.docker.distribution.manifest.v2+json"
    events = [
        {"id": "e1", "action": "push", "target": {"mediaType": manifest, "size": 528,
         "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
         "request": {"method": "PUT", "host": "registry.local:5000"}},
        {"id": "e2", "action": "pull", "target": {"mediaType": manifest, "size": 528,
         "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
         "request": {"method": "GET", "host": "registry.local:5000"}},
        {"id": "e3", "action": "pull", "target": {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2048,
            "digest": "sha256:" + "b" * 64, "repository": "team/app"},
         "request": {"method": "GET", "host": "registry.local:5000"}},
    ]
    for body in ({"events": events}, {"events": events[1:2]}):  # the second is a redelivery
        response = httpx.post(exporter.url + "/webhooks/registry", json=body, timeout=10,
                              headers={"Content-Type":
                                       "application/vnd.docker.distribution.events.v1+json"})
        assert response.status_code < 300, response.text


def _feed_app(exporter: Exporter) -> None:
    body = {"instance": "web-1", "caches": [
        {"name": "users", "stats": {"hitCount": 90, "missCount": 10, "loadSuccessCount": 9,
                                    "loadFailureCount": 1, "totalLoadTime": 2_500_000_000,
                                    "evictionCount": 4, "evictionWeight": 7}},
        {"name": "pages", "micrometer": {"cache_gets": {"hit": 5, "miss": 3}, "cache_puts": 3,
                                         "cache_evictions": 1, "cache_size": 2}},
    ]}
    response = httpx.post(exporter.url + "/api/v1/caches", json=body, timeout=10)
    assert response.status_code == 202, response.text


FEEDS: dict[str, tuple[tuple[str, ...], Callable[[Exporter], None]]] = {
    "redis": (("redis",), _feed_redis),
    "docker": (("builds",), _feed_builds),
    "registry": (("registry",), _feed_registry),
    "app": (("app",), _feed_app),
}

# Settings a feed needs besides its sections: the docker source reports a Dockerfile's findings.
OVERRIDES: dict[str, dict[str, object]] = {
    "docker": {"builds.dockerfiles": {
        "app": str(FIXTURES / "dockerfiles" / "OR13__camcam__Dockerfile" / "Dockerfile")}},
}


def _masked(text: str) -> str:
    kept = []
    for line in text.splitlines():
        if line.startswith(("process_", "python_", "# HELP process_", "# TYPE process_",
                            "# HELP python_", "# TYPE python_")):
            continue
        kept.append(VOLATILE.sub(r"\1 <volatile>", line))
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("source", list(FEEDS))
def test_whole_exposition_of_each_source_matches_its_golden_file(source, exporter_factory,
                                                                 monkeypatch):
    monkeypatch.setattr(ClientCache, "call", _captured_replies)
    sections, feed = FEEDS[source]
    exporter = exporter_factory(_only(*sections, **OVERRIDES.get(source, {})))
    feed(exporter)
    text = _masked(exporter.get("/metrics").text)
    golden = GOLDEN / f"{source}.prom"
    if UPDATE:
        golden.write_text(text)
    assert golden.is_file(), f"no {golden.name}: run `make golden` and review it"
    assert text == golden.read_text(), f"{golden.name} differs: run `make golden`, review, commit"

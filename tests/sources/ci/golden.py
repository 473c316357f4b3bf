"""The CI caches' golden scenario: one job report with a hit, a partial hit, a miss and a
save (and the same report again, counted once)."""

from __future__ import annotations

import httpx

from support import Exporter, Golden

REPORT = {"id": "job-1", "ci_caches": [
    {"ci": "github", "cache": "node-cache-Linux-x64-npm", "result": "hit", "bytes": 7028388},
    {"ci": "github", "cache": "Linux-pip", "result": "partial", "bytes": 1024},
    {"ci": "gitlab", "cache": "default", "result": "miss", "bytes": 0},
], "ci_cache_saves": [{"ci": "github", "cache": "Linux-pip", "bytes": 2048}]}


def _feed(exporter: Exporter) -> None:
    for expected in (202, 200):  # the second is the same report: a duplicate
        response = httpx.post(exporter.url + "/api/v1/ci/caches", json=REPORT, timeout=10)
        assert response.status_code == expected, response.text


GOLDEN = Golden(("ci",), _feed)

"""The application caches' golden scenario: one instance pushes a Caffeine-style and a
Micrometer-style cache."""

from __future__ import annotations

import httpx

from support import Exporter, Golden


def _feed(exporter: Exporter) -> None:
    body = {"instance": "web-1", "caches": [
        {"name": "users", "stats": {"hitCount": 90, "missCount": 10, "loadSuccessCount": 9,
                                    "loadFailureCount": 1, "totalLoadTime": 2_500_000_000,
                                    "evictionCount": 4, "evictionWeight": 7}},
        {"name": "pages", "micrometer": {"cache_gets": {"hit": 5, "miss": 3}, "cache_puts": 3,
                                         "cache_evictions": 1, "cache_size": 2}},
    ]}
    response = httpx.post(exporter.url + "/api/v1/caches", json=body, timeout=10)
    assert response.status_code == 202, response.text


GOLDEN = Golden(("app",), _feed)

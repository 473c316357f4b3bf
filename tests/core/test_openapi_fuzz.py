"""schemathesis over the exporter's own OpenAPI document: every documented endpoint (the push
APIs, the registry webhooks, /probe, /metrics, health) fed generated and mutated requests.

Whatever arrives, the exporter never answers 5xx, and ``/metrics`` still answers 200 after each
request (a value that got into a label must never break the exposition).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from support import Exporter
from support import settings as exporter_settings

pytestmark = pytest.mark.e2e  # hundreds of real HTTP requests: out of the fast inner loop


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Exporter]:
    """One real exporter (every receiver on, memory state) for the whole module."""
    exporter = Exporter(exporter_settings(["main=redis://127.0.0.1:1"], **{
        "redis.probe_interval": 0, "redis.timeout": 0.3})).start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="module")
def api(fuzzed: Exporter) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")


DOCUMENTED = ("/api/v1/builds", "/api/v1/caches", "/webhooks/registry", "/webhooks/harbor",
              "/probe", "/metrics")


def test_the_document_lists_every_receiver(api):
    assert set(DOCUMENTED) <= set(api.raw_schema["paths"])


def test_no_input_gets_a_5xx_and_metrics_keeps_answering(api, fuzzed):
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= set(DOCUMENTED)
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzzed.url, timeout=10)
            label = f"{case.method} {case.path}"
            calls[label] = calls.get(label, 0) + 1
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            scrape = httpx.get(fuzzed.url + "/metrics", timeout=10)
            assert scrape.status_code == 200, scrape.text[:300]

        fuzz()
    # every documented operation was really exercised, not skipped by the generator
    assert set(calls) == {f"{op.method.upper()} {op.path}" for op in operations}, calls
    for op in operations:  # those taking input got many; a bare GET has only one request
        raw = api.raw_schema["paths"][op.path][op.method.lower()]
        if raw.get("parameters") or raw.get("requestBody"):
            assert calls[f"{op.method.upper()} {op.path}"] >= 10, (op.path, calls)

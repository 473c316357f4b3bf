"""Harbor replication from its webhooks and its API, replayed from Harbor's own payloads
(``harbor_payloads`` names each origin): Harbor cannot run here, so a stand-in HTTP server
answers the API as Harbor does (``support.HarborStandIn``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from harbor_payloads import (
    DOC_CLOUD_RUNNING,
    DOC_CLOUD_SUCCESS,
    DOC_DEFAULT_SUCCESS,
    POLICIES,
    RUNNING_END,
    api_execution,
    source_task,
)

from cachewatch.collectors.health import Health
from cachewatch.metrics.cardinality import LabelCap
from cachewatch.sources.registry.harbor import HarborPoller
from cachewatch.sources.registry.replication import Replication
from cachewatch.sources.registry.settings import RegistrySettings
from cachewatch.state import MemoryStore, State

from support import HarborStandIn, wait_until
from support import settings as exporter_settings

EXECUTIONS = "cachewatch_registry_replication_executions_total"
ARTIFACTS = "cachewatch_registry_replication_artifacts_total"
LAST = "cachewatch_registry_replication_last_success_timestamp_seconds"
EDGE = "edge-東京"


def post(exporter, body: dict, registry: str | None = None) -> httpx.Response:
    return httpx.post(exporter.url + "/webhooks/harbor", json=body, timeout=10,
                      params={"registry": registry} if registry else None)


def test_documented_payloads_count_one_execution_and_artifact(exporter_factory):
    exporter = exporter_factory(exporter_settings([], **{"redis.enabled": False}))
    running = post(exporter, DOC_CLOUD_RUNNING)
    assert running.json() == {"accepted": 1, "action": "replication", "counted": 0}
    assert post(exporter, DOC_DEFAULT_SUCCESS).json()["counted"] == 2  # artifact + execution
    # the same task in the other format: the same execution and artifact, not counted again
    assert post(exporter, DOC_CLOUD_SUCCESS).json()["counted"] == 0
    assert post(exporter, DOC_CLOUD_SUCCESS).json()["accepted"] == 0  # a redelivered id
    metrics = exporter.scrape()
    labels = {"registry": "harbor", "destination": "localhost"}
    assert metrics.value(EXECUTIONS, **labels, trigger="manual", status="succeeded") == 1
    assert metrics.value(ARTIFACTS, **labels, result="succeeded") == 1
    assert metrics.value(LAST, **labels) == 1680501904  # occur_at of the first success
    assert metrics.value("cachewatch_registry_duplicate_events_total", source="harbor") == 1
    assert metrics.value("cachewatch_registry_events_total", source="harbor",
                         action="replication") == 3


def test_tasks_group_into_executions_and_artifacts_count_once(exporter_factory):
    exporter = exporter_factory(exporter_settings([], **{"redis.enabled": False}))
    events = [source_task(101, "Running", "library/app:v1"),
              source_task(101, "Success", "library/app:v1", occur_at=1717000120),
              source_task(101, "Success", "library/app:v1", occur_at=1717000120),  # again
              source_task(102, "Running", "library/db:v2"),
              source_task(102, "Error", "library/db:v2", occur_at=1717000130),
              # before 2.13: no execution_id, grouped by execution_timestamp and endpoints
              source_task(0, "Success", "library/web:v3", execution_id=None,
                          occur_at=1717000140)]
    for event in events:
        assert post(exporter, event, registry="hq").status_code == 200
    metrics = exporter.scrape()
    labels = {"registry": "hq", "destination": EDGE}
    assert metrics.value(ARTIFACTS, **labels, result="succeeded") == 2
    assert metrics.value(ARTIFACTS, **labels, result="failed") == 1
    # execution 42 counted at its first final task; the older event's execution on its own
    assert metrics.value(EXECUTIONS, **labels, trigger="scheduled", status="succeeded") == 2
    assert metrics.find(EXECUTIONS, **labels, status="failed") == []
    assert metrics.value(LAST, **labels) == 1717000140


def test_a_replication_event_without_its_data_is_refused(exporter_factory):
    exporter = exporter_factory(exporter_settings([], **{"redis.enabled": False}))
    response = post(exporter, {"type": "REPLICATION", "occur_at": 1, "event_data": {}})
    assert response.status_code == 400
    assert "replication" in response.json()["error"]
    odd = {"type": "REPLICATION", "occur_at": True, "event_data": {"replication": {
        "job_status": "Error", "failed_artifact": 5, "dest_resource": "edge",
        "execution_id": {"x": 1}, "trigger_type": ["EVENT"]}}}
    assert post(exporter, odd).json()["counted"] == 2  # an artifact and its execution
    assert post(exporter, {"type": ["REPLICATION"], "event_data": {}}).status_code == 400
    metrics = exporter.scrape()
    assert metrics.value(ARTIFACTS, registry="harbor", destination="unknown",
                         result="failed") == 1


@pytest.fixture
def harbor() -> Iterator[HarborStandIn]:
    stand_in = HarborStandIn([], POLICIES)
    yield stand_in
    stand_in.stop()


def poll(harbor: HarborStandIn, pages: list[list[dict]], **settings: object
         ) -> tuple[list[int], dict, Health]:
    """Poll the stand-in once per page; the executions counted by each poll and the ledger."""
    harbor.pages = lambda n: pages[min(n, len(pages) - 1)]
    state, health = State(MemoryStore(), "r"), Health()
    ledger = state.ledger("registry")
    options = RegistrySettings(harbor_url=harbor.url, harbor_username="robot$cachewatch",
                               harbor_password="s3cret", **settings)
    poller = HarborPoller(options, Replication(LabelCap(5), 5), ledger, health)

    async def run() -> list[int]:
        async with poller.client() as client:
            return [await poller.poll(client) for _ in pages]

    counted = asyncio.run(run())
    items = dict(ledger.items())
    state.close()
    return counted, items, health


def test_polled_executions_count_once_their_final_status_held_two_polls(harbor):
    failed_first = api_execution(7, "Failed", "2024-05-29T16:10:00.000Z", succeed=3, failed=1)
    then_succeeded = api_execution(7, "Succeed", "2024-05-29T16:12:00.000Z", succeed=4)
    running = api_execution(8, "InProgress", RUNNING_END, policy_id=2, trigger="manual")
    pulled = api_execution(8, "Succeed", "2024-05-29T16:00:30.000Z", policy_id=2,
                           trigger="manual", succeed=1)
    counted, items, _ = poll(harbor, [[failed_first, running], [then_succeeded, running],
                                      [then_succeeded, pulled], [then_succeeded, pulled],
                                      [then_succeeded, pulled]])
    assert counted == [0, 0, 1, 1, 0]  # 7 changed status: counted on the third poll, once
    executions = {k[3:]: v for k, v in items.items()
                  if k[0] == "cachewatch_registry_replication_executions_total"}
    assert executions == {("scheduled", "succeeded"): 1, ("manual", "succeeded"): 1}
    artifacts = {k[2:]: v for k, v in items.items()
                 if k[0] == "cachewatch_registry_replication_artifacts_total"}
    assert artifacts == {(EDGE, "succeeded"): 4, ("127.0.0.1:" + harbor.url.rsplit(":", 1)[1],
                                                  "succeeded"): 1}
    duration = {k[2:]: v for k, v in items.items()
                if k[0] == "cachewatch_registry_replication_duration_seconds_bucket"
                and k[2] == EDGE}
    assert duration[(EDGE, "900.0")] == 1  # 12 minutes
    assert (EDGE, "600.0") not in duration
    assert items[("cachewatch_registry_replication_duration_seconds_sum", "harbor", EDGE)] == 720
    assert items[("cachewatch_registry_replication_last_success_timestamp_seconds", "harbor",
                  EDGE)] == 1716999120  # 2024-05-29T16:12:00Z
    assert harbor.auth[0].startswith("Basic ")


def test_a_poll_past_its_deadline_is_an_error_not_a_wait(harbor):
    harbor.server.RequestHandlerClass.do_GET = lambda self: threading.Event().wait(3)
    counted, items, health = poll(harbor, [[]], harbor_timeout=0.3)
    assert counted == [0]
    assert items == {}
    errors = {reason: count for _, reason, count in health.errors("registry")}
    assert errors == {"timeout": 1, "connection": 0, "auth": 0, "protocol": 0, "state": 0}


def test_a_slow_harbor_never_holds_up_a_scrape(exporter_factory, harbor):
    harbor.server.RequestHandlerClass.do_GET = lambda self: threading.Event().wait(3)
    exporter = exporter_factory(exporter_settings([], **{
        "redis.enabled": False, "registry.harbor_url": harbor.url,
        "registry.harbor_timeout": 1.0}))
    started = time.monotonic()
    metrics = exporter.scrape()
    assert time.monotonic() - started < 0.5
    assert metrics.value("cachewatch_collector_errors_total", collector="registry",
                         target="harbor", reason="timeout") == 0
    wait_until(lambda: exporter.scrape().value(
        "cachewatch_collector_errors_total", collector="registry", target="harbor",
        reason="timeout") == 1, timeout=5)
    assert exporter.get("/readyz").status_code == 200

"""POST /api/v1/builds: raw logs and summaries in, bad input refused with a reason, nothing lost."""

from __future__ import annotations

import random

import pytest

from support import FIXTURES, settings

LOG = (FIXTURES / "buildlogs" / "buildkit-busted.log").read_text()
STEPS = "cachewatch_docker_build_steps_total"
REJECTED = "cachewatch_build_ingest_rejected_total"
BUILDS = "cachewatch_docker_builds_total"


@pytest.fixture
def exporter(exporter_factory):
    return exporter_factory(settings([], **{"redis.enabled": False, "builds.token": "tok-123",
                                            "builds.max_body_bytes": 64 * 1024}))


AUTH = {"Authorization": "Bearer tok-123"}


def post(exporter, **kwargs):
    import httpx

    return httpx.post(exporter.url + "/api/v1/builds", timeout=30, **kwargs)


def test_raw_log_as_json_and_as_text_plain(exporter):
    response = post(exporter, json={"image": "app", "log": LOG, "id": "b1"}, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["summary"]["cache_buster"] == "COPY app.txt /app.txt"
    response = post(exporter, content=LOG.encode(), params={"image": "app", "target": "base"},
                    headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status_code == 202
    metrics = exporter.scrape()
    assert metrics.value(STEPS, image="app", target="", result="hit") == 3
    assert metrics.value(STEPS, image="app", target="base", result="hit") == 3
    assert metrics.value("cachewatch_cache_lookups_total", layer="docker_build", cache="app",
                         result="miss") == 6


def test_summary_submission_and_duplicate_ids_count_once(exporter):
    body = {"image": "svc", "id": "same", "summary": {
        "status": "success", "duration_seconds": 42.0, "lookups": 5, "hits": 4, "misses": 1,
        "executed_seconds": 30.0, "rebuild_seconds": 30.0, "cache_buster": "RUN make # abc123",
        "records": [{"ignored": True}]}}
    assert post(exporter, json=body, headers=AUTH).status_code == 202
    again = post(exporter, json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.json() == {"accepted": False, "duplicate": True}
    metrics = exporter.scrape()
    assert metrics.value(STEPS, image="svc", target="", result="hit") == 4
    assert metrics.value("cachewatch_docker_build_cache_busters_total", image="svc",
                         instruction="RUN make") == 1
    assert metrics.value("cachewatch_docker_build_rebuild_seconds_total", image="svc",
                         target="") == 30
    assert metrics.value("cachewatch_docker_build_duration_seconds_sum", image="svc",
                         target="") == 42
    assert metrics.value(REJECTED, reason="duplicate") == 1


def test_token_is_required(exporter):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-123"}):
        response = post(exporter, json={"image": "a", "log": LOG}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert exporter.scrape().value(REJECTED, reason="auth") == 3
    assert not exporter.scrape().find(STEPS)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "Invalid JSON"),
    (b'{"image": "a"}', "send exactly one of log (raw build output) or summary"),
    (b'{"image": "a", "log": "x", "colour": "red"}', "colour: Extra inputs are not permitted"),
    (b'{"image": "", "log": "x"}', "image: String should have at least 1 character"),
    (b'{"image": "a", "summary": {"status": "ok", "duration_seconds": 1, "lookups": 1,'
     b' "hits": 1, "misses": 0}}', "summary.status"),
    (b'{"image": "a", "summary": {"status": "success", "duration_seconds": 1, "lookups": 1,'
     b' "hits": 2, "misses": 0}}', "hits + misses must equal lookups"),
    (b"[]", "Input should be an object"),
    (b'{"image": "a", "summary": {"status": "success", "duration_seconds": 1, "lookups": 1,'
     b' "hits": 1, "misses": 0, "executed_seconds": 1e999}}', "summary.executed_seconds"),
    (b'{"image": "a", "summary": {"status": "success", "duration_seconds": 1,'
     b' "lookups": 10000000000000000000000, "hits": 0, "misses": 0}}', "summary.lookups"),
    (b"", "empty body"),
])
def test_malformed_bodies_are_400_with_the_reason(exporter, body, message):
    response = post(exporter, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert exporter.scrape().value(REJECTED, reason="malformed") == 1


def test_a_body_over_the_limit_is_413_and_loses_nothing_else(exporter):
    assert post(exporter, json={"image": "a", "log": LOG}, headers=AUTH).status_code == 202
    huge = "#1 [1/1] RUN x\n" * 10_000
    response = post(exporter, json={"image": "a", "log": huge}, headers=AUTH)
    assert response.status_code == 413
    assert "builds.max_body_bytes" in response.json()["error"]
    metrics = exporter.scrape()
    assert metrics.value(REJECTED, reason="too_large") == 1
    assert metrics.value(STEPS, image="a", target="", result="hit") == 3  # the first one stays


def test_image_labels_are_capped(exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False,
                                                "builds.max_images": 3}))
    for i in range(10):
        assert post(exporter, json={"image": f"img{i}", "log": LOG}).status_code == 202
    metrics = exporter.scrape()
    assert metrics.label_values(STEPS, "image") == {"img0", "img1", "img2", "other"}
    assert metrics.value(STEPS, image="other", target="other", result="hit") == 7 * 3


def test_openapi_documents_the_endpoint(exporter):
    schema = exporter.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/builds"]["post"]
    content = operation["requestBody"]["content"]
    assert {"application/json", "text/plain"} <= set(content)
    assert "summary" in content["application/json"]["schema"]["properties"]


def test_random_bytes_are_no_build_422_and_counted_as_such(exporter):
    """What is not a build is not counted as one: a body of random bytes (as a log) is refused
    with 422, under reason no_build, and no build or step appears."""
    junk = random.Random(27).randbytes(32 * 1024)
    response = post(exporter, content=junk, params={"image": "junk"},
                    headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status_code == 422
    assert "no docker build" in response.json()["error"]
    metrics = exporter.scrape()
    assert metrics.value(REJECTED, reason="no_build") == 1
    assert not metrics.find(STEPS)
    assert not metrics.find(BUILDS)

"""Hostile input: lone surrogates, control characters, huge counters and floods of names or
resources, against the one boundary that makes outside strings safe and a running exporter.

Every case from the issue is a test here; after each input ``/metrics`` must still answer 200.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import unicodedata

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from cachewatch.logs import JsonFormatter, LogfmtFormatter
from cachewatch.metrics import contract
from cachewatch.metrics.contract import Families
from cachewatch.metrics.exposition import Exposition
from cachewatch.metrics.labels import MAX_LABEL, safe_label, safe_text

from support import Exporter
from support import settings as exporter_settings

HOSTILE = "a\x1b[31mred\x00\x07\udfff\ud800\u2028z"  # two lone surrogates, not a pair
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PULLS = "cachewatch_registry_image_pulls_total"


def receivers(**overrides: object):
    return exporter_settings([], **{"redis.enabled": False, **overrides})


def raw_json(value: object) -> str:
    """JSON whose strings keep lone surrogates as ``\\ud800`` escapes, as a client sends."""
    return json.dumps(value)  # ensure_ascii: every non-ASCII code point, surrogates too, escaped


def scrape_ok(exporter: Exporter) -> str:
    response = exporter.get("/metrics")
    assert response.status_code == 200, response.text
    text = response.text
    list(text_string_to_metric_families(text))  # parses: no broken escapes
    return text


# --- the boundary ---------------------------------------------------------------------------
@given(st.text(alphabet=st.characters(codec=None), max_size=400))
def test_safe_label_always_encodes_has_no_controls_is_bounded_and_idempotent(text):
    safe = safe_label(text)
    safe.encode("utf-8")  # never raises
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in safe)
    assert len(safe) <= MAX_LABEL
    assert safe_label(safe) == safe


def test_safe_label_replaces_and_escapes_visibly():
    assert safe_label(HOSTILE) == "a\\x1b[31mred\\x00\\x07\ufffd\ufffd\\u2028z"
    assert safe_label("team/app:v1.2 ünïcödé") == "team/app:v1.2 ünïcödé"  # untouched
    assert safe_label("x" * 1000) == "x" * MAX_LABEL
    assert safe_text("line\none\ttab\x1b", keep="\n\t") == "line\none\ttab\\x1b"


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JsonFormatter()])
def test_a_log_line_with_hostile_fields_is_one_line_of_valid_utf8(formatter):
    record = logging.LogRecord("cachewatch.test", logging.WARNING, __file__, 1,
                               "refused %s", (HOSTILE,), None)
    record.repository = HOSTILE
    record.sizes = [HOSTILE]
    line = formatter.format(record)
    line.encode("utf-8")
    assert "\n" not in line
    assert "\u2028" not in line
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in line)
    assert "\\x1b[31mred" in line  # visible, not dropped


class _Raw:
    """A collector that hands the encoder a label no receiver made safe."""

    def collect(self):
        out = Families()
        out.add(contract.CACHE_ENTRIES, {"layer": "app", "cache": "bad\ud800"}, 1)
        yield from out


@pytest.mark.parametrize("accept", [None, CONTENT_TYPE_LATEST])
def test_the_exposition_never_fails_on_a_string_nobody_made_safe(accept):
    body, _ = Exposition([_Raw()]).render(accept)
    assert 'cache="bad\ufffd"' in body.decode("utf-8")


# --- receivers, against a running exporter --------------------------------------------------
def test_surrogates_and_controls_in_registry_events_never_break_metrics(exporter_factory):
    exporter = exporter_factory(receivers(**{"registry.tag_label": True}))
    envelope = {"events": [
        {"id": "id-\ud800", "action": "pull",
         "target": {"repository": "team/" + HOSTILE, "mediaType": MANIFEST, "tag": HOSTILE}},
        {"id": "\udfff", "action": "push",
         "target": {"repository": "x\ud800", "mediaType": MANIFEST, "tag": "t"}}]}
    post = httpx.post(exporter.url + "/webhooks/registry?registry=r%1B%00", timeout=10,
                      content=raw_json(envelope), headers={"content-type": "application/json"})
    assert post.status_code == 200, post.text
    assert post.json()["accepted"] == 2
    again = httpx.post(exporter.url + "/webhooks/registry", content=raw_json(envelope),
                       headers={"content-type": "application/json"}, timeout=10)
    assert again.json()["duplicates"] == 2  # a surrogate id de-duplicates like any other
    harbor = {"type": "PULL_ARTIFACT", "event_data": {
        "repository": {"repo_full_name": "h/" + HOSTILE}, "resources": [{"tag": "\ud800"}]}}
    assert httpx.post(exporter.url + "/webhooks/harbor", content=raw_json(harbor),
                      timeout=10).status_code == 200
    text = scrape_ok(exporter)
    pulls = {s.labels["repository"]: s.labels for f in text_string_to_metric_families(text)
             for s in f.samples if s.name == PULLS}
    safe = safe_label(HOSTILE)
    assert pulls.get("team/" + safe, {}).get("tag") == safe, list(pulls)
    assert pulls["team/" + safe]["registry"] == "r\\x1b\\x00"
    assert pulls["h/" + safe]["tag"] == "\ufffd"


def test_a_hostile_name_stored_and_restored_after_a_restart_still_renders(exporter_factory,
                                                                          tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    first = exporter_factory(receivers(**{"state.url": url}))
    envelope = {"events": [{"id": "1", "action": "pull", "target": {
        "repository": HOSTILE, "mediaType": MANIFEST}}]}
    assert httpx.post(first.url + "/webhooks/registry", content=raw_json(envelope),
                      timeout=10).json()["accepted"] == 1
    first.stop()
    second = exporter_factory(receivers(**{"state.url": url}))
    assert second.scrape().value(PULLS, repository=safe_label(HOSTILE), tag="") == 1


def test_app_and_build_names_with_surrogates_are_refused_cleanly_and_controls_escaped(
        exporter_factory):
    exporter = exporter_factory(receivers())
    bad = {"instance": "i\ud800", "caches": [{"name": "c", "stats": {"hitCount": 1}}]}
    response = httpx.post(exporter.url + "/api/v1/caches", content=raw_json(bad), timeout=10)
    assert response.status_code == 400  # not JSON that pydantic accepts: a clear 400
    assert response.json()["error"].startswith("body: Invalid JSON")
    controls = {"instance": "i\x1b", "caches": [
        {"name": "c\x00\x07", "stats": {"hitCount": 1}}]}
    assert httpx.post(exporter.url + "/api/v1/caches", json=controls,
                      timeout=10).status_code == 202
    build = {"image": "img\x1b", "target": "t\x00", "id": "\x07", "summary": {
        "status": "success", "duration_seconds": 1.0, "lookups": 1, "hits": 1, "misses": 0}}
    assert httpx.post(exporter.url + "/api/v1/builds", json=build, timeout=10).status_code == 202
    m = exporter.scrape()
    assert m.value("cachewatch_cache_lookups_total", layer="app", cache="c\\x00\\x07",
                   result="hit") == 1
    assert m.value("cachewatch_app_cache_last_push_timestamp_seconds", app_instance="i\\x1b") > 0
    assert m.label_values("cachewatch_docker_builds_total", "image") == {"img\\x1b"}


@pytest.mark.parametrize(("value", "status", "message"), [
    ("9007199254740993", 422, "caches.0.stats.hitCount: Value error, counters above 2^53"),
    ("1e300", 422, "caches.0.stats.hitCount: Value error, counters above 2^53"),
    ("-1", 422, "caches.0.stats.hitCount: Input should be greater than or equal to 0"),
    ("NaN", 422, "caches.0.stats.hitCount"),
    ("Infinity", 422, "caches.0.stats.hitCount"),
])
def test_counters_that_cannot_be_exact_are_refused_naming_the_field(exporter_factory, value,
                                                                    status, message):
    exporter = exporter_factory(receivers())
    body = '{"instance": "i", "caches": [{"name": "c", "stats": {"hitCount": VALUE}}]}'
    body = body.replace("VALUE", value)
    response = httpx.post(exporter.url + "/api/v1/caches", content=body, timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(message)
    m = exporter.scrape()
    assert m.value("cachewatch_app_push_rejected_total", reason="malformed") == 1
    assert not m.find("cachewatch_cache_lookups_total", layer="app")
    exact = body.replace(value, str(2**53))
    assert httpx.post(exporter.url + "/api/v1/caches", content=exact,
                      timeout=10).status_code == 202
    assert exporter.scrape().value("cachewatch_cache_lookups_total", layer="app", cache="c",
                                   result="hit") == 2**53


def test_a_harbor_event_with_too_many_resources_is_refused_and_counted(exporter_factory):
    exporter = exporter_factory(receivers())
    flood = {"type": "PULL_ARTIFACT", "event_data": {
        "repository": {"repo_full_name": "team/app"}, "resources": [{}] * 500_000}}
    response = httpx.post(exporter.url + "/webhooks/harbor", json=flood, timeout=30)
    assert response.status_code == 400
    assert "500000 resources in one event, over 1000" in response.json()["error"]
    fine = {**flood, "event_data": {**flood["event_data"], "resources": [{}] * 1000}}
    assert httpx.post(exporter.url + "/webhooks/harbor", json=fine,
                      timeout=10).status_code == 200
    m = exporter.scrape()
    assert m.value("cachewatch_registry_webhook_rejected_total", source="harbor",
                   reason="too_many_resources") == 1
    assert m.value(PULLS, repository="team/app", tag="") == 1000


@pytest.mark.e2e  # a load test: 300,000 pushed caches take ~30 s on two cores
def test_app_pushes_stay_bounded_whatever_clients_send(exporter_factory):
    """Default caps, 1000 instances x 300 random cache names with latency: bounded series,
    no duplicate series, every instance and every folded count kept once."""
    from cachewatch.sources.app.push import AppCacheCollector
    from cachewatch.sources.app.pushed import CachePush

    exporter = exporter_factory(receivers())
    app = next(c for c in exporter.collectors if isinstance(c, AppCacheCollector))
    rng = random.Random(14)
    pool = list({"".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 20)))
                 for _ in range(50)} | {f"cache-{i}" for i in range(400)})
    buckets = dict.fromkeys([*(repr(float(b)) for b in contract.LATENCY_BUCKETS), "+Inf"], 1.0)
    async def flood() -> None:
        for instance in range(1000):
            caches = [{"name": name, "stats": {"hitCount": 1},
                       "latency": [{"op": "get", "buckets": buckets, "sum": 0.1}]}
                      for name in rng.sample(pool, 300)]
            await app.push(CachePush.model_validate({"instance": f"i{instance}",
                                                     "caches": caches}))
    asyncio.run(flood())
    text = scrape_ok(exporter)
    samples = [(s.name, tuple(sorted(s.labels.items())))
               for f in text_string_to_metric_families(text) for s in f.samples]
    assert len(samples) == len(set(samples))  # no duplicate series
    app_samples = [s for s in samples if "app" in s[0] or ("layer", "app") in s[1]]
    assert len(app_samples) <= 5000, len(app_samples)
    m = exporter.scrape()
    assert 900 < m.value("cachewatch_app_cache_instances", cache="other") <= 1000
    # app.max_caches per instance too: each instance's first 200 caches count, 100 are refused
    assert sum(m.find("cachewatch_cache_lookups_total", layer="app", result="hit")) == 200_000
    assert m.value("cachewatch_app_push_rejected_total", reason="cache_cap") >= 100_000
    assert len(m.find("cachewatch_app_cache_last_push_timestamp_seconds")) == 1000


# --- fuzzing: arbitrary Unicode (lone surrogates included) in every string of each schema ----
ANY = st.text(st.characters(codec=None), max_size=12) | st.sampled_from(["", "other", "x" * 300])
COUNT = st.integers(-5, 2**60) | st.floats(allow_nan=True, allow_infinity=True)
DISTRIBUTION = st.fixed_dictionaries({"events": st.lists(st.fixed_dictionaries({
    "id": ANY, "action": st.sampled_from(["pull", "push", "mount", "delete"]) | ANY,
    "target": st.fixed_dictionaries({"repository": ANY, "mediaType": st.just(MANIFEST) | ANY,
                                     "tag": ANY, "size": COUNT}),
    "request": st.fixed_dictionaries({"method": st.sampled_from(["GET", "HEAD"]) | ANY,
                                      "host": ANY})}), max_size=4)})
HARBOR = st.fixed_dictionaries({"type": st.sampled_from(["PULL_ARTIFACT", "PUSH_ARTIFACT"]),
                                "event_data": st.fixed_dictionaries({
                                    "repository": st.fixed_dictionaries({"repo_full_name": ANY}),
                                    "resources": st.lists(st.fixed_dictionaries({"tag": ANY}),
                                                          max_size=3)})})
APP = st.fixed_dictionaries({"instance": ANY, "caches": st.lists(st.fixed_dictionaries({
    "name": ANY, "stats": st.fixed_dictionaries({"hitCount": COUNT, "missCount": COUNT}),
    "parent": ANY}), min_size=1, max_size=3)})
BUILD = st.fixed_dictionaries({"image": ANY, "target": ANY, "id": ANY, "summary": st.just({
    "status": "success", "duration_seconds": 1.0, "lookups": 1, "hits": 1, "misses": 0})})


@pytest.mark.parametrize(("path", "schema"), [
    ("/webhooks/registry", DISTRIBUTION), ("/webhooks/harbor", HARBOR),
    ("/api/v1/caches", APP), ("/api/v1/builds", BUILD)])
def test_fuzzed_bodies_never_get_5xx_and_metrics_stays_200(exporter_factory, path, schema):
    from hypothesis import HealthCheck
    from hypothesis import settings as hsettings

    exporter = exporter_factory(receivers())
    client = httpx.Client(base_url=exporter.url, timeout=10)

    @hsettings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(schema)
    def check(body):
        response = client.post(path, content=json.dumps(body, allow_nan=True),
                               headers={"content-type": "application/json"})
        assert response.status_code < 500, response.text
        assert client.get("/metrics").status_code == 200

    check()
    client.close()

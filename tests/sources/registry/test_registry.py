"""Registry statistics from a real Distribution registry: its notifications, pushes and pulls by
a real Docker engine, a real pull-through cache, and Harbor's documented webhook payloads."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from cachewatch.sources.registry.proxy import from_prometheus

from support import BuildContext, free_port, wait_until
from support import settings as exporter_settings

TOKEN = "reg-t0ken"
PULLS = "cachewatch_registry_image_pulls_total"
BLOB_PULLS = "cachewatch_registry_blob_pulls_total"
PULLED = "cachewatch_registry_pulled_bytes_total"


def registry_exporter(exporter_factory, port=None, **overrides):
    return exporter_factory(exporter_settings([], **{
        "redis.enabled": False, "registry.token": TOKEN, **overrides}), port=port)


def value(exporter, name, **labels) -> float:
    return sum(exporter.scrape().find(name, **labels))


@pytest.fixture
def image(docker_engine, tmp_path):
    """A unique FROM-scratch image (two layers and a config) built on the test engine."""
    ctx = BuildContext(tmp_path / "ctx", "FROM scratch\nCOPY busybox /bin/busybox\n"
                       "COPY app.txt /app.txt\n")
    tag = f"cw-reg-{uuid.uuid4().hex[:8]}"
    ctx.touch_app(tag)  # every layer unique: a pull after forget() fetches all of them
    # The legacy builder: BuildKit's build cache would keep the layers alive after `rmi`, and
    # the engine would then never pull them again.
    result = docker_engine.cli("build", "--network=host", "-t", tag, str(ctx.path),
                               buildkit=False)
    assert result.returncode == 0, result.stderr
    return tag


def blob_sizes(registry, repository, reference) -> list[int]:
    manifest = registry.manifest(repository, reference)
    return [manifest["config"]["size"], *(layer["size"] for layer in manifest["layers"])]


def forget(docker_engine, *tags):
    """Make the engine a clean client again: no image, no layers of it left."""
    for tag in tags:
        docker_engine.cli("rmi", "-f", tag)


def test_push_then_pull_counts_images_blobs_and_bytes(docker_engine, exporter_factory,
                                                      registry_factory, image):
    exporter = registry_exporter(exporter_factory)
    registry = registry_factory(notify=exporter.url + "/webhooks/registry?registry=main",
                                token=TOKEN)
    remote = f"{registry.address}/team/app:1"
    docker_engine.cli("tag", image, remote)
    assert docker_engine.cli("push", remote).returncode == 0
    labels = {"registry": "main", "repository": "team/app"}
    wait_until(lambda: value(exporter, "cachewatch_registry_image_pushes_total", **labels) == 1)
    assert value(exporter, PULLS, **labels) == 0  # a push's HEAD checks are no pulls
    assert value(exporter, "cachewatch_registry_head_requests_total", **labels) >= 1
    sizes = blob_sizes(registry, "team/app", "1")  # a manifest GET: this is an image pull
    assert value(exporter, "cachewatch_registry_blob_pushes_total", **labels) == len(sizes)
    assert value(exporter, "cachewatch_registry_pushed_bytes_total", **labels) == sum(sizes)
    wait_until(lambda: value(exporter, PULLS, **labels) == 1)

    forget(docker_engine, remote, image)
    assert docker_engine.cli("pull", remote).returncode == 0
    wait_until(lambda: value(exporter, PULLS, **labels) == 2)
    wait_until(lambda: value(exporter, BLOB_PULLS, **labels) == len(sizes))
    assert value(exporter, PULLED, **labels) == sum(sizes)

    heads = value(exporter, "cachewatch_registry_head_requests_total", **labels)
    check = httpx.head(f"{registry.url}/v2/team/app/manifests/1", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert check.status_code == 200
    wait_until(lambda: value(exporter, "cachewatch_registry_head_requests_total",
                             **labels) == heads + 1)
    assert value(exporter, PULLS, **labels) == 2  # a HEAD check is not an image pull


def test_no_event_lost_or_doubled_while_the_exporter_is_down(docker_engine, exporter_factory,
                                                             registry_factory, image, tmp_path):
    port = free_port()
    state = {"state.url": f"sqlite:///{tmp_path}/state.db"}
    exporter = registry_exporter(exporter_factory, port=port, **state)
    registry = registry_factory(notify=f"http://127.0.0.1:{port}/webhooks/registry",
                                token=TOKEN)
    remote = f"{registry.address}/team/down:1"
    docker_engine.cli("tag", image, remote)
    docker_engine.cli("push", remote)
    sizes = blob_sizes(registry, "team/down", "1")
    pushes = "cachewatch_registry_image_pushes_total"
    wait_until(lambda: value(exporter, pushes, repository="team/down") == 1)
    exporter.stop()

    forget(docker_engine, remote, image)
    assert docker_engine.cli("pull", remote).returncode == 0  # events queue in the registry
    def undelivered() -> bool:
        metrics = registry.debug_vars()["registry"]["notifications"]["endpoints"][0]["Metrics"]
        return metrics["Errors"] + metrics["Failures"] > 0 and metrics["Pending"] > 0

    wait_until(undelivered, timeout=20)
    restarted = registry_exporter(exporter_factory, port=port, **state)  # a new process
    assert value(restarted, pushes, repository="team/down") == 1  # kept across the restart
    # Two image pulls: blob_sizes' own manifest GET (counted before or after the stop, as the
    # registry delivered it) and the docker pull; an empty state after a restart lost one.
    wait_until(lambda: value(restarted, PULLS, repository="team/down") == 2, timeout=30)
    wait_until(lambda: value(restarted, BLOB_PULLS, repository="team/down") == len(sizes))
    restarted.stop()  # and once more in the middle: nothing acknowledged is lost or repeated
    again = registry_exporter(exporter_factory, port=port, **state)
    time.sleep(3)  # anything redelivered twice would land by now
    assert value(again, pushes, repository="team/down") == 1
    assert value(again, PULLS, repository="team/down") == 2
    assert value(again, BLOB_PULLS, repository="team/down") == len(sizes)
    assert value(again, PULLED, repository="team/down") == sum(sizes)
    pending = registry.debug_vars()["registry"]["notifications"]["endpoints"][0]["Metrics"]
    assert pending["Pending"] == 0


def test_pull_through_cache_misses_then_hits_as_the_registry_counts(
    docker_engine, exporter_factory, registry_factory, image
):
    upstream = registry_factory()
    remote = f"{upstream.address}/team/cached:1"
    docker_engine.cli("tag", image, remote)
    assert docker_engine.cli("push", remote).returncode == 0
    mirror = registry_factory(proxy_of=upstream.url)
    exporter = registry_exporter(exporter_factory, **{
        "registry_proxy.targets": [f"mirror={mirror.debug_url}"]})
    through = f"{mirror.address}/team/cached:1"
    forget(docker_engine, remote, image)

    assert docker_engine.cli("pull", through).returncode == 0
    first = exporter.scrape()
    proxy = mirror.debug_vars()["registry"]["proxy"]
    assert proxy["manifests"]["Misses"] >= 1  # fetched from upstream: the first pull misses
    assert_equal_to_debug_vars(first, proxy)

    forget(docker_engine, through)  # a clean client pulls the same image again
    assert docker_engine.cli("pull", through).returncode == 0
    second = exporter.scrape()
    again = mirror.debug_vars()["registry"]["proxy"]
    assert_equal_to_debug_vars(second, again)
    for kind in ("blobs", "manifests"):  # served from the mirror's storage: hits, no misses
        assert again[kind]["Requests"] > proxy[kind]["Requests"]
        assert again[kind]["Misses"] == proxy[kind]["Misses"]
    hits = "cachewatch_cache_lookups_total"
    assert second.value(hits, layer="registry", cache="mirror", result="hit") > \
        first.value(hits, layer="registry", cache="mirror", result="hit")
    assert second.value(hits, layer="registry", cache="mirror", result="miss") == \
        first.value(hits, layer="registry", cache="mirror", result="miss")
    assert second.value("cachewatch_collector_up", collector="registry_proxy",
                        target="mirror") == 1


def assert_equal_to_debug_vars(metrics, proxy) -> None:
    """Exported counters are the registry's own: miss = Misses, hit = Requests - Misses (2.8
    counts every served request as a Hit)."""
    for kind, key in (("blob", "blobs"), ("manifest", "manifests")):
        stats = proxy[key]
        labels = {"registry": "mirror", "type": kind}
        assert metrics.value("cachewatch_registry_proxy_lookups_total", result="miss",
                             **labels) == stats["Misses"]
        assert metrics.value("cachewatch_registry_proxy_lookups_total", result="hit",
                             **labels) == stats["Requests"] - stats["Misses"]
        assert metrics.value("cachewatch_registry_proxy_requests_total", **labels) == \
            stats["Requests"]
        assert metrics.value("cachewatch_registry_proxy_upstream_bytes_total", **labels) == \
            stats["BytesPulled"]


def _event(action, repository, media_type, method="GET", size=100, event_id=None, tag=None):
    return {"id": event_id or str(uuid.uuid4()), "timestamp": "2026-11-24T12:00:00Z",
            "action": action,
            "target": {"mediaType": media_type, "size": size, "length": size,
                       "digest": "sha256:" + "0" * 64, "repository": repository,
                       "url": f"http://r/v2/{repository}/blobs/x", **({"tag": tag} if tag else {})},
            "request": {"id": "r1", "addr": "127.0.0.1:1", "host": "r:5000", "method": method,
                        "useragent": "docker/20.10"},
            "actor": {}, "source": {"addr": "r:5000", "instanceID": "i1"}}


MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def post(exporter, body, path="/webhooks/registry", token=TOKEN, content_type=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["Content-Type"] = content_type or "application/vnd.docker.distribution.events.v2+json"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(exporter.url + path, content=data, headers=headers, timeout=10)


def test_redelivered_envelopes_count_once(exporter_factory):
    exporter = registry_exporter(exporter_factory, **{"registry.tag_label": True})
    envelope = {"events": [_event("pull", "a/b", MANIFEST, tag="v1"),
                           _event("pull", "a/b", LAYER, size=300)]}
    for _ in range(3):
        assert post(exporter, envelope).status_code == 200
    m = exporter.scrape()
    assert m.value(PULLS, registry="r:5000", repository="a/b", tag="v1") == 1
    assert m.value(PULLED, registry="r:5000", repository="a/b") == 300
    assert m.value("cachewatch_registry_duplicate_events_total", source="distribution") == 4


def test_bad_envelopes_are_refused_with_reasons_and_good_events_kept(exporter_factory):
    exporter = registry_exporter(exporter_factory, **{"registry.max_body_bytes": 2048})
    plain = "application/json"  # any sender that is not a registry
    assert post(exporter, {"events": []}, token=None).status_code == 401
    assert post(exporter, {"events": []}, token="nope").status_code == 401
    bad_json = post(exporter, b'{"events": [', content_type=plain)
    assert bad_json.status_code == 400
    assert "malformed JSON" in bad_json.json()["error"]
    shape = post(exporter, {"event": []}, content_type=plain)
    assert shape.status_code == 400
    assert 'expected an envelope {"events": [...]}' in shape.json()["error"]
    unknown = post(exporter, {"events": [{**_event("pull", "x", MANIFEST), "action": "copy"}]},
                   content_type=plain)
    assert unknown.status_code == 400  # nothing countable in it
    assert "unknown action 'copy'" in unknown.json()["rejected"][0]["error"]
    mixed = post(exporter, {"events": [_event("push", "x", MANIFEST), {"id": "1"}, 7]},
                 content_type=plain)
    assert mixed.status_code == 200  # the good event counted once; the bad ones listed
    assert [r["reason"] for r in mixed.json()["rejected"]] == ["bad_shape", "bad_shape"]
    assert post(exporter, {"events": [_event("pull", "x" * 3000, MANIFEST)]}).status_code == 413
    huge = post(exporter, {"events": [_event("pull", "x", LAYER, size=10**400)]},
                content_type=plain)
    assert huge.json()["rejected"][0]["reason"] == "bad_shape"
    assert post(exporter, {"events": [_event("delete", "x", MANIFEST)]},
                content_type=plain).status_code == 200
    m = exporter.scrape()
    assert m.value("cachewatch_registry_image_pushes_total", registry="r:5000", repository="x",
                   tag="") == 1
    assert not m.find(BLOB_PULLS)  # the oversized event left nothing half-counted
    reasons = {r: m.value("cachewatch_registry_webhook_rejected_total", source="distribution",
                          reason=r) for r in ("auth", "malformed_json", "bad_shape",
                                              "unknown_action", "too_large")}
    assert reasons == {"auth": 2, "malformed_json": 1, "bad_shape": 4, "unknown_action": 1,
                       "too_large": 1}


def test_a_registry_is_never_told_to_retry_what_can_never_succeed(exporter_factory):
    """Distribution retries every non-2xx answer forever, in order: a bad event answered with
    400 would stop its whole queue. With the registry's media type it gets 2xx instead."""
    exporter = registry_exporter(exporter_factory)
    for body in (b'{"events": [', {"events": [{**_event("pull", "x", MANIFEST),
                                               "action": "copy"}]}):
        response = post(exporter, body)  # the registry's own events media type
        assert response.status_code == 202
        assert response.json()["retry"] is False
    assert post(exporter, {"events": []}, token="nope").status_code == 401  # retry can help
    m = exporter.scrape()
    assert m.value("cachewatch_registry_webhook_rejected_total", source="distribution",
                   reason="unknown_action") == 1


def test_ten_thousand_repositories_stay_under_the_cap(exporter_factory):
    exporter = registry_exporter(exporter_factory, **{"registry.max_repositories": 100})
    for batch in range(20):
        events = [_event("pull", f"team{batch}/repo{i}", MANIFEST) for i in range(500)]
        assert post(exporter, {"events": events}).json()["accepted"] == 500
    m = exporter.scrape()
    repositories = m.label_values(PULLS, "repository")
    assert len(repositories) == 101
    assert "other" in repositories
    assert sum(m.find(PULLS)) == 10_000  # folded, not lost
    assert m.value(PULLS, registry="r:5000", repository="other", tag="") == 9_900



def test_a_folded_repository_is_counted_as_a_fold_every_time(exporter_factory):
    """The receiver remembers the label pairs its caps admitted, never a fold: a repository
    past the cap is folded (and counted in the overflow counter) on every event, while the
    admitted ones keep their own series."""
    exporter = registry_exporter(exporter_factory, **{"registry.max_repositories": 2})
    for repository in ("team/a", "team/b", "team/c", "team/c", "team/a", "team/c", "team/b"):
        answer = post(exporter, {"events": [_event("pull", repository, MANIFEST)]})
        assert answer.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    m = exporter.scrape()
    assert m.value(PULLS, registry="r:5000", repository="team/a", tag="") == 2
    assert m.value(PULLS, registry="r:5000", repository="team/b", tag="") == 2
    assert m.value(PULLS, registry="r:5000", repository="other", tag="") == 3
    assert sum(m.find("cachewatch_label_overflow_total")) == 3

HARBOR_DEFAULT = {  # Harbor's documented Default payload
    "type": "PULL_ARTIFACT", "occur_at": 1680501893, "operator": "harbor-jobservice",
    "event_data": {
        "resources": [{"digest": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a0"
                                 "24a81536dafbbf4",
                       "tag": "latest",
                       "resource_url": "localhost/harbor/alpine:latest"}],
        "repository": {"date_created": 1680501893, "name": "alpine", "namespace": "harbor",
                       "repo_full_name": "harbor/alpine", "repo_type": "private"}},
}
HARBOR_CLOUDEVENT = {  # Harbor's documented CloudEvents payload (2.8+)
    "specversion": "1.0", "id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
    "requestid": "2eedfab8-61d3-4f3c-8ec3-8f82d1ec4c84",
    "source": "/projects/1/webhook/policies/3", "type": "harbor.artifact.pushed",
    "datacontenttype": "application/json", "time": "2023-03-06T06:08:43Z",
    "data": {"resources": [{"digest": "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278"
                                      "bae40e4f30f6e00fe8c", "tag": "1.36",
                            "resource_url": "harbor.dev/library/busybox:1.36"}],
             "repository": {"date_created": 1677053165, "name": "busybox",
                            "namespace": "library", "repo_full_name": "library/busybox",
                            "repo_type": "public"}},
    "operator": "admin",
}


def test_harbor_default_and_cloudevents_payloads(exporter_factory):
    exporter = registry_exporter(exporter_factory)
    path = "/webhooks/harbor?registry=harbor-prod"
    assert post(exporter, HARBOR_DEFAULT, path, content_type="application/json").json() == \
        {"accepted": 1, "action": "pull"}
    for _ in range(2):  # CloudEvents redelivery: the same id counts once
        response = post(exporter, HARBOR_CLOUDEVENT, path,
                        content_type="application/cloudevents+json")
        assert response.status_code == 200
    scan = post(exporter, {**HARBOR_DEFAULT, "type": "SCANNING_COMPLETED"}, path)
    assert scan.json() == {"accepted": 0, "action": "ignored"}
    assert post(exporter, {"type": "PULL_ARTIFACT"}, path,
                content_type="application/json").status_code == 400
    assert post(exporter, HARBOR_DEFAULT, path, content_type="application/json").json() == \
        {"accepted": 1, "action": "pull"}  # two real pulls can look alike: both count
    m = exporter.scrape()
    assert m.value(PULLS, registry="harbor-prod", repository="harbor/alpine", tag="") == 2
    assert m.value("cachewatch_registry_image_pushes_total", registry="harbor-prod",
                   repository="library/busybox", tag="") == 1
    assert m.value("cachewatch_registry_duplicate_events_total", source="harbor") == 1
    assert m.value("cachewatch_registry_webhook_rejected_total", source="harbor",
                   reason="bad_shape") == 1


def test_distribution_3_prometheus_proxy_metrics_are_read():
    """Distribution 3.x exposes the proxy counters on its Prometheus endpoint (no 3.x here)."""
    text = (
        "# TYPE registry_proxy_hits_total counter\n"
        'registry_proxy_hits_total{type="blob"} 7\n'
        'registry_proxy_hits_total{type="manifest"} 2\n'
        'registry_proxy_misses_total{type="blob"} 3\n'
        'registry_proxy_misses_total{type="manifest"} 1\n'
        'registry_proxy_requests_total{type="blob"} 10\n'
        'registry_proxy_pulled_bytes_total{type="blob"} 4096\n')
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in from_prometheus(text, "m") for s in f.samples}
    assert samples[("cachewatch_cache_lookups_total", (("cache", "m"), ("layer", "registry"),
                                                       ("result", "hit")))] == 9
    assert samples[("cachewatch_registry_proxy_lookups_total",
                    (("registry", "m"), ("result", "miss"), ("type", "manifest")))] == 1
    assert samples[("cachewatch_registry_proxy_upstream_bytes_total",
                    (("registry", "m"), ("type", "blob")))] == 4096

"""The bundle on real components: Prometheus (with the generated rules) scraping a real exporter
that reads a real Redis, a real Memcached, a real Docker engine and a real pull-through
registry, and real Alertmanager notifying a receiver here. The exporter is scraped as two
members of a fleet (one cluster, namespaces team-a and team-b), so every dashboard query, with
its variables set for that fleet, must parse and return data, and return each namespace apart; a
Redis hit rate driven below the target must raise CacheHitRateLow in both namespaces, each alert
carrying its own, and restoring it must resolve them."""

from __future__ import annotations

import re
import threading
import time
import uuid

import httpx
import pytest

from cachewatch import bundle
from cachewatch.bundle import dashboards, rules
from cachewatch.bundle.thresholds import Thresholds
from cachewatch.instrument import Caches, CacheStats
from cachewatch.sources.registry.thresholds import RegistryThresholds

from support import (
    FIXTURES,
    Alertmanager,
    BuildContext,
    HarborStandIn,
    WebhookReceiver,
    free_port,
    wait_until,
)
from support import settings as exporter_settings

pytestmark = pytest.mark.e2e  # every test here drives real services

LOGS = FIXTURES / "buildlogs"
SHORT = Thresholds(hit_rate_for="5s", p99_for="5s", down_for="5s",
                   parts=(RegistryThresholds(registry_for="5s"),))
FLEET = [{"cluster": "e2e", "namespace": "team-a"}, {"cluster": "e2e", "namespace": "team-b"}]
VARIABLES = {"$__range": "1h", "$__rate_interval": "1m", "$__interval": "1m", "$cluster": "e2e",
             "$namespace": "team-a|team-b", "$job": "cachewatch", "$layer": ".*", "$cache": ".*",
             "$image": ".*", "$repository": ".*"}


def _query(expr: str, **chosen: str) -> str:
    """``expr`` as Grafana sends it with the fleet's variables (``chosen`` overrides some)."""
    for name, value in {**VARIABLES, **{f"${k}": v for k, v in chosen.items()}}.items():
        expr = expr.replace(name, value)
    return expr


@pytest.fixture
def redis_main(redis_factory):
    return redis_factory("--maxmemory", "64mb")


@pytest.fixture
def stack(tmp_path, redis_main, memcached, docker_engine, exporter_factory, registry_factory,
          prometheus_factory):
    """Everything wired together; yields (exporter, prometheus, receiver, upstream, mirror)."""
    bundle.write(tmp_path, SHORT)
    receiver = WebhookReceiver()
    alertmanager = Alertmanager(tmp_path / "am", receiver.url).start()
    port = free_port()
    harbor = HarborStandIn(_replications, {1: {"id": 1, "dest_registry": {
        "name": "edge", "url": "https://edge.example.com"}}})
    upstream = registry_factory()
    mirror = registry_factory(proxy_of=upstream.url,
                              notify=f"http://127.0.0.1:{port}/webhooks/registry")
    exporter = exporter_factory(exporter_settings(
        [f"main={redis_main.url}"], **{
            # Deadlines under Prometheus' 1 s scrape here: a slow read is up=0, not a lost scrape.
            "redis.probe_interval": "200ms", "redis.timeout": "500ms", "docker.enabled": True,
            "memcached.enabled": True, "memcached.targets": [f"sessions={memcached.address}"],
            "memcached.probe_interval": "200ms", "memcached.timeout": "500ms",
            "docker.host": docker_engine.host, "docker.timeout": "700ms",
            "registry_proxy.targets": [f"mirror={mirror.debug_url}"],
            "registry_proxy.timeout": "500ms",
            "registry.harbor_url": harbor.url, "registry.harbor_poll_interval": "5s",
            "builds.dockerfiles": {"shop": str(FIXTURES / "dockerfiles" / "OR13__camcam__Dockerfile"
                                               / "Dockerfile")}}), port=port)
    prometheus = prometheus_factory([exporter.url.removeprefix("http://")],
                                    [tmp_path / "alerts" / "cachewatch-rules.yml"],
                                    alertmanager.address, labels=FLEET)
    # Prometheus applies new targets after a few seconds: wait for its first scrape, or the
    # first round of activity lands before any sample and no rate can see it.
    wait_until(lambda: prometheus.scalar('count(up{job="cachewatch"} == 1)') == 2, timeout=30)
    yield exporter, prometheus, receiver, upstream, mirror
    alertmanager.stop()
    receiver.stop()
    harbor.stop()


def _replications(poll: int) -> list[dict]:
    """A Harbor whose every poll lists one more finished execution (each counted on the poll
    after it first appears): the replication panels' rates have data."""
    return [{"id": n, "policy_id": 1, "status": "Succeed", "trigger": "scheduled",
             "start_time": "2024-05-29T16:00:00.000Z", "end_time": "2024-05-29T16:01:40.000Z",
             "total": 2, "succeed": 2, "failed": 0, "stopped": 0, "in_progress": 0}
            for n in range(1, poll + 2)]


def _feed(exporter, redis_plain, docker_engine, upstream, mirror, tmp_path, round_: int):
    """One round of real activity on every source (rates need two rounds)."""
    client = redis_plain.client()
    client.set("hot", 1)
    for _ in range(50):
        client.get("hot")
    # Two busted builds, a cold one and two fully cached ones: the image reuses most of its
    # layers, above its goal (Redis ``main`` is the one cache below goal).
    for kind in ("buildkit-busted", "buildkit-cold", "legacy-busted",
                 "real/buildkit-multistage-all-cached-scrambled", "real/gha-go-worker-all-cached"):
        httpx.post(exporter.url + "/api/v1/builds", content=(LOGS / f"{kind}.log").read_bytes(),
                   params={"image": "shop", "exit_code": "0"},
                   headers={"Content-Type": "text/plain"}).raise_for_status()
    envelope = {"events": [
        {"id": str(uuid.uuid4()), "action": action, "target": {
            "mediaType": media, "size": 500, "repository": "team/shop",
            "digest": "sha256:" + "0" * 64},
         "request": {"method": method}, "source": {"addr": "r:5000"}}
        for action, media, method in (
            ("pull", "application/vnd.oci.image.manifest.v1+json", "GET"),
            ("pull", "application/vnd.oci.image.layer.v1.tar+gzip", "GET"),
            ("pull", "application/vnd.oci.image.manifest.v1+json", "HEAD"),
            ("mount", "application/vnd.oci.image.layer.v1.tar+gzip", "POST"))]}
    httpx.post(exporter.url + "/webhooks/registry", json=envelope).raise_for_status()
    httpx.post(exporter.url + "/webhooks/registry", json=envelope)  # a duplicate
    httpx.post(exporter.url + "/webhooks/registry", content=b"{nope")  # a rejection
    # A CI job's caches, as `cachewatch ingest-job` reports them: each round a hit, a partial
    # restore and a miss, and a save (the CI dashboard and its row on the overview).
    httpx.post(exporter.url + "/api/v1/ci/caches", json={
        "id": f"job-{round_}",
        "ci_caches": [
            {"ci": "github", "cache": "node-cache-Linux-npm", "result": "hit", "bytes": 2048},
            {"ci": "github", "cache": "setup-python-Linux-pip", "result": "partial",
             "bytes": 1024},
            {"ci": "gitlab", "cache": "gems", "result": "miss"}],
        "ci_cache_saves": [{"ci": "gitlab", "cache": "gems", "bytes": 4096}]},
    ).raise_for_status()
    caches = Caches()
    l1 = caches.add(CacheStats("catalog", parent="catalog-redis", size=lambda: 10))
    l2 = caches.add(CacheStats("catalog-redis"))
    l1.hits, l1.misses, l2.hits, l2.misses = 90 * round_, 10 * round_, 8 * round_, 2 * round_
    l2.load_success, l2.load_ns = 2 * round_, 4_000_000 * round_
    l1.evictions = round_
    caches.add(CacheStats("idle"))  # looked up never: its ratios must be empty, not NaN
    for _ in range(5 * round_):
        l2.observe(0.0004)
    pusher = caches.push_to(exporter.url, instance="e2e", interval=3600)
    pusher.stop(flush=True)
    assert pusher.pushed == 1
    ctx = BuildContext(tmp_path / f"ctx{round_}", "FROM scratch\nCOPY app.txt /app.txt\n")
    ctx.touch_app(str(uuid.uuid4()))
    docker_engine.cli("build", "--network=host", "-t", f"e2e-bk:{round_}", str(ctx.path))
    tag = f"{upstream.address}/team/shop:{round_}"
    docker_engine.cli("build", "--network=host", "-t", tag, str(ctx.path), buildkit=False)
    docker_engine.cli("push", tag)
    docker_engine.cli("rmi", tag)
    docker_engine.cli("pull", f"{mirror.address}/team/shop:{round_}")
    docker_engine.cli("rmi", f"{mirror.address}/team/shop:{round_}")


def test_every_query_returns_data_and_the_hit_rate_alert_fires_and_resolves(
    stack, redis_main, memcached, docker_engine, tmp_path
):
    exporter, prometheus, receiver, upstream, mirror = stack
    # Drive the Redis hit rate down: a steady stream of misses, well above the traffic guard.
    # Memcached stores, hits (nine in ten, above goal) and misses all the time, so each of its
    # rates has a value.
    stop = threading.Event()

    def misses() -> None:
        client = redis_main.client()
        n = 0
        while not stop.is_set():
            client.get(f"absent-{uuid.uuid4()}")
            if n % 5 == 0:
                memcached.set(f"k{n}")
                memcached.get(*[f"k{n}"] * 9, f"absent{n}")
            n += 1
            time.sleep(0.02)

    thread = threading.Thread(target=misses, daemon=True)
    thread.start()
    try:
        _feed(exporter, redis_main, docker_engine, upstream, mirror, tmp_path, 1)
        time.sleep(4)  # a few scrapes between the rounds: rates need two different samples
        _feed(exporter, redis_main, docker_engine, upstream, mirror, tmp_path, 2)
        for rule in rules.alert_rules(SHORT):
            prometheus.query(rule["expr"])  # parses on the real server (may be empty)
        missing: list[str] = []

        def all_have_data() -> bool:
            missing[:] = _without_data(prometheus)
            return not missing

        try:
            wait_until(all_have_data, timeout=60, interval=1)
        except AssertionError:
            pytest.fail("no data for:\n" + "\n".join(missing))
        assert _with_nan(prometheus) == []
        _each_namespace_apart(prometheus)
        _only_main_below_goal(prometheus)
        _variables_narrow(prometheus)
        firing = wait_until(lambda: _namespaces(receiver.alerts("CacheHitRateLow", "firing"))
                            == {"team-a", "team-b"}, timeout=90)
    finally:
        stop.set()
        thread.join()
    assert firing
    for alert in receiver.alerts("CacheHitRateLow", "firing"):
        if alert["labels"]["cache"] != "main":
            continue
        assert alert["labels"]["layer"] == "redis"
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["cluster"] == "e2e"
        assert alert["labels"]["job"] == "cachewatch"
        assert alert["annotations"]["summary"] == "Cache main hit rate below 85%"
        assert alert["annotations"]["runbook_url"].endswith("#cachehitratelow")

    client = redis_main.client()  # restore: a flood of hits lifts the 5-minute ratio
    pipe = client.pipeline(transaction=False)
    for _ in range(40_000):
        pipe.get("hot")
    pipe.execute()
    resolved = wait_until(lambda: _namespaces(receiver.alerts("CacheHitRateLow", "resolved"))
                          == {"team-a", "team-b"}, timeout=90)
    assert resolved


def _namespaces(alerts: list[dict]) -> set[str]:
    """The namespaces of the alerts about Redis ``main``."""
    return {a["labels"].get("namespace", "") for a in alerts if a["labels"]["cache"] == "main"}


def _each_namespace_apart(prometheus) -> None:
    """With one namespace chosen, a panel shows that namespace only; with both, the same cache
    is two series (per-namespace panels and rules never merge them)."""
    for board, title, expr in dashboards.all_exprs(SHORT):
        for result in _safe_query(prometheus, _query(expr, namespace="team-b")):
            assert result["metric"].get("namespace", "team-b") == "team-b", (board, title)
    both = _safe_query(prometheus, _query(
        'layer_cache:cachewatch_cache_hit_ratio:rate5m{cluster=~"$cluster", '
        'namespace=~"$namespace", job=~"$job", layer="redis", cache="main"}'))
    assert sorted(r["metric"]["namespace"] for r in both) == ["team-a", "team-b"]


def _panel_exprs(board: str, title: str) -> list[str]:
    """The queries of one panel, as ``dashboards.all_exprs`` lists them."""
    return [expr for key, name, expr in dashboards.all_exprs(SHORT)
            if (key, name) == (board, title)]


def _only_main_below_goal(prometheus) -> None:
    """Redis ``main`` is the one cache the feed pushes below its goal with traffic enough for
    its alert: the Now row counts exactly one per namespace, and its table, sorted by the
    distance to the goal, lists ``main`` first."""
    below = _panel_exprs("overview", "Caches below hit-rate goal")[0]
    counts: list[object] = []

    def one_each() -> bool:
        counts[:] = [_safe_query(prometheus, _query(below, namespace=ns)) for ns in
                     ("team-a", "team-b")]
        return all(len(c) == 1 and c[0]["value"][1] == "1" for c in counts)

    try:
        wait_until(one_each, timeout=30, interval=1)
    except AssertionError:
        detail = _safe_query(prometheus, _query(below.removeprefix("count(").split(
            ") or vector(0)")[0], namespace="team-a"))
        pytest.fail(f"below goal: {counts}; caches: {[r['metric'] for r in detail]}")
    gap = _panel_exprs("overview", "Every cache, worst first")[0]
    rows = sorted(_safe_query(prometheus, _query(gap, namespace="team-a")),
                  key=lambda r: float(r["value"][1]))
    assert (rows[0]["metric"]["layer"], rows[0]["metric"]["cache"]) == ("redis", "main"), rows
    assert float(rows[0]["value"][1]) < 0, rows


def _with_nan(prometheus) -> list[str]:
    """Dashboard queries that answer NaN or an infinity for some series (an idle cache's
    ratio without a guard), with the series."""
    found = []
    for board, title, expr in dashboards.all_exprs(SHORT):
        response = httpx.get(prometheus.url + "/api/v1/query",
                             params={"query": _query(expr)}, timeout=10).json()
        found += [f"{board} / {title}: {r['metric']}" for r in response["data"]["result"]
                  if re.match(r"^(NaN|\+?-?Inf)$", str(r["value"][1]))]
    return found


def _variables_narrow(prometheus) -> None:
    """A chosen repository, layer or cache narrows the panels that read it; the build cache's
    ages read as ages."""
    (mounts, _) = _panel_exprs("registry", "Layer reuse: mounts and HEAD checks")
    assert _safe_query(prometheus, _query(mounts, repository="team/shop"))
    assert _safe_query(prometheus, _query(mounts, repository="team/other")) == []
    below = _panel_exprs("overview", "Caches below hit-rate goal")[0]
    for layer, count in (("redis", "1"), ("memcached", "0")):
        (result,) = _safe_query(prometheus, _query(below, namespace="team-a", layer=layer))
        assert result["value"][1] == count, layer
    table = _panel_exprs("overview", "Every cache, worst first")[0]
    rows = _safe_query(prometheus, _query(table, namespace="team-a", cache="shop"))
    assert {r["metric"]["cache"] for r in rows} == {"shop"}, rows
    assert "docker_build" in {r["metric"]["layer"] for r in rows}, rows
    (ages,) = _panel_exprs("builds", "Build cache by last use")
    assert "any time" in {r["metric"]["age"] for r in _safe_query(prometheus, _query(ages))}


def _without_data(prometheus) -> list[str]:
    """Dashboard queries and recording rules that return nothing (yet)."""
    missing = [f"{board} / {title}: {expr}" for board, title, expr in dashboards.all_exprs(SHORT)
               if not _safe_query(prometheus, _query(expr))]
    for rule in rules.recording_rules(SHORT):
        if "cache_gets_total" in rule["expr"]:
            continue  # Micrometer's series come from Java apps; the promtool tests cover it
        if not _safe_query(prometheus, rule["record"]):
            missing.append(f"recording rule {rule['record']}")
    return missing


def _safe_query(prometheus, expr: str) -> list:
    """The result, or a failure naming the expression when the server refuses it."""
    response = httpx.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return [r for r in body["data"]["result"]
            if not re.match(r"^(NaN|\+?-?Inf)$", str(r["value"][1]))]

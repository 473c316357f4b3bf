"""The status page (``/``) and its in-memory history, and ``/docs`` without a network.

The history is fed exact counters at exact times, so every window, reset and cap has one right
answer; the page is read from a running exporter that was pushed to; the e2e tests open both
pages in a real browser (Debian's chromium driven by Playwright) and fail on any console error.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from cachewatch.metrics import contract
from cachewatch.metrics.contract import Families
from cachewatch.status.history import History, Snapshot, quantile
from cachewatch.status.row import rows
from cachewatch.status.spark import bars

from support import FIXTURES, IN_CI, require, settings, wait_until

T0 = 1_800_000_000.0


def lookups(*caches: tuple[str, str, float, float]) -> list:
    """Families with ``cachewatch_cache_lookups_total`` for (layer, cache, hits, misses)."""
    out = Families()
    for layer, cache, hits, misses in caches:
        out.add(contract.CACHE_LOOKUPS, {"layer": layer, "cache": cache, "result": "hit"}, hits)
        out.add(contract.CACHE_LOOKUPS, {"layer": layer, "cache": cache, "result": "miss"},
                misses)
    return list(out)


def feed(history: History, seconds: float, step: float, hits_per_step: float,
         misses_per_step: float, start: float = T0) -> tuple[float, float, float]:
    """Samples every ``step`` seconds for ``seconds``; returns (now, hits, misses)."""
    hits = misses = 0.0
    now = start
    while now <= start + seconds:
        history.observe(lookups(("redis", "main", hits, misses)), now)
        hits += hits_per_step
        misses += misses_per_step
        now += step
    return now - step, hits - hits_per_step, misses - misses_per_step


def snapshot(history: History, *caches: tuple[str, str, float, float]) -> Snapshot:
    return history.fold(Snapshot.of(lookups(*caches)))


def test_hit_rate_over_five_minutes_and_the_hour_from_exact_counters():
    history = History(interval=10)
    # 50 minutes at 50 % hits, then 10 minutes at 90 %
    now, hits, misses = feed(history, 3000, 10, 5, 5)
    for _ in range(60):
        now += 10
        hits += 9
        misses += 1
        history.observe(lookups(("redis", "main", hits, misses)), now)
    row, = rows(history.view(), snapshot(history, ("redis", "main", hits, misses)), now, [])
    assert row.rates[0] == pytest.approx(0.9)  # the last 5 minutes: all at 90 %
    # the last hour: 10 min at 90 % (600 lookups) and 50 min at 50 % (3000 lookups)
    assert row.rates[1] == pytest.approx((540 + 1500) / 3600)
    assert row.per_second == pytest.approx(1.0)  # 10 lookups per 10 s
    assert len(row.minutes) == 60
    assert row.minutes[-1] == pytest.approx(0.9)
    assert row.minutes[0] == pytest.approx(0.5)


def test_until_a_window_has_filled_the_rate_is_the_counters_seen_so_far():
    history = History(interval=10)
    history.observe([], T0 - 5)  # the exporter's first sample, at start
    # a cache pushed a second ago: one sample, and already a rate
    history.observe(lookups(("app", "users", 90, 10)), T0)
    view = history.view()
    row, = rows(view, snapshot(history, ("app", "users", 90, 10)), T0 + 1, [])
    assert row.rates == [pytest.approx(0.9), pytest.approx(0.9)]
    assert row.per_second == pytest.approx(100 / 6)  # since the start, 6 s ago
    # two minutes later: the hour is still the counters so far, 5 minutes too
    history.observe(lookups(("app", "users", 100, 100)), T0 + 120)
    row, = rows(history.view(), snapshot(history, ("app", "users", 100, 100)), T0 + 120, [])
    assert row.rates == [pytest.approx(0.5), pytest.approx(0.5)]
    assert row.per_second == pytest.approx(200 / 125)  # what was seen over what has passed


def test_counts_from_before_the_exporter_started_are_not_recent():
    history = History(interval=10)
    # a Redis' lifetime counters (or counts restored from state) in the first sample
    history.observe(lookups(("redis", "main", 2938, 1541)), T0)
    row, = rows(history.view(), snapshot(history, ("redis", "main", 2938, 1541)), T0 + 60, [])
    assert row.rates == [None, None]  # "no lookups": nothing happened since the start
    assert row.seen == 0
    history.observe(lookups(("redis", "main", 2938 + 90, 1541 + 10)), T0 + 60)
    row, = rows(history.view(), snapshot(history, ("redis", "main", 3028, 1551)), T0 + 70, [])
    assert row.rates == [pytest.approx(0.9), pytest.approx(0.9)]  # only what came since


def test_a_cache_that_never_missed_has_full_bars():
    history = History(interval=10)
    history.observe([], T0 - 5)
    for step in range(4):
        history.observe([_only_hits("ci", "pip", 10 * (step + 1))], T0 + 10 * step)
    now = T0 + 35
    row, = rows(history.view(), history.fold(Snapshot.of([_only_hits("ci", "pip", 40)])), now,
                [])
    assert row.rates[0] == 1.0
    assert [bar for bar in row.minutes if bar is not None][-3:] == [1.0, 1.0, 1.0]


def _only_hits(layer: str, cache: str, hits: float) -> Metric:
    family = CounterMetricFamily("cachewatch_cache_lookups", "", labels=["layer", "cache",
                                                                        "result"])
    family.add_metric([layer, cache, "hit"], hits)
    return family


def test_a_counter_reset_counts_from_zero_like_prometheus_increase():
    history = History(interval=10)
    history.observe(lookups(("redis", "main", 1000, 1000)), T0)
    history.observe(lookups(("redis", "main", 1100, 1100)), T0 + 400)
    # Redis restarted: its counters start again from zero
    row, = rows(history.view(), snapshot(history, ("redis", "main", 30, 10)), T0 + 410, [])
    assert row.rates[0] == pytest.approx(0.75)


def test_caches_beyond_the_cap_fold_into_other():
    history = History(interval=10, max_caches=2)
    history.observe([], T0 - 5)  # the start, before any push
    metrics = lookups(("app", "a", 1, 1), ("app", "b", 2, 2), ("app", "c", 3, 1),
                      ("app", "d", 5, 1))
    history.observe(metrics, T0)
    caches = {row.cache: row for row in
              rows(history.view(), history.fold(Snapshot.of(metrics)), T0, [])}
    assert set(caches) == {"a", "b", "other"}
    assert caches["other"].rates[0] == pytest.approx(8 / 10)


def test_p99_from_the_latency_buckets_of_the_window():
    history = History(interval=10)
    out = Families()
    buckets = [(edge, 0.0) for edge in ("0.001", "0.0025", "0.005")]
    out.add_histogram(contract.CACHE_LATENCY, {"layer": "redis", "cache": "main", "op": "ping"},
                      [*buckets, ("+Inf", 0.0)], 0.0)
    history.observe([*lookups(("redis", "main", 0, 0)), *out], T0)
    later = Families()
    # 100 observations: 90 under 1 ms, 10 between 2.5 and 5 ms
    later.add_histogram(contract.CACHE_LATENCY, {"layer": "redis", "cache": "main", "op": "ping"},
                        [("0.001", 90.0), ("0.0025", 90.0), ("0.005", 100.0), ("+Inf", 100.0)],
                        0.2)
    now = Snapshot.of([*lookups(("redis", "main", 5, 5)), *later])
    row, = rows(history.view(), history.fold(now), T0 + 310, [])
    assert row.p99 == pytest.approx(0.0025 + 0.0025 * 9 / 10)
    assert quantile(0.5, {"0.001": 90.0, "+Inf": 100.0}) == pytest.approx(0.001 * 50 / 90)
    assert quantile(0.99, {"+Inf": 0.0}) is None


def test_sparkline_is_a_bar_per_point_scaled_to_the_data_with_the_goal_and_titles():
    svg = bars([0.5, None, 0.9, 1.0], goal=0.85, label="hit rate", step_seconds=60,
               text=lambda v: f"{v:.0%}")
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert len(heights) == 3  # the missing minute stays empty
    assert heights[2] == 24.0  # the top of the axis is the data's maximum
    assert heights[0] == pytest.approx(24 * 0.1 / 0.6, abs=0.1)  # axis from 0.4 (room below)
    assert "<title>50%, 3 min ago</title>" in svg
    assert "<title>100%, now</title>" in svg
    ten_seconds = bars([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8], step_seconds=10,
                       text=lambda v: f"{v:.0%}", label="x")
    assert "<title>90%, 10 s ago</title>" in ten_seconds
    assert "<title>60%, 1 min 0 s ago</title>" not in ten_seconds
    assert "<title>60%, 1 min ago</title>" in ten_seconds
    assert "<title>50%, 1 min 10 s ago</title>" in ten_seconds
    assert 'class="target"' in svg
    assert "http" not in svg


def test_sparklines_have_ten_second_bars_for_the_first_ten_minutes_then_one_a_minute():
    history = History(interval=10)
    now, hits, misses = feed(history, 120, 10, 9, 1)  # two minutes
    row, = rows(history.view(), snapshot(history, ("redis", "main", hits, misses)), now, [])
    assert row.step == 10
    assert [m for m in row.minutes if m is not None] == [pytest.approx(0.9)] * 12
    now, hits, misses = feed(history, 900, 10, 9, 1, start=now + 10)  # past ten minutes
    row, = rows(history.view(), snapshot(history, ("redis", "main", hits, misses)), now, [])
    assert row.step == 60
    assert len([m for m in row.minutes if m is not None]) == 17


class _Links(HTMLParser):
    """Every URL a page loads or links to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.loads: list[str] = []  # what the browser fetches to show the page (not <a> links)
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        found = [value for name, value in attrs if name in ("href", "src") and value]
        self.urls += found
        if tag != "a":
            self.loads += found


def test_page_shows_every_source_a_second_after_it_was_pushed(exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    _push_every_source(exporter.url)
    page = httpx.get(exporter.url + "/").text
    assert _cells(page, "app", "users")[:2] == ["75.0%", "75.0%"]
    assert _cells(page, "docker_build", "app")[:2] == ["50.0%", "50.0%"]
    pulls = re.search(r'data-registry="compose" data-repository="team/app">(.*?)</tr>', page)
    assert pulls
    assert re.findall(r'class="num">([^<]*)<', pulls.group(1)) == ["2", "2"]
    assert "pushed" in page
    links = _Links()
    links.feed(page)
    assert links.scripts == 0  # no JavaScript at all
    assert not [u for u in links.loads if u.startswith(("http:", "https:", "//"))]
    # pulls were seen: the registry is not "nothing seen yet"; CI caches, never fed, say what
    # feeds them and link their docs page
    assert 'data-source="registry"' not in page
    idle = re.search(r'<p class="idle" data-source="ci">(.*?)</p>', page)
    assert idle
    assert "nothing seen yet; to feed it, send a finished job's log to" in idle.group(1)
    assert ('href="https://github.com/cachewatch/cachewatch/blob/main/docs/sources/'
            'ci-caches.md"') in idle.group(1)
    assert '<meta http-equiv="refresh"' in page


def test_a_chain_whose_second_level_the_app_counted_shows_that_level(exporter_factory):
    """L2 declared in the Redis layer but counted by the application itself (the two-level
    example): its own rate, not "no lookups"."""
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    assert httpx.post(exporter.url + "/api/v1/caches", json={"instance": "w1", "caches": [
        {"name": "catalog", "stats": {"hitCount": 600, "missCount": 400},
         "parent": "catalog-redis", "parent_layer": "redis"},
        {"name": "catalog-redis", "stats": {"hitCount": 300, "missCount": 100}}]}
    ).status_code == 202
    page = httpx.get(exporter.url + "/").text
    chain = re.search(r'<tr data-chain="catalog"><td>(.*?)</td>', page)
    assert chain
    assert html.unescape(chain.group(1)) == "catalog (60.0%) → catalog-redis (75.0%) → source"


def test_names_from_outside_are_escaped(exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    evil = '<img src=x onerror="alert(1)">'
    response = httpx.post(exporter.url + "/api/v1/caches", json={
        "instance": "w", "caches": [{"name": evil, "stats": {"hitCount": 1, "missCount": 1}}]})
    assert response.status_code == 202
    page = httpx.get(exporter.url + "/").text
    assert evil not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_a_down_target_is_listed_with_its_error(exporter_factory):
    from support import free_port

    exporter = exporter_factory(settings([f"gone=redis://127.0.0.1:{free_port()}"]))
    wait_until(lambda: httpx.get(exporter.url + "/readyz").status_code == 200)
    page = httpx.get(exporter.url + "/").text
    row = re.search(r'data-layer="redis" data-cache="gone">(.*?)</tr>', page)
    assert row
    assert "down (connection)" in row.group(1)
    assert "ConnectionRefusedError" in row.group(1)


def test_docs_load_their_assets_from_the_exporter_and_list_every_endpoint(exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    for page in ("/docs", "/redoc"):
        links = _Links()
        text = httpx.get(exporter.url + page).text
        links.feed(text)
        assert links.urls, page
        assert not re.search(r"https?://", text), f"{page} names an external host"
        for url in links.urls:
            if not url.startswith("data:"):
                asset = httpx.get(exporter.url + url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 1000, url
    document = httpx.get(exporter.url + "/openapi.json").json()
    assert {"/metrics", "/probe", "/healthz", "/readyz", "/api/v1/caches", "/api/v1/builds",
            "/webhooks/registry", "/webhooks/harbor"} <= set(document["paths"])
    harbor = document["paths"]["/webhooks/harbor"]["post"]
    assert {"200", "400", "401", "413"} <= set(harbor["responses"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def _push_every_source(url: str) -> None:
    """An app cache (75 % hits), a build of image app (2 of 4 steps cached, from a real BuildKit
    log), two pulls of team/app in a registry, each sent once."""
    assert httpx.post(url + "/api/v1/caches", json={"instance": "w1", "caches": [
        {"name": "users", "stats": {"hitCount": 75, "missCount": 25}}]}).status_code == 202
    log = (FIXTURES / "buildlogs" / "buildkit-busted.log").read_bytes()
    built = httpx.post(url + "/api/v1/builds", content=log, params={"image": "app", "id": "b1"},
                       headers={"Content-Type": "text/plain"})
    assert built.status_code == 202, built.text
    events = [{"id": f"e{i}", "action": "pull", "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
        "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
        "request": {"method": "GET", "host": "registry:5000"}} for i in range(2)]
    assert httpx.post(url + "/webhooks/registry", params={"registry": "compose"},
                      json={"events": events}).status_code == 200


def _cells(page: str, layer: str, cache: str) -> list[str]:
    row = re.search(rf'data-layer="{layer}" data-cache="{re.escape(cache)}">(.*?)</tr>', page)
    assert row, f"no row for {layer}/{cache}"
    return re.findall(r'class="num rate">([^<]*)<', row.group(1))


# --- in a real browser ------------------------------------------------------------------------
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium, driven by Playwright's Python package (no browser download)."""
    executable = require("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # a test dependency (pyproject's test extra)
        (pytest.fail if IN_CI else pytest.skip)("playwright is not installed: pip install "
                                                "'.[test]' (no browser download needed)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


def _open(browser: object, url: str, ready: str) -> tuple[object, list[str]]:
    """The page loaded (until ``ready`` is visible), and every console error and failed load."""
    page = browser.new_page()  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_selector(ready, timeout=15_000)
    return page, problems


@pytest.mark.e2e
def test_status_page_in_a_browser_shows_each_source_with_no_console_errors(
        browser, redis_plain, exporter_factory):
    exporter = exporter_factory(settings([f"main={redis_plain.url}"],
                                         **{"redis.probe_interval": 0.05}))
    # the page's first sample (a scrape takes one) holds what Redis counted before: not recent
    wait_until(lambda: 'cache="main"' in httpx.get(exporter.url + "/metrics").text)
    client = redis_plain.client()
    client.set("k", 1)
    for _ in range(9):
        client.get("k")
    client.get("absent")  # Redis: 9 hits, 1 miss since
    _push_every_source(exporter.url)
    wait_until(lambda: "op=\"ping\"" in httpx.get(exporter.url + "/metrics").text)
    page, problems = _open(browser, exporter.url + "/", "tr[data-cache=main]")
    cells = {(row.get_attribute("data-layer"), row.get_attribute("data-cache")):
             [cell.inner_text() for cell in row.query_selector_all("td")]
             for row in page.query_selector_all("tr[data-layer]")}
    assert cells[("redis", "main")][1:3] == ["90.0%", "90.0%"]
    assert cells[("redis", "main")][5].endswith("ms")  # P99 of the probe's PINGs
    assert cells[("redis", "main")][6].startswith("up")
    # the targets' up/down where "ready" alone read as "all is well" next to a down target
    assert "redis: 1 target, up; state: ready." in page.inner_text("#collectors")
    assert cells[("app", "users")][1:3] == ["75.0%", "75.0%"]
    assert cells[("docker_build", "app")][1:3] == ["50.0%", "50.0%"]
    pulls = page.query_selector("tr[data-repository='team/app']").inner_text()
    assert pulls.split("\t")[:4] == ["compose", "team/app", "2", "2"]
    assert page.query_selector_all("svg.spark")  # sparklines drawn inline
    assert page.query_selector("a[href=metrics]")
    assert page.query_selector("a[href=docs]")
    assert problems == []


@pytest.mark.e2e
def test_docs_render_offline_in_a_browser(browser, exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    page, problems = _open(browser, exporter.url + "/docs", ".opblock-summary-path")
    paths = {element.inner_text().replace("\u200b", "")
             for element in page.query_selector_all(".opblock-summary-path")}
    assert {"/metrics", "/probe", "/webhooks/registry", "/webhooks/harbor",
            "/api/v1/caches"} <= paths
    assert problems == []


@pytest.mark.e2e  # runs the docs' shell block (bash, curl)
def test_the_docs_push_example_pasted_as_is_shows_on_the_page(exporter_factory):
    """The Push API example, copied from the docs (Application caches) into a shell: counted,
    at the rates the page says (a `started_at` older than the exporter used to make it count
    nothing)."""
    import subprocess

    from support import ROOT

    require("curl", "curl")
    doc = (ROOT / "docs" / "sources" / "app-caches.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", doc, re.S)
                 if "/api/v1/caches" in b and "started_at" in b)
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    # `date +%s` is whole seconds: an exporter started in this same second would see the
    # instance as older than itself (its counts already exported by a previous run)
    time.sleep(1.1)
    script = block.replace("http://127.0.0.1:10150", exporter.url)
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         check=True)
    assert json.loads(run.stdout) == {"accepted": 2, "instance": "checkout-7d9f:1"}
    page = httpx.get(exporter.url + "/").text
    assert _cells(page, "app", "products") == ["91.2%", "91.2%"]
    assert _cells(page, "app", "products-redis") == ["69.3%", "69.3%"]
    assert re.search(r"`products` at 91\.2 % and `products-redis` at 69\.3 %", doc)


@pytest.mark.e2e
def test_status_page_tiles_below_goal_chains_and_bars_in_a_browser_at_400px(
        browser, exporter_factory, tmp_path):
    """What a person sees after a controlled feed, wide and at 400 px; a screenshot per state
    is kept in the test's tmp dir."""
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    page, problems = _open(browser, exporter.url + "/", "#below-goal")
    assert "nothing seen yet" in page.inner_text("body")  # idle sources say what feeds them
    # one name per thing: an idle line says what its tile says; a tile only where a section
    # feeding its layer is on (no image pulls without the Engine, no pull-through cache without
    # its reader), and P99 only where the layer measures latency
    assert [b.inner_text() for b in page.query_selector_all("p.idle b")] == [
        "Docker builds", "Registry pulls by repository", "Application caches", "CI caches"]
    assert [h.inner_text() for h in page.query_selector_all(".tile h3")] == [
        "Docker builds", "Application caches", "CI caches"]
    assert [t.get_attribute("data-layer") for t in page.query_selector_all(".tile")
            if "P99" in t.inner_text()] == ["app"]
    assert "keeps in memory" in page.inner_text("#about")
    page.screenshot(path=str(tmp_path / "empty.png"), full_page=True)
    # a two-level cache: L1 at 80 % of 1000, L2 answering 150 of L1's 200 misses
    assert httpx.post(exporter.url + "/api/v1/caches", json={"instance": "w1", "caches": [
        {"name": "l1", "stats": {"hitCount": 800, "missCount": 200},
         "parent": "l2"},
        {"name": "l2", "stats": {"hitCount": 150, "missCount": 50}}]}).status_code == 202
    _push_every_source(exporter.url)
    for width in (1200, 400):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload(wait_until="load")
        tile = page.query_selector(".tile[data-layer=app]")
        # l1, l2 and users: (800 + 150 + 75) / (1000 + 200 + 100)
        assert tile.query_selector(".big").inner_text() == f"{1025 / 1300:.1%}"
        assert "bad" in tile.get_attribute("class")
        below = page.inner_text("#below-goal")
        assert below.startswith("Below goal:")
        assert "l1 (Application caches): hit rate 80.0% < 85%" in below
        assert "users (Application caches): hit rate 75.0% < 85%" in below  # 100 lookups
        assert "l2 (Application caches): hit rate 75.0% < 85%" in below
        assert "Docker builds" not in below  # 4 steps: fewer than 100 lookups
        assert page.inner_text("tr[data-chain=l1] .effective") == "95.0%"
        bars_ = page.query_selector_all("tr[data-cache=l1] svg.spark rect.bar")
        assert bars_, "a cache pushed seconds ago has its first bar"
        assert bars_[-1].query_selector("title").text_content() == "80.0%, now"
        assert "P99" not in page.inner_text(".tile[data-layer=docker_build]")
        assert page.inner_text("section[data-layer=app] h2") == \
            tile.query_selector("h3").inner_text() == "Application caches"
        assert "goal 85%" in tile.inner_text()
        assert page.query_selector("tr[data-image=app]")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow} px wider than {width}"
        page.screenshot(path=str(tmp_path / f"fed-{width}.png"), full_page=True)
    assert problems == []

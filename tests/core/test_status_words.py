"""What the status page says, read as a person reads it: the collectors line, the note on where
the numbers come from, one name per layer (tiles, idle lines, sections, below goal), which
layers have a tile, P99 only where a layer measures latency, and one way of writing a goal.

The page is rendered from exact counters (no exporter): the words are the subject here; the
running exporter and the browser are ``test_status_page``'s.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pytest

from cachewatch.bundle.thresholds import Thresholds
from cachewatch.collectors.health import TargetState
from cachewatch.metrics import contract
from cachewatch.metrics.contract import Families
from cachewatch.sources import layers, packages
from cachewatch.status.goals import Goals
from cachewatch.status.history import History, Snapshot
from cachewatch.status.page import render

T0 = 1_800_000_000.0
# The sections on by default with no socket or target: what a first run has.
FIRST_RUN = ("builds", "registry", "app", "ci")


def _families(caches: Iterable[tuple[str, str, float, float]]) -> list:
    out = Families()
    for layer, cache, hits, misses in caches:
        for result, value in (("hit", hits), ("miss", misses)):
            out.add(contract.CACHE_LOOKUPS, {"layer": layer, "cache": cache, "result": result},
                    value)
    return list(out)


def page_of(enabled: Iterable[str] = FIRST_RUN,
            caches: Iterable[tuple[str, str, float, float]] = (),
            states: Iterable[TargetState] = (), ready: dict[str, bool] | None = None,
            goals: Goals | None = None) -> str:
    """The page with the sections ``enabled`` and ``caches`` (layer, cache, hits, misses)
    counted over the last minute."""
    caches = list(caches)
    history = History(interval=10)
    history.observe(_families((layer, cache, 0, 0) for layer, cache, _, _ in caches), T0)
    now = T0 + 60
    history.observe(_families(caches), now)
    snapshot = history.fold(Snapshot.of(_families(caches)))
    return render(history.view(), snapshot, now, states, ready or {}, goals=goals,
                  sources={name: object() for name in enabled})  # type: ignore[misc]


def text(fragment: str) -> str:
    """The words of an HTML fragment, as shown (tags gone, entities read, spaces folded)."""
    fragment = re.sub(r"<(style|svg|title)\b.*?</\1>", " ", fragment, flags=re.S)
    fragment = re.sub(r"</?(a|b|code|small|span|strong)\b[^>]*>", "", fragment)  # inline
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def tiles(page: str) -> dict[str, str]:
    """Layer -> the tile's words."""
    return {layer: text(body) for layer, body in re.findall(
        r'<div class="tile[^"]*" data-layer="([^"]+)">(.*?</div>)</div>', page, re.S)}


def element(page: str, id_: str) -> str:
    found = re.search(rf'<(\w+)[^>]* id="{id_}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{id_}"
    return text(found.group(2))


def test_the_collectors_line_says_how_many_targets_are_down_not_just_ready():
    down = TargetState("redis", "main", up=False, reason="connection", checked_at=T0)
    page = page_of(states=[down], ready={"redis": True, "state": True})
    assert element(page, "collectors") == (
        "Collectors (ready: a first round done, what /readyz waits for): "
        "redis: 1 target, 1 down; state: ready.")
    states = [TargetState("redis", "a", up=True), TargetState("redis", "b", up=True),
              TargetState("memcached", "m", up=True), TargetState("memcached", "n", up=None),
              TargetState("memcached", "o", up=False)]
    page = page_of(states=states, ready={"memcached": False, "redis": True, "state": False})
    assert element(page, "collectors").split("): ", 1)[1] == (
        "memcached: 3 targets, 1 down, 1 not read yet; redis: 2 targets, all up; "
        "state: starting.")


def test_the_note_says_the_history_is_in_memory_and_the_counts_in_the_state_store():
    note = element(page_of(), "about")
    assert ("lookups/s and the bars come from the last hour of the counters, which this page "
            "keeps in memory") in note
    assert ("The counts sent to cachewatch are kept in the state store (--state-url, a SQLite "
            "file unless set) and carry over a restart") in note
    assert "counters kept in memory" not in note


def test_a_first_run_has_a_tile_for_each_layer_fed_and_idle_lines_by_the_same_names():
    page = page_of()
    shown = tiles(page)
    assert [words.split(" no lookups")[0] for words in shown.values()] == [
        "Docker builds", "Application caches", "CI caches"]
    idle = dict(re.findall(r'<p class="idle" data-source="([^"]+)"><b>([^<]*)</b>', page))
    assert idle == {"docker": "Docker builds", "registry": "Registry pulls by repository",
                    "app": "Application caches", "ci": "CI caches"}
    titles = {layer.title for layer in layers()} | {
        family.title for source in packages() for family in source.activity}
    assert set(idle.values()) <= titles  # a name the page gives that thing elsewhere too


@pytest.mark.parametrize("layer", layers(), ids=lambda layer: layer.name)
def test_a_tile_shows_when_a_section_feeding_its_layer_is_on_or_it_has_data(layer):
    others = {section.name for source in packages() for section in source.sections} \
        - set(layer.feeders)
    assert layer.name not in tiles(page_of(enabled=others))
    assert layer.name in tiles(page_of(enabled=layer.feeders[:1]))
    assert layer.name in tiles(page_of(enabled=(), caches=[(layer.name, "c", 1, 1)]))


def test_the_layers_a_first_run_does_not_feed_have_no_tile():
    shown = tiles(page_of())
    # image pulls need the Engine section, pull-through caches their reader, Memcached a target
    assert not {"image_pull", "registry", "memcached"} & set(shown)
    assert "image_pull" in tiles(page_of(enabled=(*FIRST_RUN, "docker")))


@pytest.mark.parametrize("layer", layers(), ids=lambda layer: layer.name)
def test_p99_only_on_the_tiles_of_layers_that_measure_latency(layer):
    words = tiles(page_of(enabled=layer.feeders))[layer.name]
    assert ("P99 – (goal 50.00 ms)" in words) is layer.latency, words


def test_layers_with_no_lookup_latency_declare_none():
    measured = {layer.name for layer in layers() if layer.latency}
    assert measured == {"redis", "app", "memcached"}


def test_one_name_and_one_goal_in_tile_section_and_below_goal():
    goals = Goals.of(Thresholds(hit_rate=0.875))
    page = page_of(caches=[("app", "users", 870, 130), ("ci", "npm", 900, 100)], goals=goals)
    assert tiles(page)["app"] == ("Application caches 87.0% hit rate, 5 min (goal 87.5%) "
                                  "16.7 lookups/s P99 – (goal 50.00 ms)")
    assert tiles(page)["ci"].startswith("CI caches 90.0% hit rate, 5 min (goal 87.5%) ")
    assert element(page, "below-goal").startswith(
        "Below goal: users (Application caches): hit rate 87.0% < 87.5% ")
    heading = re.search(r'<section data-layer="app"><h2>([^<]*)</h2>', page)
    assert heading
    assert heading.group(1) == "Application caches"
    assert "(85% unless the layer has its own)" in element(page_of(), "about")
    assert "(87.5% unless the layer has its own)" in element(page, "about")

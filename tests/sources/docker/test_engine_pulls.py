"""Pull-side layer reuse: each pulled image's layers judged against what the node held.

The unit tests replay answers captured from the real 20.10 engine (an ``image pull`` event,
``RootFS`` of ``GET /images/{id}/json``, ``GET /images/{id}/history``); the e2e tests pull from
a real registry 2.8 into a real dockerd.
"""

from __future__ import annotations

import subprocess
import threading

import pytest

from cachewatch.sources.docker.pulls import PullTracker, layer_sizes

from support import BuildContext, settings, wait_until

BASE = "sha256:f3b05ef90b6507b4c602d14c8b66840ddc89cc72f2b1b74e0c906298afb1bed5"
OWN = "sha256:b1267187390bac060311cddd56ffc3f303f3886ebc7782e5bf7855376d11f2b3"
# `GET /images/{id}/history` of `FROM base` + RUN + ENV, built with BuildKit on the real engine
HISTORY = [
    {"Created": 1796652942, "CreatedBy": "ENV X=1", "Size": 0},
    {"Created": 1796652942, "CreatedBy": "RUN /bin/busybox sh -c echo a > /a # buildkit",
     "Size": 2},
    {"Created": 1796652942, "CreatedBy": "COPY busybox /bin/busybox # buildkit",
     "Size": 1982256},
]
# the engine's event for `docker pull 127.0.0.1:50225/a:v1` (20.10)
PULL = {"status": "pull", "id": "127.0.0.1:50225/a:v1", "Type": "image", "Action": "pull",
        "Actor": {"ID": "127.0.0.1:50225/a:v1", "Attributes": {"name": "127.0.0.1:50225/a"}},
        "scope": "local", "time": 1796652943}


class Node:
    """What the engine answers, as the tracker asks it."""

    def __init__(self) -> None:
        self.images: dict[str, dict] = {}
        self.refs: dict[str, str] = {}

    def put(self, ref: str, image_id: str, layers: list[str]) -> None:
        self.images[image_id] = {"Id": image_id, "RootFS": {"Type": "layers", "Layers": layers}}
        self.refs[ref] = image_id

    def inspect(self, ref: str) -> dict:
        return self.images[self.refs.get(ref, ref)]

    def tracker(self) -> PullTracker:
        return PullTracker(self.inspect, lambda _id: HISTORY, lambda: list(self.images),
                           "local", max_images=2)


def _samples(tracker: PullTracker) -> dict[tuple, float]:
    return {(s.name, *sorted(s.labels.items())): s.value
            for metric in tracker.families() for s in metric.samples}


def test_a_pull_counts_layers_the_node_held_as_reused():
    node = Node()
    node.put("base:latest", "sha256:base", [BASE])
    tracker = node.tracker()
    tracker.sync()  # the base image is on the node when the watcher connects
    node.put("127.0.0.1:50225/a:v1", "sha256:a", [BASE, OWN])
    pull = tracker.on_event(PULL)
    assert (pull.image, pull.reused, pull.fetched) == ("127.0.0.1:50225/a", 1, 1)
    assert (pull.reused_bytes, pull.fetched_bytes) == (1982256, 2)
    again = tracker.on_event(PULL)  # the engine reports a pull of a present image too
    assert (again.reused, again.fetched, again.fetched_bytes) == (2, 0, 0)
    samples = _samples(tracker)
    image = ("image", "127.0.0.1:50225/a")
    assert samples[("cachewatch_docker_pull_layers_total", ("host", "local"), image,
                    ("result", "reused"))] == 3
    assert samples[("cachewatch_docker_pull_layer_bytes_total", ("host", "local"), image,
                    ("result", "fetched"))] == 2
    assert samples[("cachewatch_cache_lookups_total", ("cache", "127.0.0.1:50225/a"),
                    ("layer", "image_pull"), ("result", "hit"))] == 3
    assert samples[("cachewatch_cache_lookups_total", ("cache", "127.0.0.1:50225/a"),
                    ("layer", "image_pull"), ("result", "miss"))] == 1


def test_deleted_and_pruned_images_leave_the_inventory():
    node = Node()
    node.put("a:1", "sha256:a", [BASE, OWN])
    tracker = node.tracker()
    tracker.sync()
    tracker.on_event({"Type": "image", "Action": "delete", "id": "sha256:a"})
    node.images.clear()
    node.put("c:1", "sha256:c", [BASE])
    pull = tracker.on_event({"Type": "image", "Action": "pull", "id": "c:1"})
    assert (pull.reused, pull.fetched) == (0, 1)
    node.images.clear()  # pruned: the engine's list no longer has it
    tracker.on_event({"Type": "image", "Action": "prune", "id": ""})
    node.put("a:1", "sha256:a", [BASE, OWN])
    assert tracker.on_event({"Type": "image", "Action": "pull", "id": "a:1"}).fetched == 2


def test_a_build_tag_adds_its_layers_and_image_names_are_capped():
    node = Node()
    tracker = node.tracker()
    node.put("built:1", "sha256:built", [BASE])
    tracker.on_event({"Type": "image", "Action": "tag", "id": "sha256:built",
                      "Actor": {"Attributes": {"name": "built:1"}}})
    for name in ("one", "two", "three"):
        node.put(f"{name}:v1", f"sha256:{name}", [BASE])
        assert tracker.on_event({"Type": "image", "Action": "pull",
                                 "id": f"{name}:v1"}).reused == 1
    images = {labels[2][1] for labels in _samples(tracker)
              if labels[0] == "cachewatch_docker_pull_layers_total"}
    assert images == {"one", "two", "other"}  # max_images=2


@pytest.mark.parametrize(("history", "layers", "sizes"), [
    (HISTORY, 2, [1982256, 2]),
    # a RUN that made an empty layer (mkdir) between two with bytes
    ([{"CreatedBy": "RUN touch /x # buildkit", "Size": 5},
      {"CreatedBy": "RUN mkdir /d # buildkit", "Size": 0},
      {"CreatedBy": "ENV A=1", "Size": 0},
      {"CreatedBy": "COPY f /f # buildkit", "Size": 7}], 3, [7, 0, 5]),
    # an imported image: one entry, no instruction
    ([{"CreatedBy": "", "Size": 9}], 1, [9]),
    ([], 2, [0, 0]),
])
def test_layer_sizes_follow_the_layers(history, layers, sizes):
    assert layer_sizes(history, layers) == sizes


@pytest.mark.e2e
def test_real_pulls_from_a_registry(docker_engine, registry_factory, exporter_factory,
                                    tmp_path):
    registry = registry_factory()
    ctx = BuildContext(tmp_path / "ctx")
    busybox = (ctx.path / "busybox").stat().st_size
    base, one, two = (f"{registry.address}/cw-pull/{n}:v1" for n in ("base", "one", "two"))
    (ctx.path / "base.Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    for name, text in (("one", "one!"), ("two", "two!!")):
        (ctx.path / f"{name}.Dockerfile").write_text(
            f"FROM {base}\n"
            f'RUN ["/bin/busybox","sh","-c","/bin/busybox echo -n {text} > /{name}"]\n'
            f"ENV IMAGE={name}\n")
    for image, dockerfile in ((base, "base"), (one, "one"), (two, "two")):
        _ok(docker_engine.cli("build", "--network=host", "-t", image, "-f",
                              str(ctx.path / f"{dockerfile}.Dockerfile"), str(ctx.path)))
    for image in (one, two):
        _ok(docker_engine.cli("push", image))
    _ok(docker_engine.cli("rmi", one, two, base))
    _ok(docker_engine.cli("builder", "prune", "-af"))

    exporter = exporter_factory(settings([], **{"redis.enabled": False, "docker.enabled": True,
                                                "docker.host": docker_engine.host}))
    collector = next(c for c in exporter.collectors if c.name == "docker")
    wait_until(collector.events.connected.is_set, timeout=30)
    repo = {n: f"{registry.address}/cw-pull/{n}" for n in ("one", "two")}

    def layers(image: str, result: str, metric: str = "layers") -> float:
        return sum(exporter.scrape().find(f"cachewatch_docker_pull_{metric}_total",
                                          image=repo[image], result=result))

    _ok(docker_engine.cli("pull", one))  # an empty node: everything fetched
    wait_until(lambda: layers("one", "fetched") == 2, timeout=20)
    assert layers("one", "reused") == 0
    assert layers("one", "fetched", "layer_bytes") == busybox + 4
    _ok(docker_engine.cli("pull", two))  # the busybox base is on the node already
    wait_until(lambda: layers("two", "fetched") == 1, timeout=20)
    assert layers("two", "reused") == 1
    assert layers("two", "reused", "layer_bytes") == busybox
    assert layers("two", "fetched", "layer_bytes") == 5
    _ok(docker_engine.cli("pull", one))  # present already: the engine reports it, all reused
    wait_until(lambda: layers("one", "reused") == 2, timeout=20)
    metrics = exporter.scrape()
    assert metrics.value("cachewatch_cache_lookups_total", layer="image_pull",
                         cache=repo["one"], result="hit") == 2

    _ok(docker_engine.cli("rmi", one, two))
    results: list[subprocess.CompletedProcess[str]] = []
    pulls = [threading.Thread(target=lambda i=i: results.append(docker_engine.cli("pull", i)))
             for i in (one, two)]
    for thread in pulls:
        thread.start()
    for thread in pulls:
        thread.join(timeout=120)
    for result in results:
        _ok(result)
    # both at once: the shared base is downloaded once, so fetched once and reused once
    wait_until(lambda: layers("one", "fetched") + layers("two", "fetched") == 2 + 1 + 3,
               timeout=20)
    assert layers("one", "reused") + layers("two", "reused") == 2 + 1 + 1


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr


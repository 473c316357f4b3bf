"""Zero-touch build history: reuse and cache busters per image from the engine's own records.

The unit tests replay history answers captured from the real 20.10 engine (BuildKit and the
legacy builder); the e2e tests build on a real dockerd and compare with what the build did.
"""

from __future__ import annotations

import time

import pytest

from cachewatch.sources.docker.history import BuildHistory, instruction, layer_steps, repository

from support import BuildContext, settings, wait_until

# `GET /images/{id}/history` of the same Dockerfile built three times on the real engine
# (cold, unchanged, app.txt changed), newest entry first, as the API answers.
BUILDKIT = {
    "sha256:one": [
        {"Created": 100, "CreatedBy": 'CMD ["/bin/busybox"]'},
        {"Created": 100, "CreatedBy": "WORKDIR /w"},
        {"Created": 100, "CreatedBy": "RUN /bin/busybox sh -c echo x > /x # buildkit"},
        {"Created": 100, "CreatedBy": "COPY app.txt /app.txt # buildkit"},
        {"Created": 100, "CreatedBy": "ENV A=1"},
        {"Created": 100, "CreatedBy": "COPY busybox /bin/busybox # buildkit"},
    ],
    "sha256:two": [
        {"Created": 103, "CreatedBy": 'CMD ["/bin/busybox"]'},
        {"Created": 103, "CreatedBy": "WORKDIR /w"},
        {"Created": 103, "CreatedBy": "RUN /bin/busybox sh -c echo x > /x # buildkit"},
        {"Created": 103, "CreatedBy": "COPY app.txt /app.txt # buildkit"},
        {"Created": 103, "CreatedBy": "ENV A=1"},  # metadata: stamped anew, cache or not
        {"Created": 100, "CreatedBy": "COPY busybox /bin/busybox # buildkit"},
    ],
}
LEGACY = {
    "sha256:one": [
        {"Created": 105, "CreatedBy": '/bin/sh -c #(nop)  CMD ["/bin/busybox"]'},
        {"Created": 105, "CreatedBy": "/bin/sh -c #(nop) WORKDIR /w"},
        {"Created": 105, "CreatedBy": "/bin/busybox sh -c echo x > /x"},
        {"Created": 105, "CreatedBy": "/bin/sh -c #(nop) COPY file:1036e1eaae3b in /app.txt "},
        {"Created": 104, "CreatedBy": "/bin/sh -c #(nop)  ENV A=1"},
        {"Created": 104, "CreatedBy": "/bin/sh -c #(nop) COPY file:0be918f2ff36 in /bin/busybox "},
    ],
    "sha256:two": [
        {"Created": 108, "CreatedBy": '/bin/sh -c #(nop)  CMD ["/bin/busybox"]'},
        {"Created": 108, "CreatedBy": "/bin/sh -c #(nop) WORKDIR /w"},
        {"Created": 108, "CreatedBy": "/bin/busybox sh -c echo x > /x"},
        {"Created": 108, "CreatedBy": "/bin/sh -c #(nop) COPY file:f23b751fc92b in /app.txt "},
        {"Created": 104, "CreatedBy": "/bin/sh -c #(nop)  ENV A=1"},
        {"Created": 104, "CreatedBy": "/bin/sh -c #(nop) COPY file:0be918f2ff36 in /bin/busybox "},
    ],
}


def replay(histories: dict[str, list[dict]], images: list[dict] | None = None) -> BuildHistory:
    return BuildHistory(histories.__getitem__, lambda: images or [], max_images=10,
                        clock=lambda: 50.0)


@pytest.mark.parametrize("histories", [BUILDKIT, LEGACY], ids=["buildkit", "legacy"])
def test_cold_then_cached_then_busted_builds(histories):
    history = replay(histories)
    cold = history.on_tag("sha256:one", "app:latest")
    assert (cold.image, cold.hits, cold.misses, cold.cache_buster) == ("app", 0, 3, None)
    cached = history.on_tag("sha256:one", "app:latest")  # a re-tag of the same id
    assert (cached.hits, cached.misses, cached.cache_buster) == (3, 0, None)
    busted = history.on_tag("sha256:two", "app:latest")
    assert (busted.hits, busted.misses) == (1, 2)
    assert busted.cache_buster.startswith("COPY ")
    assert busted.cache_buster.endswith("/app.txt")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for metric in history.families() for s in metric.samples}
    assert samples[("cachewatch_docker_build_steps_total",
                    (("image", "app"), ("result", "hit"), ("source", "engine"),
                     ("target", "")))] == 4
    assert samples[("cachewatch_docker_build_steps_total",
                    (("image", "app"), ("result", "miss"), ("source", "engine"),
                     ("target", "")))] == 5
    assert samples[("cachewatch_docker_builds_total",
                    (("image", "app"), ("source", "engine"), ("status", "success"),
                     ("target", "")))] == 3
    assert samples[("cachewatch_cache_lookups_total",
                    (("cache", "app"), ("layer", "docker_build"), ("result", "hit")))] == 4


def test_images_older_than_the_watcher_are_reused_and_base_steps_left_out():
    base = [{"Created": 10, "CreatedBy": "COPY rootfs / # buildkit"},
            {"Created": 10, "CreatedBy": "RUN apt-get update # buildkit"}]
    app = [{"Created": 60, "CreatedBy": "RUN make # buildkit"},
           {"Created": 60, "CreatedBy": "COPY . /src # buildkit"},
           {"Created": 20, "CreatedBy": "COPY go.mod /src/ # buildkit"}, *base]
    history = replay({"sha256:base": base, "sha256:app": app},
                     images=[{"Id": "sha256:base", "RepoTags": ["debian:12"]}])
    build = history.on_tag("sha256:app", "registry:5000/team/app:v1")
    assert build.image == "registry:5000/team/app"
    # go.mod step predates the watcher: reused; the base's two steps are not lookups
    assert (build.hits, build.misses, build.cache_buster) == (1, 2, "COPY . /src")


@pytest.mark.parametrize(("created_by", "expected"), [
    ("RUN pip install -r requirements.txt # buildkit", "RUN pip install -r requirements.txt"),
    ("ENV PATH=/usr/local/bin", None),
    ("WORKDIR /app", None),
    ("/bin/sh -c #(nop)  LABEL a=b", None),
    ("/bin/sh -c #(nop) ADD file:abc in / ", "ADD file:abc in /"),
    ("/bin/sh -c apt-get update", "RUN apt-get update"),
    ("", None),
])
def test_history_entries_that_are_layer_steps(created_by, expected):
    assert instruction(created_by) == expected


def test_repository_keeps_registry_ports_and_drops_tags_and_digests():
    assert repository("localhost:5000/a/b:v1") == "localhost:5000/a/b"
    assert repository("app") == "app"
    assert repository("app@sha256:abc") == "app"
    assert [s.instruction for s in layer_steps(BUILDKIT["sha256:one"])] == [
        "COPY busybox /bin/busybox", "COPY app.txt /app.txt", "RUN /bin/busybox sh -c echo x > /x"]


@pytest.mark.e2e
@pytest.mark.parametrize("buildkit", [True, False], ids=["buildkit", "legacy"])
def test_real_builds_counted_from_the_engine_alone(docker_engine, exporter_factory, tmp_path,
                                                  buildkit):
    exporter = exporter_factory(settings([], **{"redis.enabled": False, "docker.enabled": True,
                                                "docker.host": docker_engine.host}))
    collector = next(c for c in exporter.collectors if c.name == "docker")
    wait_until(collector.events.connected.is_set, timeout=30)
    ctx = BuildContext(tmp_path / "ctx")
    image = f"cw-hist-{'bk' if buildkit else 'legacy'}"

    def build(expected_builds: int) -> None:
        result = docker_engine.cli("build", "--network=host", "-t", image, str(ctx.path),
                                   buildkit=buildkit)
        assert result.returncode == 0, result.stderr
        wait_until(lambda: sum(exporter.scrape().find(
            "cachewatch_docker_builds_total", image=image, source="engine")) == expected_builds,
            timeout=20)
        time.sleep(1.1)  # history has 1 s resolution: the next build starts in a new second

    build(1)   # cold: the 4 layer steps ran
    build(2)   # unchanged: fully cached, the same image id re-tagged
    ctx.touch_app("changed")
    build(3)   # COPY busybox reused; COPY app.txt and both RUNs rebuilt
    metrics = exporter.scrape()
    steps = {result: metrics.value("cachewatch_docker_build_steps_total", image=image,
                                   source="engine", result=result) for result in ("hit", "miss")}
    assert steps == {"hit": 0 + 4 + 1, "miss": 4 + 0 + 3}
    busters = [s for s in metrics.samples
               if s.name == "cachewatch_docker_build_cache_busters_total"
               and s.labels["image"] == image]
    assert len(busters) == 1
    assert busters[0].value == 1
    assert busters[0].labels["instruction"].endswith("/app.txt")
    assert busters[0].labels["instruction"].startswith("COPY ")

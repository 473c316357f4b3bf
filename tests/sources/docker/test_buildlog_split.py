"""Every build in a log: sequential, interleaved under CI branch prefixes, per compose/bake
service, legacy and BuildKit mixed; a failed build's echo is one build; no build is none."""

from __future__ import annotations

import io
import json
from itertools import zip_longest

import pytest

from cachewatch.sources.docker.buildlog import (
    BuildSplitter,
    normalise_instruction,
    parse_builds,
    stream_lines,
)

from support import FIXTURES

REAL = FIXTURES / "buildlogs" / "real"


def builds(text: str, **kwargs) -> list:
    return parse_builds(text.encode(), **kwargs)


def counts(summaries: list) -> list[tuple]:
    return [(s.image, s.status, s.lookups, s.hits, s.misses) for s in summaries]


def one_build(name: str, cached: bool) -> list[str]:
    """A BuildKit 20.10 build (no buildx banner): internal vertices from #1, two steps."""
    second = "#6 CACHED" if cached else "#6 0.3 running\n#6 DONE 0.4s"
    return ["#1 [internal] load build definition from Dockerfile", "#1 DONE 0.0s",
            "#2 [internal] load .dockerignore", "#2 DONE 0.0s",
            "#3 [1/3] FROM docker.io/library/alpine", "#3 DONE 0.0s",
            "#5 [2/3] COPY go.mod .", "#5 CACHED", f"#6 [3/3] RUN make {name}", *second.split("\n"),
            "#7 exporting to image", f"#7 naming to docker.io/library/{name}:latest done",
            "#7 DONE 0.1s"]


def test_sequential_builds_with_the_same_vertex_numbers_are_two_builds():
    log = "\n".join([*one_build("api", cached=False), "+ docker build -t web .",
                     *one_build("web", cached=True)])
    assert counts(builds(log)) == [("api", "success", 2, 1, 1), ("web", "success", 2, 2, 0)]


def test_parallel_branches_interleaved_under_their_prefixes_are_told_apart():
    api = [f"[api] {line}" for line in one_build("api", cached=False)]
    web = [f"[web] {line}" for line in one_build("web", cached=True)]
    mixed = [line for pair in zip_longest(api, web) for line in pair if line]
    assert counts(builds("\n".join(mixed))) == [("api", "success", 2, 1, 1),
                                                ("web", "success", 2, 2, 0)]
    # without the prefixes the same lines are one tangled build: the prefixes do the work
    assert len(builds("\n".join(line.split("] ", 1)[1] for line in mixed))) == 1


def test_gh_run_view_columns_are_streams_and_timestamps_are_not():
    lines = [f"build\tBuild api\t2024-05-01T10:00:0{i % 10}.0Z {line}"
             for i, line in enumerate(one_build("api", cached=False))]
    lines += [f"build\tBuild web\t2024-05-01T10:01:0{i % 10}.0Z {line}"
              for i, line in enumerate(one_build("web", cached=True))]
    assert [s.image for s in builds("\n".join(lines))] == ["api", "web"]


def test_a_legacy_build_then_a_buildkit_build_in_one_file():
    legacy = ["Step 1/2 : FROM alpine", " ---> 1234567890ab", "Step 2/2 : RUN make",
              " ---> Using cache", " ---> 2234567890ab", "Successfully built 2234567890ab",
              "Successfully tagged old:1.0"]
    summaries = builds("\n".join(legacy + one_build("new", cached=False)))
    assert [(s.format, s.image, s.hits, s.misses) for s in summaries] == [
        ("legacy", "old", 1, 0), ("buildkit-plain", "new", 1, 1)]


def test_the_image_option_names_a_lone_build_and_falls_back_in_a_log_of_several():
    lone = "\n".join(one_build("api", cached=True))
    assert [s.image for s in builds(lone, image="mine")] == ["mine"]
    unnamed = [line for line in one_build("x", cached=True) if "naming to" not in line]
    several = "\n".join(unnamed + one_build("web", cached=True))
    assert [s.image for s in builds(several, image="mine")] == ["mine", "web"]
    assert [s.image for s in builds("\n".join(unnamed))] == ["unnamed"]


def test_a_compose_bake_build_is_one_build_per_service_with_its_own_buster():
    summaries = parse_builds((REAL / "compose-bake-two-services-busted.log").read_bytes())
    assert counts(summaries) == [("frame-compare-run", "success", 11, 2, 9),
                                 ("frame-compare", "success", 16, 11, 5)]
    assert summaries[0].cache_buster.startswith("COPY --from=builder /usr/local/lib/vapoursynth/")
    assert summaries[1].cache_buster.startswith("RUN git clone https://github.com/FFMS/ffms2.git")


def test_a_failed_builds_echo_is_one_build():
    summaries = parse_builds((REAL / "kamal-debug-prefixed-twice-failed.log").read_bytes())
    assert counts(summaries) == [("unnamed", "failed", 2, 1, 1)]


@pytest.mark.parametrize("text", ["", "hello\n", "Merge pull request #3 from me/branch\n",
                                  "npm ERR! code 1\nERROR: tests failed\n"])
def test_a_log_without_a_build_is_no_build(text):
    assert builds(text) == []
    assert builds(text, exit_code=0) == []


def test_the_docker_commands_own_error_is_a_failed_build_only_when_the_log_is_that_command():
    text = "unknown flag: --progress\nSee 'docker build --help'.\n"
    [failed] = builds(text)
    assert (failed.status, failed.lookups, failed.error) == \
        ("failed", 0, "unknown flag: --progress")
    assert builds(text, one_command=False) == []  # a job's log: any docker command says it
    missing = "unable to prepare context: path \"nope\" not found\n"
    assert [s.status for s in builds(missing, one_command=False)] == ["failed"]


def test_a_failed_command_that_printed_nothing_is_a_failed_build():
    [failed] = builds("", exit_code=125)
    assert (failed.status, failed.error) == ("failed", "the build command exited with code 125")


def test_the_exit_code_belongs_to_the_last_build():
    log = "\n".join(one_build("api", cached=True) + one_build("web", cached=True))
    assert [s.status for s in builds(log, exit_code=1)] == ["success", "failed"]


def test_reading_every_line_gives_what_the_fast_path_gives():
    data = (REAL / "compose-bake-two-services-busted.log").read_bytes()
    slow = BuildSplitter()
    for line in data.splitlines():
        slow.feed(line)
    assert [s.to_dict() for s in slow.finish()] == \
        [s.to_dict() for s in parse_builds(data)]
    fast = BuildSplitter()
    for line in stream_lines(io.BytesIO(data), chunk_size=7):
        fast.feed(line)
    assert [s.to_dict() for s in fast.finish()] == [s.to_dict() for s in parse_builds(data)]


MULTI = sorted((REAL / "multi").glob("*.truth.json"))


@pytest.mark.parametrize("truth", MULTI, ids=lambda t: t.name.removesuffix(".truth.json"))
def test_real_multi_build_logs_match_the_hand_count_per_build(truth):
    """Real files holding several builds (``buildlogs/real/multi``), each build held to its
    hand count, read as a job log is."""
    expected = json.loads(truth.read_text())["builds"]
    log = truth.with_name(truth.name.replace(".truth.json", ".log"))
    summaries = parse_builds(log.read_bytes(), one_command=False)
    assert [(s.image, s.format, s.lookups, s.hits, s.misses, s.status) for s in summaries] == \
        [(b["image"], b["format"], b["lookups"], b["hits"], b["misses"], b["status"])
         for b in expected]
    assert [s.cache_buster for s in summaries] == \
        [normalise_instruction(b["cache_buster"]) if b["cache_buster"] else None
         for b in expected]

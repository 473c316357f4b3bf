"""The build log parser on its own: real captured logs, BuildKit's rawjson records, any bytes."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewatch.sources.docker import ingest
from cachewatch.sources.docker.buildlog import (
    LINE_KINDS,
    MAX_LINE_BYTES,
    BuildLogParser,
    normalise_instruction,
    parse_bytes,
    parse_lines,
    stream_lines,
)
from cachewatch.sources.docker.buildlog.kinds import find_marker
from cachewatch.sources.docker.buildlog.model import classify
from cachewatch.sources.docker.ingest import human

from support import FIXTURES

LOGS = FIXTURES / "buildlogs"
REAL_LINES = [line for path in sorted(LOGS.glob("*.log"))
              for line in path.read_bytes().splitlines()]


def parse(name: str, **kwargs):
    return parse_lines((LOGS / name).read_bytes().splitlines(), image="app", **kwargs)


def test_captured_buildkit_cold_build_has_no_hits_and_no_buster():
    summary = parse("buildkit-cold.log")
    assert (summary.format, summary.status) == ("buildkit-plain", "success")
    assert (summary.lookups, summary.hits, summary.misses) == (6, 0, 6)
    assert summary.cache_buster is None
    internal = [r for r in summary.records if r["kind"] == "internal"]
    assert {r["name"] for r in internal} >= {"[internal] load build definition from Dockerfile",
                                             "exporting to image"}


def test_captured_buildkit_busted_build_names_the_copy():
    summary = parse("buildkit-busted.log")
    assert (summary.lookups, summary.hits) == (6, 3)
    assert summary.cache_buster == "COPY app.txt /app.txt"
    assert summary.cache_buster_step == "[base 2/4] COPY app.txt /app.txt"
    assert summary.executed_seconds == summary.rebuild_seconds == 0.4


def test_captured_failed_build():
    summary = parse("buildkit-failed.log")
    assert summary.status == "failed"
    assert "exit code: 3" in summary.error
    assert summary.records[-1]["status"] == "error"


def test_captured_legacy_build():
    summary = parse("legacy-busted.log")
    assert summary.format == "legacy"
    assert (summary.lookups, summary.hits) == (6, 3)
    assert summary.cache_buster == "COPY app.txt /app.txt"
    froms = [r for r in summary.records if r["kind"] == "from"]
    assert [r["stage"] for r in froms] == ["base", "stage-1"]


def _vertex(digest: str, name: str, **state) -> dict:
    return {"digest": digest, "inputs": [], "name": name, **state}


def test_rawjson_records_dedupe_by_digest_and_keep_the_last_state():
    """Records shaped like BuildKit's SolveStatus JSON (``--progress=rawjson``), which needs
    buildx and cannot run here: vertexes repeat as they progress, with RFC 3339 nanosecond
    timestamps, ``cached`` and ``error`` fields, and statuses/logs that carry no step state."""
    t0, t1 = "2026-11-24T10:00:00.000000001Z", "2026-11-24T10:00:02.500000009Z"
    lines = [
        {"vertexes": [_vertex("sha256:a", "[internal] load build definition from Dockerfile",
                              started=t0, completed=t0)]},
        {"vertexes": [_vertex("sha256:b", "[1/3] FROM docker.io/library/alpine:3.20",
                              started=t0, completed=t0, cached=True)]},
        {"vertexes": [_vertex("sha256:c", "[2/3] COPY requirements.txt /app/", started=t0)]},
        {"statuses": [{"id": "x", "vertex": "sha256:c", "current": 10}], "logs": []},
        {"vertexes": [_vertex("sha256:c", "[2/3] COPY requirements.txt /app/", started=t0,
                              completed=t0, cached=True)]},
        {"vertexes": [_vertex("sha256:d", "[3/3] RUN pip install -r /app/requirements.txt",
                              started=t0)]},
        {"logs": [{"vertex": "sha256:d", "stream": 1, "data": "Q29sbGVjdGluZw=="}]},
        {"vertexes": [_vertex("sha256:d", "[3/3] RUN pip install -r /app/requirements.txt",
                              started=t0, completed=t1)]},
        {"vertexes": [_vertex("sha256:e", "exporting to image", started=t1, completed=t1)]},
    ]
    summary = parse_lines([json.dumps(line) for line in lines], image="app")
    assert summary.format == "buildkit-rawjson"
    assert summary.steps == 5
    assert (summary.lookups, summary.hits, summary.misses) == (2, 1, 1)
    assert summary.cache_buster == "RUN pip install -r /app/requirements.txt"
    assert abs(summary.executed_seconds - 2.5) < 1e-6


def test_rawjson_error_and_cancel():
    t0 = "2026-11-24T10:00:00Z"
    lines = [
        {"vertexes": [_vertex("sha256:a", "[1/2] RUN make", started=t0, completed=t0,
                              error="process \"/bin/sh -c make\" did not complete: exit code: 2")]},
        {"vertexes": [_vertex("sha256:b", "[2/2] RUN make test", started=t0, completed=t0,
                              error="context canceled")]},
    ]
    summary = parse_lines([json.dumps(line) for line in lines])
    assert summary.status == "failed"
    assert [r["status"] for r in summary.records] == ["error", "canceled"]
    assert summary.lookups == 1  # a cancelled step never ran: no lookup


def test_plain_retried_vertex_and_out_of_order_lines():
    lines = [
        "#5 [stage-a 2/2] RUN make", "#6 [stage-b 2/2] RUN make docs", "#6 CACHED",
        "#5 ERROR: network blip", "#5 [stage-a 2/2] RUN make", "#5 1.20 building",
        "#5 DONE 3.1s", "#7 [stage-a 1/2] FROM docker.io/library/golang", "#7 CACHED",
    ]
    summary = parse_lines(lines)
    steps = {r["name"]: r for r in summary.records}
    assert steps["[stage-a 2/2] RUN make"]["status"] == "done"
    assert steps["[stage-a 2/2] RUN make"]["duration"] == 3.1
    assert summary.status == "success"
    assert (summary.lookups, summary.hits) == (2, 1)
    assert summary.cache_buster == "RUN make"


def test_cancelled_plain_build():
    """A solve that ends in ``context canceled`` was cancelled (Ctrl-C, a CI timeout), not
    failed: real Docker Desktop and Jetson logs end exactly so (corpus: desktop-canceled-
    before-any-step, buildkit-stage0-padded-cancelled). This test said ``failed`` before."""
    summary = parse_lines(["#4 [1/2] COPY . /src", "#4 CACHED", "#5 [2/2] RUN sleep 100",
                           "#5 CANCELED", "ERROR: failed to solve: context canceled"])
    assert summary.records[1]["status"] == "canceled"
    assert summary.status == "cancelled"
    assert parse_lines(["#4 [1/2] COPY . /src", "#4 CACHED", "#5 [2/2] RUN make",
                        "ERROR: failed to solve: process did not complete"]).status == "failed"
    assert parse_lines(["#5 [1/1] RUN x", "#5 CANCELED"]).status == "cancelled"
    assert parse_lines(["#5 [1/1] RUN x", "#5 DONE 1.0s"], exit_code=130).status == "cancelled"


def test_normalised_instruction_drops_comments_hashes_and_spacing():
    assert normalise_instruction("COPY . /app # 3f2a9c1b") == "COPY . /app"
    assert normalise_instruction("RUN  echo   sha256:0123456789abcdef0123") == \
        "RUN echo sha256:<hash>"
    assert normalise_instruction("ADD https://x/y/0123456789abcdef01.tar.gz /") == \
        "ADD https://x/y/<hash>.tar.gz /"
    assert len(normalise_instruction("RUN " + "x" * 500)) == 100


def test_long_lines_and_invalid_utf8_are_bounded_and_never_fatal():
    data = b"#1 [1/1] RUN \xff\xfe\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\n#1 CACHED\n"
    lines = list(stream_lines(io.BytesIO(data), chunk_size=4096))
    assert max(len(line) for line in lines) <= MAX_LINE_BYTES
    summary = parse_lines(lines)
    assert (summary.lookups, summary.hits) == (1, 1)


def test_tee_sees_every_byte_unchanged():
    data = b"".join(line + b"\n" for line in REAL_LINES) + b"\xff\x00 junk\r\n#9 CACHED"
    seen = bytearray()
    lines = list(stream_lines(io.BytesIO(data), chunk_size=777, tee=seen.extend))
    assert bytes(seen) == data
    assert lines[-1] == b"#9 CACHED"


@settings(max_examples=50, deadline=None)  # chunk_size=1 over 115 kB takes its time
@given(st.integers(min_value=1, max_value=5000))
def test_the_fast_path_reads_real_logs_as_the_line_by_line_parser_does(chunk_size):
    """stream_lines skips step output in C; whatever the chunking, the result is the same."""
    for path in sorted(LOGS.glob("*.log")):
        data = path.read_bytes()
        slow = parse_lines(data.splitlines(), image="x")
        parser = BuildLogParser()
        for line in stream_lines(io.BytesIO(data), chunk_size=chunk_size):
            parser.feed(line)
        fast = parser.finish("x")
        assert fast.records == slow.records, path.name
        assert fast.cache_buster == slow.cache_buster


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(REAL_LINES), st.binary(max_size=200)), max_size=80),
       st.randoms(use_true_random=False))
def test_random_and_mutated_real_logs_never_raise_or_overcount(lines, rnd):
    mutated = []
    for line in lines:
        if line and rnd.random() < 0.3:
            cut = rnd.randrange(len(line))
            line = line[:cut] + bytes([rnd.randrange(256)]) + line[cut + 1:]
        mutated.append(line)
    parser = BuildLogParser()
    for line in mutated:
        parser.feed(line)
    summary = parser.finish("x", exit_code=rnd.choice([None, 0, 1]))
    assert 0 <= summary.hits <= summary.lookups <= summary.steps
    assert summary.hits + summary.misses == summary.lookups
    assert summary.executed_seconds >= 0


def test_a_deeply_nested_rawjson_line_is_skipped_not_fatal():
    line = b'{"vertexes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    summary = parse_lines([line, b"#1 [1/1] RUN x", b"#1 CACHED"])
    assert (summary.lookups, summary.hits) == (1, 1)


def test_lines_after_an_over_long_line_and_a_bare_cr_are_kept():
    data = (b"#1 [1/1] RUN x\n" + b"y" * (MAX_LINE_BYTES + 5000) + b"\n#1 DONE 1.0s\nprogress\r\n")
    parser = BuildLogParser()
    for line in stream_lines(io.BytesIO(data), chunk_size=4096):
        parser.feed(line)
    summary = parser.finish()
    assert summary.records[0]["status"] == "done"
    assert summary.lookups == 1


def test_multi_platform_step_names_are_steps():
    summary = parse_lines(["#5 [linux/amd64 builder 2/5] RUN make", "#5 DONE 2.0s",
                           "#6 [linux/arm64 2/5] RUN make", "#6 CACHED"])
    assert summary.lookups == 2
    assert [r["stage"] for r in summary.records] == ["builder", ""]


def test_a_copy_from_a_busted_stage_is_not_the_buster_even_when_printed_first():
    """Parallel stages: BuildKit may print the final stage's COPY --from before the stage it
    copies from; the buster is still the step whose own input changed."""
    summary = parse_lines([
        "#4 [deps 1/2] RUN python3 -m venv /opt/venv", "#4 CACHED",
        "#9 [stage-2 1/2] COPY --from=deps /opt/venv /opt/venv", "#9 CACHED",
        "#10 [stage-2 2/2] COPY --from=app /opt/app /opt/app", "#10 DONE 0.1s",
        "#7 [app 1/2] COPY exporter ./exporter", "#7 DONE 0.1s",
        "#8 [app 2/2] RUN pip install --target /opt/app .", "#8 DONE 3.0s",
    ])
    assert summary.cache_buster == "COPY exporter ./exporter"


# --- the line-kind table ------------------------------------------------------------------------

PREFIXES = [
    "",
    "2025-01-06T09:50:04.2322193Z ",  # GitHub Actions: 7 fraction digits
    "2025-07-04T13:39:12.20768264Z ",  # Render: nanoseconds, trailing zeros trimmed
    "2024/03/29 14:00:00 ",  # Go's log package
    "[INFO] [io.quarkus.container.image.docker.deployment.DockerProcessor] ",  # Maven
    " DEBUG [b771957d] \t",  # Kamal
    "docker stdout: ",
    "web-1  | ",  # compose
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("kind", LINE_KINDS, ids=lambda kind: kind.name)
def test_every_example_in_the_table_is_read_as_its_kind_behind_any_prefix(kind, prefix):
    example = kind.example.split(" / ")[0]
    match = find_marker(prefix + example)
    assert match is not None
    marker = len(example) - len(example.lstrip())  # " ---> ": the marker is the arrow
    assert (match.lastgroup, match.start()) == (kind.name, len(prefix) + marker)


def test_the_leftmost_marker_decides():
    assert find_marker("#7 16.83 see #3 DONE").lastgroup == "output"
    assert find_marker("#7 16.83 Step 1/2 : FROM x").lastgroup == "output"
    assert find_marker("Step 2/5 : RUN echo '#3 DONE'").lastgroup == "step"
    assert find_marker("Merge pull request #3 from x").lastgroup == "named"
    assert find_marker("make: failed to link") is None


@pytest.mark.parametrize("prefix", PREFIXES)
def test_prefixed_logs_read_as_unprefixed_ones(prefix):
    for name in ("buildkit-busted.log", "legacy-busted.log", "buildkit-failed.log"):
        lines = (LOGS / name).read_text().splitlines()
        plain = parse_lines(lines)
        prefixed = parse_lines([prefix + line for line in lines])
        assert prefixed.records == plain.records, name
        assert (prefixed.cache_buster, prefixed.status) == (plain.cache_buster, plain.status)


@pytest.mark.parametrize(("name", "expected"), [
    ("[linux/amd64->arm64 builder 2/5] RUN make",
     ("step", "linux/amd64->arm64", "builder", 2, 5, "RUN make")),
    ("[frame-compare builder  2/11] RUN apt-get update",
     ("step", "", "builder", 2, 11, "RUN apt-get update")),
    ("[ 3/11] WORKDIR /app", ("step", "", "", 3, 11, "WORKDIR /app")),
    ("[stage-0  1/24] FROM docker.io/dustynv/ros", ("from", "", "stage-0", 1, 24,
                                                     "FROM docker.io/dustynv/ros")),
    ("[hardened 1/2] RUN chmod 0755 /app", ("step", "", "hardened", 1, 2, "RUN chmod 0755 /app")),
    ("[linux/arm64 internal] load metadata for x", ("internal", "", "", None, None,
                                                     "load metadata for x")),
    ("[frame-compare] exporting to image", ("internal", "", "", None, None,
                                            "exporting to image")),
    ("FROM nvcr.io/nvidia/l4t-cuda:10.2", ("from", "", "", None, None,
                                           "FROM nvcr.io/nvidia/l4t-cuda:10.2")),
    ("importing cache manifest from gha:1554", ("internal", "", "", None, None,
                                                "importing cache manifest from gha:1554")),
])
def test_vertex_labels(name, expected):
    label = classify(name)
    assert (label.kind, label.platform, label.stage, label.index, label.total,
            label.instruction) == expected


# --- what real logs do --------------------------------------------------------------------------

def test_cross_compiled_platform_labels_count_per_platform():
    # https://github.com/L-K-M/dl-tool (docs/tasks, T093 verification log: a docker-container
    # builder solving linux/amd64 and linux/arm64; commands shortened there with "...")
    lines = [
        '#24 [linux/amd64->arm64 ytdlp 3/3] RUN set -eu; case "arm64" in arm64) '
        "file=yt-dlp_musllinux_aarch64; ... esac; ...",
        "#24 1.617 /yt-dlp: OK",
        '#25 [linux/amd64 ytdlp 3/3]      RUN set -eu; case "amd64" in amd64) '
        "file=yt-dlp_musllinux; ... esac; ...",
        "#25 1.454 /yt-dlp: OK",
        "#24 DONE 1.7s",  # the published excerpt stops here; DONE lines added
        "#25 DONE 1.5s",
    ]
    summary = parse_lines(lines)
    assert (summary.lookups, summary.hits, summary.misses) == (2, 0, 2)
    assert [(r["platform"], r["stage"]) for r in summary.records] == [
        ("linux/amd64->arm64", "ytdlp"), ("linux/amd64", "ytdlp")]


NODE = "docker.io/library/node:20-alpine@sha256:" + "643e7036aa985317ebfee460005e322a" \
    "a550c6b6883000d01daefb58689a58e2"


def test_a_base_image_pulled_with_a_gha_cache_import_is_not_a_hit():
    # https://github.com/tiagofur/ordo-todo (a GitHub Actions build-push-action log pasted in
    # the repository's docs; cache-from type=gha), shortened: the FROM vertex is printed three
    # times while its layers download, then the first steps run
    lines = [
        f"#6 [deps  1/18] FROM {NODE}", f"#6 resolve {NODE} done", "#6 DONE 0.0s", "",
        "#7 importing cache manifest from gha:15547732738115880413", "#7 DONE 0.1s", "",
        f"#6 [deps  1/18] FROM {NODE}",
        "#6 sha256:014e56e613968f73cce0858124ca5fbc601d7888099969a4eea69f31dcd71a53 3.86MB / "
        "3.86MB 0.2s done",
        "#6 extracting sha256:014e56e613968f73cce0858124ca5fbc601d7888099969a4eea69f31dcd71a53",
        "#6 ...", "",
        f"#6 [deps  1/18] FROM {NODE}",
        "#6 extracting sha256:d28ab52fe4290429b930e8fa368da4da8a7e63cf143c38f9b869950a67c32645"
        " 1.1s done",
        "#6 DONE 1.8s", "",
        "#8 [deps  2/18] WORKDIR /app", "#8 DONE 0.5s", "",
        "#10 [deps  3/18] RUN apk add --no-cache libc6-compat",
        "#10 0.544 (1/3) Installing musl-obstack (1.2.3-r2)", "#10 DONE 0.6s",
    ]
    summary = parse_lines(lines)
    assert (summary.lookups, summary.hits, summary.misses) == (2, 0, 2)
    assert summary.cache_buster is None  # cold: the FROM's pull is no cache hit
    assert [r["kind"] for r in summary.records] == ["from", "internal", "step", "step"]


def test_a_step_that_only_pulls_layers_from_an_imported_cache_is_a_hit():
    summary = parse_lines([
        "#6 [1/3] FROM docker.io/library/python:3.14-slim", "#6 DONE 0.0s",
        "#8 [2/3] RUN pip install -r requirements.txt",
        "#8 sha256:ecc510c1e359bdc007b39802570bb7e4dec7d6ebccf357c3201a74299113e05e 1MB / 1MB",
        "#8 extracting sha256:ecc510c1e359bdc007b39802570bb7e4dec7d6ebccf357c3201a74299113e05e",
        "#8 extracting sha256:ecc510c1e359bdc007b39802570bb7e4dec7d6ebccf357c3201a74299113e05e"
        " 0.5s done",
        "#8 DONE 4.9s",
        "#9 [3/3] RUN make", "#9 0.10 cc -c main.c", "#9 extracting sha256:aa", "#9 DONE 3.0s",
        "#10 [3/3] COPY . .", "#10 DONE 0.0s",
    ])
    by_name = {r["name"]: r for r in summary.records}
    assert by_name["[2/3] RUN pip install -r requirements.txt"]["cached"] is True
    assert by_name["[3/3] RUN make"]["cached"] is False  # it printed output: it ran
    assert by_name["[3/3] COPY . ."]["cached"] is False  # DONE and nothing else: it ran
    assert summary.cache_buster == "RUN make"
    assert summary.cached_seconds == 4.9


def test_a_cancelled_step_is_a_miss_only_if_it_had_started():
    summary = parse_lines([
        "#5 [1/3] WORKDIR /app", "#5 CACHED",
        "#6 [2/3] RUN make", "#6 8.761 Starting >>> laser_geometry", "#6 CANCELED",
        "#7 [3/3] RUN make test", "#7 CANCELED",
        "ERROR: failed to solve: Canceled: context canceled",
    ])
    assert (summary.lookups, summary.hits, summary.misses) == (2, 1, 1)
    assert summary.cache_buster == "RUN make"
    assert summary.status == "cancelled"
    assert not summary.truncated


def test_a_from_printed_done_then_cached_makes_the_build_warm():
    lines = ["#5 [linux/amd64 1/2] FROM docker.io/library/alpine", "#5 DONE 0.0s",
             "#5 [linux/amd64 1/2] FROM docker.io/library/alpine", "#5 CACHED",
             "#8 [linux/amd64 2/2] COPY app /app", "#8 DONE 0.1s"]
    summary = parse_lines(lines)
    assert (summary.lookups, summary.misses, summary.cache_buster) == (1, 1, "COPY app /app")
    assert parse_lines(lines[:2] + lines[4:]).cache_buster is None  # FROM DONE: cold


def test_a_log_printed_twice_counts_once():
    for name in ("buildkit-busted.log", "legacy-busted.log"):
        once = (LOGS / name).read_text().splitlines()
        twice = parse_lines([*once, "docker stdout: " + once[0], *once[1:]])
        assert twice.records == parse_lines(once).records, name


def test_legacy_wording_variants():
    summary = parse_lines([
        "Step 1/5 : FROM python:3.8.10", " ---> a369814a9797",
        "Step 2/5 : RUN pip install flask", " ---> Using cache", " ---> 20dabd1acd2c",
        "Step 3/5 : ADD https://example.com/app.tar.gz /app",
        "Downloading [==================================================>]  2.47MB/2.47MB\r",
        " ---> 76fe0eec9b92",
        "Step 4/5 : WORKDIR /app", " ---> Running in bcf4299db339",
        " ---> Removed intermediate container bcf4299db339", " ---> 05923dc29fc5",
        "...",
        "Step 5/5 : CMD [\"python3\"]", " ---> Running in fe2c0f85b0db",
        "Removing intermediate container fe2c0f85b0db", " ---> ba3e81e8f47f",
        "Successfully built ba3e81e8f47f",
    ])
    assert (summary.lookups, summary.hits, summary.misses) == (4, 1, 3)
    assert summary.cache_buster == "ADD https://example.com/app.tar.gz /app"
    assert (summary.status, summary.truncated) == ("success", False)


def test_podmans_docker_emulation_reads_as_the_legacy_builder():
    # https://github.com/miyamotoh/csi-powermax/blob/86cbefc0f2abe94055fd1b924f40327feabed6a9/README.md
    # (`docker build` on a host where docker is Podman, as on Fedora/RHEL)
    log = """\
docker build -t ""localhost:5000/csi-powermax":"v2.4.0.000X"" .
Emulate Docker CLI using podman. Create /etc/containers/nodocker to quiet msg.
STEP 1/7: FROM docker.io/ppc64le/centos:8
STEP 2/7: RUN yum install -y     e2fsprogs     which     xfsprogs     device-mapper-multipath
--> Using cache 0328fd45b9725af496e14bc639904077c70a7b0790d20dd08020f8384150581f
--> 0328fd45b97
STEP 3/7: RUN which mkfs.ext4
--> Using cache 3e2f40aac788b84b62f7e88b7f0058bde38c8f1a512dbaaee52b721374926592
--> 3e2f40aac78
STEP 4/7: RUN which mkfs.xfs
--> Using cache 1923b9c6ce0a291c0ba8cfdaac6222d19db689bfd0387ecc6b58a74bb7f42459
--> 1923b9c6ce0
STEP 5/7: COPY "csi-powermax" .
--> db14eca0328
STEP 6/7: COPY "csi-powermax.sh" .
--> aa53a6c1082
STEP 7/7: ENTRYPOINT ["/csi-powermax.sh"]
COMMIT localhost:5000/csi-powermax:v2.4.0.000X
--> 8accbc15c29
Successfully tagged localhost:5000/csi-powermax:v2.4.0.000X
8accbc15c29aa829993cc9126e59e8fb0cb9de9fc39076b7a659bce65818a577
"""
    summary = parse_lines(log.splitlines())
    assert summary.format == "legacy"
    assert (summary.lookups, summary.hits, summary.misses) == (6, 3, 3)
    assert summary.cache_buster == 'COPY "csi-powermax" .'
    assert (summary.status, summary.truncated) == ("success", False)
    stages = parse_lines([
        "[1/2] STEP 1/2: FROM golang:1.26-bookworm AS build", "[1/2] STEP 2/2: RUN go build",
        "--> 1c2fd56b4fad", "[2/2] STEP 1/2: FROM alpine",
        "[2/2] STEP 2/2: COPY --from=build /api /api", "--> Using cache 2c2fd56b4fad",
        "--> 2c2fd56b4fad", "[2/2] COMMIT api", "--> 3c2fd56b4fad"])
    assert [(r["stage"], r["index"]) for r in stages.records] == [
        ("build", 1), ("build", 2), ("stage-1", 1), ("stage-1", 2)]
    assert (stages.lookups, stages.hits, stages.status) == (2, 1, "success")
    assert parse_lines(["STEP 1/2: FROM alpine", "STEP 2/2: RUN false",
                        'Error: building at STEP "RUN false": while running runtime: exit '
                        "status 1"]).status == "failed"


def test_a_legacy_build_stopped_by_an_error_of_no_fixed_form_failed():
    summary = parse_lines([
        "Step 1/13 : ARG BASE=python:3.11-slim", "Step 2/13 : FROM ${BASE} AS builder",
        " ---> 607dc7448339", "Step 3/13 : WORKDIR /src", " ---> Running in 5d3324a494b2",
        " ---> 70711a48fc77", "builder stage name already used"])
    assert (summary.lookups, summary.misses) == (2, 2)  # the ARG before FROM is a step too
    assert (summary.status, summary.truncated) == ("failed", False)
    assert "Step 3/13" in summary.error


def test_logs_cut_off_mid_build_say_so_and_count_the_open_step_as_run():
    buildkit = parse_lines([
        "#5 [1/4] WORKDIR /app", "#5 CACHED", "#6 [2/4] COPY . .", "#6 DONE 0.1s",
        "#7 [3/4] RUN make", "#7 12.5 compiling", "#8 [4/4] RUN make test", "#8 ..."])
    assert buildkit.truncated
    assert (buildkit.lookups, buildkit.hits, buildkit.misses) == (4, 1, 3)
    assert buildkit.status == "failed"  # a build killed mid-step is what cuts a piped log
    assert parse_lines(["#5 [1/1] RUN make", "#5 DONE 1.0s"], exit_code=0).status == "success"
    legacy = parse_lines([
        "Step 1/82 : FROM jenkins/jenkins:lts", " ---> 5a214d77f5d7",
        "Step 2/82 : COPY a /a", " ---> Using cache", " ---> 2aed42cf85ce",
        "Step 3/82 : COPY b /b", " ---> cb8bf23395f9", "Step 4/82 : COPY c /c"])
    assert legacy.truncated
    assert (legacy.lookups, legacy.hits, legacy.misses) == (3, 1, 2)
    assert legacy.cache_buster == "COPY b /b"
    for complete in ("buildkit-busted.log", "buildkit-failed.log", "legacy-busted.log"):
        assert not parse(complete).truncated, complete
    assert "log cut off" in human(buildkit, "not sent")
    assert "log cut off" not in human(parse("buildkit-busted.log"), "not sent")


def test_stray_vertex_numbers_do_not_make_a_log_look_cut_off():
    summary = parse_lines(["HEAD is now at 3ae4eea Merge pull request #3 from x/y",
                           "#3 [1/1] RUN make", "#3 DONE 1.0s"])
    assert not summary.truncated
    assert summary.records[0]["name"] == "[1/1] RUN make"
    assert summary.lookups == 1


# --- the build's duration ------------------------------------------------------------------------

def test_duration_comes_from_the_logs_own_timestamps():
    lines = ["2025-01-06T09:50:22.7596331Z #4 [1/2] FROM docker.io/library/golang:1.23",
             "2025-01-06T09:50:22.7597285Z #4 DONE 0.0s",
             "2025-01-06T09:50:22.7597748Z #5 [2/2] RUN go mod download",
             "2025-01-06T09:50:25.1256564Z #5 0.5 go: downloading x",
             "2025-01-06T09:50:25.0256564Z #5 DONE 2.3s",
             "2025-01-06T09:50:39.6358807Z"]  # a bare timestamp: no build line, no time
    assert parse_lines(lines).duration_seconds == pytest.approx(2.266023, abs=1e-6)
    go_log = ["2024/03/29 14:00:00 Step 1/2 : FROM alpine", "2024/03/29 14:00:00  ---> 5335d5f4",
              "2024/03/29 14:00:36 Step 2/2 : RUN make", "2024/03/29 14:00:36  ---> Running in ab",
              "2024/03/29 14:00:36  ---> 254068f73e78", "2024/03/29 14:00:36 Successfully built 25"]
    assert parse_lines(go_log).duration_seconds == 36.0


def test_piped_logs_report_their_own_duration_not_the_streams(monkeypatch):
    log = "\n".join(f"2025-07-04T13:39:{second:02d}.{nanos}Z {line}" for second, nanos, line in [
        (10, "002281888", "#8 [ 2/2] RUN npm ci"), (12, "20768264", "#8 0.1 added 12 packages"),
        (14, "5", "#8 DONE 4.0s")]).encode()
    [summary] = ingest.from_stream(io.BytesIO(log), "app", "", out=io.BytesIO())
    assert summary.duration_seconds == pytest.approx(4.497718112, abs=1e-6)
    clock = iter([100.0] + [107.5] * 8)  # the start, then every line and the end
    monkeypatch.setattr(ingest, "now", lambda: next(clock))
    [plain] = ingest.from_stream(io.BytesIO(b"#8 [1/1] RUN x\n#8 DONE 1.0s\n"), "app", "",
                                 out=io.BytesIO())
    assert plain.duration_seconds == 7.5  # no timestamps: the stream's wall-clock time


def test_rawjson_span_logs_and_layer_pulls():
    t0, t1, t2 = "2026-11-24T10:00:00Z", "2026-11-24T10:00:04.5Z", "2026-11-24T10:00:09Z"
    lines = [
        {"vertexes": [_vertex("sha256:a", "[1/3] FROM docker.io/library/alpine", started=t0,
                              completed=t0, cached=True)]},
        {"vertexes": [_vertex("sha256:b", "[2/3] RUN pip install .", started=t0)]},
        {"statuses": [{"id": "extracting sha256:0a96", "vertex": "sha256:b"}]},
        {"vertexes": [_vertex("sha256:b", "[2/3] RUN pip install .", started=t0,
                              completed=t1)]},
        {"vertexes": [_vertex("sha256:c", "[3/3] RUN make", started=t1)]},
        {"logs": [{"vertex": "sha256:c", "stream": 1, "data": "Y2MgLWM="}]},
        {"vertexes": [_vertex("sha256:c", "[3/3] RUN make", started=t1, completed=t2)]},
    ]
    summary = parse_lines([json.dumps(line) for line in lines])
    assert (summary.lookups, summary.hits, summary.cache_buster) == (2, 1, "RUN make")
    assert summary.duration_seconds == 9.0


@pytest.mark.e2e  # starts a shell
def test_a_wrapped_builds_exit_code_outranks_what_its_log_looks_like():
    cut = "printf '#5 [1/2] COPY . /src\\n#5 CACHED\\n#6 [2/2] RUN make\\n#6 1.0 cc\\n'"
    [summary], code = ingest.run(["sh", "-c", f"{cut}; exit 0"], "app", "")
    assert (code, summary.status, summary.truncated) == (0, "success", True)
    [summary], code = ingest.run(["sh", "-c", f"{cut}; exit 3"], "app", "")
    assert (code, summary.status) == (3, "failed")
    [summary], code = ingest.run(["sh", "-c", f"{cut}; kill -TERM $$"], "app", "")
    assert (code, summary.status) == (143, "cancelled")


def test_a_summary_as_a_dict_is_what_asdict_gives_and_shares_no_record():
    from dataclasses import asdict

    for path in sorted(LOGS.glob("*.log")):
        summary = parse_lines(path.read_bytes().splitlines(), image="x")
        out = summary.to_dict()
        assert out == asdict(summary)
        assert out["records"], path.name  # every fixture is a build with steps
        out["records"][0]["name"] = "changed"
        assert summary.records[0]["name"] != "changed"


def test_the_report_names_the_buster_by_its_instruction_in_either_format():
    """The legacy builder's ``Step 3/8 :`` and BuildKit's ``[2/2]`` are positions, not the
    instruction: the report prints what the busters metric labels."""
    legacy = parse_bytes((LOGS / "legacy-busted.log").read_bytes())
    assert legacy.cache_buster_step == "Step 3/8 : COPY app.txt /app.txt"  # the step's name
    assert "  cache buster: COPY app.txt /app.txt\n" in human(legacy, "sent")
    buildkit = parse_bytes(b"#4 [1/2] COPY . /src\n#4 CACHED\n#5 [2/2] RUN make\n#5 DONE 2.0s\n")
    assert "  cache buster: RUN make\n" in human(buildkit, "sent")

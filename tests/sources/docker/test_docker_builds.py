"""Real builds on a real Docker engine, ingested by the real CLI into a running exporter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from cachewatch.sources.docker.engine import disk_usage

from support import DOCKER_CLI, BuildContext, free_port, promtool_clean, settings, wait_until

pytestmark = pytest.mark.e2e  # every test here drives real services

CW = [sys.executable, "-m", "cachewatch"]


def cw_build(engine, exporter, ctx, image, fmt, *extra, dockerfile=None):
    """`cachewatch build --json -- docker build ...`: (exit code, log on stdout, summary)."""
    command = [*CW, "build", "--image", image, "--url", exporter.url, "--json", "--", DOCKER_CLI,
               "build", "--network=host", *(["--progress=plain"] if fmt == "plain" else []),
               "-t", image, *(["-f", str(ctx.path / dockerfile)] if dockerfile else []),
               *extra, str(ctx.path)]
    proc = subprocess.run(command, capture_output=True, timeout=300,
                          env=engine.env(buildkit=fmt == "plain"), check=False)
    stderr = proc.stderr.decode()
    summary = json.loads(stderr[stderr.index("{"):])
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), summary


def counted_from_log(log: str, fmt: str) -> tuple[int, int]:
    """(cacheable steps, cached steps) counted straight from the log text, independently."""
    if fmt == "plain":
        steps = {m.group(1) for m in re.finditer(r"^#(\d+) \[(?:\S+ )?\d+/\d+\] (?!FROM )",
                                                 log, re.M)}
        cached = {m.group(1) for m in re.finditer(r"^#(\d+) CACHED$", log, re.M)}
        return len(steps), len(steps & cached)
    return (len(re.findall(r"^Step \d+/\d+ : (?!FROM )", log, re.M)),
            len(re.findall(r"^ ---> Using cache$", log, re.M)))


@pytest.mark.parametrize("fmt", ["plain", "legacy"])
def test_cold_warm_and_busted_builds_are_counted_step_for_step(
    fmt, docker_engine, exporter_factory, tmp_path
):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    ctx = BuildContext(tmp_path / "ctx")
    image = f"cw-{fmt}"
    expected_hits = expected_misses = 0

    code, log, cold = cw_build(docker_engine, exporter, ctx, image, fmt)
    assert code == 0, log
    assert cold["format"] == ("buildkit-plain" if fmt == "plain" else "legacy")
    assert (cold["lookups"], cold["hits"], cold["cache_buster"]) == (4, 0, None)
    assert counted_from_log(log, fmt) == (4, 0)
    expected_misses += 4

    code, log, warm = cw_build(docker_engine, exporter, ctx, image, fmt)
    assert (warm["lookups"], warm["hits"], warm["cache_buster"]) == (4, 4, None)
    assert counted_from_log(log, fmt) == (4, 4)
    expected_hits += 4

    ctx.touch_app("v2\n")
    code, log, busted = cw_build(docker_engine, exporter, ctx, image, fmt)
    assert busted["cache_buster"] == "COPY app.txt /app.txt"
    assert counted_from_log(log, fmt) == (4, 1)
    steps = [r for r in busted["records"] if r["kind"] == "step"]
    assert [r["cached"] for r in steps] == [True, False, False, False]  # all after it missed
    assert busted["rebuild_seconds"] == busted["executed_seconds"]
    expected_hits += 1
    expected_misses += 3

    metrics = exporter.scrape()
    labels = {"image": image, "target": ""}
    assert metrics.value("cachewatch_docker_build_steps_total", result="hit", **labels) \
        == expected_hits
    assert metrics.value("cachewatch_docker_build_steps_total", result="miss", **labels) \
        == expected_misses
    assert metrics.value("cachewatch_cache_lookups_total", layer="docker_build", cache=image,
                         result="hit") == expected_hits
    assert metrics.value("cachewatch_docker_builds_total", status="success", **labels) == 3
    assert metrics.value("cachewatch_docker_build_cache_busters_total", image=image,
                         instruction="COPY app.txt /app.txt") == 1
    assert metrics.value("cachewatch_docker_build_duration_seconds_count", **labels) == 3


def test_failed_build_keeps_its_exit_code_and_counts_as_failed(docker_engine, exporter_factory,
                                                              tmp_path):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    ctx = BuildContext(tmp_path / "ctx", "FROM scratch\nCOPY busybox /bin/busybox\n"
                       'RUN ["/bin/busybox","sh","-c","echo failing; exit 3"]\n')
    code, log, summary = cw_build(docker_engine, exporter, ctx, "cw-fail", "plain")
    assert code == 1
    assert "failing" in log
    assert summary["status"] == "failed"
    assert "exit code: 3" in summary["error"]
    assert exporter.scrape().value("cachewatch_docker_builds_total", image="cw-fail", target="",
                                   status="failed") == 1


PARALLEL = """\
FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox","sh","-c","/bin/busybox sleep 0.5; echo tools > /tools.txt"]

FROM scratch AS docs
COPY busybox /bin/busybox
RUN ["/bin/busybox","sh","-c","/bin/busybox sleep 0.5; echo docs > /docs.txt"]

FROM scratch
COPY --from=tools /tools.txt /tools.txt
COPY --from=docs /docs.txt /docs.txt
"""


def test_parallel_stages_and_cache_from(docker_engine, exporter_factory, tmp_path):
    """Two stages run at once (their lines interleave, CACHED out of order), then a
    --cache-from build that adds BuildKit's 'importing cache manifest' step."""
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    ctx = BuildContext(tmp_path / "ctx", PARALLEL)
    inline = ("--build-arg", "BUILDKIT_INLINE_CACHE=1")
    code, log, cold = cw_build(docker_engine, exporter, ctx, "cw-par", "plain", *inline)
    assert code == 0, log
    # the two stages' identical COPY is one vertex to BuildKit: 5 steps, not 6
    assert (cold["lookups"], cold["hits"]) == counted_from_log(log, "plain") == (5, 0)
    assert {r["stage"] for r in cold["records"] if r["kind"] == "step"} == \
        {"tools", "docs", "stage-2"}
    code, log, warm = cw_build(docker_engine, exporter, ctx, "cw-par", "plain", *inline)
    assert (warm["lookups"], warm["hits"]) == counted_from_log(log, "plain") == (5, 5)

    code, log, from_cache = cw_build(docker_engine, exporter, ctx, "cw-par", "plain",
                                     "--cache-from", "cw-par")
    assert code == 0, log
    assert "importing cache manifest from cw-par" in log
    importing = [r for r in from_cache["records"] if r["name"].startswith("importing cache")]
    assert [r["kind"] for r in importing] == ["internal"]
    assert from_cache["lookups"] == 5


def test_ingest_build_passes_the_log_through_unchanged(docker_engine, exporter_factory,
                                                      tmp_path):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    ctx = BuildContext(tmp_path / "ctx")
    build = subprocess.run(
        [DOCKER_CLI, "build", "--network=host", "--progress=plain", "-t", "cw-pipe",
         str(ctx.path)], capture_output=True, env=docker_engine.env(), timeout=300, check=True)
    log = build.stderr + b"\xff\xfe not utf-8\n"  # BuildKit writes its progress to stderr
    piped = subprocess.run([*CW, "ingest-build", "--image", "cw-pipe", "--url", exporter.url],
                           input=log, capture_output=True, timeout=60, check=True)
    assert piped.stdout == log
    assert b"layer cache: 0/4 steps cached (0%)" in piped.stderr
    assert b"sent to" in piped.stderr
    assert exporter.scrape().value("cachewatch_docker_build_steps_total", image="cw-pipe",
                                   target="", result="miss") == 4


def test_ingest_build_without_an_exporter_still_reports(tmp_path):
    log = b"#4 [1/2] COPY . /src\n#4 CACHED\n#5 [2/2] RUN make\n#5 DONE 2.0s\n"
    piped = subprocess.run([*CW, "ingest-build", "--image", "x", "--url",
                            f"http://127.0.0.1:{free_port()}"], input=log, capture_output=True,
                           timeout=60, check=False)
    assert piped.returncode == 0
    assert piped.stdout == log
    assert b"cache buster: RUN make\n" in piped.stderr  # the instruction, as labelled
    assert b"unreachable" in piped.stderr
    assert b"the build itself is unaffected" in piped.stderr


def _human_bytes(text: str) -> float:
    number, unit = re.match(r"([\d.]+)\s*([kMGT]?B)", text).groups()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]


def test_engine_collector_matches_docker_system_df(docker_engine, exporter_factory, tmp_path):
    exporter = exporter_factory(settings([], **{"redis.enabled": False, "docker.enabled": True,
                                                "docker.host": docker_engine.host}))
    ctx = BuildContext(tmp_path / "ctx")
    docker_engine.cli("build", "--network=host", "-t", "cw-df", str(ctx.path))
    metrics = exporter.scrape()
    assert metrics.value("cachewatch_collector_up", collector="docker", target="local") == 1
    promtool_clean(metrics.text)  # the engine's families pass promtool like every source's
    rows = {}
    for line in docker_engine.cli("system", "df", "--format", "{{json .}}").stdout.splitlines():
        row = json.loads(line)
        rows[row["Type"]] = row
    records = sum(metrics.find("cachewatch_docker_build_cache_records", host="local"))
    assert records == int(rows["Build Cache"]["TotalCount"])
    # `docker system df` sizes the build cache without the records it shares with images
    cache_bytes = sum(metrics.find("cachewatch_docker_build_cache_bytes", host="local",
                                   shared="false"))
    assert cache_bytes == pytest.approx(_human_bytes(rows["Build Cache"]["Size"]), rel=0.005)
    reclaimable = metrics.value("cachewatch_docker_build_cache_reclaimable_bytes", host="local")
    assert reclaimable == pytest.approx(_human_bytes(rows["Build Cache"]["Reclaimable"]),
                                        rel=0.005)
    # every record was used moments ago: all of the cache is in the smallest age bucket
    everything = sum(metrics.find("cachewatch_docker_build_cache_bytes", host="local"))
    assert everything > 0
    for within in ("3600.0", "+Inf"):
        assert metrics.value("cachewatch_docker_build_cache_used_within_bytes", host="local",
                             within=within) == everything
    assert metrics.value("cachewatch_docker_build_cache_used_within_records", host="local",
                         within="+Inf") == records
    images = sum(metrics.find("cachewatch_docker_images", host="local"))
    assert images == int(rows["Images"]["TotalCount"])
    layers = metrics.value("cachewatch_docker_layers_bytes", host="local")
    assert layers == pytest.approx(_human_bytes(rows["Images"]["Size"]), rel=0.005)


def test_engine_events_are_counted(docker_engine, exporter_factory, tmp_path):
    exporter = exporter_factory(settings([], **{"redis.enabled": False, "docker.enabled": True,
                                                "docker.host": docker_engine.host}))
    collector = next(c for c in exporter.collectors if c.name == "docker")
    wait_until(collector.events.connected.is_set, timeout=20)
    ctx = BuildContext(tmp_path / "ctx", "FROM scratch\nCOPY app.txt /app.txt\n")
    docker_engine.cli("build", "--network=host", "-t", "cw-ev:1", str(ctx.path))
    before = exporter.scrape()
    docker_engine.cli("tag", "cw-ev:1", "cw-ev:2")
    docker_engine.cli("rmi", "cw-ev:2")

    def tagged() -> bool:
        after = exporter.scrape()
        return all(
            after.value("cachewatch_docker_events_total", host="local", type="image",
                        action=action)
            == before.value("cachewatch_docker_events_total", host="local", type="image",
                            action=action) + 1
            for action in ("tag", "untag"))

    wait_until(tagged, timeout=20)


def test_engine_down_reports_down_and_the_rest_works(exporter_factory, redis_plain, tmp_path):
    exporter = exporter_factory(settings([redis_plain.url], **{
        "docker.enabled": True, "docker.host": f"unix://{tmp_path}/absent.sock",
        "docker.timeout": 1.0}))
    started = time.monotonic()
    metrics = exporter.scrape()
    assert time.monotonic() - started < 2
    assert metrics.value("cachewatch_collector_up", collector="docker", target="local") == 0
    assert metrics.value("cachewatch_collector_errors_total", collector="docker", target="local",
                         reason="connection") >= 1
    assert metrics.value("cachewatch_collector_up", collector="redis",
                         target=redis_plain.address) == 1


def test_system_df_after_api_1_52_is_read_too():
    """The shape documented for Engine API 1.52+ (BuildCacheDiskUsage / ImagesDiskUsage with
    ActiveCount, TotalCount, TotalSize, Reclaimable and, verbose, Items); no 1.52 engine here."""
    df = {
        "ImagesDiskUsage": {"ActiveCount": 1, "TotalCount": 2, "TotalSize": 5000,
                            "Reclaimable": 1000, "Items": [
                                {"Id": "sha256:1", "RepoTags": ["app:1"], "Size": 3000,
                                 "SharedSize": 1000},
                                {"Id": "sha256:2", "RepoTags": [], "Size": 2000,
                                 "SharedSize": -1}]},
        "BuildCacheDiskUsage": {"ActiveCount": 1, "TotalCount": 3, "TotalSize": 700,
                                "Reclaimable": 600, "Items": [
                                    {"ID": "a", "Type": "regular", "InUse": True, "Shared": False,
                                     "Size": 100, "UsageCount": 2},
                                    {"ID": "b", "Type": "regular", "InUse": False,
                                     "Shared": True, "Size": 200, "UsageCount": 5},
                                    {"ID": "c", "Type": "source.local", "InUse": False,
                                     "Shared": False, "Size": 400, "UsageCount": 1}]},
    }
    samples = {(f.name, tuple(sorted(s.labels.items()))): s.value
               for f in disk_usage(df, "h") for s in f.samples}
    cache = "cachewatch_docker_build_cache_bytes"
    assert samples[(cache, (("host", "h"), ("in_use", "true"), ("shared", "false"),
                            ("type", "regular")))] == 100
    assert samples[("cachewatch_docker_build_cache_reclaimable_bytes", (("host", "h"),))] == 600
    assert samples[("cachewatch_docker_build_cache_uses", (("host", "h"),))] == 8
    assert samples[("cachewatch_docker_images", (("dangling", "true"), ("host", "h")))] == 1
    assert samples[("cachewatch_docker_images_shared_bytes", (("host", "h"),))] == 1000
    assert samples[("cachewatch_docker_layers_bytes", (("host", "h"),))] == 5000
    # without Items (not verbose) the engine's totals are still exported
    totals = {(f.name, tuple(sorted(s.labels.items()))): s.value
              for f in disk_usage({"BuildCacheDiskUsage": {"TotalCount": 3, "TotalSize": 700,
                                                           "Reclaimable": 600}}, "h")
              for s in f.samples}
    assert totals[(cache, (("host", "h"), ("in_use", "all"), ("shared", "all"),
                           ("type", "all")))] == 700


def test_build_output_cut_short_by_head_never_hangs_the_build(tmp_path):
    """`cachewatch build ... | head`: the build must still run to its end, not block."""
    script = ("echo \"#1 [1/1] RUN x\"; i=0; while [ $i -lt 20000 ]; do "
              "echo \"#1 0.$i output line $i\"; i=$((i+1)); done")
    command = " ".join(CW) + f" build --image x --url '' -- sh -c '{script}' | head -n 1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          timeout=60, check=False)
    assert done.stdout.startswith(b"#1 [1/1] RUN x")
    assert b"build of x" in done.stderr

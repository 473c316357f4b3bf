"""BuildKit's build history, end to end: a real buildkitd (v0.11.6), real builds, a real exporter.

Every image is built FROM scratch with a static busybox (no registry, no network). Each test
checks what cachewatch exported against what the build did: the same build's ``--progress
plain`` log, parsed by the log parser, must give the same hits, misses and cache buster.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cachewatch.sources.docker.buildlog import parse_bytes

from support import BuildContext, BuildkitDaemon, Exporter, Metrics, settings, wait_until

BUILDS = "cachewatch_docker_builds_total"
STEPS = "cachewatch_docker_build_steps_total"
BUSTERS = "cachewatch_docker_build_cache_busters_total"
MULTI_STAGE = (
    "FROM scratch AS base\n"
    "COPY busybox /bin/busybox\n"
    'RUN ["/bin/busybox","sh","-c","echo base > /base.txt"]\n'
    "FROM base AS app\n"
    "COPY app.txt /app.txt\n"
    'RUN ["/bin/busybox","sh","-c","/bin/busybox cat /app.txt > /copy.txt"]\n'
    "FROM scratch\n"
    "COPY --from=app /copy.txt /copy.txt\n"
)
FAILING = (
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    'RUN ["/bin/busybox","sh","-c","echo failing on purpose; exit 3"]\n'
)


def follow(exporter_factory: Callable[..., Exporter], daemon: BuildkitDaemon,
           state: str = "memory://", port: int | None = None) -> Exporter:
    """An exporter following ``daemon`` (target ``bk``), reconnecting quickly."""
    return exporter_factory(settings(
        [], **{"redis.enabled": False, "buildkit.enabled": True, "state.url": state,
               "buildkit.targets": [f"bk={daemon.address}"], "buildkit.reconnect_max": 0.5}),
        port=port)


def total(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(metrics.find(name, source="buildkit", **labels))


def counted(exporter: Exporter, builds: int, image: str | None = None) -> Metrics:
    """Wait until exactly ``builds`` builds (of ``image``) are counted; the scrape."""
    labels = {"image": image} if image else {}

    def check() -> Metrics | None:
        metrics = exporter.scrape()
        return metrics if total(metrics, BUILDS, **labels) == builds else None

    return wait_until(check, timeout=30, interval=0.1)


def steps(metrics: Metrics, image: str) -> tuple[float, float]:
    return (total(metrics, STEPS, image=image, result="hit"),
            total(metrics, STEPS, image=image, result="miss"))


def built(daemon: BuildkitDaemon, context: Path, image: str | None, *opts: str) -> str:
    """Build, check it succeeded, return its plain log."""
    result = daemon.build(context, image, *opts)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


def test_cold_build_counts_every_step_as_a_miss(buildkitd, exporter_factory, tmp_path):
    exporter = follow(exporter_factory, buildkitd)
    log = built(buildkitd, BuildContext(tmp_path / "ctx").path, "registry.test/cold:1")
    metrics = counted(exporter, 1)
    parsed = parse_bytes(log.encode())
    assert (parsed.hits, parsed.misses) == (0, 4)
    assert steps(metrics, "registry.test/cold") == (0, 4)
    assert metrics.value(BUILDS, image="registry.test/cold", target="", status="success",
                         source="buildkit") == 1
    assert metrics.value("cachewatch_cache_lookups_total", layer="docker_build",
                         cache="registry.test/cold", result="miss") == 4
    assert metrics.value("cachewatch_docker_build_duration_seconds_count",
                         image="registry.test/cold", target="") == 1
    assert metrics.value("cachewatch_docker_build_step_seconds_total", image="registry.test/cold",
                         target="", result="executed") > 0
    assert metrics.find(BUSTERS) == []  # a cold build has no buster
    assert metrics.value("cachewatch_collector_up", collector="buildkit", target="bk") == 1


def test_one_file_changed_in_a_multi_stage_build(buildkitd, exporter_factory, tmp_path):
    context = BuildContext(tmp_path / "ctx", MULTI_STAGE)
    exporter = follow(exporter_factory, buildkitd)
    built(buildkitd, context.path, "registry.test/multi:1")
    counted(exporter, 1)
    context.touch_app("v2\n")
    log = built(buildkitd, context.path, "registry.test/multi:1")
    metrics = counted(exporter, 2)
    parsed = parse_bytes(log.encode())
    # base's two steps came from the cache; app.txt changed, so its COPY, the RUN after it and
    # the final stage's COPY --from ran again. The log parser sees the same from the log.
    assert (parsed.hits, parsed.misses, parsed.cache_buster) == (2, 3, "COPY app.txt /app.txt")
    assert steps(metrics, "registry.test/multi") == (2, 3 + 5)
    assert metrics.value(BUSTERS, image="registry.test/multi", instruction="COPY app.txt /app.txt",
                         source="buildkit") == 1
    assert metrics.value("cachewatch_docker_build_cache_buster_seconds_total",
                         image="registry.test/multi", instruction="COPY app.txt /app.txt",
                         source="buildkit") > 0
    assert metrics.value("cachewatch_docker_build_rebuild_seconds_total",
                         image="registry.test/multi", target="") > 0
    # The status page lists the image's last build with its source and its buster.
    page = exporter.get("/").text
    row = page.split('<tr data-image="registry.test/multi">', 1)[1].split("</tr>", 1)[0]
    assert "2 of 5 steps cached" in row
    assert "<code>COPY app.txt /app.txt</code>" in row
    assert "<td>buildkit</td>" in row


def test_fully_cached_build_and_its_target(buildkitd, exporter_factory, tmp_path):
    context = BuildContext(tmp_path / "ctx", MULTI_STAGE).path
    exporter = follow(exporter_factory, buildkitd)
    built(buildkitd, context, "registry.test/cached:1", "target=app")
    built(buildkitd, context, "registry.test/cached:1", "target=app")
    metrics = counted(exporter, 2)
    assert metrics.value(BUILDS, image="registry.test/cached", target="app", status="success",
                         source="buildkit") == 2
    # target=app: only base and app are built (4 steps), cold then fully cached
    assert steps(metrics, "registry.test/cached") == (4, 4)
    assert metrics.find(BUSTERS) == []


def test_failing_build(buildkitd, exporter_factory, tmp_path):
    context = BuildContext(tmp_path / "ctx", FAILING).path
    exporter = follow(exporter_factory, buildkitd)
    result = buildkitd.build(context, "registry.test/broken:1")
    assert result.returncode != 0
    metrics = counted(exporter, 1)
    assert metrics.value(BUILDS, image="registry.test/broken", target="", status="failed",
                         source="buildkit") == 1
    assert steps(metrics, "registry.test/broken") == (0, 2)  # the failed RUN ran: a miss


def test_two_builds_at_once(buildkitd, exporter_factory, tmp_path):
    exporter = follow(exporter_factory, buildkitd)
    procs = [subprocess.Popen(buildkitd.build_args(BuildContext(tmp_path / name).path,
                                                   f"registry.test/{name}:1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name in ("left", "right")]
    assert [proc.wait(timeout=300) for proc in procs] == [0, 0]
    metrics = counted(exporter, 2)
    for name in ("left", "right"):
        assert steps(metrics, f"registry.test/{name}") == (0, 4)
    time.sleep(1)  # nothing more arrives later
    assert total(exporter.scrape(), BUILDS) == 2


def test_builds_while_stopped_are_counted_once_at_start_and_never_twice(
        buildkitd, exporter_factory, tmp_path):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    contexts = [BuildContext(tmp_path / f"ctx{n}").path for n in range(2)]
    first = follow(exporter_factory, buildkitd, state)
    built(buildkitd, contexts[0], "registry.test/one:1")
    counted(first, 1)
    first.stop()
    first.runtime.close()
    built(buildkitd, contexts[1], "registry.test/two:1")  # made while cachewatch is down
    second = follow(exporter_factory, buildkitd, state)
    metrics = counted(second, 2)
    wait_until(lambda: second.scrape().value(
        "cachewatch_collector_up", collector="buildkit", target="bk") == 1)
    time.sleep(1)
    metrics = second.scrape()
    assert total(metrics, BUILDS) == 2
    assert steps(metrics, "registry.test/one") == (0, 4)  # restored, not counted again
    assert steps(metrics, "registry.test/two") == (0, 4)


def test_buildkitd_restart_then_the_next_build_is_counted(buildkitd, exporter_factory, tmp_path):
    context = BuildContext(tmp_path / "ctx").path
    exporter = follow(exporter_factory, buildkitd)
    built(buildkitd, context, "registry.test/restart:1")
    counted(exporter, 1)
    started = time.monotonic()
    buildkitd.stop()  # SIGTERM: buildkitd waits for open calls, so the stream must let go
    assert time.monotonic() - started < 10
    down = wait_until(lambda: (m := exporter.scrape()).value(
        "cachewatch_collector_up", collector="buildkit", target="bk") == 0 and m)
    assert total(down, BUILDS) == 1  # /metrics keeps answering, with what was counted
    assert sum(down.find("cachewatch_collector_errors_total", collector="buildkit",
                         target="bk")) >= 1
    buildkitd.start()
    wait_until(lambda: exporter.scrape().value(
        "cachewatch_collector_up", collector="buildkit", target="bk") == 1, timeout=30)
    built(buildkitd, context, "registry.test/restart:1")
    metrics = counted(exporter, 2)
    assert steps(metrics, "registry.test/restart") == (4, 4)  # the record survived: not recounted


@pytest.mark.e2e
def test_an_unreachable_daemon_is_down_and_metrics_answer(exporter_factory, tmp_path):
    exporter = exporter_factory(settings(
        [], **{"redis.enabled": False, "buildkit.enabled": True, "state.url": "memory://",
               "buildkit.targets": [f"gone=unix://{tmp_path}/none.sock"],
               "buildkit.reconnect_max": 0.2}))
    metrics = wait_until(lambda: (m := exporter.scrape()).find(
        "cachewatch_collector_errors_total", collector="buildkit", target="gone",
        reason="connection")[0] >= 2 and m)
    assert metrics.value("cachewatch_collector_up", collector="buildkit", target="gone") == 0
    assert exporter.get("/readyz").status_code == 200


@pytest.mark.e2e
def test_tcp_with_mutual_tls_as_buildkitd_expects_it(exporter_factory, tmp_path):
    """buildkitd --tlscacert/--tlscert/--tlskey verifies its clients too: the target gives the
    CA, a client certificate and its key (buildctl's --tlscacert/--tlscert/--tlskey)."""
    import trustme

    from support import free_port

    ca = trustme.CA()
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem",
             "key": tmp_path / "server.key", "client": tmp_path / "client.pem",
             "client_key": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client = ca.issue_cert("cachewatch")
    client.cert_chain_pems[0].write_to_path(str(files["client"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    port = free_port()
    daemon = BuildkitDaemon(tcp=(port, files)).start()
    try:
        target = {"name": "tls", "address": f"tcp://127.0.0.1:{port}",
                  "tls_ca_file": str(files["ca"]), "tls_cert_file": str(files["client"]),
                  "tls_key_file": str(files["client_key"])}
        exporter = exporter_factory(settings(
            [], **{"redis.enabled": False, "buildkit.enabled": True, "state.url": "memory://",
                   "buildkit.targets": [target, {**target, "name": "no-client-cert",
                                                 "tls_cert_file": None,
                                                 "tls_key_file": None}],
                   "buildkit.reconnect_max": 0.5}))
        built(daemon, BuildContext(tmp_path / "ctx").path, "registry.test/tls:1")
        metrics = counted(exporter, 1)
        assert steps(metrics, "registry.test/tls") == (0, 4)
        assert metrics.value("cachewatch_collector_up", collector="buildkit", target="tls") == 1
        assert metrics.value("cachewatch_collector_up", collector="buildkit",
                             target="no-client-cert") == 0
        assert metrics.value("cachewatch_collector_errors_total", collector="buildkit",
                             target="no-client-cert", reason="tls") >= 1
    finally:
        daemon.remove()


def test_doctor_ranks_by_the_daemons_own_history(buildkitd, tmp_path):
    from typer.testing import CliRunner

    from cachewatch.cli import build_cli

    context = BuildContext(tmp_path / "ctx", (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "COPY . /app\n"
        'RUN ["/bin/busybox","sh","-c","/bin/busybox cat /app/app.txt > /copy.txt"]\n'))
    built(buildkitd, context.path, "registry.test/doc:1")
    context.touch_app("v2\n")
    built(buildkitd, context.path, "registry.test/doc:1")
    built(buildkitd, BuildContext(tmp_path / "other").path, "registry.test/other:1")
    result = CliRunner().invoke(build_cli(), [
        "doctor", str(context.path / "Dockerfile"), "--image", "registry.test/doc",
        "--buildkit-target", f"bk={buildkitd.address}"])
    assert result.exit_code == 1, result.output
    cost = [line for line in result.stdout.splitlines() if line.startswith("    cost: ")]
    assert cost, result.output
    assert cost[0].startswith("    cost: `COPY . /app` (line 3) busted the cache in 1 of the 2"
                              " builds of registry.test/doc in bk's build history (3 builds"
                              " kept); re-running the steps after it took ")
    assert result.stderr.endswith("ranked by what they cost in 2 builds of registry.test/doc in"
                                  " bk's build history (3 builds kept)\n")

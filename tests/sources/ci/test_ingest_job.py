"""``cachewatch ingest-job`` end to end: the real command reads a job log holding two Docker
builds and CI caches, and sends them to a real ``cachewatch serve`` keeping its state in
SQLite. Acknowledged means kept (a restart keeps every count) and nothing counts twice (the
same log sent again adds nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support import Metrics, free_port, wait_until

pytestmark = pytest.mark.e2e  # starts real processes

CW = [sys.executable, "-m", "cachewatch"]


def build_lines(name: str, cached: bool) -> list[str]:
    run = ["#6 CACHED"] if cached else ["#6 0.2 compiling", "#6 DONE 3.0s"]
    return ["#0 building with \"default\" instance using docker driver",
            "#1 [internal] load build definition from Dockerfile", "#1 DONE 0.0s",
            "#3 [1/3] FROM docker.io/library/alpine", "#3 DONE 0.0s",
            "#5 [2/3] COPY go.mod .", "#5 CACHED", "#6 [3/3] RUN make", *run,
            "#7 exporting to image", f"#7 naming to docker.io/library/{name}:1.0 done",
            "#7 DONE 0.1s"]


JOB = "\n".join([
    "##[group]Run actions/cache@v4", "  key: Linux-go-0123456789abcdef0123", "##[endgroup]",
    "Cache Size: ~3 MB (3145728 B)", "Cache restored from key: Linux-go-0123456789abcdef0123",
    "npm cache is not found", *build_lines("api", cached=False),
    *build_lines("web", cached=True), "Post job cleanup.",
    "Cache saved with key: node-cache-Linux-x64-npm-ffff0000ffff0000"]) + "\n"


class Serve:
    """A real ``cachewatch serve`` with its state in SQLite."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        self.proc = subprocess.Popen(
            [*CW, "serve", "--listen-address", "127.0.0.1", "--port", str(self.port),
             "--disable-collector", "redis", "--state-url",
             f"sqlite:///{self.folder}/state.db", "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=(self.folder / "serve.log").open("ab"))
        wait_until(self._ready, timeout=30, interval=0.05)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (self.folder / "serve.log").read_text()[-2000:]
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def metrics(self) -> Metrics:
        return Metrics(httpx.get(self.url + "/metrics", timeout=10).text)


@pytest.fixture
def serve(tmp_path: Path):
    running = Serve(tmp_path).start()
    yield running
    running.stop()


def ingest(serve: Serve, log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CW, "ingest-job", str(log), "--url", serve.url, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_job_log_is_sent_kept_across_a_restart_and_never_counted_twice(serve, tmp_path):
    log = tmp_path / "job.log"
    log.write_text(JOB)
    first = ingest(serve, log)
    assert first.returncode == 0, first.stderr
    job = json.loads(first.stdout)  # the JSON alone on stdout
    assert [(b["image"], b["hits"], b["misses"]) for b in job["builds"]] == [("api", 1, 1),
                                                                             ("web", 2, 0)]
    assert job["ci_caches"] == [
        {"ci": "github", "cache": "Linux-go", "result": "hit", "bytes": 3145728},
        {"ci": "github", "cache": "node-cache-Linux-x64-npm", "result": "miss", "bytes": 0}]
    assert job["ci_cache_saves"] == [{"ci": "github", "cache": "node-cache-Linux-x64-npm",
                                      "bytes": 0}]
    assert ingest(serve, log).returncode == 0  # a retried CI step sends the same log again

    serve.stop()
    serve.start()
    metrics = serve.metrics()
    assert metrics.value("cachewatch_ci_cache_restores_total", ci="github", cache="Linux-go",
                         result="hit") == 1
    assert metrics.value("cachewatch_ci_cache_restored_bytes_total", ci="github",
                         cache="Linux-go") == 3145728
    assert metrics.value("cachewatch_cache_lookups_total", layer="ci",
                         cache="node-cache-Linux-x64-npm", result="miss") == 1
    assert metrics.value("cachewatch_ci_cache_saves_total", ci="github",
                         cache="node-cache-Linux-x64-npm") == 1
    assert metrics.value("cachewatch_ci_ingest_rejected_total", reason="duplicate") == 1
    for image, hits, misses in (("api", 1, 1), ("web", 2, 0)):
        assert metrics.value("cachewatch_docker_build_steps_total", image=image, target="",
                             result="hit", source="log") == hits
        assert metrics.value("cachewatch_docker_build_steps_total", image=image, target="",
                             result="miss", source="log") == misses
        assert metrics.value("cachewatch_docker_builds_total", image=image, target="",
                             status="success", source="log") == 1


def test_a_log_with_neither_builds_nor_caches_counts_nothing_and_says_so(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("Run npm test\nadded 3 packages, lru-cache@10\nERROR: 2 tests failed\n")
    result = subprocess.run([*CW, "ingest-job", str(log), "--url", ""], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 3
    assert result.stderr.strip() == ("cachewatch: no docker build and no CI cache restore or "
                                     "save in this log (nothing counted)")


def test_cachewatch_build_reports_a_command_that_failed_before_building(tmp_path):
    command = [*CW, "build", "--url", "", "--json", "--", "sh", "-c",
               "echo 'unknown flag: --progress' >&2; exit 125"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 125  # the command's own exit code
    assert "unknown flag: --progress" in result.stdout  # its output passed through
    summary = json.loads(result.stderr[result.stderr.index("{"):])
    assert (summary["status"], summary["lookups"], summary["error"], summary["image"]) == \
        ("failed", 0, "unknown flag: --progress", "unnamed")

"""Doctor's metrics: findings of the configured Dockerfiles, and the build time lost per buster.

``cachewatch_dockerfile_findings{image,rule}`` comes from ``builds.dockerfiles`` (image ->
Dockerfile), re-analysed only when a file changes; a file that cannot be read is counted and
logged once, never a failed scrape. ``cachewatch_docker_build_cache_buster_seconds_total`` adds
up the seconds re-run in the builds each instruction busted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading

import httpx
import pytest
from prometheus_client.exposition import generate_latest

from cachewatch.metrics.contract import Families
from cachewatch.sources.docker.doctor import RULES, analyze
from cachewatch.sources.docker.findings import DockerfileFindings

from support import FIXTURES, Metrics, settings, wait_until

CORPUS = FIXTURES / "dockerfiles"
FINDINGS = "cachewatch_dockerfile_findings"
ERRORS = "cachewatch_collector_errors_total"
MESSY = "OR13__camcam__Dockerfile"  # latest-tag, dockerignore-missing, package-cache-kept, ...
CLEAN = "LukeMathWalker__zero-to-production__chapter05__Dockerfile"


@pytest.fixture
def projects(tmp_path):
    """Two corpus Dockerfiles in their folders, as a checkout would have them."""
    for name in (MESSY, CLEAN):
        shutil.copytree(CORPUS / name, tmp_path / name)
    return tmp_path


class _Scrape:
    """What one scrape of the findings would encode."""

    def __init__(self, findings: DockerfileFindings) -> None:
        self.findings = findings

    def collect(self):
        out = Families()
        self.findings.add_to(out)
        return iter(out)


def _scrape(findings: DockerfileFindings, check: bool = True) -> Metrics:
    """A scrape, after a check of the files when ``check`` (a scrape alone reads the last)."""
    if check:
        findings.refresh()
    return Metrics(generate_latest(_Scrape(findings)).decode())  # type: ignore[arg-type]


def test_every_rule_has_a_sample_per_image_and_the_counts_are_doctors(projects):
    findings = DockerfileFindings({"messy": projects / MESSY / "Dockerfile",
                                   "clean": projects / CLEAN / "Dockerfile"})
    metrics = _scrape(findings)
    text = (projects / MESSY / "Dockerfile").read_text()
    expected = dict.fromkeys(RULES, 0)
    for finding in analyze(text, "Dockerfile", None, vcs_in_context=False):
        expected[finding.rule] += 1
    assert sum(expected.values()) >= 3
    assert {rule: metrics.value(FINDINGS, image="messy", rule=rule) for rule in RULES} == expected
    clean = {rule: metrics.value(FINDINGS, image="clean", rule=rule) for rule in RULES}
    assert clean == dict.fromkeys(RULES, 0)


def test_a_file_is_analysed_again_only_when_it_changes(projects):
    path = projects / MESSY / "Dockerfile"
    findings = DockerfileFindings({"messy": path})
    for _ in range(3):
        _scrape(findings)
    assert findings.analyses == 1
    fixed = path.read_text().replace("FROM node\n", "FROM node:20.11.1\n")
    path.write_text(fixed)
    os.utime(path, ns=(1, 1))  # a new mtime even within the filesystem's time resolution
    assert _scrape(findings).value(FINDINGS, image="messy", rule="latest-tag") == 0
    assert findings.analyses == 2
    (projects / MESSY / ".dockerignore").write_text(".git\nnode_modules\n")
    assert _scrape(findings).value(FINDINGS, image="messy", rule="dockerignore-missing") == 0
    assert findings.analyses == 3


def test_an_unreadable_file_is_counted_and_logged_once_never_a_failed_scrape(projects, caplog):
    path = projects / MESSY / "Dockerfile"
    findings = DockerfileFindings({"messy": path, "clean": projects / CLEAN / "Dockerfile",
                                   "folder": projects})
    caplog.set_level(logging.INFO, logger="cachewatch.dockerfiles")
    original = path.read_text()
    path.unlink()
    for _ in range(3):
        metrics = _scrape(findings)
    assert metrics.find(FINDINGS, image="messy") == []
    assert metrics.value(FINDINGS, image="clean", rule="latest-tag") == 0
    assert metrics.value(ERRORS, collector="dockerfile", target="messy", reason="missing") == 3
    assert metrics.value(ERRORS, collector="dockerfile", target="folder",
                         reason="unreadable") == 4  # the start-up check, then 3
    warnings = [r for r in caplog.records if r.getMessage() == "cannot read Dockerfile"]
    assert sorted(r.image for r in warnings) == ["folder", "messy"]  # once each
    path.write_text(original)
    metrics = _scrape(findings)
    assert metrics.value(FINDINGS, image="messy", rule="latest-tag") == 1
    assert metrics.value(ERRORS, collector="dockerfile", target="messy", reason="missing") == 3
    assert [r.image for r in caplog.records if r.getMessage() == "Dockerfile readable again"] \
        == ["messy"]
    path.write_bytes(b"FROM scratch\n" + b"#" * (1024 * 1024))
    assert _scrape(findings).value(ERRORS, collector="dockerfile", target="messy",
                                   reason="too_large") == 1


def test_the_setting_comes_from_the_env_as_json_and_feeds_metrics(projects, exporter_factory,
                                                                 monkeypatch):
    monkeypatch.setenv("CACHEWATCH_BUILDS__DOCKERFILES", json.dumps(
        {"shop": str(projects / MESSY / "Dockerfile"), "gone": str(projects / "nope")}))
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    response = exporter.get("/metrics")
    assert response.status_code == 200
    metrics = Metrics(response.text)
    assert metrics.value(FINDINGS, image="shop", rule="source-before-deps") == 1
    # the start-up check read it; the next checks come every few seconds, not on each scrape
    failed = metrics.value(ERRORS, collector="dockerfile", target="gone", reason="missing")
    assert failed >= 1
    for _ in range(5):
        later = exporter.scrape().value(ERRORS, collector="dockerfile", target="gone",
                                        reason="missing")
    assert failed <= later <= failed + 1


def test_the_time_lost_after_each_buster_is_counted(exporter_factory):
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    for buster, rebuild in (("COPY . /app", 120.5), ("COPY . /app # a comment", 30.0),
                            ("RUN make", 7.25), (None, 99.0)):
        summary = {"status": "success", "duration_seconds": 200, "lookups": 3, "hits": 1,
                   "misses": 2, "rebuild_seconds": rebuild, "cache_buster": buster}
        httpx.post(exporter.url + "/api/v1/builds", json={"image": "app", "summary": summary},
                   timeout=10).raise_for_status()
    metrics = exporter.scrape()
    name = "cachewatch_docker_build_cache_buster_seconds_total"
    assert metrics.value(name, image="app", instruction="COPY . /app", source="log") == 150.5
    assert metrics.value(name, image="app", instruction="RUN make", source="log") == 7.25
    assert len(metrics.find(name)) == 2  # a build with no buster lost nothing to one


def test_a_scrape_never_touches_the_files_and_a_check_follows_on_its_own_thread(
        projects, monkeypatch):
    findings = DockerfileFindings({"messy": projects / MESSY / "Dockerfile"},
                                  refresh_seconds=0)
    assert findings.analyses == 1  # checked at start-up
    latest = _scrape(findings, check=False).value(FINDINGS, image="messy", rule="latest-tag")
    assert latest == 1
    stalled, release = threading.Event(), threading.Event()
    real_stat = os.stat

    def stalling_stat(path, *args, **kwargs):  # a hung network mount
        if str(path).endswith("Dockerfile"):
            stalled.set()
            release.wait(10)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr("cachewatch.sources.docker.findings.os.stat", stalling_stat)
    (projects / MESSY / "Dockerfile").write_text("FROM alpine:3.20\nRUN true\n")
    started = _scrape(findings, check=False)  # starts a check, which stalls
    assert stalled.wait(10)
    assert started.value(FINDINGS, image="messy", rule="latest-tag") == 1
    # while the check hangs, scrapes still answer with what the last check found
    assert _scrape(findings, check=False).value(FINDINGS, image="messy",
                                                rule="latest-tag") == 1
    release.set()
    wait_until(lambda: _scrape(findings, check=False).value(
        FINDINGS, image="messy", rule="latest-tag") == 0)
    assert findings.analyses == 2


def test_a_failing_analysis_is_counted_and_the_other_files_still_checked(projects, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a doctor bug")

    monkeypatch.setattr("cachewatch.sources.docker.findings.analyze", broken)
    findings = DockerfileFindings({"messy": projects / MESSY / "Dockerfile"})
    metrics = _scrape(findings)
    assert metrics.find(FINDINGS, image="messy") == []  # nothing exported as if it were known
    assert metrics.value(ERRORS, collector="dockerfile", target="messy",
                         reason="analysis_error") == 2  # start-up check, then this one


def test_a_check_stuck_past_the_stall_limit_withdraws_the_findings(projects, monkeypatch):
    findings = DockerfileFindings({"messy": projects / MESSY / "Dockerfile"})
    assert _scrape(findings, check=False).value(FINDINGS, image="messy", rule="latest-tag") == 1
    assert findings._checking.acquire(blocking=False)  # a check that hangs
    monkeypatch.setattr("cachewatch.sources.docker.findings.time.monotonic",
                        lambda: findings._started_at + 31)
    for _ in range(2):
        stuck = _scrape(findings, check=False)
        assert stuck.find(FINDINGS, image="messy") == []
        assert stuck.value(ERRORS, collector="dockerfile", target="messy", reason="stalled") == 1
    findings._checking.release()

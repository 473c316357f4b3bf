"""Doctor's source-before-deps fix, built for real: measured, not assumed.

Real corpus Dockerfiles that install dependencies after copying the sources are built on the
real dockerd, with both builders, twice with a source change in between: once as they are (the
install must run again) and once with doctor's fix applied (the install must come from the
cache). What happened is read from the build log by cachewatch's own parser.

There is no Docker Hub and no package index here, so each base image the Dockerfile names
(``node:latest``, ``python``, ``ruby:3.0.0``...) is a local ``FROM scratch`` image with a static
busybox and a stand-in package manager: like the real one it reads only its manifests
(``package.json``, ``requirements.txt``, ``Gemfile``...), fails when they are missing (so a fix
that forgets to copy one breaks the build), and takes a second.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cachewatch.cli import build_cli
from cachewatch.sources.docker.buildlog import BuildLogParser, Step
from cachewatch.sources.docker.doctor import apply_fix, parse
from cachewatch.sources.docker.doctor.cost import duration, matches, triggers
from cachewatch.sources.docker.doctor.finding import Finding

from support import FIXTURES, require
from support import settings as exporter_settings

pytestmark = pytest.mark.e2e

CORPUS = FIXTURES / "dockerfiles"
INSTALL_SECONDS = 1
# The stand-in package manager, linked as npm, pip, pip3 and bundle.
FAKE_INSTALLER = f"""#!/bin/sh
set -e
tool=$(basename "$0")
manifests=""
case "$tool $1" in
  "npm install") manifests="package.json" ;;
  "npm ci") manifests="package.json package-lock.json" ;;
  "pip install"|"pip3 install")
    shift
    while [ $# -gt 0 ]; do
      if [ "$1" = -r ]; then manifests="$manifests $2"; shift; fi
      shift
    done ;;
  "bundle install") manifests="Gemfile" ;;
  *) echo "$tool: not faked: $*" >&2; exit 2 ;;
esac
for manifest in $manifests; do
  test -f "$manifest" || {{ echo "$tool: $manifest is missing in $(pwd)" >&2; exit 1; }}
done
sleep {INSTALL_SECONDS}
mkdir -p /deps
cat $manifests > "/deps/$tool.installed"
echo "$tool: installed from $manifests"
"""
TOOLBOX = (
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    'RUN ["/bin/busybox","--install","-s","/bin"]\n'
    "COPY installer /usr/local/bin/installer\n"
    "RUN for t in npm pip pip3 bundle; do ln -s installer /usr/local/bin/$t; done\n"
    "ENV PATH=/usr/local/bin:/usr/bin:/bin\n"
)
NODE = {"package.json": '{"name": "app", "dependencies": {"express": "4.19.2"}}\n',
        "package-lock.json": '{"name": "app", "lockfileVersion": 3}\n'}
RUBY = {"Gemfile": 'source "https://rubygems.org"\ngem "rails", "7.1.3"\n',
        "Gemfile.lock": "GEM\n  specs:\n    rails (7.1.3)\n"}
# Corpus folder -> the project's manifests; the source file changed between builds is apart.
CASES: dict[str, dict[str, str]] = {
    "BlackIQ__amirhossein.info__Dockerfile": NODE,
    "docker__awesome-compose__react-express-mongodb__backend__Dockerfile": NODE,
    "OR13__camcam__Dockerfile": NODE,
    "zorro1992__task-app-devops__Dockerfile": {"requirements.txt": "flask==3.0.3\n"},
    "kndshein__jobtracker-backend__Dockerfile": RUBY,
    "TheWudu__mystats__Dockerfile": RUBY,
}
SOURCE_FILE = "main.src"


@pytest.fixture(scope="module")
def toolbox(docker_engine, tmp_path_factory) -> str:
    """Build the stand-in base once; each test tags it as the images its Dockerfile names."""
    folder = tmp_path_factory.mktemp("toolbox")
    shutil.copy(require("busybox", "busybox-static"), folder / "busybox")
    (folder / "installer").write_text(FAKE_INSTALLER)
    (folder / "installer").chmod(0o755)
    (folder / "Dockerfile").write_text(TOOLBOX)
    result = docker_engine.cli("build", "--network=host", "-t", "cachewatch-toolbox:1",
                               str(folder))
    assert result.returncode == 0, result.stderr[-2000:]
    return "cachewatch-toolbox:1"


@dataclass
class Build:
    """One build as cachewatch's parser read it, and how long it took."""

    steps: list[Step]
    cache_buster: str | None
    seconds: float  # wall clock, for the report
    executed: float  # seconds of the steps that ran, from the log (BuildKit prints them)

    def step(self, instruction: str) -> Step:
        [step] = [s for s in self.steps if s.kind == "step" and matches(s.instruction,
                                                                         instruction)]
        return step


def _build(engine, context: Path, buildkit: bool) -> Build:
    args = ["build", "--network=host", "-t", f"doctor-{context.name.lower()}:latest"]
    if buildkit:
        args.append("--progress=plain")
    started = time.monotonic()
    result = engine.cli(*args, str(context), buildkit=buildkit)
    seconds = time.monotonic() - started
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    parser = BuildLogParser()
    for line in (result.stdout + result.stderr).splitlines():
        parser.feed(line)
    summary = parser.finish(exit_code=0)
    return Build(parser.steps, summary.cache_buster, seconds, summary.executed_seconds)


def _twice(engine, context: Path, buildkit: bool) -> tuple[Build, Build]:
    """Build, change a source file (nothing else), build again."""
    first = _build(engine, context, buildkit)
    (context / SOURCE_FILE).write_text(f"console.log({time.time_ns()})\n")
    return first, _build(engine, context, buildkit)


def _context(name: str, folder: Path) -> Path:
    """The corpus Dockerfile (and its .dockerignore) with a small project around it."""
    shutil.copytree(CORPUS / name, folder)
    for file_name, text in CASES[name].items():
        (folder / file_name).write_text(text)
    (folder / SOURCE_FILE).write_text("console.log('v1')\n")
    return folder


def _doctor(path: Path) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(build_cli(), ["doctor", "--json", str(path)])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("builder", ["buildkit", "legacy"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_fix_makes_the_dependency_install_come_from_the_cache(name, builder, docker_engine,
                                                                   toolbox, tmp_path):
    buildkit = builder == "buildkit"
    context = _context(name, tmp_path / "ctx")
    dockerfile = context / "Dockerfile"
    original = dockerfile.read_text()
    for stage in parse(original).stages:
        base = stage.image if ":" in stage.image else stage.image + ":latest"
        assert docker_engine.cli("tag", toolbox, base).returncode == 0
    code, findings = _doctor(dockerfile)
    [finding] = [f for f in findings if f["rule"] == "source-before-deps"]
    assert code == 1
    install = finding["instruction"]
    [copy] = triggers(parse(original), Finding(**{k: finding[k] for k in (
        "rule", "line", "message", "fix", "instruction")}))

    cold, warm = _twice(docker_engine, context, buildkit)
    assert cold.step(install).status == "done"
    assert warm.step(install).status == "done", "the mistake: a source change reinstalls"
    if any(step.status == "cached" for step in warm.steps):  # FROM included
        assert matches(warm.cache_buster, f"{copy.keyword} {copy.rest}")  # the copy busted it
    else:  # the copy is the first step, and the legacy log has no hit to tell warm from cold
        assert not buildkit
        assert warm.cache_buster is None
    if buildkit:
        assert warm.step(install).duration >= INSTALL_SECONDS

    dockerfile.write_text(apply_fix(original, finding["fix"]))
    code, after = _doctor(dockerfile)
    assert "source-before-deps" not in {f["rule"] for f in after}
    fixed_cold, fixed_warm = _twice(docker_engine, context, buildkit)
    assert fixed_cold.step(install).status in ("done", "cached")
    assert fixed_warm.step(install).status == "cached", "the fix: the install is reused"
    print(f"{name} [{builder}]: build after a source change {warm.seconds:.2f}s as written "
          f"(steps run: {warm.executed:.1f}s), {fixed_warm.seconds:.2f}s fixed "
          f"(steps run: {fixed_warm.executed:.1f}s)")
    if buildkit:  # the time the fix saves, as the log tells it (wall clocks are noisy here)
        assert fixed_warm.executed < INSTALL_SECONDS <= warm.executed


def test_doctor_ranks_a_real_dockerfile_by_the_real_builds_an_exporter_counted(
        docker_engine, toolbox, exporter_factory, tmp_path):
    """Three builds of the mistake, each after a source change, ingested by a real exporter:
    doctor --url puts the source copy's busts and the install time on the finding."""
    name = "BlackIQ__amirhossein.info__Dockerfile"
    context = _context(name, tmp_path / "ctx")
    assert docker_engine.cli("tag", toolbox, "node:latest").returncode == 0
    exporter = exporter_factory(exporter_settings([]))
    for round_ in range(3):
        (context / SOURCE_FILE).write_text(f"console.log({round_})\n")
        result = docker_engine.cli("build", "--network=host", "--progress=plain", "-t",
                                   "blackiq:latest", str(context))
        assert result.returncode == 0, result.stderr[-2000:]
        response = httpx.post(exporter.url + "/api/v1/builds", content=result.stderr,
                              params={"image": "blackiq", "exit_code": "0"},
                              headers={"Content-Type": "text/plain"}, timeout=30)
        assert response.status_code == 202, response.text
    result = CliRunner().invoke(build_cli(), ["doctor", str(context / "Dockerfile"),
                                              "--url", exporter.url, "--image", "blackiq"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    first = lines[0]
    assert first.startswith(f"{context / 'Dockerfile'}:4: source-before-deps: "), lines
    cost = lines[1].strip()
    metrics = exporter.scrape()
    labels = {"image": "blackiq", "instruction": "COPY . .", "source": "log"}
    busts = int(metrics.value("cachewatch_docker_build_cache_busters_total", **labels))
    seconds = metrics.value("cachewatch_docker_build_cache_buster_seconds_total", **labels)
    # the first build is cold, unless an earlier test left the base's steps in the cache
    assert busts in (2, 3)
    assert seconds >= busts * INSTALL_SECONDS
    assert cost == (f"cost: moving the dependency install above `COPY . .` (line 3) would "
                    f"have saved up to {duration(seconds)} over {busts} builds since the "
                    f"exporter started counting (it busted the cache in "
                    f"{'all 3 builds' if busts == 3 else f'{busts} of the 3 builds'} of blackiq)")
    assert "ranked by what they cost in 3 builds of blackiq" in result.stderr

"""`cachewatch doctor` as a user runs it (typer's runner, in-process), and its ranking.

The corpus goes through the command: exit codes, the ``PATH:LINE: rule: message`` lines a CI
annotator reads, JSON for tools, usage errors. Ranking reads a real exporter's ``/metrics``
after builds were posted to it, and a real Prometheus (e2e) for a window; the instruction
matcher is checked on the labels each way of counting builds really produces (BuildKit and
legacy logs, both builders' image history, as captured from dockerd 20.10).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cachewatch.cli import build_cli
from cachewatch.sources.docker.buildlog import normalise_instruction
from cachewatch.sources.docker.doctor import analyze, parse
from cachewatch.sources.docker.doctor.cost import (
    Buster,
    History,
    cost_of,
    describe,
    duration,
    matches,
    rank,
    triggers,
)
from cachewatch.sources.docker.doctor.history import parse_exposition
from cachewatch.sources.docker.history import instruction as history_instruction

from support import FIXTURES, Exporter, free_port, wait_until
from support import settings as exporter_settings

CORPUS = FIXTURES / "dockerfiles"
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
CLI = build_cli()
FINDING_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+): (?P<rule>[a-z-]+): \S.*$")
MISTAKE = "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\n"


def doctor(*args: str, stdin: str | None = None):
    return CliRunner().invoke(CLI, ["doctor", *args], input=stdin)


def _project(tmp_path: Path, dockerfile: str = MISTAKE, ignore: str | None = ".git\n") -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    if ignore is not None:
        (folder / ".dockerignore").write_text(ignore)
    return folder


# --- the corpus through the command ------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_dockerfile_gives_the_reviewers_findings_as_path_line_lines(name, tmp_path):
    entry = EXPECTED[name]
    folder = tmp_path / "repo"
    shutil.copytree(CORPUS / name, folder)
    if entry["context_is_repo_root"]:
        (folder / ".git").mkdir()  # the CLI looks for it, as in a checkout
    path = str(folder / "Dockerfile")
    result = doctor(path)
    expected = {(f["rule"], f["line"]) for f in entry["findings"]}
    assert result.exit_code == (1 if expected else 0), result.output
    found = set()
    for line in result.stdout.splitlines():
        if line.startswith("    "):
            continue  # a fix's diff, under its finding
        match = FINDING_LINE.match(line)
        assert match, line
        assert match["path"] == path
        found.add((match["rule"], int(match["line"])))
    assert found == expected
    if not expected:
        assert result.stdout == ""
        assert "no cache problems found" in result.stderr


def test_json_is_the_analysis_for_tools(tmp_path):
    folder = _project(tmp_path)
    result = doctor("--json", str(folder / "Dockerfile"))
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    findings = analyze(MISTAKE, str(folder / "Dockerfile"), ".git\n", vcs_in_context=False)
    assert [(r["rule"], r["line"], r["fix"]) for r in rows] == [
        (f.rule, f.line, f.fix) for f in findings]
    assert {r["rule"] for r in rows} == {"source-before-deps", "package-cache-kept"}
    assert all("cost" not in r for r in rows)  # no history asked for


def test_a_folder_stdin_and_the_default_path(tmp_path, monkeypatch):
    folder = _project(tmp_path)
    by_folder = doctor(str(folder))
    assert by_folder.exit_code == 1
    assert by_folder.stdout.startswith(f"{folder / 'Dockerfile'}:4: ")
    monkeypatch.chdir(folder)
    assert doctor().stdout.startswith("Dockerfile:4: ")
    piped = doctor("-", stdin=MISTAKE)
    assert piped.exit_code == 1
    assert piped.stdout.startswith("-:4: ")
    clean = "FROM python:3.12-slim\nCOPY requirements.txt .\nRUN pip install --no-cache-dir " \
            "-r requirements.txt\nCOPY . .\n"
    assert doctor("-", stdin=clean).exit_code == 0


def test_the_context_decides_the_ignore_file_and_the_vcs_check(tmp_path):
    folder = _project(tmp_path, ignore="node_modules\n")
    assert "dockerignore-leaks" not in doctor(str(folder / "Dockerfile")).stdout  # no .git
    (folder / ".git").mkdir()
    leaks = doctor(str(folder / "Dockerfile")).stdout
    assert f"{folder / 'Dockerfile'}:3: dockerignore-leaks: " in leaks
    other = tmp_path / "context"
    other.mkdir()
    missing = doctor(str(folder / "Dockerfile"), "--context", str(other)).stdout
    assert f"{folder / 'Dockerfile'}:3: dockerignore-missing: " in missing


@pytest.mark.parametrize(("args", "message"), [
    (["nope/Dockerfile"], "no Dockerfile at nope/Dockerfile: give its path"),
    (["--context", "nope"], "--context 'nope' is not a folder"),
    (["--url", "http://a", "--prometheus", "http://b"], "give --url"),
    (["--prometheus", "http://b", "--window", "a week"], "is not a Prometheus duration"),
])
def test_usage_errors_exit_2_with_one_line_naming_the_fix(args, message, tmp_path,
                                                         monkeypatch):
    monkeypatch.chdir(_project(tmp_path))
    result = doctor(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("cachewatch: ")
    assert message in result.stderr


# --- matching exported cache-buster labels to Dockerfile lines ---------------------------------

def _engine(created_by: str) -> str:
    """The label the engine-history source exports for a ``CreatedBy`` entry."""
    found = history_instruction(created_by)
    assert found is not None
    return normalise_instruction(found)


LONG = "RUN apt-get update && apt-get install -y --no-install-recommends " + " ".join(
    f"package-number-{n}" for n in range(20))
MATCHES = [
    # BuildKit and legacy logs print the instruction as written, continuations joined
    ("RUN apt-get update &&     apt-get install -y x", "RUN apt-get update && \\\n"
                                                       "    apt-get install -y x", True),
    ("COPY . /app", "COPY . /app", True),
    ("COPY . /app", "ADD . /app", False),
    ("COPY --from=build /out /out", "COPY /out /out", False),
    ("RUN --mount=type=cache,target=/root/.npm npm ci", "RUN npm ci", True),
    ('RUN ["/bin/busybox","sh","-c","echo x"]', 'RUN ["/bin/busybox","sh","-c","echo x"]', True),
    # BuildKit's image history (dockerd 20.10): shell prefix, build args, exec form spelled out
    (_engine("RUN |1 VER=1.2 /bin/sh -c npm install && echo $VER # buildkit"),
     "RUN --mount=type=cache,target=/root/.npm npm install && echo $VER", True),
    (_engine("RUN |1 VER=1.2 /bin/sh -c echo hi # buildkit"), 'RUN ["/bin/sh","-c","echo hi"]',
     True),
    (_engine("COPY . . # buildkit"), "COPY . .", True),
    (_engine("COPY . . # buildkit"), "COPY package.json ./", False),
    # the legacy builder's history: content hashes instead of sources, matched on destination
    (_engine("/bin/sh -c #(nop) COPY dir:1a389fc6a5b7fbf7717c1c9109b65441894d2cd86065d521678187"
             "c356d589ee in . "), "COPY . .", True),
    (_engine("/bin/sh -c #(nop) COPY dir:1a389fc6a5b7fbf7717c1c9109b65441894d2cd86065d521678187"
             "c356d589ee in . "), "COPY package.json ./", False),
    (_engine("/bin/sh -c #(nop) COPY file:09e9ea3ad0c0e802816dd739c8a33e99e7e4d329df6192a81e6a87"
             "0a95337e4b in ./ "), "COPY package.json ./", True),
    (_engine("/bin/sh -c #(nop) COPY file:09e9ea3ad0c0e802816dd739c8a33e99e7e4d329df6192a81e6a87"
             "0a95337e4b in ./ "), "COPY package.json package-lock.json ./", False),
    (_engine("|1 VER=1.2 /bin/sh -c npm install && echo $VER"), "RUN npm install && echo $VER",
     True),
    # labels are cut at 100 characters: the beginning must match
    (normalise_instruction(LONG), LONG, True),
    (normalise_instruction(LONG), LONG.replace("update", "upgrade"), False),
]


@pytest.mark.parametrize(("label", "instruction", "expected"), MATCHES)
def test_labels_match_the_instruction_they_came_from(label, instruction, expected):
    [ins] = parse(f"FROM x:1\n{instruction}\n").stages[0].instructions
    assert matches(label, f"{ins.keyword} {ins.rest}") is expected


def _finding(text: str, rule: str):
    return next(f for f in analyze(text, "Dockerfile", ".git\n") if f.rule == rule)


def test_each_finding_is_charged_to_the_step_that_misses():
    df_text = ("FROM python:latest\nARG BUILD_DATE\nRUN apt-get update && apt-get install -y "
               "--no-install-recommends gcc && rm -rf /var/lib/apt/lists/*\nWORKDIR /app\n"
               "COPY . .\nRUN pip install --no-cache-dir -r requirements.txt\n")
    df = parse(df_text)
    [copy] = triggers(df, _finding(df_text, "source-before-deps"))
    assert copy.display() == "COPY . ."
    [run] = triggers(df, _finding(df_text, "volatile-arg-early"))
    assert run.start_line == 3
    [first] = triggers(df, _finding(df_text, "latest-tag"))
    assert first.start_line == 3  # a moved base image busts the first step
    copy_first = "FROM node:latest\nCOPY . .\nRUN npm ci\n"
    assert triggers(parse(copy_first), _finding(copy_first, "latest-tag")) == []
    apt = "FROM debian:12\nRUN apt-get update\nRUN echo hi\nRUN apt-get install -y gcc\n"
    assert [i.start_line for i in triggers(parse(apt), _finding(apt, "apt-update-separate"))] \
        == [2, 4]  # the install is what misses when its package list changes
    history = History("app", 9, (Buster("RUN apt-get install -y gcc", 2, 95.0),), "in the last 7d")
    cost = cost_of(parse(apt), _finding(apt, "apt-update-separate"), history)
    assert (cost.trigger_line, cost.busts, cost.seconds) == (4, 2, 95.0)


def test_variables_are_matched_as_buildkit_prints_them():
    text = "FROM python:3.12\nARG REQS=requirements.txt\nCOPY . .\nRUN pip install -r $REQS\n"
    finding = _finding(text, "package-cache-kept")
    history = History("app", 4, (Buster("RUN pip install -r requirements.txt", 3, 90.0),),
                      "in the last 7d")
    cost = cost_of(parse(text), finding, history)
    assert (cost.busts, cost.seconds) == (3, 90.0)


def test_findings_are_ranked_by_time_lost_and_said_in_a_sentence():
    text = "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm install\n"
    df = parse(text)
    findings = analyze(text, "Dockerfile", ".git\nnode_modules\n")
    assert [f.rule for f in findings] == ["package-cache-kept", "source-before-deps"]
    history = History("shop", 70, (Buster("COPY . .", 63, 2460.0),
                                   Buster("RUN npm install", 2, 30.0)), "in the last 7d")
    ranked = rank(findings, df, history)
    assert [(f.rule, c.busts, c.seconds) for f, c in ranked] == [
        ("source-before-deps", 63, 2460.0), ("package-cache-kept", 2, 30.0)]
    assert describe(*ranked[0], history) == (
        "cost: moving the dependency install above `COPY . .` (line 3) would have saved up to "
        "41 min over 63 builds in the last 7d (it busted the cache in 63 of the 70 builds of "
        "shop)")
    assert describe(*ranked[1], history) == (
        "cost: `RUN npm install` (line 4) busted the cache in 2 of the 70 builds of shop in the "
        "last 7d; re-running the steps after it took 30 s")
    quiet = History("shop", 5, (), "in the last 7d")
    assert describe(ranked[0][0], cost_of(df, ranked[0][0], quiet), quiet) == (
        "cost: none of the 5 builds of shop in the last 7d was busted at `COPY . .` (line 3)")
    alone = History("shop", 1, (), "in the last 7d")
    assert describe(ranked[0][0], cost_of(df, ranked[0][0], alone), alone) == (
        "cost: the only build of shop in the last 7d was not busted at `COPY . .` (line 3)")
    every = History("shop", 3, (Buster("COPY . .", 3, 120.0),), "in the last 7d")
    assert describe(ranked[0][0], cost_of(df, ranked[0][0], every), every) == (
        "cost: moving the dependency install above `COPY . .` (line 3) would have saved up to "
        "2 min over 3 builds in the last 7d (it busted the cache in all 3 builds of shop)")
    once = History("shop", 1, (Buster("RUN npm install", 1, 30.0),), "in the last 7d")
    assert describe(ranked[1][0], cost_of(df, ranked[1][0], once), once) == (
        "cost: `RUN npm install` (line 4) busted the cache in the only build of shop in the "
        "last 7d; re-running the steps after it took 30 s")
    engine = History("shop", 9, (Buster("COPY . .", 4, None),), "in the last 7d", timed=False)
    assert describe(ranked[0][0], cost_of(df, ranked[0][0], engine), engine).endswith(
        "busted the cache in 4 of the 9 builds of shop in the last 7d (the engine's history "
        "has no step times)")


@pytest.mark.parametrize(("seconds", "said"), [(0.4, "0 s"), (38, "38 s"), (60, "1 min"),
                                                (2460, "41 min"), (9000, "2.5 h")])
def test_durations_read_as_a_person_says_them(seconds, said):
    assert duration(seconds) == said


# --- ranking from a running exporter -----------------------------------------------------------

@pytest.fixture(scope="module")
def counted():
    """A real exporter that counted builds of two images (summaries, as ingest-build sends)."""
    exporter = Exporter(exporter_settings([], **{"redis.enabled": False})).start()

    def build(image: str, buster: str | None, rebuild: float) -> None:
        summary = {"status": "success", "duration_seconds": rebuild + 3, "lookups": 4,
                   "hits": 2 if buster else 4, "misses": 2 if buster else 0,
                   "rebuild_seconds": rebuild, "cache_buster": buster}
        httpx.post(exporter.url + "/api/v1/builds", json={"image": image, "summary": summary},
                   timeout=10).raise_for_status()

    for _ in range(3):
        build("shop", "COPY . .", 820.0)
    build("shop", 'RUN pip install -r "requirements.txt"', 12.5)  # a label with quotes
    build("shop", None, 0.0)
    build("web", "COPY . .", 5.0)
    yield exporter
    exporter.stop()


def test_url_ranks_by_what_the_exporter_counted(counted, tmp_path):
    folder = _project(tmp_path, MISTAKE.replace("-r requirements.txt", '-r "requirements.txt"'))
    result = doctor(str(folder / "Dockerfile"), "--url", counted.url)  # image: the folder
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if not line.startswith("    ---")]
    path = folder / "Dockerfile"
    assert lines[0].startswith(f"{path}:4: source-before-deps: ")
    assert lines[1] == ("    cost: moving the dependency install above `COPY . .` (line 3) "
                        "would have saved up to 41 min over 3 builds since the exporter "
                        "started counting (it busted the cache in 3 of the 5 builds of shop)")
    cache = lines.index(next(line for line in lines if ": package-cache-kept: " in line))
    assert lines[cache + 1] == ('    cost: `RUN pip install -r "requirements.txt"` (line 4) '
                                "busted the cache in 1 of the 5 builds of shop since the "
                                "exporter started counting; re-running the steps after it "
                                "took 12 s")
    assert result.stderr == ("cachewatch: 2 findings ranked by what they cost in 5 builds of "
                             "shop since the exporter started counting\n")
    rows = json.loads(doctor(str(path), "--url", counted.url, "--json").stdout)
    assert [(r["rule"], r["cost"]["busts"], r["cost"]["seconds"]) for r in rows] == [
        ("source-before-deps", 3, 2460.0), ("package-cache-kept", 1, 12.5)]
    assert rows[0]["cost"]["instructions"] == ["COPY . ."]
    assert rows[0]["cost"]["builds"] == 5


def test_the_image_is_named_with_image_and_unknown_ones_are_a_warning(counted, tmp_path):
    path = _project(tmp_path) / "Dockerfile"
    web = doctor(str(path), "--url", counted.url, "--image", "web")
    assert web.stdout.splitlines()[1] == (
        "    cost: moving the dependency install above `COPY . .` (line 3) would have saved up "
        "to 5 s over 1 build since the exporter started counting (it busted the cache in the "
        "only build of web)")
    assert web.stderr == ("cachewatch: 2 findings ranked by what they cost in 1 build of web "
                          "since the exporter started counting\n")
    unknown = doctor(str(path), "--url", counted.url, "--image", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr == ("cachewatch: warning: no builds of nope since the exporter started "
                              "counting (there are builds of shop, web: pass --image); findings "
                              "are not ranked\n")
    assert "cost:" not in unknown.stdout


def test_an_unreachable_history_is_one_warning_and_keeps_the_exit_code(tmp_path):
    path = _project(tmp_path) / "Dockerfile"
    plain = doctor(str(path))
    for flag in ("--url", "--prometheus"):
        result = doctor(str(path), flag, f"http://127.0.0.1:{free_port()}")
        assert result.exit_code == plain.exit_code == 1
        assert result.stdout == plain.stdout
        [warning] = result.stderr.splitlines()
        assert warning.startswith("cachewatch: warning: cannot reach ")
        assert warning.endswith("Connection refused; findings are not ranked")
    rows = json.loads(doctor(str(path), "--json", "--url", f"http://127.0.0.1:{free_port()}")
                      .stdout)
    assert all(row["cost"] is None for row in rows)


def test_the_exposition_reader_agrees_with_prometheus_client(counted):
    text = httpx.get(counted.url + "/metrics", timeout=10).text
    names = ("cachewatch_docker_build_cache_busters_total", "cachewatch_docker_builds_total")
    ours = sorted((name, sorted(labels.items()), value)
                  for name, labels, value in parse_exposition(text, names))
    theirs = sorted((s.name, sorted(s.labels.items()), s.value)
                    for family in text_string_to_metric_families(text)
                    for s in family.samples if s.name in names)
    assert ours == theirs
    assert any('"requirements.txt"' in dict(labels)["instruction"]
               for name, labels, _ in ours if name == names[0])


# --- ranking over a window, from a real Prometheus ------------------------------------------------

def test_prometheus_ranks_over_the_window(prometheus_factory, tmp_path):
    exporter = Exporter(exporter_settings([], **{"redis.enabled": False})).start()
    try:
        prometheus = prometheus_factory([exporter.url.removeprefix("http://")])
        wait_until(lambda: prometheus.scalar('up{job="cachewatch"}') == 1, timeout=30)
        summary = {"status": "success", "duration_seconds": 70, "lookups": 4, "hits": 2,
                   "misses": 2, "rebuild_seconds": 60.0, "cache_buster": "COPY . ."}
        for round_ in range(4):
            httpx.post(exporter.url + "/api/v1/builds", json={"image": "shop", "summary": summary},
                       timeout=10).raise_for_status()
            if round_ == 0:  # the series exist: increase() counts from here on
                wait_until(lambda: prometheus.scalar(
                    "cachewatch_docker_build_cache_busters_total") == 1, timeout=30)
        query = 'sum(increase(cachewatch_docker_build_cache_busters_total{image="shop"}[5m]))'
        wait_until(lambda: (prometheus.scalar(query) or 0) >= 3, timeout=30)
        path = _project(tmp_path) / "Dockerfile"
        result = doctor(str(path), "--prometheus", prometheus.url, "--window", "5m", "--json")
        assert result.exit_code == 1
        [row] = [r for r in json.loads(result.stdout) if r["rule"] == "source-before-deps"]
        # increase() extrapolates, the same way for both counters: 60 s for each bust
        assert 3 <= row["cost"]["busts"] <= 5
        assert row["cost"]["seconds"] / 60 == pytest.approx(row["cost"]["busts"], abs=0.5)
        assert row["cost"]["window"] == "in the last 5m"
        assert row["cost"]["instructions"] == ["COPY . ."]
    finally:
        exporter.stop()

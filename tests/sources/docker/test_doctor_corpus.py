"""`cachewatch doctor` on real Dockerfiles from public projects.

``tests/fixtures/dockerfiles/expected.json`` holds what a reviewer reports for each file,
written by reading the file first; here the analyzer must find exactly that, every fix must be
a real edit of the file, and a source-before-deps fix must leave the dependency install before
the source copy.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cachewatch.sources.docker.doctor import RULES, analyze, apply_fix, parse

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "dockerfiles"
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def read(path: Path) -> str:
    """File text with its own line endings (the corpus has a CRLF file on purpose)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def run(name: str, dockerfile: str | None = None, ignore: str | None = None):
    entry = EXPECTED[name]
    folder = CORPUS / name
    text = read(folder / "Dockerfile") if dockerfile is None else dockerfile
    if ignore is None and (folder / ".dockerignore").exists():
        ignore = read(folder / ".dockerignore")
    return analyze(text, "Dockerfile", ignore,
                   vcs_in_context=entry["context_is_repo_root"],
                   check_dockerignore=entry["dockerignore"] != "unknown")


def test_the_corpus_is_big_and_varied_enough():
    assert len(EXPECTED) >= 80
    assert {p.name for p in CORPUS.iterdir() if p.is_dir()} == set(EXPECTED)
    expected_rules = Counter(f["rule"] for e in EXPECTED.values() for f in e["findings"])
    assert set(expected_rules) == set(RULES)
    # every rule is backed by at least three real files that show it
    files_per_rule = Counter(rule for entry in EXPECTED.values()
                             for rule in {f["rule"] for f in entry["findings"]})
    assert min(files_per_rule.values()) >= 3, files_per_rule
    clean = [n for n, e in EXPECTED.items()
             if not any(f["rule"] == "source-before-deps" for f in e["findings"])]
    assert len(clean) >= 8
    assert sum(1 for e in EXPECTED.values() if not e["findings"]) >= 8


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_metadata(name):
    entry = EXPECTED[name]
    assert re.fullmatch(r"https://github\.com/[^/]+/[^/]+/blob/[0-9a-f]{40}/\S+", entry["source"])
    owner, repo = entry["source"].split("/")[3:5]
    assert name.startswith(f"{owner}__{repo}__")
    has_ignore = (CORPUS / name / ".dockerignore").exists()
    assert entry["dockerignore"] in ("present", "absent", "unknown")
    assert has_ignore == (entry["dockerignore"] == "present")
    assert entry["notes"].strip()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_match_the_reviewers(name):
    found = {(f.rule, f.line) for f in run(name)}
    expected = {(f["rule"], f["line"]) for f in EXPECTED[name]["findings"]}
    assert found == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fix_applies_and_removes_its_finding(name):
    folder = CORPUS / name
    text = read(folder / "Dockerfile")
    ignore = read(folder / ".dockerignore") if (folder / ".dockerignore").exists() else None
    findings = run(name)
    before = Counter(f.rule for f in findings)
    for finding in findings:
        if finding.fix is None:
            continue
        if "+++ b/.dockerignore" in finding.fix:
            after = run(name, ignore=apply_fix(ignore or "", finding.fix))
        else:
            after = run(name, dockerfile=apply_fix(text, finding.fix))
        counts = Counter(f.rule for f in after)
        assert counts[finding.rule] < before[finding.rule], finding
        assert all(counts[r] <= before[r] for r in counts), (finding.rule, counts - before)


SOURCE_FIXES = [n for n, e in sorted(EXPECTED.items())
                if any(f["rule"] == "source-before-deps" for f in e["findings"])]


@pytest.mark.parametrize("name", SOURCE_FIXES)
def test_source_before_deps_fix_puts_installs_before_the_source_copy(name):
    text = read(CORPUS / name / "Dockerfile")
    df = parse(text)
    for finding in (f for f in run(name) if f.rule == "source-before-deps"):
        assert finding.fix is not None
        install = next(i for i in df.instructions if i.start_line == finding.line)
        copy_line = int(re.search(r"\(line (\d+)\)", finding.message).group(1))
        broad = next(i for i in df.instructions if i.start_line == copy_line)
        fixed = parse(apply_fix(text, finding.fix))
        copies = [n for n, i in enumerate(fixed.instructions)
                  if i.keyword == broad.keyword and not i.has_flag("from")
                  and i.words()[:-1] == broad.words()[:-1]]
        assert copies, "the source copy must survive the fix"
        # a split RUN leaves its dependency prefix above the copy and the whole RUN below it
        hoisted = [n for n, i in enumerate(fixed.instructions)
                   if i.keyword == "RUN" and install.display().startswith(i.display())]
        assert hoisted[0] < copies[0]
        assert not [f for f in run(name, dockerfile=apply_fix(text, finding.fix))
                    if f.rule == "source-before-deps"]

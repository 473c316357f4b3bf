"""The docs' snippets, pasted as they are: the instrumentation one (Application caches) runs,
the bundle one's thresholds (Alerts and runbooks) are accepted without a warning (a P99 threshold
off the bucket edges is one)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from cachewatch.fields import parse_duration
from cachewatch.metrics import contract

from support import ROOT

DOCS = ROOT / "docs"


def _blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.S)


def test_the_instrumentation_snippet_runs_as_pasted(tmp_path):
    snippet = next(b for b in _blocks("sources/app-caches.md", "python")
                   if "instrument_cachetools(" in b)
    # nothing listens there: the pusher logs and goes on, the snippet itself must not fail
    script = snippet.replace("http://cachewatch:10150", "http://127.0.0.1:9") + \
        "\nload_user(1); load_user(1)\nsessions['a'] = 1\n" \
        "print(sorted(c.name for c in caches.collect()))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "cachewatch_cache_lookups" in run.stdout


def test_the_bundle_example_sets_its_p99_on_a_bucket_edge():
    line = next(line for b in _blocks("alerts.md", "sh") for line in b.splitlines()
                if line.startswith("cachewatch bundle") and "--p99" in line)
    words = shlex.split(line)
    p99 = parse_duration(words[words.index("--p99") + 1])
    assert p99 in contract.LATENCY_BUCKETS, f"{p99} s is not a bucket edge"

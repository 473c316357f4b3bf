"""``scripts/venv.sh`` (what ``make run`` and ``make test`` start with) says what it is doing
while pip installs, and fails when pip fails: run against a stand-in ``python`` that prints
what pip prints, so no network and no real install is needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support import ROOT

PIP_OUTPUT = """Obtaining file:///src
  Installing build dependencies: started
Collecting fastapi>=0.110
  Downloading fastapi-0.115.0-py3-none-any.whl (94 kB)
Collecting uvicorn>=0.29
Requirement already satisfied: typing-extensions in ./.venv/lib
Successfully installed cachewatch-0.1.0 fastapi-0.115.0 uvicorn-0.30.0
"""


def _checkout(tmp_path: Path, pip_exit: int) -> Path:
    """The script and pyproject.toml in a folder whose ``.venv/bin/python`` is a stand-in."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv.sh", tmp_path / "scripts" / "venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n"
                      f"cat <<'OUT'\n{PIP_OUTPUT}OUT\nexit {pip_exit}\n")
    python.chmod(0o755)
    return tmp_path


def test_the_install_says_each_package_and_the_end(tmp_path):
    root = _checkout(tmp_path, 0)
    done = subprocess.run(["bash", "scripts/venv.sh", "test"], cwd=root, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "venv: installing cachewatch[test] and its dependencies into .venv (once; pip's "
        "progress follows)",
        "venv:   collecting fastapi>=0.110",
        "venv:   collecting uvicorn>=0.29",
        "venv: Successfully installed cachewatch-0.1.0 fastapi-0.115.0 uvicorn-0.30.0",
        "venv: ready",
    ]
    assert "-e .[test]" in (root / ".venv" / "bin" / "args").read_text()
    again = subprocess.run(["bash", "scripts/venv.sh", "test"], cwd=root, capture_output=True,
                           text=True, timeout=30)
    assert (again.returncode, again.stderr) == (0, "")  # installed: nothing to say


def test_a_failed_install_fails_the_script_and_leaves_no_stamp(tmp_path):
    root = _checkout(tmp_path, 1)
    done = subprocess.run(["bash", "scripts/venv.sh"], cwd=root, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "venv: ready" not in done.stderr
    assert "venv: pip failed; the end of its output (all of it in .venv/pip.log):" in done.stderr
    assert "venv: |   Installing build dependencies: started" in done.stderr  # pip's own lines
    assert not (root / ".venv" / ".installed").exists()

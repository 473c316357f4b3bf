#!/usr/bin/env bash
# Creates .venv (once) and installs cachewatch into it, editable, with the extras given ($1).
# Says what it does: a first install takes a while, and silence reads as a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "venv: cachewatch needs Python 3.11+; set PYTHON=/path/to/python3.11" >&2; exit 1; }
  echo "venv: creating .venv with $("$python" --version 2>&1)" >&2
  "$python" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "venv: installing cachewatch${extras:+[$extras]} and its dependencies into .venv" \
       "(once; pip's progress follows)" >&2
  # pip's own lines, one per package, instead of -q's silence; the summary ends it. The whole
  # output goes to .venv/pip.log, whose end is shown when pip fails.
  if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
      -e ".${extras:+[$extras]}" 2>&1 | tee .venv/pip.log \
    | { grep --line-buffered -E '^(Collecting|Successfully installed|ERROR|WARNING)' || true; } \
    | sed -u -e 's/^Collecting /  collecting /' -e 's/^/venv: /' >&2; then
    echo "venv: pip failed; the end of its output (all of it in .venv/pip.log):" >&2
    tail -n 30 .venv/pip.log | sed 's/^/venv: | /' >&2
    exit 1
  fi
  touch "$stamp"
  echo "venv: ready" >&2
fi

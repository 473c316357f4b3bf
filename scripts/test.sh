#!/usr/bin/env bash
# The whole test suite on a fresh machine: real services, Python deps, lint, then pytest.
# Extra arguments go to pytest (for example: scripts/test.sh -k redis -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-services.sh
scripts/venv.sh test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

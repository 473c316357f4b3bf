#!/usr/bin/env bash
# The whole test suite on a fresh machine: real services, Python deps, lint, then pytest.
# Extra arguments go to pytest (for example: scripts/test.sh -k redis -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-services.sh
# A real buildkitd (v0.11.6, the build history API) built from the source beside the repository,
# once (cached). Under CI a failure stops the run here; elsewhere the buildkit tests report it.
if [ -f ../shared/buildkit/build.sh ]; then
  bash ../shared/buildkit/build.sh >/dev/null || [ "${CI:-}" != "true" ]
elif [ "${CI:-}" = "true" ]; then
  echo "test: ../shared/buildkit/build.sh not found (the BuildKit source for the buildkit tests)" >&2
  exit 1
fi
scripts/venv.sh test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

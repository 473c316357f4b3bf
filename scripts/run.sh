#!/usr/bin/env bash
# Runs the exporter with working defaults (serves :10150, reads redis://127.0.0.1:6379).
# Extra arguments go to `cachewatch serve` (see `cachewatch serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
exec .venv/bin/cachewatch serve "$@"

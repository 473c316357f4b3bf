#!/usr/bin/env bash
# Runs deploy/compose.yaml with whichever Compose the machine has: `docker compose` (v2, the
# Docker CLI plugin) or the older standalone `docker-compose` (v1). Arguments go to compose,
# e.g. scripts/compose.sh up --build, scripts/compose.sh down.
set -euo pipefail
cd "$(dirname "$0")/.."
file=deploy/compose.yaml
if docker compose version >/dev/null 2>&1; then
  exec docker compose -f "$file" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -f "$file" "$@"
fi
echo "compose: neither 'docker compose' (Compose v2) nor 'docker-compose' (v1) is installed;" \
     "install one (Debian: apt-get install docker-compose)" >&2
exit 1

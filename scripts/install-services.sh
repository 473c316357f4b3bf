#!/usr/bin/env bash
# Installs the real services the test suite runs against, from Debian's packages, when missing.
# Tests start their own instances on loopback ports; nothing here starts a system-wide service.
set -euo pipefail

# command on PATH -> Debian package that provides it
declare -A NEEDED=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools  # creates the Redis Cluster of the cluster tests
  [promtool]=prometheus
  [dockerd]=docker.io
  [busybox]=busybox-static
  [memcached]=memcached  # the Memcached source's real-service tests
  [docker-registry]=docker-registry
  [amtool]=prometheus-alertmanager
  [debootstrap]=debootstrap
  [docker-compose]=docker-compose
  [kubectl]=kubernetes-client  # `kubectl kustomize` renders deploy/kubernetes/
  [chromium]=chromium  # the status page and /docs in a real browser (Playwright drives it)
  [wrk]=wrk  # make bench: the load generator of benchmarks/scrape_redis.py
  [prometheus-redis-exporter]=prometheus-redis-exporter  # make bench: the peer it compares with
  [go]=golang-go  # builds the BuildKit daemon the buildkit collector is tested against
  [runc]=runc  # ... which runs its build steps with it
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-services: missing ${missing[*]}; install them with your package manager" \
       "(Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  # Tests skip what is missing locally; under CI=true that is a failure, said here first.
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi

echo "install-services: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Try the container packaging end to end where Docker (with the compose plugin) runs:
# build the image, start PostgreSQL, Redis, the migration and the server, wait until the
# server is ready, check its version and health, run the retention job, and tear it all
# down (volumes included). Run from anywhere: bash deploy/check-docker.sh
set -euo pipefail
cd "$(dirname "$0")"

if ! docker info >/dev/null 2>&1; then
  echo "check-docker: no Docker daemon here; nothing checked" >&2
  exit 2
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "check-docker: neither 'docker compose' nor docker-compose is installed" >&2
  exit 2
fi

project="baat-check-$$"
export BAAT_DB_PASSWORD="check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
dc() { "${compose[@]}" -p "$project" -f compose.yaml "$@"; }
cleanup() { dc --profile jobs down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

want=$(sed -n 's/^version = "\(.*\)"/\1/p' ../pyproject.toml)
echo "check-docker: building baat $want"
dc build
dc up -d

echo "check-docker: waiting for /readyz"
ready=""
for _ in $(seq 1 90); do
  if ready=$(curl -fsS http://127.0.0.1:8780/readyz 2>/dev/null); then
    break
  fi
  sleep 2
done
if [ -z "$ready" ]; then
  echo "check-docker: the server never became ready" >&2
  dc logs --no-color >&2 || true
  exit 1
fi
echo "  readyz:  $ready"
health=$(curl -fsS http://127.0.0.1:8780/healthz)
echo "  healthz: $health"
curl -fsS http://127.0.0.1:8780/livez >/dev/null
case "$health" in
  *"\"version\":\"$want\""*) ;;
  *) echo "check-docker: /healthz does not report version $want" >&2; exit 1 ;;
esac
got=$(dc exec -T baat baat --version)
[ "$got" = "baat, version $want" ] || { echo "check-docker: baat --version said: $got" >&2; exit 1; }
dc run --rm migrate admin migrate --dry-run | grep -q "up to date"
dc --profile jobs run --rm retention
echo "check-docker: ok (image, compose, migrate, serve, health, retention)"

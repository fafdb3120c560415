#!/usr/bin/env bash
# `make run`: a Baat server on SQLite under ./var/server and the web app for ./var/alice.
# Ctrl-C stops both; nothing is lost (the server flushes on SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-./var}
PORT=${PORT:-8780}
APP_PORT=${APP_PORT:-8781}
mkdir -p "$DATA"

"$BIN/baat" serve --data "$DATA/server" --port "$PORT" --region "${REGION:-in}" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 100); do
  if "$BIN/python" -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/healthz').status_code!=200)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

echo "A second person on this machine: $BIN/baat app --profile $DATA/bob --port $((APP_PORT + 1))"
"$BIN/baat" app --profile "$DATA/alice" --port "$APP_PORT" --server "http://127.0.0.1:$PORT"

#!/usr/bin/env bash
# End-to-end test of the WebRSF browser client: a real headless Chromium drives
# src/webrsf/web (served by the gateway of 'rcslab up') for bob and carol.
# Usage: bash scripts/test-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${WEBRSF_URL:-http://127.0.0.1:8080}"

bash scripts/install-browser.sh
cargo build --quiet

data=$(mktemp -d)
log=$(mktemp)
lab=""
cleanup() {
  status=$?
  if [ -n "$lab" ] && kill -0 "$lab" 2>/dev/null; then
    kill "$lab" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$lab" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$lab" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "test-browser: FAILED; last lines of the lab log ($log):" >&2
    tail -n 60 "$log" >&2 || true
  else
    rm -rf "$data" "$log"
  fi
  exit "$status"
}
trap cleanup EXIT

if curl -sf -o /dev/null "$URL/"; then
  echo "test-browser: something already answers on $URL; stop it first" >&2
  exit 1
fi

target/debug/rcslab up --data-dir "$data" >"$log" 2>&1 &
lab=$!

ready=""
for _ in $(seq 150); do
  if curl -sf -o /dev/null "$URL/"; then ready=1; break; fi
  if ! kill -0 "$lab" 2>/dev/null; then echo "test-browser: rcslab up exited early" >&2; exit 1; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "test-browser: $URL did not answer within 30 s" >&2; exit 1; }

WEBRSF_URL="$URL" node tests/browser/chat.mjs

#!/usr/bin/env bash
# End-to-end test of SIP over WebSocket (RFC 7118) with JsSIP itself: two JsSIP pages in a
# real headless Chromium register at the P-CSCF of 'rcslab up' (ws://127.0.0.1:5066) and
# exchange MESSAGE, also with an rcslab UE (tests/browser/jssip.mjs).
# Usage: bash scripts/test-jssip.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WS="${SIP_WS_URL:-ws://127.0.0.1:5066}"
PCSCF_WS="${WS#ws://}"

bash scripts/install-browser.sh
# jssip is pinned in tests/browser/package.json beside playwright-core.
want=$(node -p "require('./tests/browser/package.json').dependencies.jssip")
have=$(node -p "try { require('./tests/browser/node_modules/jssip/package.json').version } catch (e) { '' }")
if [ "$have" != "$want" ]; then
  echo "test-jssip: installing jssip $want" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
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
    echo "test-jssip: FAILED; last lines of the lab log ($log):" >&2
    tail -n 80 "$log" >&2 || true
  else
    rm -rf "$data" "$log"
  fi
  exit "$status"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/${PCSCF_WS%:*}/${PCSCF_WS##*:}") 2>/dev/null; then
  echo "test-jssip: something already listens on $PCSCF_WS; stop it first" >&2
  exit 1
fi

target/debug/rcslab up --trace --data-dir "$data" >"$log" 2>&1 &
lab=$!

ready=""
for _ in $(seq 150); do
  if (exec 3<>"/dev/tcp/${PCSCF_WS%:*}/${PCSCF_WS##*:}") 2>/dev/null; then ready=1; break; fi
  if ! kill -0 "$lab" 2>/dev/null; then echo "test-jssip: rcslab up exited early" >&2; exit 1; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "test-jssip: $WS did not accept within 30 s" >&2; exit 1; }

SIP_WS_URL="$WS" node tests/browser/jssip.mjs

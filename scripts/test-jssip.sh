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

LAB_TEST=test-jssip
. scripts/lab-bg.sh
lab_refuse_if_up "tcp_open $PCSCF_WS"
lab_start --trace
lab_wait "tcp_open $PCSCF_WS"

SIP_WS_URL="$WS" node tests/browser/jssip.mjs

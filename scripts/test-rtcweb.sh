#!/usr/bin/env bash
# End-to-end test of the patent's RTCWeb gateway (seed 001) in a real headless Chromium: two
# pages of the gateway's own page (http://127.0.0.1:8082/) call each other through the gateway
# and the IMS core, reach RTCPeerConnection "connected", survive a reload mid-call (figure 7
# Reloading -> InCall) and hang up (tests/browser/rtcweb.mjs).
# Usage: bash scripts/test-rtcweb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${RTCWEB_URL:-http://127.0.0.1:8082}"

bash scripts/install-browser.sh
cargo build --quiet

LAB_TEST=test-rtcweb
. scripts/lab-bg.sh
lab_refuse_if_up "curl -sf -o /dev/null $URL/"
lab_start --trace
lab_wait "curl -sf -o /dev/null $URL/"

RTCWEB_URL="$URL" node tests/browser/rtcweb.mjs

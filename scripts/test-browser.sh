#!/usr/bin/env bash
# End-to-end test of the WebRSF browser client: a real headless Chromium drives
# src/webrsf/web (served by the gateway of 'rcslab up') for bob and carol (chat.mjs), then
# for alice, bob and carol in a group chat (group.mjs), then files between bob's page and
# rcslab UEs (file.mjs).
# Usage: bash scripts/test-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${WEBRSF_URL:-http://127.0.0.1:8080}"

bash scripts/install-browser.sh
cargo build --quiet

LAB_TEST=test-browser
. scripts/lab-bg.sh
lab_refuse_if_up "curl -sf -o /dev/null $URL/"
lab_start
lab_wait "curl -sf -o /dev/null $URL/"

WEBRSF_URL="$URL" node tests/browser/chat.mjs
WEBRSF_URL="$URL" node tests/browser/group.mjs
WEBRSF_URL="$URL" node tests/browser/file.mjs

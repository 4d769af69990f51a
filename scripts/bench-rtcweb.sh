#!/usr/bin/env bash
# The patent's RTCWeb gateway under load (issue 17), signalling only: pages log in (each
# registered to IMS by the gateway) and call rcslab UEs as figure 8 draws it (INVITE with
# 100rel, a reliable 180 -> Ringing, PRANSWER -> PRACK, 200 -> OK, ANSWER -> ACK, then BYE).
# Latency from each call's scheduled OFFER time (no coordinated omission); calls/s set up and
# torn down; the lab's RSS growth per idle page (the pages held by a child process).
# Targets on 2 cores: >= 500 call set-ups/s with PRACK, < 50 KiB per idle connected client.
#
#   scripts/bench-rtcweb.sh   (LOAD_SECONDS=10 by default)
# The lab and the calling pages share one process (and the machine's cores): run it on an
# idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_SECONDS=${LOAD_SECONDS:-10}
cargo build --release --quiet
BIN=target/release/rcslab
status=0
RUST_LOG=warn $BIN bench rtcweb --pages 200 --callees 50 --idle 1000 --rate 250 --seconds "$LOAD_SECONDS" || status=1
RUST_LOG=warn $BIN bench rtcweb --pages 400 --callees 50 --idle 0 --rate 500 --seconds "$LOAD_SECONDS" || status=1
exit $status

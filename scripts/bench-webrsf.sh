#!/usr/bin/env bash
# WebRSF load (issue 5): USERS web users log in (each REGISTERs to IMS through the gateway),
# CHANNELS notification channels are held open by a child process (so the lab's RSS growth is
# the gateway's cost per channel), then PAIRS web users send MESSAGES each to RCS UEs at RATE
# messages/s in total (HTTP -> WebRSF -> SIP/MSRP through P-CSCF, S-CSCF, O-IM, T-IM).
# Prints channels held, RSS per channel, messages/s and p50/p99 web send -> RCS UE receipt.
#
#   USERS=100 CHANNELS=10000 PAIRS=20 MESSAGES=250 RATE=1000 scripts/bench-webrsf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# Both processes hold one socket per channel.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RUST_LOG=warn target/release/rcslab bench webrsf \
  --users "${USERS:-100}" --channels "${CHANNELS:-10000}" \
  --pairs "${PAIRS:-20}" --messages "${MESSAGES:-250}" --rate "${RATE:-1000}"

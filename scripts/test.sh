#!/usr/bin/env bash
# The test command: installs the real peers (sipp, tshark, baresip, linphonec, Kamailio,
# chromium + playwright-core), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
# The peers are installed now: a test that cannot find one fails rather than skips.
export RCSLAB_REQUIRE_PEERS=1
# A failing test's message, not its backtrace, is what ends its output (CI keeps the end).
export RUST_BACKTRACE=0
cargo test --all-targets -- --test-threads=2 --skip store_forward::soak
# Store and forward again on the release build: its races show up at a different speed.
cargo test --release --test e2e store_forward -- --test-threads=2 --skip store_forward::soak
# The store-and-forward soak, debug and release; a failed run prints T-IM's debug log.
RCSLAB_SOAK_LOG=rcslab::im=debug cargo test --test e2e store_forward::soak
RCSLAB_SOAK_LOG=rcslab::im=debug cargo test --release --test e2e store_forward::soak
# The teaching labs: each ladder must match its expected one (rcslab lab check).
RUST_LOG=warn cargo run --quiet -- lab check labs
# The WebRSF browser client in headless Chromium (installs chromium and playwright-core).
bash scripts/test-browser.sh
# JsSIP in headless Chromium over the P-CSCF's SIP WebSocket (RFC 7118; installs jssip).
bash scripts/test-jssip.sh
# The patent's RTCWeb gateway in headless Chromium: two pages call each other through it
# (RTCPeerConnection connected), a reload mid-call keeps the call.
bash scripts/test-rtcweb.sh
# README's walkthrough, every marked block as written (installs rcslab with cargo install).
bash scripts/test-readme.sh
# A short fuzz run of the parser targets (fuzz/, nightly; installs cargo-fuzz if missing):
# 10 s each (an unoptimised build: FUZZ_QUICK), a crash fails the run.
# `bash scripts/fuzz.sh 600` runs them longer by hand.
# sip_rsip_diff is left out until its exclusions settle: it still finds a new rsip 0.4 quirk
# (not a bug of ours) every minute or so of fuzzing; run it with `scripts/fuzz.sh 60 sip_rsip_diff`.
FUZZ_QUICK=1 bash scripts/fuzz.sh 10 cpim diameter fthttp msrp pidf rtcweb_message sdp_bridge sdp_multipart sip_headers sip_message smpp sms user_data webrsf_json

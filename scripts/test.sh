#!/usr/bin/env bash
# The test command: installs the real peers (sipp, tshark, baresip, linphonec, Kamailio,
# chromium + playwright-core), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
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

#!/usr/bin/env bash
# The WebRTC media bridge (issue 17, the eIMS-AGW role): N concurrent calls, each between a
# browser-like WebRTC peer (str0m: ICE, DTLS-SRTP) and a plain RTP phone, all on loopback in
# one process; one 20 ms PCMU packet each way every 20 ms per call. Latency of every packet
# from its scheduled send time (no coordinated omission) to its reading at the other end,
# SRTP decrypted: an upper bound of what the bridge adds (the path also holds both ends'
# sockets and the peer's crypto). Lost packets counted.
# Target on 2 cores: >= 100 concurrent bridged calls with < 20 ms added latency (p99), none
# lost. Exit status 1 when a run misses it.
#
#   scripts/bench-bridge.sh   (LOAD_SECONDS=10 by default)
# The peers, the phones and the bridge share the machine's cores: run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_SECONDS=${LOAD_SECONDS:-10}
cargo build --release --quiet
BIN=target/release/rcslab
status=0
for calls in 100 150; do
  RUST_LOG=warn $BIN bench bridge --calls "$calls" --seconds "$LOAD_SECONDS" || status=1
done
exit $status

#!/usr/bin/env bash
# RCS chat load over the full chain (issue 4): N UE pairs, sessions set up first (figure 1),
# then every pair sends M messages over MSRP (figure 2), each asking for IMDN "delivered".
# Prints messages/s delivered with their IMDN, p50/p99 send -> IMDN at the sender, lost and
# duplicated messages, RSS. Three runs: flat out, paced at 1,000/s, flat out with recording on.
#
#   scripts/bench-chat.sh [PAIRS=50] [MESSAGES=400]
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-50}
MESSAGES=${MESSAGES:-400}
cargo build --release --quiet
BIN=target/release/rcslab
RUST_LOG=warn $BIN bench chat --pairs "$PAIRS" --messages "$MESSAGES"
RUST_LOG=warn $BIN bench chat --pairs 20 --messages 500 --rate 1000
# What the flight recorder costs (rcslab up --trace): the flat-out run with recording on.
RUST_LOG=warn $BIN bench chat --pairs "$PAIRS" --messages "$MESSAGES" --trace

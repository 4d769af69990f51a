#!/usr/bin/env bash
# SMS from an application over SMPP 3.4 to IMS phones (issue 20), the lab in one process:
# USERS phones registered through the P-CSCF, each an SMS client that answers an SMS-DELIVER
# with 200 and its RP-ACK in a MESSAGE of its own (TS 24.341); one ESME of our codec bound as
# a transceiver with WINDOW submit_sm unanswered at most, submitting at each rate of RATES
# (open loop: each message timed from its scheduled send, no coordinated omission) for SECS
# seconds a step, with registered_delivery; the receipts (deliver_sm, stat:DELIVRD) answered.
# Prints per step: offered rate, submit_sm/s accepted, delivered/s, errors, lost (no receipt
# after a bounded drain), duplicates, p50/p99 scheduled submit -> submit_sm_resp and ->
# receipt, and the process's RSS. Targets: >= 2,000 submit_sm/s sustained for 60 s with 0
# errors, p99 submit -> delivery receipt < 100 ms (SECS=60 RATES=2000).
# Exit status 1 when a message was refused, lost or duplicated.
#
#   scripts/bench-sms.sh   (USERS=200 RATES=500,1000,2000,3000 SECS=10 WINDOW=20)
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-200}
RATES=${RATES:-500,1000,2000,3000}
SECS=${SECS:-10}
WINDOW=${WINDOW:-20}
cargo build --release --quiet
RUST_LOG=warn target/release/rcslab bench sms --users "$USERS" --rates "$RATES" \
  --secs "$SECS" --window "$WINDOW"

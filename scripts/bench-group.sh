#!/usr/bin/env bash
# Group chat through the conference focus CONF: G groups of M members, every member an RCS
# client registered through P-CSCF and S-CSCF, each group created by its first member with
# the others (RFC 5366). Messages at a fixed total rate, round-robin over the groups and their
# members; CONF fans each out over MSRP to the other members, whose clients send IMDN
# "delivered" back to the writer. Latency from each message's scheduled send time (no
# coordinated omission) to the last member's receipt; lost and duplicated receipts, lost
# IMDNs; a roster watcher's partial NOTIFY after a member's BYE; RSS.
# Targets on 2 cores: 100 groups x 20 members, >= 1,000 group messages/s (20,000 deliveries/s
# with the IMDNs) with none lost or duplicated; p99 < 200 ms; the participant-list NOTIFY
# within 200 ms of a leave. Exit status 1 when anything was lost or duplicated.
#
#   scripts/bench-group.sh   (CHAT_GROUPS=100 MEMBERS=20 RATE=1000 LOAD_SECONDS=10 by default)
# The lab and the 2,000 clients share one process (and the machine's cores): run it on an
# idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
CHAT_GROUPS=${CHAT_GROUPS:-100}
MEMBERS=${MEMBERS:-20}
RATE=${RATE:-1000}
LOAD_SECONDS=${LOAD_SECONDS:-10}
cargo build --release --quiet
BIN=target/release/rcslab
RUST_LOG=warn $BIN bench group --groups "$CHAT_GROUPS" --members "$MEMBERS" --rate "$RATE" --seconds "$LOAD_SECONDS"

#!/usr/bin/env bash
# Presence through the RLS (issue 16): users in buddy groups, each registered and subscribed
# to its own buddy list (RFC 4662) through P-CSCF and S-CSCF; PUBLISHes at a fixed rate, each
# owing a partial NOTIFY to every watcher of the publisher. Latency from each PUBLISH's
# scheduled send time to each watcher's NOTIFY (no coordinated omission); lost NOTIFYs; RSS.
# Targets on 2 cores: >= 5,000 NOTIFY/s delivered, p99 < 200 ms, none lost (10,000/s stretch);
# a 100-member list's full state within 1 s.
#
#   scripts/bench-presence.sh   (LOAD_SECONDS=10 by default)
# The lab and the UEs share one process (and the machine's cores): run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_SECONDS=${LOAD_SECONDS:-10}
cargo build --release --quiet
BIN=target/release/rcslab
status=0
# 1,020 users each watching 50: 100 PUBLISH/s owe 5,000 NOTIFY/s.
RUST_LOG=warn $BIN bench presence --groups 20 --watchers 50 --rate 100 --seconds "$LOAD_SECONDS" || status=1
# The stretch: 200 PUBLISH/s owe 10,000 NOTIFY/s.
RUST_LOG=warn $BIN bench presence --groups 20 --watchers 50 --rate 200 --seconds "$LOAD_SECONDS" || status=1
# 100-member lists: the full state at SUBSCRIBE, then 50 PUBLISH/s (5,000 NOTIFY/s).
RUST_LOG=warn $BIN bench presence --groups 10 --watchers 100 --rate 50 --seconds "$LOAD_SECONDS" || status=1
exit $status

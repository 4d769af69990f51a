#!/usr/bin/env bash
# File transfer via HTTP (GSMA RCC.07 §3.5.4.8) through the content server CS over loopback,
# with the rcslab client (empty POST, Digest answered with the HSS's HA1, multipart upload
# streamed from disk; GET download hashed as it comes) and the lab in one process:
#   small: SMALL uploads of SMALL_MB MiB at RATE per second (open loop: times from each
#          upload's scheduled start, no coordinated omission), CLIENTS in flight at most,
#          each followed by its download;
#   big:   BIG uploads of BIG_MB MiB all at once, each followed by its download;
#   huge:  one upload and one download of HUGE_MB MiB, the process's RSS sampled every 20 ms.
# Every download is checked against the source's size and SHA-256 (downloads are hashed, not
# saved: the client is a load generator, like curl -o /dev/null). Prints MB/s (10^6 bytes,
# uploads and downloads together), upload p50/p99 and the RSS before and at the peak of each
# phase. Targets on 2 cores: >= 500 MB/s aggregate; RSS flat (< 64 MiB extra) while moving a
# 1 GiB file. Exit status 1 when a transfer failed or came back different.
#
#   scripts/bench-ft.sh   (CLIENTS=8 SMALL=200 SMALL_MB=1 RATE=100 BIG=4 BIG_MB=100 HUGE_MB=1024)
# Needs about HUGE_MB x 2 of free disk under $TMPDIR (the source and the stored copy).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-8}
SMALL=${SMALL:-200}
SMALL_MB=${SMALL_MB:-1}
RATE=${RATE:-100}
BIG=${BIG:-4}
BIG_MB=${BIG_MB:-100}
HUGE_MB=${HUGE_MB:-1024}
cargo build --release --quiet
RUST_LOG=warn target/release/rcslab bench ft --clients "$CLIENTS" --small "$SMALL" \
  --small-mb "$SMALL_MB" --rate "$RATE" --big "$BIG" --big-mb "$BIG_MB" --huge-mb "$HUGE_MB"

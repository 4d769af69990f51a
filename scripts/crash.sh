#!/usr/bin/env bash
# The crash test with more kill points: `scripts/crash.sh N [SEED]` SIGKILLs `rcslab up` N
# times (1-100) while RCS clients send 300 messages per kill (at least 1000), restarts it on
# the same data directory and checks that every acknowledged message (and "delivered" report)
# arrives exactly once. Without SEED it runs three seeds from the clock; each prints its seed.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
if ! [[ $kills =~ ^[0-9]+$ ]] || ((kills < 1 || kills > 100)); then
  echo "usage: scripts/crash.sh KILLS(1-100) [SEED]" >&2
  exit 2
fi
messages=$((kills * 300 > 1000 ? kills * 300 : 1000))
if [[ $# -ge 2 ]]; then
  seeds=("$2")
else
  base=$(date +%s)
  seeds=("$base" "$((base + 1))" "$((base + 2))")
fi
cargo build --release --quiet --tests
for seed in "${seeds[@]}"; do
  echo "crash.sh: seed $seed, $kills kills, $messages messages"
  RCSLAB_CRASH_SEED=$seed RCSLAB_CRASH_KILLS=$kills RCSLAB_CRASH_MESSAGES=$messages \
    cargo test --release --quiet --test e2e crash -- --nocapture
done

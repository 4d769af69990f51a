#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the other:
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain; installs cargo-fuzz when it is missing. Each target starts from
# its committed seeds (fuzz/corpus/TARGET, read only) plus what earlier runs on this machine
# found (fuzz/target/corpus/TARGET, ignored by git). Exits non-zero at the first crash, naming
# the target and the input that crashed it (fuzz/artifacts/TARGET/...); replay one with
#   cd fuzz && cargo +nightly fuzz run --codegen-units 16 TARGET artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# 16 codegen units: cargo-fuzz's default of 1 makes the instrumented build of the rcslab crate
# take several times longer, for a few per cent more executions per second.
build_flags=(--codegen-units 16)
# FUZZ_QUICK=1 (CI): an unoptimised build without AddressSanitizer (the crate has no unsafe
# code of its own) compiles in a fraction of the time; fewer executions per second, which a
# short smoke run can afford.
if [ "${FUZZ_QUICK:-0}" = 1 ]; then
  build_flags=(--dev -s none)
fi
cargo +nightly fuzz build "${build_flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  echo "fuzz.sh: $t for ${secs}s" >&2
  log="target/fuzz-$t.log"
  if ! cargo +nightly fuzz run "${build_flags[@]}" "$t" "target/corpus/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    artifact=$(ls -t "artifacts/$t"/* 2>/dev/null | head -n 1 || true)
    echo "fuzz.sh: target $t failed; input: fuzz/${artifact:-artifacts/$t (none written)}" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$log" | tail -n 1 >&2 || true
done
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, no crash" >&2

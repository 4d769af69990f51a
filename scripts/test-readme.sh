#!/usr/bin/env bash
# Runs README.md's walkthrough as written, in order, against a fresh lab.
#
# A ```sh block of README.md preceded by one of these lines is part of the walkthrough:
#   <!-- walkthrough -->                  the block runs (bash -e -o pipefail); it must exit 0
#   <!-- walkthrough expect="TEXT" -->    ... and print TEXT
#   <!-- walkthrough: background -->      each line starts in the background (`rcslab up`:
#                                         waited for until it is ready; `listen`: until it
#                                         is registered); they are stopped at the end
# Blocks run in a fresh directory (so `./rcslab-data` is new), with `tests` and `labs` linked
# from the checkout; a block with `cargo install` runs in the checkout and installs into that
# directory (CARGO_INSTALL_ROOT), whose bin/ comes first on PATH: the `rcslab` the other
# blocks run is the one README's install command built.
# Usage: bash scripts/test-readme.sh [README]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
README=${1:-README.md}
WORK=$(mktemp -d)
export CARGO_INSTALL_ROOT="$WORK/cargo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
export RUST_LOG="${RUST_LOG:-warn}"
ln -s "$REPO/tests" "$WORK/tests"
ln -s "$REPO/labs" "$WORK/labs"

pids=()
failed=""
cleanup() {
  status=$?
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for f in "$WORK"/bg-*.log; do
      [ -f "$f" ] || continue
      echo "--- $(head -c 200 "$f.cmd"): last lines" >&2
      tail -n 30 "$f" >&2 || true
    done
  fi
  rm -rf "$WORK" /tmp/users.csv
  exit "$status"
}
trap cleanup EXIT

for port in 5060 5070 5080 3868 8079 8080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "test-readme: something listens on 127.0.0.1:$port already; stop it first" >&2
    exit 1
  fi
done

# The walkthrough blocks: "KIND|EXPECT|LINE-NUMBER" then the block, then a NUL.
walkthrough_blocks() {
  awk '
  /^<!-- walkthrough/ {
    kind = "run"; expect = ""
    if ($0 ~ /walkthrough: background/) kind = "background"
    if (match($0, /expect="[^"]*"/)) expect = substr($0, RSTART + 8, RLENGTH - 9)
    marked = NR; next
  }
  /^```sh/ && marked == NR - 1 { inblock = 1; printf "%s|%s|%d\n", kind, expect, NR; next }
  /^```/ && inblock { inblock = 0; printf "%c", 0; next }
  inblock { print }
  ' "$README"
}

n=0
while IFS= read -r -d '' block; do
  header=${block%%$'\n'*}
  body=${block#*$'\n'}
  IFS="|" read -r kind expect line <<<"$header"
  n=$((n + 1))
  echo "test-readme: block $n ($README line $line, $kind)"
  if [ "$kind" = background ]; then
    # One process a line (a `\` continuation joins lines first).
    while IFS= read -r cmd; do
      cmd=${cmd%%#*}
      [ -n "${cmd// /}" ] || continue
      log="$WORK/bg-${#pids[@]}.log"
      printf '%s' "$cmd" >"$log.cmd"
      (cd "$WORK" && exec bash -c "exec $cmd") >"$log" 2>&1 &
      pids+=($!)
      case "$cmd" in
        *"rcslab up"*) want="ready in" ;;
        *listen*) want="listening" ;;
        *) want="" ;;
      esac
      if [ -n "$want" ]; then
        for _ in $(seq 200); do
          grep -q "$want" "$log" && break
          kill -0 "${pids[-1]}" 2>/dev/null || break
          sleep 0.1
        done
        if ! grep -q "$want" "$log"; then
          echo "test-readme: FAIL: '$cmd' (line $line) did not say '$want'" >&2
          exit 1
        fi
      fi
      echo "  started: $cmd"
    done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' <<<"$body")
    continue
  fi
  dir=$WORK
  case "$body" in *"cargo install"*) dir=$REPO ;; esac
  if ! out=$(cd "$dir" && timeout 600 bash -e -o pipefail -c "$body" 2>&1 </dev/null); then
    printf '%s\n' "$out" | tail -n 40 >&2
    echo "test-readme: FAIL: the block at $README line $line failed:" >&2
    printf '%s\n' "$body" >&2
    failed=1
    exit 1
  fi
  if [ -n "$expect" ] && ! grep -qF -- "$expect" <<<"$out"; then
    printf '%s\n' "$out" | tail -n 40 >&2
    echo "test-readme: FAIL: the block at $README line $line did not print '$expect'" >&2
    exit 1
  fi
  printf '%s\n' "$out" | tail -n 3 | sed 's/^/  | /'
done < <(walkthrough_blocks)
[ "$n" -gt 0 ] || { echo "test-readme: no walkthrough block in $README" >&2; exit 1; }
echo "test-readme: ok ($n walkthrough blocks of $README ran as written)"

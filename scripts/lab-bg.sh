# Sourced by the browser tests (test-browser.sh, test-jssip.sh, test-rtcweb.sh): runs
# 'rcslab up' in the background on a fresh data directory and stops it when the test exits,
# printing the end of the lab's log when the test failed. Set LAB_TEST (the test's name) first.
#   lab_refuse_if_up CHECK   # CHECK (a shell command) succeeds: something already listens
#   lab_start [ARGS...]      # rcslab up ARGS --data-dir <fresh>
#   lab_wait CHECK           # until CHECK succeeds (30 s at most)
lab_data=$(mktemp -d)
lab_log=$(mktemp)
lab_pid=""
lab_cleanup() {
  local status=$?
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2>/dev/null; then
    kill "$lab_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$lab_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$lab_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "$LAB_TEST: FAILED; last lines of the lab log ($lab_log):" >&2
    tail -n 80 "$lab_log" >&2 || true
  else
    rm -rf "$lab_data" "$lab_log"
  fi
  exit "$status"
}
trap lab_cleanup EXIT

lab_refuse_if_up() {
  if eval "$1"; then
    echo "$LAB_TEST: something already listens where the lab would ($1); stop it first" >&2
    exit 1
  fi
}

lab_start() {
  target/debug/rcslab up "$@" --data-dir "$lab_data" >"$lab_log" 2>&1 &
  lab_pid=$!
}

lab_wait() {
  for _ in $(seq 150); do
    if eval "$1"; then return 0; fi
    if ! kill -0 "$lab_pid" 2>/dev/null; then echo "$LAB_TEST: rcslab up exited early" >&2; exit 1; fi
    sleep 0.2
  done
  echo "$LAB_TEST: the lab did not come up within 30 s ($1)" >&2
  exit 1
}

# True when HOST:PORT accepts a TCP connection.
tcp_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

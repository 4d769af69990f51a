#!/usr/bin/env bash
# Overload: pager MESSAGE alice -> bob through the whole chain (as scripts/bench-message.sh) at
# the sustainable rate, then at 2x and 5x that rate for a bounded time each. Prints per phase
# the offered rate, goodput (2xx/s) and its ratio to the sustainable phase's goodput, how many
# requests were shed with 503 and how many timed out silently (no final answer within 5 s,
# retransmissions included), p50/p99; the lab's peak RSS (VmRSS sampled every 0.5 s); and
# after each flood how long until a fresh MESSAGE is served normally. A PASS/FAIL line per
# target; the exit status is 0 unless the script itself failed (benchmarks print figures,
# the e2e tests in tests/e2e/overload.rs assert behaviour).
#
#   scripts/bench-overload.sh [RATE=<found>] [SECONDS=60] [FIND_RATES="1000 2000 3000 4000"]
#
# RATE: the sustainable rate; without it the script tries FIND_RATES for 5 s each and takes the
# highest with < 0.5 % failures (503s count as failures) and p99 <= 100 ms.
#
# Latency and coordinated omission: sipp is open-loop. It starts calls on its own clock at -r
# per second whatever the answers (the cap on concurrent calls, -l, is set far above what
# can be in flight, so it never holds a send back), and each call's timer starts at its
# first send. So a slow answer does not delay the next request, and the figures are not
# bent by coordinated omission as long as sipp keeps up with its schedule. Where sipp itself
# falls behind (it shares the 2 cores with the lab), it sends the late calls at once and the
# offered rate printed is what it actually started (calls / elapsed time), not what was asked.
# sipp measures whole milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOOD=${SECONDS_FLOOD:-${SECONDS_OVERLOAD:-}}
# `SECONDS` is bash's own clock: read it from the environment as given at start.
FLOOD=${FLOOD:-$(env | sed -n 's/^SECONDS=//p')}
FLOOD=${FLOOD:-60}
FIND_RATES=${FIND_RATES:-"1000 2000 3000 4000"}
bash scripts/install-peers.sh >/dev/null
cargo build --release --quiet
BIN=$PWD/target/release/rcslab
S=$PWD/tests/sipp
WORK=$(mktemp -d)
LAB=""; UAS=""; SAMPLER=""
cleanup() {
  for p in $SAMPLER $UAS $LAB; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/lab.toml" <<'TOML'
[nodes]
pcscf = "127.0.0.1:27060"
icscf = "127.0.0.1:27070"
scscf = "127.0.0.1:27080"
hss = "127.0.0.1:27868"
admin = "127.0.0.1:27079"
oim = "127.0.0.1:27090"
tim = "127.0.0.1:27091"
ps = "127.0.0.1:27094"
conf = "127.0.0.1:27096"
conf_msrp = "127.0.0.1:27857"
ipsmgw = "127.0.0.1:27097"
smsc = "127.0.0.1:27775"
ums = "127.0.0.1:27084"
oim_msrp = "127.0.0.1:27855"
tim_msrp = "127.0.0.1:27856"
webrsf = "127.0.0.1:27081"
TOML
RUST_LOG=warn $BIN up --config "$WORK/lab.toml" --data-dir "$WORK/data" > "$WORK/up.log" 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "ready in" "$WORK/up.log" 2>/dev/null && break; sleep 0.1; done
grep "ready in" "$WORK/up.log"
cd "$WORK"
printf 'SEQUENTIAL\nalice;ims.lab;[authentication username=alice@ims.lab password=alice-secret];bob\n' > alice.csv
printf 'SEQUENTIAL\nbob;ims.lab;[authentication username=bob@ims.lab password=bob-secret];alice\n' > bob.csv
sipp 127.0.0.1:27060 -sf "$S/register_digest.xml" -inf bob.csv -p 37099 -i 127.0.0.1 -m 1 -nostdin >/dev/null 2>&1
sipp -sf "$S/uas_message_call.xml" -p 37099 -i 127.0.0.1 -nostdin >/dev/null 2>&1 &
UAS=$!
sleep 0.5
sipp 127.0.0.1:27060 -sf "$S/register_digest.xml" -inf alice.csv -p 37098 -i 127.0.0.1 -m 1 -nostdin >/dev/null 2>&1
echo "idle RSS: $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"

# Peak RSS: VmRSS every 0.5 s into a file, the maximum read at the end.
( while kill -0 $LAB 2>/dev/null; do
    awk '/^VmRSS/ {print $2}' /proc/$LAB/status 2>/dev/null || true
    sleep 0.5
  done > rss.log ) &
SAMPLER=$!

# The sender's scenario: a 200 is goodput (rtd 1, its latency), a 503 is shed (one "shed" line
# in the log file); both end the call successfully, so FailedCall counts only the silent ones
# (no answer within 5 s) and anything unexpected.
python3 - "$S/uac_message.xml" bench.xml <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('<send retrans="500">', '<send retrans="500" start_rtd="1">', 1)
s = s.replace('<recv response="200" />',
              '<recv response="503" optional="true" next="shed" />\n'
              '  <recv response="200" rtd="1" />\n  <nop next="done" />\n'
              '  <label id="shed" />\n'
              '  <nop><action><log message="shed" /></action></nop>\n'
              '  <label id="done" />', 1)
open(sys.argv[2], "w").write(s)
PY

# -default_behaviors all,-bye: sipp would answer every failed call with a BYE (a REGISTER or
# MESSAGE makes no dialog); the lab routes those as in-dialog requests, and they are not the
# load under test.
# run RATE SECONDS -> prints "offered ok shed silent p50 p99"
run() {
  local rate=$1 secs=$2 total=$(( $1 * $2 ))
  rm -f bench_*_rtt.csv bench_*_.csv bench_*_logs.log
  local t0 t1
  t0=$(date +%s.%N)
  # The kernel's drops at sipp's own socket (answers it had no CPU to read), sampled while it runs.
  ( while sleep 0.5; do
      awk '$2 ~ /:90EA$/ {print $NF}' /proc/net/udp
    done > sender_drops.log ) &
  local drops_pid=$!
  timeout $((secs * 3 + 40)) sipp 127.0.0.1:27060 -sf bench.xml -inf alice.csv -p 37098 \
      -i 127.0.0.1 -r "$rate" -m "$total" -l $((rate * 20)) -timeout $((secs * 3 + 30))s \
      -recv_timeout 5000 -nostdin -default_behaviors all,-bye -trace_rtt -rtt_freq 1 -trace_stat -fd 1 -trace_logs \
      -max_socket 65000 >/dev/null 2>&1 || true
  kill $drops_pid 2>/dev/null || true; wait $drops_pid 2>/dev/null || true
  t1=$(date +%s.%N)
  local stat; stat=$(ls -t bench_*_.csv 2>/dev/null | head -1 || true)
  python3 - "$stat" "$secs" "$t0" "$t1" <<'PY'
import sys, glob
stat, secs = sys.argv[1], float(sys.argv[2])
cols = {}
if stat:
    lines = open(stat).read().strip().splitlines()
    head, last = lines[0].split(";"), lines[-1].split(";")
    cols = dict(zip(head, last))
def c(name):
    try: return int(cols.get(name, "0"))
    except ValueError: return 0
created = c("TotalCallCreated")
failed = c("FailedCall(C)")
# Elapsed time of the sending: sipp's own ElapsedTime(C) includes the tail waiting for the
# last answers, so the offered rate is calls over the scheduled duration when sipp kept up,
# else over the time it took to create them (read from the stat file's periodic rows).
ok = shed = 0; v = []
for f in glob.glob("bench_*_rtt.csv"):
    for line in open(f):
        p = line.strip().split(";")
        if len(p) >= 3 and p[2].strip() == "1":
            try: v.append(float(p[1])); ok += 1
            except ValueError: pass
for f in glob.glob("bench_*_logs.log"):
    shed += sum(1 for line in open(f) if line.strip() == "shed")
v.sort()
pct = lambda q: v[min(len(v) - 1, int(len(v) * q))] if v else float("nan")
# When did sipp create the last call? The periodic rows (every second) say.
send_secs = secs
if stat:
    rows = [r.split(";") for r in lines[1:]]
    idx_c = head.index("TotalCallCreated"); idx_t = head.index("ElapsedTime(C)")
    def tosec(t):
        h, m, s = t.split(":"); return int(h) * 3600 + int(m) * 60 + float(s)
    for r in rows:
        try:
            if int(r[idx_c]) >= created:
                send_secs = max(secs, tosec(r[idx_t])); break
        except (ValueError, IndexError):
            pass
offered = created / send_secs if send_secs else 0
drops = max([int(x) for x in open("sender_drops.log").read().split()] or [0])
print(f"{offered:.0f} {ok} {shed} {failed} {pct(0.5):.0f} {pct(0.99):.0f} {created} {drops}")
PY
  rm -f bench_*_rtt.csv bench_*_.csv bench_*_logs.log
}

# After a flood: how long until one fresh MESSAGE gets its 200 within 500 ms.
recovery() {
  local start=$1
  for _ in $(seq 200); do
    if timeout 5 sipp 127.0.0.1:27060 -sf "$S/uac_message.xml" -inf alice.csv -p 37098 -i 127.0.0.1 -m 1 \
        -recv_timeout 500 -timeout 2s -nostdin >/dev/null 2>&1; then
      python3 -c "import time; print(f'{time.time() - $start:.2f}')"; return
    fi
    sleep 0.1
  done
  echo "never"
}

if [ -z "${RATE:-}" ]; then
  echo "finding the sustainable rate (5 s per step):"
  RATE=0
  for r in $FIND_RATES; do
    read -r off ok shed failed p50 p99 created sdrops < <(run "$r" 5)
    printf '  %6s/s offered %6s/s: %6s ok %5s 503 %5s silent, p50 %s ms p99 %s ms\n' "$r" "$off" "$ok" "$shed" "$failed" "$p50" "$p99"
    if python3 -c "import sys; sys.exit(0 if $ok > 0 and ($shed + $failed) * 200 < $created and float('$p99') <= 100 else 1)"; then
      RATE=$r
    else
      break
    fi
  done
  [ "$RATE" -gt 0 ] || { echo "no sustainable rate found"; exit 1; }
  sleep 3
fi
echo "sustainable rate: $RATE MESSAGE/s; flood phases of $FLOOD s"
echo "(Retry-After is ignored by sipp: the flood keeps coming at the offered rate)"
printf '%-6s %8s %8s %9s %7s %8s %8s %7s %7s\n' phase asked/s offered/s goodput/s ratio 503 silent p50_ms p99_ms
peak=0; all_pass=1; rec_max=0
for mult in 1 2 5; do
  rate=$((RATE * mult))
  secs=$FLOOD; [ "$mult" = 1 ] && secs=$(( FLOOD < 10 ? FLOOD : 10 ))
  read -r off ok shed failed p50 p99 created sdrops < <(run "$rate" "$secs")
  end=$(date +%s.%N)
  good=$(python3 -c "print(round($ok / $secs))")
  [ "$mult" = 1 ] && peak=$good
  ratio=$(python3 -c "print(f'{$good / $peak:.2f}' if $peak else 'n/a')")
  printf '%-6s %8s %8s %9s %7s %8s %8s %7s %7s\n' "${mult}x" "$rate" "$off" "$good" "$ratio" "$shed" "$failed" "$p50" "$p99"
  [ "$sdrops" -gt 0 ] && echo "       (the kernel dropped $sdrops datagrams at sipp's own socket: answers sipp could not read in time)"
  if [ "$mult" != 1 ]; then
    rec=$(recovery "$end")
    echo "       served normally again $rec s after the ${mult}x flood"
    python3 -c "import sys; sys.exit(0 if $ok and $good >= 0.8 * $peak else 1)" \
      && echo "PASS ${mult}x goodput >= 80 % of peak ($ratio)" || { echo "FAIL ${mult}x goodput >= 80 % of peak ($ratio)"; all_pass=0; }
    [ "$failed" = 0 ] && [ "$shed" -gt 0 ] \
      && echo "PASS ${mult}x every shed request got 503 ($shed 503s, 0 silent timeouts)" \
      || { echo "FAIL ${mult}x every shed request got 503 ($shed 503s, $failed silent timeouts or failures)"; all_pass=0; }
    python3 -c "import sys; sys.exit(0 if '$rec' != 'never' and float('$rec') < 5 else 1)" \
      && echo "PASS ${mult}x served normally within 5 s (${rec} s)" || { echo "FAIL ${mult}x served normally within 5 s (${rec} s)"; all_pass=0; }
  fi
  sleep 2
done
kill $SAMPLER 2>/dev/null || true; wait $SAMPLER 2>/dev/null || true; SAMPLER=""
peak_rss=$(sort -n rss.log | tail -1)
echo "peak RSS of the lab: $((peak_rss / 1024)) MiB (VmRSS every 0.5 s); now $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"
# Where silent ones went: datagrams the kernel dropped at each UDP socket, the lab's and
# sipp's (a receive buffer full: answers sipp had no CPU to read count as its timeouts), and
# the lab's own warnings (its inbound queue full, ...).
python3 - <<'PY'
ports = {27060: "P-CSCF", 27070: "I-CSCF", 27080: "S-CSCF", 27090: "O-IM", 27091: "T-IM",
         37099: "sipp receiver's"}
for line in open("/proc/net/udp").read().splitlines()[1:]:
    f = line.split()
    port = int(f[1].split(":")[1], 16)
    if port in ports:
        print(f"kernel UDP drops at the {ports[port]} socket: {f[-1]}")
PY
echo "the lab's last warnings:"; grep -E "WARN|ERROR" "$WORK/up.log" | tail -4 | cut -c1-300 || true
[ $((peak_rss / 1024)) -lt 256 ] && echo "PASS peak RSS < 256 MiB" || echo "FAIL peak RSS < 256 MiB"
exit 0

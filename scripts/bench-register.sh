#!/usr/bin/env bash
# REGISTER-with-digest load through the whole chain (UE -> P-CSCF -> I-CSCF -> S-CSCF, with
# UAR, MAR and SAR to the HSS for every registration), with sipp at rising rates for a bounded
# time each. Prints, per rate, successes/failures and p50/p99 of the REGISTER..200 time, then
# the highest rate with < 0.5 % failures and the lab's RSS (idle and after load).
#
# The lab is the default one, as `rcslab up` runs it: every registration also sends a
# third-party REGISTER to T-IM (iFC) and the P-CSCF subscribes to the reg event (a NOTIFY per
# registration). EXTRAS=0 measures the bare chain (no iFC, no reg-event subscription).
#
# Latency: sipp is open-loop (calls start on its own clock whatever the answers; the cap on
# calls in flight, -l, is 10 s worth of calls, far above what a sustained rate keeps in
# flight), and each call's time runs from its first REGISTER, so there is no coordinated
# omission while sipp keeps its schedule; sipp measures whole milliseconds.
#
#   scripts/bench-register.sh [USERS=5000] [SECONDS_PER_STEP=8] [RATES="1000 2000 3000 4000 5000 6000"] [EXTRAS=1] [PERF=1 [PERF_OUT=FILE]]
#
# lab_cpu% is the lab's CPU over the step (200 = both cores), lab_sys% the share of it spent in
# the kernel, us/reg the lab's CPU microseconds per successful registration.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-5000}
STEP=${SECONDS_PER_STEP:-8}
RATES=${RATES:-"1000 2000 3000 4000 5000 6000"}
bash scripts/install-peers.sh
cargo build --release --quiet
BIN=target/release/rcslab
WORK=$(mktemp -d)
trap 'kill $LAB 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Users: u00001..uNNNNN with password pwNNNNN.
python3 - "$USERS" "$WORK" <<'PY'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
with open(f"{d}/users.txt", "w") as f:
    for i in range(1, n + 1):
        f.write(f"sip:u{i:05d}@ims.lab;pw{i:05d}\n")
with open(f"{d}/users.csv", "w") as f:
    f.write("SEQUENTIAL\n")
    for i in range(1, n + 1):
        f.write(f"u{i:05d};ims.lab;[authentication username=u{i:05d}@ims.lab password=pw{i:05d}]\n")
PY

# EXTRAS=0: the registration chain alone: no iFC (so no third-party REGISTER to T-IM) and no
# P-CSCF reg-event subscription (no NOTIFY per registration).
if [ "${EXTRAS:-1}" = 1 ]; then EXTRA_TOML=""; else EXTRA_TOML=$'default_ifc = []\n'; fi
printf '%s' "$EXTRA_TOML" > "$WORK/lab.toml"
cat >> "$WORK/lab.toml" <<'TOML'
[nodes]
pcscf = "127.0.0.1:25060"
icscf = "127.0.0.1:25070"
scscf = "127.0.0.1:25080"
hss = "127.0.0.1:23868"
admin = "127.0.0.1:28079"
oim = "127.0.0.1:28090"
tim = "127.0.0.1:28091"
ps = "127.0.0.1:28094"
conf = "127.0.0.1:28096"
conf_msrp = "127.0.0.1:25857"
ipsmgw = "127.0.0.1:25097"
smsc = "127.0.0.1:25775"
ums = "127.0.0.1:25084"
oim_msrp = "127.0.0.1:25855"
tim_msrp = "127.0.0.1:25856"
webrsf = "127.0.0.1:28081"
TOML
if [ "${EXTRAS:-1}" != 1 ]; then printf '[pcscf]\nsubscribe_reg = false\n' >> "$WORK/lab.toml"; fi
# sipp is one source address standing for 5,000 UEs: the P-CSCF's per-source limit (meant for
# one UE flooding the others) would cap it at 500 transactions in flight; the node budget
# ([sip] max_transactions) still applies.
printf '[sip]\nmax_transactions_per_source = 0\n' >> "$WORK/lab.toml"
t0=$(date +%s.%N)
$BIN subscriber import "$WORK/users.txt" --config "$WORK/lab.toml" --data-dir "$WORK/data" >/dev/null
t1=$(date +%s.%N)
python3 -c "print(f'provisioned $USERS subscribers in {$t1 - $t0:.2f} s')"
RUST_LOG=warn $BIN up --config "$WORK/lab.toml" --data-dir "$WORK/data" > "$WORK/up.log" 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "ready in" "$WORK/up.log" 2>/dev/null && break; sleep 0.1; done
grep "ready in" "$WORK/up.log"
sleep 1
echo "idle RSS: $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"

# The scenario with response-time measurement from the first REGISTER to the 200.
sed -e 's|<send retrans="500">|<send retrans="500" start_rtd="1">|' \
    -e 's|<recv response="200" />|<recv response="200" rtd="1" />|' \
    tests/sipp/register_digest.xml > "$WORK/bench.xml"
# Only the first send starts the timer.
python3 - "$WORK/bench.xml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
first = s.find('start_rtd="1"') + len('start_rtd="1"')
s = s[:first] + s[first:].replace(' start_rtd="1"', '')
open(p, "w").write(s)
PY

# PERF=1: perf samples the lab during the whole run; its top functions print at the end.
if [ "${PERF:-0}" = 1 ]; then
  perf record -F ${PERF_HZ:-499} ${PERF_CALLGRAPH:--g} -p $LAB -o "$WORK/perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
fi
# -default_behaviors all,-bye: sipp would answer every failed call with a BYE (a REGISTER or
# MESSAGE makes no dialog); the lab routes those as in-dialog requests, and they are not the
# load under test.
best=0
# CPU: the lab's and sipp's user and system time per step (from /proc), so the cost of one
# registration is known and how much of it is the kernel's (socket hops) rather than ours.
cpu() { awk '{print $14 + $15, $14, $15}' "/proc/$1/stat" 2>/dev/null || echo "0 0 0"; }
HZ=$(getconf CLK_TCK)
printf '%8s %9s %7s %7s %9s %9s %9s %9s %9s\n' rate/s calls ok failed p50_ms p99_ms lab_cpu% lab_sys% us/reg
for rate in $RATES; do
  total=$((rate * STEP))
  read -r c0 u0 s0 < <(cpu $LAB); w0=$(date +%s.%N)
  rm -f "$WORK"/bench_*_rtt.csv
  (cd "$WORK" && timeout $((STEP * 3 + 30)) sipp 127.0.0.1:25060 -sf bench.xml -inf users.csv \
      -i 127.0.0.1 -r "$rate" -m "$total" -l $((rate * 10)) -timeout $((STEP * 3 + 20))s \
      -recv_timeout 5000 -nostdin -default_behaviors all,-bye -trace_rtt -rtt_freq 1 -trace_stat -fd 1 >/dev/null 2>&1) || true
  stat=$(ls -t "$WORK"/bench_*_.csv 2>/dev/null | head -1 || true)
  ok=0; failed=0
  if [ -n "$stat" ]; then
    ok=$(tail -1 "$stat" | awk -F';' '{print $16}')      # SuccessfulCall(C)
    failed=$(tail -1 "$stat" | awk -F';' '{print $18}')  # FailedCall(C)
  fi
  read -r p50 p99 < <(cat "$WORK"/bench_*_rtt.csv 2>/dev/null | python3 -c '
import sys
v = []
for line in sys.stdin:
    f = line.strip().split(";")
    if len(f) >= 3:  # Date_ms;response_time_ms;rtd_no (sipp measures whole milliseconds)
        try: v.append(float(f[1]))
        except ValueError: pass
v.sort()
pct = lambda p: v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
print(f"{pct(0.50):.2f} {pct(0.99):.2f}")')
  read -r c1 u1 s1 < <(cpu $LAB); w1=$(date +%s.%N)
  read -r labcpu labsys usreg < <(python3 -c "
c, s, w, ok = ($c1 - $c0) / $HZ, ($s1 - $s0) / $HZ, $w1 - $w0, max(${ok:-0}, 1)
print(f'{100 * c / w:.0f} {100 * s / max(c, 1e-9):.0f} {1e6 * c / ok:.0f}')")
  printf '%8s %9s %7s %7s %9s %9s %9s %9s %9s\n' "$rate" "$total" "${ok:-0}" "${failed:-0}" "$p50" "$p99" "$labcpu" "$labsys" "$usreg"
  # Sustained = under 0.5 % failures AND p99 within 100 ms (not just eventually answered).
  if [ "${ok:-0}" -gt 0 ] && python3 -c "import sys; ok,f,t,p99=$ok,$failed,$total,float('$p99'); sys.exit(0 if f*200 < t and ok+f >= t*0.995 and p99 <= 100 else 1)"; then
    best=$rate
  fi
  rm -f "$WORK"/bench_*_.csv
done
echo "highest sustained rate (< 0.5 % failures, p99 <= 100 ms): $best REGISTER/s (full IMS registrations with digest)"
echo "RSS after load: $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"
if [ "${PERF:-0}" = 1 ]; then
  kill -INT $PERF_PID; wait $PERF_PID 2>/dev/null || true
  echo "perf: the lab's top functions (self time):"
  perf report -i "$WORK/perf.data" --no-children --percent-limit 1 --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -40
  # PERF_OUT=FILE keeps the samples (perf report -i FILE -g caller for the call chains).
  if [ -n "${PERF_OUT:-}" ]; then cp "$WORK/perf.data" "$PERF_OUT"; fi
fi

#!/usr/bin/env bash
# Pager MESSAGE load A -> B through the whole chain: sipp (alice) -> P-CSCF -> S-CSCF (orig,
# iFC) -> I-CSCF (LIR to the HSS) -> S-CSCF (term, iFC) -> P-CSCF -> sipp (bob, answering 200).
# Both ends register with digest first. Rising rates, a bounded time each; prints per rate the
# calls, failures, p50/p99 of MESSAGE..200 at the sender, then the highest sustained rate
# (< 0.5 % failures and p99 <= 100 ms) and the lab's RSS.
#
#   scripts/bench-message.sh [SECONDS_PER_STEP=8] [RATES="500 1000 2000 3000"]
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${SECONDS_PER_STEP:-8}
RATES=${RATES:-"500 1000 2000 3000"}
bash scripts/install-peers.sh
cargo build --release --quiet
BIN=target/release/rcslab
WORK=$(mktemp -d)
trap 'kill $LAB 2>/dev/null || true; pkill -f "uas_message_call.xml -p 36099" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/lab.toml" <<'TOML'
[nodes]
pcscf = "127.0.0.1:26060"
icscf = "127.0.0.1:26070"
scscf = "127.0.0.1:26080"
hss = "127.0.0.1:26868"
admin = "127.0.0.1:26079"
oim = "127.0.0.1:26090"
tim = "127.0.0.1:26091"
ps = "127.0.0.1:26094"
conf = "127.0.0.1:26096"
conf_msrp = "127.0.0.1:26857"
ipsmgw = "127.0.0.1:26097"
smsc = "127.0.0.1:26775"
ums = "127.0.0.1:26084"
oim_msrp = "127.0.0.1:26855"
tim_msrp = "127.0.0.1:26856"
webrsf = "127.0.0.1:26081"
TOML
RUST_LOG=warn $BIN up --config "$WORK/lab.toml" --data-dir "$WORK/data" > "$WORK/up.log" 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "ready in" "$WORK/up.log" 2>/dev/null && break; sleep 0.1; done
grep "ready in" "$WORK/up.log"
S=tests/sipp
printf 'SEQUENTIAL\nalice;ims.lab;[authentication username=alice@ims.lab password=alice-secret];bob\n' > "$WORK/alice.csv"
printf 'SEQUENTIAL\nbob;ims.lab;[authentication username=bob@ims.lab password=bob-secret];alice\n' > "$WORK/bob.csv"
(cd "$WORK" && sipp 127.0.0.1:26060 -sf "$OLDPWD/$S/register_digest.xml" -inf bob.csv -p 36099 -i 127.0.0.1 -m 1 -nostdin >/dev/null 2>&1)
(cd "$WORK" && exec sipp -sf "$OLDPWD/$S/uas_message_call.xml" -p 36099 -i 127.0.0.1 -nostdin -bg >/dev/null 2>&1) || true
sleep 0.5
(cd "$WORK" && sipp 127.0.0.1:26060 -sf "$OLDPWD/$S/register_digest.xml" -inf alice.csv -p 36098 -i 127.0.0.1 -m 1 -nostdin >/dev/null 2>&1)
echo "idle RSS: $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"
sed -e 's|<send retrans="500">|<send retrans="500" start_rtd="1">|' -e 's|<recv response="200" />|<recv response="200" rtd="1" />|' \
    $S/uac_message.xml > "$WORK/bench.xml"
# -default_behaviors all,-bye: sipp would answer every failed call with a BYE (a REGISTER or
# MESSAGE makes no dialog); the lab routes those as in-dialog requests, and they are not the
# load under test.
best=0
printf '%8s %9s %7s %7s %9s %9s\n' rate/s calls ok failed p50_ms p99_ms
for rate in $RATES; do
  total=$((rate * STEP))
  rm -f "$WORK"/bench_*_rtt.csv "$WORK"/bench_*_.csv
  (cd "$WORK" && timeout $((STEP * 3 + 30)) sipp 127.0.0.1:26060 -sf bench.xml -inf alice.csv -p 36098 \
      -i 127.0.0.1 -r "$rate" -m "$total" -l $((rate * 2)) -timeout $((STEP * 3 + 20))s \
      -recv_timeout 5000 -nostdin -default_behaviors all,-bye -trace_rtt -rtt_freq 1 -trace_stat -fd 1 >/dev/null 2>&1) || true
  stat=$(ls -t "$WORK"/bench_*_.csv 2>/dev/null | head -1 || true)
  ok=0; failed=0
  if [ -n "$stat" ]; then
    ok=$(tail -1 "$stat" | awk -F';' '{print $16}')
    failed=$(tail -1 "$stat" | awk -F';' '{print $18}')
  fi
  read -r p50 p99 < <(cat "$WORK"/bench_*_rtt.csv 2>/dev/null | python3 -c '
import sys
v = []
for line in sys.stdin:
    f = line.strip().split(";")
    if len(f) >= 3:
        try: v.append(float(f[1]))
        except ValueError: pass
v.sort()
pct = lambda p: v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
print(f"{pct(0.50):.2f} {pct(0.99):.2f}")')
  printf '%8s %9s %7s %7s %9s %9s\n' "$rate" "$total" "${ok:-0}" "${failed:-0}" "$p50" "$p99"
  if [ "${ok:-0}" -gt 0 ] && python3 -c "import sys; ok,f,t,p99=$ok,$failed,$total,float('$p99'); sys.exit(0 if f*200 < t and ok+f >= t*0.995 and p99 <= 100 else 1)"; then
    best=$rate
  fi
done
echo "highest sustained rate (< 0.5 % failures, p99 <= 100 ms): $best MESSAGE/s through the whole chain"
echo "RSS after load: $(( $(ps -o rss= -p $LAB) / 1024 )) MiB"

#!/usr/bin/env bash
# The lab spread over network namespaces (issue 15): one namespace per node, plus one for UEs,
# each with a veth link to a bridge in a hub namespace, so `tshark` in a node's namespace shows
# only what that node sees. Needs root (ip netns).
#
#   scripts/netns-lab.sh up       create the namespaces, write the lab file, start the 8 nodes
#   scripts/netns-lab.sh status   what is there and running
#   scripts/netns-lab.sh down     stop the nodes (SIGTERM, SIGKILL after a timeout), delete
#                                 the namespaces (which deletes their links and the bridge)
#
# Settings (environment):
#   RCSLAB         the binary (default target/debug/rcslab)
#   NETNS_PREFIX   namespace name prefix (default rcslab-): rcslab-pcscf, ..., rcslab-ue,
#                  and rcslab-hub holding the bridge
#   NETNS_SUBNET   first three octets of the lab's /24 (default 10.47.0); it lives only
#                  inside the namespaces, so it cannot clash with the host's routes
#   NETNS_DIR      lab file, node logs, data (default /tmp/${NETNS_PREFIX}netns)
#   NETNS_TIMEOUT  seconds any single wait may take (default 20)
#   NETNS_LAB_EXTRA  a TOML file appended to the generated lab file (e.g. [[subscribers]])
set -euo pipefail

RCSLAB=${RCSLAB:-target/debug/rcslab}
PREFIX=${NETNS_PREFIX:-rcslab-}
SUBNET=${NETNS_SUBNET:-10.47.0}
DIR=${NETNS_DIR:-/tmp/${PREFIX}netns}
TIMEOUT=${NETNS_TIMEOUT:-20}
EXTRA=${NETNS_LAB_EXTRA:-}

NODES=(hss pcscf icscf scscf oim tim ps webrsf) # start order: the HSS first
HUB=${PREFIX}hub
UE_NS=${PREFIX}ue

# Each namespace's host number in the /24.
host_of() {
    case $1 in
    pcscf) echo 11 ;; icscf) echo 12 ;; scscf) echo 13 ;; hss) echo 14 ;;
    oim) echo 15 ;; tim) echo 16 ;; webrsf) echo 17 ;; ps) echo 18 ;; ue) echo 100 ;;
    *) echo "unknown node $1" >&2; return 1 ;;
    esac
}
ip_of() { echo "${SUBNET}.$(host_of "$1")"; }

die() { echo "netns-lab: $*" >&2; exit 1; }

# 0 while process $1 runs (a zombie does not: where nothing reaps orphans, a node that exited
# stays one).
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# Our namespaces that exist now (exact names only: never another prefix's).
existing() {
    local have n
    have=$(ip netns list 2>/dev/null | awk '{print $1}' || true)
    for n in "$HUB" "${NODES[@]/#/$PREFIX}" "$UE_NS"; do
        if grep -qx -- "$n" <<<"$have"; then echo "$n"; fi
    done
}

# Stops every process in our namespaces: SIGTERM, then SIGKILL for those left after TIMEOUT.
stop_all() {
    local ns pids=() p deadline
    for ns in $(existing); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$p"); done
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        local left=()
        for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
        [ ${#left[@]} -eq 0 ] && return 0
        sleep 0.2
    done
    for p in "${pids[@]}"; do
        if alive "$p"; then
            echo "netns-lab: pid $p did not stop on SIGTERM within ${TIMEOUT}s: SIGKILL" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
}

down() {
    stop_all
    local ns
    for ns in $(existing); do
        ip netns del "$ns" || echo "netns-lab: could not delete namespace $ns" >&2
    done
    rm -f "$DIR"/*.pid
    if [ -n "$(existing)" ]; then die "namespaces left: $(existing | tr '\n' ' ')"; fi
    echo "netns-lab: down (${PREFIX}*: no namespaces, no processes; logs kept in $DIR)"
}

# 0 when every namespace exists and every node's process runs.
all_up() {
    local n
    [ "$(existing | wc -l)" -eq $((${#NODES[@]} + 2)) ] || return 1
    for n in "${NODES[@]}"; do
        [ -f "$DIR/$n.pid" ] && alive "$(cat "$DIR/$n.pid")" || return 1
    done
}

status() {
    local n ns state have
    have=$(existing)
    for n in "${NODES[@]}" ue; do
        ns=$PREFIX$n
        if ! grep -qx -- "$ns" <<<"$have"; then
            state="no namespace"
        elif [ "$n" = ue ]; then
            state="namespace up"
        elif [ -f "$DIR/$n.pid" ] && alive "$(cat "$DIR/$n.pid")"; then
            state="running, pid $(cat "$DIR/$n.pid")"
        else
            state="not running"
        fi
        printf '%-16s %-14s %s\n' "$ns" "$(ip_of "$n")" "$state"
    done
    all_up
}

lab_file() {
    local p=$1
    {
        echo "# Written by scripts/netns-lab.sh: each node in its own network namespace."
        echo "[nodes]"
        echo "pcscf = \"$(ip_of pcscf):5060\""
        echo "icscf = \"$(ip_of icscf):5060\""
        echo "scscf = \"$(ip_of scscf):5060\""
        echo "hss = \"$(ip_of hss):3868\""
        echo "admin = \"$(ip_of hss):8079\""
        echo "oim = \"$(ip_of oim):5060\""
        echo "tim = \"$(ip_of tim):5060\""
        echo "oim_msrp = \"$(ip_of oim):2855\""
        echo "tim_msrp = \"$(ip_of tim):2855\""
        echo "webrsf = \"$(ip_of webrsf):8080\""
        echo "tim_http = \"$(ip_of tim):8081\""
        echo "ps = \"$(ip_of ps):5060\""
        if [ -n "$EXTRA" ]; then cat -- "$EXTRA"; fi
    } >"$p"
}

# Waits (bounded) until node $1 printed that it runs.
wait_ready() {
    local n=$1 pid deadline
    pid=$(cat "$DIR/$n.pid")
    deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        grep -q "Ctrl-C stops it" "$DIR/$n.log" 2>/dev/null && return 0
        alive "$pid" || { tail -n 20 "$DIR/$n.log" >&2; die "$n exited"; }
        sleep 0.1
    done
    tail -n 20 "$DIR/$n.log" >&2
    die "$n did not start within ${TIMEOUT}s"
}

up() {
    [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
    [[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
        die "NETNS_SUBNET is the first three octets of a /24 (like 10.47.0), not '$SUBNET'"
    command -v ip >/dev/null || die "no 'ip' (iproute2)"
    if all_up; then
        echo "netns-lab: already up"
        status
        return 0
    fi
    local bin=$RCSLAB
    [ -x "$bin" ] || bin=$(command -v "$RCSLAB") || die "no rcslab binary at '$RCSLAB' (cargo build, or set RCSLAB)"
    RCSLAB=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
    # Leftovers of an earlier run with this prefix go first.
    if [ -n "$(existing)" ]; then down >/dev/null; fi
    # Whatever ends `up` early (a failing command, a node that does not start) takes down
    # what it made.
    trap 'rc=$?; if [ $rc -ne 0 ]; then echo "netns-lab: up failed; cleaning up" >&2; down >&2 || true; fi' EXIT
    mkdir -p "$DIR/data"
    DIR=$(cd "$DIR" && pwd)

    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 up
    local n ns
    for n in "${NODES[@]}" ue; do
        ns=$PREFIX$n
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # The hub end is v-NODE on the bridge, the node's end eth0 in its namespace.
        ip -n "$HUB" link add "v-$n" type veth peer name eth0 netns "$ns"
        ip -n "$HUB" link set "v-$n" master br0 up
        ip -n "$ns" addr add "$(ip_of "$n")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done

    lab_file "$DIR/lab.toml"
    for n in "${NODES[@]}"; do
        RUST_LOG=${RUST_LOG:-warn} ip netns exec "$PREFIX$n" \
            "$RCSLAB" run "$n" --config "$DIR/lab.toml" --data-dir "$DIR/data" \
            </dev/null >"$DIR/$n.log" 2>&1 &
        echo $! >"$DIR/$n.pid"
        wait_ready "$n"
    done
    trap - EXIT

    cat <<EOF
netns-lab: up. Lab file $DIR/lab.toml, logs $DIR/NODE.log, data $DIR/data.
$(status)

UEs live in ${UE_NS} ($(ip_of ue)); the P-CSCF is $(ip_of pcscf):5060:
  ip netns exec ${UE_NS} $RCSLAB ue --lab $(ip_of pcscf):5060 --user bob listen
  ip netns exec ${UE_NS} $RCSLAB ue --lab $(ip_of pcscf):5060 --user alice send bob "Hello?"
  ip netns exec ${UE_NS} curl http://$(ip_of webrsf):8080/     # WebRSF
What one node sees (its namespace's eth0; 'any' adds its loopback):
  ip netns exec ${PREFIX}scscf tshark -i eth0
  ip netns exec ${PREFIX}hss tshark -i eth0 -Y diameter
Everything, on the bridge:
  ip netns exec ${HUB} tshark -i br0
Stop it all: $0 down
EOF
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

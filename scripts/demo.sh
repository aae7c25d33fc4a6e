#!/usr/bin/env bash
# The seed's worked example, end to end, in network namespaces: machine A (198.51.100.37) appears on
# machine B's LAN as the ghost host 203.0.113.87, through an IP-in-IP tunnel run by ipipd on A and B —
# and, dual stack, as 2001:db8:b::87 (proxy NDP on B, IPv6 carried as protocol 41 in the same tunnel).
#
# Usage: scripts/demo.sh [--keep] [--gro on|off] [--binary FILE]     (root; builds ipipd first)
#   --keep         leave the lab running afterwards and print how to explore and remove it
#   --gro on|off   the uplinks receive like real NICs, GRO on (the default), or as bare veths
#   --binary FILE  run this ipipd instead of building one (release); the tests pass their build
# Exit status 0 when every step worked; otherwise non-zero, naming the step that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
source scripts/lib/lab.sh

keep=no binary=""
while (($#)); do
    case $1 in
        --keep) keep=yes; shift ;;
        --binary) [[ -x ${2:-} ]] || { echo "--binary takes an executable ipipd" >&2; exit 64; }; binary=$(realpath "$2"); shift 2 ;;
        --gro) [[ ${2:-} == on || ${2:-} == off ]] || { echo "--gro takes on or off" >&2; exit 64; }; LAB_GRO=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "demo.sh needs root (network namespaces)" >&2; exit 1; }

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
current_step="setup"
step() { current_step=$1; bold "$1"; }
finish() {
    local status=$?
    trap '' INT TERM   # a second Ctrl-C must not cut the cleanup short
    if [[ $status -ne 0 ]]; then
        printf '\n\033[31mFAILED at step: %s\033[0m\n' "$current_step" >&2
    fi
    if [[ $keep == yes && $status -eq 0 ]]; then
        cat <<MSG

The lab is still running. Enter a machine with:
  ip netns exec $(ns a) bash      # machine A (ipipd log: $LOGDIR/a.log)
  ip netns exec $(ns b) bash      # machine B (ipipd log: $LOGDIR/b.log)
  ip netns exec $(ns c) bash      # host C on B's LAN
  ip netns exec $(ns r) bash      # the router between them
Look at the daemons (from any directory):
  $IPIPD status -c $REPO/config/machine-a.yaml --runtime-dir $LOGDIR/run-a
  $IPIPD status -c $REPO/config/machine-b.yaml --runtime-dir $LOGDIR/run-b
Remove it (the daemons get SIGTERM and clean up after themselves) with:
  LAB_PREFIX=$LAB_PREFIX bash -c 'source $REPO/scripts/lib/lab.sh; lab_down'; rm -rf $LOGDIR
MSG
    else
        lab_down
        if [[ $status -ne 0 ]]; then
            for log in "$LOGDIR"/*.log; do
                [[ -s $log ]] && { echo "--- last lines of $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
            done
        fi
        rm -rf "$LOGDIR"
    fi
    exit $status
}
LOGDIR=$(mktemp -d /tmp/ipipd-demo.XXXXXX)
trap finish EXIT
trap 'exit 130' INT TERM

step "build ipipd"
scripts/install-deps.sh
if [[ -n $binary ]]; then
    IPIPD=$binary
    echo "using $IPIPD"
else
    swift build -c release --product ipipd 2>&1 | tail -1
    IPIPD=$(swift build -c release --show-bin-path)/ipipd
fi

step "check both machines' config files"
"$IPIPD" check -q -c config/machine-a.yaml && echo "config/machine-a.yaml: valid"
"$IPIPD" check -q -c config/machine-b.yaml && echo "config/machine-b.yaml: valid"

step "build the lab: A -- R -- LAN(B, C)"
lab_down
lab_up
echo "namespaces: $(ip netns list | awk -v p="$LAB_PREFIX" '$1 ~ p {print $1}' | tr '\n' ' ')"

step "plan on machine A (as an unprivileged user: nothing is changed)"
in_ns a setpriv --reuid=65534 --regid=65534 --clear-groups "$IPIPD" plan -c config/machine-a.yaml

step "start ipipd on machine A and machine B"
start_ipipd() {
    local machine=$1 pid
    pid=$(lab_start_ipipd "$IPIPD" "$machine" "config/machine-$machine.yaml" "$LOGDIR/run-$machine" "$LOGDIR/$machine.log") \
        || { cat "$LOGDIR/$machine.log" >&2; return 1; }
    LAB_PIDS+=("$pid")
    echo "machine $machine: tunnel up (log: $LOGDIR/$machine.log)"
}
start_ipipd a
start_ipipd b

step "host C pings the ghost host 203.0.113.87 (machine A, through the tunnel)"
# Watch the router's link to A meanwhile: the replies travel as IP-in-IP from A to B.
ip netns exec "$(ns r)" timeout 10 tcpdump -lni eth0 -c 6 'ip proto 4' >"$LOGDIR/router.txt" 2>/dev/null &
tcpdump_pid=$!
LAB_PIDS+=($tcpdump_pid)
sleep 1
in_ns c ping -c 3 -i 0.5 -W 2 203.0.113.87
wait "$tcpdump_pid" || true
echo "-- seen on the router's link to A (outer header, then the inner packet):"
sed 's/^/   /' "$LOGDIR/router.txt"
grep -q "198.51.100.37 > 203.0.113.86: IP 203.0.113.87 > 203.0.113.20: ICMP echo reply" "$LOGDIR/router.txt"

step "machine A reaches host C on B's LAN"
in_ns a ping -c 3 -i 0.5 -W 2 203.0.113.20

step "C's neighbour table maps the ghost 203.0.113.87 to machine B's MAC"
b_mac=$(ip -n "$(ns b)" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
ghost_mac=$(ip -n "$(ns c)" neigh show 203.0.113.87 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
echo "C: 203.0.113.87 is-at ${ghost_mac:-nothing}; machine B's eth0 is $b_mac"
[[ -n $ghost_mac && $ghost_mac == "$b_mac" ]]

step "IPv6: host C pings the ghost host 2001:db8:b::87 (B answers its Neighbor Solicitation)"
# The same tunnel carries it, as protocol 41 (6in4): watch the router's link to A.
ip netns exec "$(ns r)" timeout 10 tcpdump -lni eth0 -c 6 'ip proto 41' >"$LOGDIR/router6.txt" 2>/dev/null &
tcpdump_pid=$!
LAB_PIDS+=($tcpdump_pid)
sleep 1
in_ns c ping -6 -c 3 -i 0.5 -W 2 2001:db8:b::87
wait "$tcpdump_pid" || true
echo "-- seen on the router's link to A (outer IPv4 header, then the inner IPv6 packet):"
sed 's/^/   /' "$LOGDIR/router6.txt"
grep -q "198.51.100.37 > 203.0.113.86: IP6 2001:db8:b::87 > 2001:db8:b::20: ICMP6, echo reply" "$LOGDIR/router6.txt"

step "IPv6: machine A reaches host C at 2001:db8:b::20"
in_ns a ping -6 -c 3 -i 0.5 -W 2 2001:db8:b::20

step "C's neighbour table maps the ghost 2001:db8:b::87 to machine B's MAC"
ghost6_mac=$(ip -n "$(ns c)" -6 neigh show 2001:db8:b::87 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
echo "C: 2001:db8:b::87 is-at ${ghost6_mac:-nothing}; machine B's eth0 is $b_mac"
[[ -n $ghost6_mac && $ghost6_mac == "$b_mac" ]]

step "TCP: machine A sends host C 10 MB through the tunnel, which B's uplink merges as a real NIC does (GRO)"
head -c 10M /dev/urandom >"$LOGDIR/sent"
ip netns exec "$(ns c)" sh -c "exec nc.openbsd -l 203.0.113.20 5001 >'$LOGDIR/received'" &
nc_pid=$!
LAB_PIDS+=($nc_pid)
for _ in $(seq 50); do in_ns c ss -Hltn 'sport = :5001' | grep -q 5001 && break; sleep 0.1; done
in_ns a timeout 30 nc.openbsd -N 203.0.113.20 5001 <"$LOGDIR/sent"
for _ in $(seq 100); do kill -0 "$nc_pid" 2>/dev/null || break; sleep 0.1; done
sent_sum=$(sha256sum <"$LOGDIR/sent" | cut -d' ' -f1); received_sum=$(sha256sum <"$LOGDIR/received" | cut -d' ' -f1)
echo "SHA-256 sent by A: $sent_sum; received by C: $received_sum"
[[ $sent_sum == "$received_sum" ]]
read -r merged segments < <("$IPIPD" status --json -c config/machine-b.yaml --runtime-dir "$LOGDIR/run-b" \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["uplinkMergedFrames"], d["uplinkMergedSegments"])')
echo "B's uplink (GRO $LAB_GRO) handed ipipd $merged merged frames holding $segments TCP segments; each went to tunl whole"
[[ $LAB_GRO == off || $merged -gt 0 ]]

step "per-peer counters of both daemons"
echo "-- machine A"
"$IPIPD" status -c config/machine-a.yaml --runtime-dir "$LOGDIR/run-a"
echo "-- machine B"
"$IPIPD" status -c config/machine-b.yaml --runtime-dir "$LOGDIR/run-b"

current_step="done"
bold "all steps passed: machine A appears on machine B's LAN as 203.0.113.87 and 2001:db8:b::87"
